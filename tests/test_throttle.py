"""Failed-login throttling: per source and per account, blocks doubling, bounded memory."""

from uacsta.throttle import AuthThrottle


def test_blocks_after_max_failures_and_doubles() -> None:
    t = AuthThrottle(max_failures=3, window=60, block_time=10)
    assert t.failure("1.2.3.4", "crm", 0) == 0
    assert t.failure("1.2.3.4", "crm", 1) == 0
    assert t.failure("1.2.3.4", "crm", 2) == 10
    assert t.blocked_for("1.2.3.4", None, 5) == 7
    assert t.blocked_for("9.9.9.9", "crm", 5) == 7  # the account is blocked from anywhere
    assert t.blocked_for("9.9.9.9", "other", 5) == 0
    assert t.blocked_for("1.2.3.4", "crm", 12) == 0
    for now in (13, 14, 15):
        started = t.failure("1.2.3.4", None, now)
    assert started == 20  # second block of that source: twice as long


def test_failures_outside_the_window_do_not_count() -> None:
    t = AuthThrottle(max_failures=2, window=10, block_time=5)
    t.failure("a", None, 0)
    assert t.failure("a", None, 11) == 0
    assert t.failure("a", None, 12) == 5


def test_success_clears_the_account_and_memory_is_bounded() -> None:
    t = AuthThrottle(max_failures=2, window=10, block_time=5, max_tracked=100)
    t.failure(None, "crm", 0)
    t.success("a", "crm")
    assert t.failure(None, "crm", 1) == 0
    for i in range(1000):
        t.failure(f"10.0.{i // 256}.{i % 256}", None, 2)
    assert len(t) <= 100
