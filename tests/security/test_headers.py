"""Security headers of the web pages on a running server (issue 15, "Also: CSP/HSTS/...").

Every page forbids framing (``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``),
content sniffing and cross-site referrers, and runs scripts and styles only from ``/static``:
the pages themselves carry no inline script, event-handler attribute or inline style, checked
on the HTML as served. HSTS comes over HTTPS only (RFC 6797 §7.2).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from tests.security.conftest import Harness, make_settings
from uacsta.server import Server
from uacsta.web.auth import Auth

ADMIN_PASSWORD = "admin-secret-pw"
USER_PASSWORD = "user-secret-pw"


class _Inline(HTMLParser):
    """Inline script, event handlers and inline styles in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script":
            self._in_script = "src" not in names
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src", "action") and (value or "").startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"<script>{data.strip()[:40]}")


def inline_parts(page: str) -> list[str]:
    parser = _Inline()
    parser.feed(page)
    return parser.found


def assert_page_headers(r: httpx.Response) -> None:
    where = str(r.url)
    assert r.headers.get("x-frame-options") == "DENY", where
    assert r.headers.get("x-content-type-options") == "nosniff", where
    assert r.headers.get("referrer-policy") in ("same-origin", "no-referrer"), where
    csp = r.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == ["'none'"], (where, csp)
    assert directives.get("script-src") == ["'self'"], (where, csp)
    assert directives.get("object-src") == ["'none'"], (where, csp)
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, (where, csp)


async def _login(http: httpx.AsyncClient, page: str, data: dict[str, str]) -> None:
    text = (await http.get(page)).text
    match = re.search(r'name="csrf" value="([^"]+)"', text)
    assert match, text
    r = await http.post(page, data={"csrf": match.group(1), **data})
    assert r.status_code == 303, r.text


async def test_admin_and_web_client_pages_send_the_security_headers(harness: Harness) -> None:
    server = await harness.start_server()
    assert server.store is not None
    auth = Auth(server.store)
    auth.set_password("admin", ADMIN_PASSWORD, role="admin")
    auth.set_password("100", USER_PASSWORD, role="user", extension="100")
    base = f"http://127.0.0.1:{server.http_port}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as admin,
        httpx.AsyncClient(base_url=base, timeout=10) as user,
    ):
        for path in ("/admin/login", "/client/login"):
            r = await admin.get(path)
            assert r.status_code == 200
            assert_page_headers(r)
            assert inline_parts(r.text) == [], path
            assert "strict-transport-security" not in r.headers  # plain HTTP: never HSTS
        await _login(admin, "/admin/login", {"name": "admin", "password": ADMIN_PASSWORD})
        for path in (
            "/admin/",
            "/admin/status",
            "/admin/settings",
            "/admin/diagnostics",
            "/admin/users",
            "/admin/tokens",
            "/admin/provisioning",
        ):
            r = await admin.get(path)
            assert r.status_code == 200, (path, r.status_code)
            assert_page_headers(r)
            assert inline_parts(r.text) == [], path
        await _login(user, "/client/login", {"extension": "100", "password": USER_PASSWORD})
        r = await user.get("/client/")
        assert r.status_code == 200
        assert_page_headers(r)
        assert inline_parts(r.text) == []
        # API answers and static files are not to be sniffed or framed either.
        for r in (await user.get("/api/v1/devices"), await user.get("/static/client.js")):
            assert r.status_code == 200
            assert r.headers.get("x-content-type-options") == "nosniff"
            assert r.headers.get("x-frame-options") == "DENY"


async def test_hsts_over_https(harness: Harness) -> None:
    settings = make_settings(harness.tmp_path / "data")
    settings.http.listen = "tls:127.0.0.1:0"
    harness.server = Server(settings)
    server = harness.server
    await server.start()
    async with httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.http_port}", verify=False, timeout=10
    ) as http:
        r = await http.get("/admin/login")
        assert r.status_code == 200
        hsts = r.headers.get("strict-transport-security", "")
        assert re.fullmatch(r"max-age=\d+(; includeSubDomains)?", hsts), hsts
        assert int(hsts.split("=")[1].split(";")[0]) >= 180 * 86400
        assert_page_headers(r)
