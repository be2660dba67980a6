"""The async SDK (:mod:`uacsta.client`) against the real server with simulated phones: make a
call, see it ring on the event iterator, answer, list, clear, read the journal; errors."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.e2e.conftest import Harness
from tests.web.conftest import A, Api, B, start_api
from uacsta.client import Client, Event, EventStream, UacstaError
from uacsta.switch.function import SWITCH


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    harness = Harness(tmp_path)
    try:
        running = await start_api(harness)
        try:
            yield running
        finally:
            await running.client.aclose()
    finally:
        for sim in harness.sims:
            await sim.close()
        await harness.stop_server()


async def next_notice(events: EventStream, kind: str, line: str) -> Event:
    async with asyncio.timeout(5):
        async for event in events:
            if event.type == kind and event.line == line:
                return event
    raise AssertionError(f"the event stream ended before {kind} on {line}")


async def test_call_lifecycle_events_and_journal(api: Api) -> None:
    async with Client(api.base, api.token) as client:
        devices = await client.devices()
        assert {d["device"] for d in devices} == {A, B}
        async with client.events(["100", "200"]) as events:
            made = await client.make_call("100", "200")
            assert made.device_id == A and made.call_id
            ringing = await next_notice(events, "call.ringing", B)
            assert ringing.remote_number == "100" and ringing.data["direction"] == "incoming"
            call_id = ringing.call_id
            assert call_id is not None

            current = await client.calls("200")
            assert [(c.call_id, c.state, c.direction) for c in current] == [
                (call_id, "alerting", "incoming")
            ]
            await client.answer("200", call_id)
            await next_notice(events, "call.answered", B)
            assert [c.state for c in await client.calls("200")] == ["connected"]

            await client.clear("200", call_id)
            ended = await next_notice(events, "call.ended", B)
            assert ended.call is not None and ended.call["outcome"] == "answered"
            await events.unsubscribe("100")
        assert await client.calls("200") == []

        page = await client.journal(line="200", limit=1)
        assert [item["outcome"] for item in page.items] == ["answered"]
        everything = [item async for item in client.journal_entries(limit=1)]
        assert {item["line"] for item in everything} == {A, B}
        assert (await client.journal(line="100", outcome="missed")).items == []


async def test_errors_carry_the_api_text_and_the_csta_error(api: Api) -> None:
    async with Client(api.base, api.token) as client:
        with pytest.raises(UacstaError) as unknown:
            await client.make_call("999", "200")
        assert unknown.value.status == 404
        assert unknown.value.error == "unknown device '999': no phone has this line"
        assert str(unknown.value) == unknown.value.error

        with pytest.raises(UacstaError) as refused:
            await client.answer("200", "no-such-call")
        assert refused.value.status is not None and refused.value.status >= 400
        assert refused.value.error.startswith("AnswerCall failed")

        with pytest.raises(UacstaError) as bad_subscription:
            async with client.events(["999"]):
                pass
        assert bad_subscription.value.error.startswith("MonitorStart failed: unknown device")
        assert bad_subscription.value.csta_error == {
            "category": "operation",
            "value": "invalidDeviceID",
        }

    async with Client(api.base, "uac_wrong") as stranger:
        with pytest.raises(UacstaError) as denied:
            await stranger.devices()
        assert denied.value.status == 401 and "authentication" in denied.value.error
        with pytest.raises(UacstaError) as ws_denied:
            async with stranger.events():
                pass
        assert ws_denied.value.status == 403

    async with Client("http://127.0.0.1:9", api.token) as nowhere:
        with pytest.raises(UacstaError) as unreachable:
            await nowhere.status()
        assert unreachable.value.status is None and "cannot reach" in unreachable.value.error


async def test_dnd_and_forwarding(api: Api) -> None:
    async with Client(api.base, api.token) as client:
        await client.set_dnd("200", True)
        assert await client.dnd("200") is True
        await client.set_dnd("200", False)
        await client.set_forwarding("200", True, "300")
        assert any(f["on"] and f["to"] == "300" for f in await client.forwarding("200"))
        await client.set_forwarding("200", False)


async def test_the_crm_connector_example_pops_and_logs_missed_calls(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(__file__).parents[1] / "examples" / "crm_connector.py"
    spec = importlib.util.spec_from_file_location("crm_connector", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    pops: list[tuple[str, str]] = []
    missed: list[dict[str, Any]] = []
    monkeypatch.setattr(example, "popup", lambda line, text: pops.append((line, text)))
    monkeypatch.setattr(example, "missed", missed.append)

    connector = asyncio.create_task(example.run(api.base, api.token, ["200"], time.time()))
    try:
        async with asyncio.timeout(5):
            monitors = api.server.hub.switch.monitors.client_monitors
            while not any(m.client is not SWITCH for m in monitors.values()):
                assert not connector.done()
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # the connector's subscription is answered
            made = await api.client.post("/api/v1/devices/100/calls", json={"to": "200"})
            assert made.status_code == 201, made.text
            while not pops:
                await asyncio.sleep(0.05)
            assert pops == [(B, "incoming call from 100")]
            call_id = made.json()["call_id"]
            cleared = await api.client.post(f"/api/v1/devices/100/calls/{call_id}/clear")
            assert cleared.status_code == 200, cleared.text
            while not missed:
                await asyncio.sleep(0.05)
        assert missed[0]["line"] == B and missed[0]["outcome"] == "missed"
    finally:
        connector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connector


@pytest.mark.parametrize(("code", "fails"), [(1000, False), (1013, True)])
async def test_event_stream_yields_what_came_then_ends_or_says_why(code: int, fails: bool) -> None:
    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        assert ws.request.headers["Authorization"] == "Bearer uac_t"
        for n in range(3):
            await ws.send(
                json.dumps({"type": "call.ringing", "line": "sip:100@pbx", "call_id": str(n)})
            )
        await ws.close(code, "too slow: the event queue overflowed")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = Client(f"http://127.0.0.1:{port}", "uac_t")
        async with client, client.events(max_queue=1) as events:
            seen: list[Event] = []
            if fails:
                with pytest.raises(UacstaError) as closed:
                    async for event in events:
                        seen.append(event)
                assert closed.value.error == (
                    "the event WebSocket was closed: too slow: the event queue overflowed "
                    "(code 1013)"
                )
            else:
                seen = [event async for event in events]
            assert [e.call_id for e in seen] == ["0", "1", "2"]
            with pytest.raises(StopAsyncIteration if not fails else UacstaError):
                await events.next(1)
