"""The journal in the assembled server: started with the store, flushed at shutdown, its
retention setting applied at once when changed in the admin."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Harness
from tests.journal.conftest import record
from uacsta.store.db import Store
from uacsta.store.journal import JournalStore


async def test_the_server_writes_the_journal_before_it_stops(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    server = await harness.start_server()
    try:
        journal = server.journal
        assert journal is not None and journal.retention_days == 90
        await server.ops.update_settings({"journal": {"retention_days": 7}})
        assert journal.retention_days == 7
        for n in range(3):  # just before shutdown: written by the stop at the latest
            journal.add(record(n))
        assert journal.pending == 3
    finally:
        await harness.stop_server()
    store = Store(server.settings.store.database_url)
    try:
        assert JournalStore(store).count() == 3
    finally:
        store.close()
