"""The webhook admin pages in headless Chromium: add an endpoint pointing at a real HTTP
receiver (tests/journal/receiver.py, which checks signatures the documented way), send a
test event, see it delivered on the endpoint's page, disable and delete it."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import Admin
from tests.e2e.conftest import wait_until
from tests.journal.receiver import Receiver

SECRET = "browser-test-secret-0123456789"


async def test_admin_adds_an_endpoint_sends_a_test_and_sees_the_delivery(admin: Admin) -> None:
    receiver = await Receiver(secret=SECRET).start()
    try:
        page = admin.page
        await admin.login()
        await page.click("nav.mainnav a[href='/admin/webhooks']")
        await expect(page.locator("h1")).to_contain_text("Webhooks")
        await expect(page.locator("#webhooks tbody tr.empty")).to_have_count(1)
        form = page.locator("#form-webhook")
        await form.locator("input[name=url]").fill(receiver.url)
        await form.locator("input[name=events][value='call.missed']").check()
        await form.locator("input[name=events][value='phone.offline']").check()
        await form.locator("input[name=secret]").fill(SECRET)
        await form.locator("button[type=submit]").click()

        # The endpoint's page: its secret to copy, no deliveries yet.
        await expect(page.locator("#webhook-state")).to_have_text("enabled")
        await expect(page.locator("#webhook-secret")).to_have_value(SECRET)
        await expect(page.locator("#deliveries tbody tr.empty")).to_have_count(1)
        await page.locator("#form-webhook-test button").click()
        await wait_until(lambda: len(receiver.requests) == 1, 10.0, "the test event")
        (got,) = receiver.requests
        assert got.valid and got.json["type"] == "webhook.test"
        await page.reload()
        delivered = page.locator("#deliveries tbody tr.delivery-delivered")
        await expect(delivered).to_have_count(1)
        await expect(delivered).to_contain_text(got.delivery)
        await admin.shot("admin-webhook")

        await page.click("text=Disable")
        await expect(page.locator("#webhook-state")).to_have_text("disabled")
        page.once("dialog", lambda dialog: dialog.accept())
        await page.click("button.danger")
        await expect(page.locator("h1")).to_contain_text("Webhooks")
        await expect(page.locator("#webhooks tbody tr.empty")).to_have_count(1)
    finally:
        await receiver.stop()
