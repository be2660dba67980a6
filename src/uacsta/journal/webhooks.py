"""Webhook delivery: payloads, signatures, back-off and the asyncio service (docs/webhooks.md).

The event path never waits: :meth:`WebhookService.publish` matches the notice against the
endpoints (held in memory) and appends one row per matching endpoint to a bounded in-memory
queue. A writer task flushes that queue to the durable outbox (:mod:`uacsta.store.outbox`)
in batches, in a worker thread, at most every :data:`FLUSH_INTERVAL` seconds; a sender task
takes due rows from the outbox and POSTs them. A row is marked delivered only after a 2xx
answer, so delivery is at-least-once: a receiver dedupes by the delivery ID (``id`` in the
body, ``X-Uacsta-Delivery`` in the headers), which stays the same on every retry.

Several nodes on one database each run this service: the sender claims the rows it attempts
(:meth:`uacsta.store.outbox.OutboxStore.claim`, a lease of the HTTP timeout plus
:data:`LEASE_MARGIN`), so each delivery is attempted by one node at a time; whichever node is
up sends what the others queued. Each node's sender has its own ID (:func:`sender_id`: the
host and the data directory), stable across restarts, so a node killed mid-attempt takes its
rows back at once when it starts again instead of waiting for the lease to run out.

Signature (like Stripe's and Standard Webhooks'): ``X-Uacsta-Signature: v1=<hex>`` where hex is
HMAC-SHA256 keyed with the endpoint's secret (its UTF-8 bytes) over
``f"{timestamp}.".encode() + body``, ``timestamp`` being ``X-Uacsta-Timestamp`` (Unix seconds
of this attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from uacsta import __version__
from uacsta.config import WebhookSettings
from uacsta.ratelog import RateLimitedLog
from uacsta.store.outbox import Delivery, Endpoint, OutboxRow, OutboxStore
from uacsta.switch.callrecord import CallNotice, NoticeType
from uacsta.switch.devices import extension_of

__all__ = [
    "EVENT_TYPES",
    "FLUSH_INTERVAL",
    "SIGNATURE_VERSION",
    "TEST_EVENT",
    "WebhookError",
    "WebhookService",
    "backoff_delay",
    "build_payload",
    "endpoint_matches",
    "new_secret",
    "sender_id",
    "sign",
    "signature_headers",
    "url_for_log",
    "validate_events",
    "validate_url",
]

log = logging.getLogger("uacsta.journal.webhooks")

#: The event types an endpoint may subscribe to (``NoticeType`` values).
EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in NoticeType)
#: The event the admin's "Send test" button and ``POST .../test`` send (to one endpoint).
TEST_EVENT = "webhook.test"
SIGNATURE_VERSION = "v1"
#: The writer flushes the in-memory queue to the outbox at most this often (seconds).
FLUSH_INTERVAL = 0.2
#: Due rows taken from the outbox per query.
DUE_BATCH = 200
#: The sender looks at the outbox at least this often (seconds), even without a wake-up.
IDLE_POLL = 5.0
#: Finished rows are purged this often (seconds).
PURGE_INTERVAL = 3600.0
MAX_URL = 2048
#: A claimed delivery is held this long beyond the HTTP timeout (the marks after the answer,
#: a busy database) before another sender may take it.
LEASE_MARGIN = 30.0


def sender_id(data_dir: str | None = None) -> str:
    """This node's sender ID in the outbox (``claimed_by``): the host name, and a digest of
    the data directory (two nodes on one host have two directories), at most 64 characters."""
    host = socket.gethostname()[:48] or "uacsta"
    if data_dir is None:
        return host
    return f"{host}:{hashlib.sha256(data_dir.encode()).hexdigest()[:12]}"


class WebhookError(ValueError):
    """Invalid endpoint configuration (bad URL, unknown event type)."""


# --- pure parts: URL, secrets, payload, signature, back-off, matching ------------------------


def validate_url(url: str) -> str:
    """An endpoint URL: http or https with a host.

    Only administrators configure endpoints, so the server POSTing to an internal address is
    their choice, not a stranger's (no SSRF filter beyond the scheme); redirects are never
    followed, so a receiver cannot send the request elsewhere.
    """
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise WebhookError(f"the URL must have 1 to {MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise WebhookError("the URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise WebhookError(f"the URL is invalid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError("the URL must start with http:// or https://")
    if not hostname:
        raise WebhookError("the URL must name a host")
    if parts.username is not None or parts.password is not None:
        raise WebhookError("the URL must not carry credentials (sign with the secret instead)")
    try:
        _ = parts.port
    except ValueError as exc:
        raise WebhookError(f"the URL's port is invalid: {exc}") from None
    return url


def url_for_log(url: str) -> str:
    """Scheme and host of an endpoint URL: its path or query may carry a receiver's token."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}/..."
    except ValueError:
        return "<invalid URL>"


def validate_events(events: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(e.strip() for e in events if e.strip())
    unknown = sorted(chosen - set(EVENT_TYPES))
    if unknown:
        raise WebhookError(f"unknown event types {', '.join(unknown)}; known: {EVENT_TYPES}")
    if not chosen:
        raise WebhookError("choose at least one event type")
    return chosen


def new_secret() -> str:
    """A signing secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``v1=`` + hex HMAC-SHA256(secret, ``"{timestamp}."`` + body)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


def signature_headers(
    *, secret: str, delivery_id: str, event_type: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """Every header of one delivery attempt."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"uacsta/{__version__}",
        "X-Uacsta-Event": event_type,
        "X-Uacsta-Delivery": delivery_id,
        "X-Uacsta-Timestamp": str(timestamp),
        "X-Uacsta-Signature": sign(secret, timestamp, body),
    }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def build_payload(
    *, delivery_id: str, event_id: str, event_type: str, created: float, data: Mapping[str, Any]
) -> str:
    """The JSON body: ``id`` (delivery ID: dedupe by it), ``event_id`` (the same for every
    endpoint's copy of one event), ``type``, ``created`` (ISO 8601 UTC), ``data``."""
    payload = {
        "id": delivery_id,
        "event_id": event_id,
        "type": event_type,
        "created": _iso(created),
        "data": dict(data),
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def backoff_delay(
    attempts: int, *, initial: float, maximum: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (1, 2, ...):
    ``initial * 2**(attempts-1)`` capped at ``maximum``, times a jitter factor in [0.8, 1.2)
    (so receivers coming back are not hit by every server at once)."""
    base = min(maximum, initial * 2.0 ** min(max(attempts, 1) - 1, 40))
    return base * (0.8 + 0.4 * rand())


def endpoint_matches(endpoint: Endpoint, notice: CallNotice) -> bool:
    """Enabled, subscribed to the type, and (with a line filter) about one of its lines.

    A line filter names device IDs (``sip:100@pbx``) or extensions (``100``); a notice without
    a line (none of today's call events) does not pass a line filter.
    """
    if not endpoint.enabled or notice.type.value not in endpoint.events:
        return False
    if endpoint.lines is None:
        return True
    if notice.line is None:
        return False
    return notice.line in endpoint.lines or extension_of(notice.line) in endpoint.lines


# --- the service -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Stats:
    queued: int = 0
    written: int = 0
    dropped: int = 0
    delivered: int = 0
    attempts_failed: int = 0
    given_up: int = 0


class WebhookService:
    """Publishes notices to the endpoints' outbox and delivers it (the asyncio adapter)."""

    def __init__(
        self,
        outbox: OutboxStore,
        settings: WebhookSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
        sender: str | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = settings or WebhookSettings()
        #: Who holds the rows this service attempts (:func:`sender_id`); services sharing a
        #: database need different ones.
        self.sender = sender or sender_id()
        self._clock = clock
        self._transport = transport
        self._endpoints: dict[str, Endpoint] = {}
        self._queue: deque[OutboxRow] = deque()
        self._queued = asyncio.Event()
        self._wake = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._per_endpoint: dict[str, int] = {}
        self._client: httpx.AsyncClient | None = None
        self._rlog = RateLimitedLog(log)
        self._last_purge = 0.0
        self.stats = _Stats()

    # --- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the endpoints and start delivering; undelivered rows of earlier runs are
        found by the sender's first look at the outbox (restart durability)."""
        await self.reload()
        self._client = httpx.AsyncClient(
            timeout=self.settings.timeout,
            follow_redirects=False,
            transport=self._transport,
            limits=httpx.Limits(
                max_connections=self.settings.max_concurrency,
                max_keepalive_connections=self.settings.max_concurrency,
            ),
            trust_env=False,  # no proxy or netrc from the environment: admins set the URL
        )
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop(), name="webhooks-writer")
        self._sender = loop.create_task(self._send_loop(), name="webhooks-sender")
        pending = (await asyncio.to_thread(self.outbox.counts))["pending"]
        log.info("webhooks: %d endpoint(s), %d pending deliveries", len(self._endpoints), pending)

    async def stop(self) -> None:
        """Flush the in-memory queue to the outbox, then stop sending. Attempts in flight are
        abandoned; their rows stay pending and are sent again (same ID) after a restart."""
        self._closing = True
        self._queued.set()
        self._wake.set()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for task in list(self._inflight.values()):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)
        # What this node held (attempts cut off, a claim the cancelled sender never started):
        # another node may take it at once.
        try:
            await asyncio.to_thread(self.outbox.release_all, worker=self.sender)
        except Exception as exc:  # the leases run out instead
            log.warning("webhooks: could not release the deliveries held: %s", exc)
        if self._writer is not None:
            await self._writer  # returns once the queue is written (or cannot be)
        if self._client is not None:
            await self._client.aclose()
        if self._queue:  # the database refused the last flush
            log.error("webhooks: %d event(s) could not be written and are lost", len(self._queue))

    async def reload(self) -> None:
        """Read the endpoints again (after the admin or the API changed them)."""
        endpoints = await asyncio.to_thread(self.outbox.list_endpoints)
        self._endpoints = {e.id: e for e in endpoints}

    # --- the event path (synchronous, never blocks) ----------------------------------------
    def publish(self, notice: CallNotice) -> int:
        """Queue ``notice`` for every matching endpoint; returns how many deliveries."""
        matching = [e for e in self._endpoints.values() if endpoint_matches(e, notice)]
        if not matching:
            return 0
        created = self._clock()
        event_id = str(uuid.uuid4())
        data = notice.to_json()
        for endpoint in matching:
            self._append(endpoint.id, notice.type.value, event_id, created, data)
        return len(matching)

    def send_test(self, endpoint_id: str) -> str:
        """Queue a ``webhook.test`` event for one endpoint (enabled or not); returns its
        delivery ID. KeyError: no such endpoint."""
        endpoint = self._endpoints[endpoint_id]
        created = self._clock()
        data = {
            "endpoint": endpoint.id,
            "message": "Test event from uacsta: the signature and your endpoint work.",
        }
        return self._append(endpoint.id, TEST_EVENT, str(uuid.uuid4()), created, data)

    def _append(
        self, endpoint_id: str, event_type: str, event_id: str, created: float, data: Any
    ) -> str:
        delivery_id = str(uuid.uuid4())
        body = build_payload(
            delivery_id=delivery_id,
            event_id=event_id,
            event_type=event_type,
            created=created,
            data=data,
        )
        self._queue.append(
            OutboxRow(
                id=delivery_id,
                endpoint_id=endpoint_id,
                event_type=event_type,
                body=body,
                created=created,
            )
        )
        self.stats.queued += 1
        self._trim()
        self._queued.set()
        return delivery_id

    def _trim(self) -> None:
        """Bound the in-memory queue (the database is down or slow): drop the oldest."""
        over = len(self._queue) - self.settings.queue_size
        if over <= 0:
            return
        for _ in range(over):
            self._queue.popleft()
        self.stats.dropped += over
        self._rlog.error(
            "queue-full",
            "webhooks: in-memory queue full (%d), the database is not keeping up: "
            "%d event(s) dropped so far",
            self.settings.queue_size,
            self.stats.dropped,
        )

    # --- writer: queue -> outbox -------------------------------------------------------------
    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._queued.wait()
                self._queued.clear()
                continue
            batch = list(self._queue)
            self._queue.clear()
            started = loop.time()
            try:
                await asyncio.to_thread(self.outbox.enqueue, batch)
            except Exception as exc:
                # Back to the front of the queue, in order; the bound still holds.
                self._queue.extendleft(reversed(batch))
                self._trim()
                self._rlog.error("write-failed", "webhooks: outbox write failed: %s", exc)
                if self._closing:
                    return
                await asyncio.sleep(1.0)
                continue
            self.stats.written += len(batch)
            self._wake.set()
            if not self._closing:
                await asyncio.sleep(max(0.0, FLUSH_INTERVAL - (loop.time() - started)))

    # --- sender: outbox -> receivers -----------------------------------------------------------
    async def _send_loop(self) -> None:
        # The loop ends on cancellation and, should a cancellation be lost (asyncio.wait_for
        # before Python 3.12 can swallow one that races with its timeout), on ``_closing``.
        while not self._closing:
            # Cleared before the look, so a wake-up during it (rows written, an attempt
            # finished) makes the wait below return at once.
            self._wake.clear()
            try:
                delay = await self._send_due()
            except Exception as exc:
                self._rlog.error("send-loop", "webhooks: outbox read failed: %s", exc)
                delay = 1.0
            waiter = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=delay)
            finally:
                waiter.cancel()

    async def _send_due(self) -> float:
        """Start the due deliveries there is room for; returns how long to wait at most."""
        now = self._clock()
        if now - self._last_purge >= PURGE_INTERVAL:
            self._last_purge = now
            purged = await asyncio.to_thread(
                self.outbox.purge, now - self.settings.keep_days * 86400.0
            )
            if purged:
                log.info("webhooks: %d finished deliveries purged", purged)
        s = self.settings
        room = s.max_concurrency - len(self._inflight)
        if room <= 0:
            return IDLE_POLL  # a finishing attempt wakes us
        limit = min(room, DUE_BATCH)
        full = [e for e, n in self._per_endpoint.items() if n >= s.max_per_endpoint]
        inflight = list(self._inflight)  # taken here: the worker thread must not iterate it
        rows = await asyncio.to_thread(
            lambda: self.outbox.claim(
                now,
                limit,
                worker=self.sender,
                lease=s.timeout + LEASE_MARGIN,
                exclude=inflight,
                skip_endpoints=full,
            )
        )
        unstarted: list[str] = []  # claimed, no room after all: back to every sender
        for row in rows:
            if row.id in self._inflight:  # its lease ran out while in flight: still ours
                continue
            if (
                self._closing
                or len(self._inflight) >= s.max_concurrency
                or self._per_endpoint.get(row.endpoint_id, 0) >= s.max_per_endpoint
            ):
                unstarted.append(row.id)
                continue
            self._start_attempt(row)
        if unstarted:
            await asyncio.to_thread(self.outbox.release, unstarted, worker=self.sender)
            return IDLE_POLL  # a finishing attempt wakes us
        if len(rows) == limit:
            return 0.05
        next_due = await asyncio.to_thread(self.outbox.next_due, exclude=list(self._inflight))
        if next_due is None:
            return IDLE_POLL
        return min(IDLE_POLL, max(0.01, next_due - self._clock()))

    def _start_attempt(self, row: Delivery) -> None:
        self._per_endpoint[row.endpoint_id] = self._per_endpoint.get(row.endpoint_id, 0) + 1
        task = asyncio.get_running_loop().create_task(self._attempt(row))
        self._inflight[row.id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._inflight.pop(row.id, None)
            left = self._per_endpoint.get(row.endpoint_id, 1) - 1
            if left > 0:
                self._per_endpoint[row.endpoint_id] = left
            else:
                self._per_endpoint.pop(row.endpoint_id, None)
            self._wake.set()

        task.add_done_callback(done)

    async def _attempt(self, row: Delivery) -> None:
        try:
            await self._attempt_once(row)
        except Exception as exc:  # the database failed: the row stays due, tried again
            self._rlog.error("attempt-error", "webhooks: delivery %s: %s", row.id, exc)

    async def _attempt_once(self, row: Delivery) -> None:
        endpoint = self._endpoints.get(row.endpoint_id)
        if endpoint is None:  # deleted meanwhile (its rows went with it) or not yet reloaded
            await self.reload()
            endpoint = self._endpoints.get(row.endpoint_id)
            if endpoint is None:
                return
        status, error = await self._post(endpoint, row)
        now = self._clock()
        if status is not None and 200 <= status < 300:
            await asyncio.to_thread(self.outbox.mark_delivered, row.id, at=now, status=status)
            self.stats.delivered += 1
            return
        attempts = row.attempts + 1
        s = self.settings
        retry_at = now + backoff_delay(attempts, initial=s.retry_initial, maximum=s.retry_max)
        if retry_at > row.created + s.give_up_after:
            await asyncio.to_thread(
                self.outbox.mark_failed, row.id, next_attempt_at=None, status=status, error=error
            )
            self.stats.given_up += 1
            log.warning(
                "webhooks: delivery %s (%s) to endpoint %s given up after %d attempts: %s",
                row.id,
                row.event_type,
                endpoint.id,
                attempts,
                error,
            )
            return
        await asyncio.to_thread(
            self.outbox.mark_failed, row.id, next_attempt_at=retry_at, status=status, error=error
        )
        self.stats.attempts_failed += 1
        self._rlog.info(
            ("attempt-failed", endpoint.id),
            "webhooks: delivery %s to endpoint %s failed (%s), attempt %d, next in %.0f s",
            row.id,
            endpoint.id,
            error,
            attempts,
            retry_at - now,
        )

    async def _post(self, endpoint: Endpoint, row: Delivery) -> tuple[int | None, str]:
        """One attempt: the status (None: no answer) and what went wrong, if anything."""
        assert self._client is not None
        body = row.body.encode()
        headers = signature_headers(
            secret=endpoint.secret,
            delivery_id=row.id,
            event_type=row.event_type,
            body=body,
            timestamp=int(self._clock()),
        )
        try:
            response = await self._client.post(
                endpoint.url, content=body, headers=headers, timeout=self.settings.timeout
            )
        except httpx.TimeoutException:
            return None, f"no answer within {self.settings.timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        status = response.status_code
        if 200 <= status < 300:
            return status, ""
        if 300 <= status < 400:
            return status, f"HTTP {status} redirect not followed"
        return status, f"HTTP {status} {response.reason_phrase}".strip()

    # --- what the admin and the API use --------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        return sorted(self._endpoints.values(), key=lambda e: (e.created, e.id))

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    async def add_endpoint(
        self,
        *,
        url: str,
        events: Iterable[str],
        lines: Iterable[str] | None = None,
        secret: str | None = None,
        description: str = "",
        enabled: bool = True,
    ) -> Endpoint:
        """Validate and store a new endpoint (a secret is generated unless given)."""
        url = validate_url(url)
        chosen = validate_events(events)
        secret = (secret or "").strip() or new_secret()
        if len(secret) < 16 or len(secret) > 255:
            raise WebhookError("the secret must have 16 to 255 characters")
        line_set = _lines(lines)
        endpoint = await asyncio.to_thread(
            lambda: self.outbox.add_endpoint(
                url=url,
                secret=secret,
                events=chosen,
                lines=line_set,
                enabled=enabled,
                description=description.strip()[:255],
            )
        )
        await self.reload()
        return endpoint

    async def update_endpoint(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        lines: Iterable[str] | bool | None = False,
        enabled: bool | None = None,
        description: str | None = None,
    ) -> Endpoint | None:
        if url is not None:
            url = validate_url(url)
        chosen = validate_events(events) if events is not None else None
        line_arg: Iterable[str] | bool | None = lines if isinstance(lines, bool) else _lines(lines)
        endpoint = await asyncio.to_thread(
            lambda: self.outbox.update_endpoint(
                endpoint_id,
                url=url,
                events=chosen,
                lines=line_arg,
                enabled=enabled,
                description=description.strip()[:255] if description is not None else None,
            )
        )
        await self.reload()
        return endpoint

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove the endpoint and its deliveries (an attempt in flight may still finish)."""
        deleted = await asyncio.to_thread(self.outbox.delete_endpoint, endpoint_id)
        await self.reload()
        return deleted

    async def recent(self, endpoint_id: str, limit: int = 50) -> list[Delivery]:
        return await asyncio.to_thread(self.outbox.recent, endpoint_id, limit)

    async def counts(self, endpoint_id: str | None = None) -> dict[str, int]:
        return await asyncio.to_thread(self.outbox.counts, endpoint_id)


def _lines(lines: Iterable[str] | None) -> frozenset[str] | None:
    if lines is None:
        return None
    chosen = frozenset(line.strip() for line in lines if line.strip())
    if any(len(line) > 255 for line in chosen):
        raise WebhookError("a line must have at most 255 characters")
    return chosen or None
