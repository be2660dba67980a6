"""JournalWriter: batched writes, a flush at stop, reads that see what was just added, and an
event path that never waits for the database (a real store made slow, not a mock)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable

import pytest
import sqlalchemy as sa

from tests.journal.conftest import T0, record
from uacsta.journal.writer import DAY, JournalWriter
from uacsta.store.db import Store
from uacsta.store.journal import JournalStore
from uacsta.switch.callrecord import CallRecord, Outcome


class SlowStore(JournalStore):
    """The real store, with every write held until ``gate`` opens (a stalled database), and
    the first ``failures`` writes refused the way a database refuses them."""

    def __init__(self, store: Store, *, failures: int = 0) -> None:
        super().__init__(store)
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []
        self.failures = failures
        self.entered = threading.Event()

    def add(self, records: Iterable[CallRecord]) -> int:
        batch = list(records)
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        if self.failures > 0:
            self.failures -= 1
            raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))
        self.batches.append(len(batch))
        return super().add(batch)


@pytest.fixture
def slow(store: Store) -> SlowStore:
    return SlowStore(store)


async def test_records_are_written_in_batches(slow: SlowStore) -> None:
    writer = JournalWriter(slow, batch_size=500, flush_interval=0.05)
    await writer.start()
    try:
        for n in range(1200):
            writer.add(record(n))
        deadline = time.monotonic() + 10
        while writer.written < 1200 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await writer.stop()
    assert slow.count() == 1200
    assert sum(slow.batches) == 1200
    assert max(slow.batches) <= 500
    assert len(slow.batches) <= 4  # not one transaction per record
    assert writer.pending == 0 and writer.dropped == 0


async def test_a_few_records_are_written_after_the_interval(slow: SlowStore) -> None:
    writer = JournalWriter(slow, flush_interval=0.05)
    await writer.start()
    try:
        writer.add(record(1))
        writer.add(record(2))
        await asyncio.sleep(0.5)
        assert slow.count() == 2
        assert slow.batches == [2]
    finally:
        await writer.stop()


async def test_stop_flushes_what_is_queued(slow: SlowStore) -> None:
    writer = JournalWriter(slow, flush_interval=3600)  # only stop() writes
    await writer.start()
    for n in range(10):
        writer.add(record(n))
    await asyncio.sleep(0.05)
    assert slow.count() == 0 and writer.pending == 10
    await writer.stop()
    assert slow.count() == 10 and writer.pending == 0


async def test_a_query_sees_records_not_yet_flushed(slow: SlowStore) -> None:
    writer = JournalWriter(slow, flush_interval=3600)
    await writer.start()
    try:
        writer.add(record(1))
        writer.add(record(2, outcome=Outcome.MISSED, answered=None))
        rows, after = await writer.query(outcome=Outcome.MISSED)
        assert [r.id for r in rows] == ["rec-0002"] and after is None
        assert await writer.count() == 2
    finally:
        await writer.stop()


async def test_a_query_waits_for_the_batch_the_flush_task_is_writing(slow: SlowStore) -> None:
    writer = JournalWriter(slow, flush_interval=0.01)
    await writer.start()
    try:
        slow.gate.clear()  # the flush task takes the record, then its write is held
        writer.add(record(1))
        assert await asyncio.to_thread(slow.entered.wait, 5)
        query = asyncio.ensure_future(writer.query())
        await asyncio.sleep(0.05)
        assert not query.done()  # it waits for the write in progress ...
        slow.gate.set()
        rows, _after = await asyncio.wait_for(query, 5)
        assert [r.id for r in rows] == ["rec-0001"]  # ... and sees the record
    finally:
        slow.gate.set()
        await writer.stop()


async def test_add_never_waits_for_a_stalled_database(slow: SlowStore) -> None:
    writer = JournalWriter(slow, batch_size=100, flush_interval=0.01, max_queue=5000)
    await writer.start()
    slow.gate.clear()  # the database stalls
    try:
        writer.add(record(0))
        assert await asyncio.to_thread(slow.entered.wait, 5)  # a write is stuck in the DB
        started = time.perf_counter()
        for n in range(1, 3000):
            writer.add(record(n))
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5, f"3000 adds took {elapsed:.3f} s"
        # The event loop keeps running while the write waits.
        tick = time.perf_counter()
        await asyncio.sleep(0.02)
        assert time.perf_counter() - tick < 0.5
        assert slow.count() == 0
        assert writer.pending == 3000 and writer.dropped == 0
    finally:
        slow.gate.set()
        await writer.stop()
    assert slow.count() == 3000


async def test_a_full_queue_drops_the_oldest_with_a_rate_limited_line(
    slow: SlowStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = JournalWriter(slow, batch_size=10, flush_interval=0.01, max_queue=100)
    await writer.start()
    slow.gate.clear()
    try:
        writer.add(record(0))
        assert await asyncio.to_thread(slow.entered.wait, 5)  # record 0 is in flight
        with caplog.at_level(logging.WARNING, logger="uacsta.journal"):
            for n in range(1, 400):
                writer.add(record(n))
        assert writer.pending == 100
        assert writer.dropped == 300
        drops = [r for r in caplog.records if "dropped" in r.getMessage()]
        assert 1 <= len(drops) <= 10  # rate-limited, not one line per record
    finally:
        slow.gate.set()
        await writer.stop()
    kept = {r.id for r in slow.query(limit=1000)[0]}
    assert len(kept) == 100
    assert "rec-0000" in kept  # in flight when the queue filled: written
    assert {f"rec-{n:04d}" for n in range(310, 400)} <= kept  # the newest stay
    assert "rec-0001" not in kept  # the oldest queued went


async def test_a_refused_write_is_retried(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    failing = SlowStore(store, failures=2)
    writer = JournalWriter(failing, flush_interval=0.01, retry_delay=0.05)
    with caplog.at_level(logging.ERROR, logger="uacsta.journal"):
        await writer.start()
        try:
            writer.add(record(1))
            deadline = time.monotonic() + 10
            while writer.written < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await writer.stop()
    assert failing.count() == 1
    assert any("writing 1 records failed" in r.getMessage() for r in caplog.records)


async def test_retention_purges_old_calls_at_start(store: Store) -> None:
    journal = JournalStore(store)
    now = T0 + 200 * DAY
    journal.add(
        [
            record(1, started=now - 91 * DAY, ended=now - 91 * DAY + 30, answered=None),
            record(2, started=now - 89 * DAY, ended=now - 89 * DAY + 30, answered=None),
        ]
    )
    keep_all = JournalWriter(journal, retention_days=0, clock=lambda: now)
    await keep_all.start()
    await keep_all.stop()
    assert journal.count() == 2
    writer = JournalWriter(journal, retention_days=90, clock=lambda: now)
    await writer.start()
    try:
        deadline = time.monotonic() + 5
        while journal.count() > 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await writer.stop()
    assert [r.id for r in journal.query()[0]] == ["rec-0002"]
    assert writer.purged == 1


class BuggyStore(JournalStore):
    """A store whose first write fails with a bug (not a database outage)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.calls = 0

    def add(self, records: Iterable[CallRecord]) -> int:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("a bug in the row mapping")
        return super().add(records)


async def test_a_batch_failing_with_a_bug_is_dropped_not_retried_forever(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    buggy = BuggyStore(store)
    writer = JournalWriter(buggy, flush_interval=3600)
    with caplog.at_level(logging.ERROR, logger="uacsta.journal"):
        writer.add(record(1))
        assert await writer.flush()
        writer.add(record(2))
        await writer.stop()
    assert [r.id for r in buggy.query()[0]] == ["rec-0002"]
    assert writer.dropped == 1 and writer.written == 1
    assert any(r.exc_info and "could not be written" in r.getMessage() for r in caplog.records)
