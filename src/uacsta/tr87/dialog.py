"""One uaCSTA dialog (ECMA TR/87): CSTA carried inside a SIP INVITE dialog, sans-IO.

Every uaCSTA rule of the server lives here, for the two roles it plays:

- ``SERVER_TO_PHONE``: we send the INVITE (RequestSystemStatus body,
  ``Content-Disposition: signal;handling=required``, RFC 4028 timer), then SystemRegister where
  offered and GetSwitchingFunctionDevices, whose answer is the phone's SwitchingFunctionDevices
  INFO listing its lines; then requests in INFO, a RequestSystemStatus keep-alive, re-INVITE
  refreshes. Any failure (no answer, 408/481, BYE) makes the dialog lost.
- ``CLIENT_GATEWAY``: we accept the INVITE (its CSTA body answered in the 200, the session
  timer negotiated), answer re-INVITE/UPDATE, OPTIONS and BYE, and a re-INVITE overlapping
  ours with 491.

The phone simulator does not use this dialog: a test peer running the server's own rules
would agree with every mistake in them, so it keeps its phone-side code apart.

The dialog never touches a socket or a clock. A driver feeds it what arrives (``receive_*``,
with ``now``), puts what it emits on the wire (:class:`SendRequest`, :class:`SendResponse`),
follows :meth:`CstaDialog.get_timer` with one timer and calls :meth:`CstaDialog.handle_timer`.
Requests we send are named by a token; the driver feeds the answer back under that token.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.errors import CstaDecodeError, error_code
from uacsta.sip.dialog import (
    MIN_SE_FLOOR,
    Refresher,
    interval_after_422,
    negotiate_session_timer_uas,
    session_timer_from_response,
    session_timer_request_headers,
)
from uacsta.sip.digest import answer_challenge
from uacsta.sip.errors import SipParseError
from uacsta.sip.helpers import generate_branch, generate_tag
from uacsta.sip.message import Request, Response
from uacsta.sip.uri import Via
from uacsta.tr87.lines import LineForms

__all__ = [
    "ACCEPTED_TYPES",
    "ALLOW",
    "CSTA_TYPE",
    "DISPOSITION",
    "KEEPALIVE_GRID",
    "MAX_IN_FLIGHT",
    "TRANSITIONS",
    "Answer",
    "AuthRequired",
    "CstaDialog",
    "DialogEvent",
    "Established",
    "Input",
    "InviteTarget",
    "LinesChanged",
    "Lost",
    "Measured",
    "PeerRequest",
    "PhoneEvent",
    "Ready",
    "Role",
    "SendRequest",
    "SendResponse",
    "State",
    "answer_for_response",
]

log = logging.getLogger("uacsta.tr87")

Headers = tuple[tuple[str, str], ...]

CSTA_TYPE: Final = "application/csta+xml"
DISPOSITION: Final = "signal;handling=required"

#: Keep-alive and session-refresh wake-ups are rounded up to this grid (seconds): dialogs
#: whose deadlines fall in one slot wake together.
KEEPALIVE_GRID: Final = 0.1

#: CSTA requests one dialog may have outstanding (phones answer one INFO at a time anyway).
MAX_IN_FLIGHT: Final = 32

#: INVITE attempts (401/407 once, 422 retries) before the set-up gives up.
INVITE_ATTEMPTS: Final = 4

#: Re-INVITE attempts per refresh (one 422 retry).
REFRESH_ATTEMPTS: Final = 2


class Role(enum.Enum):
    """Who we are in the dialog."""

    #: uacsta links to a phone: UAC of the INVITE, client of the phone's CSTA services.
    SERVER_TO_PHONE = "server-to-phone"
    #: A CTI client's TR/87 dialog to uacsta: UAS, uacsta is the switching function.
    CLIENT_GATEWAY = "client-gateway"


#: Content types a CSTA INFO may carry, per role (others are answered 415). Phones write
#: ``application/xml`` or ``text/xml``; a TR/87 client must write the registered type.
ACCEPTED_TYPES: Final[Mapping[Role, frozenset[str]]] = {
    Role.SERVER_TO_PHONE: frozenset({CSTA_TYPE, "application/xml", "text/xml"}),
    Role.CLIENT_GATEWAY: frozenset({CSTA_TYPE}),
}

#: The Allow header value, per role (what each side implements).
ALLOW: Final[Mapping[Role, str]] = {
    Role.SERVER_TO_PHONE: "INVITE, ACK, BYE, CANCEL, INFO, OPTIONS",
    Role.CLIENT_GATEWAY: "INVITE, ACK, BYE, CANCEL, INFO, OPTIONS, UPDATE",
}


class State(enum.Enum):
    IDLE = "idle"
    #: Our INVITE is out (UAC roles).
    INVITING = "inviting"
    #: The dialog is up; SystemRegister / GetSwitchingFunctionDevices run (server → phone).
    LEARNING = "learning"
    READY = "ready"
    #: Our refreshing re-INVITE is out; requests still flow.
    REFRESHING = "refreshing"
    LOST = "lost"


class Input(enum.Enum):
    START = "start"
    INVITE_RETRY = "invite-retry"  # 401/407 answered, or 422 with Min-SE
    INVITE_ACCEPTED = "invite-accepted"
    INVITE_FAILED = "invite-failed"
    PEER_INVITE = "peer-invite"  # the initial INVITE, accepted (UAS roles)
    LINES_KNOWN = "lines-known"
    REFRESH_DUE = "refresh-due"
    REFRESH_RETRY = "refresh-retry"
    REFRESHED = "refreshed"
    FAILURE = "failure"  # no answer, 408/481, refresh refused, session expired, BYE, stop


_LIVE = (State.IDLE, State.INVITING, State.LEARNING, State.READY, State.REFRESHING)

#: Every state change, as data (a pair not listed is ignored: the input is stale).
TRANSITIONS: Final[Mapping[tuple[State, Input], State]] = {
    (State.IDLE, Input.START): State.INVITING,
    (State.INVITING, Input.INVITE_RETRY): State.INVITING,
    (State.INVITING, Input.INVITE_ACCEPTED): State.LEARNING,
    (State.INVITING, Input.INVITE_FAILED): State.LOST,
    (State.IDLE, Input.PEER_INVITE): State.READY,
    (State.LEARNING, Input.LINES_KNOWN): State.READY,
    (State.READY, Input.LINES_KNOWN): State.READY,  # SwFunctionDevicesChanged re-read
    (State.READY, Input.REFRESH_DUE): State.REFRESHING,
    (State.REFRESHING, Input.REFRESH_RETRY): State.REFRESHING,
    (State.REFRESHING, Input.REFRESHED): State.READY,
    **{(state, Input.FAILURE): State.LOST for state in _LIVE},
}


@dataclass(frozen=True, kw_only=True, slots=True)
class InviteTarget:
    """Where and as whom the initial INVITE goes (UAC role): the driver knows the transport."""

    #: Request-URI: the phone's registered contact.
    uri: str
    #: The phone's address of record (To).
    to: str
    #: Our Contact, also our From address.
    contact: str
    #: Our Via, without branch (a new branch per attempt).
    via: Via
    call_id: str
    #: Route values, in order: the Path the phone registered with (RFC 3327 §5.3), when an
    #: edge proxy is in between; the driver sends the INVITE to the first of them.
    route: tuple[str, ...] = ()


# --- events ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class DialogEvent:
    """Something the driver acts on."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SendRequest(DialogEvent):
    """Send ``method`` (INVITE out of dialog when ``initial``, else in the dialog); feed its
    final response to :meth:`CstaDialog.receive_response` (or a failure) under ``token``."""

    token: int
    method: str
    body: bytes
    content_type: str | None
    headers: Headers
    #: Seconds the driver waits for the final response before reporting a timeout (None:
    #: the transaction's own limit, whose 408 the driver feeds back as a response).
    timeout: float | None
    #: The initial INVITE, complete: send it out of dialog (the other requests are built in
    #: the SIP dialog by the driver's user agent).
    request: Request | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SendResponse(DialogEvent):
    """Answer ``request`` (a request fed to :meth:`CstaDialog.receive_request`)."""

    request: Request
    status_code: int
    headers: Headers = ()
    body: bytes = b""
    content_type: str | None = None
    #: The INVITE's 2xx (or the UAS' first answer) sets our To tag.
    new_to_tag: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthRequired(DialogEvent):
    """The peer challenged our INVITE (401/407): answer with :meth:`CstaDialog.authorize`."""

    response: Response


@dataclass(frozen=True, kw_only=True, slots=True)
class Established(DialogEvent):
    """The INVITE dialog is up (UAC: ``response`` is the 2xx to ACK; UAS: the accepted
    INVITE is ``request``)."""

    response: Response | None = None
    request: Request | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Ready(DialogEvent):
    lines: list[str]
    aliases: dict[str, list[str]]


@dataclass(frozen=True, kw_only=True, slots=True)
class LinesChanged(DialogEvent):
    lines: list[str]
    aliases: dict[str, list[str]]


@dataclass(frozen=True, kw_only=True, slots=True)
class PhoneEvent(DialogEvent):
    """A CSTA event from the peer (server → phone: lines in the clients' form)."""

    event: m.CstaEvent


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerRequest(DialogEvent):
    """A TR/87 client's CSTA request that the owner answers: call
    :meth:`CstaDialog.answer_peer` with ``request`` and the answer (the dialog answers
    ``timeout`` itself once ``csta_timeout`` has passed)."""

    request: Request
    message: m.CstaMessage


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer(DialogEvent):
    """The answer (or a ``CSTAErrorCode``) to the request :meth:`CstaDialog.csta_request`
    sent under ``token``; ``latency`` is the seconds the peer took (None: not answered), for
    the latency metric of ``service`` (the request's name; one event per answer, not two)."""

    token: int
    message: m.CstaMessage
    latency: float | None = None
    service: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Measured(DialogEvent):
    """The peer answered one of the dialog's own CSTA requests (keep-alive, line learning)
    after ``seconds``: for the latency metric per ``service`` (a client's request carries
    its latency in its :class:`Answer`)."""

    service: str
    seconds: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Lost(DialogEvent):
    reason: str
    was_ready: bool
    #: Whether the driver should still send BYE (our stop) or only drop the dialog.
    send_bye: bool = False


# --- SIP status → CSTA -------------------------------------------------------------------------
def _starts_monitor(answer: m.CstaMessage) -> bool:
    """A usable answer to MonitorStart: its response with a cross-ref ID, or a CSTA error."""
    if isinstance(answer, m.MonitorStartResponse):
        return bool(answer.monitor_cross_ref_id)
    return isinstance(answer, m.CSTAErrorCode)


def _fault(request: m.CstaRequest, what: str) -> tuple[m.CSTAErrorCode, str | None]:
    """The peer answered ``request`` with no usable CSTA answer (a SIP error, garbage).

    For MonitorStart its monitors cannot start: left "ready", clients' monitors would
    silently never start, so the dialog is lost instead (the service re-links). A well-formed
    CSTA error is the phone's verdict on the line, not a fault: it reaches the clients."""
    if isinstance(request, m.MonitorStart):
        return (
            m.CSTAErrorCode.system_resource_availability("outOfService"),
            f"answered MonitorStart with {what}",
        )
    return m.CSTAErrorCode.operation("generic"), None


def answer_for_response(
    request: m.CstaRequest,
    response: Response | None,
    *,
    trace: Callable[[str, m.CstaMessage], None] | None = None,
) -> tuple[m.CstaMessage, str | None]:
    """The CSTA answer ``response`` carries for ``request``, and why the dialog is lost
    (None: it is not). ``response`` None: no answer in time (the timeout error).

    408/481 and 503 without Retry-After end the dialog (outOfService); other non-2xx and
    undecodable bodies are ``operation/generic``; an empty 2xx is the empty response class."""
    if response is None:
        return m.CSTAErrorCode.timeout(), None
    status = response.status_code
    if status in (408, 481) or (status == 503 and not response.has_header("Retry-After")):
        return (
            m.CSTAErrorCode.system_resource_availability("outOfService"),
            f"INFO answered {status} {response.reason}",
        )
    if not response.is_success:
        return _fault(request, f"SIP {status} {response.reason}")
    if not response.body:
        if isinstance(request, m.MonitorStart):
            return _fault(request, "no monitorCrossRefID (an empty 200)")
        cls = m.response_class_for(type(request))
        return (cls() if cls is not None else m.CSTAErrorCode.unspecified()), None
    try:
        answer = codec.decode(response.body)
    except CstaDecodeError:
        return _fault(request, "an undecodable body")
    if trace is not None:
        trace("in", answer)
    if isinstance(request, m.MonitorStart) and not _starts_monitor(answer):
        return _fault(request, f"{type(answer).__name__} without monitorCrossRefID")
    return answer, None


# --- the dialog --------------------------------------------------------------------------------
class _Purpose(enum.Enum):
    USER = "user"
    INVITE = "invite"
    REFRESH = "refresh"
    REGISTER = "register"
    LINES = "lines"
    RELEARN = "relearn"
    KEEPALIVE = "keepalive"


class CstaDialog:
    """One uaCSTA dialog; see the module docstring for how a driver uses it."""

    __slots__ = (
        "_auth",
        "_challenge",
        "_events",
        "_from_tag",
        "_held",
        "_in_flight",
        "_interval",
        "_invite_target",
        "_keepalive_at",
        "_keepalive_token",
        "_lines_at",
        "_lines_done",
        "_lines_token",
        "_next_token",
        "_peer",
        "_pending",
        "_rejected",
        "_segments",
        "_tries",
        "accepted_types",
        "allow",
        "aor",
        "csta_timeout",
        "dialect",
        "edition",
        "forms",
        "keepalive_interval",
        "lines",
        "log",
        "max_peer_requests",
        "min_se",
        "own_account",
        "reason",
        "role",
        "services",
        "session_expires",
        "session_expires_at",
        "session_interval",
        "session_refresh_at",
        "state",
        "timeouts",
        "trace",
    )  # fmt: skip

    def __init__(
        self,
        *,
        role: Role,
        aor: str = "",
        services: frozenset[str] = frozenset(),
        edition: codec.Edition = codec.Edition.ED3,
        dialect: codec.Dialect | None = None,
        keepalive_interval: float = 60.0,
        session_expires: int = 1800,
        csta_timeout: float = 4.0,
        own_account: str | None = None,
        min_se: int = MIN_SE_FLOOR,
        max_peer_requests: int = 64,
        trace: Callable[[str, m.CstaMessage], None] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        self.role = role
        self.min_se = min_se
        self.aor = aor
        self.services = services
        self.edition = edition
        self.dialect = dialect
        self.keepalive_interval = keepalive_interval
        self.session_expires = session_expires
        self.csta_timeout = csta_timeout
        self.max_peer_requests = max_peer_requests
        self.own_account = own_account
        self.trace = trace
        self.log = logger if logger is not None else log
        self.accepted_types = ACCEPTED_TYPES[role]
        self.allow = ALLOW[role]
        self.state = State.IDLE
        self.reason: str | None = None
        self.forms = LineForms()
        self.lines: list[str] = []
        self.timeouts = 0
        self.session_interval: int | None = None
        self.session_refresh_at: float | None = None
        self.session_expires_at: float | None = None
        self._events: list[DialogEvent] = []
        #: token → (why it was sent, the CSTA request, when it was sent).
        self._pending: dict[int, tuple[_Purpose, m.CstaRequest | None, float]] = {}
        self._next_token = 1
        self._in_flight = 0
        self._interval = session_expires
        self._auth: Headers = ()
        self._challenge: Response | None = None
        self._tries = 0
        self._invite_target: InviteTarget | None = None
        self._from_tag = ""
        #: Client gateway: INVITEs whose CSTA body the owner answers, with their 2xx headers
        #: and whether each is the dialog-creating one.
        self._held: dict[int, tuple[Request, Headers, bool]] = {}
        #: Client gateway: requests handed to the owner (:class:`PeerRequest`) and not yet
        #: answered, with their deadline; in deadline order (one timeout for all).
        self._peer: dict[int, tuple[Request, m.CstaMessage, float]] = {}
        self._rejected = ""
        self._segments: list[str] = []
        self._lines_token: int | None = None
        self._lines_done = False
        self._lines_at: float | None = None
        self._keepalive_at: float | None = None
        self._keepalive_token: int | None = None

    def __repr__(self) -> str:
        return f"<CstaDialog {self.role.value} {self.state.value}>"

    # --- the driver's side --------------------------------------------------------------------
    def events(self) -> list[DialogEvent]:
        """What happened since the last call, in order (the list is handed over)."""
        out, self._events = self._events, []
        return out

    @property
    def in_flight(self) -> int:
        """CSTA requests sent and not yet answered."""
        return self._in_flight

    @property
    def is_ready(self) -> bool:
        """Requests from clients may go out (a refresh in progress does not stop them)."""
        return self.state is State.READY or self.state is State.REFRESHING

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` wants to run (on the :data:`KEEPALIVE_GRID`), or None."""
        # Called after every event a driver carries out: no list, no generator.
        first = self._lines_at
        state = self.state
        if state is State.READY or state is State.REFRESHING:
            if state is State.READY:
                for t in (self._keepalive_at, self.session_refresh_at):
                    if t is not None and (first is None or t < first):
                        first = t
            t = self.session_expires_at
            if t is not None and (first is None or t < first):
                first = t
        if self._peer:
            t = next(iter(self._peer.values()))[2]
            if first is None or t < first:
                first = t
        if first is None:
            return None
        # Up to the grid; a float a hair above a grid point (30.1 / 0.1 = 301.0000000004)
        # stays on it. (No round(x, 9): it formats the float, and this runs per request.)
        return math.ceil(first / KEEPALIVE_GRID - 1e-6) * KEEPALIVE_GRID

    def handle_timer(self, now: float) -> None:
        """Act on every deadline that has passed at ``now``."""
        while self._peer:
            key, (request, message, deadline) = next(iter(self._peer.items()))
            if deadline > now:
                break
            del self._peer[key]
            self.log.warning(
                "no answer to %s within %ss", type(message).__name__, self.csta_timeout
            )
            self._answer(request, m.CSTAErrorCode.timeout())
        if self._lines_at is not None and now >= self._lines_at:
            self._lines_at = None
            self.log.warning("no SwitchingFunctionDevices from the phone: using its AOR")
            self._set_lines([self.aor])
            self._lines_ready(now)
        if self.state is State.READY:
            if self.session_refresh_at is not None and now >= self.session_refresh_at:
                self._step(Input.REFRESH_DUE)
                self._tries = 0
                self._interval = self.session_interval or self.session_expires
                self._send_refresh(now)
                return
            if self.session_expires_at is not None and now >= self.session_expires_at:
                self._fail("the phone did not refresh the session", send_bye=self._bye_on_expiry)
                return
            if self._keepalive_at is not None and now >= self._keepalive_at:
                self._keepalive_at = None
                self._keepalive_token = self._send_csta(
                    m.RequestSystemStatus(), _Purpose.KEEPALIVE, now
                )
        elif (
            self.state is State.REFRESHING
            and self.session_expires_at is not None
            and now >= self.session_expires_at
        ):
            self._fail("the phone did not refresh the session", send_bye=self._bye_on_expiry)

    @property
    def _bye_on_expiry(self) -> bool:
        """A TR/87 client whose session ran out still gets our BYE (it may be alive)."""
        return self.role is Role.CLIENT_GATEWAY

    # --- set-up (UAC) -------------------------------------------------------------------------
    def start(self, target: InviteTarget, now: float) -> None:
        """Send the INVITE (server → phone)."""
        self._invite_target = target
        self._from_tag = generate_tag()
        self._step(Input.START)
        self._tries = 1
        self._send_invite()

    def authorize(self, headers: Headers, now: float) -> None:
        """Retry the challenged INVITE with ``headers`` (Authorization); none: give up."""
        if self.state is not State.INVITING:
            return
        if not headers:
            self._step(Input.INVITE_FAILED, self._rejected)
            return
        self._auth = headers
        self._retry_invite()

    def answer_challenge(self, username: str, password: str, now: float) -> None:
        """Answer an :class:`AuthRequired` with digest credentials (snom ``csta_challenge``);
        a challenge without its header is given up on."""
        response = self._challenge
        if response is None or self._invite_target is None:
            return
        name = "WWW-Authenticate" if response.status_code == 401 else "Proxy-Authenticate"
        challenge = response.header(name)
        if challenge is None:
            self.authorize((), now)
            return
        uri = self._invite_target.uri
        value = answer_challenge(challenge, "INVITE", uri, username, password)
        header = "Authorization" if response.status_code == 401 else "Proxy-Authorization"
        self.authorize(((header, value),), now)

    def invite_body(self) -> bytes:
        """The INVITE / refresh body: RequestSystemStatus in our edition."""
        return codec.encode(m.RequestSystemStatus(), self.edition)

    def _send_invite(self) -> None:
        target = self._invite_target
        assert target is not None
        timer = session_timer_request_headers(self._interval, refresher=Refresher.UAC)
        body = self.invite_body()
        headers: Headers = (
            ("Via", str(target.via.with_param("branch", generate_branch()))),
            ("Max-Forwards", "70"),
            *(("Route", hop) for hop in target.route),
            ("From", f"{target.contact};tag={self._from_tag}"),
            ("To", f"<{target.to}>"),
            ("Call-ID", target.call_id),
            ("CSeq", f"{self._tries} INVITE"),
            ("Contact", target.contact),
            ("Allow", self.allow),
            ("Content-Disposition", DISPOSITION),
            ("Content-Type", CSTA_TYPE),
            *timer,
            *self._auth,
        )
        request = Request(method="INVITE", uri=target.uri, headers=headers, body=body)
        self._events.append(
            SendRequest(
                token=self._token(_Purpose.INVITE, None),
                method="INVITE",
                body=body,
                content_type=CSTA_TYPE,
                headers=headers,
                timeout=max(8.0, 2 * self.csta_timeout),
                request=request,
            )
        )

    def _on_invite_response(self, response: Response | None, now: float) -> None:
        if self.state is not State.INVITING:
            return  # stopped meanwhile
        if response is None:
            self._step(Input.INVITE_FAILED, "the phone did not answer the CSTA INVITE")
            return
        if response.is_success:
            self._step(Input.INVITE_ACCEPTED)
            self._session_from(response, now)
            if response.body:
                try:
                    message, edition = codec.decode_with_edition(response.body)
                except CstaDecodeError:
                    pass
                else:
                    if edition is not codec.Edition.NONE:
                        self.edition = edition  # answer the phone in the edition it speaks
                    self._traced("in", message)
            self._events.append(Established(response=response))
            self._learn(now)
            return
        status = response.status_code
        self._rejected = f"phone answered the CSTA INVITE with {status} {response.reason}"
        if status in (401, 407) and not self._auth:
            self._challenge = response
            self._events.append(AuthRequired(response=response))
            return
        if status == 422:
            try:
                self._interval = interval_after_422(response, self._interval)
            except SipParseError:
                self._step(Input.INVITE_FAILED, "phone answered 422 without Min-SE")
                return
            self._retry_invite()
            return
        self._step(Input.INVITE_FAILED, self._rejected)

    def _retry_invite(self) -> None:
        if self._tries >= INVITE_ATTEMPTS:
            self._step(Input.INVITE_FAILED, "CSTA INVITE not accepted after retries")
            return
        self._step(Input.INVITE_RETRY)
        self._tries += 1
        self._send_invite()

    def _session_from(self, response: Response, now: float) -> None:
        se = session_timer_from_response(response)
        if se is None or se.refresher is None:
            self._session_off()
        else:
            self._session_refreshed(now, se.interval, we_refresh=se.refresher is Refresher.UAC)

    def _session_off(self) -> None:
        self.session_interval = None
        self.session_refresh_at = None
        self.session_expires_at = None

    def _session_refreshed(self, now: float, interval: int, *, we_refresh: bool) -> None:
        """RFC 4028 §10: we refresh at half the interval; the peer's refresh is overdue at
        interval - min(32, interval/3) (the rule of ``sip.dialog.Dialog.session_refreshed``)."""
        self.session_interval = interval
        if we_refresh:
            self.session_refresh_at = now + interval / 2
            self.session_expires_at = None
        else:
            self.session_refresh_at = None
            self.session_expires_at = now + interval - min(32.0, interval / 3)

    # --- line learning (server → phone) -------------------------------------------------------
    def _learn(self, now: float) -> None:
        if "SystemRegister" in self.services:
            self._send_csta(
                m.SystemRegister(switching_function_devices_changed=True), _Purpose.REGISTER, now
            )
        else:
            self._request_lines(now)

    def _request_lines(self, now: float, purpose: _Purpose = _Purpose.LINES) -> None:
        self._segments = []
        self._lines_done = False
        self._lines_token = self._send_csta(m.GetSwitchingFunctionDevices(), purpose, now)

    def _on_segment(self, message: m.SwitchingFunctionDevices, now: float) -> None:
        self._segments.extend(e.device_id for e in message.device_list if e.device_id)
        if message.last_segment is False:
            return
        self._set_lines(list(dict.fromkeys(self._segments)) or [self.aor])
        self._segments = []
        if self.state is State.LEARNING:
            if self._lines_token is None:  # GetSwitchingFunctionDevices already answered
                self._lines_at = None
                self._lines_ready(now)
            else:
                self._lines_done = True

    def _set_lines(self, phone_forms: list[str]) -> None:
        lines = self.forms.learn(phone_forms, own_account=self.own_account)
        changed = lines != self.lines
        self.lines = lines
        if changed and self.is_ready:
            self._events.append(LinesChanged(lines=lines, aliases=self.forms.aliases()))

    def _lines_ready(self, now: float) -> None:
        if self.state is not State.LEARNING:
            return
        self._step(Input.LINES_KNOWN)
        self._keepalive_at = now + self.keepalive_interval
        self._events.append(Ready(lines=self.lines, aliases=self.forms.aliases()))

    def _on_internal_answer(
        self, purpose: _Purpose, token: int, answer: m.CstaMessage, now: float
    ) -> None:
        error = answer if isinstance(answer, m.CSTAErrorCode) else None
        dead = error is not None and (error.is_timeout or error.is_out_of_service)
        match purpose:
            case _Purpose.REGISTER:
                if error is not None:
                    self.log.info("SystemRegister refused: %s", error)
                if dead:
                    self._fail("the phone does not answer CSTA requests")
                elif self.state is State.LEARNING:
                    self._request_lines(now)
            case _Purpose.LINES:
                self._lines_token = None
                if dead:
                    self._fail("the phone does not answer CSTA requests")
                elif error is not None:
                    self.log.warning(
                        "GetSwitchingFunctionDevices refused (%s): using the AOR", error
                    )
                    self._set_lines([self.aor])
                    self._lines_ready(now)
                elif self._lines_done:
                    self._lines_ready(now)
                elif self.state is State.LEARNING:
                    self._lines_at = now + self.csta_timeout
            case _Purpose.RELEARN:
                self._lines_token = None
                if error is not None:
                    self.log.warning("GetSwitchingFunctionDevices refused after a change")
            case _Purpose.KEEPALIVE:
                self._keepalive_token = None
                if dead:
                    self._fail("the phone does not answer CSTA requests")
                elif self.state is State.READY or self.state is State.REFRESHING:
                    self._keepalive_at = now + self.keepalive_interval
            case _:  # pragma: no cover - INVITE/REFRESH never carry CSTA answers
                pass

    # --- CSTA requests ------------------------------------------------------------------------
    def csta_request(self, request: m.CstaRequest, now: float) -> int:
        """Send ``request`` in INFO; an :class:`Answer` with the returned token follows
        exactly once (at once when it cannot be sent: not ready, too many in flight)."""
        token = self._next_token
        if not self.is_ready:
            self._next_token += 1
            self._events.append(
                Answer(
                    token=token,
                    message=m.CSTAErrorCode.system_resource_availability("outOfService"),
                )
            )
            return token
        if self._in_flight >= MAX_IN_FLIGHT:
            # Clients together may not queue unbounded work on one phone.
            self._next_token += 1
            self.log.warning("%d CSTA requests in flight", self._in_flight)
            self._events.append(
                Answer(
                    token=token,
                    message=m.CSTAErrorCode.performance_management("performanceLimitExceeded"),
                )
            )
            return token
        return self._send_csta(request, _Purpose.USER, now)

    def _send_csta(self, request: m.CstaRequest, purpose: _Purpose, now: float) -> int:
        request = self.forms.to_phone_form(request)
        self._traced("out", request)
        if self.dialect is None:
            body = codec.encode(request, self.edition)
        else:
            body = codec.encode(request, self.edition, dialect=self.dialect)
        token = self._token(purpose, request, now)
        self._in_flight += 1
        self._events.append(
            SendRequest(
                token=token,
                method="INFO",
                body=body,
                content_type=CSTA_TYPE,
                headers=(),
                timeout=self.csta_timeout,
            )
        )
        return token

    def _token(self, purpose: _Purpose, request: m.CstaRequest | None, now: float = 0.0) -> int:
        token = self._next_token
        self._next_token += 1
        self._pending[token] = (purpose, request, now)
        return token

    def receive_response(self, token: int, response: Response, now: float) -> None:
        """The final response to the request sent under ``token``."""
        self._answered(token, response, None, now)

    def receive_timeout(self, token: int, now: float) -> None:
        """No final response to ``token`` in its ``timeout``."""
        self._answered(token, None, None, now)

    def receive_failure(self, token: int, reason: str, now: float) -> None:
        """``token`` could not be sent or its transport failed: the dialog is lost."""
        self._answered(token, None, reason, now)

    def _answered(
        self, token: int, response: Response | None, failure: str | None, now: float
    ) -> None:
        entry = self._pending.pop(token, None)
        if entry is None:
            return
        purpose, request, sent = entry
        if purpose is _Purpose.INVITE:
            if failure is not None:
                self._step(Input.INVITE_FAILED, failure)
            else:
                self._on_invite_response(response, now)
            return
        if purpose is _Purpose.REFRESH:
            self._on_refresh_response(response, failure, now)
            return
        assert request is not None
        self._in_flight -= 1
        latency: float | None = None
        if failure is not None:
            self._fail(f"sending to the phone failed: {failure}")
            answer: m.CstaMessage = m.CSTAErrorCode.system_resource_availability("outOfService")
        else:
            if response is None:
                self.timeouts += 1
                self.log.warning(
                    "no answer to %s within %ss", type(request).__name__, self.csta_timeout
                )
            else:
                latency = now - sent
                if purpose is not _Purpose.USER:
                    self._events.append(Measured(service=type(request).__name__, seconds=latency))
                if not response.is_success:
                    self.log.warning(
                        "%s answered with SIP %d", type(request).__name__, response.status_code
                    )
            answer, lost = answer_for_response(request, response, trace=self.trace)
            if lost is not None:
                self._fail(lost)
            answer = self.forms.to_client_form(answer)
        if purpose is _Purpose.USER:
            self._events.append(
                Answer(token=token, message=answer, latency=latency, service=type(request).__name__)
            )
        else:
            self._on_internal_answer(purpose, token, answer, now)

    # --- refresh (UAC) ------------------------------------------------------------------------
    def _send_refresh(self, now: float) -> None:
        self._tries += 1
        if self.role is Role.CLIENT_GATEWAY:
            # A client without timer support: a bare re-INVITE keeps its session alive.
            self._events.append(
                SendRequest(
                    token=self._token(_Purpose.REFRESH, None),
                    method="INVITE",
                    body=b"",
                    content_type=None,
                    headers=session_timer_request_headers(
                        self._interval, min_se=self.min_se, refresher=Refresher.UAS
                    ),
                    timeout=None,
                )
            )
            return
        headers: Headers = (
            *session_timer_request_headers(self._interval, refresher=Refresher.UAC),
            ("Content-Disposition", DISPOSITION),
            ("Allow", self.allow),
        )
        token = self._token(_Purpose.REFRESH, None)
        self._events.append(
            SendRequest(
                token=token,
                method="INVITE",
                body=self.invite_body(),
                content_type=CSTA_TYPE,
                headers=headers,
                timeout=None,
            )
        )

    def _on_refresh_response(
        self, response: Response | None, failure: str | None, now: float
    ) -> None:
        if self.state is not State.REFRESHING:
            return
        if response is None:
            self._fail(failure or "the phone did not answer the session refresh")
            return
        if response.is_success:
            if self.role is Role.CLIENT_GATEWAY:
                self._session_refreshed(now, self._interval, we_refresh=True)
            else:
                self._session_from(response, now)
            self._step(Input.REFRESHED)
            return
        if self.role is Role.CLIENT_GATEWAY:
            status = response.status_code
            self._fail(f"session refresh answered {status}", send_bye=status not in (408, 481))
            return
        if response.status_code == 422:
            try:
                self._interval = interval_after_422(response, self._interval)
            except SipParseError:
                pass
            else:
                if self._tries >= REFRESH_ATTEMPTS:
                    self._fail("session refresh failed")
                    return
                self._step(Input.REFRESH_RETRY)
                self._send_refresh(now)
                return
        self._fail(f"session refresh answered {response.status_code}")

    # --- from the peer ------------------------------------------------------------------------
    def receive_request(self, request: Request, now: float) -> None:
        """A request from the peer (in the dialog, or the initial INVITE for UAS roles)."""
        match request.method:
            case "INFO":
                self._on_info(request, now)
            case "BYE":
                self._reply(request, 200)
                self._fail("BYE from the peer" if self.role is not Role.SERVER_TO_PHONE
                           else "BYE from the phone")  # fmt: skip
            case "INVITE":
                self._on_invite(request, now)
            case "UPDATE" if self.role is not Role.SERVER_TO_PHONE:
                self._on_invite(request, now)
            case "OPTIONS":
                self._reply(request, 200, headers=self._capabilities())
            case "ACK":
                pass
            case _ if self.role is Role.CLIENT_GATEWAY:
                self._reply(request, 405, headers=(("Allow", self.allow),))
            case _:
                self._reply(request, 501)

    def _capabilities(self) -> Headers:
        """Allow, and for TR/87 clients the one content type they may send (Accept)."""
        if self.role is Role.CLIENT_GATEWAY:
            return (("Allow", self.allow), ("Accept", CSTA_TYPE))
        return (("Allow", self.allow),)

    def _on_invite(self, request: Request, now: float) -> None:
        """Initial INVITE (UAS roles), re-INVITE or UPDATE: RFC 4028 negotiation, the CSTA
        body answered in the 200, 491 when our own re-INVITE is still out."""
        initial = self.state is State.IDLE
        if initial and self.role is Role.SERVER_TO_PHONE:
            self._reply(request, 403)
            return
        if self.state is State.LOST:
            self._reply(request, 481)
            return
        overlapping = any(not first for _, _, first in self._held.values())
        if request.method == "INVITE" and (self.state is State.REFRESHING or overlapping):
            self._reply(request, 491)  # RFC 3261 §14.2: one re-INVITE at a time
            return
        if request.body and request.content_type not in self.accepted_types:
            self._reply(request, 415, headers=(("Accept", CSTA_TYPE),), new_to_tag=initial)
            return
        try:
            answer = negotiate_session_timer_uas(request, min_se=self.min_se)
        except SipParseError:
            self._reply(request, 400, new_to_tag=initial)
            return
        if answer.status_code != 200:
            self._reply(request, answer.status_code, headers=answer.headers, new_to_tag=initial)
            return
        se = answer.session_expires
        if se is not None and se.refresher is not None:
            self._session_refreshed(now, se.interval, we_refresh=se.refresher is Refresher.UAS)
        elif initial:
            self._session_off()
        if self.role is Role.CLIENT_GATEWAY and request.method == "INVITE":
            if initial:
                self._step(Input.PEER_INVITE)
            self._held[id(request)] = (request, (*answer.headers, *self._capabilities()), initial)
            self._on_client_invite_body(request, now)
            return
        body = b""
        if request.method == "INVITE":
            if initial and request.body:
                try:
                    message, edition = codec.decode_with_edition(request.body)
                except CstaDecodeError:
                    pass
                else:
                    if edition is not codec.Edition.NONE:
                        self.edition = edition  # answer the peer in the edition it speaks
                    self._traced("in", message)
            body = self._encode(m.RequestSystemStatusResponse(system_status="normal"))
        headers: Headers = answer.headers
        if self.role is not Role.SERVER_TO_PHONE:
            headers = (*headers, ("Allow", self.allow))
        self._reply(
            request,
            200,
            headers=headers,
            body=body,
            content_type=CSTA_TYPE if body else None,
            new_to_tag=initial,
        )
        if initial:
            self._step(Input.PEER_INVITE)
            self._events.append(Established(request=request))

    def _on_client_invite_body(self, request: Request, now: float) -> None:
        """Client gateway: the CSTA request of an INVITE is answered in the 200's body, by
        the owner (:class:`PeerRequest`) unless it is a RequestSystemStatus; no body, or no
        request in it, is answered at once."""
        if not request.body:
            self._answer(request, None)
            return
        try:
            message, edition = codec.decode_with_edition(request.body)
        except CstaDecodeError as exc:
            self.log.warning("undecodable CSTA document in INVITE: %s", exc)
            self._answer(request, error_code(exc))
            return
        if edition is not codec.Edition.NONE:
            self.edition = edition
        self._traced("in", message)
        self._on_client_csta(request, message, now)

    def _client_line(self, message: m.RequestSystemStatus) -> None:
        """A Microsoft-style client names the line it controls in its RequestSystemStatus
        (``lcs:line``): the client's line, announced as :class:`LinesChanged`."""
        line = codec.rcc_line(message)
        if line is not None and self.lines != [line]:
            self.lines = [line]
            self._events.append(LinesChanged(lines=[line], aliases={}))

    def _on_info(self, request: Request, now: float) -> None:
        if not request.body:
            self._reply(request, 200)
            return
        if request.content_type not in self.accepted_types:
            self._reply(request, 415, headers=(("Accept", CSTA_TYPE),))
            return
        try:
            message, edition = codec.decode_with_edition(request.body)
        except CstaDecodeError as exc:
            self.log.warning("undecodable CSTA: %s", exc)
            self._reply_csta(request, error_code(exc))
            return
        if self.role is Role.CLIENT_GATEWAY and edition is not codec.Edition.NONE:
            self.edition = edition  # a TR/87 client is answered in the edition it writes
        self._traced("in", message)
        if self.role is Role.CLIENT_GATEWAY:
            self._on_client_csta(request, message, now)
            return
        match message:
            case m.CstaEvent():
                self._reply(request, 200)
                if self.state is State.READY or self.state is State.REFRESHING:
                    self._events.append(PhoneEvent(event=self.forms.to_client_form(message)))
            case m.SwitchingFunctionDevices():
                self._reply(request, 200)
                self._on_segment(message, now)
            case m.SwFunctionDevicesChanged():
                self._reply_csta(request, m.SwFunctionDevicesChangedResponse())
                if self.is_ready:
                    self._request_lines(now, _Purpose.RELEARN)
            case m.SystemStatus():
                self._reply_csta(request, m.SystemStatusResponse())
            case m.RequestSystemStatus():
                self._reply_csta(request, m.RequestSystemStatusResponse(system_status="normal"))
            case m.MonitorStop():
                # The phone ended a monitor itself: the switching function restarts it.
                self._reply_csta(request, m.MonitorStopResponse())
                if self.is_ready:
                    ended = m.MonitorEndedEvent(monitor_cross_ref_id=message.monitor_cross_ref_id)
                    self._events.append(PhoneEvent(event=ended))
            case m.CstaResponse():
                self._reply(request, 200)
            case _:
                self._reply_csta(request, m.CSTAErrorCode.operation("invalidFeature"))

    def _on_client_csta(self, request: Request, message: m.CstaMessage, now: float) -> None:
        """A TR/87 client's CSTA document (INVITE or INFO body): keep-alives answered here,
        requests to the owner; an answer or event has nothing to answer in CSTA (a bare
        200, which for the INVITE carries the session's 2xx headers)."""
        if isinstance(message, m.RequestSystemStatus):
            self._client_line(message)
            self._answer(request, m.RequestSystemStatusResponse(system_status="normal"))
        elif isinstance(message, m.CstaRequest | m.UnknownMessage):
            self._to_owner(request, message, now)
        else:
            self._answer(request, None)

    def _to_owner(self, request: Request, message: m.CstaMessage, now: float) -> None:
        """Hand a client's request to the owner, within ``max_peer_requests`` waiting; it
        is answered with ``timeout`` if the owner has not answered in ``csta_timeout``."""
        if len(self._peer) >= self.max_peer_requests:
            self.log.warning("%d requests in flight, refusing more", len(self._peer))
            self._answer(request, m.CSTAErrorCode.system_resource_availability("resourceBusy"))
            return
        self._peer[id(request)] = (request, message, now + self.csta_timeout)
        self._events.append(PeerRequest(request=request, message=message))

    def answer_peer(
        self, request: Request, answer: m.CstaMessage | None, *, headers: Headers = ()
    ) -> None:
        """Answer a :class:`PeerRequest` with ``answer`` in the 200's body (None: no body),
        ``headers`` added (a ``Warning`` saying why a request was refused). An answer after
        the request timed out, or after the dialog ended, is dropped."""
        waiting = self._peer.pop(id(request), None)
        if waiting is None or waiting[0] is not request:
            self.log.info("late answer dropped: %s", type(answer).__name__)
            return
        self._answer(request, answer, headers=headers)

    def _answer(
        self, request: Request, answer: m.CstaMessage | None, *, headers: Headers = ()
    ) -> None:
        held = self._held.pop(id(request), None)
        if held is None and answer is not None and not headers:
            self._reply_csta(request, answer)
            return
        if answer is not None:
            self._traced("out", answer)
        body = self._encode(answer) if answer is not None else b""
        initial = held is not None and held[2]
        self._reply(
            request,
            200,
            headers=(*held[1], *headers) if held is not None else headers,
            body=body,
            content_type=CSTA_TYPE if body else None,
            new_to_tag=initial,
        )
        if initial:
            self._events.append(Established(request=request))

    def _encode(self, message: m.CstaMessage) -> bytes:
        return codec.encode(message, self.edition)

    def _reply_csta(self, request: Request, message: m.CstaMessage) -> None:
        self._traced("out", message)
        self._reply(request, 200, body=self._encode(message), content_type=CSTA_TYPE)

    def _reply(
        self,
        request: Request,
        status_code: int,
        *,
        headers: Headers = (),
        body: bytes = b"",
        content_type: str | None = None,
        new_to_tag: bool = False,
    ) -> None:
        self._events.append(
            SendResponse(
                request=request,
                status_code=status_code,
                headers=headers,
                body=body,
                content_type=content_type,
                new_to_tag=new_to_tag,
            )
        )

    # --- ending -------------------------------------------------------------------------------
    def stop(self, reason: str = "stopped", *, bye: bool = True) -> None:
        """End the dialog from our side; :class:`Lost` says whether to send BYE."""
        if self.state is State.LOST:
            return
        send_bye = bye and self.state not in (State.IDLE, State.INVITING)
        self._fail(reason, send_bye=send_bye)

    def _fail(self, reason: str, *, send_bye: bool = False) -> None:
        self._step(Input.FAILURE, reason, send_bye=send_bye)

    def _step(self, inp: Input, reason: str | None = None, *, send_bye: bool = False) -> None:
        new = TRANSITIONS.get((self.state, inp))
        if new is None:
            self.log.debug("%r: %s ignored", self, inp.value)
            return
        old = self.state
        self.state = new
        if new is State.LOST and old is not State.LOST:
            self.reason = reason or inp.value
            self._lines_at = None
            self._keepalive_at = None
            self._peer.clear()
            self._session_off()
            self._events.append(
                Lost(
                    reason=self.reason,
                    was_ready=old is State.READY or old is State.REFRESHING,
                    send_bye=send_bye,
                )
            )

    def _traced(self, direction: str, message: m.CstaMessage) -> None:
        if self.trace is not None:
            self.trace(direction, message)
