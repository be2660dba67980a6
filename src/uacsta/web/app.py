"""The HTTP application: one Starlette/FastAPI app for the API, pages, provisioning, metrics.

Routers live in their own modules and are included here; this module wires shared state
(the running :class:`uacsta.server.Server`, auth, templates) and the middleware.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from uacsta import __version__
from uacsta.web.auth import Auth

if TYPE_CHECKING:
    from uacsta.server import Server

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))


def session_secret(data_dir: Path) -> str:
    """A per-installation secret for signing session cookies, kept in the data directory."""
    path = data_dir / "session.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


def create_app(server: Server, *, https: bool = False) -> FastAPI:
    assert server.store is not None
    app = FastAPI(
        title="uacsta",
        version=__version__,
        description="uaCSTA server for SIP desk phones: phones, devices, calls and events.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.server = server
    app.state.auth = Auth(server.store)
    app.state.templates = templates
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(server.data_dir),
        session_cookie="uacsta_session",
        same_site="strict",
        https_only=https,
        max_age=12 * 3600,
    )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        status = server.status()
        return JSONResponse(
            {"status": "ok", "phones": status["phones"], "uptime": status["uptime"]}
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

    from uacsta.web import metrics

    app.include_router(metrics.router)
    _include_optional(app)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    return app


def _include_optional(app: FastAPI) -> None:
    """Routers of the API, admin, web client and provisioning modules."""
    import importlib

    for name in ("api", "admin", "webclient", "provisioning"):
        try:
            module = importlib.import_module(f"uacsta.web.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"uacsta.web.{name}":
                raise
            continue
        app.include_router(module.router)
