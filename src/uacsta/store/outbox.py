"""The webhook endpoints and the durable outbox of their deliveries (SQLAlchemy Core).

One outbox row is one event for one endpoint: its delivery ID (the primary key, sent as
``X-Uacsta-Delivery`` and the payload's ``id``), the JSON body exactly as it is sent, and the
delivery's state. A row is written before any attempt is made and only marked delivered after
the receiver answered 2xx, so a restart or a SIGKILL loses no flushed event (at-least-once).
Times are seconds since the epoch (UTC) as floats: the "due" query compares numbers.

Several senders on one database (nodes sharing PostgreSQL, or processes sharing a SQLite file)
never send a delivery at the same time: a sender takes due rows with :meth:`OutboxStore.claim`,
one ``UPDATE ... RETURNING`` that sets ``claimed_by`` (the sender) and ``lease_until`` (when
another sender may take the row) on pending, due rows nobody holds. On PostgreSQL the rows are
chosen by ``SELECT ... FOR UPDATE SKIP LOCKED``: two senders claiming at once lock disjoint
rows and neither waits, and a row another sender just claimed or marked is seen in its
committed state before it is taken (READ COMMITTED re-checks the condition on the locked row).
SQLite has one writer at a time, so the statement is atomic there as it stands. A mark
(delivered, failed) and :meth:`OutboxStore.release` end the lease; a sender that dies holds its
rows until the lease runs out (or until it starts again under the same sender ID), so a row
is attempted again by another sender only after the lease: keep it longer than an attempt
(:mod:`uacsta.journal.webhooks` uses the HTTP timeout plus a margin) and node clocks in step
(NTP). Delivery stays at-least-once (a receiver dedupes by the delivery ID); the lease makes
two senders posting the same row at once not happen in normal operation.

Plain SQLAlchemy Core, so SQLite and PostgreSQL both work. Calls are synchronous; the asyncio
service (:mod:`uacsta.journal.webhooks`) runs them in a worker thread.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from uacsta.store.db import Store, metadata, utcnow

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "Delivery",
    "Endpoint",
    "OutboxRow",
    "OutboxStore",
    "webhook_endpoints",
    "webhook_outbox",
]

#: Delivery states: waiting for its (next) attempt, answered 2xx, given up.
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    #: The HMAC key of the signatures (shown to administrators only, never logged).
    sa.Column("secret", sa.String(255), nullable=False),
    #: JSON list of event types (``call.missed``...).
    sa.Column("events", sa.Text, nullable=False),
    #: JSON list of lines (device IDs or extensions); NULL: every line.
    sa.Column("lines", sa.Text),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("created", sa.String(32), nullable=False),
    sa.Column("description", sa.String(255), nullable=False, default=""),
)

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    #: The delivery ID (UUID): one per event and endpoint, the same on every retry.
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("endpoint_id", sa.String(16), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    #: The request body, exactly as sent (the signature covers these bytes).
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String(16), nullable=False, default=PENDING),
    #: When the next attempt is due (pending rows); NULL once finished.
    sa.Column("next_attempt_at", sa.Float),
    sa.Column("delivered_at", sa.Float),
    #: HTTP status of the last attempt (NULL: no answer, see last_error).
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.String(255)),
    #: The sender holding the row (its attempt in flight), until ``lease_until``.
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Index("ix_webhook_outbox_due", "state", "next_attempt_at"),
    sa.Index("ix_webhook_outbox_endpoint", "endpoint_id", "created"),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """A configured receiver. ``lines`` None: events of every line."""

    id: str
    url: str
    secret: str
    events: frozenset[str]
    lines: frozenset[str] | None = None
    enabled: bool = True
    created: str = ""
    description: str = ""

    def to_json(self, *, secret: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "events": sorted(self.events),
            "lines": sorted(self.lines) if self.lines is not None else None,
            "enabled": self.enabled,
            "created": self.created,
            "description": self.description,
        }
        if secret:
            out["secret"] = self.secret
        return out

    def __repr__(self) -> str:  # never the secret (logs, tracebacks)
        return f"Endpoint(id={self.id!r}, url={self.url!r}, events={sorted(self.events)!r})"


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxRow:
    """A delivery to write: one event for one endpoint."""

    id: str
    endpoint_id: str
    event_type: str
    body: str
    created: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """A delivery as the outbox holds it."""

    id: str
    endpoint_id: str
    event_type: str
    body: str
    created: float
    attempts: int
    state: str
    next_attempt_at: float | None
    delivered_at: float | None
    last_status: int | None
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "type": self.event_type,
            "created": self.created,
            "attempts": self.attempts,
            "state": self.state,
            "next_attempt_at": self.next_attempt_at,
            "delivered_at": self.delivered_at,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


def _endpoint(row: Any) -> Endpoint:
    m = row._mapping
    lines = json.loads(m["lines"]) if m["lines"] is not None else None
    return Endpoint(
        id=m["id"],
        url=m["url"],
        secret=m["secret"],
        events=frozenset(json.loads(m["events"])),
        lines=frozenset(lines) if lines is not None else None,
        enabled=bool(m["enabled"]),
        created=m["created"],
        description=m["description"] or "",
    )


def _delivery(row: Any) -> Delivery:
    m = row._mapping
    return Delivery(**{name: m[name] for name in Delivery.__slots__})


class OutboxStore:
    """Endpoints and outbox rows in the server's database (synchronous)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    # --- endpoints -----------------------------------------------------------------------
    def add_endpoint(
        self,
        *,
        url: str,
        secret: str,
        events: Iterable[str],
        lines: Iterable[str] | None = None,
        enabled: bool = True,
        description: str = "",
    ) -> Endpoint:
        endpoint_id = secrets.token_hex(6)
        with self.engine.begin() as conn:
            conn.execute(
                webhook_endpoints.insert().values(
                    id=endpoint_id,
                    url=url,
                    secret=secret,
                    events=json.dumps(sorted(set(events))),
                    lines=json.dumps(sorted(set(lines))) if lines is not None else None,
                    enabled=enabled,
                    created=utcnow(),
                    description=description,
                )
            )
        found = self.get_endpoint(endpoint_id)
        assert found is not None
        return found

    def update_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        lines: Iterable[str] | bool | None = False,
        enabled: bool | None = None,
        description: str | None = None,
        secret: str | None = None,
    ) -> Endpoint | None:
        """Change the given fields (``lines=None`` clears the filter; ``False``: unchanged)."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = url
        if events is not None:
            values["events"] = json.dumps(sorted(set(events)))
        if lines is None:
            values["lines"] = None
        elif not isinstance(lines, bool):
            values["lines"] = json.dumps(sorted(set(lines)))
        if enabled is not None:
            values["enabled"] = enabled
        if description is not None:
            values["description"] = description
        if secret is not None:
            values["secret"] = secret
        if values:
            with self.engine.begin() as conn:
                conn.execute(
                    webhook_endpoints.update()
                    .where(webhook_endpoints.c.id == endpoint_id)
                    .values(values)
                )
        return self.get_endpoint(endpoint_id)

    def get_endpoint(self, endpoint_id: str) -> Endpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            ).first()
            return _endpoint(row) if row is not None else None

    def list_endpoints(self) -> list[Endpoint]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(webhook_endpoints).order_by(webhook_endpoints.c.created))
            return [_endpoint(r) for r in rows]

    def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove the endpoint and its deliveries (pending ones are not sent)."""
        with self.engine.begin() as conn:
            conn.execute(webhook_outbox.delete().where(webhook_outbox.c.endpoint_id == endpoint_id))
            deleted = conn.execute(
                webhook_endpoints.delete().where(webhook_endpoints.c.id == endpoint_id)
            )
            return deleted.rowcount > 0

    # --- outbox --------------------------------------------------------------------------
    def enqueue(self, rows: Sequence[OutboxRow]) -> int:
        """Write deliveries in one transaction, each due at once; returns how many were new.

        Rows already there are skipped: a batch whose commit succeeded but reported an error
        is written again by the caller, and must not fail forever on its own primary keys.
        """
        if not rows:
            return 0
        with self.engine.begin() as conn:
            existing = set(
                conn.scalars(
                    sa.select(webhook_outbox.c.id).where(
                        webhook_outbox.c.id.in_([r.id for r in rows])
                    )
                )
            )
            rows = [r for r in rows if r.id not in existing]
            if not rows:
                return 0
            conn.execute(
                webhook_outbox.insert(),
                [
                    {
                        "id": r.id,
                        "endpoint_id": r.endpoint_id,
                        "event_type": r.event_type,
                        "body": r.body,
                        "created": r.created,
                        "attempts": 0,
                        "state": PENDING,
                        "next_attempt_at": r.created,
                    }
                    for r in rows
                ],
            )
        return len(rows)

    def claim(
        self,
        now: float,
        limit: int,
        *,
        worker: str,
        lease: float,
        exclude: Iterable[str] = (),
        skip_endpoints: Iterable[str] = (),
    ) -> list[Delivery]:
        """Take up to ``limit`` pending, due deliveries no other worker holds (the longest
        waiting first) for ``worker`` until ``now + lease``; returns them. ``exclude``: delivery IDs
        not to take (the caller's own attempts in flight); ``skip_endpoints``: endpoints whose
        deliveries not to take (the caller has no room for them)."""
        o = webhook_outbox.c
        # Nobody holds it, the lease ran out, or it is the worker's own (it started again
        # after dying mid-attempt; its attempts in flight are in ``exclude``).
        free = sa.or_(o.lease_until.is_(None), o.lease_until <= now, o.claimed_by == worker)
        chosen = (
            sa.select(o.id)
            .where(
                o.state == PENDING,
                o.next_attempt_at <= now,
                free,
            )
            .order_by(o.next_attempt_at, o.created)
            .limit(max(1, limit))
        )
        skip = list(exclude)
        if skip:
            chosen = chosen.where(o.id.not_in(skip))
        endpoints = list(skip_endpoints)
        if endpoints:
            chosen = chosen.where(o.endpoint_id.not_in(endpoints))
        if self.engine.dialect.name == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
        held = {"claimed_by": worker, "lease_until": now + lease}
        with self.engine.begin() as conn:
            if self.engine.dialect.update_returning:
                statement = (
                    webhook_outbox.update()
                    .where(o.id.in_(chosen.scalar_subquery()))
                    .values(held)
                    .returning(*webhook_outbox.c)
                )
                taken = [_delivery(r) for r in conn.execute(statement)]
            else:  # no UPDATE ... RETURNING: one conditional update per row, kept if it won
                taken = []
                for row in conn.execute(sa.select(webhook_outbox).where(o.id.in_(chosen))).all():
                    won = conn.execute(
                        webhook_outbox.update()
                        .where(
                            o.id == row.id,
                            o.state == PENDING,
                            free,
                        )
                        .values(held)
                    )
                    if won.rowcount == 1:
                        taken.append(_delivery(row))
        return sorted(taken, key=lambda d: (d.next_attempt_at or 0.0, d.created))

    def release(self, delivery_ids: Iterable[str], *, worker: str) -> int:
        """End ``worker``'s leases on these deliveries (claimed, not attempted): any sender
        may take them at once."""
        ids = list(delivery_ids)
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id.in_(ids), webhook_outbox.c.claimed_by == worker)
                .values(claimed_by=None, lease_until=None)
            ).rowcount

    def release_all(self, *, worker: str) -> int:
        """End every lease ``worker`` holds on a pending delivery (it stops)."""
        with self.engine.begin() as conn:
            return conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.claimed_by == worker, webhook_outbox.c.state == PENDING)
                .values(claimed_by=None, lease_until=None)
            ).rowcount

    def due(self, now: float, limit: int, *, exclude: Iterable[str] = ()) -> list[Delivery]:
        """Pending deliveries whose attempt is due, the longest waiting first (held or not;
        a sender takes rows with :meth:`claim`)."""
        query = (
            sa.select(webhook_outbox)
            .where(webhook_outbox.c.state == PENDING, webhook_outbox.c.next_attempt_at <= now)
            .order_by(webhook_outbox.c.next_attempt_at, webhook_outbox.c.created)
            .limit(limit)
        )
        skip = list(exclude)
        if skip:
            query = query.where(webhook_outbox.c.id.not_in(skip))
        with self.engine.connect() as conn:
            return [_delivery(r) for r in conn.execute(query)]

    def next_due(self, *, exclude: Iterable[str] = ()) -> float | None:
        """When the earliest pending delivery is due, or its lease ends if a sender holds it
        longer (None: nothing pending)."""
        o = webhook_outbox.c
        when = sa.case(
            (
                sa.and_(o.lease_until.is_not(None), o.lease_until > o.next_attempt_at),
                o.lease_until,
            ),
            else_=o.next_attempt_at,
        )
        query = sa.select(sa.func.min(when)).where(webhook_outbox.c.state == PENDING)
        skip = list(exclude)
        if skip:
            query = query.where(webhook_outbox.c.id.not_in(skip))
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
            return float(value) if value is not None else None

    def mark_delivered(self, delivery_id: str, *, at: float, status: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id == delivery_id)
                .values(
                    state=DELIVERED,
                    attempts=webhook_outbox.c.attempts + 1,
                    delivered_at=at,
                    next_attempt_at=None,
                    last_status=status,
                    last_error=None,
                    claimed_by=None,
                    lease_until=None,
                )
            )

    def mark_failed(
        self,
        delivery_id: str,
        *,
        next_attempt_at: float | None,
        status: int | None,
        error: str,
    ) -> None:
        """An attempt failed: retry at ``next_attempt_at``, or give up (None: state failed)."""
        with self.engine.begin() as conn:
            conn.execute(
                webhook_outbox.update()
                .where(webhook_outbox.c.id == delivery_id)
                .values(
                    state=PENDING if next_attempt_at is not None else FAILED,
                    attempts=webhook_outbox.c.attempts + 1,
                    next_attempt_at=next_attempt_at,
                    last_status=status,
                    last_error=error[:255],
                    claimed_by=None,
                    lease_until=None,
                )
            )

    def get(self, delivery_id: str) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(webhook_outbox).where(webhook_outbox.c.id == delivery_id)
            ).first()
            return _delivery(row) if row is not None else None

    def recent(self, endpoint_id: str, limit: int = 50) -> list[Delivery]:
        """The endpoint's latest deliveries, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(webhook_outbox)
                .where(webhook_outbox.c.endpoint_id == endpoint_id)
                .order_by(webhook_outbox.c.created.desc(), webhook_outbox.c.id)
                .limit(limit)
            )
            return [_delivery(r) for r in rows]

    def counts(self, endpoint_id: str | None = None) -> dict[str, int]:
        """Deliveries per state (pending, delivered, failed), of one endpoint or all."""
        query = sa.select(webhook_outbox.c.state, sa.func.count()).group_by(webhook_outbox.c.state)
        if endpoint_id is not None:
            query = query.where(webhook_outbox.c.endpoint_id == endpoint_id)
        out = {PENDING: 0, DELIVERED: 0, FAILED: 0}
        with self.engine.connect() as conn:
            for state, count in conn.execute(query):
                out[state] = int(count)
        return out

    def purge(self, older_than: float) -> int:
        """Delete finished deliveries (delivered or given up) created before ``older_than``."""
        with self.engine.begin() as conn:
            return conn.execute(
                webhook_outbox.delete().where(
                    webhook_outbox.c.state != PENDING, webhook_outbox.c.created < older_than
                )
            ).rowcount
