"""ECMA-354 application sessions: fixtures, codec round trips, hostile XML, the state table."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uacsta.csta.appsession import (
    APPL_SESSION_NAMESPACE,
    CSTA_ED3,
    CSTA_ED4,
    CSTA_ED5,
    CSTA_ED6,
    TRANSITIONS,
    ApplicationSession,
    ApplicationSessionError,
    ApplicationSessionTerminated,
    AppSessionMessage,
    CredentialsShape,
    DefinedEndReason,
    DefinedTermReason,
    ResetApplicationSessionTimer,
    ResetApplicationSessionTimerError,
    ResetApplicationSessionTimerNegResponse,
    ResetApplicationSessionTimerPosResponse,
    SessionEvent,
    SessionLoginInfo,
    SessionState,
    StartApplicationSession,
    StartApplicationSessionError,
    StartApplicationSessionNegResponse,
    StartApplicationSessionPosResponse,
    StopApplicationSession,
    StopApplicationSessionError,
    StopApplicationSessionNegResponse,
    StopApplicationSessionPosResponse,
    decode_appsession,
    encode_appsession,
    is_appsession_document,
)
from uacsta.csta.errors import CstaDecodeError

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "ecma354"
SESSION_ID = "469421A9364D46D6BA9C5B5B5B0AC3D2"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decode_fixture(name: str) -> AppSessionMessage:
    msg = decode_appsession(fixture(name))
    assert msg is not None
    return msg


# --- fixtures ------------------------------------------------------------------------------


def test_decode_avaya_login_shape() -> None:
    msg = decode_fixture("start_avaya.xml")
    assert msg == StartApplicationSession(
        application_id="crm-connector",
        requested_protocol_versions=(CSTA_ED3,),
        requested_session_duration=180,
        credentials=SessionLoginInfo(
            user_name="agent7",
            password="s3cret",
            session_cleanup_delay=60,
            shape=CredentialsShape.AVAYA,
        ),
    )


def test_decode_plain_login_shape_ignores_extensions() -> None:
    msg = decode_fixture("start_plain.xml")
    assert isinstance(msg, StartApplicationSession)
    assert msg.application_id == "dialer"
    assert msg.requested_protocol_versions == (CSTA_ED6, CSTA_ED4)
    assert msg.credentials == SessionLoginInfo(
        user_name="dialer-bot", password="p@ss word", shape=CredentialsShape.PLAIN
    )


def test_decode_without_any_namespace() -> None:
    msg = decode_fixture("start_no_namespace.xml")
    assert isinstance(msg, StartApplicationSession)
    assert msg.requested_protocol_versions == (CSTA_ED5,)
    assert msg.requested_session_duration is None
    assert msg.credentials is not None
    assert msg.credentials.user_name == "legacy-user"
    assert msg.credentials.shape is CredentialsShape.AVAYA


def test_decode_prefixed_without_credentials() -> None:
    msg = decode_fixture("start_no_credentials.xml")
    assert msg == StartApplicationSession(
        application_id="monitor-only",
        requested_protocol_versions=(CSTA_ED3,),
        requested_session_duration=300,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "start_pos_response.xml",
            StartApplicationSessionPosResponse(
                session_id=SESSION_ID, actual_protocol_version=CSTA_ED3, actual_session_duration=180
            ),
        ),
        (
            "start_neg_response.xml",
            StartApplicationSessionNegResponse(
                defined_error=StartApplicationSessionError.REQUESTED_PROTOCOL_VERSION_NOT_SUPPORTED
            ),
        ),
        (
            "stop.xml",
            StopApplicationSession(
                session_id=SESSION_ID, defined_end_reason=DefinedEndReason.NORMAL
            ),
        ),
        (
            "reset.xml",
            ResetApplicationSessionTimer(session_id=SESSION_ID, requested_session_duration=180),
        ),
        (
            "terminated.xml",
            ApplicationSessionTerminated(
                session_id=SESSION_ID, defined_term_reason=DefinedTermReason.SESSION_TIMER_EXPIRED
            ),
        ),
    ],
)
def test_decode_other_fixtures(name: str, expected: AppSessionMessage) -> None:
    assert decode_fixture(name) == expected


def test_password_not_in_repr() -> None:
    msg = decode_fixture("start_avaya.xml")
    assert "s3cret" not in repr(msg)


def test_encode_avaya_shape_is_the_deployed_one() -> None:
    msg = StartApplicationSession(
        application_id="app",
        requested_protocol_versions=(CSTA_ED3,),
        credentials=SessionLoginInfo(user_name="u", password="p", session_cleanup_delay=60),
    )
    xml = encode_appsession(msg)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert (
        b'<applicationSpecificInfo><ns1:SessionLoginInfo xmlns:ns1="http://www.avaya.com/csta">'
        b"<ns1:userName>u</ns1:userName><ns1:password>p</ns1:password>"
        b"<ns1:sessionCleanupDelay>60</ns1:sessionCleanupDelay></ns1:SessionLoginInfo>"
        b"</applicationSpecificInfo>"
    ) in xml
    assert f'xmlns="{APPL_SESSION_NAMESPACE}"'.encode() in xml


@pytest.mark.parametrize("name", ["start_avaya.xml", "start_plain.xml", "start_no_namespace.xml"])
def test_fixtures_survive_re_encoding(name: str) -> None:
    msg = decode_fixture(name)
    assert decode_appsession(encode_appsession(msg)) == msg


def test_encode_plain_shape() -> None:
    msg = decode_fixture("start_plain.xml")
    xml = encode_appsession(msg)
    assert (
        b"<applicationSpecificInfo><userName>dialer-bot</userName>"
        b"<password>p@ss word</password></applicationSpecificInfo>"
    ) in xml
    assert b"<requestedSessionDuration>60</requestedSessionDuration>" in xml


def test_encode_stop_pos_response_is_empty_element() -> None:
    xml = encode_appsession(StopApplicationSessionPosResponse())
    expected = f'<StopApplicationSessionPosResponse xmlns="{APPL_SESSION_NAMESPACE}"/>'
    assert xml.endswith(expected.encode())


def test_encode_rejects_the_base_class() -> None:
    with pytest.raises(TypeError):
        encode_appsession(AppSessionMessage())


# --- routing to the CSTA codec -------------------------------------------------------------


def test_csta_documents_are_not_appsession() -> None:
    csta = (
        b'<MonitorStart xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">'
        b"<monitorObject><deviceObject>201</deviceObject></monitorObject></MonitorStart>"
    )
    assert decode_appsession(csta) is None
    assert not is_appsession_document("MonitorStart")
    assert is_appsession_document("StartApplicationSession")
    assert is_appsession_document("ApplicationSessionTerminated")


# --- hostile and malformed XML -------------------------------------------------------------

HOSTILE = [
    b"",
    b"<StartApplicationSession>",
    b"not xml at all",
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<StartApplicationSession><applicationInfo><applicationID>&x;</applicationID>"
    b"</applicationInfo></StartApplicationSession>",
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<StopApplicationSession><sessionID>&lol2;</sessionID></StopApplicationSession>",
    b"<StopApplicationSession>" + b"<a>" * 100 + b"</a>" * 100 + b"</StopApplicationSession>",
    b"<StopApplicationSession><sessionID>" + b"x" * 300_000 + b"</sessionID>"
    b"</StopApplicationSession>",
]


@pytest.mark.parametrize("data", HOSTILE)
def test_hostile_xml_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(CstaDecodeError):
        decode_appsession(data)


@pytest.mark.parametrize(
    "data",
    [
        b"<ResetApplicationSessionTimer><sessionID>1</sessionID>"
        b"<requestedSessionDuration>abc</requestedSessionDuration></ResetApplicationSessionTimer>",
        b"<ResetApplicationSessionTimer><sessionID>1</sessionID>"
        b"<requestedSessionDuration>-5</requestedSessionDuration></ResetApplicationSessionTimer>",
        b"<ResetApplicationSessionTimer><requestedSessionDuration>99999999999"
        b"</requestedSessionDuration></ResetApplicationSessionTimer>",
        b"<ResetApplicationSessionTimerPosResponse/>",
        b"<StartApplicationSessionNegResponse><errorCode/></StartApplicationSessionNegResponse>",
        b"<ApplicationSessionTerminated><sessionID>1</sessionID></ApplicationSessionTerminated>",
    ],
)
def test_invalid_fields_are_decode_errors(data: bytes) -> None:
    with pytest.raises(CstaDecodeError):
        decode_appsession(data)


def test_missing_texts_decode_as_empty() -> None:
    assert decode_appsession(b"<StopApplicationSession/>") == StopApplicationSession(session_id="")
    assert decode_appsession(b"<StartApplicationSession/>") == StartApplicationSession(
        application_id=""
    )
    spec_without_user = (
        b"<StartApplicationSession><applicationInfo><applicationID>a</applicationID>"
        b"<applicationSpecificInfo><foo/></applicationSpecificInfo></applicationInfo>"
        b"</StartApplicationSession>"
    )
    assert decode_appsession(spec_without_user) == StartApplicationSession(application_id="a")


@given(data=st.binary(max_size=200))
def test_decoder_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(CstaDecodeError):
        decode_appsession(data)


# --- round trips ---------------------------------------------------------------------------

_XML_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Cn", "Co"), exclude_characters="\ufeff"
)
text = st.text(_XML_CHARS, max_size=20)
token = text.filter(lambda s: s == s.strip(" \t\r\n"))
duration = st.integers(0, 9_999_999_999)
opt_duration = st.none() | duration


def one_of_pair(first: str, second: str) -> st.SearchStrategy[dict[str, str]]:
    return st.one_of(
        token.map(lambda v: {first: v}),
        token.map(lambda v: {second: v}),
    )


credentials = st.builds(
    SessionLoginInfo,
    user_name=text,
    password=text,
    session_cleanup_delay=opt_duration,
    shape=st.sampled_from(CredentialsShape),
)

messages: st.SearchStrategy[AppSessionMessage] = st.one_of(
    st.builds(
        StartApplicationSession,
        application_id=token,
        requested_protocol_versions=st.lists(token, max_size=4).map(tuple),
        requested_session_duration=opt_duration,
        credentials=st.none() | credentials,
    ),
    st.builds(
        StartApplicationSessionPosResponse,
        session_id=token,
        actual_protocol_version=token,
        actual_session_duration=duration,
    ),
    one_of_pair("defined_error", "appl_error").map(
        lambda kw: StartApplicationSessionNegResponse(**kw)
    ),
    st.builds(
        lambda sid, reason: StopApplicationSession(session_id=sid, **reason),
        token,
        st.just({}) | one_of_pair("defined_end_reason", "app_end_reason"),
    ),
    st.just(StopApplicationSessionPosResponse()),
    one_of_pair("defined_error", "appl_error").map(
        lambda kw: StopApplicationSessionNegResponse(**kw)
    ),
    st.builds(
        ResetApplicationSessionTimer, session_id=token, requested_session_duration=opt_duration
    ),
    st.builds(ResetApplicationSessionTimerPosResponse, actual_session_duration=duration),
    one_of_pair("defined_error", "appl_error").map(
        lambda kw: ResetApplicationSessionTimerNegResponse(**kw)
    ),
    st.builds(
        lambda sid, reason: ApplicationSessionTerminated(session_id=sid, **reason),
        token,
        one_of_pair("defined_term_reason", "server_term_reason"),
    ),
)


@given(msg=messages)
def test_round_trip(msg: AppSessionMessage) -> None:
    assert decode_appsession(encode_appsession(msg)) == msg


def test_round_trip_covers_every_message_class() -> None:
    classes = {
        StartApplicationSession,
        StartApplicationSessionPosResponse,
        StartApplicationSessionNegResponse,
        StopApplicationSession,
        StopApplicationSessionPosResponse,
        StopApplicationSessionNegResponse,
        ResetApplicationSessionTimer,
        ResetApplicationSessionTimerPosResponse,
        ResetApplicationSessionTimerNegResponse,
        ApplicationSessionTerminated,
    }
    assert {cls for cls in classes if is_appsession_document(cls.__name__)} == classes
    # slots=True dataclasses leave the slot-less original registered too: compare names
    names = {cls.__name__ for cls in AppSessionMessage.__subclasses__()}
    assert names == {cls.__name__ for cls in classes}


@pytest.mark.parametrize(
    "build",
    [
        StartApplicationSessionNegResponse,
        lambda: StopApplicationSessionNegResponse(defined_error="a", appl_error="b"),
        lambda: ApplicationSessionTerminated(session_id="1"),
        lambda: StopApplicationSession(session_id="1", defined_end_reason="a", app_end_reason="b"),
    ],
)
def test_choice_fields_validated(build: Callable[[], AppSessionMessage]) -> None:
    with pytest.raises(ValueError):
        build()


# --- the state machine ---------------------------------------------------------------------

USERS = {"agent7": "s3cret"}


def authenticator(user: str, password: str) -> bool:
    return USERS.get(user) == password


def make_session(**kwargs: object) -> ApplicationSession:
    ids = iter(f"S{n}" for n in range(100))
    options: dict[str, object] = {
        "authenticator": authenticator,
        "min_duration": 30,
        "default_duration": 180,
        "max_duration": 600,
        "session_id_factory": lambda: next(ids),
    }
    options.update(kwargs)
    return ApplicationSession(**options)  # type: ignore[arg-type]


def start_request(
    *,
    user: str = "agent7",
    password: str = "s3cret",
    versions: tuple[str, ...] = (CSTA_ED3,),
    duration: int | None = 120,
    with_credentials: bool = True,
) -> StartApplicationSession:
    return StartApplicationSession(
        application_id="crm",
        requested_protocol_versions=versions,
        requested_session_duration=duration,
        credentials=SessionLoginInfo(user_name=user, password=password)
        if with_credentials
        else None,
    )


def started(now: float = 1000.0, **kwargs: object) -> ApplicationSession:
    session = make_session(**kwargs)
    [response] = session.handle(start_request(), now)
    assert isinstance(response, StartApplicationSessionPosResponse)
    return session


def test_start_accepted() -> None:
    session = make_session()
    assert session.state is SessionState.IDLE
    assert session.get_timer() is None
    out = session.handle(start_request(), 1000.0)
    assert out == [
        StartApplicationSessionPosResponse(
            session_id="S0", actual_protocol_version=CSTA_ED3, actual_session_duration=120
        )
    ]
    assert session.is_active
    assert session.authenticated_user == "agent7"
    assert session.session_id == "S0"
    assert session.protocol_version == CSTA_ED3
    assert session.application_id == "crm"
    assert session.get_timer() == 1120.0


@pytest.mark.parametrize(
    ("requested", "actual"), [(None, 180), (1, 30), (0, 30), (10_000, 600), (300, 300)]
)
def test_start_duration_clamped(requested: int | None, actual: int) -> None:
    session = make_session()
    [response] = session.handle(start_request(duration=requested), 0.0)
    assert isinstance(response, StartApplicationSessionPosResponse)
    assert response.actual_session_duration == actual
    assert session.session_duration == actual
    assert session.get_timer() == float(actual)


def test_start_picks_first_supported_version_in_client_order() -> None:
    session = make_session()
    versions = ("urn:unknown", CSTA_ED5, CSTA_ED3)
    [response] = session.handle(start_request(versions=versions), 0.0)
    assert isinstance(response, StartApplicationSessionPosResponse)
    assert response.actual_protocol_version == CSTA_ED5


def test_start_without_versions_gets_the_default() -> None:
    session = make_session()
    [response] = session.handle(start_request(versions=()), 0.0)
    assert isinstance(response, StartApplicationSessionPosResponse)
    assert response.actual_protocol_version == CSTA_ED3


def test_start_unsupported_version_rejected() -> None:
    session = make_session()
    out = session.handle(start_request(versions=("3.0",)), 0.0)
    assert out == [
        StartApplicationSessionNegResponse(
            defined_error=StartApplicationSessionError.REQUESTED_PROTOCOL_VERSION_NOT_SUPPORTED
        )
    ]
    assert session.state is SessionState.IDLE
    assert session.authenticated_user is None


def test_bad_password_rejected_then_retry_succeeds() -> None:
    session = make_session()
    out = session.handle(start_request(password="wrong"), 0.0)
    assert out == [
        StartApplicationSessionNegResponse(
            defined_error=StartApplicationSessionError.INVALID_APPLICATION_INFO
        )
    ]
    assert session.state is SessionState.IDLE
    assert session.authenticated_user is None
    session.handle(start_request(), 1.0)
    assert session.is_active


def test_missing_credentials_rejected_when_required() -> None:
    session = make_session()
    [response] = session.handle(start_request(with_credentials=False), 0.0)
    assert isinstance(response, StartApplicationSessionNegResponse)
    assert response.defined_error == "invalidApplicationInfo"


def test_too_many_failed_starts_terminate() -> None:
    session = make_session(max_failed_starts=2)
    [response] = session.handle(start_request(password="x"), 0.0)
    assert response.defined_error == "invalidApplicationInfo"  # type: ignore[attr-defined]
    [response] = session.handle(start_request(password="y"), 1.0)
    assert isinstance(response, StartApplicationSessionNegResponse)
    assert session.state is SessionState.TERMINATED
    [response] = session.handle(start_request(), 2.0)
    assert response == StartApplicationSessionNegResponse(
        defined_error=StartApplicationSessionError.MAX_NUMBER_SESSIONS
    )
    assert session.state is SessionState.TERMINATED


def test_authentication_optional() -> None:
    session = make_session(require_authentication=False)
    session.handle(start_request(with_credentials=False), 0.0)
    assert session.is_active
    assert session.authenticated_user is None
    checked = make_session(require_authentication=False)
    [response] = checked.handle(start_request(password="wrong"), 0.0)
    assert isinstance(response, StartApplicationSessionNegResponse)  # sent but wrong: refused


def test_no_authenticator_accepts_but_does_not_authenticate() -> None:
    session = make_session(authenticator=None, require_authentication=False)
    session.handle(start_request(password="anything"), 0.0)
    assert session.is_active
    assert session.authenticated_user is None


def test_second_start_refused() -> None:
    session = started()
    [response] = session.handle(start_request(), 1001.0)
    assert response == StartApplicationSessionNegResponse(
        defined_error=StartApplicationSessionError.MAX_NUMBER_SESSIONS
    )
    assert session.session_id == "S0"
    assert session.is_active


def test_reset_extends_and_clamps() -> None:
    session = started(now=1000.0)
    out = session.handle(ResetApplicationSessionTimer(session_id="S0"), 1100.0)
    assert out == [ResetApplicationSessionTimerPosResponse(actual_session_duration=120)]
    assert session.get_timer() == 1220.0
    out = session.handle(
        ResetApplicationSessionTimer(session_id="S0", requested_session_duration=5000), 1200.0
    )
    assert out == [ResetApplicationSessionTimerPosResponse(actual_session_duration=600)]
    assert session.get_timer() == 1800.0


def test_reset_with_wrong_session_id_rejected() -> None:
    session = started(now=1000.0)
    out = session.handle(ResetApplicationSessionTimer(session_id="S1"), 1010.0)
    assert out == [
        ResetApplicationSessionTimerNegResponse(
            defined_error=ResetApplicationSessionTimerError.INVALID_SESSION_ID
        )
    ]
    assert session.get_timer() == 1120.0
    assert session.is_active


def test_requests_before_start_rejected() -> None:
    session = make_session()
    assert session.handle(ResetApplicationSessionTimer(session_id=""), 0.0) == [
        ResetApplicationSessionTimerNegResponse(defined_error="invalidSessionID")
    ]
    assert session.handle(StopApplicationSession(session_id=""), 0.0) == [
        StopApplicationSessionNegResponse(
            defined_error=StopApplicationSessionError.INVALID_SESSION_ID
        )
    ]
    assert session.state is SessionState.IDLE


def test_stop() -> None:
    session = started()
    wrong = session.handle(StopApplicationSession(session_id="nope"), 1001.0)
    assert wrong == [StopApplicationSessionNegResponse(defined_error="invalidSessionID")]
    assert session.is_active
    out = session.handle(
        StopApplicationSession(session_id="S0", defined_end_reason=DefinedEndReason.NORMAL), 1002.0
    )
    assert out == [StopApplicationSessionPosResponse()]
    assert session.state is SessionState.TERMINATED
    assert session.get_timer() is None
    again = session.handle(StopApplicationSession(session_id="S0"), 1003.0)
    assert again == [StopApplicationSessionNegResponse(defined_error="invalidSessionID")]


def test_timer_expiry() -> None:
    session = started(now=1000.0)
    assert session.handle_timer(1119.9) == []
    assert session.is_active
    out = session.handle_timer(1120.0)
    assert out == [
        ApplicationSessionTerminated(
            session_id="S0", defined_term_reason=DefinedTermReason.SESSION_TIMER_EXPIRED
        )
    ]
    assert session.state is SessionState.TERMINATED
    assert session.get_timer() is None
    assert session.handle_timer(5000.0) == []


def test_late_reset_cannot_revive_an_expired_session() -> None:
    session = started(now=1000.0)
    out = session.handle(ResetApplicationSessionTimer(session_id="S0"), 1121.0)
    assert out == [
        ApplicationSessionTerminated(session_id="S0", defined_term_reason="sessionTimerExpired"),
        ResetApplicationSessionTimerNegResponse(defined_error="invalidSessionID"),
    ]
    assert session.state is SessionState.TERMINATED


def test_terminate_by_server() -> None:
    session = started()
    assert session.terminate("serverShutdown") == [
        ApplicationSessionTerminated(session_id="S0", server_term_reason="serverShutdown")
    ]
    assert session.state is SessionState.TERMINATED
    assert session.terminate() == []
    other = started()
    assert other.terminate() == [
        ApplicationSessionTerminated(
            session_id="S0", defined_term_reason=DefinedTermReason.RESOURCE_LIMITATION
        )
    ]
    idle = make_session()
    assert idle.terminate() == []
    assert idle.state is SessionState.TERMINATED


def test_responses_from_client_ignored() -> None:
    session = started()
    assert session.handle(StopApplicationSessionPosResponse(), 1001.0) == []
    assert session.is_active


@pytest.mark.parametrize(
    "kwargs",
    [
        {"authenticator": None},
        {"min_duration": 0},
        {"min_duration": 200},
        {"max_duration": 100},
        {"default_protocol_version": "urn:x"},
        {"max_failed_starts": 0},
    ],
)
def test_invalid_configuration(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_session(**kwargs)


def test_default_session_ids_are_random_hex() -> None:
    first = ApplicationSession(authenticator=authenticator)
    second = ApplicationSession(authenticator=authenticator)
    first.handle(start_request(), 0.0)
    second.handle(start_request(), 0.0)
    assert first.session_id is not None
    assert second.session_id is not None
    assert len(first.session_id) == 32
    int(first.session_id, 16)
    assert first.session_id != second.session_id


# --- walking the transition table ----------------------------------------------------------


def drive_to(state: SessionState, **kwargs: object) -> ApplicationSession:
    if state is SessionState.ACTIVE:
        return started(now=0.0, **kwargs)
    session = make_session(**kwargs)
    if state is SessionState.TERMINATED:
        session.terminate()
    return session


def apply_event(session: ApplicationSession, event: SessionEvent) -> None:
    now = 10.0
    sid = session.session_id or ""
    match event:
        case SessionEvent.START_ACCEPTED:
            session.handle(start_request(), now)
        case SessionEvent.START_REJECTED:
            session.handle(start_request(versions=("urn:none",)), now)
        case SessionEvent.START_ATTEMPTS_EXHAUSTED:
            session.handle(start_request(password="bad"), now)
        case SessionEvent.STOP_ACCEPTED:
            session.handle(StopApplicationSession(session_id=sid), now)
        case SessionEvent.STOP_REJECTED:
            session.handle(StopApplicationSession(session_id="wrong"), now)
        case SessionEvent.RESET_ACCEPTED:
            session.handle(ResetApplicationSessionTimer(session_id=sid), now)
        case SessionEvent.RESET_REJECTED:
            session.handle(ResetApplicationSessionTimer(session_id="wrong"), now)
        case SessionEvent.TIMER_EXPIRED:
            session.handle_timer(now + 10_000)
        case SessionEvent.SERVER_TERMINATED:
            session.terminate()


@pytest.mark.parametrize(
    ("source", "event", "target"),
    [(s, e, t) for (s, e), t in TRANSITIONS.items()],
    ids=[f"{s.name}-{e.name}" for (s, e) in TRANSITIONS],
)
def test_transition_table(source: SessionState, event: SessionEvent, target: SessionState) -> None:
    session = drive_to(source, max_failed_starts=1)
    assert session.state is source
    apply_event(session, event)
    assert session.state is target
    assert (session.get_timer() is not None) == (target is SessionState.ACTIVE)


def test_table_has_no_exit_from_terminated() -> None:
    for (source, _event), target in TRANSITIONS.items():
        if source is SessionState.TERMINATED:
            assert target is SessionState.TERMINATED


def test_missing_pair_is_a_local_error() -> None:
    session = started()
    assert (SessionState.ACTIVE, SessionEvent.START_ACCEPTED) not in TRANSITIONS
    with pytest.raises(ApplicationSessionError):
        session._transition(SessionEvent.START_ACCEPTED)
