"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served offline.

Telephony servers rarely reach the internet, so nothing comes from a CDN: the Swagger UI and
ReDoc bundles are those the ``fastapi-offline`` package ships (kept current with upstream
releases, not copied into this repository), mounted at ``/static/apidocs/``. The pages start
them from our own external scripts (``/static/docs.js``, ``/static/redoc.js``), so the
Content-Security-Policy keeps ``script-src 'self'`` without inline scripts; the docs' policy
only adds what the two bundles need (see :data:`uacsta.web.app.DOCS_CONTENT_SECURITY_POLICY`).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: The directory of the bundles (swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js).
ASSETS = Path(fastapi_offline.__file__).parent / "static"
#: Where they are served.
ASSETS_URL = "/static/apidocs"
#: The paths the docs' Content-Security-Policy applies to.
DOCS_PATHS = frozenset({"/docs", "/redoc"})

router = APIRouter(include_in_schema=False)


def assets() -> StaticFiles:
    return StaticFiles(directory=str(ASSETS))


_SWAGGER = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>uacsta API · Swagger UI</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/openapi.json"></div>
  <script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
  <script src="/static/docs.js"></script>
</body>
</html>
"""

_REDOC = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>uacsta API · ReDoc</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body>
  <div id="redoc" data-openapi-url="/openapi.json"></div>
  <script src="{ASSETS_URL}/redoc.standalone.js"></script>
  <script src="/static/redoc.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_SWAGGER)


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return HTMLResponse(_REDOC)
