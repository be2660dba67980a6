"""The API documentation renders with no internet access (issue 19).

Telephony servers rarely reach the internet: /docs (Swagger UI) and /redoc (ReDoc) must come
whole from the server, under its Content-Security-Policy. The browser here refuses every
request that does not go to loopback, and records what it refused and every console error
(a CSP violation is one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Harness
from uacsta.server import Server

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


class Offline:
    """A page whose browser context reaches loopback only."""

    def __init__(self, server: Server, page: Any) -> None:
        self.server = server
        self.page = page
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.http_port}{path}"


@pytest.fixture
async def offline(tmp_path: Path, browser: Any) -> AsyncIterator[Offline]:
    harness = Harness(tmp_path)
    server = await harness.start_server()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    off = Offline(server, page)

    async def only_loopback(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost", "::1"):
            await route.continue_()
        else:
            off.blocked.append(url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_loopback)
    page.on("console", lambda m: m.type == "error" and off.console_errors.append(m.text))
    page.on("pageerror", lambda exc: off.page_errors.append(str(exc)))
    try:
        yield off
    finally:
        await context.close()
        await harness.stop_server()


async def test_swagger_ui_renders_offline_under_the_csp(offline: Offline) -> None:
    response = await offline.page.goto(offline.url("/docs"))
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "cdn" not in policy
    # The operations list: one block per operation, with the API's paths.
    operations = offline.page.locator(".opblock")
    await operations.first.wait_for(state="visible")
    assert await operations.count() > 10
    paths = await offline.page.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.startswith("/api/v1/phones") for p in paths), paths
    assert offline.blocked == [], f"requests outside the server: {offline.blocked}"
    assert offline.page_errors == [], offline.page_errors
    assert offline.console_errors == [], offline.console_errors


async def test_redoc_renders_offline_under_the_csp(offline: Offline) -> None:
    response = await offline.page.goto(offline.url("/redoc"))
    assert response is not None and response.status == 200
    # ReDoc's menu lists the operations; the API's title is rendered in the content.
    await offline.page.locator("h1", has_text="uacsta").first.wait_for(state="visible")
    menu = offline.page.locator("[role=menuitem], li[data-item-id]")
    await menu.first.wait_for(state="attached")
    assert await menu.count() > 10
    assert offline.blocked == [], f"requests outside the server: {offline.blocked}"
    assert offline.page_errors == [], offline.page_errors
    # ReDoc always renders its "API docs by Redocly" footer with an <img> from its CDN (no
    # option turns it off); the policy refuses it before any request leaves the browser and
    # ReDoc drops the image on the error. Every other console error fails the test.
    others = [e for e in offline.console_errors if REDOCLY_LOGO not in e]
    assert others == [], others


async def test_favicon_is_served_and_linked(offline: Offline) -> None:
    response = await offline.page.goto(offline.url("/static/favicon.svg"))
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    await offline.page.goto(offline.url("/admin/login"))
    icon = offline.page.locator("link[rel=icon]")
    assert await icon.get_attribute("href") == "/static/favicon.svg"
