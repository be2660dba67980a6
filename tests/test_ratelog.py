"""Rate-limited log lines: per key, over all keys, summaries, bounded memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from uacsta import ratelog
from uacsta.ratelog import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.files: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.files.append(record.filename)


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("test.ratelog")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)


def make(clock: Clock, **kw: int) -> RateLimitedLog:
    return RateLimitedLog(
        logging.getLogger("test.ratelog"),
        lines=kw.get("lines", 3),
        interval=60,
        total=kw.get("total", 100),
        max_keys=kw.get("max_keys", 100),
        clock=clock,
    )


def test_per_key_burst_then_one_notice_then_a_summary(lines: Lines) -> None:
    clock = Clock()
    rlog = make(clock)
    written = [rlog.warning("k", "refused %s", i) for i in range(10)]
    assert written == [True] * 3 + [False] * 7
    assert lines.lines[:3] == ["refused 0", "refused 1", "refused 2"]
    assert lines.lines[3] == "further lines like 'refused %s' suppressed for up to 60 s"
    assert len(lines.lines) == 4
    assert rlog.suppressed_total == 7
    rlog.warning("other", "other %s", 1)  # another key has its own budget
    assert lines.lines[-1] == "other 1"
    clock.now += 61
    assert rlog.warning("k", "refused %s", 10)
    assert lines.lines[-2:] == ["7 lines like 'refused %s' suppressed in 61 s", "refused 10"]
    assert set(lines.files) == {"test_ratelog.py"}  # records name the caller


def test_global_budget_bounds_a_flood_with_varying_keys(lines: Lines) -> None:
    clock = Clock()
    rlog = make(clock, lines=2, total=10)
    for i in range(1000):
        rlog.warning(("src", i), "from %s", i)
    assert len(lines.lines) == 11
    assert lines.lines[-1] == "log rate limit reached: further lines suppressed for up to 60 s"
    clock.now += 60
    rlog.warning(("src", 5000), "from %s", 5000)
    assert lines.lines[-2] == "990 more log lines suppressed in 60 s (log rate limit)"
    assert lines.lines[-1] == "from 5000"


def test_keys_are_bounded_and_evicted_counts_are_kept(lines: Lines) -> None:
    clock = Clock()
    rlog = make(clock, lines=1, max_keys=10)
    for _ in range(3):
        rlog.info("first", "x")
    for i in range(20):
        rlog.info(i, "y %s", i)
    assert len(rlog._keys) == 10
    clock.now += 60
    rlog.info("again", "z")
    assert "2 more log lines suppressed in 60 s (log rate limit)" in lines.lines


def test_disabled_level_costs_nothing_and_defaults_come_from_configure(lines: Lines) -> None:
    logger = logging.getLogger("test.ratelog")
    logger.setLevel(logging.WARNING)
    rlog = RateLimitedLog(logger)
    assert rlog.debug("k", "hidden") is False and rlog.info("k", "hidden") is False
    assert lines.lines == []
    try:
        ratelog.configure(lines=2, interval=30)
        assert (rlog.lines, rlog.interval, rlog.total) == (2, 30, 20)
        assert rlog.error("k", "a") and rlog.error("k", "b") and not rlog.error("k", "c")
    finally:
        ratelog.configure(lines=5, interval=60, total=50)


def test_filter_limits_the_templates_it_is_given(lines: Lines) -> None:
    clock = Clock()
    logger = logging.getLogger("test.ratelog")
    limited = ratelog.RateLimitFilter(
        only=frozenset({"refused %s"}), lines=2, interval=60, clock=clock
    )
    logger.addFilter(limited)
    try:
        for i in range(10):
            logger.info("refused %s", i)
            logger.info("other %s", i)
        assert [x for x in lines.lines if x.startswith("refused")] == [
            "refused 0",
            "refused 1",
            "refused 2 (further lines like this suppressed for up to 60 s)",
        ]
        assert len([x for x in lines.lines if x.startswith("other")]) == 10
        clock.now += 60
        logger.info("refused %s", 10)
        assert lines.lines[-1] == "refused 10 (7 similar lines suppressed before)"
    finally:
        logger.removeFilter(limited)
