"""The HTTP application: one Starlette/FastAPI app for the API, pages, provisioning, metrics.

Routers live in their own modules and are included here; this module wires shared state
(the running parts as :class:`WebParts`, the operations, auth, templates) and the middleware.
Nothing here imports the server: it passes itself in.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from uacsta import __version__
from uacsta.operations import OperationError
from uacsta.safety import default_credentials
from uacsta.web import apidocs
from uacsta.web.apidocs import DOCS_PATHS
from uacsta.web.auth import Auth
from uacsta.web.bodyguard import BodyGuard

if TYPE_CHECKING:
    from uacsta.config import Settings
    from uacsta.journal.webhooks import WebhookService
    from uacsta.journal.writer import JournalWriter
    from uacsta.operations import Operations
    from uacsta.store.db import Store


class WebParts(Protocol):
    """What the web application needs of the running server."""

    settings: Settings
    store: Store | None
    data_dir: Path
    ops: Operations
    #: The call journal (None: not running, the journal routes answer 503).
    journal: JournalWriter | None
    webhooks: WebhookService | None


HERE = Path(__file__).parent


def security_context(request: Request) -> dict[str, Any]:
    """Every page's ``security_warnings`` (uacsta.safety): base.html shows them to admins."""
    settings = getattr(getattr(request.app.state, "server", None), "settings", None)
    found = default_credentials(settings) if settings is not None else []
    return {"security_warnings": [c.warning for c in found]}


templates = Jinja2Templates(
    directory=str(HERE / "templates"), context_processors=[security_context]
)


def session_secret(data_dir: Path) -> str:
    """A per-installation secret for signing session cookies, kept in the data directory."""
    path = data_dir / "session.key"
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path.read_text().strip()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # owner-only from the start
    with os.fdopen(fd, "w") as file:
        file.write(secret)
    return secret


#: Pages load scripts and styles only from /static (no inline script anywhere), connect only
#: back to this server (the API and its WebSocket), and are never framed (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: The API docs (/docs Swagger UI, /redoc ReDoc, uacsta.web.apidocs): scripts from this server
#: only, as everywhere; the two bundles insert their own <style> elements (inline styles) and
#: ReDoc renders the logo/examples as data: or blob: images and runs its search in a worker.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: HSTS (RFC 6797) for one year, sent over HTTPS only (RFC 6797 §7.2: never over plain HTTP).
HSTS = "max-age=31536000"


class SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every HTTP response.

    ASGI rather than ``BaseHTTPMiddleware`` so streamed responses and WebSockets pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        policy = DOCS_CONTENT_SECURITY_POLICY if path in DOCS_PATHS else CONTENT_SECURITY_POLICY
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if https:
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(server: WebParts, *, https: bool = False) -> FastAPI:
    assert server.store is not None
    app = FastAPI(
        title="uacsta",
        version=__version__,
        description="uaCSTA server for SIP desk phones: phones, devices, calls and events.",
        docs_url=None,  # /docs and /redoc: uacsta.web.apidocs, offline, under the CSP
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    #: The running parts, for the routers not yet moved to operations (API, provisioning).
    app.state.server = server
    app.state.ops = server.ops
    http = server.settings.http
    app.state.auth = Auth(
        server.store,
        session_lifetime=http.session_lifetime,
        max_sessions_per_user=http.max_sessions_per_user,
    )
    app.state.templates = templates
    # Inside the session middleware: the session is decoded, the body not yet read.
    app.add_middleware(
        BodyGuard,
        authenticated=lambda request: app.state.auth.principal(request) is not None,
        max_body_bytes=http.max_body_bytes,
        max_admin_body_bytes=http.max_admin_body_bytes,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(server.data_dir),
        session_cookie="uacsta_session",
        same_site="strict",
        https_only=https,
        max_age=int(http.session_lifetime),
    )
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        status = server.ops.status()
        # "ok" (it serves); the warnings say what an operator must fix (uacsta.safety).
        warnings = [c.warning for c in default_credentials(server.settings)]
        return JSONResponse(
            {
                "status": "ok",
                "phones": status["phones"],
                "uptime": status["uptime"],
                "warnings": warnings,
            }
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/admin/", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(
        request: Request, exc: StarletteHTTPException
    ) -> JSONResponse | PlainTextResponse:
        if request.url.path.startswith("/api/"):
            return JSONResponse(
                {"error": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(OperationError)
    async def operation_error(
        request: Request, exc: OperationError
    ) -> JSONResponse | PlainTextResponse:
        """An operation refused: its message, with its status (the API as JSON)."""
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        return PlainTextResponse(str(exc), status_code=exc.status)

    from uacsta.web import metrics

    app.include_router(metrics.router)
    app.include_router(apidocs.router)
    _include_optional(app)
    app.mount(apidocs.ASSETS_URL, apidocs.assets(), name="apidocs")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    return app


def _include_optional(app: FastAPI) -> None:
    """Routers of the management API, admin, web client and provisioning modules (the JSON
    CSTA gateway, :mod:`uacsta.gateways.json`, is mounted by the server that assembles both)."""
    import importlib

    for name in ("manage", "journal_api", "webhooks_api", "admin", "webclient", "provisioning"):
        try:
            module = importlib.import_module(f"uacsta.web.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"uacsta.web.{name}":
                raise
            continue
        app.include_router(module.router)
        # Outgoing requests (OpenAPI "webhooks"): documented, never served.
        described = getattr(module, "openapi_webhooks", None)
        if isinstance(described, APIRouter):
            app.webhooks.include_router(described)
