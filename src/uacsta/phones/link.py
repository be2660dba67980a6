"""The uaCSTA link to one phone (ECMA TR/87): the asyncio driver of a sans-IO dialog.

Every protocol rule (INVITE body, line learning, keep-alive, RFC 4028 refresh, SIP status →
CSTA error, what the phone may send) lives in :class:`uacsta.tr87.CstaDialog` with the role
``SERVER_TO_PHONE``. This module only feeds it what arrives, puts what it emits on the wire
through the user agent, follows its one timer with one ``call_at`` and tells the phone
service and the hub what happened. Vendor knowledge comes from :mod:`uacsta.phones.vendors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from uacsta import tr87
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.net.dialogdriver import DialogDriver
from uacsta.net.errors import TransportError
from uacsta.net.flow import Flow
from uacsta.net.useragent import DialogUsage
from uacsta.phones.mac import normalize_mac
from uacsta.phones.vendors import VendorProfile, WriteForm
from uacsta.sip.dialog import Dialog, DialogError
from uacsta.sip.errors import SipParseError
from uacsta.sip.helpers import generate_call_id
from uacsta.sip.message import Response
from uacsta.sip.registrar import route_to
from uacsta.tr87 import MAX_IN_FLIGHT, State, account_key

if TYPE_CHECKING:
    from uacsta.phones.service import PhoneService


log = logging.getLogger("uacsta.phones.link")

_OUT_OF_SERVICE = m.CSTAErrorCode.system_resource_availability("outOfService")

#: Seconds a stopping link waits for the phone's answer to its BYE. The BYE goes out at once
#: (and once more at T1 over UDP); a live phone answers in milliseconds, and a phone that is
#: gone must not hold up a shutdown or a disable.
BYE_WAIT = 1.0


class LinkState(enum.Enum):
    LINKING = "linking"
    READY = "ready"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Target:
    """Where the phone is: its registered contact, the flow it registered on, its AOR.

    Behind an edge proxy ``route`` holds the Path the phone registered with (RFC 3327):
    the INVITE carries it as Route headers and ``flow`` leads to its first hop.
    """

    contact: str
    flow: Flow
    aor: str
    #: Our address as the phone knows it (the host it registered to).
    local_host: str | None
    route: tuple[str, ...] = ()


@functools.lru_cache(maxsize=256)
def _services(profile: VendorProfile, firmware: str | None) -> frozenset[str]:
    """The services a phone supports, shared by every phone of one type and firmware."""
    return profile.services(firmware)


class PhoneLink:
    """The CSTA link to one phone: a :class:`CstaDialog` driven over the user agent."""

    # Slots: one of these lives for every linked phone.
    __slots__ = ("_keep_usage", "_task", "_waiters", "_waiting", "dialog", "driver", "firmware",
                 "mac", "profile", "requests_sent", "service", "services", "target")  # fmt: skip

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
        self.firmware = firmware
        self.services = _services(profile, firmware)
        settings, form = service.settings.phones, profile.write_form
        own_key = account_key(target.aor)
        mac_named = own_key is not None and normalize_mac(own_key.split("@", 1)[0]) == mac
        self.dialog = tr87.CstaDialog(
            role=tr87.Role.SERVER_TO_PHONE,
            aor=target.aor,
            services=self.services,
            edition=codec.Edition[profile.edition.upper()],
            dialect=None if form is WriteForm.STANDARD else codec.Dialect[form.name],
            keepalive_interval=float(settings.keepalive_interval),
            session_expires=int(settings.session_expires),
            csta_timeout=float(settings.csta_timeout),
            own_account=target.aor if mac_named else None,
            trace=functools.partial(service.trace_csta, mac),
            logger=self.log,
        )
        self.driver = DialogDriver(self.dialog, service.ua, self._act)
        self.requests_sent = 0
        self._task: asyncio.Task[None] | None = None
        #: token → who gets the answer
        self._waiters: dict[int, Callable[[m.CstaMessage], None]] = {}
        #: Stopping with a BYE: the SIP dialog stays registered until the BYE is answered.
        self._keep_usage = False
        self._waiting: asyncio.Future[None] | None = None

    # --- what the rest of the server reads ---------------------------------------------------
    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The link's logger; ``mac`` lets the diagnostics page filter by phone."""
        return logging.LoggerAdapter(log, {"mac": self.mac})

    @property
    def usage(self) -> DialogUsage | None:
        """The SIP dialog with the phone, from the 2xx to our INVITE on."""
        return self.driver.usage

    @property
    def state(self) -> LinkState:
        if self.dialog.state is State.LOST:
            return LinkState.LOST
        return LinkState.READY if self.dialog.is_ready else LinkState.LINKING

    @property
    def reason(self) -> str | None:
        return self.dialog.reason

    @property
    def lines(self) -> list[str]:
        """The lines as clients name them (see :func:`client_device_id`)."""
        return self.dialog.lines

    @property
    def in_flight(self) -> int:
        return self.dialog.in_flight

    @property
    def timeouts(self) -> int:
        return self.dialog.timeouts

    def __repr__(self) -> str:
        return f"<PhoneLink {self.mac} {self.state.value}>"

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"link-{self.mac}")

    async def _run(self) -> None:
        try:
            async with self.service.setup_slots:  # phones.max_parallel_setups
                await self._establish()
                await self._learn_lines()
        except asyncio.CancelledError:
            self.dialog.stop("stopped", bye=False)
            self.driver.pump()
            raise
        except Exception as exc:  # a bug must not leave the phone half-linked
            self.log.exception("link to %s crashed", self.mac)
            self.dialog.stop(f"internal error: {exc}", bye=False)
            self.driver.pump()

    async def _establish(self) -> None:
        """Send the INVITE and wait until the phone accepted it (or the link is lost)."""
        await self._reach_edge()
        ua, flow, host = self.service.ua, self.target.flow, self.target.local_host
        target = tr87.InviteTarget(
            uri=self.target.contact,
            to=self.target.aor,
            contact=ua.contact(flow.transport, "uacsta", host),
            via=ua.via(flow.transport, host),
            call_id=generate_call_id(host or "uacsta"),
            route=self.target.route,
        )
        self.dialog.start(target, self._now())
        self.driver.pump()
        await self._wait_while(State.INVITING)

    async def _reach_edge(self) -> None:
        """Behind an edge proxy, a closed connection to it is not the phone's: the INVITE goes
        to the first Path hop over a new one (RFC 3327 §5.3). A phone without a Path is
        reached only over the flow it registered on (its NAT binding, its connection)."""
        target, ua = self.target, self.service.ua
        if not target.route or ua.transport.is_open(target.flow):
            return
        try:
            hop = route_to(target.contact, target.route)
            flow = await ua.flow_to(hop.transport, hop.host, hop.port)
        except (SipParseError, TransportError, OSError) as exc:
            self.log.info("edge proxy of %s not reachable: %s", self.mac, exc)
            return  # the INVITE fails on the old flow, and the link with it
        self.target = dataclasses.replace(target, flow=flow)

    async def _learn_lines(self) -> None:
        """Wait while the dialog learns the phone's lines (SystemRegister, GetSwitching...)."""
        await self._wait_while(State.LEARNING)

    async def _wait_while(self, state: State) -> None:
        """Hold the set-up slot while the dialog is in ``state`` (:meth:`_act` wakes it)."""
        while self.dialog.state is state:
            self._waiting = asyncio.get_running_loop().create_future()
            await self._waiting

    async def stop(self, reason: str = "stopped", *, bye: bool = True) -> None:
        """Tear the link down (disable, un-register, shutdown): lost at once, then BYE."""
        usage = self.usage
        send_bye = bye and usage is not None and self.state is not LinkState.LOST
        self._keep_usage = send_bye
        self.dialog.stop(reason, bye=send_bye)
        self.driver.pump()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if send_bye and usage is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.service.ua.request("BYE", usage), BYE_WAIT)
            self.service.ua.remove_usage(usage)

    # --- the dialog's events ------------------------------------------------------------------
    def _act(self, event: tr87.DialogEvent) -> None:
        """What the dialog emitted besides in-dialog requests and answers (the driver's)."""
        match event:
            case tr87.Answer():  # first: one per client request
                self._answer(event)
            case tr87.SendRequest():  # the INVITE, out of dialog
                self._send_invite(event)
            case tr87.Measured():
                self.service.observe_latency(event.service, event.seconds)
            case tr87.PhoneEvent():
                self.service.hub.phone_event(self.mac, event.event)
            case tr87.AuthRequired():
                password = self.service.password_for_mac(self.mac)
                self.dialog.answer_challenge(self.mac, password, self._now())
            case tr87.Established():
                assert event.response is not None
                self._confirm(event.response)
            case tr87.Ready():
                self._become_ready(event)
            case tr87.LinesChanged():
                self.service.lines_changed(self)
                self.service.hub.phone_lines_changed(self.mac, event.lines, aliases=event.aliases)
            case tr87.Lost():
                self._lost(event)
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _now(self) -> float:
        return self.driver.now()

    def _send_invite(self, event: tr87.SendRequest) -> None:
        """The (initial) INVITE goes out of dialog, on the flow the phone registered on. Its
        answer is acted on as it is read (the 2xx ACKed at once): a task resumed later, under
        a burst of phones linking, let phones re-send their 2xx for want of the ACK."""
        invite = event.request
        assert invite is not None
        token = event.token

        def result(outcome: Response | BaseException) -> None:
            if isinstance(outcome, Response) and outcome.is_success:
                try:
                    dialog = Dialog.from_uac(invite, outcome)
                except DialogError as exc:
                    outcome = exc  # a 2xx no dialog can be made of: the set-up failed
                else:
                    self.driver.usage = DialogUsage(
                        dialog,
                        self.target.flow,
                        on_request=self.driver.receive,
                        local_host=self.target.local_host,
                    )
            self.driver.outcome(token, outcome)

        try:
            self.service.ua.request(invite, self.target.flow, then=result, timeout=event.timeout)
        except (TransportError, DialogError, OSError) as exc:
            result(exc)

    def _confirm(self, response: Response) -> None:
        usage = self.usage
        assert usage is not None  # made from the 2xx in _send_invite
        self.driver.contact = self.service.ua.contact(
            usage.flow.transport, "uacsta", self.target.local_host
        )
        self.service.ua.add_usage(usage)
        self.service.ua.ack_2xx(usage, response)
        self.log.info("CSTA dialog with %s established (%s)", self.mac, usage.flow)

    def _become_ready(self, event: tr87.Ready) -> None:
        self.service.link_ready(self)
        # services=None: the switch offers everything and relays; what this phone cannot
        # do is refused by :meth:`refusal`, with the reason, before anything is sent.
        self.service.hub.phone_ready(
            self.mac,
            self,
            event.lines,
            services=None,
            emulate_alternate_call=self.profile.emulate_alternate_call,
            offered=self.services,
            aliases=event.aliases,
            names_releasing_device=self.profile.names_releasing_device,
        )

    def _lost(self, event: tr87.Lost) -> None:
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()  # it may be waiting for the set-up
        if self.usage is not None and not self._keep_usage:
            self.service.ua.remove_usage(self.usage)
        if event.was_ready:
            self.service.hub.phone_lost(self.mac, event.reason)
        self.log.info("link to %s lost: %s", self.mac, event.reason)
        self.service.link_ended(self, event.reason)

    # --- CSTA requests (the hub's PhoneChannel) ------------------------------------------------
    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        """The error and its reason when ``request`` must not (or need not) go to the phone:
        a service the phone lacks, or a request it is known to leave unanswered."""
        return self.profile.refuse(request, self.firmware, self.mac)

    def features(self) -> dict[str, dict[str, object]]:
        """Per service: offered or not, why not, what to know (see the vendor profile)."""
        return self.profile.features(self.firmware)

    def csta_request_then(
        self, request: m.CstaRequest, done: Callable[[m.CstaMessage], None]
    ) -> None:
        """Send one CSTA request; ``done`` gets the answer (or a ``CSTAErrorCode``) once, as
        the phone's response is read, before what the phone sent after it (its 200 precedes
        the events it causes); at once when the request is not sent. No task per request."""
        dialog = self.dialog
        if self.usage is None or not dialog.is_ready:
            done(_OUT_OF_SERVICE)
            return
        if dialog.in_flight >= MAX_IN_FLIGHT:
            # Clients together may not queue unbounded work on one phone.
            self.log.warning("%s has %d CSTA requests in flight", self.mac, dialog.in_flight)
            done(m.CSTAErrorCode.performance_management("performanceLimitExceeded"))
            return
        refused = self.refusal(request)
        if refused is not None:
            self.log.info("%s not sent: %s", type(request).__name__, refused[1])
            done(refused[0])
            return
        token = dialog.csta_request(request, self._now())
        self._waiters[token] = done
        self.requests_sent += 1
        self.driver.pump()

    def _answer(self, event: tr87.Answer) -> None:
        if event.latency is not None:
            self.service.observe_latency(event.service, event.latency)
        done = self._waiters.pop(event.token, None)
        if done is not None:
            done(event.message)
