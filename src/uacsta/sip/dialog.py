"""SIP dialogs, sans-IO (RFC 3261 §12, §13.2.2.4; RFC 4028 session timers).

This module owns dialog state: the dialog ID (Call-ID, local tag, remote tag), local and
remote URIs, the remote target (from Contact, updated by target refreshes), the route set
(from Record-Route), local and remote CSeq, and the secure flag. It builds in-dialog
requests (§12.2.1.1) and the ACK for a 2xx (§13.2.2.4), checks incoming in-dialog requests
(§12.2.2: 481 for an unknown dialog, 500 for a CSeq out of order), and keeps RFC 4028
session timer bookkeeping (§7-§10: Session-Expires, Min-SE, 422, refresher, deadlines).

A dialog is tied to its peer: the adapter names the flow the dialog runs on (``peer``, an
opaque value: a UDP source address, a TCP/TLS connection) and an in-dialog request from any
other flow is answered 481 before it touches the dialog. Call-ID and tags travel in clear, so
knowing them must not let a stranger inject requests, push the remote CSeq past the real
peer's (whose next requests would get 500) or end the dialog (RFC 3261 §26.1.2 leaves
authenticating in-dialog requests to the UA; the flow is what authenticated).

Why our own: no maintained Python library offers an RFC 3261 transaction/dialog layer for
asyncio with TLS. aiosip is deprecated and UDP-only, sippy/b2bua is threaded with no TLS,
and pjsua2 does not build in our environment. uacsta needs one long-lived INVITE dialog per
phone (ECMA TR/87), refreshed by re-INVITE, so the dialog is small but must be exact.

Scope and simplifications:

- Only confirmed dialogs (from a 2xx); early dialogs (1xx with a tag) are not tracked.
- Strict routing (a first route without ``lr``, RFC 2543 proxies) is supported as in
  §12.2.1.1, except that the URI taken from the route set is used as is (parameters not
  allowed in a Request-URI are not stripped).
- An incoming target refresh (re-INVITE, UPDATE) updates the remote target as soon as it is
  accepted by :meth:`Dialog.receive_request`, not when its 2xx is sent (RFC 6141 refines
  this for failed re-INVITEs; uacsta never rejects a phone's re-INVITE for a target reason).
- Time is an argument (``now``); the dialog arms nothing, it exposes deadlines.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from uacsta.sip.errors import SipError, SipParseError
from uacsta.sip.message import Request, Response
from uacsta.sip.uri import NameAddr, SipUri, Via, parse_name_addr, parse_uri

__all__ = [
    "DEFAULT_SESSION_INTERVAL",
    "MIN_SE_FLOOR",
    "Dialog",
    "DialogCheck",
    "DialogError",
    "DialogId",
    "DialogSet",
    "DialogState",
    "Refresher",
    "SessionExpires",
    "SessionTimerAnswer",
    "interval_after_422",
    "negotiate_session_timer_uas",
    "parse_min_se",
    "parse_session_expires",
    "session_timer_from_response",
    "session_timer_request_headers",
]

Headers = tuple[tuple[str, str], ...]

_NULL_LOGGER = logging.getLogger("uacsta.sip.dialog.null")
_NULL_LOGGER.addHandler(logging.NullHandler())
_NULL_LOGGER.propagate = False

# Methods whose Contact replaces the remote target (§12.2, RFC 3311).
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})
# Methods that carry our Contact when we send them in a dialog.
_CONTACT_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

MIN_SE_FLOOR = 90  # RFC 4028 §4: Min-SE never below 90 s
DEFAULT_SESSION_INTERVAL = 1800  # RFC 4028 §4: recommended Session-Expires


class DialogError(SipError):
    """Local misuse of a dialog (a request in a terminated dialog, ACK via create_request)."""

    status_code = 500


# --- RFC 4028 session timers -----------------------------------------------------------------
class Refresher(Enum):
    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True, slots=True)
class SessionExpires:
    """A Session-Expires value (RFC 4028 §4): delta-seconds and optional refresher."""

    interval: int
    refresher: Refresher | None = None

    def __str__(self) -> str:
        if self.refresher is None:
            return str(self.interval)
        return f"{self.interval};refresher={self.refresher.value}"


def _delta_seconds(text: str, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 10:
        raise SipParseError(f"bad {what} value {text!r}")
    return int(text)


def parse_session_expires(value: str) -> SessionExpires:
    """Parse ``1800;refresher=uac``; unknown parameters are ignored (RFC 4028 §4)."""
    first, *params = value.split(";")
    interval = _delta_seconds(first, "Session-Expires")
    if interval <= 0:
        raise SipParseError(f"Session-Expires must be positive: {value!r}")
    refresher: Refresher | None = None
    for param in params:
        name, _, pvalue = param.partition("=")
        if name.strip().lower() == "refresher":
            try:
                refresher = Refresher(pvalue.strip().lower())
            except ValueError as exc:
                raise SipParseError(f"bad refresher in Session-Expires: {value!r}") from exc
    return SessionExpires(interval, refresher)


def parse_min_se(value: str) -> int:
    """Parse a Min-SE value (delta-seconds, generic parameters ignored)."""
    return _delta_seconds(value.partition(";")[0], "Min-SE")


def session_timer_request_headers(
    interval: int = DEFAULT_SESSION_INTERVAL,
    *,
    min_se: int = MIN_SE_FLOOR,
    refresher: Refresher | None = None,
) -> Headers:
    """Headers a UAC puts in an INVITE (or refreshing re-INVITE) to ask for a session timer
    (RFC 4028 §7.1): Session-Expires, Min-SE and Supported: timer."""
    return (
        ("Session-Expires", str(SessionExpires(interval, refresher))),
        ("Min-SE", str(min_se)),
        ("Supported", "timer"),
    )


def interval_after_422(response: Response, current_interval: int) -> int:
    """The Session-Expires to retry with after a 422 (RFC 4028 §7.4): the response's
    Min-SE, never below what was asked. Raises :class:`SipParseError` without Min-SE."""
    value = response.header("Min-SE")
    if value is None:
        raise SipParseError("422 response without Min-SE")
    return max(parse_min_se(value), current_interval)


def session_timer_from_response(response: Response) -> SessionExpires | None:
    """The session timer a UAC got in a 2xx (RFC 4028 §7.2): None when the 2xx carries no
    Session-Expires (no session expiration). A missing refresher (non-compliant UAS) is
    taken as ``uac``: then we refresh, which keeps the session alive either way."""
    value = response.header("Session-Expires")
    if value is None:
        return None
    se = parse_session_expires(value)
    if se.refresher is None:
        se = SessionExpires(se.interval, Refresher.UAC)
    return se


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTimerAnswer:
    """A UAS decision on a session timer request.

    ``status_code`` 200: add ``headers`` to the 2xx (``session_expires`` None: no timer).
    ``status_code`` 422: answer 422 with ``headers`` (Min-SE) instead of accepting.
    """

    status_code: int
    session_expires: SessionExpires | None = None
    headers: Headers = ()


def negotiate_session_timer_uas(
    request: Request,
    *,
    min_se: int = MIN_SE_FLOOR,
    preferred_refresher: Refresher = Refresher.UAC,
) -> SessionTimerAnswer:
    """UAS side of RFC 4028 §9 for an INVITE/UPDATE.

    - Session-Expires below our ``min_se`` → 422 with ``Min-SE: min_se``.
    - No Session-Expires → no session timer (the UAS option to insert one is not used).
    - Refresher: the request's, else ``preferred_refresher`` when the UAC supports
      ``timer``, else ``uas`` (a UAC without timer support cannot refresh).
    - The 2xx echoes Session-Expires with the refresher, plus ``Require: timer`` when the
      UAC supports timer.
    """
    value = request.header("Session-Expires")
    if value is None:
        return SessionTimerAnswer(status_code=200)
    asked = parse_session_expires(value)
    if asked.interval < min_se:
        return SessionTimerAnswer(status_code=422, headers=(("Min-SE", str(min_se)),))
    uac_supports = "timer" in request.option_tags("Supported")
    refresher = asked.refresher
    if refresher is None:
        refresher = preferred_refresher if uac_supports else Refresher.UAS
    elif not uac_supports:
        refresher = Refresher.UAS
    answer = SessionExpires(asked.interval, refresher)
    headers: Headers = (("Session-Expires", str(answer)),)
    if uac_supports:
        headers = (*headers, ("Require", "timer"))
    return SessionTimerAnswer(status_code=200, session_expires=answer, headers=headers)


# --- dialogs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DialogId:
    """§12: Call-ID, local tag, remote tag."""

    call_id: str
    local_tag: str
    remote_tag: str


class DialogState(Enum):
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class DialogCheck(Enum):
    """Verdict on an incoming in-dialog request (§12.2.2)."""

    ACCEPT = "accept"
    OUT_OF_ORDER = "CSeq out of order"
    NOT_THIS_DIALOG = "no such dialog"
    #: The dialog exists but the request came from another flow than the dialog's peer.
    FOREIGN_PEER = "not from the dialog's peer"

    @property
    def status_code(self) -> int | None:
        """The rejection status (500 / 481), None when accepted."""
        return _CHECK_STATUS[self]


_CHECK_STATUS = {
    DialogCheck.ACCEPT: None,
    DialogCheck.OUT_OF_ORDER: 500,
    DialogCheck.NOT_THIS_DIALOG: 481,
    # As for an unknown dialog: the stranger learns nothing, the peer's dialog is untouched.
    DialogCheck.FOREIGN_PEER: 481,
}


def _is_sips(uri_text: str) -> bool:
    try:
        return parse_uri(uri_text).scheme == "sips"
    except SipParseError:
        return False


def _local_via(via: Via) -> Via:
    """Our Via template from a request we sent: transport and sent-by, no branch."""
    params: tuple[tuple[str, str | None], ...] = (("rport", None),) if via.wants_rport else ()
    return Via(transport=via.transport, host=via.host, port=via.port, params=params)


def _via_from_contact(contact: str | None) -> Via | None:
    if contact is None:
        return None
    try:
        uri = parse_name_addr(contact).uri
    except SipParseError:
        return None
    if not isinstance(uri, SipUri):
        return None
    transport = uri.transport or ("TLS" if uri.scheme == "sips" else "UDP")
    return Via(transport=transport, host=uri.host, port=uri.port, params=(("rport", None),))


@dataclass(slots=True, kw_only=True)
class Dialog:
    """One dialog (§12). Mutable: CSeq, remote target and session timer change over time.

    ``local_uri`` / ``remote_uri`` are the From/To values of our requests, tags included.
    ``route_set`` holds Route values in the order they go in our requests.
    ``local_via`` is the transport and sent-by put in our requests' Via (branch added per
    request). ``is_uac``: we sent the dialog-creating INVITE.
    """

    call_id: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: str
    route_set: tuple[str, ...] = ()
    local_cseq: int = 0
    remote_cseq: int | None = None
    secure: bool = False
    is_uac: bool = True
    local_contact: str | None = None
    local_via: Via | None = None
    state: DialogState = DialogState.CONFIRMED
    session_interval: int | None = None
    session_we_refresh: bool = False
    session_refresh_at: float | None = None
    session_expires_at: float | None = None
    #: The flow the dialog runs on, as the adapter names it; in-dialog requests from another
    #: are refused (FOREIGN_PEER). None: not bound (any source is accepted).
    peer: Hashable | None = None
    logger: logging.Logger = field(default=_NULL_LOGGER, repr=False, compare=False)
    _id: DialogId | None = field(default=None, init=False, repr=False, compare=False)

    # --- creation ----------------------------------------------------------------------------
    @classmethod
    def from_uac(
        cls, request: Request, response_2xx: Response, *, logger: logging.Logger | None = None
    ) -> Dialog:
        """The dialog our INVITE created, from its 2xx (§12.1.2).

        Route set: the 2xx's Record-Route reversed; remote target: its Contact (the
        Request-URI if the peer omitted it); local CSeq: the INVITE's.
        """
        if not response_2xx.is_success:
            raise DialogError(f"a dialog needs a 2xx, not {response_2xx.status_code}")
        contacts = response_2xx.contact
        remote_target = str(contacts[0].uri) if contacts else request.uri
        return cls(
            call_id=request.call_id,
            local_uri=request.from_,
            remote_uri=response_2xx.to,
            remote_target=remote_target,
            route_set=tuple(reversed(response_2xx.header_values("Record-Route"))),
            local_cseq=request.cseq.seq,
            remote_cseq=None,
            secure=_is_sips(request.uri),
            is_uac=True,
            local_contact=request.header("Contact"),
            local_via=_local_via(request.top_via),
            logger=logger if logger is not None else _NULL_LOGGER,
        )

    @classmethod
    def from_uas(
        cls,
        request: Request,
        local_tag: str,
        local_contact: str,
        *,
        local_via: Via | None = None,
        logger: logging.Logger | None = None,
    ) -> Dialog:
        """The dialog a received INVITE creates when we answer 2xx with ``local_tag``
        (§12.1.1). Route set: Record-Route in order; remote target: the request's Contact;
        remote CSeq: the request's. ``local_via`` defaults to one derived from
        ``local_contact``."""
        contacts = request.contact
        from_ = request.from_
        remote_target = str(contacts[0].uri) if contacts else str(from_.uri)
        return cls(
            call_id=request.call_id,
            local_uri=request.to.with_tag(local_tag),
            remote_uri=from_,
            remote_target=remote_target,
            route_set=tuple(request.header_values("Record-Route")),
            local_cseq=0,
            remote_cseq=request.cseq.seq,
            secure=_is_sips(request.uri),
            is_uac=False,
            local_contact=local_contact,
            local_via=local_via if local_via is not None else _via_from_contact(local_contact),
            logger=logger if logger is not None else _NULL_LOGGER,
        )

    # --- identity ----------------------------------------------------------------------------
    @property
    def local_tag(self) -> str:
        return self.local_uri.tag or ""

    @property
    def remote_tag(self) -> str:
        return self.remote_uri.tag or ""

    @property
    def id(self) -> DialogId:
        """Call-ID and both tags; fixed for the dialog's life (§12), so built once: the
        user-agent core looks it up for every request sent and answered in the dialog."""
        found = self._id
        if found is None:
            found = self._id = DialogId(self.call_id, self.local_tag, self.remote_tag)
        return found

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    # --- outgoing ----------------------------------------------------------------------------
    def create_request(
        self,
        method: str,
        *,
        branch: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Headers = (),
        via: Via | None = None,
    ) -> Request:
        """A new in-dialog request (§12.2.1.1) with the next local CSeq.

        ``branch`` goes in the Via built from ``via`` (default: :attr:`local_via`). Our
        Contact is added to target-refresh-capable methods (INVITE, UPDATE, SUBSCRIBE,
        NOTIFY, REFER). ACK (use :meth:`create_ack`) and CANCEL (a transaction matter,
        ``transaction.build_cancel``) are refused.
        """
        if method in ("ACK", "CANCEL"):
            raise DialogError(f"{method} is not built by create_request")
        if self.state is DialogState.TERMINATED:
            raise DialogError("dialog is terminated")
        seq = self.local_cseq + 1
        request = self._build(
            method,
            cseq=f"{seq} {method}",
            branch=branch,
            body=body,
            content_type=content_type,
            extra_headers=extra_headers,
            via=via,
        )
        self.local_cseq = seq  # only once the request could be built
        return request

    def create_ack(
        self,
        response_2xx: Response,
        *,
        branch: str,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Headers = (),
        via: Via | None = None,
    ) -> Request:
        """ACK for a 2xx to our INVITE (§13.2.2.4): built like an in-dialog request with the
        INVITE's CSeq number, a new branch; the local CSeq does not move. Apply
        :meth:`receive_response` first so a re-INVITE's new Contact is the target."""
        cseq = response_2xx.cseq
        if cseq.method != "INVITE" or not response_2xx.is_success:
            raise DialogError("create_ack needs a 2xx to an INVITE")
        return self._build(
            "ACK",
            cseq=f"{cseq.seq} ACK",
            branch=branch,
            body=body,
            content_type=content_type,
            extra_headers=extra_headers,
            via=via,
        )

    def _build(
        self,
        method: str,
        *,
        cseq: str,
        branch: str,
        body: bytes,
        content_type: str | None,
        extra_headers: Headers,
        via: Via | None,
    ) -> Request:
        template = via if via is not None else self.local_via
        if template is None:
            raise DialogError("no Via for this dialog: pass via=")
        top_via = template.with_param("branch", branch)
        uri, routes = self._request_target()
        headers: list[tuple[str, str]] = [("Via", str(top_via)), ("Max-Forwards", "70")]
        headers.extend(("Route", r) for r in routes)
        headers.extend(
            (
                ("From", str(self.local_uri)),
                ("To", str(self.remote_uri)),
                ("Call-ID", self.call_id),
                ("CSeq", cseq),
            )
        )
        if method in _CONTACT_METHODS and self.local_contact is not None:
            headers.append(("Contact", self.local_contact))
        headers.extend(extra_headers)
        if body and content_type:
            headers.append(("Content-Type", content_type))
        request = Request(method=method, uri=uri, headers=tuple(headers), body=body)
        # The objects these headers were written from: the transaction layer reads the Via
        # (its key) of every request we send, so it is not parsed back from our own text.
        request.seed_parsed({"Via": top_via, "From": self.local_uri, "To": self.remote_uri})
        return request

    def _request_target(self) -> tuple[str, tuple[str, ...]]:
        """Request-URI and Route values (§12.2.1.1: loose routing, or strict routing)."""
        if not self.route_set:
            return self.remote_target, ()
        first = parse_name_addr(self.route_set[0]).uri
        if isinstance(first, SipUri) and first.has_param("lr"):
            return self.remote_target, self.route_set
        # Strict router: it gets the Request-URI, the remote target goes last in Route.
        return str(first), (*self.route_set[1:], f"<{self.remote_target}>")

    # --- incoming ----------------------------------------------------------------------------
    def matches_request(self, request: Request) -> bool:
        """Does ``request`` belong here (Call-ID, To tag = local, From tag = remote)?"""
        return (
            request.call_id == self.call_id
            and (request.to.tag or "") == self.local_tag
            and (request.from_.tag or "") == self.remote_tag
        )

    def receive_request(self, request: Request, *, peer: Hashable | None = None) -> DialogCheck:
        """§12.2.2: check an incoming in-dialog request and update remote CSeq and target.

        ``peer`` names the flow it came on: when the dialog is bound (:attr:`peer`) another
        flow → FOREIGN_PEER (481), nothing changed. ACK and CANCEL are accepted without a
        CSeq check (they reuse the INVITE's number). A lower CSeq than the last one →
        OUT_OF_ORDER (500); the same number is accepted (its retransmissions are absorbed by
        the transaction layer before reaching here).
        """
        if self.state is DialogState.TERMINATED or not self.matches_request(request):
            return DialogCheck.NOT_THIS_DIALOG
        if self.peer is not None and peer != self.peer:
            self.logger.debug("dialog %s: %s from another flow", self.call_id, request.method)
            return DialogCheck.FOREIGN_PEER
        if request.method in ("ACK", "CANCEL"):
            return DialogCheck.ACCEPT
        seq = request.cseq.seq
        if self.remote_cseq is not None and seq < self.remote_cseq:
            return DialogCheck.OUT_OF_ORDER
        self.remote_cseq = seq
        if request.method in TARGET_REFRESH_METHODS:
            self._refresh_target(request.contact)
        return DialogCheck.ACCEPT

    def receive_response(self, response: Response) -> None:
        """A final response to one of our in-dialog requests.

        2xx to a target refresh (re-INVITE, UPDATE): its Contact becomes the remote target.
        481 or 408: the dialog is terminated (§12.2.1.2).
        """
        if response.is_success and response.cseq.method in TARGET_REFRESH_METHODS:
            self._refresh_target(response.contact)
        elif response.status_code in (408, 481):
            self.logger.info("dialog %s terminated by %d", self.call_id, response.status_code)
            self.state = DialogState.TERMINATED

    def _refresh_target(self, contacts: list[NameAddr]) -> None:
        if contacts:
            target = str(contacts[0].uri)
            if target != self.remote_target:
                self.logger.debug("dialog %s remote target %s", self.call_id, target)
                self.remote_target = target

    # --- session timer (RFC 4028) ------------------------------------------------------------
    def session_refreshed(
        self,
        now: float,
        interval: int,
        refresher: Refresher,
        *,
        local_is_uac: bool | None = None,
    ) -> None:
        """A session refresh (or the initial INVITE) succeeded at ``now`` with ``interval``.

        ``refresher`` is relative to the refresh transaction; ``local_is_uac`` says whether
        we sent it (default: whether we created the dialog). When we refresh, refresh at
        half the interval (RFC 4028 §10); when the peer does, the session expires at
        interval - min(32, interval/3), when we should send BYE.
        """
        we_uac = self.is_uac if local_is_uac is None else local_is_uac
        self.session_interval = interval
        self.session_we_refresh = (refresher is Refresher.UAC) == we_uac
        if self.session_we_refresh:
            self.session_refresh_at = now + interval / 2
            self.session_expires_at = None
        else:
            self.session_refresh_at = None
            self.session_expires_at = now + interval - min(32.0, interval / 3)

    def session_timer_off(self) -> None:
        """No session timer (the 2xx had no Session-Expires)."""
        self.session_interval = None
        self.session_we_refresh = False
        self.session_refresh_at = None
        self.session_expires_at = None

    def get_timer(self) -> float | None:
        """The session deadline: when to refresh, or when the peer's refresh is overdue."""
        if self.session_refresh_at is not None:
            return self.session_refresh_at
        return self.session_expires_at


class DialogSet:
    """Dialogs by ID; finds the dialog of an incoming request or response (§12.2.2)."""

    def __init__(self, *, logger: logging.Logger | None = None) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}
        self._log = logger if logger is not None else _NULL_LOGGER

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def add(self, dialog: Dialog) -> None:
        self._dialogs[dialog.id] = dialog

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def remove(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.pop(dialog_id, None)

    def prune(self) -> list[Dialog]:
        """Forget terminated dialogs; return them."""
        gone = [d for d in self._dialogs.values() if d.state is DialogState.TERMINATED]
        for dialog in gone:
            del self._dialogs[dialog.id]
        return gone

    def find_for_request(self, request: Request) -> Dialog | None:
        """Incoming request: local tag = To tag, remote tag = From tag."""
        key = DialogId(request.call_id, request.to.tag or "", request.from_.tag or "")
        return self._dialogs.get(key)

    def find_for_response(self, response: Response) -> Dialog | None:
        """Response to our request: local tag = From tag, remote tag = To tag."""
        key = DialogId(response.call_id, response.from_.tag or "", response.to.tag or "")
        return self._dialogs.get(key)

    def check_request(
        self, request: Request, *, peer: Hashable | None = None
    ) -> tuple[Dialog | None, DialogCheck]:
        """Find and check (``peer``: the flow it came on): (None, NOT_THIS_DIALOG) → answer
        481 (§12.2.2)."""
        dialog = self.find_for_request(request)
        if dialog is None:
            self._log.debug("no dialog for %s %s", request.method, request.call_id)
            return None, DialogCheck.NOT_THIS_DIALOG
        return dialog, dialog.receive_request(request, peer=peer)
