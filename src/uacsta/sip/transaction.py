"""SIP transactions, sans-IO (RFC 3261 §17, §8.1.3.1, §9.1, §17.1.3, §17.2.3, §17.2.4).

This module owns the four transaction state machines (INVITE client §17.1.1, non-INVITE
client §17.1.2, INVITE server §17.2.1, non-INVITE server §17.2.2), their timers (A, B, D,
E, F, K, G, H, I, J, RFC 6026's L, and the optional 200 ms 100 Trying), the ACK for non-2xx final
responses (§17.1.1.3), and :class:`TransactionLayer`, which owns many transactions, matches
messages to them and keeps one timer heap over all of them.

Why our own: no maintained Python library offers an RFC 3261 transaction/dialog layer for
asyncio with TLS. aiosip is deprecated and UDP-only, sippy/b2bua is threaded with no TLS,
and pjsua2 (PJSIP's binding) does not build in our environment. Writing the state machines
sans-IO (h11/aioquic style) also lets every timer path be tested with a fake clock.

Shape (the same for a single transaction and for the layer)::

    actions = tx.start(now)                 # client: the request goes out
    actions = tx.receive_response(resp, now)  # client
    actions = tx.receive_request(req, now)    # server: retransmission or ACK
    actions = tx.send_response(resp, now)     # server: from the TU
    deadline = tx.get_timer()               # float | None, absolute time
    actions = tx.handle_timer(now)          # fire every timer due at ``now``

Time is always an argument (``now``, seconds, any monotonic origin). Outputs are
:class:`Action` objects, dispatched with ``match``. A transaction knows no addresses: the
adapter remembers where a transaction's peer is and sends :class:`Transmit` data there.

Every machine has a transition table ``TRANSITIONS: {(State, Input): State}``. A pair not
in the table is *discarded* (logged at debug level, no action, no state change): that is
RFC 3261 behaviour for stray network input (e.g. a 1xx in Completed) and for late TU input
(a final response passed to a Completed server transaction "MUST be discarded", §17.2.2).
Once Terminated, every input is discarded. On a reliable transport the cleanup timers D,
I, J, K are zero, so Completed/Confirmed moves to Terminated within the same call.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from uacsta.sip.errors import SipError
from uacsta.sip.helpers import BRANCH_MAGIC, build_response
from uacsta.sip.message import Request, Response

__all__ = [
    "INVITE_CLIENT_TRANSITIONS",
    "INVITE_SERVER_TRANSITIONS",
    "NON_INVITE_CLIENT_TRANSITIONS",
    "NON_INVITE_SERVER_TRANSITIONS",
    "Action",
    "ClientTransaction",
    "DeliverRequest",
    "DeliverResponse",
    "Input",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "LayerAction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "ServerTransaction",
    "State",
    "Terminated",
    "TimerSettings",
    "Transaction",
    "TransactionKey",
    "TransactionLayer",
    "TransactionStateError",
    "TransactionTimeout",
    "Transmit",
    "TransportFailed",
    "build_cancel",
    "build_non_2xx_ack",
    "client_key",
    "server_key",
    "timeout_response",
    "transaction_key",
    "transport_error_response",
]

_NULL_LOGGER = logging.getLogger("uacsta.sip.transaction.null")
_NULL_LOGGER.addHandler(logging.NullHandler())
_NULL_LOGGER.propagate = False


# --- settings --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class TimerSettings:
    """RFC 3261 timer values (§17.1.1.1, table 4), seconds.

    ``timer_d`` is "at least 32 s" on unreliable transports. ``trying_delay`` is when an
    INVITE server transaction sends 100 Trying itself if the TU has sent no provisional
    response (§17.2.1: 200 ms); ``None`` disables it (the TU sends 100 Trying).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0
    trying_delay: float | None = 0.2

    @property
    def timeout(self) -> float:
        """Timers B, F, H and (unreliable) J: 64*T1."""
        return 64 * self.t1


# --- actions ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True, slots=True)
class Action:
    """Base of everything a transaction (or the layer) asks its driver to do."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Transmit(Action):
    """Send ``data`` to the transaction's peer. ``message`` is what ``data`` serializes, for
    addressing (a response's Via) and tracing; a lingering transaction's replay carries only
    its status line and Via there (see :class:`Lingering`): always send ``data``."""

    message: Request | Response
    data: bytes

    @classmethod
    def of(cls, message: Request | Response) -> Transmit:
        return cls(message=message, data=message.to_bytes())


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliverResponse(Action):
    """A response for the TU (client transactions; stray 2xx to INVITE from the layer)."""

    response: Response


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliverRequest(Action):
    """A request for the TU: a new server transaction's request, an ACK matching no
    transaction (the 2xx ACK), or an ACK reaching an INVITE server in Accepted."""

    request: Request


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionTimeout(Action):
    """Timer B, F or H fired. Clients: ``response`` is the synthesized 408 (§8.1.3.1);
    servers (timer H, no ACK): ``response`` is None."""

    timer: str
    response: Response | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TransportFailed(Action):
    """The transport reported a failure (§17.1.4, §17.2.4). Clients: ``response`` is the
    synthesized 503 (§8.1.3.1); servers: None."""

    response: Response | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Terminated(Action):
    """The transaction reached Terminated; the layer forgets it."""


# --- errors ----------------------------------------------------------------------------------
class TransactionStateError(SipError):
    """Local misuse of a transaction (start twice, a request with no usable branch...)."""

    status_code = 500


# --- states and inputs -----------------------------------------------------------------------
class State(Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class Input(Enum):
    RECV_PROVISIONAL = "recv 1xx"
    RECV_SUCCESS = "recv 2xx"
    RECV_FAILURE = "recv 300-699"
    RECV_REQUEST = "recv request"
    RECV_ACK = "recv ACK"
    SEND_PROVISIONAL = "send 1xx"
    SEND_SUCCESS = "send 2xx"
    SEND_FAILURE = "send 300-699"
    TRANSPORT_ERROR = "transport error"
    TIMER_A = "timer A"
    TIMER_B = "timer B"
    TIMER_D = "timer D"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_K = "timer K"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_L = "timer L"
    TIMER_TRYING = "timer 100 Trying"


# Timeouts and cleanups fire before a retransmission due at the same instant.
_RETRANSMIT_TIMERS = frozenset({Input.TIMER_A, Input.TIMER_E, Input.TIMER_G, Input.TIMER_TRYING})

_S = State
_I = Input

INVITE_CLIENT_TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (_S.CALLING, _I.TIMER_A): _S.CALLING,
    (_S.CALLING, _I.TIMER_B): _S.TERMINATED,
    (_S.CALLING, _I.RECV_PROVISIONAL): _S.PROCEEDING,
    (_S.CALLING, _I.RECV_SUCCESS): _S.TERMINATED,
    (_S.CALLING, _I.RECV_FAILURE): _S.COMPLETED,
    (_S.CALLING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.PROCEEDING, _I.RECV_PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _I.RECV_SUCCESS): _S.TERMINATED,
    (_S.PROCEEDING, _I.RECV_FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.COMPLETED, _I.RECV_FAILURE): _S.COMPLETED,
    (_S.COMPLETED, _I.TIMER_D): _S.TERMINATED,
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _S.TERMINATED,
}

NON_INVITE_CLIENT_TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (_S.TRYING, _I.TIMER_E): _S.TRYING,
    (_S.TRYING, _I.TIMER_F): _S.TERMINATED,
    (_S.TRYING, _I.RECV_PROVISIONAL): _S.PROCEEDING,
    (_S.TRYING, _I.RECV_SUCCESS): _S.COMPLETED,
    (_S.TRYING, _I.RECV_FAILURE): _S.COMPLETED,
    (_S.TRYING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.PROCEEDING, _I.TIMER_E): _S.PROCEEDING,
    (_S.PROCEEDING, _I.TIMER_F): _S.TERMINATED,
    (_S.PROCEEDING, _I.RECV_PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _I.RECV_SUCCESS): _S.COMPLETED,
    (_S.PROCEEDING, _I.RECV_FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.COMPLETED, _I.RECV_PROVISIONAL): _S.COMPLETED,
    (_S.COMPLETED, _I.RECV_SUCCESS): _S.COMPLETED,
    (_S.COMPLETED, _I.RECV_FAILURE): _S.COMPLETED,
    (_S.COMPLETED, _I.TIMER_K): _S.TERMINATED,
}

INVITE_SERVER_TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (_S.PROCEEDING, _I.TIMER_TRYING): _S.PROCEEDING,
    (_S.PROCEEDING, _I.RECV_REQUEST): _S.PROCEEDING,
    (_S.PROCEEDING, _I.SEND_PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _I.SEND_SUCCESS): _S.ACCEPTED,
    (_S.PROCEEDING, _I.SEND_FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.ACCEPTED, _I.SEND_SUCCESS): _S.ACCEPTED,
    (_S.ACCEPTED, _I.RECV_REQUEST): _S.ACCEPTED,
    (_S.ACCEPTED, _I.RECV_ACK): _S.ACCEPTED,
    (_S.ACCEPTED, _I.TIMER_L): _S.TERMINATED,
    (_S.COMPLETED, _I.RECV_REQUEST): _S.COMPLETED,
    (_S.COMPLETED, _I.RECV_ACK): _S.CONFIRMED,
    (_S.COMPLETED, _I.TIMER_G): _S.COMPLETED,
    (_S.COMPLETED, _I.TIMER_H): _S.TERMINATED,
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.CONFIRMED, _I.RECV_REQUEST): _S.CONFIRMED,
    (_S.CONFIRMED, _I.RECV_ACK): _S.CONFIRMED,
    (_S.CONFIRMED, _I.TIMER_I): _S.TERMINATED,
}

NON_INVITE_SERVER_TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (_S.TRYING, _I.RECV_REQUEST): _S.TRYING,
    (_S.TRYING, _I.SEND_PROVISIONAL): _S.PROCEEDING,
    (_S.TRYING, _I.SEND_SUCCESS): _S.COMPLETED,
    (_S.TRYING, _I.SEND_FAILURE): _S.COMPLETED,
    (_S.TRYING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.PROCEEDING, _I.RECV_REQUEST): _S.PROCEEDING,
    (_S.PROCEEDING, _I.SEND_PROVISIONAL): _S.PROCEEDING,
    (_S.PROCEEDING, _I.SEND_SUCCESS): _S.COMPLETED,
    (_S.PROCEEDING, _I.SEND_FAILURE): _S.COMPLETED,
    (_S.PROCEEDING, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.COMPLETED, _I.RECV_REQUEST): _S.COMPLETED,
    (_S.COMPLETED, _I.TRANSPORT_ERROR): _S.TERMINATED,
    (_S.COMPLETED, _I.TIMER_J): _S.TERMINATED,
}


def _recv_input(status_code: int) -> Input:
    if status_code < 200:
        return Input.RECV_PROVISIONAL
    if status_code < 300:
        return Input.RECV_SUCCESS
    return Input.RECV_FAILURE


def _send_input(status_code: int) -> Input:
    if status_code < 200:
        return Input.SEND_PROVISIONAL
    if status_code < 300:
        return Input.SEND_SUCCESS
    return Input.SEND_FAILURE


# --- synthesized responses and derived requests ----------------------------------------------
def timeout_response(request: Request) -> Response:
    """The 408 the TU sees when a client transaction times out (§8.1.3.1)."""
    return build_response(request, 408)


def transport_error_response(request: Request) -> Response:
    """The 503 the TU sees when the transport fails (§8.1.3.1)."""
    return build_response(request, 503)


def _overload_response(request: Request) -> Response:
    return build_response(request, 503, headers=(("Retry-After", "5"),))


def build_non_2xx_ack(request: Request, response: Response) -> Request:
    """ACK for a 300-699 response to ``request`` (§17.1.1.3).

    Same Request-URI, Call-ID, From, top Via (so the same branch) and Route as the INVITE;
    To from the response (with its tag); CSeq number of the INVITE with method ACK.
    """
    headers: list[tuple[str, str]] = []
    top_via = request.header("Via")
    if top_via is not None:
        headers.append(("Via", top_via))
    headers.append(("Max-Forwards", request.header("Max-Forwards") or "70"))
    headers.extend(("Route", r) for r in request.header_values("Route"))
    for name in ("From", "To", "Call-ID"):
        value = response.header("To") if name == "To" else request.header(name)
        if value is not None:
            headers.append((name, value))
    headers.append(("CSeq", f"{request.cseq.seq} ACK"))
    return Request(method="ACK", uri=request.uri, headers=tuple(headers))


def build_cancel(request: Request) -> Request:
    """CANCEL for a pending ``request`` (§9.1): same Request-URI, Call-ID, From, To (no
    tag added), CSeq number, top Via and Route; CSeq method CANCEL. Its client transaction
    is separate from the INVITE's (same branch, method CANCEL)."""
    headers: list[tuple[str, str]] = []
    top_via = request.header("Via")
    if top_via is not None:
        headers.append(("Via", top_via))
    headers.append(("Max-Forwards", request.header("Max-Forwards") or "70"))
    headers.extend(("Route", r) for r in request.header_values("Route"))
    for name in ("From", "To", "Call-ID"):
        value = request.header(name)
        if value is not None:
            headers.append((name, value))
    headers.append(("CSeq", f"{request.cseq.seq} CANCEL"))
    return Request(method="CANCEL", uri=request.uri, headers=tuple(headers))


# --- the machines ----------------------------------------------------------------------------
class Transaction:
    """Common part of the four machines: timers, the table-driven step, termination.

    ``request`` is the request that created the transaction; ``reliable`` says whether the
    transport is reliable (TCP/TLS: no retransmissions, zero cleanup timers).
    """

    TRANSITIONS: ClassVar[Mapping[tuple[State, Input], State]] = {}
    INITIAL: ClassVar[State] = State.TERMINATED
    is_client: ClassVar[bool] = True
    __slots__ = ("_log", "_started", "_timers", "reliable", "request", "settings", "state")

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerSettings | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.request = request
        self.reliable = reliable
        self.settings = timers if timers is not None else TimerSettings()
        self.state: State = self.INITIAL
        self._log = logger if logger is not None else _NULL_LOGGER
        self._timers: dict[Input, float] = {}
        self._started = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value}>"

    def start(self, now: float) -> list[Action]:
        """Client: the request is handed to the transport (transmitted, timers armed).
        Server: the request arrived and the transaction exists. Call exactly once."""
        if self._started:
            raise TransactionStateError(f"{self!r} already started")
        self._started = True
        return self._on_start(now)

    def _on_start(self, now: float) -> list[Action]:
        raise NotImplementedError

    # --- timers ------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The earliest absolute deadline, or None when no timer is armed."""
        if not self._timers:
            return None
        return min(self._timers.values())

    def timers(self) -> dict[Input, float]:
        """Armed timers and their deadlines (a copy; for tests and tracing)."""
        return dict(self._timers)

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every timer whose deadline is <= ``now``, earliest first."""
        actions: list[Action] = []
        while self._timers:
            timer, deadline = min(
                self._timers.items(), key=lambda kv: (kv[1], kv[0] in _RETRANSMIT_TIMERS)
            )
            if deadline > now:
                break
            del self._timers[timer]
            actions.extend(self._step(timer, now, None))
        return actions

    def transport_error(self, now: float) -> list[Action]:
        """The transport could not send this transaction's message (§17.1.4, §17.2.4)."""
        return self._step(Input.TRANSPORT_ERROR, now, None)

    def _arm(self, timer: Input, now: float, delay: float) -> None:
        self._timers[timer] = now + delay

    def _cancel(self, *timers: Input) -> None:
        for timer in timers:
            self._timers.pop(timer, None)

    def _arm_cleanup(self, timer: Input, now: float, delay: float) -> None:
        """Arm D/I/J/K, or terminate at once when it is zero (reliable transport)."""
        if self.reliable or delay <= 0:
            self.state = State.TERMINATED
        else:
            self._arm(timer, now, delay)
            self._shed()

    def _shed(self) -> None:
        """Drop what a lingering transaction no longer reads: it only absorbs
        retransmissions now (their bytes are kept), so its messages' parsed header values
        go. Over UDP a transaction lingers 32 s; after a burst of thousands of phone
        set-ups these caches would otherwise be most of the server's memory."""
        for message in self._lingering_messages():
            message.drop_parsed()

    def _lingering_messages(self) -> list[Request | Response]:
        return [self.request]

    # --- the step ----------------------------------------------------------------------------
    def _step(self, inp: Input, now: float, message: Request | Response | None) -> list[Action]:
        if self.state is State.TERMINATED:
            self._log.debug("%r: %s discarded after Terminated", self, inp.value)
            return []
        new = self.TRANSITIONS.get((self.state, inp))
        if new is None:
            self._log.debug("%r: %s discarded in %s", self, inp.value, self.state.value)
            return []
        old = self.state
        self.state = new
        actions = self._effects(old, inp, now, message)
        if self.state is State.TERMINATED:
            self._timers.clear()
            actions.append(Terminated())
        return actions

    def _effects(
        self, old: State, inp: Input, now: float, message: Request | Response | None
    ) -> list[Action]:
        raise NotImplementedError


class _ClientTransaction(Transaction):
    is_client = True
    __slots__ = ("_request_tx",)

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerSettings | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)
        self._request_tx = Transmit.of(request)

    def _on_start(self, now: float) -> list[Action]:
        self._arm_start(now)
        return [self._request_tx]

    def _arm_start(self, now: float) -> None:
        raise NotImplementedError

    def receive_response(self, response: Response, now: float) -> list[Action]:
        """A response matched to this transaction (§17.1.3)."""
        return self._step(_recv_input(response.status_code), now, response)


class InviteClientTransaction(_ClientTransaction):
    """§17.1.1: Calling → Proceeding → Completed → Terminated; timers A, B, D.

    Timer A doubles without the T2 cap (§17.1.1.2: only E and G are capped). A 2xx
    terminates the transaction (RFC 3261; the 2xx ACK is the dialog's). A 300-699 response
    is ACKed here, and the same ACK is re-sent for each retransmission of it.
    """

    TRANSITIONS = INVITE_CLIENT_TRANSITIONS
    INITIAL = State.CALLING
    __slots__ = ("_ack_tx", "_interval_a")

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerSettings | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)
        self._interval_a = self.settings.t1
        self._ack_tx: Transmit | None = None

    def _lingering_messages(self) -> list[Request | Response]:
        ack = [self._ack_tx.message] if self._ack_tx is not None else []
        return [self.request, *ack]

    def _arm_start(self, now: float) -> None:
        if not self.reliable:
            self._arm(Input.TIMER_A, now, self._interval_a)
        self._arm(Input.TIMER_B, now, self.settings.timeout)

    def _effects(
        self, old: State, inp: Input, now: float, message: Request | Response | None
    ) -> list[Action]:
        match inp:
            case Input.TIMER_A:
                self._interval_a *= 2
                self._arm(Input.TIMER_A, now, self._interval_a)
                return [self._request_tx]
            case Input.TIMER_B:
                return [TransactionTimeout(timer="B", response=timeout_response(self.request))]
            case Input.RECV_PROVISIONAL | Input.RECV_SUCCESS:
                assert isinstance(message, Response)
                self._cancel(Input.TIMER_A, Input.TIMER_B)
                return [DeliverResponse(response=message)]
            case Input.RECV_FAILURE:
                assert isinstance(message, Response)
                if old is State.COMPLETED:
                    return [self._ack_tx] if self._ack_tx is not None else []
                self._cancel(Input.TIMER_A, Input.TIMER_B)
                self._ack_tx = Transmit.of(build_non_2xx_ack(self.request, message))
                self._arm_cleanup(Input.TIMER_D, now, self.settings.timer_d)
                return [self._ack_tx, DeliverResponse(response=message)]
            case Input.TRANSPORT_ERROR if old is not State.COMPLETED:
                return [TransportFailed(response=transport_error_response(self.request))]
            case _:
                return []


class NonInviteClientTransaction(_ClientTransaction):
    """§17.1.2: Trying → Proceeding → Completed → Terminated; timers E, F, K.

    Timer E doubles up to T2 in Trying and is T2 in Proceeding (§17.1.2.2).
    """

    TRANSITIONS = NON_INVITE_CLIENT_TRANSITIONS
    INITIAL = State.TRYING
    __slots__ = ("_interval_e",)

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerSettings | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)
        self._interval_e = self.settings.t1

    def _arm_start(self, now: float) -> None:
        if not self.reliable:
            self._arm(Input.TIMER_E, now, self._interval_e)
        self._arm(Input.TIMER_F, now, self.settings.timeout)

    def _effects(
        self, old: State, inp: Input, now: float, message: Request | Response | None
    ) -> list[Action]:
        match inp:
            case Input.TIMER_E:
                if old is State.TRYING:
                    self._interval_e = min(2 * self._interval_e, self.settings.t2)
                else:
                    self._interval_e = self.settings.t2
                self._arm(Input.TIMER_E, now, self._interval_e)
                return [self._request_tx]
            case Input.TIMER_F:
                return [TransactionTimeout(timer="F", response=timeout_response(self.request))]
            case Input.RECV_PROVISIONAL | Input.RECV_SUCCESS | Input.RECV_FAILURE:
                assert isinstance(message, Response)
                if old is State.COMPLETED:
                    return []  # retransmitted final (or late 1xx): absorbed
                if inp is not Input.RECV_PROVISIONAL:
                    self._cancel(Input.TIMER_E, Input.TIMER_F)
                    self._arm_cleanup(Input.TIMER_K, now, self.settings.t4)
                return [DeliverResponse(response=message)]
            case Input.TRANSPORT_ERROR:
                return [TransportFailed(response=transport_error_response(self.request))]
            case _:
                return []


class _ServerTransaction(Transaction):
    is_client = False
    __slots__ = ("_final", "_last_provisional")

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerSettings | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)
        self._last_provisional: Transmit | None = None
        self._final: Transmit | None = None

    def _on_start(self, now: float) -> list[Action]:
        return []

    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request, or (INVITE) the ACK for a non-2xx final."""
        inp = Input.RECV_ACK if request.method == "ACK" else Input.RECV_REQUEST
        return self._step(inp, now, request)

    def send_response(self, response: Response, now: float) -> list[Action]:
        """A response from the TU: transmitted, remembered for retransmissions."""
        return self._step(_send_input(response.status_code), now, response)

    @property
    def last_response(self) -> Response | None:
        tx = self._final or self._last_provisional
        return tx.message if tx is not None and isinstance(tx.message, Response) else None

    def _lingering_messages(self) -> list[Request | Response]:
        held = [tx.message for tx in (self._final, self._last_provisional) if tx is not None]
        return [self.request, *held]


class InviteServerTransaction(_ServerTransaction):
    """§17.2.1: Proceeding → Completed → Confirmed → Terminated; timers G, H, I.

    ``start`` arms the 100 Trying timer (``TimerSettings.trying_delay``); the transaction
    sends 100 Trying itself if the TU has sent no provisional response by then.

    A 2xx moves to RFC 6026's Accepted state (§8.5-8.7) instead of Terminated, for timer L
    (64*T1): INVITE retransmissions are absorbed there rather than reaching the TU as a
    new INVITE (the RFC 3261 flaw RFC 6026 fixes), further 2xx from the TU are sent, and
    an ACK that matches it is delivered to the TU. Retransmitting the 2xx until the ACK
    arrives stays the TU's job (§13.3.1.4).
    """

    TRANSITIONS = INVITE_SERVER_TRANSITIONS
    INITIAL = State.PROCEEDING
    __slots__ = ("_interval_g",)

    def __init__(
        self,
        request: Request,
        *,
        reliable: bool,
        timers: TimerSettings | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(request, reliable=reliable, timers=timers, logger=logger)
        self._interval_g = self.settings.t1

    def _on_start(self, now: float) -> list[Action]:
        delay = self.settings.trying_delay
        if delay is not None:
            if delay <= 0:
                return self._step(Input.TIMER_TRYING, now, None)
            self._arm(Input.TIMER_TRYING, now, delay)
        return []

    def _effects(
        self, old: State, inp: Input, now: float, message: Request | Response | None
    ) -> list[Action]:
        match inp:
            case Input.TIMER_TRYING:
                if self._last_provisional is not None:
                    return []
                self._last_provisional = Transmit.of(build_response(self.request, 100))
                return [self._last_provisional]
            case Input.RECV_REQUEST:
                if old in (State.CONFIRMED, State.ACCEPTED):
                    return []
                tx = self._final if old is State.COMPLETED else self._last_provisional
                return [tx] if tx is not None else []
            case Input.SEND_PROVISIONAL:
                assert isinstance(message, Response)
                self._cancel(Input.TIMER_TRYING)
                self._last_provisional = Transmit.of(message)
                return [self._last_provisional]
            case Input.SEND_SUCCESS:
                assert isinstance(message, Response)
                self._final = Transmit.of(message)
                if old is State.PROCEEDING:
                    self._cancel(Input.TIMER_TRYING)
                    self._arm(Input.TIMER_L, now, self.settings.timeout)
                    if not self.reliable:
                        self._shed()
                return [self._final]
            case Input.SEND_FAILURE:
                assert isinstance(message, Response)
                self._cancel(Input.TIMER_TRYING)
                self._final = Transmit.of(message)
                if not self.reliable:
                    self._arm(Input.TIMER_G, now, self._interval_g)
                self._arm(Input.TIMER_H, now, self.settings.timeout)
                return [self._final]
            case Input.TIMER_G:
                self._interval_g = min(2 * self._interval_g, self.settings.t2)
                self._arm(Input.TIMER_G, now, self._interval_g)
                return [self._final] if self._final is not None else []
            case Input.TIMER_H:
                return [TransactionTimeout(timer="H")]
            case Input.RECV_ACK:
                if old is State.ACCEPTED:
                    assert isinstance(message, Request)
                    return [DeliverRequest(request=message)]
                if old is State.COMPLETED:
                    self._cancel(Input.TIMER_G, Input.TIMER_H)
                    self._arm_cleanup(Input.TIMER_I, now, self.settings.t4)
                return []
            case Input.TRANSPORT_ERROR:
                return [TransportFailed()]
            case _:
                return []


class NonInviteServerTransaction(_ServerTransaction):
    """§17.2.2: Trying → Proceeding → Completed → Terminated; timer J."""

    TRANSITIONS = NON_INVITE_SERVER_TRANSITIONS
    INITIAL = State.TRYING
    __slots__ = ()

    def _effects(
        self, old: State, inp: Input, now: float, message: Request | Response | None
    ) -> list[Action]:
        match inp:
            case Input.RECV_REQUEST:
                tx = self._final if old is State.COMPLETED else self._last_provisional
                return [tx] if tx is not None else []
            case Input.SEND_PROVISIONAL:
                assert isinstance(message, Response)
                self._last_provisional = Transmit.of(message)
                return [self._last_provisional]
            case Input.SEND_SUCCESS | Input.SEND_FAILURE:
                assert isinstance(message, Response)
                self._final = Transmit.of(message)
                self._arm_cleanup(Input.TIMER_J, now, self.settings.timeout)
                return [self._final]
            case Input.TRANSPORT_ERROR:
                return [TransportFailed()]
            case _:
                return []


ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction


class Lingering:
    """A non-INVITE transaction in Completed (timer J or K), reduced to what that state
    still does: a client absorbs retransmitted responses, a server re-sends its final
    response for each retransmitted request and discards later responses from the TU.

    Over UDP, Completed lasts T4 (5 s, client) or 64*T1 (32 s, server): at thousands of
    requests a second the full machines with their messages would be most of the heap and
    of the garbage collector's work. The layer swaps one in when a transaction gets there
    and keeps its deadline itself. A record holds no other object the collector tracks: the
    replay is a plain tuple of bytes and strings (the collector stops tracking those), and
    records without a replay are two shared instances.
    """

    __slots__ = ("_replay", "is_client")

    #: Completed until the layer's deadline for the key fires, which ends it.
    state = State.COMPLETED

    def __init__(
        self, *, is_client: bool, replay: tuple[bytes, int, str, tuple[str, ...]] | None
    ) -> None:
        self.is_client = is_client
        self._replay = replay

    @classmethod
    def of(cls, tx: Transaction) -> Lingering:
        final = tx._final if isinstance(tx, NonInviteServerTransaction) else None
        if final is None:
            return _LINGERING_CLIENT if tx.is_client else _LINGERING_SERVER
        response = final.message
        assert isinstance(response, Response)
        via = tuple(value for name, value in response.headers if name == "Via")
        return cls(is_client=False, replay=(final.data, response.status_code, response.reason, via))

    def __repr__(self) -> str:
        return f"<Lingering {'client' if self.is_client else 'server'} transaction>"

    def receive_response(self, response: Response, now: float) -> list[Action]:
        return []  # a retransmitted final (or a late 1xx): absorbed

    def receive_request(self, request: Request, now: float) -> list[Action]:
        if self._replay is None:
            return []
        # The bytes to re-send, and for the driver a response reduced to what addressing and
        # tracing read (status line and Via).
        data, status_code, reason, via = self._replay
        headers = tuple(("Via", value) for value in via)
        slim = Response(status_code=status_code, reason=reason, headers=headers)
        return [Transmit(message=slim, data=data)]

    def send_response(self, response: Response, now: float) -> list[Action]:
        return []  # §17.2.2: the TU's further responses are discarded

    def transport_error(self, now: float) -> list[Action]:
        return []


_LINGERING_CLIENT = Lingering(is_client=True, replay=None)
_LINGERING_SERVER = Lingering(is_client=False, replay=None)
_LINGERING_TYPES = (NonInviteClientTransaction, NonInviteServerTransaction)


# --- keys ------------------------------------------------------------------------------------
#: Identifies one transaction in a :class:`TransactionLayer`: ``(branch, method, sent_by,
#: server)``, made by :func:`transaction_key`.
#:
#: Client keys (§17.1.3): top Via branch + CSeq method, ``sent_by`` empty.
#: Server keys (§17.2.3): branch + sent-by + method, where an ACK maps to INVITE.
#: For RFC 2543 requests (branch without the magic cookie) ``branch`` is a composite of
#: Call-ID, From tag and CSeq number instead (a simplification of §17.2.3's fallback).
#:
#: A plain tuple of strings, not a named tuple: the garbage collector stops tracking exact
#: tuples of atoms (and tuples holding only such tuples, like timer-heap entries), never
#: instances of a subclass, and tens of thousands of keys are alive at a time.
TransactionKey = tuple[str, str, str, bool]


def transaction_key(
    branch: str, method: str, sent_by: str = "", server: bool = False
) -> TransactionKey:
    return (branch, method, sent_by, server)


def client_key(message: Request | Response) -> TransactionKey:
    """Key of the client transaction a request creates or a response belongs to."""
    branch = message.top_via.branch or ""
    return transaction_key(branch, message.cseq.method)


def server_key(request: Request) -> TransactionKey:
    """Key of the server transaction a request creates or belongs to (§17.2.3)."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch is None or not branch.startswith(BRANCH_MAGIC):
        branch = f"rfc2543:{request.call_id}:{request.from_.tag or ''}:{request.cseq.seq}"
    return transaction_key(branch, method, via.sent_by.lower(), server=True)


LayerAction = tuple[TransactionKey | None, Action]


# --- the layer -------------------------------------------------------------------------------
class TransactionLayer:
    """Many transactions, message matching and one timer heap (sans-IO).

    Driving it from asyncio (one instance per SIP endpoint)::

        key, actions = layer.new_client(request, reliable=False, now=loop.time())
        actions = layer.receive_response(response, now)           # from the transport
        actions = layer.receive_request(request, reliable=r, now=now)
        actions = layer.send_response(key, response, now)         # from the TU
        actions = layer.transport_error(key, now)                 # send failed
        deadline = layer.get_timer()   # re-arm ONE loop.call_at(deadline) after each call
        actions = layer.handle_timer(loop.time())                 # in that callback

    Every call returns ``list[tuple[TransactionKey | None, Action]]``, in order:

    - ``Transmit(data=...)``: send to the peer of that key (the adapter maps keys to
      addresses: the destination for a client key, the request's source for a server key;
      key ``None`` = a stateless answer to the request just received, send to its source);
    - ``DeliverResponse``: to the TU owning that client key; key ``None`` = a 2xx to an
      INVITE whose client transaction is gone (a retransmitted 2xx: the dialog re-ACKs it);
    - ``DeliverRequest``: a new request for the TU, whose answer goes through
      ``send_response(key, ...)``; key ``None`` = an ACK matching no transaction (the ACK
      for a 2xx: the dialog's); an INVITE key = an ACK that reached that INVITE's
      transaction in Accepted (RFC 6026; also the dialog's);
    - ``TransactionTimeout`` / ``TransportFailed``: the transaction failed (clients carry
      the 408/503 response to treat as the final answer);
    - ``Terminated``: the key is forgotten; drop its address.

    Responses matching no client transaction are discarded (except 2xx to INVITE, above).
    Over ``max_transactions`` live transactions, ``new_client`` answers the TU with a 503
    (``DeliverResponse`` + ``Terminated``, nothing registered) and ``receive_request``
    answers the peer with a stateless 503 (key ``None``; ACKs are just dropped).
    """

    def __init__(
        self,
        *,
        timers: TimerSettings | None = None,
        max_transactions: int = 10_000,
        logger: logging.Logger | None = None,
    ) -> None:
        self.timers = timers if timers is not None else TimerSettings()
        self.max_transactions = max_transactions
        self._log = logger if logger is not None else _NULL_LOGGER
        self._transactions: dict[TransactionKey, Transaction | Lingering] = {}
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._deadlines: dict[TransactionKey, float] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._transactions)

    def __contains__(self, key: object) -> bool:
        return key in self._transactions

    def get(self, key: TransactionKey) -> Transaction | Lingering | None:
        return self._transactions.get(key)

    # --- client side -------------------------------------------------------------------------
    def new_client(
        self, request: Request, *, reliable: bool, now: float
    ) -> tuple[TransactionKey, list[LayerAction]]:
        """Create and start a client transaction for ``request`` (which carries its Via with
        a fresh ``z9hG4bK`` branch). Raises :class:`TransactionStateError` for an ACK (never
        a transaction), a missing branch or a key already in use."""
        if request.method == "ACK":
            raise TransactionStateError("ACK is sent without a client transaction")
        key = client_key(request)
        if not key[0].startswith(BRANCH_MAGIC):
            raise TransactionStateError(f"client request needs a {BRANCH_MAGIC} branch")
        if key in self._transactions:
            raise TransactionStateError(f"transaction {key} already exists")
        if len(self._transactions) >= self.max_transactions:
            self._log.warning("transaction limit %d reached", self.max_transactions)
            return key, [
                (key, DeliverResponse(response=_overload_response(request))),
                (key, Terminated()),
            ]
        tx: ClientTransaction
        if request.method == "INVITE":
            tx = InviteClientTransaction(
                request, reliable=reliable, timers=self.timers, logger=self._log
            )
        else:
            tx = NonInviteClientTransaction(
                request, reliable=reliable, timers=self.timers, logger=self._log
            )
        self._transactions[key] = tx
        return key, self._after(key, tx, tx.start(now))

    def receive_response(self, response: Response, now: float) -> list[LayerAction]:
        """A response from the transport, matched by top Via branch + CSeq method."""
        key = client_key(response)
        tx = self._transactions.get(key)
        if isinstance(tx, Lingering) and tx.is_client:
            return self._after(key, tx, tx.receive_response(response, now))
        if not isinstance(tx, _ClientTransaction):
            if key[1] == "INVITE" and response.is_success:
                return [(None, DeliverResponse(response=response))]
            self._log.debug("response %d matches no transaction", response.status_code)
            return []
        return self._after(key, tx, tx.receive_response(response, now))

    # --- server side -------------------------------------------------------------------------
    def receive_request(self, request: Request, *, reliable: bool, now: float) -> list[LayerAction]:
        """A request from the transport: absorbed by its server transaction, or a new one
        (``DeliverRequest`` first), or an unmatched ACK for the TU."""
        key = server_key(request)
        tx = self._transactions.get(key)
        if request.method == "ACK":
            if isinstance(tx, InviteServerTransaction):
                return self._after(key, tx, tx.receive_request(request, now))
            return [(None, DeliverRequest(request=request))]
        if isinstance(tx, _ServerTransaction) or (isinstance(tx, Lingering) and not tx.is_client):
            return self._after(key, tx, tx.receive_request(request, now))
        if len(self._transactions) >= self.max_transactions:
            self._log.warning("transaction limit %d reached", self.max_transactions)
            return [(None, Transmit.of(_overload_response(request)))]
        server: ServerTransaction
        if request.method == "INVITE":
            server = InviteServerTransaction(
                request, reliable=reliable, timers=self.timers, logger=self._log
            )
        else:
            server = NonInviteServerTransaction(
                request, reliable=reliable, timers=self.timers, logger=self._log
            )
        self._transactions[key] = server
        actions: list[LayerAction] = [(key, DeliverRequest(request=request))]
        actions.extend(self._after(key, server, server.start(now)))
        return actions

    def send_response(
        self, key: TransactionKey, response: Response, now: float
    ) -> list[LayerAction]:
        """A response from the TU for server transaction ``key``. A key already gone (the
        transaction timed out or failed) yields no action."""
        tx = self._transactions.get(key)
        if not isinstance(tx, _ServerTransaction | Lingering) or tx.is_client:
            self._log.debug("response %d for unknown transaction %s", response.status_code, key)
            return []
        return self._after(key, tx, tx.send_response(response, now))

    def cancel_target(self, cancel: Request) -> TransactionKey | None:
        """The live INVITE server transaction a received CANCEL refers to (§9.2)."""
        key = server_key(cancel)
        branch, _, sent_by, _ = key
        target = transaction_key(branch, "INVITE", sent_by, server=True)
        return target if target in self._transactions else None

    # --- both --------------------------------------------------------------------------------
    def transport_error(self, key: TransactionKey, now: float) -> list[LayerAction]:
        tx = self._transactions.get(key)
        if tx is None:
            return []
        return self._after(key, tx, tx.transport_error(now))

    def get_timer(self) -> float | None:
        """Earliest deadline over all transactions (heap top, stale entries dropped)."""
        heap = self._heap
        while heap:
            deadline, _, key = heap[0]
            if self._deadlines.get(key) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> list[LayerAction]:
        """Fire every transaction timer due at ``now``."""
        out: list[LayerAction] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._deadlines.get(key) != deadline:
                continue  # stale entry (lazy deletion)
            del self._deadlines[key]
            tx = self._transactions.get(key)
            if isinstance(tx, Lingering):  # its only deadline (J or K) ends it
                del self._transactions[key]
                out.append((key, Terminated()))
            elif tx is not None:
                out.extend(self._after(key, tx, tx.handle_timer(now)))
        return out

    def _after(
        self, key: TransactionKey, tx: Transaction | Lingering, actions: list[Action]
    ) -> list[LayerAction]:
        """Tag actions, forget a terminated transaction, re-schedule its deadline."""
        if isinstance(tx, Lingering):
            pass  # nothing changes: its deadline stands, it ends only there
        elif tx.state is State.TERMINATED:
            self._transactions.pop(key, None)
            self._deadlines.pop(key, None)
        else:
            deadline = tx.get_timer()
            if tx.state is State.COMPLETED and isinstance(tx, _LINGERING_TYPES):
                assert deadline is not None  # Completed arms timer J or K (else Terminated)
                self._transactions[key] = Lingering.of(tx)
            if deadline is None:
                self._deadlines.pop(key, None)
            elif self._deadlines.get(key) != deadline:
                self._deadlines[key] = deadline
                heapq.heappush(self._heap, (deadline, next(self._seq), key))
        if len(self._heap) > 2 * len(self._deadlines) + 64:
            self._heap = [(d, next(self._seq), k) for k, d in self._deadlines.items()]
            heapq.heapify(self._heap)
        return [(key, action) for action in actions]
