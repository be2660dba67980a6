"""The phone link drives its uaCSTA dialog over a user agent: a fake one here, no sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.net.flow import Flow
from uacsta.phones.link import LinkState, PhoneLink, Target
from uacsta.phones.vendors import PROFILES
from uacsta.sip.helpers import build_response
from uacsta.sip.message import Request, Response
from uacsta.sip.uri import Via

MAC = "001565AABBCC"
FLOW = Flow("udp", ("192.0.2.1", 5060), ("192.0.2.7", 5062))
TARGET = Target(
    contact="sip:001565aabbcc@192.0.2.7:5062",
    flow=FLOW,
    aor="sip:001565aabbcc@pbx.example",
    local_host="192.0.2.1",
)
SFD = b"""<SwitchingFunctionDevices xmlns="http://www.ecmainternational.org/standards/ecma-323/csta/ed5">
<lastSegment>true</lastSegment><deviceList>
<device><deviceID>sip:101@pbx.example:5060;tel=+4930101</deviceID></device>
<device><deviceID>sip:001565aabbcc@pbx.example:5060</deviceID></device>
</deviceList></SwitchingFunctionDevices>"""


class FakeUA:
    """Answers the INVITE with 200; keeps in-dialog requests for the test to answer."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Callable[[Response | BaseException], None]]] = []
        self.usages: list[Any] = []

    def via(self, transport: str, host: str | None = None) -> Via:
        return Via(transport=transport.upper(), host=host or "0.0.0.0", port=5060)

    def contact(self, transport: str, user: str = "uacsta", host: str | None = None) -> str:
        return f"<sip:{user}@{host}:5060>"

    def request(self, request: Request | str, dest: Any, **kw: Any) -> Any:
        if isinstance(request, Request):  # the INVITE: answered 200 in the next iteration
            headers = (
                ("Contact", "<sip:001565aabbcc@192.0.2.7:5062>"),
                ("Session-Expires", "1800;refresher=uac"),
            )
            ok = build_response(request, 200, to_tag="ph", headers=headers)
            asyncio.get_running_loop().call_soon(kw["then"], ok)
            return None
        self.sent.append((request, kw.get("body", b""), kw["then"]))
        return None

    def add_usage(self, usage: Any) -> None:
        self.usages.append(usage)

    def remove_usage(self, usage: Any) -> None:
        self.usages.remove(usage)

    def ack_2xx(self, usage: Any, response: Response) -> None:
        pass


class FakeServer:
    def __init__(self, request: Request) -> None:
        self.request = request
        self.replies: list[int] = []

    def reply(self, status_code: int, **kw: Any) -> None:
        self.replies.append(status_code)


def fake_service() -> Any:
    calls: list[tuple[str, object]] = []
    hub = SimpleNamespace(
        phone_ready=lambda mac, channel, lines, **kw: calls.append(("ready", list(lines))),
        phone_lost=lambda mac, reason="": calls.append(("lost", mac)),
        phone_event=lambda mac, event: calls.append(("event", event)),
        phone_lines_changed=lambda mac, lines, **kw: calls.append(("lines", lines)),
    )
    return SimpleNamespace(
        ua=FakeUA(),
        hub=hub,
        calls=calls,
        settings=SimpleNamespace(
            phones=SimpleNamespace(keepalive_interval=30, session_expires=1800, csta_timeout=4)
        ),
        setup_slots=asyncio.Semaphore(1),
        trace_csta=lambda mac, direction, message: None,
        observe_latency=lambda name, seconds: calls.append(("latency", name)),
        link_ready=lambda link: calls.append(("link_ready", link.lines)),
        lines_changed=lambda link: None,
        link_ended=lambda link, reason: calls.append(("ended", reason)),
        password_for_mac=lambda mac: "secret",
    )


def answer(ua: FakeUA, message: m.CstaMessage | None) -> type:
    method, body, then = ua.sent.pop(0)
    assert method == "INFO"
    sent = type(codec.decode(body))
    reply = codec.encode(message) if message is not None else b""
    then(Response(status_code=200, body=reply))
    return sent


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not met")


async def ready_link() -> tuple[PhoneLink, Any]:
    service = fake_service()
    link = PhoneLink(service, MAC, TARGET, PROFILES["yealink"], None)
    link.start()
    ua = service.ua
    await until(lambda: bool(ua.sent))
    assert link.state is LinkState.LINKING and link.usage is not None
    if answer(ua, None) is m.SystemRegister:
        await until(lambda: bool(ua.sent))
        assert answer(ua, m.GetSwitchingFunctionDevicesResponse()) is m.GetSwitchingFunctionDevices
    server = FakeServer(
        Request(
            method="INFO",
            uri="sip:x",
            headers=(("Content-Type", "application/csta+xml"),),
            body=SFD,
        )
    )
    assert link.usage is not None and link.usage.on_request is not None
    link.usage.on_request(server)  # type: ignore[arg-type]
    assert server.replies == [200]
    await until(lambda: link.state is LinkState.READY)
    return link, service


async def test_set_up_learns_lines_and_arms_one_keepalive_timer() -> None:
    link, service = await ready_link()
    assert link.lines == ["sip:101@pbx.example"]
    assert ("ready", ["sip:101@pbx.example"]) in service.calls
    now = asyncio.get_running_loop().time()
    at = link.driver.timer_at
    assert at is not None and now < at <= now + 30.1
    await link.stop("test", bye=False)
    assert link.state is LinkState.LOST and link.reason == "test"
    assert ("lost", MAC) in service.calls and ("ended", "test") in service.calls
    assert link.driver.timer_at is None and service.ua.usages == []


async def test_requests_answered_through_the_callback() -> None:
    link, service = await ready_link()
    got: list[m.CstaMessage] = []
    link.csta_request_then(m.GetDoNotDisturb(device="sip:101@pbx.example"), got.append)
    assert got == [] and link.in_flight == 1 and link.requests_sent == 1
    _method, body, then = service.ua.sent.pop(0)
    sent = codec.decode(body)
    assert isinstance(sent, m.GetDoNotDisturb)
    assert sent.device == "sip:101@pbx.example:5060;tel=+4930101"  # the phone's own form
    then(
        Response(
            status_code=200, body=codec.encode(m.GetDoNotDisturbResponse(do_not_disturb_on=False))
        )
    )
    assert got == [m.GetDoNotDisturbResponse(do_not_disturb_on=False)]
    assert link.in_flight == 0
    assert service.calls[-1] == ("latency", "GetDoNotDisturb")  # the metric, per service
    observed = len([c for c in service.calls if c[0] == "latency"])
    link.csta_request_then(m.GetDoNotDisturb(device="sip:101@pbx.example"), got.append)
    _method, _body, then = service.ua.sent.pop(0)
    then(TimeoutError())
    assert got[-1] == m.CSTAErrorCode.timeout() and link.timeouts == 1
    assert len([c for c in service.calls if c[0] == "latency"]) == observed  # none measured
    await link.stop("test", bye=False)
    link.csta_request_then(m.GetDoNotDisturb(device="x"), got.append)
    assert got[-1] == m.CSTAErrorCode.system_resource_availability("outOfService")


async def test_refusal_is_answered_at_once_with_its_reason() -> None:
    link, service = await ready_link()
    got: list[m.CstaMessage] = []
    request = m.SnapshotCall(snapshot_object=ConnectionID(call_id="1"))
    refused = link.refusal(request)
    assert refused is not None and refused[1].startswith(f"Yealink phone {MAC}: ")
    link.csta_request_then(request, got.append)
    assert got == [refused[0]] and service.ua.sent == [] and link.requests_sent == 0
    await link.stop("test", bye=False)
