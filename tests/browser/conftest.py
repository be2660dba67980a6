"""Browser fixtures: the real server with simulated phones, and headless Chromium (Playwright).

Playwright cannot download browsers here; it drives Debian's Chromium. Tests are skipped when
neither Playwright nor that Chromium is available.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Harness
from uacsta.server import Server
from uacsta.web import logbuffer
from uacsta.web.auth import Auth

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ADMIN_PASSWORD = "admin-secret-1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Admin:
    """The running server, its simulated phones and a logged-out browser page."""

    def __init__(self, harness: Harness, page: Any) -> None:
        self.harness = harness
        self.page = page
        self.phones: list[Any] = []

    @property
    def server(self) -> Server:
        assert self.harness.server is not None
        return self.harness.server

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def url(self, path: str) -> str:
        return self.base + path

    async def login(self, password: str = ADMIN_PASSWORD) -> int:
        """Log in through the form; returns the HTTP status of the POST."""
        await self.page.goto(self.url("/admin/login"))
        await self.page.fill("input[name=name]", "admin")
        await self.page.fill("input[name=password]", password)
        async with self.page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/admin/login")
        ) as info:
            await self.page.click("button[type=submit]")
        response = await info.value
        return int(response.status)

    async def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"admin-{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    def captured(self) -> list[logbuffer.Entry]:
        capture = logbuffer.current()
        return capture.snapshot() if capture else []

    async def restart_server(self) -> Server:
        """Stop and start the server on the same data directory (new ports)."""
        await self.harness.stop_server()
        server = await self.harness.start_server()
        return server


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium")
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def admin(tmp_path: Path, browser: Any) -> AsyncIterator[Admin]:
    harness = Harness(tmp_path)
    server = await harness.start_server()
    logbuffer.install(server)
    assert server.store is not None
    Auth(server.store).set_password("admin", ADMIN_PASSWORD)
    sim = harness.simulation()
    phones = [
        sim.add_phone("yealink", ["100"], transport="udp"),
        sim.add_phone("snom", ["200", "201"], transport="tcp"),
    ]
    await sim.start()
    for agent in phones:
        await harness.wait_state(agent.mac, "ready")
    context = await browser.new_context(viewport={"width": 1366, "height": 860})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    a = Admin(harness, page)
    a.phones = phones
    try:
        yield a
    finally:
        await context.close()
        await harness.stop_server()  # first: the phones still answer its BYEs
        for sim in harness.sims:
            await sim.close()
        logbuffer.uninstall()
    assert not errors, f"JavaScript errors on the pages: {errors}"
