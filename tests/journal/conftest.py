"""Journal fixtures: a store on a fresh database of each engine (SQLite, PostgreSQL) and
hand-written call records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from uacsta.store.db import Store
from uacsta.store.journal import JournalStore
from uacsta.switch.callrecord import CallRecord, Direction, Outcome

#: 2026-12-01 10:00:00 UTC
T0 = 1_796_119_200.0


def record(n: int, **changes: Any) -> CallRecord:
    """Call number ``n``: on line 100, from 2xx, started ``n`` minutes after T0, answered."""
    fields: dict[str, Any] = {
        "id": f"rec-{n:04d}",
        "line": "sip:100@pbx.example",
        "phone": "001565000001",
        "call_id": f"c{n}",
        "direction": Direction.INCOMING,
        "remote_number": f"2{n:02d}",
        "remote_name": None,
        "started": T0 + 60 * n,
        "answered": T0 + 60 * n + 5,
        "ended": T0 + 60 * n + 35,
        "outcome": Outcome.ANSWERED,
    }
    fields.update(changes)
    return CallRecord(**fields)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    db = Store(store_url)
    yield db
    db.close()


@pytest.fixture
def journal(store: Store) -> JournalStore:
    return JournalStore(store)
