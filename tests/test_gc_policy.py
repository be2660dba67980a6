"""The server's garbage-collector policy: young collections on a clock."""

from __future__ import annotations

import asyncio
import gc

import pytest

from uacsta import server


async def test_young_collections_run_on_the_clock_with_every_tenth_a_middle_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    done = asyncio.Event()

    def collect(generation: int = 2) -> int:
        calls.append(generation)
        if len(calls) == 20:
            done.set()
        return 0

    monkeypatch.setattr(server, "YOUNG_COLLECTION_INTERVAL", 0.001)
    monkeypatch.setattr(gc, "collect", collect)
    collections = server.YoungCollections(asyncio.get_running_loop())
    await asyncio.wait_for(done.wait(), 10)
    collections.cancel()
    assert calls[:20] == ([0] * 9 + [1]) * 2
    count = len(calls)
    await asyncio.sleep(0.01)  # ten intervals: none may run once cancelled
    assert len(calls) == count
