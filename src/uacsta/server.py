"""Assembles the running server from its parts: store, inventory, switching function (hub),
phones side, client gateways and the local control socket; runs until SIGTERM/SIGINT and shuts
down gracefully (BYE to phones, ApplicationSessionTerminated to clients, inventory flushed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from uacsta import ratelog
from uacsta.accounts import ClientAccounts
from uacsta.config import Settings
from uacsta.control import ControlServer
from uacsta.gateways.cstatcp import CstaTcpGateway
from uacsta.hub import SwitchHub
from uacsta.journal.webhooks import WebhookService, sender_id
from uacsta.journal.writer import JournalWriter
from uacsta.net.address import connect_host, parse_listen_address
from uacsta.net.guard import (
    ConnectionGate,
    GateLimits,
    budget_warning,
    listening_socket,
    open_files_limit,
    plan_budget,
    raise_open_files_limit,
)
from uacsta.net.tls import ensure_self_signed_cert, server_context
from uacsta.operations import Operations
from uacsta.phones.inventory import Inventory
from uacsta.phones.service import PhoneService
from uacsta.safety import DefaultCredentialsError, default_credentials
from uacsta.sip.digest import Algorithm
from uacsta.store.db import Store
from uacsta.store.journal import JournalStore
from uacsta.store.outbox import OutboxStore
from uacsta.switch.calls import CallTracker
from uacsta.switch.function import SwitchingFunction
from uacsta.throttle import AuthThrottle
from uacsta.web import logbuffer
from uacsta.web.metrics import Metrics

log = logging.getLogger("uacsta.server")

#: Allocations between young-generation collections (CPython default: 700); see settle_gc.
GC_YOUNG_THRESHOLD = 5000
#: Seconds between young-generation collections on the clock (and ten of them between
#: middle-generation ones); see YoungCollections.
YOUNG_COLLECTION_INTERVAL = 0.1


class Server:
    def __init__(self, settings: Settings, *, refuse_default_credentials: bool = False) -> None:
        self.settings = settings
        #: ``uacsta serve`` refuses to start while a default password guards a listener other
        #: machines reach (uacsta.safety); otherwise (tests, the demo, --allow-default-
        #: credentials) the server starts and warns.
        self.refuse_default_credentials = refuse_default_credentials
        self.data_dir = Path(settings.store.path).resolve()
        self.started_at = time.time()
        self.store: Store | None = None
        self.inventory: Inventory | None = None
        #: The call journal (uacsta.journal.writer): the call tracker adds finished calls.
        self.journal: JournalWriter | None = None
        # The call tracker sees every event of a monitored line; with journal.enabled the
        # switch keeps its own monitor on every line (calls no client watches are journaled).
        self.hub = SwitchHub(
            SwitchingFunction(calls=CallTracker(), own_monitors=settings.journal.enabled)
        )
        self.hub.switch.max_monitors_per_client = settings.clients.max_monitors
        self.accounts = ClientAccounts(settings.clients.accounts)
        #: Failed client logins, shared by the CSTA-over-TCP and uaCSTA/SIP gateways.
        self.client_throttle = AuthThrottle(
            max_failures=settings.clients.max_auth_failures,
            max_source_failures=settings.clients.max_source_failures,
            max_account_failures=settings.clients.max_account_failures,
            block_time=settings.clients.block_time,
        )
        self.phones: PhoneService | None = None
        #: This node in a cluster (uacsta.cluster), with cluster.nats_url set; else None.
        self.cluster: Any = None
        #: Webhook delivery (durable outbox); notices reach it through ``publish()``.
        self.webhooks: WebhookService | None = None
        self.cstatcp: CstaTcpGateway | None = None
        self.tr87: Any = None
        self.control: ControlServer | None = None
        self.tls_context: ssl.SSLContext | None = None
        self.listening: list[str] = []
        self.metrics = Metrics()
        self.http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self.http_port: int | None = None
        #: Where a browser on this machine opens the web listener (loopback for a wildcard).
        self.web_url: str | None = None
        #: Web connections, counted at accept before TLS (uacsta.net.guard).
        self.web_gate = ConnectionGate("web", self._web_gate_limits())
        self.initial_admin_password: str | None = None
        self._http_restart: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        #: What start() brought up, closed in reverse order by stop().
        self._running = contextlib.AsyncExitStack()
        #: What the control socket, the admin and the API may do (uacsta.operations).
        self.ops = Operations(self, log_source=logbuffer.current)

    # ------------------------------------------------------------------ start / stop
    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # database, keys
        logbuffer.install(self)  # the web admin's log view and the log files (estos §3.9)
        if self.settings.connections.raise_files_limit:
            before, after = raise_open_files_limit()
            if after != before:
                log.info("open files limit raised from %d to %d", before, after)
        ratelog.configure(
            lines=self.settings.log.rate_limit_lines,
            interval=self.settings.log.rate_limit_interval,
        )
        self.store = await asyncio.to_thread(Store, self.settings.store.database_url)
        self._running.callback(self.store.close)
        if await self.ops.restore_settings():
            self.accounts.replace(self.settings.clients.accounts)
        self._check_default_credentials()  # with the admin's changes: before any listener
        await self._start_journal()
        await self._start_webhooks()
        self.inventory = Inventory(self.store)
        await asyncio.to_thread(self.inventory.load)
        self.inventory.start()
        self._running.push_async_callback(self.inventory.close)
        self._running.push_async_callback(self.hub.close)
        self.tls_context = self._tls()
        self.phones = PhoneService(
            self.settings,
            self.inventory,
            self.hub,
            tls_context=self.tls_context,
            observe_latency=self.metrics.observe,
        )
        await self._join_cluster()
        self._running.push_async_callback(self.phones.close)
        self.listening += [f"phones {a}" for a in await self.phones.start()]
        c = self.settings.clients
        self.cstatcp = CstaTcpGateway(
            self.hub,
            self.accounts,
            require_authentication=c.require_authentication,
            session_duration=c.session_duration,
            max_session_duration=c.max_session_duration,
            throttle=self.client_throttle,
            max_connections=c.max_connections,
            max_connections_per_address=c.max_connections_per_address,
            max_pending_requests=c.max_pending_requests,
            max_output_buffer=c.max_output_buffer,
            handshake_timeout=self.settings.connections.handshake_timeout,
            idle_timeout=c.idle_timeout,
        )
        self._running.push_async_callback(self._close_gateways)
        await self._listen_csta()
        await self._start_tr87()
        self._running.push_async_callback(self._stop_http)
        await self._start_http()
        self._apply_connection_budget()
        self.control = ControlServer(self.ops)
        self._running.push_async_callback(self.control.close)
        await self.control.start(self.data_dir / "uacsta.sock")
        log.info("uacsta started: %s", "; ".join(self.listening))

    # ------------------------------------------------------------------ several nodes
    async def _join_cluster(self) -> None:
        """With ``cluster.nats_url``: join the other nodes before any phone registers (a
        phone is linked once claimed). Left after the phones' links are closed."""
        if not self.settings.cluster.nats_url:
            return
        from uacsta.cluster import ClusterError

        try:
            from uacsta.cluster.node import ClusterNode
        except ImportError as exc:
            raise ClusterError(
                f"cluster.nats_url is set but {exc.name or 'nats-py'} is missing: "
                "pip install 'uacsta[cluster]'"
            ) from exc

        assert self.phones is not None
        self.cluster = ClusterNode(self.settings, self.hub, self.phones)
        await self.cluster.start()
        self._running.push_async_callback(self.cluster.close)
        self.listening.append(f"cluster {self.cluster.node_id}@{self.settings.cluster.name}")

    # ------------------------------------------------------------------ default passwords
    def _check_default_credentials(self) -> None:
        found = default_credentials(self.settings)
        if found and self.refuse_default_credentials:
            raise DefaultCredentialsError(found)
        for credential in found:
            log.warning("SECURITY: %s", credential.warning)

    def security_warnings(self) -> list[str]:
        """What the banner, the admin and /healthz warn of (the settings as they are now)."""
        return [c.warning for c in default_credentials(self.settings)]

    # ------------------------------------------------------------------ call journal
    async def _start_journal(self) -> None:
        """The call journal on the store, flushed at shutdown (after the phones and the hub
        have ended their calls: it closes after them, before the store)."""
        assert self.store is not None
        self.journal = JournalWriter(
            JournalStore(self.store), retention_days=self.settings.journal.retention_days
        )
        await self.journal.start()
        self._running.push_async_callback(self.journal.stop)
        if self.settings.journal.enabled:
            self.hub.on_record = self.journal.add

    # ------------------------------------------------------------------ webhooks
    async def _start_webhooks(self) -> None:
        """Webhooks: started before the parts that publish to them and so stopped after them
        (stop flushes the in-memory queue to the outbox, before the store closes)."""
        assert self.store is not None
        self.webhooks = WebhookService(
            OutboxStore(self.store), self.settings.webhooks, sender=sender_id(str(self.data_dir))
        )
        await self.webhooks.start()
        self._running.push_async_callback(self.webhooks.stop)
        # Every notice (call.*, phone.*, dnd/forwarding) goes to the matching endpoints.
        self.hub.notice_listeners.append(self.webhooks.publish)

    async def _listen_csta(self) -> None:
        assert self.cstatcp is not None
        for address in self.settings.clients.csta_listen:
            parsed = parse_listen_address(address)
            tls = parsed.transport == "tls"
            if parsed.transport == "udp":
                log.warning("CSTA over TCP has no UDP transport: %s ignored", address)
                continue
            server = await self.cstatcp.listen(
                parsed.host, parsed.port, self.tls_context if tls else None
            )
            port = server.sockets[0].getsockname()[1]
            self.listening.append(f"csta {parsed.transport}:{parsed.host}:{port}")

    async def _listen_tr87(self) -> None:
        for address in self.settings.clients.sip_listen:
            tls = address.lower().startswith("tls:")
            if tls and self.tls_context is None:
                continue
            flow = await self.tr87.listen(address, ssl_context=self.tls_context if tls else None)
            host, port = flow.local
            self.listening.append(f"tr87 {flow.transport}:{host}:{port}")

    async def _start_tr87(self) -> None:
        try:
            from uacsta.gateways.tr87 import Tr87Gateway
        except ImportError:  # pragma: no cover - gateway module always shipped
            return
        c = self.settings.clients
        self.tr87 = Tr87Gateway(
            self.hub,
            self.accounts,
            realm=self.settings.phones.realm,
            require_authentication=c.require_authentication,
            throttle=self.client_throttle,
            digest_algorithms=[Algorithm.parse(a) for a in c.digest_algorithms],
        )
        self.tr87.ua.transport.gate.kind = "tr87"
        self._tr87_limits()
        await self._listen_tr87()

    def _tr87_limits(self) -> None:
        """TR/87 connections: the clients' connection limits (counted apart from CSTA's)."""
        c = self.settings.clients
        transport = self.tr87.ua.transport
        transport.limits = dataclasses.replace(
            transport.limits,
            max_connections=c.max_connections,
            max_connections_per_address=c.max_connections_per_address,
            handshake_timeout=self.settings.connections.handshake_timeout,
        )

    def _web_gate_limits(self) -> GateLimits:
        h = self.settings.http
        return GateLimits(
            max_connections=h.max_connections,
            max_connections_per_address=h.max_connections_per_address,
            handshake_timeout=self.settings.connections.handshake_timeout,
        )

    def _gates(self, settings: Settings | None = None) -> dict[str, tuple[ConnectionGate, int]]:
        """Each listener kind's gate and the total its settings (default: the server's) ask
        for."""
        s = self.settings if settings is None else settings
        gates: dict[str, tuple[ConnectionGate, int]] = {
            "web": (self.web_gate, s.http.max_connections)
        }
        if self.phones is not None:
            gate = self.phones.ua.transport.gate
            gate.kind = "phones"
            gates["phones"] = (gate, s.phones.max_connections)
        if self.cstatcp is not None:
            gates["csta"] = (self.cstatcp.gate, s.clients.max_connections)
        if self.tr87 is not None:
            gates["tr87"] = (self.tr87.ua.transport.gate, s.clients.max_connections)
        return gates

    def _apply_connection_budget(self) -> None:
        """Keep the kinds' totals below the open files limit minus the reserve, so a
        flood of one listener leaves descriptors for the others (uacsta.net.guard)."""
        gates = self._gates()
        limit = open_files_limit()
        wanted = {kind: total for kind, (_, total) in gates.items()}
        budget = plan_budget(wanted, self.settings.connections.reserve_files, limit)
        defaults = {
            kind: total for kind, (_, total) in self._gates(Settings()).items() if kind in wanted
        }
        operator_set = [kind for kind in wanted if wanted[kind] != defaults.get(kind)]
        cut = budget_warning(wanted, budget, operator_set)
        if cut is not None or budget != wanted:
            log.log(
                logging.WARNING if cut is not None else logging.INFO,
                "open files limit %d (minus %d reserved) is below the connection limits %s: "
                "using %s (to have more, raise the limit, e.g. LimitNOFILE in the systemd unit)",
                limit,
                self.settings.connections.reserve_files,
                wanted,
                budget,
            )
        for kind, (gate, _) in gates.items():
            gate.limits.max_connections = budget[kind]

    async def _start_http(self) -> None:
        from uacsta.gateways import json as json_gateway
        from uacsta.web.app import create_app
        from uacsta.web.auth import Auth
        from uacsta.web.httpproto import BoundedHttpToolsProtocol, GuardedServer

        assert self.store is not None
        self.initial_admin_password = await asyncio.to_thread(Auth(self.store).ensure_admin)
        if self.initial_admin_password is not None:
            path = self.data_dir / "initial-admin-password"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:  # owner-only from its creation
                file.write(self.initial_admin_password + "\n")
            path.chmod(0o600)
            log.warning(
                "web admin created: user 'admin', password in %s (change it in the admin or "
                "with 'uacsta admin-password')",
                path,
            )
        address = parse_listen_address(self.settings.http.listen)
        https = address.transport == "tls"
        app = create_app(self, https=https)
        app.include_router(json_gateway.router)  # the JSON CSTA gateway, beside the management API
        sock = listening_socket(address.host, address.port, 1024)
        self.http_port = sock.getsockname()[1]
        h = self.settings.http
        budget = self.web_gate.limits.max_connections if self.http is not None else None
        self.web_gate.limits = self._web_gate_limits()
        if budget is not None:  # a restart keeps the share planned at start-up
            self.web_gate.limits.max_connections = min(budget, h.max_connections)
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ws_max_size=64 * 1024,
            # httptools with bounds on the request head and body and the time to send them.
            http=BoundedHttpToolsProtocol.configured(
                head_timeout=h.head_timeout,
                body_timeout=h.body_timeout,
                max_body_bytes=max(h.max_body_bytes, h.max_admin_body_bytes),
            ),
            timeout_keep_alive=15,
            # X-Forwarded-For/-Proto only from configured proxies (uvicorn's default trusts
            # 127.0.0.1, which let any local client pick its source address per request).
            proxy_headers=bool(self.settings.http.trusted_proxies),
            forwarded_allow_ips=list(self.settings.http.trusted_proxies),
            **self._http_tls(https),
        )
        self.http = GuardedServer(config, self.web_gate)
        # SIGTERM/SIGINT belong to run_forever (orderly stop: BYE to phones, clients told);
        # uvicorn would otherwise take them over while it serves.
        self.http.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._http_task = asyncio.get_running_loop().create_task(self.http.serve(sockets=[sock]))
        while not self.http.started and not self._http_task.done():
            await asyncio.sleep(0.01)
        if self._http_task.done():
            self._http_task.result()
        scheme = "https" if https else "http"
        bound = sock.getsockname()[0]
        # What it really listens on (0.0.0.0 is every interface); web_url is where to open it.
        self.listening.append(f"web {scheme}:{_listen_host(bound)}:{self.http_port}")
        self.web_url = f"{scheme}://{_url_host(bound)}:{self.http_port}/"

    def _http_tls(self, https: bool) -> dict[str, Any]:
        if not https:
            return {}
        t = self.settings.tls
        if t.certificate and t.private_key:
            return {"ssl_certfile": t.certificate, "ssl_keyfile": t.private_key}
        cert, key = ensure_self_signed_cert(self.data_dir / "tls")
        return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}

    def _tls(self) -> ssl.SSLContext | None:
        t = self.settings.tls
        if t.certificate and t.private_key:
            return server_context(t.certificate, t.private_key)
        cert, key = ensure_self_signed_cert(self.data_dir / "tls")
        return server_context(cert, key)

    async def stop(self) -> None:
        """Close what start() brought up, last first: control socket, web, client gateways,
        phones (BYE), hub, inventory (flushed), store, log capture."""
        log.info("uacsta stopping")
        self.hub.switch.stop_tracking()  # the phones' calls go on without us
        try:
            await self._running.aclose()
        finally:
            log.info("uacsta stopped")
            logbuffer.uninstall()

    async def _close_gateways(self) -> None:
        if self.cstatcp is not None:
            await self.cstatcp.close()
        if self.tr87 is not None:
            await self.tr87.close()

    async def _stop_http(self) -> None:
        if self.http is not None and self._http_task is not None:
            self.http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._http_task

    def gates(self) -> dict[str, ConnectionGate]:
        return {kind: gate for kind, (gate, _) in self._gates().items()}

    async def reconfigure(self, old: Settings, new: Settings) -> list[str]:
        """Hand new settings to the components. Listeners restart only when their addresses
        (or the TLS certificate) changed; everything else applies in place, for new links
        and logins. Returns what was restarted."""
        restarted: list[str] = []
        # Objects holding settings see the new values.
        for holder in (self.phones, self.tr87, self.cstatcp):
            if holder is not None and hasattr(holder, "settings"):
                holder.settings = new
        self.accounts.replace(new.clients.accounts)
        self.client_throttle.configure(
            max_failures=new.clients.max_auth_failures,
            block_time=new.clients.block_time,
            max_source_failures=new.clients.max_source_failures,
            max_account_failures=new.clients.max_account_failures,
        )
        if self.tr87 is not None:
            self.tr87.digest.algorithms = tuple(
                Algorithm.parse(a) for a in new.clients.digest_algorithms
            )
        ratelog.configure(lines=new.log.rate_limit_lines, interval=new.log.rate_limit_interval)
        if self.journal is not None:
            self.journal.retention_days = new.journal.retention_days
        self.hub.switch.max_monitors_per_client = new.clients.max_monitors
        if self.webhooks is not None:  # timeouts, retries, limits: for the next attempts
            self.webhooks.settings = new.webhooks
        if self.cstatcp is not None:
            self.cstatcp.max_connections = new.clients.max_connections
            self.cstatcp.max_connections_per_address = new.clients.max_connections_per_address
            self.cstatcp.max_pending_requests = new.clients.max_pending_requests
            self.cstatcp.max_output_buffer = new.clients.max_output_buffer
            self.cstatcp.require_authentication = new.clients.require_authentication
            self.cstatcp.session_duration = new.clients.session_duration
            self.cstatcp.max_session_duration = new.clients.max_session_duration
        if self.phones is not None:
            self.phones.apply_settings()
        if old.tls != new.tls:
            self.tls_context = self._tls()
            if self.phones is not None:
                self.phones.tls_context = self.tls_context
        if (old.phones.listen != new.phones.listen or old.tls != new.tls) and self.phones:
            self.listening = [e for e in self.listening if not e.startswith("phones ")]
            bound = await self.phones.restart_listeners()
            self.listening += [f"phones {a}" for a in bound]
            restarted.append("phone listeners")
        tls_changed = old.tls != new.tls
        if (old.clients.csta_listen != new.clients.csta_listen or tls_changed) and self.cstatcp:
            await self.cstatcp.stop_listening()
            self.listening = [e for e in self.listening if not e.startswith("csta ")]
            await self._listen_csta()
            restarted.append("CSTA client listeners")
        if self.tr87 is not None:
            self._tr87_limits()
        if (old.clients.sip_listen != new.clients.sip_listen or tls_changed) and self.tr87:
            for listener in list(self.tr87.ua.transport.listeners):
                await self.tr87.ua.transport.unlisten(listener)
            self.listening = [e for e in self.listening if not e.startswith("tr87 ")]
            await self._listen_tr87()
            restarted.append("uaCSTA/SIP client listeners")
        if old.http.listen != new.http.listen or (
            tls_changed and new.http.listen.startswith("tls")
        ):
            # After the answer to the request that changed it has gone out.
            asyncio.get_running_loop().call_later(0.5, self._restart_http_soon)
            restarted.append("web listener (in a moment)")
        for holder in (self.tr87, self.phones):
            if holder is not None:
                holder.ua.transport.gate.limits = holder.ua.transport._gate_limits()
        self.web_gate.limits = self._web_gate_limits()
        self._apply_connection_budget()
        before = {c.warning for c in default_credentials(old)}
        for credential in default_credentials(new):
            if credential.warning not in before:
                log.warning("SECURITY: %s", credential.warning)
        return restarted

    def _restart_http_soon(self) -> None:
        self._http_restart = asyncio.get_running_loop().create_task(self._restart_http())

    async def _restart_http(self) -> None:
        await self._stop_http()
        self.listening = [e for e in self.listening if not e.startswith("web ")]
        try:
            await self._start_http()
        except OSError as exc:
            log.error("cannot listen on %s for the web: %s", self.settings.http.listen, exc)

    def request_stop(self) -> None:
        self._stop.set()

    async def run_forever(self, on_started: Callable[[], None] | None = None) -> None:
        """Start, call ``on_started`` (the CLI prints its banner), run until stopped."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        if on_started is not None:
            on_started()
        settle_gc()
        collections = YoungCollections(loop)
        try:
            await self._stop.wait()
        finally:
            collections.cancel()
            await self.stop()

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        return self.ops.status()


def settle_gc() -> None:
    """Garbage-collector policy for a long-running server process, applied once started.

    Everything loaded so far (modules, settings, templates: ~100,000 objects) is moved out
    of the collector's sight (``gc.freeze``), so a full collection no longer walks it: it
    took ~65 ms here, a stall every client and phone request behind it would feel. The
    young generation is collected after 5,000 allocations instead of 700: objects of a
    request in flight (a few ms) die young rather than being promoted, so full collections
    come far less often. Reference counting frees most objects anyway; the collector only
    finds cycles."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, gen1, gen2)


class YoungCollections:
    """Young-generation collections on a clock, so each one is short.

    CPython collects the young generation when allocations minus deallocations pass the
    threshold, and the deallocations it counts include old objects. Under steady load
    (transactions lingering for seconds, timer entries, each dying as fast as new ones are
    born) the count hardly moves while the young generation grows: it was seen at ~40,000
    objects, 10-50 ms collections that every request in flight waits for. Collecting it
    every :data:`YOUNG_COLLECTION_INTERVAL` bounds that to what arrives in 0.1 s (about
    1 ms of work at 2,500 requests a second), and an idle server's collection costs
    microseconds. Every tenth pass collects the middle generation as well, the ratio the
    automatic policy uses; full collections stay automatic.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._passes = 0
        self._handle = loop.call_later(YOUNG_COLLECTION_INTERVAL, self._collect)

    def _collect(self) -> None:
        self._passes += 1
        gc.collect(1 if self._passes % 10 == 0 else 0)
        self._handle = self._loop.call_later(YOUNG_COLLECTION_INTERVAL, self._collect)

    def cancel(self) -> None:
        self._handle.cancel()


def _listen_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _url_host(host: str) -> str:
    host = connect_host(host)
    return f"[{host}]" if ":" in host else host
