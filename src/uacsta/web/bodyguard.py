"""Request bodies: a limit per route, and no body read before authentication (issue 15).

An ASGI middleware inside the session middleware (the session is decoded; the body is
not). For a request that carries a body:

- a Content-Length over the route's limit gets 413 at once, the body unread;
- a request to a route that needs a login, without a valid session or API token, gets its
  answer (401 for the API, 303 to the login page for the pages) before the body is read;
- a chunked body that goes over the limit is refused (413) as soon as it does.

Each such answer carries ``Connection: close``: the server closes the connection instead
of reading the rest of a body nobody wants. The protocol (:mod:`uacsta.web.httpproto`)
holds the hard limit, the largest of the routes' limits, and the time limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PUBLIC_BODY_ROUTES", "BodyGuard"]

#: Routes that take a body from a stranger (their limit is the small one).
PUBLIC_BODY_ROUTES = ("/admin/login", "/client/login", "/provisioning/")
#: The API's own words for a missing login (uacsta.web.apicommon.current_principal).
AUTH_REQUIRED = "authentication required: send 'Authorization: Bearer <API token>' or log in"
#: Routes of logged-in administrators' forms (the larger limit).
ADMIN_PREFIX = "/admin/"


class BodyGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticated: Callable[[Request], bool],
        max_body_bytes: int,
        max_admin_body_bytes: int,
    ) -> None:
        self.app = app
        self.authenticated = authenticated
        self.max_body_bytes = max_body_bytes
        self.max_admin_body_bytes = max_admin_body_bytes

    def limit_for(self, path: str) -> int:
        if path.startswith(ADMIN_PREFIX) and not path.startswith(PUBLIC_BODY_ROUTES):
            return self.max_admin_body_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and not length:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limit_for(path)
        if length is not None and length > limit:
            await _answer(send, 413, path, f"request body over {limit} bytes")
            return
        if not path.startswith(PUBLIC_BODY_ROUTES) and not self.authenticated(Request(scope)):
            await _answer(send, 401, path, AUTH_REQUIRED)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise HTTPException(413, f"request body over {limit} bytes")
            return message

        async def closing_send(message: Message) -> None:
            if refused and message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, counting_receive, closing_send)


async def _answer(send: Send, status: int, path: str, text: str) -> None:
    """The answer without reading the body, and the connection closed after it."""
    headers: list[tuple[bytes, bytes]] = [(b"connection", b"close")]
    body: bytes
    if status == 401 and path.startswith(("/admin/", "/client/")):
        status = 303
        login = b"/client/login" if path.startswith("/client/") else b"/admin/login"
        headers.append((b"location", login))
        body = b""
    elif path.startswith("/api/"):
        body = json.dumps({"error": text}).encode()
        headers.append((b"content-type", b"application/json"))
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
    else:
        body = text.encode()
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    headers.append((b"content-length", str(len(body)).encode()))
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
