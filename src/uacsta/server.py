"""Assembles the running server from its parts: store, inventory, switching function (hub),
phones side, client gateways and the local control socket; runs until SIGTERM/SIGINT and shuts
down gracefully (BYE to phones, ApplicationSessionTerminated to clients, inventory flushed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from pathlib import Path
from typing import Any

from uacsta.accounts import ClientAccounts
from uacsta.config import Settings
from uacsta.control import ControlServer
from uacsta.gateways.cstatcp import CstaTcpGateway
from uacsta.hub import SwitchHub
from uacsta.net.address import parse_listen_address
from uacsta.net.tls import ensure_self_signed_cert, server_context
from uacsta.phones.inventory import Inventory
from uacsta.phones.service import PhoneService
from uacsta.store.db import Store

log = logging.getLogger("uacsta.server")


class Server:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.store.path).resolve()
        self.started_at = time.time()
        self.store: Store | None = None
        self.inventory: Inventory | None = None
        self.hub = SwitchHub()
        self.accounts = ClientAccounts(settings.clients.accounts)
        self.phones: PhoneService | None = None
        self.cstatcp: CstaTcpGateway | None = None
        self.tr87: Any = None
        self.control: ControlServer | None = None
        self.tls_context: ssl.SSLContext | None = None
        self.listening: list[str] = []
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ start / stop
    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await asyncio.to_thread(Store, self.settings.store.database_url)
        self.inventory = Inventory(self.store)
        await asyncio.to_thread(self.inventory.load)
        self.inventory.start()
        self.tls_context = self._tls()
        self.phones = PhoneService(
            self.settings, self.inventory, self.hub, tls_context=self.tls_context
        )
        self.listening += [f"phones {a}" for a in await self.phones.start()]
        c = self.settings.clients
        self.cstatcp = CstaTcpGateway(
            self.hub,
            self.accounts,
            require_authentication=c.require_authentication,
            session_duration=c.session_duration,
            max_session_duration=c.max_session_duration,
        )
        for address in c.csta_listen:
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
        await self._start_tr87()
        self.control = ControlServer(self)
        await self.control.start(self.data_dir / "uacsta.sock")
        log.info("uacsta started: %s", "; ".join(self.listening))

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
        )
        for address in c.sip_listen:
            tls = address.lower().startswith("tls:")
            if tls and self.tls_context is None:
                continue
            listener = await self.tr87.listen(
                address, ssl_context=self.tls_context if tls else None
            )
            self.listening.append(f"tr87 {listener}")

    def _tls(self) -> ssl.SSLContext | None:
        t = self.settings.tls
        if t.certificate and t.private_key:
            return server_context(t.certificate, t.private_key)
        cert, key = ensure_self_signed_cert(self.data_dir / "tls")
        return server_context(cert, key)

    async def stop(self) -> None:
        log.info("uacsta stopping")
        if self.control is not None:
            await self.control.close()
        if self.cstatcp is not None:
            await self.cstatcp.close()
        if self.tr87 is not None:
            await self.tr87.close()
        if self.phones is not None:
            await self.phones.close()
        await self.hub.close()
        if self.inventory is not None:
            await self.inventory.close()
        if self.store is not None:
            self.store.close()
        log.info("uacsta stopped")

    def request_stop(self) -> None:
        self._stop.set()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        inventory = self.inventory
        sf = self.hub.switch
        return {
            "uptime": round(time.time() - self.started_at, 1),
            "listening": self.listening,
            "phones": inventory.counts() if inventory else {},
            "devices": len(sf.devices),
            "clients": len(sf.clients),
            "monitors": len(sf.monitors.client_monitors),
            "phone_monitors": len(sf.monitors.points),
            "requests_relayed": self.hub.requests_relayed,
            "events_relayed": self.hub.events_relayed,
        }
