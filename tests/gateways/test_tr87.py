"""uaCSTA over SIP (ECMA TR/87) client gateway, over real loopback TCP sockets.

The CTI client is built from uacsta's own UserAgent and digest client; the phone behind the
hub is a scripted channel (end-to-end tests with simulated phones live in e2e/).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from uacsta.accounts import ClientAccounts
from uacsta.config import ClientAccount
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.types import ConnectionID
from uacsta.gateways.tr87 import CSTA_CONTENT_TYPE, Tr87Gateway
from uacsta.hub import SwitchHub
from uacsta.net.flow import Flow
from uacsta.net.useragent import DialogUsage, ServerRequest, UserAgent
from uacsta.sip.dialog import Dialog
from uacsta.sip.digest import answer_challenge
from uacsta.sip.helpers import generate_branch, generate_call_id, generate_tag
from uacsta.sip.message import Request, Response

LINE = "sip:100@pbx.example"
MAC = "001565000001"
ED5 = codec.Edition.ED5
WAIT = 5.0


class ScriptedPhone:
    """Answers like a phone would; records what it was asked. MakeCall hangs when told to."""

    def __init__(self) -> None:
        self.requests: list[m.CstaRequest] = []
        self.monitor_stopped = asyncio.Event()
        self.hang = False

    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        return None

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        """Answers a loop iteration later, as a phone's answer comes from the network."""
        answer = self.answer(request)
        if answer is not None:
            asyncio.get_running_loop().call_soon(done, answer)

    def answer(self, request: m.CstaRequest) -> m.CstaMessage | None:
        self.requests.append(request)
        match request:
            case m.MonitorStart():
                return m.MonitorStartResponse(monitor_cross_ref_id="p1")
            case m.GetDoNotDisturb():
                return m.GetDoNotDisturbResponse(do_not_disturb_on=True)
            case m.MonitorStop():
                self.monitor_stopped.set()
                return m.MonitorStopResponse()
            case m.MakeCall():
                if self.hang:
                    return None  # never answered
                return m.MakeCallResponse(calling_device=ConnectionID(call_id="1", device_id=LINE))
        return m.CSTAErrorCode.operation("invalidFeature")


class Tr87Client:
    """A CTI application: the SIP UAC of ECMA TR/87, on uacsta's own UserAgent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ua = UserAgent(on_request=self._out_of_dialog, user_agent="test-cti")
        self.usage: DialogUsage | None = None
        self.flow: Flow | None = None
        self.infos: asyncio.Queue[Request] = asyncio.Queue()
        self.reinvites: asyncio.Queue[Request] = asyncio.Queue()
        self.bye = asyncio.get_running_loop().create_future()
        self.call_id = generate_call_id()
        self.tag = generate_tag()
        self.cseq = 0
        self.answer_infos_with = 200

    async def start(self) -> None:
        await self.ua.listen("tcp:127.0.0.1:0")

    def _out_of_dialog(self, server: ServerRequest) -> None:
        server.reply(481)

    def _in_dialog(self, server: ServerRequest) -> None:
        request = server.request
        if request.method == "BYE":
            server.reply(200)
            if not self.bye.done():
                self.bye.set_result(request)
        elif request.method == "INFO":
            server.reply(self.answer_infos_with)
            self.infos.put_nowait(request)
        else:
            if request.method == "INVITE":
                self.reinvites.put_nowait(request)
            server.reply(200)

    def build_invite(
        self, body: bytes, *, auth: str | None = None, extra: tuple[tuple[str, str], ...] = ()
    ) -> Request:
        self.cseq += 1
        headers = [
            ("Via", str(self.ua.via("tcp").with_param("branch", generate_branch()))),
            ("Max-Forwards", "70"),
            ("From", f"<sip:crm@127.0.0.1>;tag={self.tag}"),
            ("To", "<sip:100@127.0.0.1>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} INVITE"),
            ("Contact", self.ua.contact("tcp", "crm")),
            *extra,
        ]
        if auth is not None:
            headers.append(("Authorization", auth))
        uri = f"sip:100@127.0.0.1:{self.port}"
        request = Request(method="INVITE", uri=uri, headers=tuple(headers))
        return request.with_body(body, CSTA_CONTENT_TYPE) if body else request

    async def send(self, request: Request) -> Response:
        dest: Flow | tuple[str, str, int] = self.flow or ("tcp", "127.0.0.1", self.port)
        pending = self.ua.request(request, dest)
        response = await asyncio.wait_for(pending, WAIT)
        self.flow = self.flow or pending.flow
        return response

    async def invite(
        self,
        body: bytes | None = None,
        *,
        user: str | None = None,
        password: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> tuple[Response, Response | None]:
        """INVITE (answering one 401 when credentials are given); ACK a 2xx.

        Returns the first final response and the one after the challenge (or None).
        """
        body = codec.encode(m.RequestSystemStatus(), ED5) if body is None else body
        invite = self.build_invite(body, extra=extra)
        first = await self.send(invite)
        final, second = first, None
        if first.status_code == 401 and user is not None and password is not None:
            challenge = first.header_values("WWW-Authenticate")[0]
            auth = answer_challenge(challenge, "INVITE", invite.uri, user, password, body=body)
            invite = self.build_invite(body, auth=auth, extra=extra)
            second = final = await self.send(invite)
        if final.is_success:
            assert self.flow is not None
            dialog = Dialog.from_uac(invite, final)
            self.usage = DialogUsage(dialog, self.flow, on_request=self._in_dialog)
            self.ua.add_usage(self.usage)
            self.ua.ack_2xx(self.usage, final)
        return first, second

    async def info(self, body: bytes, content_type: str = CSTA_CONTENT_TYPE) -> Response:
        assert self.usage is not None
        return await asyncio.wait_for(
            self.ua.request("INFO", self.usage, body=body, content_type=content_type),
            WAIT,
        )

    async def csta(self, message: m.CstaMessage) -> m.CstaMessage:
        response = await self.info(codec.encode(message, ED5))
        assert response.status_code == 200, response.start_line()
        assert response.content_type == CSTA_CONTENT_TYPE
        assert b"ecma-323/csta/ed5" in response.body  # answered in the client's edition
        return codec.decode(response.body)

    async def next_info(self) -> m.CstaMessage:
        request = await asyncio.wait_for(self.infos.get(), WAIT)
        assert request.content_type == CSTA_CONTENT_TYPE
        assert b"ecma-323/csta/ed5" in request.body
        return codec.decode(request.body)

    async def hangup(self) -> Response:
        assert self.usage is not None
        return await asyncio.wait_for(self.ua.request("BYE", self.usage), WAIT)

    async def close(self) -> None:
        await self.ua.close()


@dataclass
class Setup:
    gw: Tr87Gateway
    hub: SwitchHub
    phone: ScriptedPhone
    connect: Callable[[], Awaitable[Tr87Client]]


GatewayFactory = Callable[..., Awaitable[Setup]]


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    made: list[tuple[Tr87Gateway, SwitchHub]] = []
    clients: list[Tr87Client] = []

    async def make(**kwargs: object) -> Setup:
        hub = SwitchHub()
        phone = ScriptedPhone()
        hub.phone_ready(MAC, phone, [LINE])
        accounts = ClientAccounts([ClientAccount(name="crm", password="s3cret")])
        gw = Tr87Gateway(hub, accounts, **kwargs)  # type: ignore[arg-type]
        flow = await gw.listen("tcp:127.0.0.1:0")
        made.append((gw, hub))

        async def connect() -> Tr87Client:
            client = Tr87Client(flow.local[1])
            await client.start()
            clients.append(client)
            return client

        return Setup(gw, hub, phone, connect)

    yield make
    for gw, hub in made:
        await gw.close()
        await hub.close()
    for client in clients:
        await client.close()


async def test_digest_session_monitor_events_requests_and_bye(make_gateway: GatewayFactory) -> None:
    s = await make_gateway()
    c = await s.connect()
    first, second = await c.invite(user="crm", password="s3cret")
    assert first.status_code == 401
    assert second is not None and second.status_code == 200, second
    assert second.content_type == CSTA_CONTENT_TYPE
    assert isinstance(codec.decode(second.body), m.RequestSystemStatusResponse)
    assert second.contact  # the dialog's remote target

    resp = await c.csta(m.MonitorStart(monitor_object="100"))
    assert isinstance(resp, m.MonitorStartResponse)
    back = await c.next_info()
    assert isinstance(back, m.BackInServiceEvent)
    assert back.monitor_cross_ref_id == resp.monitor_cross_ref_id
    assert s.phone.requests[0] == m.MonitorStart(monitor_object=LINE)

    s.hub.phone_event(MAC, m.HeldEvent(monitor_cross_ref_id="p1"))
    s.hub.phone_event(MAC, m.RetrievedEvent(monitor_cross_ref_id="p1"))
    assert await c.next_info() == m.HeldEvent(monitor_cross_ref_id=resp.monitor_cross_ref_id)
    assert await c.next_info() == m.RetrievedEvent(monitor_cross_ref_id=resp.monitor_cross_ref_id)

    dnd = await c.csta(m.GetDoNotDisturb(device=LINE))
    assert dnd == m.GetDoNotDisturbResponse(do_not_disturb_on=True)
    err = await c.csta(m.GetDoNotDisturb(device="sip:999@nowhere"))
    assert err == m.CSTAErrorCode.operation("invalidDeviceID")

    # Bad XML: a CSTA error document in the 2xx, the dialog goes on.
    bad = await c.info(b"<MonitorStart><unclosed>")
    assert bad.status_code == 200
    assert codec.decode(bad.body) == m.CSTAErrorCode.operation("generic")
    # A CSTA response from the client (answering something we sent): 200, no body.
    ok = await c.info(codec.encode(m.MonitorStopResponse(), ED5))
    assert ok.status_code == 200 and not ok.body
    # Not CSTA: 415.
    refused = await c.info(b"hello", content_type="text/plain")
    assert refused.status_code == 415
    assert isinstance(await c.csta(m.RequestSystemStatus()), m.RequestSystemStatusResponse)

    assert (await c.hangup()).status_code == 200
    await asyncio.wait_for(s.phone.monitor_stopped.wait(), WAIT)
    assert s.phone.requests[-1] == m.MonitorStop(monitor_cross_ref_id="p1")
    assert s.hub.switch.monitors.client_monitors == {}
    assert s.gw.sessions == {}


async def test_wrong_password_gets_403(make_gateway: GatewayFactory) -> None:
    s = await make_gateway()
    c = await s.connect()
    first, second = await c.invite(user="crm", password="wrong")
    assert first.status_code == 401
    assert second is not None and second.status_code == 403
    assert s.gw.sessions == {}


async def test_refusals_415_422_and_the_connection_stays_usable(
    make_gateway: GatewayFactory,
) -> None:
    s = await make_gateway(require_authentication=False, min_se=120)
    c = await s.connect()
    plain = c.build_invite(b"v=0\r\n")
    plain = plain.with_header_set("Content-Type", "application/sdp")
    assert (await c.send(plain)).status_code == 415
    small = await c.send(c.build_invite(b"", extra=(("Session-Expires", "100"),)))
    assert small.status_code == 422 and small.header("Min-SE") == "120"
    first, _ = await c.invite(extra=(("Session-Expires", "1800"), ("Supported", "timer")))
    assert first.status_code == 200
    assert first.header("Session-Expires") == "1800;refresher=uac"
    assert (await c.hangup()).status_code == 200


async def test_invite_body_with_another_request_or_none(make_gateway: GatewayFactory) -> None:
    s = await make_gateway(require_authentication=False)
    c = await s.connect()
    first, _ = await c.invite(codec.encode(m.GetCSTAFeatures(), ED5))
    assert first.status_code == 200
    features = codec.decode(first.body)
    assert isinstance(features, m.GetCSTAFeaturesResponse)
    assert "makeCall" in features.supported_services
    d = await s.connect()
    empty, _ = await d.invite(b"")
    assert empty.status_code == 200 and not empty.body
    e = await s.connect()
    broken, _ = await e.invite(b"<RequestSystemStatus")
    assert broken.status_code == 200
    assert codec.decode(broken.body) == m.CSTAErrorCode.operation("generic")
    assert isinstance(await e.csta(m.RequestSystemStatus()), m.RequestSystemStatusResponse)
    assert len(s.gw.sessions) == 3


async def test_a_phone_that_never_answers_gets_a_timeout_error(
    make_gateway: GatewayFactory,
) -> None:
    s = await make_gateway(require_authentication=False, request_timeout=0.3)
    s.phone.hang = True
    c = await s.connect()
    await c.invite()
    answer = await c.csta(m.MakeCall(calling_device=LINE, called_directory_number="200"))
    assert answer == m.CSTAErrorCode.timeout()
    assert isinstance(await c.csta(m.RequestSystemStatus()), m.RequestSystemStatusResponse)


async def test_requests_beyond_the_limit_are_refused_while_the_phone_is_slow(
    make_gateway: GatewayFactory,
) -> None:
    s = await make_gateway(
        require_authentication=False, request_timeout=0.5, max_pending_requests=2
    )
    s.phone.hang = True
    c = await s.connect()
    await c.invite()
    call = m.MakeCall(calling_device=LINE, called_directory_number="200")
    answers = await asyncio.gather(*(c.csta(call) for _ in range(3)))
    busy = m.CSTAErrorCode.system_resource_availability("resourceBusy")
    assert sorted(map(repr, answers)) == sorted(
        map(repr, [busy, m.CSTAErrorCode.timeout(), m.CSTAErrorCode.timeout()])
    )
    # Timed out requests no longer count: the session takes requests again.
    assert isinstance(await c.csta(m.RequestSystemStatus()), m.RequestSystemStatusResponse)
    s.phone.hang = False
    assert isinstance(await c.csta(call), m.MakeCallResponse)


async def test_session_expiry_sends_bye_and_releases_monitors(make_gateway: GatewayFactory) -> None:
    s = await make_gateway(require_authentication=False, min_se=1)
    c = await s.connect()
    first, _ = await c.invite(
        extra=(("Session-Expires", "2;refresher=uac"), ("Supported", "timer"))
    )
    assert first.header("Session-Expires") == "2;refresher=uac"
    assert isinstance(await c.csta(m.MonitorStart(monitor_object="100")), m.MonitorStartResponse)
    await c.next_info()  # BackInService
    # No refresh from the client: the gateway ends the dialog within ~1.33 s.
    bye = await asyncio.wait_for(c.bye, WAIT)
    assert bye.call_id == c.call_id
    await asyncio.wait_for(s.phone.monitor_stopped.wait(), WAIT)
    assert s.gw.sessions == {}


async def test_reinvite_refreshes_the_session(make_gateway: GatewayFactory) -> None:
    s = await make_gateway(require_authentication=False, min_se=1)
    c = await s.connect()
    timer = (("Session-Expires", "2;refresher=uac"), ("Supported", "timer"))
    await c.invite(extra=timer)
    assert c.usage is not None
    # The session would expire 1.33 s after set-up; refreshes every second keep it alive.
    for _ in range(2):
        await asyncio.sleep(1.0)  # the passing of time is what is tested here
        refresh = await asyncio.wait_for(
            c.ua.request(
                "INVITE",
                c.usage,
                body=codec.encode(m.RequestSystemStatus(), ED5),
                content_type=CSTA_CONTENT_TYPE,
                extra_headers=timer,
            ),
            WAIT,
        )
        assert refresh.status_code == 200
        assert refresh.header("Session-Expires") == "2;refresher=uac"
        assert isinstance(codec.decode(refresh.body), m.RequestSystemStatusResponse)
    assert not c.bye.done()
    assert len(s.gw.sessions) == 1


async def test_gateway_refreshes_for_a_client_without_timer_support(
    make_gateway: GatewayFactory,
) -> None:
    s = await make_gateway(require_authentication=False, min_se=1)
    c = await s.connect()
    first, _ = await c.invite(extra=(("Session-Expires", "2"),))  # no Supported: timer
    assert first.header("Session-Expires") == "2;refresher=uas"
    reinvite = await asyncio.wait_for(c.reinvites.get(), WAIT)  # after 1 s (half the interval)
    assert reinvite.header("Session-Expires") == "2;refresher=uas"
    assert isinstance(await c.csta(m.RequestSystemStatus()), m.RequestSystemStatusResponse)
    assert len(s.gw.sessions) == 1 and not c.bye.done()


async def test_closed_connection_and_dead_client_end_the_session(
    make_gateway: GatewayFactory,
) -> None:
    s = await make_gateway(require_authentication=False)
    c = await s.connect()
    await c.invite()
    assert isinstance(await c.csta(m.MonitorStart(monitor_object="100")), m.MonitorStartResponse)
    await c.next_info()
    await c.close()  # the TCP connection goes away
    await asyncio.wait_for(s.phone.monitor_stopped.wait(), WAIT)
    assert s.gw.sessions == {}

    s.phone.monitor_stopped.clear()
    d = await s.connect()
    await d.invite()
    d.answer_infos_with = 481  # the client forgot the dialog: BackInService gets 481
    assert isinstance(await d.csta(m.MonitorStart(monitor_object="100")), m.MonitorStartResponse)
    await d.next_info()
    await asyncio.wait_for(s.phone.monitor_stopped.wait(), WAIT)
    assert s.gw.sessions == {}


async def test_gateway_close_sends_bye(make_gateway: GatewayFactory) -> None:
    s = await make_gateway(require_authentication=False)
    c = await s.connect()
    await c.invite()
    await s.gw.close()
    assert (await asyncio.wait_for(c.bye, WAIT)).call_id == c.call_id
