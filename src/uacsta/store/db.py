"""The database: phone inventory, lines and runtime settings, on SQLAlchemy Core.

SQLite (WAL, synchronous=NORMAL) is the embedded default; a restart or a SIGKILL loses nothing
that was flushed, and the server flushes changed phones in batches, never per message.
PostgreSQL (``postgresql+psycopg://user:password@host:5432/db``, the ``postgres`` extra) is the
database several nodes share (docs/postgresql.md): a pool with pre-ping, READ COMMITTED, and
writes that are safe when two nodes write the same row (upserts, never read-then-insert).

The schema is versioned by a small ordered list of migrations applied at open, in one
transaction (on PostgreSQL under an advisory lock, so nodes starting together migrate once):
the tables are few and simple, so Alembic's machinery would be more than the job needs.
Times are ISO 8601 UTC text of one format (compared as text), booleans are the engine's own.
Calls are synchronous; the asyncio server runs them in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

metadata = sa.MetaData()

phones = sa.Table(
    "phones",
    metadata,
    sa.Column("mac", sa.String(12), primary_key=True),
    sa.Column("vendor", sa.String(32), nullable=False, default="generic"),
    sa.Column("model", sa.String(64)),
    sa.Column("firmware", sa.String(64)),
    sa.Column("user_agent", sa.String(255)),
    sa.Column("identity", sa.String(255)),
    sa.Column("ip", sa.String(64)),
    sa.Column("port", sa.Integer),
    sa.Column("transport", sa.String(8)),
    sa.Column("first_seen", sa.String(32)),
    sa.Column("last_login", sa.String(32)),
    sa.Column("state", sa.String(16), nullable=False, default="offline"),
    sa.Column("state_reason", sa.String(255)),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("simulated", sa.Boolean, nullable=False, default=False),
    sa.Column("lines", sa.Text, nullable=False, default="[]"),
    #: The registered binding: contact URI and Path (JSON list, RFC 3327), enough to send the
    #: phone a request without a new REGISTER (through the edge proxy named in the Path).
    sa.Column("contact", sa.String(512)),
    sa.Column("path", sa.Text),
)

settings_table = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    #: "admin" (web admin, API tokens) or "user" (web client of one extension)
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("extension", sa.String(64)),
    sa.Column("created", sa.String(32), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    #: SHA-256 of the token: tokens are 256-bit random, so a fast hash is enough.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("last_used", sa.String(32)),
    #: JSON list of scopes ("read", "control", "admin"); NULL: every scope (tokens created
    #: before scopes existed keep the full rights they were issued with).
    sa.Column("scopes", sa.Text),
    #: ISO 8601 UTC; NULL: never expires.
    sa.Column("expires", sa.String(32)),
)

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    #: SHA-256 of the session ID carried in the signed cookie: the table alone opens nothing.
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(64), nullable=False, index=True),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("expires", sa.String(32), nullable=False),
)

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied", sa.String(32), nullable=False),
)


@dataclass(frozen=True, slots=True)
class AddColumn:
    """A migration step: add a nullable column unless the table has it (``create_all`` made
    a table that is new in this version with every column already)."""

    table: str
    column: str
    type: str  # SQL both engines take: TEXT, VARCHAR(n), FLOAT, INTEGER

    def apply(self, conn: sa.Connection) -> None:
        names = {c["name"] for c in sa.inspect(conn).get_columns(self.table)}
        if self.column not in names:
            conn.execute(sa.text(f"ALTER TABLE {self.table} ADD COLUMN {self.column} {self.type}"))


# Ordered migrations: index + 1 is the version they produce. Version 1 is the initial schema.
# A new database gets the current schema from ``create_all`` and all versions marked applied.
MIGRATIONS: list[list[AddColumn]] = [
    [],
    # 2: API token scopes and expiry (existing rows: NULL = every scope, never expires).
    # The web_sessions table is new, so create_all makes it.
    [
        AddColumn("api_tokens", "scopes", "TEXT"),
        AddColumn("api_tokens", "expires", "VARCHAR(32)"),
    ],
    # 3: webhook delivery leases (several nodes share the outbox; NULL: nobody holds it).
    [
        AddColumn("webhook_outbox", "claimed_by", "VARCHAR(64)"),
        AddColumn("webhook_outbox", "lease_until", "FLOAT"),
    ],
    # 4: the phone's registered binding (contact, Path) for linking it from another node.
    [
        AddColumn("phones", "contact", "VARCHAR(512)"),
        AddColumn("phones", "path", "TEXT"),
    ],
]

#: Key of the PostgreSQL advisory lock the migrations run under (any constant, ours alone).
MIGRATION_LOCK = 0x75614353  # "uaCS"

#: PostgreSQL pool: connections kept, extra ones under load, checked before use (a server
#: restart or a dropped connection costs a reconnect, not an error), renewed after 30 min
#: (under a proxy's or firewall's idle cut-off).
PG_POOL = {"pool_size": 5, "max_overflow": 10, "pool_timeout": 30, "pool_recycle": 1800}
PG_CONNECT_TIMEOUT = 10
POSTGRES_HINT = "pip install 'uacsta[postgres]'"

#: Mode of the SQLite database file (SQLite gives its -wal and -shm files the same mode) and
#: of directories created for it: it holds password hashes and the settings changed in the
#: admin, phone and client passwords among them.
DB_FILE_MODE = 0o600
DB_DIR_MODE = 0o700


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class PhoneRecord:
    """One phone of the inventory (estos manual §3.5: type, MAC, identity, IP, login, status)."""

    mac: str
    vendor: str = "generic"
    model: str | None = None
    firmware: str | None = None
    user_agent: str | None = None
    identity: str | None = None
    ip: str | None = None
    port: int | None = None
    transport: str | None = None
    first_seen: str | None = None
    last_login: str | None = None
    state: str = "offline"
    state_reason: str | None = None
    enabled: bool = True
    simulated: bool = False
    lines: list[str] = field(default_factory=list)
    #: The registered contact and its Path (RFC 3327; empty: registered directly).
    contact: str | None = None
    path: list[str] = field(default_factory=list)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["lines"] = json.dumps(self.lines)
        row["path"] = json.dumps(self.path)
        return row

    @classmethod
    def from_row(cls, row: Any) -> PhoneRecord:
        data = dict(row._mapping)
        data["lines"] = json.loads(data.get("lines") or "[]")
        data["path"] = json.loads(data.get("path") or "[]")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class StoreError(RuntimeError):
    """The database cannot be used: a driver is missing, the server cannot be reached."""


def engine_url(url: str) -> sa.URL:
    """The URL to open: ``postgresql://`` (and ``postgres://``) without a driver means psycopg
    (version 3, the ``postgres`` extra), never SQLAlchemy's default of psycopg2."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"store.url is not a database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "postgresql+psycopg":
        try:
            import psycopg  # noqa: F401  (the optional driver: a clear word when it is missing)
        except ImportError:
            raise StoreError(f"PostgreSQL needs the psycopg driver: {POSTGRES_HINT}") from None
    return parsed


def fit(table: sa.Table, row: Mapping[str, Any], *, keep: Sequence[str] = ()) -> dict[str, Any]:
    """``row`` with text clipped to its column's length (PostgreSQL refuses longer values,
    SQLite stores them: a phone's long User-Agent must not fail a whole batch on one engine).
    Columns in ``keep`` (keys) are left whole."""
    out = dict(row)
    for name, value in row.items():
        if isinstance(value, str) and name not in keep:
            length = getattr(table.c[name].type, "length", None)
            if length is not None and len(value) > length:
                out[name] = value[:length]
    return out


def _upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, or update the ones whose primary key is there, in one statement: two
    nodes writing the same row never fail on the key (SQLite and PostgreSQL: ON CONFLICT)."""
    keys = [c.name for c in table.primary_key.columns]
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert: Any
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(table)
        others = {c.name: statement.excluded[c.name] for c in table.c if c.name not in keys}
        conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=others), rows)
        return
    for row in rows:  # any other database: update, else insert
        where = sa.and_(*(table.c[k] == row[k] for k in keys))
        if conn.execute(table.update().where(where).values(row)).rowcount == 0:
            conn.execute(table.insert().values(row))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _private_sqlite_file(path: Path) -> None:
    """Create the database file owner-only before SQLite opens it; tighten an existing one.

    SQLite creates the -wal and -shm files with the mode of the database file, so they follow.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=DB_DIR_MODE, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, DB_FILE_MODE))
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if name.stat().st_mode & 0o077:
                name.chmod(DB_FILE_MODE)


class Store:
    def __init__(self, url: str) -> None:
        parsed = engine_url(url)
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            _private_sqlite_file(Path(url[len("sqlite:///") :]))
        self.url = url
        if parsed.get_backend_name() == "postgresql":
            self.engine = sa.create_engine(
                parsed,
                pool_pre_ping=True,
                # The server's default may be stricter (serializable): every write here is
                # one short statement or an upsert, correct under READ COMMITTED.
                isolation_level="READ COMMITTED",
                connect_args={
                    "connect_timeout": PG_CONNECT_TIMEOUT,
                    "application_name": "uacsta",
                },
                **PG_POOL,
            )
        else:
            self.engine = sa.create_engine(parsed)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._closed = False
        event.listen(self.engine, "checkin", self._checkin)
        try:
            self._migrate()
        except sa.exc.OperationalError as exc:
            self.engine.dispose()
            where = parsed.render_as_string(hide_password=True)
            raise StoreError(f"cannot open the database {where}: {exc.orig}") from exc

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one node migrates, the others wait
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            fresh = not sa.inspect(conn).has_table(schema_version.name)
            metadata.create_all(conn)
            current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
            current = current or 0
            for version, steps in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                if not fresh:  # create_all made a new database at the current schema
                    for step in steps:
                        step.apply(conn)
                conn.execute(schema_version.insert().values(version=version, applied=utcnow()))

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql``, ..."""
        return str(self.engine.dialect.name)

    def close(self) -> None:
        """Close the pool's connections, and any still in use (a worker thread of a
        cancelled task) as it comes back."""
        self._closed = True
        self.engine.dispose()

    def _checkin(self, dbapi_connection: Any, _record: Any) -> None:
        if self._closed and dbapi_connection is not None:
            dbapi_connection.close()

    # --- phones --------------------------------------------------------------------------
    def load_phones(self) -> list[PhoneRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(phones).order_by(phones.c.mac))
            return [PhoneRecord.from_row(r) for r in rows]

    def save_phones(self, records: Iterable[PhoneRecord]) -> int:
        """Insert or update phones in one transaction; returns how many were written."""
        # One row per MAC (the last wins), clipped to the columns (what a phone reports).
        rows = list({r.mac: fit(phones, r.to_row(), keep=("mac",)) for r in records}.values())
        if not rows:
            return 0
        with self.engine.begin() as conn:
            _upsert(conn, phones, rows)
        return len(rows)

    def delete_phone(self, mac: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(phones.delete().where(phones.c.mac == mac)).rowcount > 0

    # --- runtime settings ----------------------------------------------------------------
    def get_settings(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return {k: json.loads(v) for k, v in conn.execute(sa.select(settings_table))}

    def set_setting(self, key: str, value: Any) -> None:
        with self.engine.begin() as conn:
            _upsert(conn, settings_table, [{"key": key, "value": json.dumps(value)}])

    # --- users and API tokens ------------------------------------------------------------
    def get_user(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(users).where(users.c.name == name)).first()
            return dict(row._mapping) if row else None

    def list_users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(users).order_by(users.c.name))]

    def set_user(self, name: str, password_hash: str, role: str, extension: str | None) -> None:
        row = {
            "name": name,
            "password_hash": password_hash,
            "role": role,
            "extension": extension,
            "created": utcnow(),
        }
        with self.engine.begin() as conn:
            _upsert(conn, users, [row])

    def delete_user(self, name: str) -> bool:
        with self.engine.begin() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.user == name))
            return conn.execute(users.delete().where(users.c.name == name)).rowcount > 0

    # --- web sessions ----------------------------------------------------------------------
    def add_session(self, id_hash: str, user: str, expires: str, *, keep: int) -> None:
        """A new session of ``user``; expired ones go, and the user's oldest beyond ``keep``."""
        created = datetime.now(UTC).isoformat(timespec="microseconds")  # orders the sessions
        with self.engine.begin() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.expires <= utcnow()))
            older = conn.execute(
                sa.select(web_sessions.c.id_hash)
                .where(web_sessions.c.user == user)
                .order_by(web_sessions.c.created.desc())
                .offset(max(1, keep) - 1)  # the new one plus the newest keep - 1 stay
            ).all()
            if older:
                ids = [r[0] for r in older]
                conn.execute(web_sessions.delete().where(web_sessions.c.id_hash.in_(ids)))
            conn.execute(
                web_sessions.insert().values(
                    id_hash=id_hash, user=user, created=created, expires=expires
                )
            )

    def session_user(self, id_hash: str, now: str | None = None) -> dict[str, Any] | None:
        """The user of a live session (not expired, not revoked), else None."""
        query = (
            sa.select(users)
            .join(web_sessions, web_sessions.c.user == users.c.name)
            .where(web_sessions.c.id_hash == id_hash, web_sessions.c.expires > (now or utcnow()))
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
            return dict(row._mapping) if row else None

    def delete_session(self, id_hash: str) -> bool:
        with self.engine.begin() as conn:
            deleted = conn.execute(web_sessions.delete().where(web_sessions.c.id_hash == id_hash))
            return deleted.rowcount > 0

    def delete_user_sessions(self, user: str) -> int:
        """Revoke every session of ``user`` (password changed or reset, user deleted)."""
        with self.engine.begin() as conn:
            return conn.execute(web_sessions.delete().where(web_sessions.c.user == user)).rowcount

    # --- API tokens ------------------------------------------------------------------------
    def add_token(
        self,
        token_id: str,
        name: str,
        token_hash: str,
        *,
        scopes: Iterable[str] | None = None,
        expires: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                api_tokens.insert().values(
                    id=token_id,
                    name=name,
                    token_hash=token_hash,
                    created=utcnow(),
                    scopes=json.dumps(sorted(scopes)) if scopes is not None else None,
                    expires=expires,
                )
            )

    @staticmethod
    def _token_row(row: Any) -> dict[str, Any]:
        data = dict(row._mapping)
        data["scopes"] = json.loads(data["scopes"]) if data.get("scopes") is not None else None
        return data

    def find_token(self, token_hash: str) -> dict[str, Any] | None:
        """The token's row; ``scopes`` is a list, or None for a full-rights token of old."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_tokens).where(api_tokens.c.token_hash == token_hash)
            ).first()
            return self._token_row(row) if row else None

    def list_tokens(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    api_tokens.c.id,
                    api_tokens.c.name,
                    api_tokens.c.created,
                    api_tokens.c.scopes,
                    api_tokens.c.expires,
                ).order_by(api_tokens.c.created)
            )
            return [self._token_row(r) for r in rows]

    def delete_token(self, token_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(api_tokens.delete().where(api_tokens.c.id == token_id)).rowcount > 0
