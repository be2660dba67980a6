"""The JSON API over real HTTP and WebSocket against the server and simulated phones."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import wait_until
from tests.web.conftest import A, Api, B
from uacsta.csta import messages as m
from uacsta.gateways.json import client as api_module
from uacsta.gateways.json.events import EventSocket
from uacsta.switch.function import ToClient


def _app(api: Api) -> FastAPI:
    assert api.server.http is not None
    app = api.server.http.config.app
    assert isinstance(app, FastAPI)
    return app


def _walk(routes: list[Any]) -> list[Any]:
    """Every route, through included routers (kept as wrappers by newer FastAPI)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += _walk(inner.routes) if inner is not None else [route]
    return out


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


# --- authentication -----------------------------------------------------------------------------


async def test_every_route_needs_authentication(api: Api) -> None:
    routes = [r for r in _walk(_app(api).routes) if r.path.startswith("/api/v1")]
    http_routes = [r for r in routes if isinstance(r, APIRoute)]
    assert len(http_routes) >= 25
    async with httpx.AsyncClient(base_url=api.base) as anonymous:
        for route in http_routes:
            for method in route.methods:
                for headers in ({}, {"Authorization": "Bearer uac_wrong"}):
                    r = await anonymous.request(
                        method, _fill(route.path), headers=headers, json={"x": 1}
                    )
                    assert r.status_code == 401, (method, route.path, r.text)
                    assert r.json()["error"].startswith("authentication required: ")
    ws_routes = [r for r in routes if isinstance(r, APIWebSocketRoute)]
    assert [r.path for r in ws_routes] == ["/api/v1/events"]
    for suffix in ("", "?token=uac_wrong"):
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{api.ws_base}/api/v1/events{suffix}"):
                pass
        assert info.value.response.status_code == 403


async def test_tokens_create_list_delete(api: Api) -> None:
    r = await api.client.post("/api/v1/tokens", json={"name": "crm"})
    assert r.status_code == 201
    created = r.json()
    assert created["name"] == "crm" and created["token"].startswith("uac_")
    crm = api.http(token=created["token"])
    assert (await crm.get("/api/v1/status")).status_code == 200
    listed = (await api.client.get("/api/v1/tokens")).json()
    assert {"id": created["id"], "name": "crm"}.items() <= next(
        t for t in listed if t["id"] == created["id"]
    ).items()
    assert all("token" not in t for t in listed)  # shown once only

    assert (await api.client.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
    assert (await crm.get("/api/v1/status")).status_code == 401
    again = await api.client.delete(f"/api/v1/tokens/{created['id']}")
    assert again.status_code == 404 and created["id"] in again.json()["error"]
    bad = await api.client.post("/api/v1/tokens", json={"name": ""})
    assert bad.status_code == 422
    assert bad.json()["error"].startswith("invalid request: body.name")


# --- phones and devices ---------------------------------------------------------------------


async def test_phones_list_get_disable_enable_trace_delete(api: Api) -> None:
    yealink, snom = api.phones
    phones = (await api.client.get("/api/v1/phones")).json()
    assert {p["mac"] for p in phones} == {yealink.mac, snom.mac}
    assert all(p["online"] and p["simulated"] and p["state"] == "ready" for p in phones)

    dotted = ":".join(yealink.mac[i : i + 2] for i in range(0, 12, 2)).lower()
    one = (await api.client.get(f"/api/v1/phones/{dotted}")).json()
    assert one["mac"] == yealink.mac and one["lines"] == [A]
    missing = await api.client.get("/api/v1/phones/00-00-00-00-00-01")
    assert missing.status_code == 404
    assert missing.json()["error"] == "no phone with MAC 000000000001 in the inventory"
    assert (await api.client.get("/api/v1/phones/not-a-mac")).status_code == 422

    lines = (await api.client.get(f"/api/v1/phones/{yealink.mac}/lines")).json()
    assert lines == [{"device": A, "phone": yealink.mac, "extension": "100", "ready": True}]
    trace = (await api.client.get(f"/api/v1/phones/{yealink.mac}/trace")).json()
    assert {e["kind"] for e in trace} == {"sip", "csta"}
    assert {e["direction"] for e in trace} == {"in", "out"}
    assert any(e["text"].startswith("INVITE ") for e in trace)
    assert len((await api.client.get(f"/api/v1/phones/{yealink.mac}/trace?limit=2")).json()) == 2

    r = await api.client.patch(f"/api/v1/phones/{yealink.mac}", json={"enabled": False})
    assert r.status_code == 200 and r.json()["state"] == "disabled" and not r.json()["online"]
    devices = (await api.client.get("/api/v1/devices")).json()
    assert [d["device"] for d in devices] == [B]
    gone = await api.client.get("/api/v1/devices/100/dnd")
    assert gone.status_code == 404 and "unknown device '100'" in gone.json()["error"]

    r = await api.client.patch(f"/api/v1/phones/{yealink.mac}", json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"]
    await api.harness.wait_state(yealink.mac, "ready")
    assert (await api.client.get(f"/api/v1/phones/{yealink.mac}")).json()["online"]
    assert (await api.client.patch(f"/api/v1/phones/{yealink.mac}", json={})).status_code == 422

    assert (await api.client.delete(f"/api/v1/phones/{snom.mac}")).status_code == 204
    assert (await api.client.get(f"/api/v1/phones/{snom.mac}")).status_code == 404
    assert (await api.client.delete(f"/api/v1/phones/{snom.mac}")).status_code == 404


async def test_devices_list_and_aliases(api: Api) -> None:
    devices = (await api.client.get("/api/v1/devices")).json()
    assert devices == [
        {"device": A, "phone": api.phones[0].mac, "extension": "100", "ready": True},
        {"device": B, "phone": api.phones[1].mac, "extension": "200", "ready": True},
    ]
    for alias in ("100", "tel:100", A, "sip:100@SIM.invalid"):
        r = await api.client.get(f"/api/v1/devices/{quote(alias, safe='')}/snapshot")
        assert r.status_code == 200 and r.json() == {"calls": []}, alias


# --- calls and events -----------------------------------------------------------------------


class Events:
    """The API WebSocket, read as JSON messages; unclaimed messages wait in a backlog."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.backlog: list[dict[str, Any]] = []
        self.seen: list[dict[str, Any]] = []

    async def send(self, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(data))

    async def until(self, kind: str, device: str | None, name: str | None = None) -> dict[str, Any]:
        """The first message of ``kind`` for ``device`` (and event ``name``), within 5 s."""

        def wanted(msg: dict[str, Any]) -> bool:
            return (
                msg["type"] == kind
                and msg.get("device") == device
                and (name is None or msg.get("event") == name)
            )

        for msg in self.backlog:
            if wanted(msg):
                self.backlog.remove(msg)
                return msg
        async with asyncio.timeout(5):
            while True:
                msg = json.loads(await self.ws.recv())
                self.seen.append(msg)
                if wanted(msg):
                    return msg
                self.backlog.append(msg)


async def test_call_made_answered_held_and_cleared_with_events(api: Api) -> None:
    async with connect(f"{api.ws_base}/api/v1/events?token={api.token}") as ws:
        events = Events(ws)
        await events.send({"subscribe": ["100", "tel:200"]})
        for device in ("100", "tel:200"):
            assert (await events.until("subscribed", device))["ok"] is True
            back = await events.until("event", device, "BackInServiceEvent")
            assert back["data"]["device"] in (A, B)

        r = await api.client.post("/api/v1/devices/100/calls", json={"to": "200"})
        assert r.status_code == 201, r.text
        a_call = r.json()
        assert a_call["device_id"] == A and a_call["call_id"]

        delivered = await events.until("event", "tel:200", "DeliveredEvent")
        data = delivered["data"]
        assert data["local_connection_info"] == "alerting"
        assert data["calling_device"] == A
        assert set(data["connection"]) == {"call_id", "device_id"}
        assert "monitor_cross_ref_id" not in data

        snap = (await api.client.get("/api/v1/devices/200/snapshot")).json()
        ringing = [c for c in snap["calls"] if c["state"] == "alerting"]
        assert len(ringing) == 1 and ringing[0]["call_id"] == data["connection"]["call_id"]
        b_call = ringing[0]["call_id"]

        r = await api.client.post(f"/api/v1/devices/200/calls/{quote(b_call, safe='')}/answer")
        assert r.status_code == 200 and r.json()["ok"] and r.json()["service"] == "AnswerCall"
        established = await events.until("event", "100", "EstablishedEvent")
        assert established["data"]["established_connection"]["device_id"] in (A, B)
        await events.until("event", "tel:200", "EstablishedEvent")

        a_path = f"/api/v1/devices/100/calls/{quote(a_call['call_id'], safe='')}"
        assert (await api.client.post(f"{a_path}/hold")).status_code == 200
        held = await events.until("event", "100", "HeldEvent")
        assert held["data"]["held_connection"]["call_id"] == a_call["call_id"]
        snap = (await api.client.get("/api/v1/devices/100/snapshot")).json()
        assert [c["state"] for c in snap["calls"]] == ["hold"]
        assert (await api.client.post(f"{a_path}/retrieve")).status_code == 200
        await events.until("event", "100", "RetrievedEvent")
        r = await api.client.post(f"{a_path}/digits", json={"digits": "12#"})
        assert r.status_code == 200, r.text
        bad = await api.client.post(f"{a_path}/digits", json={"digits": "12x"})
        assert bad.status_code == 422 and "body.digits" in bad.json()["error"]

        await events.send({"unsubscribe": ["tel:200"]})
        assert (await events.until("unsubscribed", "tel:200"))["ok"] is True
        events.backlog.clear()
        after = len(events.seen)
        assert (await api.client.post(f"{a_path}/clear")).status_code == 200
        await events.until("event", "100", "ConnectionClearedEvent")
        assert not [e for e in events.seen[after:] if e.get("device") == "tel:200"]
    # The socket is gone: its monitors are released.
    await wait_until(lambda: api.server.status()["monitors"] == 0, 5, "monitors released")


async def test_consultation_and_transfer(api: Api) -> None:
    await _add_third_phone(api)
    api.harness.sims[0].auto_answer(0.1)
    r = await api.client.post("/api/v1/devices/100/calls", json={"to": "200"})
    first = r.json()["call_id"]
    await _wait_call_state(api, "100", "connected")
    r = await api.client.post(f"/api/v1/devices/100/calls/{first}/consult", json={"to": "300"})
    assert r.status_code == 201, r.text
    second = r.json()["call_id"]
    assert second and second != first
    await _wait_call_state(api, "300", "connected")
    r = await api.client.post(
        "/api/v1/devices/100/transfer", json={"held_call": first, "active_call": second}
    )
    assert r.status_code == 200, r.text
    assert r.json()["service"] == "TransferCall"
    await _wait_call_state(api, "100", None)


async def _add_third_phone(api: Api) -> None:
    sim = api.harness.sims[0]
    agent = sim.add_phone("mitel", ["300"], transport="tcp")
    await agent.start()
    await api.harness.wait_state(agent.mac, "ready")


async def _wait_call_state(api: Api, device: str, state: str | None) -> None:
    async with asyncio.timeout(5):
        while True:
            calls = (await api.client.get(f"/api/v1/devices/{device}/snapshot")).json()["calls"]
            if (state is None and not calls) or (state and any(c["state"] == state for c in calls)):
                return
            await asyncio.sleep(0.1)


# --- features -------------------------------------------------------------------------------


async def test_dnd_and_forwarding(api: Api) -> None:
    assert (await api.client.get("/api/v1/devices/200/dnd")).json() == {"on": False}
    r = await api.client.put("/api/v1/devices/200/dnd", json={"on": True})
    assert r.status_code == 200 and r.json() == {"on": True}
    assert (await api.client.get("/api/v1/devices/200/dnd")).json() == {"on": True}
    await api.client.put("/api/v1/devices/200/dnd", json={"on": False})
    assert (await api.client.get("/api/v1/devices/200/dnd")).json() == {"on": False}
    assert (await api.client.put("/api/v1/devices/200/dnd", json={"on": "x"})).status_code == 422

    body = {"type": "forwardImmediate", "on": True, "to": "300"}
    r = await api.client.put("/api/v1/devices/200/forwarding", json=body)
    assert r.status_code == 200 and r.json() == body
    listing = (await api.client.get("/api/v1/devices/200/forwarding")).json()["forwarding"]
    assert {"type": "forwardImmediate", "on": True, "to": "300"} in listing
    r = await api.client.put(
        "/api/v1/devices/200/forwarding", json={"type": "forwardImmediate", "on": False}
    )
    assert r.status_code == 200
    listing = (await api.client.get("/api/v1/devices/200/forwarding")).json()["forwarding"]
    assert not any(i["on"] for i in listing if i["type"] == "forwardImmediate")
    bad = await api.client.put("/api/v1/devices/200/forwarding", json={"type": "x", "on": True})
    assert bad.status_code == 422 and "body.type" in bad.json()["error"]


# --- errors ---------------------------------------------------------------------------------


async def test_errors_say_why(api: Api) -> None:
    r = await api.client.post("/api/v1/devices/999/calls", json={"to": "200"})
    assert r.status_code == 404
    assert r.json() == {
        "error": "unknown device '999': no phone has this line",
        "csta_error": None,
        "detail": None,
    }
    # Yealink phones have no SnapshotCall: the server answers it from the calls it tracks,
    # and there is no call 1 at the line (the refusal's reason: test_calls_api).
    r = await api.client.get("/api/v1/devices/100/calls/1")
    assert r.status_code == 409, r.text
    assert r.json()["csta_error"] == {"category": "operation", "value": "invalidCallID"}
    assert r.json()["detail"] == "no such call"
    # The phone refuses to answer a call that does not exist.
    r = await api.client.post("/api/v1/devices/200/calls/nope/answer")
    assert r.status_code == 409, r.text
    assert r.json()["csta_error"] is not None
    assert r.json()["error"].startswith(f"AnswerCall failed: the phone of {B} refused AnswerCall")
    # Bad input never reaches a phone.
    r = await api.client.post("/api/v1/devices/100/calls", json={"to": "2\x0000"})
    assert r.status_code == 422 and "body.to" in r.json()["error"]
    r = await api.client.post(
        "/api/v1/devices/100/calls", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422


class _Answers:
    """A phone channel (the hub's PhoneChannel) that answers every request with ``answer``."""

    def __init__(self, answer: m.CstaMessage) -> None:
        self.answer = answer

    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        return None

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        asyncio.get_running_loop().call_soon(done, self.answer)


async def test_phone_timeout_is_504_and_lost_phone_503(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a link reports when the phone leaves a request unanswered (PhoneChannel contract).
    mac = api.phones[0].mac
    monkeypatch.setitem(api.server.hub.channels, mac, _Answers(m.CSTAErrorCode.timeout()))
    r = await api.client.post("/api/v1/devices/100/calls", json={"to": "200"})
    assert r.status_code == 504, r.text
    assert r.json()["csta_error"] == {
        "category": "systemResourceAvailability",
        "value": "resourceOutOfService",
    }
    assert r.json()["error"] == f"MakeCall failed: the phone of {A} did not answer MakeCall in time"
    monkeypatch.undo()

    assert api.server.phones is not None
    await api.server.phones.links[mac].stop("test: link dropped", bye=False)
    r = await api.client.get("/api/v1/devices/100/dnd")
    assert r.status_code == 503, r.text
    assert r.json()["error"] == f"GetDoNotDisturb failed: the phone of {A} is not connected"
    assert r.json()["detail"] == f"the phone of {A} is not connected"


class _NeverAnswers:
    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        return None

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        pass  # the phone never answers


async def test_request_timeout_of_the_api(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_module, "REQUEST_TIMEOUT", 0.2)
    monkeypatch.setitem(api.server.hub.channels, api.phones[0].mac, _NeverAnswers())
    r = await api.client.get("/api/v1/devices/100/dnd")
    assert r.status_code == 504
    assert r.json() == {
        "error": f"GetDoNotDisturb failed: no answer from the phone of {A} within 0.2 s",
        "csta_error": None,
        "detail": None,
    }
    assert api.server.status()["clients"] == 0  # the request's client is gone


# --- web-client users -----------------------------------------------------------------------


async def test_web_client_user_only_uses_own_extension(api: Api) -> None:
    api.auth.set_password("alice", "pw", role="user", extension="100")
    alice = api.http(user="alice")
    assert (await alice.get("/api/v1/devices")).json() == [
        {"device": A, "phone": api.phones[0].mac, "extension": "100", "ready": True}
    ]
    assert (await alice.get("/api/v1/devices/100/dnd")).status_code == 200
    assert (await alice.get(f"/api/v1/devices/{quote(A, safe='')}/snapshot")).status_code == 200
    r = await alice.post("/api/v1/devices/100/calls", json={"to": "200"})
    assert r.status_code == 201, r.text
    for method, path in (
        ("GET", "/api/v1/devices/200/dnd"),
        ("POST", "/api/v1/devices/200/calls"),
        ("GET", "/api/v1/devices/999/snapshot"),
        ("GET", "/api/v1/phones"),
        ("GET", f"/api/v1/phones/{api.phones[0].mac}"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/status"),
    ):
        r = await alice.request(method, path, json={"to": "100", "name": "x"})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]

    # An admin logged in to the web admin may do everything with the session cookie.
    api.auth.set_password("root", "pw")
    root = api.http(user="root")
    assert (await root.get("/api/v1/phones")).status_code == 200
    assert (await root.post("/api/v1/tokens", json={"name": "from-admin"})).status_code == 201

    # Changes with the session cookie need the page's CSRF token.
    forged = await alice.put(
        "/api/v1/devices/100/dnd", json={"on": True}, headers={"X-CSRF-Token": "wrong"}
    )
    assert forged.status_code == 403 and "CSRF" in forged.json()["error"]

    cookie = {"Cookie": f"uacsta_session={api.session_cookie('alice')}"}
    async with connect(f"{api.ws_base}/api/v1/events", additional_headers=cookie) as ws:
        events = Events(ws)
        await events.send({"subscribe": ["200", "100"]})
        refused = await events.until("subscribed", "200")
        assert refused["ok"] is False and refused["csta_error"]["value"] == (
            "privilegeViolationSpecifiedDevice"
        )
        assert (await events.until("subscribed", "100"))["ok"] is True
        await events.send({"hello": 1})
        assert "subscribe" in (await events.until("error", None))["error"]
    # A page of another site may not use the cookie for a WebSocket.
    foreign = {**cookie, "Origin": "http://evil.example"}
    with pytest.raises(InvalidStatus):
        async with connect(f"{api.ws_base}/api/v1/events", additional_headers=foreign):
            pass


# --- the event queue ------------------------------------------------------------------------


class _FakeSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_slow_consumer_is_closed_with_1013(api: Api) -> None:
    fake = _FakeSocket()
    sock = EventSocket(fake, api.server.hub, [], max_queue=3)  # type: ignore[arg-type]
    sock.by_xref["x1"] = "100"
    for _ in range(10):
        sock.deliver(ToClient(client=sock, message=m.HeldEvent(monitor_cross_ref_id="x1")))
    assert sock.overflowed and sock.queue.qsize() == 1
    await sock._send_loop()
    assert fake.closed is not None and fake.closed[0] == 1013
    assert fake.sent == []


async def test_websocket_survives_garbage_and_closes_cleanly(api: Api) -> None:
    async with connect(f"{api.ws_base}/api/v1/events?token={api.token}") as ws:
        for garbage in ("not json", "[1]", '{"subscribe": "100"}', '{"subscribe": [1]}'):
            await ws.send(garbage)
            assert json.loads(await ws.recv())["type"] == "error"
        await ws.send(json.dumps({"subscribe": ["999"]}))
        msg = json.loads(await ws.recv())
        assert msg["type"] == "subscribed" and not msg["ok"] and "unknown device" in msg["error"]
        await ws.send(json.dumps({"unsubscribe": ["999"]}))
        assert json.loads(await ws.recv())["ok"] is False
        with pytest.raises(ConnectionClosed):
            await ws.send("x" * (128 * 1024))  # above ws_max_size: the server closes (1009)
            await asyncio.wait_for(ws.recv(), 5)
    await wait_until(lambda: api.server.status()["clients"] == 0, 5, "client detached")
