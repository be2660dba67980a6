"""The web admin in a real browser against the real server with simulated phones."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import ADMIN_PASSWORD, Admin
from tests.e2e.conftest import wait_until
from uacsta.phones.mac import format_mac
from uacsta.web import logbuffer

ADMIN_GETS = (
    "/admin/",
    "/admin/status",
    "/admin/journal",
    "/admin/settings",
    "/admin/diagnostics",
    "/admin/diagnostics/log.txt",
    "/admin/users",
    "/admin/tokens",
)


async def test_login_is_refused_with_a_wrong_password_then_accepted(admin: Admin) -> None:
    page = admin.page
    assert await admin.login("wrong-password") == 401
    await expect(page.locator("#login-error")).to_contain_text("Wrong user name or password")
    await admin.shot("login")
    assert await admin.login() == 303
    await expect(page).to_have_url(admin.url("/admin/"))
    await expect(page.locator("h1")).to_contain_text("Phones")


async def test_unauthenticated_requests_are_sent_to_the_login(admin: Admin) -> None:
    mac = admin.phones[0].mac
    request = admin.page.context.request
    for path in (*ADMIN_GETS, f"/admin/phones/{mac}", f"/admin/phones/{mac}/trace.json"):
        response = await request.get(admin.url(path), max_redirects=0)
        assert response.status == 303, path
        assert response.headers["location"].startswith("/admin/login?next="), path
    # A POST without a session is refused as well (redirect), and with one but no CSRF: 403.
    response = await request.post(
        admin.url(f"/admin/phones/{mac}/enabled"), form={"enabled": "0"}, max_redirects=0
    )
    assert response.status == 303
    await admin.login()
    response = await request.post(
        admin.url(f"/admin/phones/{mac}/enabled"), form={"enabled": "0", "csrf": "forged"}
    )
    assert response.status == 403
    assert admin.server.inventory is not None
    record = admin.server.inventory.get(mac)
    assert record is not None and record.enabled


async def test_repeated_failed_logins_are_limited_per_source(admin: Admin) -> None:
    page = admin.page
    for _ in range(5):
        assert await admin.login("nope-nope") == 401
        await expect(page.locator("#login-error")).to_contain_text("Wrong")
    # Even the right password: the source is blocked for a while.
    assert await admin.login() == 429
    await expect(page.locator("#login-error")).to_contain_text("Too many failed logins")
    captured = [e.message for e in admin.captured() if "login failed" in e.message]
    assert len(captured) == 5 and "127.0.0.1" in captured[0]


async def test_phones_are_listed_and_can_be_disabled_and_enabled(admin: Admin) -> None:
    page = admin.page
    await admin.login()
    yealink, snom = admin.phones
    rows = page.locator("#phones tbody tr")
    await expect(rows).to_have_count(2)
    row = page.locator(f'tr[data-mac="{yealink.mac}"]')
    await expect(row).to_contain_text(format_mac(yealink.mac))
    await expect(row).to_contain_text("UDP")
    await expect(row.locator(".badge.sim")).to_have_text("simulated")
    await expect(row.locator(".state")).to_have_text("ready")
    await expect(page.locator('#state-counts [data-state="ready"] b')).to_have_text("2")
    await admin.shot("phones")

    # Filter box and sorting (JS).
    await page.fill("#phone-filter", "snom")
    await expect(page.locator("#phones tbody tr:visible")).to_have_count(1)
    await page.fill("#phone-filter", "")
    await page.click("#phones th:has-text('MAC address')")
    await page.click("#phones th:has-text('MAC address')")
    first = await page.locator("#phones tbody tr").first.get_attribute("data-mac")
    assert first == max(yealink.mac, snom.mac)

    # The lines column: the extensions; the filter finds a phone by one of them.
    await expect(row.locator("td.lines")).to_have_text("100")
    await expect(page.locator(f'tr[data-mac="{snom.mac}"] td.lines')).to_have_text("200, 201")
    await expect(row).to_contain_text("Yealink")  # the vendor's display name
    snom_type = page.locator(f'tr[data-mac="{snom.mac}"] .vendor')
    assert await snom_type.inner_text() == "snom"  # as rendered: not "Snom"
    await page.fill("#phone-filter", "201")
    await expect(page.locator("#phones tbody tr:visible")).to_have_count(1)
    await expect(page.locator("#phones tbody tr:visible")).to_have_attribute("data-mac", snom.mac)
    await page.fill("#phone-filter", "")

    inventory = admin.server.inventory
    assert inventory is not None
    # Disabling asks first: declined, nothing changes.
    asked: list[str] = []

    async def decline(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.dismiss()

    page.once("dialog", decline)
    await row.locator(".enabled-toggle").click()
    await expect(row.locator(".enabled-toggle")).to_be_checked()
    assert asked and "Disable Yealink" in asked[0] and "no longer controlled" in asked[0]
    assert inventory.get(yealink.mac).enabled is True  # type: ignore[union-attr]
    # Accepted: disabled, and the page says what happened.
    page.once("dialog", lambda dialog: dialog.accept())
    await row.locator(".enabled-toggle").click()
    await expect(row.locator(".state")).to_have_text("disabled")
    await expect(page.locator("#phone-notice")).to_contain_text(
        f"Phone {format_mac(yealink.mac)} disabled"
    )
    await admin.shot("phones-disabled")
    assert inventory.get(yealink.mac).enabled is False  # type: ignore[union-attr]
    await page.reload()
    await expect(row.locator(".enabled-toggle")).not_to_be_checked()
    await expect(page.locator('#state-counts [data-state="disabled"] b')).to_have_text("1")

    await row.locator(".enabled-toggle").check()
    await wait_until(lambda: admin.harness.state(yealink.mac) == "ready", what="re-linked")
    assert inventory.get(yealink.mac).enabled is True  # type: ignore[union-attr]
    await page.reload()
    await expect(row.locator(".state")).to_have_text("ready")


async def test_phone_page_draws_the_live_message_ladder(admin: Admin, tmp_path: Path) -> None:
    page = admin.page
    await admin.login()
    snom = admin.phones[1]
    sim = admin.harness.sims[0]
    sim.dial("100", "201")  # rings at the snom's second line (nobody answers)
    tracker = admin.server.hub.switch.calls
    assert tracker is not None
    await wait_until(lambda: bool(tracker.calls("sip:201@sim.invalid")), what="201 ringing")
    await page.goto(admin.url(f"/admin/phones/{snom.mac}"))
    # One state: the pill and what it means; no second status, no raw link state.
    await expect(page.locator("#phone-state")).to_have_text("ready")
    await expect(page.locator("#phone-reason")).to_have_text("registered and under control")
    details = page.locator("dl.details")
    await expect(details).not_to_contain_text("Status")
    await expect(details).not_to_contain_text("CSTA link")
    await expect(page.locator("h1")).to_contain_text("snom")
    lines = page.locator(".card").filter(has_text="Lines")
    await expect(lines).to_contain_text("sip:201@sim.invalid")
    await expect(page.locator('a[href*="/api/v1/"]')).to_have_count(0)
    # The line's current call, from the call tracker, in plain words.
    call = page.locator("#phone-calls tbody tr")  # (server-rendered, then kept live)
    await expect(call).to_have_count(1)
    await expect(call).to_contain_text("201")
    await expect(call).to_contain_text("Ringing")
    await expect(call).to_contain_text("100")

    ladder = page.locator("#ladder-body")
    await expect(ladder.locator(".msg.out.sip").filter(has_text="INVITE").first).to_be_visible()
    await expect(ladder.locator(".msg.sip").filter(has_text="INFO").first).to_be_visible()
    await expect(ladder.locator(".msg.csta").first).to_be_visible()
    # Full messages are kept from the moment someone watches the trace (this page): the
    # call is answered, and the phone's INFO with its event opens to the whole message.
    assert sim.answer("201")
    await expect(call.locator(".call-state")).to_have_text("Connected")
    info = ladder.locator(".msg.in.sip").filter(has_text="INFO sip:").last
    await expect(info).to_be_visible()
    await info.locator("summary").click()
    full = info.locator("pre.full")
    await expect(full).to_be_visible()
    await expect(full).to_contain_text("Call-ID:")
    await expect(full).to_contain_text("<?xml")
    csta = ladder.locator(".msg.csta").last
    await csta.locator("summary").click()
    await expect(csta.locator("pre.full")).to_contain_text("xmlns")
    # Live: a new trace entry appears without reloading; the opened row stays open.
    before = await ladder.locator(".msg").count()
    assert admin.server.phones is not None
    admin.server.phones.traces[snom.mac].add("in", "csta", "ProbeFromTheTest", "<Probe/>")
    probe = ladder.locator(".msg.in.csta").filter(has_text="ProbeFromTheTest")
    await expect(probe).to_be_visible(timeout=5000)
    assert await ladder.locator(".msg").count() >= min(before + 1, 200)
    await expect(ladder.locator("details.msg[open]")).to_have_count(2)
    await admin.shot("phone")

    # The trace as a text file.
    async with page.expect_download() as download_info:
        await page.click("#trace-download")
    download = await download_info.value
    assert download.suggested_filename.startswith(f"trace-{snom.mac}-")
    saved = tmp_path / "trace.txt"
    await download.save_as(saved)
    text = saved.read_text()
    assert "phone -> uacsta CSTA ProbeFromTheTest" in text and "<Probe/>" in text
    assert "INVITE sip:" in text and "Call-ID:" in text
    sim.hangup("100")

    # Disabling from the phone's page asks too, and the page says what happened.
    asked: list[str] = []

    async def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await page.click("form[action$='/enabled'] button[type=submit]")
    await expect(page.locator(".flash.ok")).to_contain_text("disabled: its CSTA link was closed")
    await expect(page.locator("#phone-state")).to_have_text("disabled")
    assert asked and asked[0].startswith("Disable snom")


async def test_a_setting_is_saved_validated_and_survives_a_restart(admin: Admin) -> None:
    page = admin.page
    await admin.login()
    await page.goto(admin.url("/admin/settings"))
    await admin.shot("settings")
    form = page.locator("#form-advanced")
    await form.locator("input[name=keepalive_interval]").fill("45")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash.ok")).to_contain_text("phones.keepalive_interval")
    assert admin.server.settings.phones.keepalive_interval == 45

    # Refused: the error names the field's label, stands at the field, and the form keeps
    # what was typed (in every field of the section); nothing changes.
    form = page.locator("#form-advanced")
    await form.locator("input[name=registration_expires]").evaluate("e => e.min = ''")
    await form.locator("input[name=registration_expires]").fill("10")
    await form.locator("input[name=block_time]").fill("77")
    await form.locator("button[type=submit]").click()
    error = page.locator('[data-error="advanced"][data-field="registration_expires"]')
    await expect(error).to_contain_text("SIP expiration time: must be at least 30")
    await expect(error).to_contain_text("phones.registration_expires")
    field = page.locator("#form-advanced input[name=registration_expires]")
    assert await field.input_value() == "10"
    assert await field.get_attribute("aria-invalid") == "true"
    assert await page.locator("#form-advanced input[name=block_time]").input_value() == "77"
    # The message is inside the field's own label, not at the top of the page.
    at_field = "#form-advanced label:has(input[name=registration_expires]) .field-error"
    await expect(page.locator(at_field)).to_have_count(1)
    await admin.shot("settings-error")
    assert admin.server.settings.phones.registration_expires == 300
    assert admin.server.settings.phones.block_time != 77
    # A setting of another section is refused at its own field too (a text area here).
    await page.goto(admin.url("/admin/settings"))
    form = page.locator("#form-phones")
    listen = form.locator("textarea[name=listen]")
    typed = (await listen.input_value()) + "\nbogus"
    await listen.fill(typed)
    await form.locator("button[type=submit]").click()
    await expect(page.locator('[data-error="phones"][data-field="listen"]')).to_contain_text(
        "Listen addresses: 'bogus'"
    )
    assert await page.locator("#form-phones textarea[name=listen]").input_value() == typed

    # A client account added in the client connection section.
    form = page.locator("#form-clients")
    await form.locator("input[name=new_account_name]").fill("tapi")
    await form.locator("input[name=new_account_password]").fill("tapi-secret")
    await form.locator("input[name=new_account_devices]").fill("100, 200")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash.ok")).to_contain_text("clients.accounts")
    assert admin.server.accounts.authenticate("tapi", "tapi-secret")
    assert admin.server.accounts.authenticate("crm", "crm-secret")  # kept unchanged

    server = await admin.restart_server()
    assert server.settings.phones.keepalive_interval == 45
    assert server.accounts.allowed_devices("tapi") == ("100", "200")
    await admin.login()  # sessions survive (same key), but the server moved to a new port
    await page.goto(admin.url("/admin/settings"))
    value = await page.locator("#form-advanced input[name=keepalive_interval]").input_value()
    assert value == "45"


async def test_status_page_shows_listeners_counts_and_warnings(admin: Admin) -> None:
    page = admin.page
    await admin.login("bad-password")  # a warning for the recent errors list
    await admin.login()
    await page.goto(admin.url("/admin/status"))
    await expect(page.locator("#listeners")).to_contain_text("phones udp:127.0.0.1:")
    await expect(page.locator("#tile-phones")).to_contain_text("2 ready")
    await expect(page.locator(".log-table")).to_contain_text("admin login failed")
    await admin.shot("status")


async def test_diagnostics_level_filter_view_and_download(admin: Admin, tmp_path) -> None:
    page = admin.page
    await admin.login()
    await page.goto(admin.url("/admin/diagnostics"))
    yealink = admin.phones[0]
    form = page.locator("#form-log")
    await form.locator("select[name=level]").select_option("INFO")
    await form.locator("input[name=directory]").fill(str(tmp_path / "logs"))
    await form.locator("input[name=mac_filter]").fill(format_mac(yealink.mac))
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash.ok")).to_contain_text("Log level INFO")
    assert admin.server.settings.log.level == "INFO"
    assert admin.server.settings.log.mac_filter == [yealink.mac]
    assert logging.getLogger("uacsta").level == logging.INFO
    # Bad MAC: refused and named.
    await page.locator("#form-log input[name=mac_filter]").fill("AABBCCDDEEFF, not-a-mac")
    await page.locator("#form-log button[type=submit]").click()
    await expect(page.locator('[data-error="log"]')).to_contain_text("not-a-mac")

    # The file gets only records mentioning the filtered phone.
    logging.getLogger("uacsta.test").info("about %s and more", yealink.mac)
    logging.getLogger("uacsta.test").info("about nobody")
    text = (tmp_path / "logs" / "uacsta.log").read_text()
    assert yealink.mac in text and "about nobody" not in text

    await page.goto(admin.url("/admin/diagnostics?level=INFO&lines=500&q=about"))
    await expect(page.locator("#log-view")).to_contain_text("about nobody")
    await page.goto(admin.url("/admin/diagnostics?level=INFO&lines=500&q=about&mac=1"))
    await expect(page.locator("#log-view")).not_to_contain_text("about nobody")
    await expect(page.locator("#log-view")).to_contain_text(f"about {yealink.mac}")
    await page.goto(admin.url("/admin/diagnostics"))
    await admin.shot("diagnostics")
    async with page.expect_download() as info:
        await page.click("#log-download")
    download = await info.value
    assert re.fullmatch(r"uacsta-\d{8}-\d{6}\.log", download.suggested_filename)
    saved = tmp_path / "download.log"
    await download.save_as(saved)
    content = saved.read_text()
    assert "settings changed in the admin" in content and "log.level" in content


async def test_users_and_api_tokens(admin: Admin) -> None:
    page = admin.page
    await admin.login()
    await page.goto(admin.url("/admin/users"))
    form = page.locator("#form-user")
    await form.locator("input[name=extension]").fill("100")
    await form.locator("input[name=password]").fill("user-pass-100")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#users")).to_contain_text("100")
    store = admin.server.store
    assert store is not None
    assert store.get_user("100")["role"] == "user"  # type: ignore[index]
    await admin.shot("users")

    # The admin password: wrong current password refused, then changed.
    form = page.locator("#form-password")
    await form.locator("input[name=current]").fill("wrong-current")
    await form.locator("input[name=new]").fill("new-admin-pass")
    await form.locator("input[name=confirm]").fill("new-admin-pass")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#users-error")).to_contain_text("current password is wrong")
    form = page.locator("#form-password")
    await form.locator("input[name=current]").fill(ADMIN_PASSWORD)
    await form.locator("input[name=new]").fill("new-admin-pass")
    await form.locator("input[name=confirm]").fill("new-admin-pass")
    await form.locator("button[type=submit]").click()
    await expect(page.locator(".flash.ok")).to_contain_text("password was changed")

    # API tokens: created and shown once, usable, listed, deleted.
    await page.goto(admin.url("/admin/tokens"))
    await page.fill("#form-token input[name=name]", "crm-integration")
    await page.click("#form-token button[type=submit]")
    token = await page.locator("#token-value").input_value()
    assert token.startswith("uac_")
    await expect(page.locator("#tokens")).to_contain_text("crm-integration")
    await admin.shot("tokens")
    await page.goto(admin.url("/admin/tokens"))
    await expect(page.locator("#new-token")).to_have_count(0)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.locator("#tokens button.danger").click()
    await expect(page.locator("#tokens")).to_contain_text("No API tokens")
    assert store.list_tokens() == []

    # A web-client user cannot use the admin, and the answer does not confirm the password.
    await page.click(".logout button")
    await page.fill("input[name=name]", "100")
    await page.fill("input[name=password]", "user-pass-100")
    await page.click("button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("Wrong user name or password")


def test_log_file_rotates_by_size_and_is_deleted_daily(tmp_path: Path) -> None:
    handler = logbuffer.DailyRotatingFileHandler(tmp_path / "uacsta.log", 400, delete_daily=True)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(logbuffer.MacFilter(["00:15:65:AA:BB:CC"]))
    logger = logging.getLogger("uacsta.test.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(30):
            logger.warning("phone 001565AABBCC message %d %s", i, "x" * 20)
            logger.warning("phone 001565DDEEFF message %d", i)  # not in the filter
        files = sorted(p.name for p in tmp_path.iterdir())
        assert "uacsta.log.1" in files and "uacsta.log" in files
        assert all("DDEEFF" not in (tmp_path / f).read_text() for f in files)
        handler.day = dt.date.today() - dt.timedelta(days=1)  # a new day begins
        logger.warning("first of the day about 00-15-65-aa-bb-cc")
        assert [p.name for p in tmp_path.iterdir()] == ["uacsta.log"]
        assert (tmp_path / "uacsta.log").read_text() == "first of the day about 00-15-65-aa-bb-cc\n"
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.propagate = True


async def test_pages_run_under_the_content_security_policy(admin: Admin) -> None:
    """Every admin page loads and runs with the CSP the server sends: no violation reported."""
    page = admin.page
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    await page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "(window.__csp = window.__csp || []).push(e.violatedDirective + ' ' + e.blockedURI))"
    )
    await admin.login()
    mac = admin.phones[0].mac
    pages = [p for p in ADMIN_GETS if not p.endswith(".txt")]
    for path in (*pages, f"/admin/phones/{mac}", "/admin/provisioning"):
        response = await page.goto(admin.url(path))
        assert response is not None and response.status == 200, path
        assert "frame-ancestors 'none'" in (await response.all_headers())["content-security-policy"]
        await page.wait_for_load_state("load")
        assert await page.evaluate("window.__csp || []") == [], path
    # The phones page's script runs (its filter box hides the rows that do not match).
    await page.goto(admin.url("/admin/"))
    await page.fill("#phone-filter", format_mac(mac))
    await expect(page.locator("#phones tbody tr:visible")).to_have_count(1)
    assert violations == []
