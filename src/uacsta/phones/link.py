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
import dataclasses
import enum
import functools
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.errors import CstaDecodeError
from uacsta.net.errors import TransportError
from uacsta.net.flow import Flow
from uacsta.net.useragent import DialogUsage, ServerRequest
from uacsta.phones.mac import normalize_mac
from uacsta.phones.vendors import ALL_SERVICES, Refusal, VendorProfile, WriteForm
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

_M = TypeVar("_M", bound=m.CstaMessage)

CSTA_TYPE = "application/csta+xml"
DISPOSITION = "signal;handling=required"
ALLOW = "INVITE, ACK, BYE, CANCEL, INFO, OPTIONS"

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
def _services(profile: VendorProfile, firmware: str | None) -> frozenset[str]:
    """The services a phone supports, shared by every phone of one type and firmware."""
    return profile.services(firmware)


def _account_key(text: str) -> str | None:
    """``user@host`` of a SIP device ID, as the Yealink firmware matches accounts: scheme,
    port and parameters dropped (None: not a SIP URI with a user part)."""
    low = text[:5].lower()
    if low.startswith("sips:"):
        rest = text[5:]
    elif low.startswith("sip:"):
        rest = text[4:]
    else:
        return None
    user, at, host = rest.partition("@")
    if not at or not user:
        return None
    return f"{user}@{_HOST_END.split(host, maxsplit=1)[0].lower()}"


_HOST_END = re.compile(r"[:;?>]")


def client_device_id(phone_form: str) -> str:
    """The device ID clients use for a line the phone lists as ``phone_form``.

    Yealink lists ``sip:user@server:port;tel=+49...``: the port is the account's SIP server
    port and ``;tel`` its CSTA number, neither part of the line's identity; a CTI client
    monitors ``sip:user@server``. Other parameters (``;user=phone``) are kept as the phone
    wrote them."""
    text = phone_form.strip()
    low = text[:5].lower()
    if not low.startswith(("sip:", "sips:")):
        return text
    scheme, _, rest = text.partition(":")
    address, _, params = rest.partition(";")
    user, at, host = address.partition("@")
    if not at:
        return text
    if host.startswith("["):  # IPv6 reference: the port follows the bracket
        close = host.find("]")
        host = host[: close + 1] if close > 0 else host
    else:
        host = host.split(":", 1)[0]
    kept = [p for p in params.split(";") if p and not p.lower().startswith("tel=")]
    return f"{scheme}:{user}@{host}" + "".join(f";{p}" for p in kept)


#: Request fields that hold a device of the phone itself (mapped to the phone's own string).
_DEVICE_FIELDS = frozenset(
    {"device_id", "calling_device", "device", "monitor_object", "snapshot_object",
     "requesting_device"}
)  # fmt: skip


_FIELDS: dict[type, tuple[str, ...]] = {}


def _init_fields(cls: type) -> tuple[str, ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.init)
    return found


def _map_strings(obj: Any, fn: Callable[[str], str], names: frozenset[str] | None) -> Any:
    """``obj`` with ``fn`` applied to its strings (only fields in ``names`` when given);
    the same object when nothing changed. (Field names cached per class: this runs for
    every event of a phone whose lines are renamed.)"""
    if isinstance(obj, tuple):
        items = tuple(_map_strings(x, fn, names) for x in obj)
        return obj if all(a is b for a, b in zip(items, obj, strict=True)) else items
    if isinstance(obj, (str, bytes, int, float)) or not dataclasses.is_dataclass(obj):
        return obj
    if isinstance(obj, type):
        return obj
    changes: dict[str, Any] = {}
    for name in _init_fields(type(obj)):
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, str):
            if names is None or name in names:
                new = fn(value)
                if new is not value:
                    changes[name] = new
        elif isinstance(value, tuple) or dataclasses.is_dataclass(value):
            new = _map_strings(value, fn, names)
            if new is not value:
                changes[name] = new
    return dataclasses.replace(obj, **changes) if changes else obj


def _dialect_kwargs(form: WriteForm) -> dict[str, codec.Dialect]:
    """The codec's ``dialect`` argument for a vendor's write form (none: the standard)."""
    if form is WriteForm.STANDARD:
        return {}
    return {"dialect": codec.Dialect[form.name]}


def _starts_monitor(answer: m.CstaMessage) -> bool:
    """A usable answer to MonitorStart: its response with a cross-ref ID, or a CSTA error."""
    if isinstance(answer, m.MonitorStartResponse):
        return bool(answer.monitor_cross_ref_id)
    return isinstance(answer, m.CSTAErrorCode)


class PhoneLink:
    """The CSTA link to one phone: set-up, keep-alive, refresh, requests, loss."""

    # Slots: one of these lives for every linked phone.
    __slots__ = (
        "_client_by_key",
        "_dialect",
        "_lines_known",
        "_phone_form",
        "_segments",
        "_task",
        "csta_timeout",
        "edition",
        "firmware",
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
        self.firmware = firmware
        self.services = _services(profile, firmware)
        self._dialect = _dialect_kwargs(profile.write_form)
        settings = service.settings.phones
        self.keepalive_interval = float(settings.keepalive_interval)
        self.session_expires = int(settings.session_expires)
        self.csta_timeout = float(settings.csta_timeout)
        self.edition = codec.Edition[profile.edition.upper()]
        self.state = LinkState.LINKING
        self.reason: str | None = None
        self.usage: DialogUsage | None = None
        #: The lines as clients name them (see :func:`client_device_id`).
        self.lines: list[str] = []
        #: client device ID → the phone's own string, where they differ.
        self._phone_form: dict[str, str] = {}
        #: account key (user@host) → client device ID, for what the phone sends.
        self._client_by_key: dict[str, str] = {}
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
        # services=None: the switch offers everything and relays; what this phone cannot
        # do is refused by :meth:`refusal`, with the reason, before anything is sent.
        self.service.hub.phone_ready(
            self.mac,
            self,
            self.lines,
            services=None,
            emulate_alternate_call=self.profile.emulate_alternate_call,
            offered=self.services,
            aliases=self.line_aliases(),
        )

    def line_aliases(self) -> dict[str, list[str]]:
        """Other names of the lines: a Yealink account's ``;tel=`` CSTA number, as a tel URI,
        so a client may monitor the line by it (``sip:101@pbx:5060;tel=+4930101``)."""
        aliases: dict[str, list[str]] = {}
        for client, own in self._phone_form.items():
            for param in own.split(";")[1:]:
                name, _, value = param.partition("=")
                if name.strip().lower() == "tel" and value.strip():
                    tel = value.strip()
                    aliases.setdefault(client, []).append(
                        tel if tel[:4].lower() == "tel:" else f"tel:{tel}"
                    )
        return aliases

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
    def refusal(self, request: m.CstaRequest) -> tuple[m.CSTAErrorCode, str] | None:
        """The error and its reason when ``request`` must not (or need not) go to the phone:
        a service the phone lacks, or a request it is known to leave unanswered."""
        service = type(request).__name__
        found: Refusal | None = self.profile.refusal(service, self.firmware)
        if found is None:
            found = self.profile.predict_silence(request)
        if found is None:
            return None
        return found.error(), f"{self.profile.name} phone {self.mac}: {found.reason}"

    def features(self) -> dict[str, dict[str, object]]:
        """Per service: offered or not, why not, and what to know about the phone's answer."""
        general = self.profile.notes.get("*")
        out: dict[str, dict[str, object]] = {}
        for service in sorted(ALL_SERVICES):
            found = self.profile.refusal(service, self.firmware)
            note = self.profile.notes.get(service) or general
            emulated = service == "AlternateCall" and self.profile.emulate_alternate_call
            out[service] = {
                "supported": found is None,
                "reason": found.reason if found else None,
                "error": f"{found.category}/{found.value}" if found else None,
                "note": "done as HoldCall + RetrieveCall" if emulated else note,
            }
        return out

    def to_phone_form(self, request: m.CstaRequest) -> m.CstaRequest:
        """``request`` with the phone's own lines as the phone lists them."""
        if not self._phone_form:
            return request
        forms = self._phone_form
        by_key = self._client_by_key

        def own(text: str) -> str:
            key = _account_key(text)
            client = by_key.get(key) if key is not None else None
            return forms.get(client, text) if client is not None else text

        mapped: m.CstaRequest = _map_strings(request, own, _DEVICE_FIELDS)
        return mapped

    def to_client_form(self, message: _M) -> _M:
        """What the phone sent, with its lines as clients name them."""
        if not self._phone_form:
            return message
        by_key = self._client_by_key

        def client(text: str) -> str:
            key = _account_key(text)
            return by_key.get(key, text) if key is not None else text

        mapped: _M = _map_strings(message, client, None)
        return mapped

    async def csta_request(
        self, request: m.CstaRequest, *, internal: bool = False
    ) -> m.CstaMessage:
        """Send one CSTA request in INFO; the 2xx body is the answer (PhoneChannel)."""
        return await self.csta_request_nowait(request, internal=internal)

    def csta_request_nowait(
        self, request: m.CstaRequest, *, internal: bool = False
    ) -> asyncio.Future[m.CstaMessage]:
        """:meth:`csta_request` as a future that always gets a result (an answer or a
        ``CSTAErrorCode``). Its callbacks run a loop iteration late, after the phone's
        later INFOs: the hub relays through :meth:`csta_request_then` instead."""
        answer: asyncio.Future[m.CstaMessage] = asyncio.get_running_loop().create_future()

        def settle(result: m.CstaMessage) -> None:
            if not answer.done():
                answer.set_result(result)

        self.csta_request_then(request, settle, internal=internal)
        return answer

    def csta_request_then(
        self,
        request: m.CstaRequest,
        done: Callable[[m.CstaMessage], None],
        *,
        internal: bool = False,
    ) -> None:
        """Send one CSTA request; ``done`` gets the answer (or a ``CSTAErrorCode``) exactly
        once, as soon as the phone's response is read, before anything the phone sent after
        it: the firmware answers before it acts, so its 200 precedes the events it causes and
        clients must see them in that order. ``done`` runs before this returns when the
        request is not sent. No task or future per request: the hub relays through this."""
        usage = self.usage
        if (
            usage is None
            or self.state is LinkState.LOST
            or (not internal and self.state is not LinkState.READY)
        ):
            done(m.CSTAErrorCode.system_resource_availability("outOfService"))
            return
        if self.in_flight >= MAX_IN_FLIGHT:
            # Clients together may not queue unbounded work on one phone.
            self.log.warning("%s has %d CSTA requests in flight", self.mac, self.in_flight)
            done(m.CSTAErrorCode.performance_management("performanceLimitExceeded"))
            return
        refused = self.refusal(request)
        if refused is not None:
            self.log.info("%s not sent: %s", type(request).__name__, refused[1])
            done(refused[0])
            return
        request = self.to_phone_form(request)
        self.service.trace_csta(self.mac, "out", request)
        body = codec.encode(request, self.edition, **self._dialect)
        started = time.perf_counter()
        self.in_flight += 1  # before sending: a failed flow answers before the send returns

        def answered(result: Response | BaseException) -> None:
            self.in_flight -= 1
            done(self._answer_from(request, result, started))

        try:
            self.service.ua.dialog_request_then(
                usage,
                "INFO",
                answered,
                body=body,
                content_type=CSTA_TYPE,
                timeout=self.csta_timeout,
            )
        except (TransportError, DialogError, OSError) as exc:
            self.in_flight -= 1
            self._lost(f"sending to the phone failed: {exc}")
            done(m.CSTAErrorCode.system_resource_availability("outOfService"))
            return
        self.requests_sent += 1

    def _answer_from(
        self, request: m.CstaRequest, result: Response | BaseException, started: float
    ) -> m.CstaMessage:
        """The CSTA answer the phone's response to ``request`` carries (or why there is none)."""
        if isinstance(result, asyncio.CancelledError):
            return m.CSTAErrorCode.system_resource_availability("outOfService")
        exc = result if isinstance(result, BaseException) else None
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
        assert isinstance(result, Response)
        response = result
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
            return self._fault(request, f"SIP {response.status_code} {response.reason}")
        if not response.body:
            if isinstance(request, m.MonitorStart):
                return self._fault(request, "no monitorCrossRefID (an empty 200)")
            cls = m.response_class_for(type(request))
            return cls() if cls is not None else m.CSTAErrorCode.unspecified()
        try:
            answer, _edition = codec.decode_with_edition(response.body)
        except CstaDecodeError as exc:
            self.log.warning("%s sent an undecodable CSTA answer: %s", self.mac, exc)
            return self._fault(request, "an undecodable body")
        self.service.trace_csta(self.mac, "in", answer)
        if isinstance(request, m.MonitorStart) and not _starts_monitor(answer):
            return self._fault(request, f"{type(answer).__name__} without monitorCrossRefID")
        return self.to_client_form(answer)

    def _fault(self, request: m.CstaRequest, what: str) -> m.CSTAErrorCode:
        """The phone answered ``request`` with no usable CSTA answer (a SIP error, garbage).

        For MonitorStart its monitors cannot start: left "ready", clients' monitors would
        silently never start. The link is reported lost instead (inventory state ``failed``
        with this reason, OutOfService to the clients, once however often it fails) and set
        up again after ``relink_backoff``, doubled for each failure of the same kind in a row
        up to ``relink_backoff_max``. A well-formed CSTA error is the phone's verdict on the
        line, not a fault: it reaches the clients (see the switching function).
        """
        if isinstance(request, m.MonitorStart):
            self._lost(f"answered MonitorStart with {what}")
            return m.CSTAErrorCode.system_resource_availability("outOfService")
        return m.CSTAErrorCode.operation("generic")

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
                    self.service.hub.phone_event(self.mac, self.to_client_form(message))
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
        lines = self._learn_forms(list(dict.fromkeys(self._segments)) or [self.target.aor])
        self._segments = []
        if self.state is LinkState.READY and lines != self.lines:
            self.lines = lines
            self.service.lines_changed(self)
            self.service.hub.phone_lines_changed(self.mac, lines, aliases=self.line_aliases())
        else:
            self.lines = lines
        if self._lines_known is not None and not self._lines_known.done():
            self._lines_known.set_result(None)

    def _learn_forms(self, phone_forms: list[str]) -> list[str]:
        """The client device IDs of ``phone_forms``, remembering the phone's own strings.

        The account the phone registers to uacsta with (user name = its MAC) is no line a
        client controls, but a Yealink lists it with the others: it is left out (unless it is
        all there is). A phone registered with a real line's name keeps that line."""
        own_key = _account_key(self.target.aor)
        if own_key is not None and normalize_mac(own_key.split("@", 1)[0]) == self.mac:
            lines_only = [p for p in phone_forms if _account_key(p) != own_key]
            phone_forms = lines_only or phone_forms
        lines: list[str] = []
        phone_form: dict[str, str] = {}
        by_key: dict[str, str] = {}
        for own in phone_forms:
            client = client_device_id(own)
            key = _account_key(own)
            if client in phone_form or (key is not None and key in by_key):
                client = own  # two accounts differ only in port or ;tel: keep them apart
                key = None
            lines.append(client)
            if key is not None:
                by_key[key] = client
            if client != own:
                phone_form[client] = own
        self._phone_form = phone_form
        self._client_by_key = by_key if phone_form else {}
        return list(dict.fromkeys(lines))

    async def _relearn_lines(self) -> None:
        answer = await self.csta_request(m.GetSwitchingFunctionDevices(), internal=True)
        if isinstance(answer, m.CSTAErrorCode):
            self.log.warning("%s refused GetSwitchingFunctionDevices after a change", self.mac)

    def _reply_csta(self, sr: ServerRequest, message: m.CstaMessage) -> None:
        self.service.trace_csta(self.mac, "out", message)
        sr.reply(200, body=codec.encode(message, self.edition), content_type=CSTA_TYPE)
