"""Calls for applications without CSTA knowledge: normalized notices on the WebSocket, the
current calls of a line over REST, and SnapshotCall answered by the server for a phone that
lacks it (snom: estos manual, SnapshotCall not supported). Real server, simulated phones."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import connect

from tests.e2e.conftest import Harness
from tests.web.conftest import A, Api, B, start_api


async def next_of(ws: Any, kind: str, line: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """The message ``{"type": kind, "line": line}``, already received or the next such one
    (5 s at most); ``seen`` keeps everything received (the two lines' notices interleave)."""
    for message in seen:
        if message.get("type") == kind and message.get("line") == line:
            return message
    async with asyncio.timeout(5):
        while True:
            message = json.loads(await ws.recv())
            seen.append(message)
            if message.get("type") == kind and message.get("line") == line:
                return message


async def test_websocket_carries_call_notices_for_subscribed_lines(api: Api) -> None:
    seen: list[dict[str, Any]] = []
    async with connect(f"{api.ws_base}/api/v1/events?token={api.token}") as ws:
        await ws.send(json.dumps({"subscribe": ["100", "200"]}))
        r = await api.client.post("/api/v1/devices/100/calls", json={"to": "200"})
        assert r.status_code == 201, r.text
        dialing = await next_of(ws, "call.dialing", A, seen)
        assert dialing["direction"] == "outgoing" and dialing["remote_number"] == "200"
        ringing = await next_of(ws, "call.ringing", B, seen)
        assert ringing["direction"] == "incoming" and ringing["remote_number"] == "100"
        b_call = ringing["call_id"]

        listed = (await api.client.get("/api/v1/devices/200/calls")).json()
        assert [(c["call_id"], c["state"], c["direction"]) for c in listed] == [
            (b_call, "alerting", "incoming")
        ]
        assert listed[0]["internal"] is True and listed[0]["answered"] is None

        path = f"/api/v1/devices/200/calls/{quote(b_call, safe='')}"
        assert (await api.client.post(f"{path}/answer")).status_code == 200
        answered = await next_of(ws, "call.answered", B, seen)
        assert answered["call_id"] == b_call
        # snom has no SnapshotCall: the server answers from the calls it tracks.
        snapshot = await api.client.get(path)
        assert snapshot.status_code == 200, snapshot.text
        devices = snapshot.json()["devices"]
        assert devices and all(d["call_id"] == b_call for d in devices)

        assert (await api.client.post(f"{path}/clear")).status_code == 200
        ended = await next_of(ws, "call.ended", B, seen)
        assert ended["call"]["outcome"] == "answered" and ended["call"]["line"] == B
        assert ended["call"]["talk_seconds"] >= 0
        await next_of(ws, "call.ended", A, seen)
        assert (await api.client.get("/api/v1/devices/200/calls")).json() == []
    # One notice per happening: no duplicates of any type for a line.
    kinds = [(m["type"], m["line"]) for m in seen if m.get("type", "").startswith("call.")]
    assert len(kinds) == len(set(kinds)), kinds
    # The journal has the call on both lines.
    journal = (await api.client.get("/api/v1/journal", params={"line": "200"})).json()
    assert [item["outcome"] for item in journal["items"]] == ["answered"]


async def test_refused_service_names_the_phone_and_why_when_the_line_is_not_watched(
    tmp_path: Path,
) -> None:
    """Without the server's own monitors (journal off) and no client monitoring the line,
    a snapshot the phone lacks cannot be answered from tracked calls: the refusal names the
    service, the phone and why."""
    harness = Harness(tmp_path)
    original = harness.start_server

    async def without_journal(**kwargs: Any) -> Any:
        return await original(journal=False, **kwargs)

    harness.start_server = without_journal  # type: ignore[method-assign]
    api = await start_api(harness)
    try:
        r = await api.client.get("/api/v1/devices/100/calls/1")
        assert r.status_code == 501
        yealink = api.phones[0].mac
        assert r.json() == {
            "error": f"SnapshotCall failed: the phone of {A} does not support SnapshotCall",
            "csta_error": {"category": "operation", "value": "serviceNotSupported"},
            "detail": f"Yealink phone {yealink}: SnapshotCall is not implemented by the "
            "Yealink firmware (it answers <unspecified/> to it)",
        }
    finally:
        await api.client.aclose()
        for sim in harness.sims:
            await sim.close()
        await harness.stop_server()
