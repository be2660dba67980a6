"""ECMA-354 application sessions: messages, their XML codec and the server-side session state.

Owns the Application Session Services of ECMA-354 (namespace
``http://www.ecma-international.org/standards/ecma-354/appl_session``) as CSTA-over-TCP clients
use them before any ECMA-323 request: StartApplicationSession, StopApplicationSession,
ResetApplicationSessionTimer (with their positive and negative responses) and
ApplicationSessionTerminated. Element and value names are those of the ECMA-354 schema.

Decoding matches elements by local name, so a missing or unexpected namespace is accepted;
``extensions`` and unknown elements are ignored. Missing text elements decode as ``""`` (the
session then answers ``invalidSessionID``); a missing or non-numeric required integer is a
:class:`CstaDecodeError`. Encoding always uses the ECMA-354 namespace.

ECMA-354 leaves credentials to the implementation (``applicationSpecificInfo``). Accepted:

1. the Avaya AE Services / DMCC shape that most CSTA clients send::

       <applicationSpecificInfo>
         <ns1:SessionLoginInfo xmlns:ns1="http://www.avaya.com/csta">
           <ns1:userName>u</ns1:userName><ns1:password>p</ns1:password>
           <ns1:sessionCleanupDelay>60</ns1:sessionCleanupDelay>   (optional)
         </ns1:SessionLoginInfo>
       </applicationSpecificInfo>

2. a plain shape: ``<applicationSpecificInfo><userName>u</userName><password>p</password>
   </applicationSpecificInfo>`` (``sessionCleanupDelay`` optional here too).

:class:`ApplicationSession` is the per-connection server state (IDLE → ACTIVE → TERMINATED),
sans-IO: messages and ``now`` in, messages to send out, ``get_timer``/``handle_timer`` for the
session duration timer.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum, auto
from types import MappingProxyType
from typing import Final

from lxml import etree

from uacsta.csta.errors import CstaDecodeError, CstaError
from uacsta.csta.xmlparse import local_name, parse_document

APPL_SESSION_NAMESPACE: Final = "http://www.ecma-international.org/standards/ecma-354/appl_session"
AVAYA_CSTA_NAMESPACE: Final = "http://www.avaya.com/csta"

_CSTA_NS_PREFIX: Final = "http://www.ecma-international.org/standards/ecma-323/csta/"
CSTA_ED2: Final = _CSTA_NS_PREFIX + "ed2"
CSTA_ED3: Final = _CSTA_NS_PREFIX + "ed3"
CSTA_ED4: Final = _CSTA_NS_PREFIX + "ed4"
CSTA_ED5: Final = _CSTA_NS_PREFIX + "ed5"
CSTA_ED6: Final = _CSTA_NS_PREFIX + "ed6"
SUPPORTED_PROTOCOL_VERSIONS: Final = (CSTA_ED2, CSTA_ED3, CSTA_ED4, CSTA_ED5, CSTA_ED6)

_LOG = logging.getLogger(__name__)
_XML_SPACE: Final = " \t\r\n"
_MAX_INT_DIGITS: Final = 10


# --- value names (ECMA-354 schema enumerations) ---------------------------------------------
# Message fields are typed ``str`` so values a peer sends that we do not know pass through;
# these StrEnums compare equal to the wire strings.


class StartApplicationSessionError(StrEnum):
    """``definedError`` values of StartApplicationSessionNegResponse."""

    INVALID_APPLICATION_INFO = "invalidApplicationInfo"
    REQUESTED_PROTOCOL_VERSION_NOT_SUPPORTED = "requestedProtocolVersionNotSupported"
    SERVER_RESOURCES_BUSY = "serverResourcesBusy"
    MAX_NUMBER_SESSIONS = "maxNumberSessions"


class StopApplicationSessionError(StrEnum):
    """``definedError`` values of StopApplicationSessionNegResponse."""

    INVALID_SESSION_ID = "invalidSessionID"


class ResetApplicationSessionTimerError(StrEnum):
    """``definedError`` values of ResetApplicationSessionTimerNegResponse."""

    INVALID_SESSION_ID = "invalidSessionID"
    SERVER_CANNOT_RESET_SESSION_TIMER = "serverCannotResetSessionTimer"


class DefinedEndReason(StrEnum):
    """``definedEndReason`` values of StopApplicationSession."""

    NORMAL = "normal"


class DefinedTermReason(StrEnum):
    """``definedTermReason`` values of ApplicationSessionTerminated."""

    RESOURCE_LIMITATION = "resourceLimitation"
    SESSION_TIMER_EXPIRED = "sessionTimerExpired"


# --- messages -------------------------------------------------------------------------------


class CredentialsShape(Enum):
    """Which ``applicationSpecificInfo`` layout carried the credentials (kept for re-encoding)."""

    AVAYA = "avaya"
    PLAIN = "plain"


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionLoginInfo:
    """User name and password from ``applicationSpecificInfo`` (the password never in repr)."""

    user_name: str
    password: str = field(repr=False)
    session_cleanup_delay: int | None = None
    shape: CredentialsShape = CredentialsShape.AVAYA


@dataclass(frozen=True, kw_only=True, slots=True)
class AppSessionMessage:
    """Base of every ECMA-354 message; consumers dispatch with ``match``."""


def _require_one(owner: object, first: str, second: str, *, required: bool = True) -> None:
    values = [getattr(owner, first), getattr(owner, second)]
    count = sum(value is not None for value in values)
    if count > 1 or (required and count == 0):
        need = "exactly" if required else "at most"
        raise ValueError(f"{type(owner).__name__} needs {need} one of {first}, {second}")


@dataclass(frozen=True, kw_only=True, slots=True)
class StartApplicationSession(AppSessionMessage):
    """Opens a session; ``credentials`` come from ``applicationInfo/applicationSpecificInfo``."""

    application_id: str
    requested_protocol_versions: tuple[str, ...] = ()
    requested_session_duration: int | None = None
    credentials: SessionLoginInfo | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StartApplicationSessionPosResponse(AppSessionMessage):
    session_id: str
    actual_protocol_version: str
    actual_session_duration: int


@dataclass(frozen=True, kw_only=True, slots=True)
class StartApplicationSessionNegResponse(AppSessionMessage):
    """``errorCode``: ``definedError`` (:class:`StartApplicationSessionError`) or ``applError``."""

    defined_error: str | None = None
    appl_error: str | None = None

    def __post_init__(self) -> None:
        _require_one(self, "defined_error", "appl_error")


@dataclass(frozen=True, kw_only=True, slots=True)
class StopApplicationSession(AppSessionMessage):
    """``sessionEndReason`` is a ``definedEndReason`` or an ``appEndReason`` (or absent)."""

    session_id: str
    defined_end_reason: str | None = None
    app_end_reason: str | None = None

    def __post_init__(self) -> None:
        _require_one(self, "defined_end_reason", "app_end_reason", required=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class StopApplicationSessionPosResponse(AppSessionMessage):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class StopApplicationSessionNegResponse(AppSessionMessage):
    defined_error: str | None = None
    appl_error: str | None = None

    def __post_init__(self) -> None:
        _require_one(self, "defined_error", "appl_error")


@dataclass(frozen=True, kw_only=True, slots=True)
class ResetApplicationSessionTimer(AppSessionMessage):
    """Keep-alive; without ``requested_session_duration`` the current duration is reused."""

    session_id: str
    requested_session_duration: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ResetApplicationSessionTimerPosResponse(AppSessionMessage):
    actual_session_duration: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ResetApplicationSessionTimerNegResponse(AppSessionMessage):
    defined_error: str | None = None
    appl_error: str | None = None

    def __post_init__(self) -> None:
        _require_one(self, "defined_error", "appl_error")


@dataclass(frozen=True, kw_only=True, slots=True)
class ApplicationSessionTerminated(AppSessionMessage):
    """Sent by the server when it ends a session (timer expiry, shutdown, resource limits)."""

    session_id: str
    defined_term_reason: str | None = None
    server_term_reason: str | None = None

    def __post_init__(self) -> None:
        _require_one(self, "defined_term_reason", "server_term_reason")


# --- decoding -------------------------------------------------------------------------------


def _child(parent: etree._Element, name: str) -> etree._Element | None:
    for element in parent:
        if local_name(element) == name:
            return element
    return None


def _raw_text(element: etree._Element | None) -> str:
    if element is None or element.text is None:
        return ""
    return element.text


def _token(parent: etree._Element, name: str) -> str:
    """Text of a child element, tolerating pretty-printing whitespace around it."""
    return _raw_text(_child(parent, name)).strip(_XML_SPACE)


def _optional_int(parent: etree._Element, name: str) -> int | None:
    element = _child(parent, name)
    if element is None:
        return None
    text = _raw_text(element).strip(_XML_SPACE)
    if not (0 < len(text) <= _MAX_INT_DIGITS and text.isascii() and text.isdigit()):
        raise CstaDecodeError(f"<{name}> is not a non-negative integer: {text[:20]!r}")
    return int(text)


def _required_int(parent: etree._Element, name: str) -> int:
    value = _optional_int(parent, name)
    if value is None:
        raise CstaDecodeError(f"<{local_name(parent)}> lacks <{name}>")
    return value


def _choice(
    parent: etree._Element, container: str, first: str, second: str
) -> tuple[str | None, str | None]:
    holder = _child(parent, container)
    if holder is None:
        return None, None
    first_element = _child(holder, first)
    if first_element is not None:
        return _raw_text(first_element).strip(_XML_SPACE), None
    second_element = _child(holder, second)
    if second_element is not None:
        return None, _raw_text(second_element).strip(_XML_SPACE)
    return None, None


def _decode_credentials(info: etree._Element) -> SessionLoginInfo | None:
    specific = _child(info, "applicationSpecificInfo")
    if specific is None:
        return None
    holder = _child(specific, "SessionLoginInfo")
    shape = CredentialsShape.AVAYA
    if holder is None:
        holder, shape = specific, CredentialsShape.PLAIN
    user = _child(holder, "userName")
    if user is None:
        return None
    return SessionLoginInfo(
        user_name=_raw_text(user),
        password=_raw_text(_child(holder, "password")),
        session_cleanup_delay=_optional_int(holder, "sessionCleanupDelay"),
        shape=shape,
    )


def _decode_start(root: etree._Element) -> AppSessionMessage:
    info = _child(root, "applicationInfo")
    versions = _child(root, "requestedProtocolVersions")
    return StartApplicationSession(
        application_id="" if info is None else _token(info, "applicationID"),
        requested_protocol_versions=()
        if versions is None
        else tuple(
            _raw_text(element).strip(_XML_SPACE)
            for element in versions
            if local_name(element) == "protocolVersion"
        ),
        requested_session_duration=_optional_int(root, "requestedSessionDuration"),
        credentials=None if info is None else _decode_credentials(info),
    )


def _decode_start_pos(root: etree._Element) -> AppSessionMessage:
    return StartApplicationSessionPosResponse(
        session_id=_token(root, "sessionID"),
        actual_protocol_version=_token(root, "actualProtocolVersion"),
        actual_session_duration=_required_int(root, "actualSessionDuration"),
    )


def _decode_start_neg(root: etree._Element) -> AppSessionMessage:
    defined, other = _choice(root, "errorCode", "definedError", "applError")
    return StartApplicationSessionNegResponse(defined_error=defined, appl_error=other)


def _decode_stop(root: etree._Element) -> AppSessionMessage:
    defined, other = _choice(root, "sessionEndReason", "definedEndReason", "appEndReason")
    return StopApplicationSession(
        session_id=_token(root, "sessionID"), defined_end_reason=defined, app_end_reason=other
    )


def _decode_stop_pos(root: etree._Element) -> AppSessionMessage:
    return StopApplicationSessionPosResponse()


def _decode_stop_neg(root: etree._Element) -> AppSessionMessage:
    defined, other = _choice(root, "errorCode", "definedError", "applError")
    return StopApplicationSessionNegResponse(defined_error=defined, appl_error=other)


def _decode_reset(root: etree._Element) -> AppSessionMessage:
    return ResetApplicationSessionTimer(
        session_id=_token(root, "sessionID"),
        requested_session_duration=_optional_int(root, "requestedSessionDuration"),
    )


def _decode_reset_pos(root: etree._Element) -> AppSessionMessage:
    return ResetApplicationSessionTimerPosResponse(
        actual_session_duration=_required_int(root, "actualSessionDuration")
    )


def _decode_reset_neg(root: etree._Element) -> AppSessionMessage:
    defined, other = _choice(root, "errorCode", "definedError", "applError")
    return ResetApplicationSessionTimerNegResponse(defined_error=defined, appl_error=other)


def _decode_terminated(root: etree._Element) -> AppSessionMessage:
    defined, other = _choice(root, "sessionTermReason", "definedTermReason", "serverTermReason")
    return ApplicationSessionTerminated(
        session_id=_token(root, "sessionID"),
        defined_term_reason=defined,
        server_term_reason=other,
    )


_DECODERS: Final[Mapping[str, Callable[[etree._Element], AppSessionMessage]]] = MappingProxyType(
    {
        "StartApplicationSession": _decode_start,
        "StartApplicationSessionPosResponse": _decode_start_pos,
        "StartApplicationSessionNegResponse": _decode_start_neg,
        "StopApplicationSession": _decode_stop,
        "StopApplicationSessionPosResponse": _decode_stop_pos,
        "StopApplicationSessionNegResponse": _decode_stop_neg,
        "ResetApplicationSessionTimer": _decode_reset,
        "ResetApplicationSessionTimerPosResponse": _decode_reset_pos,
        "ResetApplicationSessionTimerNegResponse": _decode_reset_neg,
        "ApplicationSessionTerminated": _decode_terminated,
    }
)


def is_appsession_document(root_local_name: str) -> bool:
    """Whether a document with this root element belongs to ECMA-354 rather than ECMA-323."""
    return root_local_name in _DECODERS


def decode_appsession_element(root: etree._Element) -> AppSessionMessage | None:
    """Decode an already parsed root; ``None`` if it is not an ECMA-354 message."""
    decoder = _DECODERS.get(local_name(root))
    if decoder is None:
        return None
    try:
        return decoder(root)
    except ValueError as exc:  # a field combination the message classes refuse
        raise CstaDecodeError(str(exc)) from exc


def decode_appsession(data: bytes) -> AppSessionMessage | None:
    """Parse (hardened) and decode; ``None`` lets the caller hand the document to the CSTA codec.

    Bad or hostile XML raises :class:`CstaDecodeError`. A gateway that also needs the CSTA
    codec parses once with :func:`uacsta.csta.codec.parse`, then calls
    :func:`decode_appsession_element` and, for ``None``, :func:`uacsta.csta.codec.decode_element`.
    """
    return decode_appsession_element(parse_document(data))


# --- encoding -------------------------------------------------------------------------------


def _qname(name: str) -> str:
    return f"{{{APPL_SESSION_NAMESPACE}}}{name}"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _qname(name))
    if text is not None:
        element.text = text
    return element


def _sub_choice(
    parent: etree._Element, container: str, pairs: Sequence[tuple[str, str | None]]
) -> None:
    for name, value in pairs:
        if value is not None:
            _sub(_sub(parent, container), name, value)
            return


def _encode_credentials(info: etree._Element, credentials: SessionLoginInfo) -> None:
    specific = _sub(info, "applicationSpecificInfo")
    if credentials.shape is CredentialsShape.AVAYA:
        holder = etree.SubElement(
            specific,
            f"{{{AVAYA_CSTA_NAMESPACE}}}SessionLoginInfo",
            nsmap={"ns1": AVAYA_CSTA_NAMESPACE},
        )
        namespace = AVAYA_CSTA_NAMESPACE
    else:
        holder, namespace = specific, APPL_SESSION_NAMESPACE
    fields = [("userName", credentials.user_name), ("password", credentials.password)]
    if credentials.session_cleanup_delay is not None:
        fields.append(("sessionCleanupDelay", str(credentials.session_cleanup_delay)))
    for name, value in fields:
        etree.SubElement(holder, f"{{{namespace}}}{name}").text = value


def _encode_body(root: etree._Element, msg: AppSessionMessage) -> None:
    match msg:
        case StartApplicationSession():
            info = _sub(root, "applicationInfo")
            _sub(info, "applicationID", msg.application_id)
            if msg.credentials is not None:
                _encode_credentials(info, msg.credentials)
            versions = _sub(root, "requestedProtocolVersions")
            for version in msg.requested_protocol_versions:
                _sub(versions, "protocolVersion", version)
            if msg.requested_session_duration is not None:
                _sub(root, "requestedSessionDuration", str(msg.requested_session_duration))
        case StartApplicationSessionPosResponse():
            _sub(root, "sessionID", msg.session_id)
            _sub(root, "actualProtocolVersion", msg.actual_protocol_version)
            _sub(root, "actualSessionDuration", str(msg.actual_session_duration))
        case (
            StartApplicationSessionNegResponse()
            | StopApplicationSessionNegResponse()
            | ResetApplicationSessionTimerNegResponse()
        ):
            _sub_choice(
                root,
                "errorCode",
                [("definedError", msg.defined_error), ("applError", msg.appl_error)],
            )
        case StopApplicationSession():
            _sub(root, "sessionID", msg.session_id)
            _sub_choice(
                root,
                "sessionEndReason",
                [
                    ("definedEndReason", msg.defined_end_reason),
                    ("appEndReason", msg.app_end_reason),
                ],
            )
        case StopApplicationSessionPosResponse():
            pass
        case ResetApplicationSessionTimer():
            _sub(root, "sessionID", msg.session_id)
            if msg.requested_session_duration is not None:
                _sub(root, "requestedSessionDuration", str(msg.requested_session_duration))
        case ResetApplicationSessionTimerPosResponse():
            _sub(root, "actualSessionDuration", str(msg.actual_session_duration))
        case ApplicationSessionTerminated():
            _sub(root, "sessionID", msg.session_id)
            _sub_choice(
                root,
                "sessionTermReason",
                [
                    ("definedTermReason", msg.defined_term_reason),
                    ("serverTermReason", msg.server_term_reason),
                ],
            )
        case _:
            raise TypeError(f"not an ECMA-354 message: {type(msg).__name__}")


def encode_appsession(msg: AppSessionMessage) -> bytes:
    """Serialise one message as a UTF-8 XML document in the ECMA-354 namespace."""
    root = etree.Element(_qname(type(msg).__name__), nsmap={None: APPL_SESSION_NAMESPACE})  # type: ignore[dict-item]  # lxml-stubs: str keys only
    _encode_body(root, msg)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- server-side session state ---------------------------------------------------------------


class ApplicationSessionError(CstaError):
    """A local misuse of :class:`ApplicationSession` (a bug, not a peer's fault)."""


class SessionState(Enum):
    IDLE = auto()
    ACTIVE = auto()
    TERMINATED = auto()


class SessionEvent(Enum):
    """What a request or timer turned out to be, after validation; the table's input."""

    START_ACCEPTED = auto()
    START_REJECTED = auto()
    START_ATTEMPTS_EXHAUSTED = auto()
    STOP_ACCEPTED = auto()
    STOP_REJECTED = auto()
    RESET_ACCEPTED = auto()
    RESET_REJECTED = auto()
    TIMER_EXPIRED = auto()
    SERVER_TERMINATED = auto()


_S = SessionState
_E = SessionEvent

# Every legal (state, event) pair and the state it leads to. A pair missing here cannot be
# produced by ApplicationSession's own classification; reaching one is a bug and raises.
TRANSITIONS: Final[Mapping[tuple[SessionState, SessionEvent], SessionState]] = MappingProxyType(
    {
        (_S.IDLE, _E.START_ACCEPTED): _S.ACTIVE,
        (_S.IDLE, _E.START_REJECTED): _S.IDLE,
        (_S.IDLE, _E.START_ATTEMPTS_EXHAUSTED): _S.TERMINATED,
        (_S.IDLE, _E.STOP_REJECTED): _S.IDLE,
        (_S.IDLE, _E.RESET_REJECTED): _S.IDLE,
        (_S.IDLE, _E.SERVER_TERMINATED): _S.TERMINATED,
        (_S.ACTIVE, _E.START_REJECTED): _S.ACTIVE,
        (_S.ACTIVE, _E.STOP_ACCEPTED): _S.TERMINATED,
        (_S.ACTIVE, _E.STOP_REJECTED): _S.ACTIVE,
        (_S.ACTIVE, _E.RESET_ACCEPTED): _S.ACTIVE,
        (_S.ACTIVE, _E.RESET_REJECTED): _S.ACTIVE,
        (_S.ACTIVE, _E.TIMER_EXPIRED): _S.TERMINATED,
        (_S.ACTIVE, _E.SERVER_TERMINATED): _S.TERMINATED,
        (_S.TERMINATED, _E.START_REJECTED): _S.TERMINATED,
        (_S.TERMINATED, _E.STOP_REJECTED): _S.TERMINATED,
        (_S.TERMINATED, _E.RESET_REJECTED): _S.TERMINATED,
        (_S.TERMINATED, _E.SERVER_TERMINATED): _S.TERMINATED,
    }
)

Authenticator = Callable[[str, str], bool]


def _new_session_id() -> str:
    return secrets.token_hex(16)


class ApplicationSession:
    """One client connection's ECMA-354 session, server side.

    One session per connection: a second StartApplicationSession is refused with
    ``maxNumberSessions``, and TERMINATED is final (the gateway closes the connection).
    Failed authentication is answered ``invalidApplicationInfo`` (ECMA-354 defines no
    authentication error); after ``max_failed_starts`` rejections the session terminates so a
    client cannot guess passwords on one connection forever.
    """

    def __init__(
        self,
        *,
        authenticator: Authenticator | None = None,
        require_authentication: bool = True,
        min_duration: int = 10,
        default_duration: int = 180,
        max_duration: int = 3600,
        supported_protocol_versions: Sequence[str] = SUPPORTED_PROTOCOL_VERSIONS,
        default_protocol_version: str = CSTA_ED3,
        session_id_factory: Callable[[], str] = _new_session_id,
        max_failed_starts: int = 3,
        logger: logging.Logger | None = None,
    ) -> None:
        if require_authentication and authenticator is None:
            raise ValueError("require_authentication needs an authenticator")
        if not 0 < min_duration <= default_duration <= max_duration:
            raise ValueError("durations must satisfy 0 < min <= default <= max")
        if default_protocol_version not in supported_protocol_versions:
            raise ValueError("default_protocol_version must be one of the supported versions")
        if max_failed_starts < 1:
            raise ValueError("max_failed_starts must be at least 1")
        self._authenticator = authenticator
        self._require_authentication = require_authentication
        self._min_duration = min_duration
        self._default_duration = default_duration
        self._max_duration = max_duration
        self._supported_versions = tuple(supported_protocol_versions)
        self._default_version = default_protocol_version
        self._session_id_factory = session_id_factory
        self._max_failed_starts = max_failed_starts
        self._log = logger if logger is not None else _LOG
        self._state = SessionState.IDLE
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._duration = default_duration
        self._deadline: float | None = None
        self._user: str | None = None
        self._application_id: str | None = None
        self._failed_starts = 0

    # --- read-only view ---

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def is_active(self) -> bool:
        """Whether CSTA requests may flow on this connection."""
        return self._state is SessionState.ACTIVE

    @property
    def session_id(self) -> str | None:
        return self._session_id

    @property
    def protocol_version(self) -> str | None:
        """The ``actualProtocolVersion`` agreed at start (the CSTA edition to answer in)."""
        return self._protocol_version

    @property
    def application_id(self) -> str | None:
        return self._application_id

    @property
    def authenticated_user(self) -> str | None:
        """The user whose credentials were verified, or ``None`` (none sent or none checked)."""
        return self._user

    @property
    def session_duration(self) -> int:
        """The current ``actualSessionDuration`` in seconds."""
        return self._duration

    # --- inputs ---

    def handle(self, msg: AppSessionMessage, now: float) -> list[AppSessionMessage]:
        """Process a message from the client; returns the messages to send back, in order.

        A timer that ran out but was not yet handled is applied first, so a late keep-alive
        cannot revive an expired session. Responses and events from a client are ignored.
        """
        out = self.handle_timer(now)
        match msg:
            case StartApplicationSession():
                out.append(self._start(msg, now))
            case StopApplicationSession():
                out.append(self._stop(msg))
            case ResetApplicationSessionTimer():
                out.append(self._reset(msg, now))
            case _:
                self._log.debug("ignoring %s from an ECMA-354 client", type(msg).__name__)
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called, or ``None``."""
        return self._deadline if self._state is SessionState.ACTIVE else None

    def handle_timer(self, now: float) -> list[AppSessionMessage]:
        """Ends the session with ``sessionTimerExpired`` once its duration ran out."""
        if self._deadline is None or self._state is not SessionState.ACTIVE:
            return []
        if now < self._deadline:
            return []
        self._transition(SessionEvent.TIMER_EXPIRED)
        self._log.info("application session %s expired", self._session_id)
        return [self._terminated(DefinedTermReason.SESSION_TIMER_EXPIRED)]

    def terminate(
        self, reason: DefinedTermReason | str = DefinedTermReason.RESOURCE_LIMITATION
    ) -> list[AppSessionMessage]:
        """Server-side end (shutdown, admin): a :class:`DefinedTermReason` is sent as
        ``definedTermReason``, any other string as ``serverTermReason``."""
        was_active = self._state is SessionState.ACTIVE
        self._transition(SessionEvent.SERVER_TERMINATED)
        return [self._terminated(reason)] if was_active else []

    # --- request handling ---

    def _start(self, msg: StartApplicationSession, now: float) -> AppSessionMessage:
        if self._state is not SessionState.IDLE:
            return self._reject_start(StartApplicationSessionError.MAX_NUMBER_SESSIONS)
        verified, user = self._check_credentials(msg.credentials)
        if not verified:
            self._failed_starts += 1
            self._log.info("application session refused: authentication failed")
            if self._failed_starts >= self._max_failed_starts:
                self._transition(SessionEvent.START_ATTEMPTS_EXHAUSTED)
                return StartApplicationSessionNegResponse(
                    defined_error=StartApplicationSessionError.INVALID_APPLICATION_INFO
                )
            return self._reject_start(StartApplicationSessionError.INVALID_APPLICATION_INFO)
        version = self._choose_version(msg.requested_protocol_versions)
        if version is None:
            return self._reject_start(
                StartApplicationSessionError.REQUESTED_PROTOCOL_VERSION_NOT_SUPPORTED
            )
        self._transition(SessionEvent.START_ACCEPTED)
        self._session_id = self._session_id_factory()
        self._protocol_version = version
        self._application_id = msg.application_id
        self._user = user
        self._duration = self._clamp(msg.requested_session_duration, self._default_duration)
        self._deadline = now + self._duration
        self._log.info(
            "application session %s started for %r (user %r)",
            self._session_id,
            msg.application_id,
            self._user,
        )
        return StartApplicationSessionPosResponse(
            session_id=self._session_id,
            actual_protocol_version=version,
            actual_session_duration=self._duration,
        )

    def _reject_start(self, error: StartApplicationSessionError) -> AppSessionMessage:
        self._transition(SessionEvent.START_REJECTED)
        return StartApplicationSessionNegResponse(defined_error=error)

    def _check_credentials(self, credentials: SessionLoginInfo | None) -> tuple[bool, str | None]:
        """(accepted, verified user name)."""
        if credentials is None:
            return not self._require_authentication, None
        if self._authenticator is None:
            return True, None  # nothing to verify against; the name stays unauthenticated
        if not self._authenticator(credentials.user_name, credentials.password):
            return False, None
        return True, credentials.user_name

    def _choose_version(self, requested: Sequence[str]) -> str | None:
        if not requested:
            return self._default_version
        for version in requested:  # the client lists them in its order of preference
            if version in self._supported_versions:
                return version
        return None

    def _stop(self, msg: StopApplicationSession) -> AppSessionMessage:
        if not self._owns(msg.session_id):
            self._transition(SessionEvent.STOP_REJECTED)
            return StopApplicationSessionNegResponse(
                defined_error=StopApplicationSessionError.INVALID_SESSION_ID
            )
        self._transition(SessionEvent.STOP_ACCEPTED)
        self._log.info("application session %s stopped by the client", self._session_id)
        return StopApplicationSessionPosResponse()

    def _reset(self, msg: ResetApplicationSessionTimer, now: float) -> AppSessionMessage:
        if not self._owns(msg.session_id):
            self._transition(SessionEvent.RESET_REJECTED)
            return ResetApplicationSessionTimerNegResponse(
                defined_error=ResetApplicationSessionTimerError.INVALID_SESSION_ID
            )
        self._transition(SessionEvent.RESET_ACCEPTED)
        self._duration = self._clamp(msg.requested_session_duration, self._duration)
        self._deadline = now + self._duration
        return ResetApplicationSessionTimerPosResponse(actual_session_duration=self._duration)

    # --- helpers ---

    def _owns(self, session_id: str) -> bool:
        return (
            self._state is SessionState.ACTIVE
            and self._session_id is not None
            and secrets.compare_digest(session_id.encode(), self._session_id.encode())
        )

    def _clamp(self, requested: int | None, fallback: int) -> int:
        value = fallback if requested is None else requested
        return max(self._min_duration, min(self._max_duration, value))

    def _terminated(self, reason: DefinedTermReason | str) -> ApplicationSessionTerminated:
        session_id = self._session_id if self._session_id is not None else ""
        if isinstance(reason, DefinedTermReason):
            return ApplicationSessionTerminated(session_id=session_id, defined_term_reason=reason)
        return ApplicationSessionTerminated(session_id=session_id, server_term_reason=reason)

    def _transition(self, event: SessionEvent) -> None:
        try:
            self._state = TRANSITIONS[(self._state, event)]
        except KeyError:
            raise ApplicationSessionError(
                f"no transition for {event.name} in state {self._state.name}"
            ) from None
        if self._state is SessionState.TERMINATED:
            self._deadline = None
