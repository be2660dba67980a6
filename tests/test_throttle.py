"""Failed-login throttling: the attacker is held, the account's own source is not."""

from uacsta.throttle import MAX_BLOCK, AuthThrottle


def make(**kw: float) -> AuthThrottle:
    args: dict[str, float] = {
        "max_failures": 3,
        "max_source_failures": 5,
        "max_account_failures": 4,
        "window": 60,
        "block_time": 10,
    }
    args.update(kw)
    return AuthThrottle(**args)  # type: ignore[arg-type]


def test_pair_limit_blocks_that_source_for_that_account_and_doubles() -> None:
    t = make()
    assert t.failure("1.2.3.4", "crm", 0) == 0
    assert t.failure("1.2.3.4", "crm", 1) == 0
    assert t.failure("1.2.3.4", "crm", 2) == 10
    assert t.last_blocked == "source and account"
    assert t.blocked_for("1.2.3.4", "crm", 5) == 7
    assert t.blocked_for("1.2.3.4", "other", 5) == 0  # the source may still log in elsewhere
    assert t.blocked_for("9.9.9.9", "crm", 5) == 0  # below the account limit
    assert t.blocked_for("1.2.3.4", "crm", 12) == 0
    for now in (13, 14, 15):
        started = t.failure("1.2.3.4", "crm", now)
    assert started == 20  # the pair's second block: twice as long


def test_source_limit_over_many_accounts() -> None:
    t = make()
    for i in range(4):
        assert t.failure("6.6.6.6", f"acct{i}", i) == 0
    assert t.failure("6.6.6.6", "acct4", 4) == 10
    assert t.last_blocked == "source"
    assert t.blocked_for("6.6.6.6", "fresh", 5) == 9
    assert t.blocked_for("7.7.7.7", "fresh", 5) == 0


def test_account_limit_over_many_sources_spares_the_trusted_source() -> None:
    t = make()
    t.success("10.0.0.1", "crm", 0)  # the CRM's own host
    for i in range(4):
        t.failure(f"6.6.6.{i}", "crm", 1 + i)
    assert t.last_blocked == "account"
    assert t.blocked_for("6.6.6.9", "crm", 6) > 0  # any other address: blocked
    assert t.blocked_for("10.0.0.2", "crm", 6) > 0  # a new one too
    assert t.blocked_for("10.0.0.1", "crm", 6) == 0  # the trusted source is not


def test_trusted_pair_is_not_held_by_its_address_block() -> None:
    t = make()
    t.success("nat", "phone-a", 0)
    for i in range(10):  # a neighbour behind the same address guesses other accounts
        t.failure("nat", f"x{i}", 1)
    assert t.blocked_for("nat", "phone-b", 2) > 0
    assert t.blocked_for("nat", "phone-a", 2) == 0
    # Its own failures still count: a trusted pair is held by its pair limit.
    for now in (3, 4, 5):
        t.failure("nat", "phone-a", now)
    assert t.blocked_for("nat", "phone-a", 6) > 0


def test_trust_expires() -> None:
    t = make()
    t.trust_time = 100
    t.success("a", "crm", 0)
    assert t.trusted("a", "crm", 99)
    assert not t.trusted("a", "crm", 100)
    assert not t.trusted("a", None, 1) and not t.trusted(None, "crm", 1)
    t.success("b", "crm")  # no time given: failures cleared, no trust recorded
    assert not t.trusted("b", "crm", 1)


def test_success_clears_the_pair_only() -> None:
    t = make(max_account_failures=5)
    t.failure("a", "crm", 0)
    t.failure("a", "crm", 1)
    t.failure("b", "crm", 1)
    t.success("a", "crm", 2)
    assert t.failure("a", "crm", 3) == 0  # the pair starts again from zero
    t.failure("c", "crm", 4)
    # ... but the account's count (a, a, b, a, c = 5) was not reset by the success.
    assert t.blocked_for("d", "crm", 5) > 0


def test_failures_outside_the_window_do_not_count() -> None:
    t = make(max_failures=2, window=10, block_time=5)
    t.failure("a", None, 0)
    assert t.failure("a", None, 11) == 0
    assert t.failure("a", None, 12) == 5


def test_blocks_are_capped_and_memory_is_bounded() -> None:
    t = make(max_failures=1, block_time=1000, max_tracked=100)
    durations = [t.failure("a", "x", float(i * 10_000)) for i in range(40)]
    assert max(durations) == MAX_BLOCK
    for i in range(1000):
        t.failure(f"10.0.{i // 256}.{i % 256}", f"u{i}", 2)
        t.success(f"10.1.{i // 256}.{i % 256}", f"u{i}", 2)
    assert len(t) <= 100
    assert len(t._trusted) <= 100


def test_configure_changes_the_limits() -> None:
    t = make()
    t.configure(max_failures=1, block_time=7, max_source_failures=2, max_account_failures=3)
    assert t.failure("a", "crm", 0) == 7
    assert (t.max_source_failures, t.max_account_failures) == (2, 3)
    t.configure(max_failures=0, block_time=7)  # at least one failure; the others unchanged
    assert (t.max_failures, t.max_source_failures) == (1, 2)


def test_describe_block_says_what_is_held() -> None:
    t = make()
    for now in (0, 1, 2):
        t.failure("a", "crm", now)
    assert t.describe_block("a", "crm") == "a for account 'crm'"
    for i in range(5):
        t.failure("b", f"u{i}", 3)
    assert t.describe_block("b", "u4").startswith("b (every account")
    for i in range(4):
        t.failure(f"c{i}", "x", 4)
    assert t.describe_block("c3", "x").startswith("account 'x'")


def test_attempts_in_flight_count_until_they_end() -> None:
    t = make()
    for _ in range(3):
        assert t.blocked_for("a", "crm", 0) == 0
        t.begin("a", "crm")  # e.g. a password hash awaited in a thread
    assert t.blocked_for("a", "crm", 0) > 0  # a fourth concurrent attempt waits
    assert t.blocked_for("b", "crm", 0) == 0
    t.end("a", "crm")
    t.success("a", "crm", 0)
    assert t.blocked_for("a", "crm", 0) == 0
    for _ in range(2):
        t.end("a", "crm")
    assert t._inflight == {}
