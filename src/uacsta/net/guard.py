"""Admission of every inbound TCP/TLS connection, counted at accept and before TLS.

One mechanism for every listener (phones, TR/87 and CSTA clients, the web): a listening
socket is served by :class:`AcceptLoop` instead of ``loop.create_server``. Each accepted
socket is checked against its :class:`ConnectionGate` (connections of the listener kind in
total and from one source address) *before* any TLS handshake or protocol object exists;
a refused socket is closed at once and logged through a rate-limited logger. An admitted
one is counted until its socket closes, whatever protocol then owns it (a WebSocket upgrade
swaps the protocol, so the count follows the socket, not the protocol).

Time limits: the TLS handshake and the first bytes from the peer must arrive within the
gate's ``handshake_timeout`` (an idle or ClientHello-less connection is closed), and a
connection that receives nothing for ``idle_timeout`` is closed (per kind; ``None`` leaves
it to the protocol, e.g. SIP's own idle timer or HTTP keep-alive).

File descriptors: :func:`raise_open_files_limit` raises the soft ``RLIMIT_NOFILE`` to the
hard one at start-up (what nginx's ``worker_rlimit_nofile`` and Go's runtime do), and
:func:`plan_budget` keeps the sum of the kinds' totals below that limit minus a reserve,
so a flood of one listener cannot take the descriptors the others (and the database, log
files and outgoing connections) need. Default totals are scaled down silently
(:func:`budget_warning` speaks only of a total the operator set and cannot have).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, cast

from uacsta.ratelog import RateLimitedLog

__all__ = [
    "AcceptLoop",
    "ConnectionGate",
    "GateLimits",
    "budget_warning",
    "open_files_limit",
    "plan_budget",
    "raise_open_files_limit",
]

log = logging.getLogger("uacsta.net.guard")
#: Refusals and timeouts are triggered by strangers: a few lines per kind and address.
refusal_log = RateLimitedLog(log)

#: Accepts per wake-up of a listener (then the loop serves everyone else).
ACCEPT_BATCH = 64
#: After EMFILE/ENFILE the listener rests this long before accepting again (seconds).
ACCEPT_PAUSE = 0.1


@dataclass(slots=True, kw_only=True)
class GateLimits:
    """Bounds of one listener kind. ``None`` idle timeout: the protocol's own applies."""

    max_connections: int
    max_connections_per_address: int
    handshake_timeout: float = 10.0
    idle_timeout: float | None = None


class ConnectionGate:
    """Counts the open inbound connections of one listener kind, in total and per address."""

    def __init__(self, kind: str, limits: GateLimits) -> None:
        self.kind = kind
        self.limits = limits
        self.open = 0
        self.per_address: Counter[str] = Counter()
        #: Since start: refused at accept, closed for a handshake or idle timeout.
        self.refused = 0
        self.timed_out = 0

    def admit(self, host: str) -> str | None:
        """Count a new connection from ``host``; the reason when it is refused."""
        limits = self.limits
        if self.open >= limits.max_connections:
            reason = f"{self.open} {self.kind} connections open (limit)"
        elif self.per_address[host] >= limits.max_connections_per_address:
            reason = f"{self.per_address[host]} {self.kind} connections from {host} (limit)"
        else:
            self.open += 1
            self.per_address[host] += 1
            return None
        self.refused += 1
        return reason

    def release(self, host: str) -> None:
        self.open -= 1
        left = self.per_address[host] - 1
        if left > 0:
            self.per_address[host] = left
        else:
            del self.per_address[host]

    def timeout(self, host: str, what: str) -> None:
        self.timed_out += 1
        refusal_log.info(
            ("timeout", self.kind, host),
            "closing a %s connection from %s: %s",
            self.kind,
            host,
            what,
        )


class _CountedSocket(socket.socket):
    """An accepted socket that gives its gate slot back when it is closed or detached.

    asyncio's transports close the socket; uvloop's detach it (libuv closes the descriptor).
    """

    _release: Callable[[], None] | None = None

    def _give_back(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def close(self) -> None:
        self._give_back()
        super().close()

    def detach(self) -> int:
        self._give_back()
        return super().detach()


class _Watch(asyncio.Protocol):
    """Wraps the listener's protocol: first-bytes deadline and idle timeout, then delegates.

    When the protocol is replaced on the transport (a WebSocket upgrade), the new owner
    keeps its own liveness checks and this watch stops timing.
    """

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate, host: str, deadline: float):
        self.inner = inner
        self._gate = gate
        self._host = host
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._seen = False
        self._last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        # A TLS handshake that took nearly the whole time still leaves a moment to speak.
        grace = self._loop.time() + min(1.0, self._gate.limits.handshake_timeout)
        self._timer = self._loop.call_at(max(self._deadline, grace), self._check)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._seen = True
        self._last = self._loop.time()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _check(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing() or transport.get_protocol() is not self:
            return
        now = self._loop.time()
        if not self._seen:
            self._gate.timeout(self._host, "nothing received within the handshake timeout")
            transport.abort()
            return
        idle = self._gate.limits.idle_timeout
        if idle is None:
            return
        quiet = now - self._last
        if quiet >= idle:
            self._gate.timeout(self._host, f"idle for {quiet:.0f} s")
            transport.abort()
            return
        self._timer = self._loop.call_at(self._last + idle, self._check)


class AcceptLoop:
    """Accepts on a bound, listening socket and admits through a :class:`ConnectionGate`.

    Offers what callers used of :class:`asyncio.Server`: ``sockets``, :meth:`close`,
    :meth:`wait_closed`, :meth:`is_serving`.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        gate: ConnectionGate,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._factory = protocol_factory
        self.gate = gate
        self._ssl = ssl_context
        self._serving = False
        self._resume: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._closed = self._loop.create_future()
        sock.setblocking(False)
        self._start()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed.done() else (self._sock,)

    def is_serving(self) -> bool:
        return self._serving

    def _start(self) -> None:
        self._resume = None
        if not self._closed.done():
            self._loop.add_reader(self._sock.fileno(), self._accept_many)
            self._serving = True

    def _stop(self) -> None:
        if self._serving:
            self._loop.remove_reader(self._sock.fileno())
            self._serving = False

    def _accept_many(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                fd, address = self._sock._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    refusal_log.error(
                        ("accept", self.gate.kind),
                        "cannot accept %s connections: %s (open files limit reached; "
                        "lower the connection limits or raise the limit)",
                        self.gate.kind,
                        exc,
                    )
                    self._stop()
                    self._resume = self._loop.call_later(ACCEPT_PAUSE, self._start)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue
                raise
            self._admit(fd, address)

    def _admit(self, fd: int, address: Any) -> None:
        host = str(address[0]) if isinstance(address, tuple) else "?"
        listen = self._sock
        conn = _CountedSocket(listen.family, listen.type, listen.proto, fileno=fd)
        reason = self.gate.admit(host)
        if reason is not None:
            refusal_log.warning(
                ("refused", self.gate.kind, host),
                "refusing a %s connection from %s: %s",
                self.gate.kind,
                host,
                reason,
            )
            conn.close()
            return
        gate = self.gate
        conn._release = lambda: gate.release(host)
        conn.setblocking(False)
        if listen.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = self._loop.time() + gate.limits.handshake_timeout
        factory = self._factory

        def watched() -> asyncio.Protocol:
            return _Watch(factory(), gate, host, deadline)

        task = self._loop.create_task(self._connect(conn, watched, host))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _connect(
        self, conn: _CountedSocket, factory: Callable[[], asyncio.Protocol], host: str
    ) -> None:
        # On failure the loop closes the transport and with it the socket (slot given back);
        # closing it here as well could close a descriptor number already reused.
        try:
            await self._loop.connect_accepted_socket(
                factory,
                conn,
                ssl=self._ssl,
                ssl_handshake_timeout=self.gate.limits.handshake_timeout if self._ssl else None,
            )
        except (TimeoutError, ConnectionAbortedError):
            # Both loops abort a handshake that outlives ssl_handshake_timeout this way.
            self.gate.timeout(host, "no TLS handshake within the handshake timeout")
        except (OSError, ssl.SSLError, EOFError) as exc:
            log.debug(
                "%s connection from %s failed before it was up: %s", self.gate.kind, host, exc
            )

    def close(self) -> None:
        """Stop accepting and close the listening socket; open connections stay."""
        if self._closed.done():
            return
        self._stop()
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        for task in self._pending:
            task.cancel()
        self._sock.close()
        self._closed.set_result(None)

    async def wait_closed(self) -> None:
        await self._closed
        if self._pending:
            await asyncio.wait(list(self._pending))


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A bound, listening TCP socket (``SO_REUSEADDR``; IPv6 only for IPv6 hosts)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


# --- file descriptors --------------------------------------------------------------------


def open_files_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` (descriptors this process may hold)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one; ``(before, after)``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= soft:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # pragma: no cover - kernel refused
        log.warning("cannot raise the open files limit from %d to %d: %s", soft, hard, exc)
        return soft, soft
    return soft, hard


def plan_budget(wanted: Mapping[str, int], reserve: int, limit: int) -> dict[str, int]:
    """Each kind's connection total, scaled down together so they fit in ``limit - reserve``.

    The reserve keeps descriptors for what is not an inbound connection (listeners, the
    database, log files, connections the server opens). Each kind keeps at least one.
    """
    available = max(len(wanted), limit - reserve)
    total = sum(wanted.values())
    if total <= available:
        return dict(wanted)
    scale = available / total
    return {kind: max(1, int(count * scale)) for kind, count in wanted.items()}


def budget_warning(
    wanted: Mapping[str, int], budget: Mapping[str, int], operator_set: Collection[str]
) -> str | None:
    """What to warn about when ``budget`` (from :func:`plan_budget`) cuts a total the operator
    set (``operator_set``: kinds whose setting differs from its default), else ``None``.

    The defaults ask for more connections than a usual hard ``RLIMIT_NOFILE`` allows (here
    20000, 4096 on older systems): scaling *them* down is expected and silent, so a start with
    default settings never warns; a value the operator chose and cannot get is worth a line.
    """
    cut = {k: (wanted[k], budget[k]) for k in operator_set if budget.get(k, 0) < wanted.get(k, 0)}
    if not cut:
        return None
    return ", ".join(f"{k} {want} -> {got}" for k, (want, got) in sorted(cut.items()))
