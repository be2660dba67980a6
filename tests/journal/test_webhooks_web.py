"""The webhook management API, the admin pages and the OpenAPI ``webhooks`` section, on the
real server (no phones needed) with a real receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Harness
from tests.journal.receiver import Receiver, eventually, wait_until
from tests.web.conftest import CSRF, Api
from uacsta.journal.webhooks import EVENT_TYPES, TEST_EVENT
from uacsta.web.auth import Auth


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    harness = Harness(tmp_path)
    server = await harness.start_server()
    assert server.store is not None
    _id, token = Auth(server.store).create_token("tests")
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=15.0,
    )
    running = Api(harness, server, [], client, token)
    try:
        yield running
    finally:
        for c in [client, *running.extra]:
            await c.aclose()
        await harness.stop_server()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def test_api_crud_test_and_deliveries(api: Api, receiver: Receiver) -> None:
    c = api.client
    bad = await c.post("/api/v1/webhooks", json={"url": "ftp://x/", "events": ["call.missed"]})
    assert bad.status_code == 422 and "http" in bad.json()["error"]
    unknown = await c.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["nope"]})
    assert unknown.status_code == 422

    created = await c.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "events": ["call.missed", "call.ended"], "lines": ["100"]},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    secret, endpoint_id = body["secret"], body["id"]
    assert len(secret) >= 43 and body["lines"] == ["100"] and body["pending"] == 0
    receiver.secret = secret

    listed = (await c.get("/api/v1/webhooks")).json()
    assert [e["id"] for e in listed] == [endpoint_id]
    assert "secret" not in listed[0]  # shown once, at creation
    assert "secret" not in (await c.get(f"/api/v1/webhooks/{endpoint_id}")).json()

    patched = await c.patch(f"/api/v1/webhooks/{endpoint_id}", json={"lines": [], "enabled": False})
    assert patched.status_code == 200
    assert patched.json()["lines"] is None and patched.json()["enabled"] is False

    queued = await c.post(f"/api/v1/webhooks/{endpoint_id}/test")
    assert queued.status_code == 202
    delivery = queued.json()["delivery"]
    await wait_until(lambda: receiver.deliveries() == [delivery], what="the test event")
    got = receiver.requests[0]
    assert got.valid and got.json["type"] == TEST_EVENT

    rows: list[dict[str, object]] = []

    async def delivered() -> bool:
        nonlocal rows
        answer = await c.get(f"/api/v1/webhooks/{endpoint_id}/deliveries")
        assert answer.status_code == 200
        rows = answer.json()
        return bool(rows) and rows[0]["state"] == "delivered"

    await eventually(delivered, what="the delivery marked")
    assert rows[0]["id"] == delivery and rows[0]["attempts"] == 1 and rows[0]["last_status"] == 200

    assert (await c.post("/api/v1/webhooks/nope/test")).status_code == 404
    assert (await c.delete(f"/api/v1/webhooks/{endpoint_id}")).status_code == 204
    assert (await c.delete(f"/api/v1/webhooks/{endpoint_id}")).status_code == 404
    assert (await c.get("/api/v1/webhooks")).json() == []


async def test_api_needs_admin_scope(api: Api) -> None:
    assert api.server.store is not None
    _id, read_only = Auth(api.server.store).create_token("ro", scopes={"read", "control"})
    client = api.http(token=read_only)
    assert (await client.get("/api/v1/webhooks")).status_code == 403
    anonymous = httpx.AsyncClient(base_url=api.base)
    api.extra.append(anonymous)
    assert (await anonymous.get("/api/v1/webhooks")).status_code == 401


async def test_openapi_describes_every_event(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    described = document["webhooks"]
    assert set(described) == {*EVENT_TYPES, TEST_EVENT}
    schema = described["call.missed"]["post"]["requestBody"]["content"]["application/json"]
    assert schema["schema"]["$ref"].endswith("/WebhookPayload")
    payload = document["components"]["schemas"]["WebhookPayload"]
    assert {"id", "event_id", "type", "created", "data"} <= set(payload["properties"])


async def test_admin_pages(api: Api, receiver: Receiver) -> None:
    admin = api.http(user="admin")
    page = await admin.get("/admin/webhooks")
    assert page.status_code == 200 and 'href="/admin/webhooks"' in page.text
    assert "call.forwarding" not in page.text and "forwarding.changed" in page.text

    refused = await admin.post(
        "/admin/webhooks", data={"csrf": CSRF, "url": "gopher://x/", "events": "call.missed"}
    )
    assert refused.status_code == 422 and "http://" in refused.text
    no_csrf = await admin.post("/admin/webhooks", data={"url": receiver.url})
    assert no_csrf.status_code in (400, 403)

    added = await admin.post(
        "/admin/webhooks",
        data={
            "csrf": CSRF,
            "url": receiver.url,
            "events": ["call.missed", "dnd.changed"],
            "lines": "100, 101",
            "description": "crm",
        },
    )
    assert added.status_code == 303
    location = added.headers["location"]
    endpoint_id = location.rsplit("/", 1)[1]
    endpoint = api.server.webhooks.endpoint(endpoint_id) if api.server.webhooks else None
    assert endpoint is not None and endpoint.lines == {"100", "101"}
    assert endpoint.events == {"call.missed", "dnd.changed"}
    receiver.secret = endpoint.secret

    detail = await admin.get(location)
    assert detail.status_code == 200 and endpoint.secret in detail.text
    assert "No deliveries yet." in detail.text

    sent = await admin.post(f"{location}/test", data={"csrf": CSRF})
    assert sent.status_code == 303
    await wait_until(lambda: len(receiver.requests) == 1, what="the test event")
    assert receiver.requests[0].valid

    async def shows_delivered() -> bool:
        return "delivery-delivered" in (await admin.get(location)).text

    await eventually(shows_delivered, what="the delivery on the page")

    off = await admin.post(f"{location}/enabled", data={"csrf": CSRF, "enabled": "0"})
    assert off.status_code == 303
    endpoint = api.server.webhooks.endpoint(endpoint_id) if api.server.webhooks else None
    assert endpoint is not None and not endpoint.enabled
    gone = await admin.post(f"{location}/delete", data={"csrf": CSRF})
    assert gone.status_code == 303
    assert (await admin.get(location)).status_code == 404
