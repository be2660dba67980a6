"""PostgreSQL as the store, against a real server (tests/engines/postgres.py), and the parts
several nodes share on one database, on both engines: migrations (fresh, upgrades, nodes
starting together), column types, text clipped to its column, concurrent writers of the same
rows, and outbox claims (each delivery held by one sender at a time)."""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from tests.engines.postgres import fresh_database
from tests.journal.conftest import record
from tests.journal.receiver import free_port
from uacsta.store.db import MIGRATIONS, PhoneRecord, Store, StoreError, engine_url
from uacsta.store.journal import JournalStore
from uacsta.store.outbox import DELIVERED, PENDING, OutboxRow, OutboxStore

LATEST = len(MIGRATIONS)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    db = Store(store_url)
    yield db
    db.close()


def versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT version FROM schema_version ORDER BY version")))


def columns(engine: sa.Engine, table: str) -> dict[str, Any]:
    return {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads released at once; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


# --- the URL and the driver --------------------------------------------------------------------


def test_a_postgresql_url_without_psycopg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg fails, as uninstalled
    for url in ("postgresql+psycopg://u:p@127.0.0.1/db", "postgresql://u:p@127.0.0.1/db"):
        with pytest.raises(StoreError, match=r"pip install 'uacsta\[postgres\]'"):
            Store(url)


def test_a_postgresql_url_without_a_driver_means_psycopg() -> None:
    assert engine_url("postgresql://u:p@db.example/uacsta").drivername == "postgresql+psycopg"
    assert engine_url("postgres://u:p@db.example/uacsta").drivername == "postgresql+psycopg"
    assert engine_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(StoreError, match="not a database URL"):
        engine_url("no url")


def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    url = f"postgresql+psycopg://uacsta:s3cret-pw@127.0.0.1:{free_port()}/uacsta"
    with pytest.raises(StoreError, match="cannot open the database") as caught:
        Store(url)
    assert "s3cret-pw" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


# --- PostgreSQL: the engine, a fresh schema -----------------------------------------------------


@pytest.mark.postgres
def test_the_engine_suits_postgresql(postgres_db: str) -> None:
    store = Store(postgres_db)
    try:
        assert store.dialect == "postgresql"
        pool = store.engine.pool
        assert isinstance(pool, sa.QueuePool) and pool.size() == 5
        assert pool._pre_ping  # a dropped connection is replaced, not an error
        with store.engine.connect() as conn:
            assert conn.get_isolation_level() == "READ COMMITTED"
            assert conn.execute(sa.text("SHOW application_name")).scalar() == "uacsta"
    finally:
        store.close()


@pytest.mark.postgres
def test_a_fresh_postgresql_database_gets_the_current_schema(postgres_db: str) -> None:
    store = Store(postgres_db)
    try:
        assert versions(store.engine) == list(range(1, LATEST + 1))
        tables = set(sa.inspect(store.engine).get_table_names())
        assert {
            "phones",
            "settings",
            "users",
            "api_tokens",
            "web_sessions",
            "schema_version",
            "call_journal",
            "webhook_endpoints",
            "webhook_outbox",
        } <= tables
        with store.engine.connect() as conn:
            types = {
                (t, c): (d, n)
                for t, c, d, n in conn.execute(
                    sa.text(
                        "SELECT table_name, column_name, data_type, character_maximum_length "
                        "FROM information_schema.columns WHERE table_schema = 'public'"
                    )
                )
            }
        # Booleans are the engine's own, times are text of one format, epochs are doubles.
        assert types["phones", "enabled"] == ("boolean", None)
        assert types["call_journal", "internal"] == ("boolean", None)
        assert types["webhook_endpoints", "enabled"] == ("boolean", None)
        assert types["phones", "mac"] == ("character varying", 12)
        assert types["web_sessions", "expires"] == ("character varying", 32)
        assert types["call_journal", "started"] == ("double precision", None)
        assert types["webhook_outbox", "next_attempt_at"] == ("double precision", None)
        assert types["webhook_outbox", "lease_until"] == ("double precision", None)
        assert types["webhook_outbox", "claimed_by"] == ("character varying", 64)
        assert types["webhook_outbox", "body"] == ("text", None)
        # Opening it again changes nothing.
        Store(postgres_db).close()
        assert versions(store.engine) == list(range(1, LATEST + 1))
    finally:
        store.close()


@pytest.mark.postgres
def test_nodes_starting_together_on_a_new_database_migrate_it_once(postgres_db: str) -> None:
    stores: list[Store] = []
    lock = threading.Lock()

    def start(_: int) -> None:
        opened = Store(postgres_db)
        with lock:
            stores.append(opened)

    try:
        in_threads(4, start)
        assert versions(stores[0].engine) == list(range(1, LATEST + 1))
    finally:
        for s in stores:
            s.close()


# --- both engines: upgrades ----------------------------------------------------------------------

VERSION_1 = [
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied VARCHAR(32) NOT NULL)",
    "INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00+00:00')",
    """CREATE TABLE users (
        name VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(255) NOT NULL,
        role VARCHAR(16) NOT NULL, extension VARCHAR(64), created VARCHAR(32) NOT NULL)""",
    """CREATE TABLE api_tokens (
        id VARCHAR(16) PRIMARY KEY, name VARCHAR(128) NOT NULL,
        token_hash VARCHAR(64) NOT NULL UNIQUE, created VARCHAR(32) NOT NULL,
        last_used VARCHAR(32))""",
    "INSERT INTO api_tokens (id, name, token_hash, created) "
    "VALUES ('0ld70ken', 'crm', 'ab12', '2026-01-01T00:00:00+00:00')",
]


def test_a_version_1_database_is_upgraded(store_url: str) -> None:
    """Version 1 of the schema, written by hand: every migration runs, old rows keep working."""
    engine = sa.create_engine(engine_url(store_url))
    with engine.begin() as conn:
        for statement in VERSION_1:
            conn.execute(sa.text(statement))
    engine.dispose()
    store = Store(store_url)
    try:
        assert versions(store.engine) == list(range(1, LATEST + 1))
        assert {"scopes", "expires"} <= set(columns(store.engine, "api_tokens"))
        assert {"claimed_by", "lease_until"} <= set(columns(store.engine, "webhook_outbox"))
        token = store.find_token("ab12")
        assert token is not None and token["scopes"] is None and token["expires"] is None
        store.add_token("n3w70ken", "new", "cd34", scopes=["read"])
        assert [t["id"] for t in store.list_tokens()] == ["0ld70ken", "n3w70ken"]
    finally:
        store.close()


def test_a_version_2_outbox_gets_its_lease_columns_and_keeps_its_rows(store_url: str) -> None:
    """The outbox before leases (version 2): the columns are added, pending rows are sent."""
    store = Store(store_url)
    outbox = OutboxStore(store)
    e = outbox.add_endpoint(url="http://h/", secret="x" * 16, events=["call.missed"])
    outbox.enqueue([OutboxRow(id="d-1", endpoint_id=e.id, event_type="t", body="{}", created=1.0)])
    with store.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE webhook_outbox DROP COLUMN claimed_by"))
        conn.execute(sa.text("ALTER TABLE webhook_outbox DROP COLUMN lease_until"))
        conn.execute(sa.text("DELETE FROM schema_version WHERE version >= 3"))
    assert "claimed_by" not in columns(store.engine, "webhook_outbox")
    store.close()

    store = Store(store_url)
    try:
        assert versions(store.engine) == list(range(1, LATEST + 1))
        assert {"claimed_by", "lease_until"} <= set(columns(store.engine, "webhook_outbox"))
        taken = OutboxStore(store).claim(10.0, 10, worker="a", lease=60.0)
        assert [d.id for d in taken] == ["d-1"]
    finally:
        store.close()


# --- both engines: the store's own behaviour ------------------------------------------------------


def test_phones_settings_users_and_tokens_round_trip(store: Store) -> None:
    phone = PhoneRecord(
        mac="001565000001",
        vendor="yealink",
        model="T54W",
        ip="192.0.2.10",
        port=5060,
        transport="tls",
        state="ready",
        enabled=False,
        simulated=True,
        lines=["sip:100@pbx", "sip:101@pbx"],
    )
    assert store.save_phones([phone, PhoneRecord(mac="001565000002")]) == 2
    assert store.load_phones()[0] == phone
    phone.state, phone.enabled, phone.lines = "offline", True, []
    assert store.save_phones([phone]) == 1
    first, second = store.load_phones()
    assert first == phone and second.vendor == "generic" and second.enabled is True
    assert store.delete_phone("001565000002") and not store.delete_phone("001565000002")

    store.set_setting("phones.password", "s3cret")
    store.set_setting("journal.retention_days", 30)
    store.set_setting("phones.password", {"nested": [1, True, None]})
    assert store.get_settings() == {
        "phones.password": {"nested": [1, True, None]},
        "journal.retention_days": 30,
    }

    store.set_user("alice", "hash-1", "user", "100")
    store.set_user("alice", "hash-2", "user", "100")
    store.set_user("root", "hash-3", "admin", None)
    assert [u["name"] for u in store.list_users()] == ["alice", "root"]
    user = store.get_user("alice")
    assert user is not None and user["password_hash"] == "hash-2"
    store.add_session("h" * 64, "alice", "2999-01-01T00:00:00+00:00", keep=2)
    assert store.session_user("h" * 64) is not None
    assert store.delete_user("alice") and store.session_user("h" * 64) is None

    store.add_token("t1", "crm", "a" * 64, scopes=["read", "control"], expires=None)
    token = store.find_token("a" * 64)
    assert token is not None and token["scopes"] == ["control", "read"]
    assert store.delete_token("t1") and store.find_token("a" * 64) is None


# --- both engines: what phones and calls bring, several writers -------------------------------


def test_text_longer_than_its_column_is_clipped_not_refused(store: Store) -> None:
    long_agent = "Yealink SIP-T54W " + "x" * 1000
    store.save_phones([PhoneRecord(mac="001565000001", user_agent=long_agent, model="m" * 80)])
    (phone,) = store.load_phones()
    assert phone.user_agent == long_agent[:255] and phone.model == "m" * 64
    journal = JournalStore(store)
    assert journal.add([record(1, remote_name="N" * 600, cause="c" * 100)]) == 1
    (row,), _ = journal.query()
    assert row.remote_name == "N" * 255 and row.cause == "c" * 64


def test_two_nodes_writing_the_same_phones_and_settings_at_once(store_url: str) -> None:
    """Upserts: two stores (nodes) saving the same new phones at the same moment both
    succeed, one row per phone; settings and users likewise."""
    nodes = [Store(store_url), Store(store_url)]
    try:
        macs = [f"0015650001{n:02d}" for n in range(40)]

        def save(i: int) -> None:
            for _ in range(3):
                nodes[i].save_phones([PhoneRecord(mac=m, state=f"node-{i}") for m in macs])
                nodes[i].set_setting("phones.password", f"pw-{i}")
                nodes[i].set_user("admin", f"hash-{i}", "admin", None)

        in_threads(2, save)
        phones = nodes[0].load_phones()
        assert [p.mac for p in phones] == macs
        assert {p.state for p in phones} <= {"node-0", "node-1"}
        assert nodes[1].get_settings()["phones.password"] in ("pw-0", "pw-1")
        assert len(nodes[0].list_users()) == 1
    finally:
        for node in nodes:
            node.close()


# --- both engines: outbox claims ---------------------------------------------------------------


def rows(endpoint_id: str, count: int, created: float = 100.0) -> list[OutboxRow]:
    return [
        OutboxRow(
            id=f"00000000-0000-0000-0000-{n:012d}",
            endpoint_id=endpoint_id,
            event_type="call.missed",
            body=f'{{"n":{n}}}',
            created=created + n,
        )
        for n in range(count)
    ]


def test_a_claimed_delivery_is_held_by_one_sender_until_its_lease_ends(store_url: str) -> None:
    a_store, b_store = Store(store_url), Store(store_url)
    a, b = OutboxStore(a_store), OutboxStore(b_store)
    try:
        e = a.add_endpoint(url="http://h/", secret="x" * 16, events=["call.missed"])
        f = a.add_endpoint(url="http://f/", secret="x" * 16, events=["call.missed"])
        a.enqueue(rows(e.id, 6))
        first = a.claim(1000.0, 4, worker="node-a", lease=30.0)
        assert [d.id[-1] for d in first] == ["0", "1", "2", "3"]  # the longest waiting first
        second = b.claim(1000.0, 10, worker="node-b", lease=30.0)
        assert [d.id[-1] for d in second] == ["4", "5"]  # only what nobody holds
        assert b.claim(1000.0, 10, worker="node-c", lease=30.0) == []
        # Its own rows a sender may take back (started again after dying mid-attempt).
        assert [d.id[-1] for d in b.claim(1000.0, 10, worker="node-b", lease=30.0)] == ["4", "5"]
        assert a.next_due() == 1030.0  # nothing free before the first lease ends

        # A mark ends the lease; a release gives rows back to every sender.
        a.mark_failed(first[0].id, next_attempt_at=1010.0, status=500, error="HTTP 500")
        assert b.release([first[1].id], worker="node-b") == 0  # not b's to release
        assert a.release([first[1].id], worker="node-a") == 1
        assert [d.id for d in b.claim(1011.0, 10, worker="node-d", lease=30.0)] == [
            first[1].id,
            first[0].id,
        ]

        # A sender that died holding rows: others wait for the lease, it takes them back.
        assert b.claim(1029.0, 10, worker="node-c", lease=30.0) == []
        back = a.claim(1029.0, 10, worker="node-a", lease=30.0)
        assert [d.id[-1] for d in back] == ["2", "3"]
        assert {d.id[-1] for d in b.claim(1100.0, 10, worker="node-c", lease=30.0)} == {
            "0",
            "1",
            "2",
            "3",
            "4",
            "5",
        }

        # A stopping sender gives back everything it holds.
        assert a.release_all(worker="node-c") == 6
        assert len(b.claim(1101.0, 10, worker="node-e", lease=30.0)) == 6

        # exclude / skip_endpoints, and a delivered row is never claimed again.
        a.enqueue([OutboxRow(id="other", endpoint_id=f.id, event_type="t", body="{}", created=1)])
        assert a.claim(2000.0, 10, worker="node-a", lease=1.0, skip_endpoints=[e.id]) == [
            a.get("other")
        ]
        assert a.claim(3000.0, 10, worker="node-a", lease=1.0, exclude=["other"])[0].id != "other"
        a.mark_delivered("other", at=3000.0, status=200)
        delivered = a.get("other")
        assert delivered is not None and delivered.state == DELIVERED
        assert "other" not in {d.id for d in b.claim(9000.0, 100, worker="x", lease=1.0)}
    finally:
        a_store.close()
        b_store.close()


def test_senders_claiming_at_once_never_take_the_same_delivery(store_url: str) -> None:
    """Four senders (each its own store, as nodes) claim 400 due rows in small batches at
    once: every row is taken exactly once."""
    setup = Store(store_url)
    outbox = OutboxStore(setup)
    e = outbox.add_endpoint(url="http://h/", secret="x" * 16, events=["call.missed"])
    outbox.enqueue(rows(e.id, 400))
    senders = [OutboxStore(Store(store_url)) for _ in range(4)]
    taken: list[list[str]] = [[] for _ in senders]

    def drain(i: int) -> None:
        for _ in range(400):  # bounded: a broken claim fails the test, never hangs it
            # A sender's own rows in flight are excluded (it could take them back otherwise).
            got = senders[i].claim(10_000.0, 7, worker=f"node-{i}", lease=3600.0, exclude=taken[i])
            if not got:
                return
            taken[i].extend(d.id for d in got)
        raise AssertionError("claims never ran dry")

    try:
        in_threads(len(senders), drain)
        counts = Counter(i for ids in taken for i in ids)
        assert len(counts) == 400 and set(counts.values()) == {1}
        assert outbox.counts(e.id)[PENDING] == 400
    finally:
        for sender in senders:
            sender.store.close()
        setup.close()


@pytest.mark.postgres
def test_fresh_databases_are_separate(postgres_url: str) -> None:
    """The helper's databases: each test's own, empty, on the one server."""
    first, second = fresh_database(postgres_url), fresh_database(postgres_url)
    assert first != second
    a, b = Store(first), Store(second)
    try:
        a.set_setting("k", 1)
        assert b.get_settings() == {}
    finally:
        a.close()
        b.close()
