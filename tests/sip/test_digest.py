"""Tests for uacsta.sip.digest: RFC vectors, client/server round trips, nonces, fuzzing."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uacsta.sip.digest import (
    Algorithm,
    AuthResult,
    AuthStatus,
    Challenge,
    DigestError,
    DigestServer,
    FailureReason,
    NonceManager,
    NonceStatus,
    answer_challenge,
    claimed_username,
    digest_response,
    parse_digest_params,
)
from uacsta.sip.errors import SipError

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "pbx.example.org"
URI = "sip:pbx.example.org"
USERS = {"alice": "s3cret", "Bob": "hunter2"}
T0 = 1_000_000.0


def password_for(username: str) -> str | None:
    return USERS.get(username)


def make_server(**kw: object) -> DigestServer:
    return DigestServer(REALM, NonceManager(SECRET, lifetime=300), **kw)  # type: ignore[arg-type]


def challenge_for(server: DigestServer, algorithm: Algorithm, now: float = T0) -> str:
    for value in server.challenges(now):
        if Challenge.parse(value).algorithm is algorithm:
            return value
    raise AssertionError(f"{algorithm} not offered")


# --------------------------------------------------------------------------- RFC vectors

# RFC 7616 §3.9.1: same request answered with MD5 and with SHA-256.
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
        (Algorithm.SHA_256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm: Algorithm, expected: str) -> None:
    assert (
        digest_response(
            algorithm,
            username="Mufasa",
            realm="http-auth@example.org",
            password="Circle of Life",
            method="GET",
            uri="/dir/index.html",
            nonce=RFC7616_NONCE,
            qop="auth",
            nc="00000001",
            cnonce=RFC7616_CNONCE,
        )
        == expected
    )
    challenge = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm},'
        f' nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )
    header = answer_challenge(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life", cnonce=RFC7616_CNONCE
    )
    p = parse_digest_params(header)
    assert p["response"] == expected
    assert p["qop"] == "auth"
    assert p["nc"] == "00000001"
    assert p["opaque"] == RFC7616_OPAQUE
    assert p["algorithm"] == algorithm.value


def test_rfc2617_example() -> None:
    # RFC 2617 §3.5 (note "Circle Of Life" with a capital O there).
    challenge = (
        'Digest realm="testrealm@host.com", qop="auth,auth-int",'
        ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    header = answer_challenge(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life", cnonce="0a4f113b"
    )
    p = parse_digest_params(header)
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert "algorithm" not in p  # not in the challenge, so not echoed


# --------------------------------------------------------------------------- parsing


def test_parse_quoted_commas_escapes_and_case() -> None:
    p = parse_digest_params(
        'digest  USERNAME="a\\"b", Realm = "x, y" ,nonce=abc/+=, qop=auth,, nc=00000001 '
    )
    assert p == {
        "username": 'a"b',
        "realm": "x, y",
        "nonce": "abc/+=",
        "qop": "auth",
        "nc": "00000001",
    }


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Basic dXNlcjpwYXNz",
        "Digest",
        "Digest ",
        'Digestrealm="x"',
        'Digest,realm="x"',
        'Digest realm="x',
        'Digest realm="x\\',
        "Digest realm",
        "Digest realm=",
        "Digest =x",
        'Digest realm="x" nonce="y"',
        'Digest realm="x", realm="y"',
        'Digest realm="a\r\nb"',
        'Digest realm="\x00"',
        "Digest " + ", ".join(f"k{i}=v" for i in range(40)),
        'Digest realm="' + "x" * 9000 + '"',
        'Digest realm="\udcff"',
    ],
)
def test_parse_rejects_garbage(value: str) -> None:
    with pytest.raises(DigestError):
        parse_digest_params(value)


def test_digest_error_is_a_sip_error_and_value_error() -> None:
    assert issubclass(DigestError, ValueError)
    assert issubclass(DigestError, SipError)
    assert DigestError("x").status_code == 400


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_parse_raises_only_digest_error(value: str) -> None:
    with contextlib.suppress(DigestError):
        parse_digest_params(value)


@given(st.dictionaries(st.sampled_from(["realm", "nonce", "opaque", "x"]), st.text(max_size=30)))
@settings(max_examples=200, deadline=None)
def test_quoted_values_round_trip(params: dict[str, str]) -> None:
    printable = {k: "".join(c for c in v if c >= " " and c != "\x7f") for k, v in params.items()}
    if not printable:
        return
    text = "Digest " + ", ".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in printable.items()
    )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert parse_digest_params(text) == printable


# --------------------------------------------------------------------------- challenges


def test_challenge_header_round_trip() -> None:
    ch = Challenge(
        realm='we "quote"',
        nonce="n",
        algorithm=Algorithm.SHA_256_SESS,
        qop=("auth", "auth-int"),
        opaque="o",
        stale=True,
    )
    value = ch.to_header()
    assert value.startswith("Digest ")
    assert "algorithm=SHA-256-sess" in value
    assert 'qop="auth,auth-int"' in value
    assert "stale=TRUE" in value
    assert Challenge.parse(value) == ch


def test_challenge_parse_defaults_and_errors() -> None:
    ch = Challenge.parse('Digest realm="r", nonce="n"')
    assert ch.algorithm is Algorithm.MD5
    assert ch.qop == ()
    assert not ch.stale
    assert "algorithm" not in ch.to_header()
    with pytest.raises(DigestError):
        Challenge.parse('Digest realm="r"')
    with pytest.raises(DigestError):
        Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-1')


def test_digest_response_needs_cnonce_and_nc() -> None:
    def call(algorithm: Algorithm, qop: str | None, cnonce: str | None) -> str:
        return digest_response(
            algorithm,
            username="u",
            realm="r",
            password="p",
            method="M",
            uri="u",
            nonce="n",
            qop=qop,
            cnonce=cnonce,
        )

    with pytest.raises(DigestError):
        call(Algorithm.MD5_SESS, None, None)
    with pytest.raises(DigestError):
        call(Algorithm.MD5, "auth", "c")  # no nc


def test_algorithm_parse_is_case_insensitive() -> None:
    assert Algorithm.parse("sha-256") is Algorithm.SHA_256
    assert Algorithm.parse("md5-SESS") is Algorithm.MD5_SESS
    assert Algorithm.SHA_512_256.hash(b"").startswith("c672b8d1")


def test_server_offers_md5_then_sha256_with_one_nonce() -> None:
    # MD5 first by default: SIPp 3.6/3.7, PJSIP < 2.10 and MD5-only phone firmwares read
    # only the first challenge (real-world-dialects.md); SHA-256 stays on offer.
    values = make_server().challenges(T0)
    chs = [Challenge.parse(v) for v in values]
    assert [c.algorithm for c in chs] == [Algorithm.MD5, Algorithm.SHA_256]
    assert chs[0].nonce == chs[1].nonce
    assert all(c.realm == REALM and c.qop == ("auth",) and not c.stale for c in chs)
    assert all(Challenge.parse(v).stale for v in make_server().challenges(T0, stale=True))


def test_server_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        DigestServer(REALM, NonceManager(SECRET), algorithms=())
    with pytest.raises(ValueError):
        DigestServer(REALM, NonceManager(SECRET), qop=("auth-conf",))
    with pytest.raises(ValueError):
        NonceManager(b"short")
    with pytest.raises(ValueError):
        NonceManager(SECRET, lifetime=0)


# --------------------------------------------------------------------------- round trips

ALL = list(Algorithm)


@pytest.mark.parametrize("algorithm", ALL)
def test_round_trip_with_qop(algorithm: Algorithm) -> None:
    server = make_server(algorithms=ALL)
    auth = answer_challenge(challenge_for(server, algorithm), "REGISTER", URI, "alice", "s3cret")
    result = server.verify(auth, "REGISTER", password_for, T0 + 1, request_uri=URI)
    assert result == AuthResult(status=AuthStatus.OK, username="alice")
    assert result.ok


@pytest.mark.parametrize("algorithm", [a for a in ALL if not a.is_session])
def test_round_trip_without_qop_rfc2069(algorithm: Algorithm) -> None:
    server = make_server(algorithms=ALL, qop=())
    value = challenge_for(server, algorithm)
    assert "qop" not in value
    auth = answer_challenge(value, "INVITE", URI, "alice", "s3cret")
    p = parse_digest_params(auth)
    assert "qop" not in p and "nc" not in p and "cnonce" not in p
    assert server.verify(auth, "INVITE", password_for, T0).ok
    # RFC 2069 has no nc: a second use of the nonce is a replay; the client gets a fresh
    # challenge (stale), never a second OK.
    again = server.verify(auth, "INVITE", password_for, T0 + 10)
    assert again.status is AuthStatus.STALE and again.username == "alice"


def test_no_qop_nonce_is_spent_by_a_qop_use_and_the_other_way_round() -> None:
    server = make_server()
    ch = challenge_for(server, Algorithm.MD5)
    with_qop = answer_challenge(ch, "REGISTER", URI, "alice", "s3cret", nc=1)
    without = answer_challenge(ch.replace(', qop="auth"', ""), "REGISTER", URI, "alice", "s3cret")
    assert "qop" not in parse_digest_params(without)
    assert server.verify(with_qop, "REGISTER", password_for, T0).ok
    assert server.verify(without, "REGISTER", password_for, T0).status is AuthStatus.STALE

    ch = challenge_for(server, Algorithm.MD5)
    without = answer_challenge(ch.replace(', qop="auth"', ""), "REGISTER", URI, "alice", "s3cret")
    assert server.verify(without, "REGISTER", password_for, T0).ok
    later = answer_challenge(ch, "REGISTER", URI, "alice", "s3cret", nc=7)
    assert server.verify(later, "REGISTER", password_for, T0).reason is FailureReason.REPLAY


def test_nonce_is_bound_to_the_client_address() -> None:
    server = make_server()
    ch = challenge_for(server, Algorithm.MD5)  # no client: bound to the realm only
    auth = answer_challenge(ch, "REGISTER", URI, "alice", "s3cret")
    assert server.verify(auth, "REGISTER", password_for, T0, client="192.0.2.1").reason is (
        FailureReason.BAD_NONCE
    )
    value = server.challenges(T0, client="192.0.2.1")[0]
    auth = answer_challenge(value, "REGISTER", URI, "alice", "s3cret")
    elsewhere = server.verify(auth, "REGISTER", password_for, T0, client="198.51.100.7")
    assert elsewhere.reason is FailureReason.BAD_NONCE
    assert server.verify(auth, "REGISTER", password_for, T0, client="192.0.2.1").ok


def test_claimed_username() -> None:
    assert claimed_username('Digest username="alice", realm="r"') == "alice"
    assert claimed_username("Digest username*=UTF-8''J%C3%A4s, realm=r") == "J\u00e4s"
    assert claimed_username("Digest username*=latin1''x, realm=r") is None
    assert claimed_username('Digest realm="r"') is None
    assert claimed_username("Basic YWxpY2U6eA==") is None


def test_no_qop_refused_when_disabled() -> None:
    loose = make_server(qop=())
    auth = answer_challenge(loose.challenges(T0)[0], "REGISTER", URI, "alice", "s3cret")
    strict = DigestServer(REALM, loose.nonces, allow_no_qop=False)
    result = strict.verify(auth, "REGISTER", password_for, T0)
    assert result.reason is FailureReason.UNSUPPORTED_QOP


def test_session_algorithm_without_qop() -> None:
    value = 'Digest realm="r", nonce="n", algorithm=MD5-sess'
    with pytest.raises(DigestError):
        answer_challenge(value, "REGISTER", URI, "alice", "s3cret")
    server = make_server(algorithms=ALL)
    nonce = Challenge.parse(server.challenges(T0)[0]).nonce
    auth = (
        f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="{URI}",'
        f' response="{"0" * 32}", algorithm=MD5-sess'
    )
    assert server.verify(auth, "REGISTER", password_for, T0).reason is FailureReason.MALFORMED


def test_auth_int_round_trip_checks_body() -> None:
    server = make_server(qop=("auth-int",))
    value = server.challenges(T0)[0]
    auth = answer_challenge(value, "INFO", URI, "alice", "s3cret", body=b"<csta/>")
    assert parse_digest_params(auth)["qop"] == "auth-int"
    assert server.verify(auth, "INFO", password_for, T0, body=b"<csta/>").ok
    auth2 = answer_challenge(value, "INFO", URI, "alice", "s3cret", nc=2, body=b"<csta/>")
    assert server.verify(auth2, "INFO", password_for, T0, body=b"<evil/>").reason is (
        FailureReason.WRONG_RESPONSE
    )


def test_qop_not_offered_is_refused() -> None:
    server = make_server()
    nonce = Challenge.parse(server.challenges(T0)[0]).nonce
    value = f'Digest realm="{REALM}", nonce="{nonce}", qop="auth-int", algorithm=SHA-256'
    auth = answer_challenge(value, "INFO", URI, "alice", "s3cret")
    assert server.verify(auth, "INFO", password_for, T0).reason is FailureReason.UNSUPPORTED_QOP
    with pytest.raises(DigestError):
        answer_challenge(value.replace("auth-int", "auth-conf"), "INFO", URI, "alice", "x")


def test_wrong_password_fails() -> None:
    server = make_server()
    auth = answer_challenge(server.challenges(T0)[0], "REGISTER", URI, "alice", "wrong")
    result = server.verify(auth, "REGISTER", password_for, T0)
    assert result.status is AuthStatus.FAILED
    assert result.reason is FailureReason.WRONG_RESPONSE
    assert result.username == "alice"


def test_unknown_user_fails() -> None:
    server = make_server()
    auth = answer_challenge(server.challenges(T0)[0], "REGISTER", URI, "mallory", "x")
    assert server.verify(auth, "REGISTER", password_for, T0).reason is FailureReason.UNKNOWN_USER


def test_username_passed_as_sent_and_hashed_as_sent() -> None:
    seen: list[str] = []

    def folding_lookup(username: str) -> str | None:
        seen.append(username)
        return {k.lower(): v for k, v in USERS.items()}.get(username.lower())

    server = make_server()
    auth = answer_challenge(server.challenges(T0)[0], "REGISTER", URI, "BOB", "hunter2")
    result = server.verify(auth, "REGISTER", folding_lookup, T0)
    assert result.ok and result.username == "BOB"
    assert seen == ["BOB"]


def test_username_star_ext_value() -> None:
    server = make_server()
    nonce = Challenge.parse(server.challenges(T0)[0]).nonce
    users = {"Jäsøn": "pw"}
    response = digest_response(
        Algorithm.SHA_256,
        username="Jäsøn",
        realm=REALM,
        password="pw",
        method="REGISTER",
        uri=URI,
        nonce=nonce,
        qop="auth",
        nc="00000001",
        cnonce="c",
    )
    base = (
        f'realm="{REALM}", nonce="{nonce}", uri="{URI}", response="{response}",'
        ' algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"'
    )
    auth = f"Digest username*=UTF-8''J%C3%A4s%C3%B8n, {base}"
    assert server.verify(auth, "REGISTER", users.get, T0).username == "Jäsøn"
    for bad in ["latin1''x", "UTF-8''%ZZ", "UTF-8''%FF"]:
        result = server.verify(f"Digest username*={bad}, {base}", "REGISTER", users.get, T0)
        assert result.reason is FailureReason.MALFORMED
    both = f"Digest username=\"x\", username*=UTF-8''x, {base}"
    assert server.verify(both, "REGISTER", users.get, T0).reason is FailureReason.MALFORMED


# --------------------------------------------------------------------------- parameters


def _good_auth(server: DigestServer, **replace: str) -> str:
    ch = challenge_for(server, Algorithm.SHA_256)
    auth = answer_challenge(ch, "REGISTER", URI, "alice", "s3cret")
    p = parse_digest_params(auth)
    p.update(replace)
    return "Digest " + ", ".join(f'{k}="{v}"' for k, v in p.items() if v != "<drop>")


@pytest.mark.parametrize(
    ("replace", "reason"),
    [
        ({"realm": "other"}, FailureReason.REALM_MISMATCH),
        ({"uri": "sip:elsewhere"}, FailureReason.URI_MISMATCH),
        ({"algorithm": "SHA-1"}, FailureReason.UNSUPPORTED_ALGORITHM),
        ({"algorithm": "MD5-sess"}, FailureReason.UNSUPPORTED_ALGORITHM),
        ({"userhash": "true"}, FailureReason.UNSUPPORTED_USERHASH),
        ({"username": "<drop>"}, FailureReason.MALFORMED),
        ({"nonce": "<drop>"}, FailureReason.MALFORMED),
        ({"cnonce": "<drop>"}, FailureReason.MALFORMED),
        ({"nc": "xyz"}, FailureReason.MALFORMED),
        ({"nc": "000000000"}, FailureReason.MALFORMED),
        ({"nc": "00000000"}, FailureReason.MALFORMED),
        ({"response": "zz"}, FailureReason.MALFORMED),
        ({"response": "a" * 32}, FailureReason.MALFORMED),  # MD5 length for SHA-256
        ({"response": "a" * 64}, FailureReason.WRONG_RESPONSE),
        ({"nonce": "A" * 48}, FailureReason.BAD_NONCE),
        ({"nonce": "forged"}, FailureReason.BAD_NONCE),
    ],
)
def test_bad_parameters_fail(replace: dict[str, str], reason: FailureReason) -> None:
    server = make_server()
    result = server.verify(
        _good_auth(server, **replace), "REGISTER", password_for, T0, request_uri=URI
    )
    assert result.status is AuthStatus.FAILED
    assert result.reason is reason, result.detail


def test_uppercase_hex_response_accepted() -> None:
    server = make_server()
    auth = _good_auth(server)
    response = parse_digest_params(auth)["response"]
    assert server.verify(auth.replace(response, response.upper()), "REGISTER", password_for, T0).ok


def test_wrong_method_fails() -> None:
    server = make_server()
    result = server.verify(_good_auth(server), "INVITE", password_for, T0)
    assert result.reason is FailureReason.WRONG_RESPONSE


def test_opaque_must_be_echoed() -> None:
    server = make_server(opaque="xyz")
    value = server.challenges(T0)[0]
    assert 'opaque="xyz"' in value
    auth = answer_challenge(value, "REGISTER", URI, "alice", "s3cret")
    assert server.verify(auth, "REGISTER", password_for, T0).ok
    no_opaque = _good_auth(server, opaque="<drop>")
    assert server.verify(no_opaque, "REGISTER", password_for, T0).reason is (
        FailureReason.OPAQUE_MISMATCH
    )


def test_nonce_from_other_realm_is_invalid() -> None:
    nonces = NonceManager(SECRET)
    other = DigestServer("other.example", nonces)
    server = DigestServer(REALM, nonces)
    value = other.challenges(T0)[0].replace("other.example", REALM)
    auth = answer_challenge(value, "REGISTER", URI, "alice", "s3cret")
    assert server.verify(auth, "REGISTER", password_for, T0).reason is FailureReason.BAD_NONCE


def test_garbage_header_fails() -> None:
    result = make_server().verify("Basic Zm9vOmJhcg==", "REGISTER", password_for, T0)
    assert result.status is AuthStatus.FAILED
    assert result.reason is FailureReason.MALFORMED


# --------------------------------------------------------------------------- nonces


def test_nonce_valid_stale_invalid() -> None:
    nm = NonceManager(SECRET, lifetime=30)
    nonce = nm.make(T0, binding="r")
    assert nm.check(nonce, T0, binding="r") is NonceStatus.VALID
    assert nm.check(nonce, T0 + 30, binding="r") is NonceStatus.VALID
    assert nm.check(nonce, T0 + 30.5, binding="r") is NonceStatus.STALE
    assert nm.check(nonce, T0, binding="other") is NonceStatus.INVALID
    assert nm.check(nonce, T0 - 60, binding="r") is NonceStatus.INVALID  # from the future
    assert NonceManager(b"x" * 32).check(nonce, T0, binding="r") is NonceStatus.INVALID
    assert nm.make(T0) != nm.make(T0)  # unique, so nc counters are per client


def test_nonce_tampering_is_invalid() -> None:
    nm = NonceManager(SECRET)
    nonce = nm.make(T0)
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[7] ^= 1  # later timestamp, same MAC
    forged = base64.urlsafe_b64encode(bytes(raw)).decode()
    assert nm.check(forged, T0) is NonceStatus.INVALID
    # Same bytes in the standard alphabet must not pass as the same nonce.
    alias = nonce.replace("-", "+").replace("_", "/")
    if alias != nonce:
        assert nm.check(alias, T0) is NonceStatus.INVALID
    for bad in ["", "!" * 48, nonce[:-1], nonce + "A", "é" * 48]:
        assert nm.check(bad, T0) is NonceStatus.INVALID


def test_stale_nonce_with_right_password_is_stale() -> None:
    server = make_server()
    auth = answer_challenge(server.challenges(T0)[0], "REGISTER", URI, "alice", "s3cret")
    result = server.verify(auth, "REGISTER", password_for, T0 + 301)
    assert result.status is AuthStatus.STALE
    assert result.username == "alice"


def test_stale_nonce_with_wrong_password_fails() -> None:
    server = make_server()
    auth = answer_challenge(server.challenges(T0)[0], "REGISTER", URI, "alice", "nope")
    result = server.verify(auth, "REGISTER", password_for, T0 + 301)
    assert result.reason is FailureReason.WRONG_RESPONSE


def test_replayed_nc_fails_increasing_nc_ok() -> None:
    server = make_server()
    value = server.challenges(T0)[0]

    def auth(nc: int) -> str:
        return answer_challenge(value, "REGISTER", URI, "alice", "s3cret", nc=nc)

    assert server.verify(auth(1), "REGISTER", password_for, T0).ok
    replay = server.verify(auth(1), "REGISTER", password_for, T0 + 1)
    assert replay.reason is FailureReason.REPLAY
    assert server.verify(auth(2), "REGISTER", password_for, T0 + 2).ok
    assert server.verify(auth(5), "REGISTER", password_for, T0 + 3).ok
    assert server.verify(auth(4), "REGISTER", password_for, T0 + 4).reason is FailureReason.REPLAY
    # A failed attempt must not advance the counter.
    bad = answer_challenge(value, "REGISTER", URI, "alice", "wrong", nc=9)
    assert server.verify(bad, "REGISTER", password_for, T0 + 5).reason is (
        FailureReason.WRONG_RESPONSE
    )
    assert server.verify(auth(6), "REGISTER", password_for, T0 + 6).ok


def test_two_clients_have_independent_counters() -> None:
    server = make_server()
    a = answer_challenge(server.challenges(T0)[0], "REGISTER", URI, "alice", "s3cret")
    b = answer_challenge(server.challenges(T0)[0], "REGISTER", URI, "Bob", "hunter2")
    assert server.verify(a, "REGISTER", password_for, T0).ok
    assert server.verify(b, "REGISTER", password_for, T0).ok


def test_nc_tracking_is_bounded_and_eviction_forces_stale() -> None:
    nm = NonceManager(SECRET, lifetime=300, max_tracked=3)
    nonces = [nm.make(T0 + i) for i in range(5)]
    for i, n in enumerate(nonces):
        assert nm.record_nc(n, 1, T0 + i) is NonceStatus.VALID
    assert len(nm) == 3
    # The evicted nonces cannot be replayed from nc=1: they must be re-challenged.
    assert nm.record_nc(nonces[0], 1, T0 + 10) is NonceStatus.STALE
    assert nm.record_nc(nonces[1], 2, T0 + 10) is NonceStatus.STALE
    assert nm.record_nc(nonces[4], 1, T0 + 10) is NonceStatus.INVALID
    assert nm.record_nc(nonces[4], 2, T0 + 10) is NonceStatus.VALID
    assert nm.record_nc(nonces[4], 0, T0 + 10) is NonceStatus.INVALID
    fresh = nm.make(T0 + 20)
    assert nm.record_nc(fresh, 1, T0 + 20) is NonceStatus.VALID


def test_expired_entries_are_pruned() -> None:
    nm = NonceManager(SECRET, lifetime=10, max_tracked=100)
    for i in range(10):
        nm.record_nc(nm.make(T0 + i), 1, T0 + i)
    assert len(nm) == 10
    nm.prune(T0 + 15)
    assert len(nm) == 5  # issued at T0+5 .. T0+9: a nonce exactly lifetime old is still valid
    nm.record_nc(nm.make(T0 + 100), 1, T0 + 100)  # lazy pruning: at most 4 per call
    assert len(nm) == 2
    nm.record_nc(nm.make(T0 + 101), 1, T0 + 101)
    assert len(nm) == 2


def test_eviction_in_server_gives_stale() -> None:
    server = DigestServer(REALM, NonceManager(SECRET, max_tracked=1))
    first = server.challenges(T0)[0]
    a1 = answer_challenge(first, "REGISTER", URI, "alice", "s3cret", nc=1)
    assert server.verify(a1, "REGISTER", password_for, T0).ok
    b = answer_challenge(server.challenges(T0 + 1)[0], "REGISTER", URI, "Bob", "hunter2")
    assert server.verify(b, "REGISTER", password_for, T0 + 1).ok
    a2 = answer_challenge(first, "REGISTER", URI, "alice", "s3cret", nc=2)
    assert server.verify(a2, "REGISTER", password_for, T0 + 2).status is AuthStatus.STALE


def test_answer_challenge_rejects_bad_nc() -> None:
    value = make_server().challenges(T0)[0]
    for nc in (0, 2**32):
        with pytest.raises(DigestError):
            answer_challenge(value, "REGISTER", URI, "alice", "s3cret", nc=nc)


# --------------------------------------------------------------------------- fuzzing

_FUZZ_SERVER = make_server(algorithms=ALL, qop=("auth", "auth-int"))
_FUZZ_NONCE = Challenge.parse(_FUZZ_SERVER.challenges(T0)[0]).nonce
_PARAM_NAMES = [
    "username",
    "username*",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "qop",
    "nc",
    "cnonce",
    "opaque",
    "userhash",
]
_VALUES = st.one_of(
    st.text(max_size=70),
    st.sampled_from(
        [
            REALM,
            _FUZZ_NONCE,
            URI,
            "alice",
            "auth",
            "auth-int",
            "00000001",
            "MD5-sess",
            "SHA-256",
            "true",
            "a" * 64,
            "UTF-8''%C3%A4",
        ]
    ),
)


@given(st.text(max_size=400))
@settings(max_examples=200, deadline=None)
def test_verify_never_raises_on_text(value: str) -> None:
    result = _FUZZ_SERVER.verify(value, "REGISTER", password_for, T0)
    assert result.status is AuthStatus.FAILED


@given(st.dictionaries(st.sampled_from(_PARAM_NAMES), _VALUES, max_size=12), st.booleans())
@settings(max_examples=200, deadline=None)
def test_verify_never_raises_on_structured_input(params: dict[str, str], quote: bool) -> None:
    def fmt(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' if quote else v

    value = "Digest " + ", ".join(f"{k}={fmt(v)}" for k, v in params.items())
    result = _FUZZ_SERVER.verify(value, "REGISTER", password_for, T0, request_uri=URI)
    assert isinstance(result.status, AuthStatus)
