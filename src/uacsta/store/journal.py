"""The call journal's table (``call_journal``) and its typed access, on SQLAlchemy Core.

One row per call per line: a :class:`uacsta.switch.callrecord.CallRecord` as the call tracker
wrote it once the call ended there. The row keeps every field of the record, its ring and talk
seconds (so filters and exports need no arithmetic), and the line's extension (``100`` of
``sip:100@pbx``), so a web-client user's calls are found by their extension even on a line the
phones no longer report.

Reads are newest first and paged with a keyset cursor ``(started, id)``: a page costs the same
at the millionth row as at the first, and rows written meanwhile never shift a page.

Several nodes on one database (PostgreSQL): a row's key is the tracker's record ID, a random
UUID made by the node that tracked the call, so two nodes never write the same key; a batch
written twice (a commit whose answer was lost) stays one row per call through
``INSERT ... ON CONFLICT (id) DO NOTHING``. Text is clipped to its column (PostgreSQL refuses
longer values) so one long remote name never fails a batch.

Calls are synchronous (plain Core, SQLite and PostgreSQL alike); the server runs them in a
worker thread through :class:`uacsta.journal.writer.JournalWriter`, which batches the writes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from uacsta.store.db import Store, fit, metadata
from uacsta.switch.callrecord import CallRecord, Direction, Outcome
from uacsta.switch.devices import extension_of

__all__ = [
    "Cursor",
    "JournalStore",
    "call_journal",
    "decode_cursor",
    "encode_cursor",
]

#: Where a page ended: the ``(started, id)`` of its last (oldest) row.
Cursor = tuple[float, str]

#: Rows one query returns at most (the API's limit is lower).
MAX_LIMIT = 1000

call_journal = sa.Table(
    "call_journal",
    metadata,
    #: The tracker's record ID: unique and stable, so a record written twice is one row.
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("line", sa.String(255), nullable=False),
    #: The line's user part / number (``extension_of``): a web-client user's calls.
    sa.Column("extension", sa.String(255)),
    sa.Column("phone", sa.String(32), nullable=False),
    sa.Column("call_id", sa.String(128), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("remote_number", sa.String(255)),
    sa.Column("remote_name", sa.String(255)),
    #: Seconds since the epoch (UTC), as the tracker gives them.
    sa.Column("started", sa.Double, nullable=False),
    sa.Column("answered", sa.Double),
    sa.Column("ended", sa.Double, nullable=False),
    sa.Column("ring_seconds", sa.Double, nullable=False),
    sa.Column("talk_seconds", sa.Double, nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("cause", sa.String(64)),
    #: JSON list of the related calls' IDs.
    sa.Column("related", sa.Text, nullable=False, default="[]"),
    #: The other party was another line of this server (both lines have a row).
    sa.Column("internal", sa.Boolean, nullable=False, default=False),
    sa.Index("ix_call_journal_line_started", "line", "started"),
    sa.Index("ix_call_journal_extension_started", "extension", "started"),
    sa.Index("ix_call_journal_started", "started"),
    sa.Index("ix_call_journal_outcome", "outcome"),
)


def encode_cursor(cursor: Cursor) -> str:
    """The opaque text of a cursor (URL-safe; the exact float survives the round trip)."""
    raw = json.dumps([cursor[0], cursor[1]], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor an :func:`encode_cursor` text names; ``ValueError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        started, record_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValueError("not a journal cursor") from None
    if (
        not isinstance(started, int | float)
        or isinstance(started, bool)
        or not math.isfinite(started)
        or not isinstance(record_id, str)
    ):
        raise ValueError("not a journal cursor")
    return float(started), record_id


def _row(record: CallRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "line": record.line,
        "extension": extension_of(record.line),
        "phone": record.phone,
        "call_id": record.call_id,
        "direction": record.direction.value,
        "remote_number": record.remote_number,
        "remote_name": record.remote_name,
        "started": record.started,
        "answered": record.answered,
        "ended": record.ended,
        "ring_seconds": record.ring_seconds,
        "talk_seconds": record.talk_seconds,
        "outcome": record.outcome.value,
        "target": record.target,
        "cause": record.cause,
        "related": json.dumps(list(record.related)),
        "internal": record.internal,
    }


def record_of(row: Any) -> CallRecord:
    """The :class:`CallRecord` a ``call_journal`` row holds."""
    m = row._mapping
    return CallRecord(
        id=m["id"],
        line=m["line"],
        phone=m["phone"],
        call_id=m["call_id"],
        direction=Direction(m["direction"]),
        remote_number=m["remote_number"],
        remote_name=m["remote_name"],
        started=float(m["started"]),
        answered=float(m["answered"]) if m["answered"] is not None else None,
        ended=float(m["ended"]),
        outcome=Outcome(m["outcome"]),
        target=m["target"],
        cause=m["cause"],
        related=tuple(json.loads(m["related"] or "[]")),
        internal=bool(m["internal"]),
    )


class JournalStore:
    """The call journal in a :class:`Store`'s database (its engine, its ``create_all``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def add(self, records: Iterable[CallRecord]) -> int:
        """Write records in one transaction; an ID already there (or twice in the batch) stays
        one row, the first written. Returns how many rows were new."""
        rows: dict[str, dict[str, Any]] = {}
        for record in records:
            rows.setdefault(record.id, fit(call_journal, _row(record), keep=("id",)))
        if not rows:
            return 0
        dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            if dialect in ("sqlite", "postgresql"):
                insert: Any
                if dialect == "sqlite":
                    from sqlalchemy.dialects.sqlite import insert
                else:
                    from sqlalchemy.dialects.postgresql import insert
                statement = insert(call_journal).on_conflict_do_nothing(index_elements=["id"])
                if self.engine.dialect.insert_executemany_returning:
                    # The IDs of the rows actually inserted (skipped ones return nothing):
                    # an exact count, where an executemany's rowcount is the driver's guess.
                    result = conn.execute(
                        statement.returning(call_journal.c.id), list(rows.values())
                    )
                    return len(result.all())
                result = conn.execute(statement, list(rows.values()))
                return max(0, int(result.rowcount))
            # Any other database: skip the IDs that are there (one node writes a record).
            ids = list(rows)
            existing: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                existing |= {
                    i
                    for (i,) in conn.execute(
                        sa.select(call_journal.c.id).where(call_journal.c.id.in_(chunk))
                    )
                }
            new = [r for i, r in rows.items() if i not in existing]
            if new:
                conn.execute(call_journal.insert(), new)
            return len(new)

    def query(
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
        """Rows newest first, and the cursor of the next (older) page, or None at the end.

        ``line``: that line only; ``lines`` / ``extensions``: rows whose line is one of
        ``lines`` or whose extension is one of ``extensions`` (given but both empty: no rows);
        ``since`` <= started < ``until`` (epoch seconds); ``remote``: a substring of the
        remote number; ``before``: the cursor of the previous page.
        """
        c = call_journal.c
        where: list[sa.ColumnElement[bool]] = []
        if line is not None:
            where.append(c.line == line)
        if lines is not None or extensions is not None:
            alternatives: list[sa.ColumnElement[bool]] = []
            if lines:
                alternatives.append(c.line.in_(list(lines)))
            if extensions:
                alternatives.append(c.extension.in_(list(extensions)))
            where.append(sa.or_(*alternatives) if alternatives else sa.false())
        if outcome is not None:
            where.append(c.outcome == Outcome(outcome).value)
        if direction is not None:
            where.append(c.direction == Direction(direction).value)
        if since is not None:
            where.append(c.started >= since)
        if until is not None:
            where.append(c.started < until)
        if remote:
            where.append(c.remote_number.contains(remote, autoescape=True))
        if before is not None:
            started, record_id = before
            where.append(
                sa.or_(c.started < started, sa.and_(c.started == started, c.id < record_id))
            )
        limit = max(1, min(limit, MAX_LIMIT))
        statement = (
            sa.select(call_journal)
            .where(*where)
            .order_by(c.started.desc(), c.id.desc())
            .limit(limit + 1)
        )
        with self.engine.connect() as conn:
            found = [record_of(r) for r in conn.execute(statement)]
        if len(found) <= limit:
            return found, None
        page = found[:limit]
        return page, (page[-1].started, page[-1].id)

    def purge(self, older_than: float) -> int:
        """Delete the rows of calls that started before ``older_than`` (epoch seconds)."""
        with self.engine.begin() as conn:
            result = conn.execute(call_journal.delete().where(call_journal.c.started < older_than))
            return int(result.rowcount)

    def count(self) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(sa.func.count()).select_from(call_journal)).scalar()
            return int(found or 0)
