"""The call journal in headless Chromium: the admin's journal page (filters, plain-words
outcomes, pages, CSV link) and the web client's history (missed calls marked, call back in
one click, which rings the other phone). Records are written by hand through the journal."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.browser.conftest import ARTIFACTS, Admin
from tests.e2e.conftest import wait_until
from uacsta.csta.types import LocalConnectionState
from uacsta.switch.callrecord import CallRecord, Direction, Outcome
from uacsta.web.auth import Auth

LINE = "sip:100@sim.invalid"
USER_PASSWORD = "user-100-secret"


def rec(n: int, started: float, **changes: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "id": f"b{n:03d}",
        "line": LINE,
        "phone": "001565000001",
        "call_id": f"c{n}",
        "direction": Direction.OUTGOING,
        "remote_number": f"5{n:03d}",
        "started": started,
        "answered": started + 3,
        "ended": started + 3 + 125,
        "outcome": Outcome.ANSWERED,
    }
    fields.update(changes)
    return CallRecord(**fields)


def fill(admin: Admin) -> None:
    journal = admin.server.journal
    assert journal is not None
    now = 1_796_119_200.0  # 2026-12-01 10:00 UTC
    for n in range(53):  # more than a page of the admin's table (50)
        journal.add(rec(n, now - 3600 * (60 - n)))
    journal.add(
        rec(
            60,
            now - 120,
            direction=Direction.INCOMING,
            remote_number="200",
            remote_name="Reception",
            answered=None,
            ended=now - 100,
            outcome=Outcome.MISSED,
        )
    )
    journal.add(
        rec(61, now - 60, direction=Direction.INCOMING, outcome=Outcome.FORWARDED, target="300")
    )


async def test_admin_journal_page(admin: Admin) -> None:
    fill(admin)
    page = admin.page
    await admin.login()
    await page.click("nav.mainnav a[href='/admin/journal']")
    await expect(page.locator("h1")).to_contain_text("Call journal")
    rows = page.locator("#journal tbody tr")
    await expect(rows).to_have_count(50)
    first = rows.nth(0)
    await expect(first).to_have_attribute("data-id", "b061")
    await expect(first.locator("td.outcome")).to_have_text("Forwarded to 300")
    missed = page.locator("#journal tr[data-id=b060]")
    await expect(missed.locator("td.outcome")).to_have_text("Missed")
    await expect(missed).to_contain_text("Reception")
    await expect(missed.locator("td").nth(6)).to_have_text("20 s")  # rang 20 s
    await expect(page.locator("#journal tr[data-id=b052] td").nth(7)).to_have_text("2 min 05 s")
    await admin.shot("journal")
    # The next page holds the rest.
    await page.click("#journal-older")
    await expect(rows).to_have_count(5)
    await expect(page.locator("#journal-older")).to_have_count(0)
    await page.click("#journal-newest")
    await expect(rows).to_have_count(50)
    # Filters: missed calls only; the CSV link carries the filter.
    await page.select_option("select[name=outcome]", "missed")
    await page.click("#journal-filter button[type=submit]")
    await expect(rows).to_have_count(1)
    await expect(rows.nth(0)).to_have_attribute("data-id", "b060")
    href = await page.get_attribute("#journal-csv", "href")
    assert href == "/api/v1/journal.csv?outcome=missed"
    response = await page.context.request.get(admin.url(href))
    assert response.status == 200
    text = await response.text()
    assert text.splitlines()[1].startswith("b060,")
    await page.fill("input[name=remote]", "nothing-like-this")
    await page.click("#journal-filter button[type=submit]")
    await expect(page.locator("#journal tr.empty")).to_contain_text("No calls match")


async def test_web_client_history_marks_missed_calls_and_calls_back(
    admin: Admin, browser: Any
) -> None:
    fill(admin)
    assert admin.server.store is not None
    Auth(admin.server.store).set_password("100", USER_PASSWORD, role="user", extension="100")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(admin.url("/client/login"))
        await page.fill("input[name=extension]", "100")
        await page.fill("input[name=password]", USER_PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/client/")
        items = page.locator("#history li.hist")
        await expect(items).to_have_count(25)  # the newest page
        await expect(page.locator("#missed-count")).to_have_text("1 missed")
        missed = page.locator("#history li.hist.missed")
        await expect(missed).to_have_count(1)
        await expect(missed).to_have_attribute("data-id", "b060")
        await expect(missed.locator(".outcome")).to_have_text("Missed")
        await expect(missed.locator(".party")).to_contain_text("Reception")
        await expect(items.nth(0).locator(".outcome")).to_have_text("Forwarded to 300")
        await expect(page.locator("#history li[data-id=b052] .length")).to_have_text("2 min 05 s")
        await page.wait_for_selector("#line-status.status-ready")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "webclient-history.png"), full_page=True)
        # Older calls on demand.
        await page.click("#history-more")
        await expect(items).to_have_count(50)
        # Call back in one click: extension 200 rings.
        callee = admin.phones[1]
        await missed.locator("button.act-callback").click()
        await wait_until(
            lambda: LocalConnectionState.ALERTING in [leg.state for leg in callee.phone.legs()],
            what="200 ringing",
        )
        await page.wait_for_selector("li.call")
        await page.click("li.call .act-clear")
        await page.wait_for_selector("#no-calls:not([hidden])")
        assert errors == []
    finally:
        await context.close()
