"""The phone's binding (contact, Path) in the store: written, read back, migrated in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from uacsta.store.db import PhoneRecord, Store

PATH = ["<sip:192.0.2.10;lr;received=sip:198.51.100.7:41000>"]


def test_contact_and_path_survive_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'uacsta.db'}")
    try:
        record = PhoneRecord(mac="000413000001", contact="sip:000413000001@10.1.1.1", path=PATH)
        store.save_phones([record, PhoneRecord(mac="000413000002")])
        loaded = {r.mac: r for r in store.load_phones()}
        assert loaded["000413000001"].contact == "sip:000413000001@10.1.1.1"
        assert loaded["000413000001"].path == PATH
        assert (loaded["000413000002"].contact, loaded["000413000002"].path) == (None, [])
    finally:
        store.close()


def test_a_database_of_schema_2_gets_the_binding_columns(tmp_path: Path) -> None:
    db = tmp_path / "uacsta.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied VARCHAR(32) NOT NULL);
            INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00+00:00');
            INSERT INTO schema_version VALUES (2, '2026-01-02T00:00:00+00:00');
            CREATE TABLE phones (
                mac VARCHAR(12) PRIMARY KEY, vendor VARCHAR(32) NOT NULL,
                model VARCHAR(64), firmware VARCHAR(64), user_agent VARCHAR(255),
                identity VARCHAR(255), ip VARCHAR(64), port INTEGER, transport VARCHAR(8),
                first_seen VARCHAR(32), last_login VARCHAR(32), state VARCHAR(16) NOT NULL,
                state_reason VARCHAR(255), enabled BOOLEAN NOT NULL, simulated BOOLEAN NOT NULL,
                lines TEXT NOT NULL);
            INSERT INTO phones (mac, vendor, state, enabled, simulated, lines)
                VALUES ('000413000001', 'snom', 'ready', 1, 0, '["sip:200@pbx"]');
            """
        )
    conn.close()
    store = Store(f"sqlite:///{db}")
    try:
        (record,) = store.load_phones()
        assert (record.lines, record.contact, record.path) == (["sip:200@pbx"], None, [])
        record.contact, record.path = "sip:000413000001@10.1.1.1", PATH
        store.save_phones([record])
        assert store.load_phones()[0].path == PATH
    finally:
        store.close()
