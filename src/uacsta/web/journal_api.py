"""The call journal over the API: ``GET /api/v1/journal`` (JSON pages) and
``GET /api/v1/journal.csv`` (the same rows as a streamed CSV file).

Both need the ``read`` scope. An administrator (session or API token) sees every line; a
web-client user (role ``user``) only the lines of their extension, whatever the filters say
(naming another line is a 403). Filters: ``line`` (repeatable; a full line ID such as
``sip:100@pbx`` or a bare extension ``100``), ``outcome``, ``direction``, ``since`` and
``until`` (ISO 8601, UTC when no offset is given, or epoch seconds), ``remote`` (part of the
remote number). Pages are newest first; ``next`` is the opaque cursor of the next page.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from uacsta.journal.export import csv_lines
from uacsta.store.journal import Cursor, decode_cursor, encode_cursor
from uacsta.switch.callrecord import Direction, Outcome
from uacsta.switch.devices import extension_of
from uacsta.web.apicommon import ApiError, User, api_router, operations_of

if TYPE_CHECKING:
    from uacsta.journal.writer import JournalWriter
    from uacsta.web.auth import Principal

__all__ = ["JournalFilter", "journal_filter", "journal_of", "router", "split_lines"]

router = api_router()

MAX_PAGE = 500
#: Rows one CSV query fetches at a time (the file is streamed page by page).
CSV_PAGE = 500


# --- response models ---------------------------------------------------------------------------


class JournalEntry(BaseModel):
    """One call on one line (``CallRecord.to_json``); times are epoch seconds (UTC)."""

    id: str = Field(description="Unique and stable ID of the record")
    line: str = Field(examples=["sip:100@pbx"])
    phone: str = Field(description="MAC of the phone that had the line")
    call_id: str = Field(description="The call ID as clients saw it")
    direction: Direction
    remote_number: str | None = Field(examples=["+4930123456"])
    remote_name: str | None
    started: float
    answered: float | None = Field(description="null: never answered on this line")
    ended: float
    ring_seconds: float
    talk_seconds: float
    outcome: Outcome
    target: str | None = Field(
        description="Where the call went: forwarded, deflected or transferred to; answered by"
    )
    cause: str | None = Field(description="The CSTA cause of the end, as the phone reported it")
    related: list[str] = Field(description="Call IDs of linked calls (consultation, transfer)")
    internal: bool = Field(description="The other party was another line of this server")


class JournalPage(BaseModel):
    items: list[JournalEntry]
    next: str | None = Field(description="Cursor of the next (older) page; null: last page")


# --- what a request asks for -----------------------------------------------------------------


def journal_of(conn: HTTPConnection) -> JournalWriter:
    """The running server's call journal, or 503 when it has none."""
    journal = getattr(conn.app.state.server, "journal", None)
    if journal is None:
        raise ApiError(503, "the call journal is not running")
    return cast("JournalWriter", journal)


def parse_time(text: str | None, name: str) -> float | None:
    """Epoch seconds from ISO 8601 (UTC without an offset) or a number of seconds."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    refused = ApiError(
        422, f"invalid request: {name}: not an ISO 8601 time or epoch seconds: {text!r}"
    )
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
        except (ValueError, OverflowError):
            raise refused from None
    if not math.isfinite(seconds):
        raise refused
    return seconds


@dataclass(frozen=True, slots=True)
class JournalFilter:
    """The store's filter arguments a request resolves to (the caller's lines applied)."""

    lines: list[str] | None = None
    extensions: list[str] | None = None
    outcome: Outcome | None = None
    direction: Direction | None = None
    since: float | None = None
    until: float | None = None
    remote: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "extensions": self.extensions,
            "outcome": self.outcome,
            "direction": self.direction,
            "since": self.since,
            "until": self.until,
            "remote": self.remote,
        }


def split_lines(names: list[str]) -> tuple[list[str], list[str]]:
    """Full line IDs and bare extensions (``100`` matches every line of extension 100)."""
    lines: list[str] = []
    extensions: list[str] = []
    for name in names:
        ext = extension_of(name)
        if ext is not None and ext == name.strip():
            extensions.append(ext)
        else:
            lines.append(name.strip())
    return lines, extensions


def journal_filter(
    request: Request,
    principal: Principal,
    *,
    line: list[str],
    outcome: Outcome | None,
    direction: Direction | None,
    since: str | None,
    until: str | None,
    remote: str | None,
) -> JournalFilter:
    """The filter of a journal request, kept to the principal's lines."""
    names = [n for n in line if n.strip()]
    lines, extensions = split_lines(names)
    if not principal.is_admin:
        own_ext = extension_of(principal.extension or "")
        if own_ext is None:
            raise ApiError(403, "this account has no extension")
        foreign = [n for n in names if extension_of(n) != own_ext]
        if foreign:
            raise ApiError(
                403,
                f"this account may only read extension {principal.extension}, "
                f"not {', '.join(repr(n) for n in foreign)}",
            )
        if not names:
            own = operations_of(request).own_devices(principal)
            lines = sorted({principal.extension or "", *(d.device_id for d in own)} - {""})
            extensions = [own_ext]
    return JournalFilter(
        lines=lines if names or not principal.is_admin else None,
        extensions=extensions if names or not principal.is_admin else None,
        outcome=outcome,
        direction=direction,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        remote=remote.strip() if remote and remote.strip() else None,
    )


LineQuery = Annotated[
    list[str],
    Query(
        max_length=50,
        description="Line ID (sip:100@pbx) or extension (100); repeat for several",
    ),
]
TimeQuery = Annotated[
    str | None,
    Query(max_length=64, description="ISO 8601 (UTC without an offset) or epoch seconds"),
]
RemoteQuery = Annotated[
    str | None, Query(max_length=64, description="Part of the remote party's number")
]


def _cursor(text: str | None) -> Cursor | None:
    if not text:
        return None
    try:
        return decode_cursor(text)
    except ValueError:
        raise ApiError(422, "invalid request: cursor: not a cursor this API gave") from None


# --- routes --------------------------------------------------------------------------------------


@router.get("/journal", tags=["journal"], summary="The call journal, newest first")
async def get_journal(
    request: Request,
    who: User,
    line: LineQuery = [],  # noqa: B006 - FastAPI copies the default
    outcome: Outcome | None = None,
    direction: Direction | None = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    remote: RemoteQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JournalPage:
    """One entry per call per line; ``next`` pages on (pass it as ``cursor``)."""
    found = journal_filter(
        request,
        who,
        line=line,
        outcome=outcome,
        direction=direction,
        since=since,
        until=until,
        remote=remote,
    )
    rows, after = await journal_of(request).query(
        **found.arguments(), limit=limit, before=_cursor(cursor)
    )
    return JournalPage(
        items=[JournalEntry.model_validate(r.to_json()) for r in rows],
        next=encode_cursor(after) if after is not None else None,
    )


@router.get(
    "/journal.csv",
    tags=["journal"],
    summary="The call journal as CSV",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV, header row"}},
)
async def get_journal_csv(
    request: Request,
    who: User,
    line: LineQuery = [],  # noqa: B006 - FastAPI copies the default
    outcome: Outcome | None = None,
    direction: Direction | None = None,
    since: TimeQuery = None,
    until: TimeQuery = None,
    remote: RemoteQuery = None,
) -> StreamingResponse:
    """Every entry the filters select, newest first; times ISO 8601 UTC. Cells a spreadsheet
    would take for a formula (starting with = + - @) are prefixed with '."""
    found = journal_filter(
        request,
        who,
        line=line,
        outcome=outcome,
        direction=direction,
        since=since,
        until=until,
        remote=remote,
    )
    journal = journal_of(request)

    async def body() -> AsyncIterator[str]:
        for text in csv_lines((), header=True):
            yield text
        before: Cursor | None = None
        while True:
            rows, before = await journal.query(**found.arguments(), limit=CSV_PAGE, before=before)
            yield "".join(csv_lines(rows, header=False))
            if before is None:
                return

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="journal-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )
