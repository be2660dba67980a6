"""The uaCSTA link to one phone (ECMA TR/87): one long-lived INVITE dialog carrying CSTA.

Set-up order as commercial servers do it (protocol notes): INVITE with a RequestSystemStatus
body (``Content-Disposition: signal;handling=required``, RFC 4028 session timer) → 200 → ACK;
SystemRegister (where the phone supports it); GetSwitchingFunctionDevices, whose answer is a
SwitchingFunctionDevices request from the phone listing its lines → ready. Then CSTA requests
go in INFO with the answer in the 2xx body, events arrive as INFO, a RequestSystemStatus
keep-alive runs every ``keepalive_interval`` and the session is refreshed by re-INVITE.
Any failure (no answer, 408/481, transport gone, BYE) makes the link lost; the phone service
re-links when the phone is still registered.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.errors import CstaDecodeError
from uacsta.net.errors import TransportError
from uacsta.net.flow import Flow
from uacsta.net.useragent import DialogUsage, ServerRequest
from uacsta.phones.vendors import VendorProfile
from uacsta.sip.dialog import (
    Dialog,
    DialogError,
    Refresher,
    interval_after_422,
    negotiate_session_timer_uas,
    session_timer_from_response,
    session_timer_request_headers,
)
from uacsta.sip.digest import answer_challenge
from uacsta.sip.errors import SipParseError
from uacsta.sip.helpers import generate_branch, generate_call_id, generate_tag
from uacsta.sip.message import Request, Response

if TYPE_CHECKING:
    from uacsta.phones.service import PhoneService

log = logging.getLogger("uacsta.phones.link")

CSTA_TYPE = "application/csta+xml"
DISPOSITION = "signal;handling=required"
ALLOW = "INVITE, ACK, BYE, CANCEL, INFO, OPTIONS"

#: Every CSTA service a phone may be asked for (vendor profiles filter it).
ALL_SERVICES = (
    "MakeCall", "AnswerCall", "ClearConnection", "ClearCall", "HoldCall", "RetrieveCall",
    "AlternateCall", "ConferenceCall", "TransferCall", "ConsultationCall", "DeflectCall",
    "DialDigits", "DirectedPickupCall", "ReconnectCall", "SingleStepConferenceCall",
    "SingleStepTransferCall", "GenerateDigits", "GetDoNotDisturb", "SetDoNotDisturb",
    "GetForwarding", "SetForwarding", "GetMessageWaitingIndicator", "SetMessageWaitingIndicator",
    "MonitorStart", "MonitorStop", "SnapshotDevice", "SnapshotCall", "SystemRegister",
    "SystemRegisterCancel", "RequestSystemStatus", "GetSwitchingFunctionDevices",
    "GetLogicalDeviceInformation", "GetPhysicalDeviceInformation",
)  # fmt: skip


#: Keep-alive and session-refresh wake-ups are rounded up to this grid (seconds).
KEEPALIVE_GRID = 0.1

#: CSTA requests one phone may have outstanding (phones answer one INFO at a time anyway).
MAX_IN_FLIGHT = 32


class LinkState(enum.Enum):
    LINKING = "linking"
    READY = "ready"
    LOST = "lost"


class LinkFailed(Exception):
    """The link cannot be (or stay) established; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the phone is: its registered contact, the flow it registered on, its AOR."""

    contact: str
    flow: Flow
    aor: str
    #: Our address as the phone knows it (the host it registered to).
    local_host: str | None


@functools.lru_cache(maxsize=256)
def _services_of(
    services: frozenset[str],
    since: tuple[tuple[str, str], ...],
    alternate: bool,
    firmware: str | None,
) -> frozenset[str]:
    profile = VendorProfile("", "", services, dict(since), emulate_alternate_call=alternate)
    return frozenset(s for s in ALL_SERVICES if profile.supports(s, firmware))


def _services(profile: VendorProfile, firmware: str | None) -> frozenset[str]:
    """The services a phone supports, shared by every phone of one type and firmware."""
    since = tuple(sorted(profile.since.items()))
    return _services_of(profile.services, since, profile.emulate_alternate_call, firmware)


class PhoneLink:
    """The CSTA link to one phone: set-up, keep-alive, refresh, requests, loss."""

    # Slots: one of these lives for every linked phone.
    __slots__ = (
        "_lines_known",
        "_segments",
        "_task",
        "csta_timeout",
        "edition",
        "in_flight",
        "keepalive_interval",
        "lines",
        "mac",
        "profile",
        "reason",
        "requests_sent",
        "service",
        "services",
        "session_expires",
        "state",
        "target",
        "timeouts",
        "usage",
    )  # fmt: skip

    def __init__(
        self,
        service: PhoneService,
        mac: str,
        target: Target,
        profile: VendorProfile,
        firmware: str | None,
    ) -> None:
        self.service = service
        self.mac = mac
        self.target = target
        self.profile = profile
        self.services = _services(profile, firmware)
        settings = service.settings.phones
        self.keepalive_interval = float(settings.keepalive_interval)
        self.session_expires = int(settings.session_expires)
        self.csta_timeout = float(settings.csta_timeout)
        self.edition = codec.Edition[profile.edition.upper()]
        self.state = LinkState.LINKING
        self.reason: str | None = None
        self.usage: DialogUsage | None = None
        self.lines: list[str] = []
        self._segments: list[str] = []
        #: Set while set-up (or a re-read) waits for SwitchingFunctionDevices.
        self._lines_known: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.requests_sent = 0
        self.in_flight = 0
        self.timeouts = 0

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The link's logger; ``mac`` lets the diagnostics page filter by phone. Made when
        used, not kept: 10,000 idle links would each hold one."""
        return logging.LoggerAdapter(log, {"mac": self.mac})

    def __repr__(self) -> str:
        return f"<PhoneLink {self.mac} {self.state.value}>"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"link-{self.mac}")

    async def _run(self) -> None:
        try:
            async with self.service.setup_slots:  # phones.max_parallel_setups
                await self._establish()
                await self._learn_lines()
            self._become_ready()
            await self._maintain()
        except LinkFailed as exc:
            self._lost(str(exc))
        except asyncio.CancelledError:
            self._lost("stopped")
            raise
        except Exception as exc:  # a bug must not leave the phone half-linked
            self.log.exception("link to %s crashed", self.mac)
            self._lost(f"internal error: {exc}")

    async def stop(self, reason: str = "stopped", *, bye: bool = True) -> None:
        """Tear the link down (disable, un-register, shutdown): lost at once, then BYE."""
        usage = self.usage
        send_bye = bye and usage is not None and self.state is not LinkState.LOST
        # Lost first, so a set-up still in progress cannot report the phone ready again.
        self._lost(reason, keep_dialog=send_bye)
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if send_bye and usage is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.service.ua.dialog_request(usage, "BYE"), 2.0)
            self.service.ua.remove_usage(usage)

    def _lost(self, reason: str, *, keep_dialog: bool = False) -> None:
        if self.state is LinkState.LOST:
            return
        was_ready = self.state is LinkState.READY
        self.state = LinkState.LOST
        self.reason = reason
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()  # it may be waiting for the next keep-alive
        if self.usage is not None and not keep_dialog:
            self.service.ua.remove_usage(self.usage)
        if was_ready:
            self.service.hub.phone_lost(self.mac)
        self.log.info("link to %s lost: %s", self.mac, reason)
        self.service.link_ended(self, reason)

    # ------------------------------------------------------------------ set-up
    def _invite(
        self, cseq: int, call_id: str, from_tag: str, extra: tuple[tuple[str, str], ...]
    ) -> Request:
        ua = self.service.ua
        flow = self.target.flow
        host = self.target.local_host
        via = ua.via(flow.transport, host).with_param("branch", generate_branch())
        body = codec.encode(m.RequestSystemStatus(), self.edition)
        ours = ua.contact(flow.transport, "uacsta", host)
        headers: tuple[tuple[str, str], ...] = (
            ("Via", str(via)),
            ("Max-Forwards", "70"),
            ("From", f"{ours};tag={from_tag}"),
            ("To", f"<{self.target.aor}>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", ours),
            ("Allow", ALLOW),
            ("Content-Disposition", DISPOSITION),
            ("Content-Type", CSTA_TYPE),
            *extra,
        )
        return Request(method="INVITE", uri=self.target.contact, headers=headers, body=body)

    async def _establish(self) -> None:
        call_id = generate_call_id(self.target.local_host or "uacsta")
        from_tag = generate_tag()
        interval = self.session_expires
        auth: tuple[tuple[str, str], ...] = ()
        for cseq in range(1, 5):
            timer = session_timer_request_headers(interval, refresher=Refresher.UAC)
            invite = self._invite(cseq, call_id, from_tag, (*timer, *auth))
            try:
                response, flow = await self.service.ua.request_flow(
                    invite, self.target.flow, timeout=max(8.0, 2 * self.csta_timeout)
                )
            except TimeoutError:
                raise LinkFailed("the phone did not answer the CSTA INVITE") from None
            if response.is_success and flow is not None:
                self._confirm(invite, response, flow)
                return
            if response.status_code in (401, 407) and not auth:
                auth = self._authorization(invite, response)
                if auth:
                    continue
            if response.status_code == 422:
                try:
                    interval = interval_after_422(response, interval)
                except SipParseError:
                    raise LinkFailed("phone answered 422 without Min-SE") from None
                continue
            raise LinkFailed(
                f"phone answered the CSTA INVITE with {response.status_code} {response.reason}"
            )
        raise LinkFailed("CSTA INVITE not accepted after retries")

    def _authorization(self, invite: Request, response: Response) -> tuple[tuple[str, str], ...]:
        """snom ``csta_challenge``: the phone digest-challenges our INVITE/INFO."""
        name = "WWW-Authenticate" if response.status_code == 401 else "Proxy-Authenticate"
        challenge = response.header(name)
        if challenge is None:
            return ()
        password = self.service.password_for_mac(self.mac)
        value = answer_challenge(challenge, "INVITE", invite.uri, self.mac, password)
        header = "Authorization" if response.status_code == 401 else "Proxy-Authorization"
        return ((header, value),)

    def _confirm(self, invite: Request, response: Response, flow: Flow) -> None:
        dialog = Dialog.from_uac(invite, response)
        self.usage = DialogUsage(
            dialog, flow, on_request=self._on_request, local_host=self.target.local_host
        )
        self.service.ua.add_usage(self.usage)
        self.service.ua.ack_2xx(self.usage, response)
        self._session_from(response)
        if response.body:
            with contextlib.suppress(CstaDecodeError):
                message, edition = codec.decode_with_edition(response.body)
                if edition is not codec.Edition.NONE:
                    self.edition = edition  # answer the phone in the edition it speaks
                self.service.trace_csta(self.mac, "in", message)
        self.log.info("CSTA dialog with %s established (%s)", self.mac, flow)

    def _session_from(self, response: Response) -> None:
        assert self.usage is not None
        now = asyncio.get_running_loop().time()
        se = session_timer_from_response(response)
        if se is None or se.refresher is None:
            self.usage.dialog.session_timer_off()
        else:
            self.usage.dialog.session_refreshed(now, se.interval, se.refresher, local_is_uac=True)

    async def _learn_lines(self) -> None:
        if "SystemRegister" in self.services:
            answer = await self.csta_request(
                m.SystemRegister(switching_function_devices_changed=True), internal=True
            )
            if isinstance(answer, m.CSTAErrorCode):
                self.log.info("SystemRegister refused by %s: %s", self.mac, answer)
                self._check_alive(answer)
        await self._request_lines()

    async def _request_lines(self) -> None:
        self._lines_known = asyncio.get_running_loop().create_future()
        self._segments = []
        answer = await self.csta_request(m.GetSwitchingFunctionDevices(), internal=True)
        if isinstance(answer, m.CSTAErrorCode):
            self._check_alive(answer)
            self.log.warning(
                "%s refused GetSwitchingFunctionDevices (%s): using its AOR", self.mac, answer
            )
            self.lines = [self.target.aor]
            return
        try:
            await asyncio.wait_for(self._lines_known, self.csta_timeout)
        except TimeoutError:
            self.log.warning("%s sent no SwitchingFunctionDevices: using its AOR", self.mac)
            self.lines = [self.target.aor]
        finally:
            self._lines_known = None

    def _check_alive(self, answer: m.CSTAErrorCode) -> None:
        if answer.is_timeout or answer.is_out_of_service:
            raise LinkFailed("the phone does not answer CSTA requests")

    def _become_ready(self) -> None:
        if self.state is LinkState.LOST:
            raise LinkFailed(self.reason or "stopped during set-up")
        self.state = LinkState.READY
        self.service.link_ready(self)
        self.service.hub.phone_ready(
            self.mac,
            self,
            self.lines,
            services=self.services,
            emulate_alternate_call=self.profile.emulate_alternate_call,
        )

    # ------------------------------------------------------------------ maintenance
    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        next_keepalive = loop.time() + self.keepalive_interval
        while self.state is not LinkState.LOST:
            assert self.usage is not None
            dialog = self.usage.dialog
            deadlines = [next_keepalive]
            if dialog.session_refresh_at is not None:
                deadlines.append(dialog.session_refresh_at)
            if dialog.session_expires_at is not None:
                deadlines.append(dialog.session_expires_at)
            # On a 100 ms grid: links whose keep-alives fall in one slot wake together.
            wake = math.ceil(min(deadlines) / KEEPALIVE_GRID) * KEEPALIVE_GRID
            wait = max(0.0, wake - loop.time())
            # A plain sleep: losing the link cancels this task (see _lost).
            await asyncio.sleep(wait)
            now = loop.time()
            if dialog.session_refresh_at is not None and now >= dialog.session_refresh_at:
                await self._refresh()
            elif dialog.session_expires_at is not None and now >= dialog.session_expires_at:
                raise LinkFailed("the phone did not refresh the session")
            elif now >= next_keepalive:
                answer = await self.csta_request(m.RequestSystemStatus(), internal=True)
                if isinstance(answer, m.CSTAErrorCode):
                    self._check_alive(answer)
                next_keepalive = loop.time() + self.keepalive_interval

    async def _refresh(self) -> None:
        """RFC 4028 refresh by re-INVITE (we are the refresher)."""
        assert self.usage is not None
        interval = self.usage.dialog.session_interval or self.session_expires
        for _ in range(2):
            extra = (
                *session_timer_request_headers(interval, refresher=Refresher.UAC),
                ("Content-Disposition", DISPOSITION),
                ("Allow", ALLOW),
            )
            response = await self.service.ua.dialog_request(
                self.usage,
                "INVITE",
                body=codec.encode(m.RequestSystemStatus(), self.edition),
                content_type=CSTA_TYPE,
                extra_headers=extra,
            )
            if response.is_success:
                self._session_from(response)
                self.log.debug("session with %s refreshed", self.mac)
                return
            if response.status_code == 422:
                with contextlib.suppress(SipParseError):
                    interval = interval_after_422(response, interval)
                    continue
            raise LinkFailed(f"session refresh answered {response.status_code}")
        raise LinkFailed("session refresh failed")

    # ------------------------------------------------------------------ CSTA requests
    async def csta_request(
        self, request: m.CstaRequest, *, internal: bool = False
    ) -> m.CstaMessage:
        """Send one CSTA request in INFO; the 2xx body is the answer (PhoneChannel)."""
        return await self.csta_request_nowait(request, internal=internal)

    def csta_request_nowait(
        self, request: m.CstaRequest, *, internal: bool = False
    ) -> asyncio.Future[m.CstaMessage]:
        """:meth:`csta_request` as a future that always gets a result (an answer or a
        ``CSTAErrorCode``), without a coroutine: the hub relays through this, a task per
        relayed request would cost more than the rest of the relay."""
        answer: asyncio.Future[m.CstaMessage] = asyncio.get_running_loop().create_future()
        usage = self.usage
        if (
            usage is None
            or self.state is LinkState.LOST
            or (not internal and self.state is not LinkState.READY)
        ):
            answer.set_result(m.CSTAErrorCode.system_resource_availability("outOfService"))
            return answer
        if self.in_flight >= MAX_IN_FLIGHT:
            # Clients together may not queue unbounded work on one phone.
            self.log.warning("%s has %d CSTA requests in flight", self.mac, self.in_flight)
            answer.set_result(m.CSTAErrorCode.performance_management("performanceLimitExceeded"))
            return answer
        self.service.trace_csta(self.mac, "out", request)
        body = codec.encode(request, self.edition)
        try:
            sent = self.service.ua.dialog_request_nowait(
                usage, "INFO", body=body, content_type=CSTA_TYPE, timeout=self.csta_timeout
            )
        except (TransportError, DialogError, OSError) as exc:
            self._lost(f"sending to the phone failed: {exc}")
            answer.set_result(m.CSTAErrorCode.system_resource_availability("outOfService"))
            return answer
        self.requests_sent += 1
        self.in_flight += 1
        started = time.perf_counter()

        def answered(done: asyncio.Future[Response]) -> None:
            self.in_flight -= 1
            if not answer.done():
                answer.set_result(self._answer_from(request, done, started))

        sent.add_done_callback(answered)
        return answer

    def _answer_from(
        self, request: m.CstaRequest, done: asyncio.Future[Response], started: float
    ) -> m.CstaMessage:
        """The CSTA answer the phone's response to ``request`` carries (or why there is none)."""
        if done.cancelled():
            return m.CSTAErrorCode.system_resource_availability("outOfService")
        exc = done.exception()
        if isinstance(exc, TimeoutError):
            self.timeouts += 1
            self.log.warning(
                "%s did not answer %s within %ss",
                self.mac,
                type(request).__name__,
                self.csta_timeout,
            )
            return m.CSTAErrorCode.timeout()
        if exc is not None:
            self._lost(f"sending to the phone failed: {exc}")
            return m.CSTAErrorCode.system_resource_availability("outOfService")
        response = done.result()
        self.service.observe_latency(type(request).__name__, time.perf_counter() - started)
        if response.status_code in (408, 481) or (
            response.status_code == 503 and not response.has_header("Retry-After")
        ):
            self._lost(f"INFO answered {response.status_code} {response.reason}")
            return m.CSTAErrorCode.system_resource_availability("outOfService")
        if not response.is_success:
            self.log.warning(
                "%s answered %s with SIP %d", self.mac, type(request).__name__, response.status_code
            )
            return m.CSTAErrorCode.operation("generic")
        if not response.body:
            cls = m.response_class_for(type(request))
            return cls() if cls is not None else m.CSTAErrorCode.unspecified()
        try:
            answer, _edition = codec.decode_with_edition(response.body)
        except CstaDecodeError as exc:
            self.log.warning("%s sent an undecodable CSTA answer: %s", self.mac, exc)
            return m.CSTAErrorCode.operation("generic")
        self.service.trace_csta(self.mac, "in", answer)
        return answer

    # ------------------------------------------------------------------ from the phone
    def _on_request(self, sr: ServerRequest) -> None:
        request = sr.request
        match request.method:
            case "INFO":
                self._on_info(sr)
            case "BYE":
                sr.reply(200)
                self._lost("BYE from the phone")
            case "INVITE":
                self._on_reinvite(sr)
            case "OPTIONS":
                sr.reply(200, headers=(("Allow", ALLOW),))
            case _:
                sr.reply(501)

    def _on_reinvite(self, sr: ServerRequest) -> None:
        assert self.usage is not None
        answer = negotiate_session_timer_uas(sr.request)
        if answer.status_code != 200:
            sr.reply(answer.status_code, headers=answer.headers)
            return
        now = asyncio.get_running_loop().time()
        if answer.session_expires is not None and answer.session_expires.refresher is not None:
            self.usage.dialog.session_refreshed(
                now,
                answer.session_expires.interval,
                answer.session_expires.refresher,
                local_is_uac=False,
            )
        contact = self.service.ua.contact(
            self.usage.flow.transport, "uacsta", self.target.local_host
        )
        body = codec.encode(m.RequestSystemStatusResponse(system_status="normal"), self.edition)
        sr.reply(
            200,
            to_tag=None,
            headers=(*answer.headers, ("Contact", contact)),
            body=body,
            content_type=CSTA_TYPE,
        )

    def _on_info(self, sr: ServerRequest) -> None:
        request = sr.request
        if not request.body:
            sr.reply(200)
            return
        if request.content_type not in (CSTA_TYPE, "application/xml", "text/xml"):
            sr.reply(415, headers=(("Accept", CSTA_TYPE),))
            return
        try:
            message = codec.decode(request.body)
        except CstaDecodeError as exc:
            self.log.warning("undecodable CSTA from %s: %s", self.mac, exc)
            self._reply_csta(sr, m.CSTAErrorCode.operation("generic"))
            return
        self.service.trace_csta(self.mac, "in", message)
        match message:
            case m.CstaEvent():
                sr.reply(200)
                if self.state is LinkState.READY:
                    self.service.hub.phone_event(self.mac, message)
            case m.SwitchingFunctionDevices():
                sr.reply(200)
                self._segments.extend(e.device_id for e in message.device_list if e.device_id)
                if message.last_segment is not False:
                    self._lines_complete()
            case m.SwFunctionDevicesChanged():
                self._reply_csta(sr, m.SwFunctionDevicesChangedResponse())
                if self.state is LinkState.READY:
                    asyncio.get_running_loop().create_task(self._relearn_lines())
            case m.SystemStatus():
                self._reply_csta(sr, m.SystemStatusResponse())
            case m.RequestSystemStatus():
                self._reply_csta(sr, m.RequestSystemStatusResponse(system_status="normal"))
            case m.MonitorStop():
                # The phone ended a monitor itself: the switching function restarts it.
                self._reply_csta(sr, m.MonitorStopResponse())
                if self.state is LinkState.READY:
                    ended = m.MonitorEndedEvent(monitor_cross_ref_id=message.monitor_cross_ref_id)
                    self.service.hub.phone_event(self.mac, ended)
            case m.CstaResponse():
                sr.reply(200)
            case _:
                self._reply_csta(sr, m.CSTAErrorCode.operation("invalidFeature"))

    def _lines_complete(self) -> None:
        lines = list(dict.fromkeys(self._segments)) or [self.target.aor]
        self._segments = []
        if self.state is LinkState.READY and lines != self.lines:
            self.lines = lines
            self.service.lines_changed(self)
            self.service.hub.phone_lines_changed(self.mac, lines)
        else:
            self.lines = lines
        if self._lines_known is not None and not self._lines_known.done():
            self._lines_known.set_result(None)

    async def _relearn_lines(self) -> None:
        answer = await self.csta_request(m.GetSwitchingFunctionDevices(), internal=True)
        if isinstance(answer, m.CSTAErrorCode):
            self.log.warning("%s refused GetSwitchingFunctionDevices after a change", self.mac)

    def _reply_csta(self, sr: ServerRequest, message: m.CstaMessage) -> None:
        self.service.trace_csta(self.mac, "out", message)
        sr.reply(200, body=codec.encode(message, self.edition), content_type=CSTA_TYPE)
