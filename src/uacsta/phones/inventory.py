"""The phone inventory in memory, written to the store in batches.

Every phone that ever registered stays listed (estos manual §3.5). Changes mark a phone dirty;
a background flush writes dirty phones in one transaction per interval, off the event loop,
so a registration storm costs one write per phone per interval, not one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import replace

from uacsta.store.db import PhoneRecord, Store, utcnow

log = logging.getLogger("uacsta.phones.inventory")

STATES = ("offline", "registered", "linking", "ready", "failed", "disabled")


class Inventory:
    def __init__(self, store: Store, *, flush_interval: float = 1.0) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.phones: dict[str, PhoneRecord] = {}
        self._dirty: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def load(self) -> None:
        """Read the store; states from a previous run are reset (no phone is linked yet)."""
        for record in self.store.load_phones():
            if record.state not in ("offline", "disabled"):
                record.state = "offline" if record.enabled else "disabled"
                record.state_reason = "server restarted"
                self._dirty.add(record.mac)
            self.phones[record.mac] = record

    def get(self, mac: str) -> PhoneRecord | None:
        return self.phones.get(mac)

    def all(self) -> list[PhoneRecord]:
        return sorted(self.phones.values(), key=lambda r: r.mac)

    def upsert(self, mac: str) -> tuple[PhoneRecord, bool]:
        record = self.phones.get(mac)
        if record is not None:
            return record, False
        record = PhoneRecord(mac=mac, first_seen=utcnow())
        self.phones[mac] = record
        self._dirty.add(mac)
        return record, True

    def touch(self, record: PhoneRecord) -> None:
        self._dirty.add(record.mac)
        self._wake.set()

    def set_state(self, record: PhoneRecord, state: str, reason: str | None = None) -> None:
        if record.state != state or record.state_reason != reason:
            record.state = state
            record.state_reason = reason
            self.touch(record)

    def delete(self, mac: str) -> bool:
        self._dirty.discard(mac)
        existed = self.phones.pop(mac, None) is not None
        self.store.delete_phone(mac)
        return existed

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for record in self.phones.values():
            out[record.state] = out.get(record.state, 0) + 1
        return out

    # --- persistence ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.flush_interval)
            await self.flush()

    async def flush(self) -> int:
        if not self._dirty:
            return 0
        macs, self._dirty = self._dirty, set()
        records = [self.phones[m] for m in macs if m in self.phones]
        snapshot = [replace(r, lines=list(r.lines)) for r in records]
        try:
            return await asyncio.to_thread(self.store.save_phones, snapshot)
        except Exception:
            log.exception("writing %d phones to the store failed; will retry", len(snapshot))
            self._dirty |= set(macs)
            return 0

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    def mark_all(self, macs: Iterable[str]) -> None:
        self._dirty.update(macs)
        self._wake.set()
