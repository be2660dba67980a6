"""The call journal's asyncio adapter: records in, batched database writes out.

The call tracker hands a finished call to :meth:`JournalWriter.add` on the event path; that
call only appends to a bounded in-memory queue, it never waits for the database. A task
writes what is queued in batches (every ``flush_interval`` seconds, or at once when
``batch_size`` records wait) in a worker thread, one transaction per batch. When the
database stalls or fails, the queue holds up to ``max_queue`` records; beyond that the
oldest are dropped and counted (``dropped``), with a rate-limited log line: a journal that
loses rows under an outage is better than a switch that stops switching.

Reads (:meth:`JournalWriter.query`) flush first: a record added before the query is in its
answer, and paging stays a plain keyset query on the table.

Retention: rows of calls that started more than ``retention_days`` days ago are deleted at
start and once a day (0: kept forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from uacsta.ratelog import RateLimitedLog
from uacsta.store.journal import Cursor, JournalStore
from uacsta.switch.callrecord import CallRecord, Direction, Outcome

__all__ = ["JournalWriter"]

log = logging.getLogger("uacsta.journal")

DAY = 86400.0


class JournalWriter:
    """Non-blocking, batched writes of :class:`CallRecord` rows to a :class:`JournalStore`."""

    def __init__(
        self,
        store: JournalStore,
        *,
        retention_days: int = 90,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        max_queue: int = 50_000,
        purge_interval: float = DAY,
        retry_delay: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        #: Days a row is kept (0: forever); read at each purge, so a settings change applies.
        self.retention_days = retention_days
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.max_queue = max(self.batch_size, max_queue)
        self.purge_interval = purge_interval
        #: First wait after a refused write, doubling up to 30 s while the database refuses.
        self.retry_delay = retry_delay
        self._clock = clock
        self._queue: deque[CallRecord] = deque()
        #: Records taken from the queue by a write that has not finished.
        self._in_flight = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._drop_log = RateLimitedLog(log)
        self._error_log = RateLimitedLog(log)
        #: Records written, dropped (queue full), and purged since start.
        self.written = 0
        self.dropped = 0
        self.purged = 0

    # ------------------------------------------------------------------ the event path
    def add(self, record: CallRecord) -> None:
        """Queue a finished call for the journal; returns at once (never touches the database).

        Call it from the event loop's thread (the call tracker's adapter does)."""
        if len(self._queue) + self._in_flight >= self.max_queue and self._queue:
            self._queue.popleft()
            self.dropped += 1
            self._drop_log.warning(
                "journal-full",
                "call journal: %d records wait for the database; the oldest is dropped "
                "(%d dropped since start)",
                self.max_queue,
                self.dropped,
            )
        self._queue.append(record)
        if len(self._queue) >= self.batch_size:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Records not yet in the database (queued or being written)."""
        return len(self._queue) + self._in_flight

    # ------------------------------------------------------------------ running
    async def start(self) -> None:
        """Start the flush task and the retention purge (one purge now, then daily)."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._flush_loop(), name="journal-flush"),
            loop.create_task(self._purge_loop(), name="journal-purge"),
        ]

    async def stop(self) -> None:
        """Stop the tasks and write what is queued (a failure is logged with the loss)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not await self.flush():
            log.error("call journal: %d records not written at shutdown", self.pending)

    async def flush(self) -> bool:
        """Write every record queued when called; False if the database refused a batch."""
        async with self._lock:
            remaining = len(self._queue)
            while remaining > 0 and self._queue:
                batch = [self._queue.popleft() for _ in range(min(remaining, self.batch_size))]
                remaining -= len(batch)
                if not await self._write(batch):
                    return False
        return True

    async def _write(self, batch: list[CallRecord]) -> bool:
        self._in_flight += len(batch)
        try:
            await asyncio.to_thread(self.store.add, batch)
        except (SQLAlchemyError, OSError) as exc:  # the database is down or busy: retry
            self._queue.extendleft(reversed(batch))
            while len(self._queue) > self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._error_log.error(
                "journal-write", "call journal: writing %d records failed: %s", len(batch), exc
            )
            return False
        except Exception:
            # A bug, not an outage: retrying would fail the same way and hold up every later
            # record, so the batch is dropped and the traceback logged.
            self.dropped += len(batch)
            log.exception("call journal: %d records could not be written", len(batch))
            return True
        finally:
            self._in_flight -= len(batch)
        self.written += len(batch)
        return True

    async def _flush_loop(self) -> None:
        backoff = self.flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            self._wake.clear()
            if not self._queue:
                continue
            if await self.flush():
                backoff = self.flush_interval
            else:
                backoff = min(max(backoff * 2, self.retry_delay), 30.0)

    async def _purge_loop(self) -> None:
        while True:
            await self.purge()
            await asyncio.sleep(self.purge_interval)

    async def purge(self) -> int:
        """Delete the rows older than the retention; returns how many went."""
        days = self.retention_days
        if days <= 0:
            return 0
        try:
            count = await asyncio.to_thread(self.store.purge, self._clock() - days * DAY)
        except (SQLAlchemyError, OSError) as exc:
            self._error_log.error("journal-purge", "call journal: purge failed: %s", exc)
            return 0
        if count:
            self.purged += count
            log.info("call journal: %d records older than %d days deleted", count, days)
        return count

    # ------------------------------------------------------------------ reads
    async def query(
        self,
        *,
        line: str | None = None,
        lines: Sequence[str] | None = None,
        extensions: Sequence[str] | None = None,
        outcome: Outcome | str | None = None,
        direction: Direction | str | None = None,
        since: float | None = None,
        until: float | None = None,
        remote: str | None = None,
        limit: int = 50,
        before: Cursor | None = None,
    ) -> tuple[list[CallRecord], Cursor | None]:
        """:meth:`JournalStore.query` in a worker thread, after a flush of what is queued
        (a database that refuses the flush still answers the query with what it has). The
        flush is awaited even with nothing queued: a batch the flush task took may still be
        on its way to the database, and the lock waits for it."""
        await self.flush()
        return await asyncio.to_thread(
            lambda: self.store.query(
                line=line,
                lines=lines,
                extensions=extensions,
                outcome=outcome,
                direction=direction,
                since=since,
                until=until,
                remote=remote,
                limit=limit,
                before=before,
            )
        )

    async def count(self) -> int:
        return await asyncio.to_thread(self.store.count)
