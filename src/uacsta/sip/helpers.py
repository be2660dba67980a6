"""Stateless helpers: responses built from requests (§8.2.6), branch, tag and Call-ID values.

Identifiers come from :mod:`secrets`: branches and tags are what an attacker would have to guess
to inject into a transaction or dialog (RFC 3261 §8.1.1.7, §19.3).
"""

from __future__ import annotations

import secrets

from uacsta.sip.message import REASON_PHRASES, Request, Response

BRANCH_MAGIC = "z9hG4bK"


def generate_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(10)


def generate_tag() -> str:
    return secrets.token_hex(6)


def generate_call_id(host: str = "uacsta") -> str:
    return f"{secrets.token_hex(12)}@{host}"


def reason_phrase(status_code: int) -> str:
    return REASON_PHRASES.get(status_code, "Unknown")


def build_response(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> Response:
    """A response to ``request``: Via, From, To, Call-ID, CSeq copied (§8.2.6.2).

    ``to_tag`` is added to To when it has none (never for 100 Trying). Record-Route is copied
    into dialog-creating responses (§12.1.1).
    """
    copied: list[tuple[str, str]] = []
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            copied.append((name, value))
        elif name == "To":
            if to_tag is not None and status_code != 100 and request.to.tag is None:
                copied.append((name, str(request.to.with_tag(to_tag))))
            else:
                copied.append((name, value))
        elif name == "Record-Route" and 100 < status_code < 300:
            copied.append((name, value))
    copied.extend(headers)
    if body and content_type:
        copied.append(("Content-Type", content_type))
    return Response(
        status_code=status_code,
        reason=reason if reason is not None else reason_phrase(status_code),
        headers=tuple(copied),
        body=body,
    )
