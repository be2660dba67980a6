"""The real server process under signals: ``uacsta serve`` in a subprocess, simulated phones and
a CSTA-over-TCP client in the test process, everything over loopback.

SIGTERM is a graceful stop (BYE on every phone link, ApplicationSessionTerminated to CSTA
clients, inventory written, exit code 0); a restart keeps the inventory and the phones' settings
and phones re-link on their next REGISTER. SIGKILL loses nothing that was written (the
inventory is written in batches every second; SQLite in WAL mode) and leaves the database
intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import wait_until
from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.control import call
from uacsta.csta import messages as m
from uacsta.simulator.runtime import Simulation

PASSWORD = "phone-secret"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def free_port(*, udp_too: bool = False) -> int:
    """A loopback port free now (for TCP, and UDP too when asked)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            with socket.socket(type=socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


class ServerProcess:
    """``python -m uacsta.cli serve --config FILE``, restartable on the same ports and data."""

    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.sock = self.data / "uacsta.sock"
        assert len(str(self.sock)) < 100, "Unix socket path too long"
        self.log = tmp_path / "server.log"
        self.phone_port = free_port(udp_too=True)
        self.tls_port = free_port()
        self.csta_port = free_port()
        self.config = tmp_path / "uacsta.toml"
        self.config.write_text(
            f"""
[phones]
listen = [
    "udp:127.0.0.1:{self.phone_port}",
    "tcp:127.0.0.1:{self.phone_port}",
    "tls:127.0.0.1:{self.tls_port}",
]
password = "{PASSWORD}"
relink_backoff = 0.2
csta_timeout = 2.0

[clients]
sip_listen = ["tcp:127.0.0.1:{free_port()}"]
csta_listen = ["tcp:127.0.0.1:{self.csta_port}"]
[[clients.accounts]]
name = "crm"
password = "crm-secret"

[store]
path = "{self.data}"

[http]
listen = "tcp:127.0.0.1:{free_port()}"

[log]
level = "INFO"
"""
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "uacsta.cli",
                "serve",
                "--config",
                str(self.config),
                stdout=log,
                stderr=log,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while await self.control("status") is None:
            if self.proc.returncode is not None or loop.time() > deadline:
                raise AssertionError(f"the server did not start:\n{self.tail()}")
            await asyncio.sleep(0.05)

    async def control(self, cmd: str, **args: Any) -> dict[str, Any] | None:
        return await call(self.sock, {"cmd": cmd, **args}, timeout=2.0)

    async def phones(self) -> dict[str, dict[str, Any]]:
        answer = await self.control("phones")
        assert answer is not None and answer["ok"], answer
        return {row["mac"]: row for row in answer["phones"]}

    async def wait_states(self, wanted: dict[str, str], timeout: float = 10.0) -> None:
        states: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            states = {mac: row["state"] for mac, row in (await self.phones()).items()}
            if all(states.get(mac) == state for mac, state in wanted.items()):
                return
            if loop.time() > deadline:
                raise AssertionError(f"phone states {states}, wanted {wanted}\n{self.tail()}")
            await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"no exit {STOP_TIMEOUT}s after {sig!r}:\n{self.tail()}") from None
        finally:
            self.proc = None

    def kill_quietly(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path)
    try:
        yield process
    finally:
        process.kill_quietly()
        if process.proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.proc.wait(), 5)


@pytest.fixture
async def sims() -> AsyncIterator[list[Simulation]]:
    made: list[Simulation] = []
    yield made
    for sim in made:
        await sim.close()


def simulation(server: ServerProcess, sims: list[Simulation]) -> Simulation:
    ports = {"udp": server.phone_port, "tcp": server.phone_port, "tls": server.tls_port}
    sim = Simulation("127.0.0.1", ports, password=PASSWORD, min_se=1)
    sims.append(sim)
    return sim


async def csta_client(server: ServerProcess) -> CstaTcpClient:
    client = CstaTcpClient()
    await client.connect("127.0.0.1", server.csta_port)
    await client.login("crm", "crm-secret")
    return client


async def monitor(client: CstaTcpClient, device: str) -> str:
    response = await client.request(m.MonitorStart(monitor_object=device))
    assert isinstance(response, m.MonitorStartResponse), response
    await client.wait_for(m.BackInServiceEvent)
    return response.monitor_cross_ref_id


async def test_sigterm_is_graceful_and_a_restart_keeps_inventory_and_settings(
    server: ServerProcess, sims: list[Simulation]
) -> None:
    await server.start()
    sim = simulation(server, sims)
    tcp = sim.add_phone("snom", ["100"], transport="tcp")
    udp = sim.add_phone("yealink", ["200"], transport="udp")
    tls = sim.add_phone("mitel", ["400"], transport="tls")
    spare = sim.add_phone("fanvil", ["300"], transport="tcp")
    agents = (tcp, udp, tls, spare)
    await sim.start()
    await server.wait_states({a.mac: "ready" for a in agents})
    answer = await server.control("disable", mac=spare.mac)
    assert answer is not None and answer["ok"], answer
    await server.wait_states({spare.mac: "disabled"})
    client = await csta_client(server)
    await monitor(client, "100")
    byes = {a.mac: a.sip_received["BYE"] for a in agents}

    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await server.stop(signal.SIGTERM) == 0
    assert loop.time() - started < 5.0, server.tail()
    assert tcp.sip_received["BYE"] == byes[tcp.mac] + 1  # BYE on every phone link
    assert udp.sip_received["BYE"] == byes[udp.mac] + 1
    assert tls.sip_received["BYE"] == byes[tls.mac] + 1
    assert spare.sip_received["BYE"] == byes[spare.mac]  # not linked: nothing to end
    await asyncio.wait_for(client.closed.wait(), 5)
    names = []
    while not client.events.empty():
        event = client.events.get_nowait()
        if isinstance(event, m.UnknownMessage):
            names.append(event.name)
    assert names == ["ApplicationSessionTerminated"]
    await client.close()

    await server.start()  # same configuration, same data directory
    rows = await server.phones()
    assert set(rows) == {a.mac for a in agents}
    assert rows[spare.mac]["enabled"] is False and rows[spare.mac]["state"] == "disabled"
    assert rows[tcp.mac]["enabled"] is True and rows[tcp.mac]["state"] == "offline"
    assert rows[tcp.mac]["lines"] == ["sip:100@sim.invalid"]
    assert rows[udp.mac]["vendor"] == "yealink"
    for agent in agents:  # their next REGISTER (a refresh, or after their TCP reconnect)
        assert await agent.register() == 200
    await server.wait_states(
        {tcp.mac: "ready", udp.mac: "ready", tls.mac: "ready", spare.mac: "disabled"}
    )
    await asyncio.sleep(0.3)
    assert (await server.phones())[spare.mac]["state"] == "disabled"
    client = await csta_client(server)
    try:
        await monitor(client, "200")
    finally:
        await client.close()
    assert await server.stop(signal.SIGTERM) == 0


async def test_sigkill_loses_no_written_phone_and_leaves_the_database_intact(
    server: ServerProcess, sims: list[Simulation]
) -> None:
    await server.start()
    sim = simulation(server, sims)
    agents = [
        sim.add_phone("snom", ["100"], transport="tcp"),
        sim.add_phone("yealink", ["200"], transport="udp"),
        sim.add_phone("mitel", ["300"], transport="tcp"),
        sim.add_phone("auerswald", ["400"], transport="udp"),
    ]
    await sim.start()
    await server.wait_states({a.mac: "ready" for a in agents})
    await asyncio.sleep(1.5)  # the inventory is written in batches every second
    # A last phone registers just before the kill: it may or may not have been written.
    late = sim.add_phone("fanvil", ["500"], transport="tcp")
    await late.start()
    await wait_until(lambda: late.registrations >= 1, what="late phone registered")
    assert await server.stop(signal.SIGKILL) == -signal.SIGKILL

    database = server.data / "uacsta.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in db.execute("SELECT mac FROM phones")}
    assert {a.mac for a in agents} <= stored

    await server.start()
    rows = await server.phones()
    assert {a.mac for a in agents} <= set(rows)
    assert all(rows[a.mac]["state"] == "offline" for a in agents)  # reset: nothing linked yet
    for agent in [*agents, late]:
        assert await agent.register() == 200
    await server.wait_states({a.mac: "ready" for a in [*agents, late]})
    assert await server.stop(signal.SIGTERM) == 0
