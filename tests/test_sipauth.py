"""Tests for uacsta.sipauth: the digest + throttle rule of REGISTER and TR/87 INVITE."""

from __future__ import annotations

import ast

import pytest

from tests.test_sansio import FORBIDDEN, SRC
from uacsta.phones.mac import normalize_mac
from uacsta.sip.digest import (
    Algorithm,
    Challenge,
    DigestServer,
    FailureReason,
    NonceManager,
    answer_challenge,
)
from uacsta.sipauth import (
    TOO_MANY_FAILED_ATTEMPTS,
    Authenticated,
    Blocked,
    Challenged,
    DigestGuard,
    Failed,
)
from uacsta.throttle import AuthThrottle

SECRET = b"0123456789abcdef0123456789abcdef"
REALM = "uacsta"
URI = "sip:uacsta.example.org"
SOURCE = "192.0.2.10"
OTHER = "198.51.100.7"
T0 = 1_000_000.0
MAC = "001565AABBCC"
USERS = {"crm": "s3cret", MAC: "phone-secret"}


def password_for(username: str) -> str | None:
    return USERS.get(username)


def phone_password(username: str) -> str | None:
    mac = normalize_mac(username)
    return None if mac is None else USERS.get(mac)


def make_guard(max_failures: int = 3) -> DigestGuard:
    return DigestGuard(
        DigestServer(REALM, NonceManager(SECRET, lifetime=300)),
        AuthThrottle(max_failures=max_failures, block_time=60.0),
    )


def answer(
    guard: DigestGuard,
    username: str,
    password: str,
    *,
    method: str = "INVITE",
    client: str = SOURCE,
    now: float = T0,
) -> str:
    """An Authorization value answering a fresh challenge sent to ``client``."""
    challenge = guard.digest.challenges(now, client=client)[0]
    return answer_challenge(challenge, method, URI, username, password)


def test_no_authorization_is_challenged_with_every_algorithm_in_order() -> None:
    guard = make_guard()
    verdict = guard.check(None, "INVITE", SOURCE, T0, password_for)
    assert isinstance(verdict, Challenged)
    assert (verdict.status, verdict.phrase, verdict.stale) == (401, None, False)
    assert [name for name, _ in verdict.headers] == ["WWW-Authenticate"] * 2
    challenges = [Challenge.parse(value) for _, value in verdict.headers]
    assert [c.algorithm for c in challenges] == [Algorithm.MD5, Algorithm.SHA_256]
    assert len({c.nonce for c in challenges}) == 1  # one nonce shared by the challenges
    assert not any(c.stale for c in challenges)
    assert len(guard.throttle) == 0


def test_correct_answer_authenticates_and_trusts_the_pair() -> None:
    guard = make_guard()
    verdict = guard.check(answer(guard, "crm", "s3cret"), "INVITE", SOURCE, T0, password_for)
    assert verdict == Authenticated("crm", "crm")
    assert guard.throttle.trusted(SOURCE, "crm", T0)


def test_method_is_part_of_the_digest() -> None:
    guard = make_guard()
    authorization = answer(guard, "crm", "s3cret", method="REGISTER")
    verdict = guard.check(authorization, "INVITE", SOURCE, T0, password_for)
    assert isinstance(verdict, Failed)
    assert verdict.reason is FailureReason.WRONG_RESPONSE


def test_wrong_password_fails_and_the_nth_failure_blocks() -> None:
    guard = make_guard(max_failures=3)
    for _ in range(2):
        verdict = guard.check(answer(guard, "crm", "guess"), "INVITE", SOURCE, T0, password_for)
        assert isinstance(verdict, Failed)
        assert (verdict.status, verdict.phrase, verdict.headers) == (403, None, ())
        assert (verdict.user, verdict.account) == ("crm", "crm")
        assert verdict.reason is FailureReason.WRONG_RESPONSE
        assert verdict.detail == "digest mismatch"
        assert (verdict.block, verdict.block_holds) == (0.0, "")
    verdict = guard.check(answer(guard, "crm", "guess"), "INVITE", SOURCE, T0, password_for)
    assert isinstance(verdict, Failed)
    assert verdict.block == 60.0
    assert verdict.block_holds == f"{SOURCE} for account 'crm'"


def test_blocked_before_the_password_is_checked() -> None:
    guard = make_guard(max_failures=1)
    guard.check(answer(guard, "crm", "guess"), "INVITE", SOURCE, T0, password_for)
    looked_up: list[str] = []

    def recording(username: str) -> str | None:
        looked_up.append(username)
        return password_for(username)

    right = answer(guard, "crm", "s3cret", now=T0 + 10)
    verdict = guard.check(right, "INVITE", SOURCE, T0 + 10, recording)
    assert verdict == Blocked(status=403, phrase=TOO_MANY_FAILED_ATTEMPTS, account="crm", wait=50.0)
    assert looked_up == []
    # Another address is not held by this pair's block; after the block the pair may retry.
    elsewhere = answer(guard, "crm", "s3cret", client=OTHER, now=T0 + 10)
    assert isinstance(guard.check(elsewhere, "INVITE", OTHER, T0 + 10, password_for), Authenticated)
    later = answer(guard, "crm", "s3cret", now=T0 + 61)
    assert isinstance(guard.check(later, "INVITE", SOURCE, T0 + 61, password_for), Authenticated)


def test_success_clears_the_pairs_failures() -> None:
    guard = make_guard(max_failures=3)
    for _ in range(2):
        guard.check(answer(guard, "crm", "guess"), "INVITE", SOURCE, T0, password_for)
    ok = guard.check(answer(guard, "crm", "s3cret"), "INVITE", SOURCE, T0, password_for)
    assert isinstance(ok, Authenticated)
    for _ in range(2):  # counted from zero again: two more do not block
        verdict = guard.check(answer(guard, "crm", "guess"), "INVITE", SOURCE, T0, password_for)
        assert isinstance(verdict, Failed) and verdict.block == 0.0


def test_old_nonce_with_right_password_is_challenged_stale() -> None:
    guard = make_guard()
    authorization = answer(guard, "crm", "s3cret", now=T0)
    verdict = guard.check(authorization, "INVITE", SOURCE, T0 + 301, password_for)
    assert isinstance(verdict, Challenged)
    assert (verdict.status, verdict.stale) == (401, True)
    assert all(Challenge.parse(value).stale for _, value in verdict.headers)
    assert len(guard.throttle) == 0  # not a failure


def test_nonce_not_issued_to_this_address_is_challenged_afresh() -> None:
    guard = make_guard()
    authorization = answer(guard, "crm", "s3cret", client=OTHER)
    verdict = guard.check(authorization, "INVITE", SOURCE, T0, password_for)
    assert isinstance(verdict, Challenged)
    assert (verdict.status, verdict.stale) == (401, False)
    assert len(guard.throttle) == 0  # not a failure


def test_malformed_authorization_fails_without_a_user() -> None:
    guard = make_guard()
    verdict = guard.check("Basic Y3JtOnMzY3JldA==", "INVITE", SOURCE, T0, password_for)
    assert isinstance(verdict, Failed)
    assert (verdict.user, verdict.account) == (None, None)
    assert verdict.reason is FailureReason.MALFORMED


def test_unknown_user_fails() -> None:
    guard = make_guard()
    verdict = guard.check(answer(guard, "mallory", "x"), "INVITE", SOURCE, T0, password_for)
    assert isinstance(verdict, Failed)
    assert (verdict.user, verdict.reason) == ("mallory", FailureReason.UNKNOWN_USER)


# --------------------------------------------------------------------------- accounts


@pytest.mark.parametrize("written", ["00:15:65:aa:bb:cc", "001565-AABBCC", MAC])
def test_account_is_normalized_for_the_throttle_and_the_result(written: str) -> None:
    guard = make_guard(max_failures=2)
    authorization = answer(guard, written, "phone-secret", method="REGISTER")
    verdict = guard.check(authorization, "REGISTER", SOURCE, T0, phone_password, normalize_mac)
    assert verdict == Authenticated(written, MAC)
    assert guard.throttle.trusted(SOURCE, MAC, T0)
    # Failures written one way count for the account however it is written.
    other = "00-15-65-AA-BB-CC"
    for user in (written, other):
        wrong = answer(guard, user, "guess", method="REGISTER")
        failed = guard.check(wrong, "REGISTER", SOURCE, T0, phone_password, normalize_mac)
        assert isinstance(failed, Failed) and failed.account == MAC
    right = answer(guard, other, "phone-secret", method="REGISTER")
    blocked = guard.check(right, "REGISTER", SOURCE, T0, phone_password, normalize_mac)
    assert isinstance(blocked, Blocked) and blocked.account == MAC


def test_a_username_naming_no_account_is_its_own_throttle_key() -> None:
    guard = make_guard(max_failures=1)
    wrong = answer(guard, "alice", "x", method="REGISTER")
    verdict = guard.check(wrong, "REGISTER", SOURCE, T0, phone_password, normalize_mac)
    assert isinstance(verdict, Failed)
    assert (verdict.user, verdict.account, verdict.block) == ("alice", "alice", 60.0)
    again = answer(guard, "alice", "x", method="REGISTER")
    blocked = guard.check(again, "REGISTER", SOURCE, T0, phone_password, normalize_mac)
    assert isinstance(blocked, Blocked) and blocked.account == "alice"


def test_right_password_for_a_username_naming_no_account_fails() -> None:
    guard = make_guard()
    authorization = answer(guard, "crm", "s3cret", method="REGISTER")
    verdict = guard.check(authorization, "REGISTER", SOURCE, T0, password_for, normalize_mac)
    assert isinstance(verdict, Failed)
    assert (verdict.user, verdict.account) == ("crm", "crm")
    assert verdict.reason is FailureReason.UNKNOWN_USER
    assert not guard.throttle.trusted(SOURCE, "crm", T0)


# --------------------------------------------------------------------------- sans-IO


def test_the_guard_is_sans_io() -> None:
    """It and what it imports from uacsta outside the checked core read no clock, no socket."""
    for name in ("sipauth.py", "throttle.py"):
        tree = ast.parse((SRC / name).read_text())
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
        roots = {module.split(".")[0] for module in imported}
        assert not roots & FORBIDDEN, f"{name} imports {sorted(roots & FORBIDDEN)}"
        ours = {module for module in imported if module.startswith("uacsta.")}
        allowed = {"uacsta.throttle"} if name == "sipauth.py" else set()
        assert all(m in allowed or m.startswith("uacsta.sip.") for m in ours), ours
