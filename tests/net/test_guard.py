"""The shared admission of inbound connections (uacsta.net.guard), on both event loops.

``uacsta serve`` runs on uvloop, the tests' harness on asyncio: the slot of a connection
must come back when its socket closes on either (asyncio closes the socket, uvloop
detaches it), whatever the protocol, TLS or not.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from uacsta.net.flow import TokenBucket
from uacsta.net.guard import (
    AcceptLoop,
    ConnectionGate,
    GateLimits,
    budget_warning,
    listening_socket,
    plan_budget,
)
from uacsta.net.tls import client_context, ensure_self_signed_cert, server_context


def test_gate_counts_per_address_and_in_total() -> None:
    gate = ConnectionGate("web", GateLimits(max_connections=3, max_connections_per_address=2))
    assert gate.admit("10.0.0.1") is None
    assert gate.admit("10.0.0.1") is None
    assert gate.admit("10.0.0.1") == "2 web connections from 10.0.0.1 (limit)"
    assert gate.admit("10.0.0.2") is None
    assert gate.admit("10.0.0.3") == "3 web connections open (limit)"
    assert gate.refused == 2
    gate.release("10.0.0.1")
    assert gate.admit("10.0.0.3") is None
    gate.release("10.0.0.2")
    assert dict(gate.per_address) == {"10.0.0.1": 1, "10.0.0.3": 1} and gate.open == 2


def test_budget_scales_kinds_below_the_limit_minus_the_reserve() -> None:
    wanted = {"phones": 20000, "csta": 1000, "web": 2000}
    assert plan_budget(wanted, 256, 1 << 20) == wanted
    assert plan_budget(wanted, 256, 1024) == {"phones": 667, "csta": 33, "web": 66}
    assert sum(plan_budget(wanted, 256, 1024).values()) <= 1024 - 256
    # Nothing left after the reserve: each kind keeps a share of the minimum.
    assert plan_budget(wanted, 256, 100) == {"phones": 2, "csta": 1, "web": 1}


DEFAULT_TOTALS = {"phones": 20000, "csta": 1000, "tr87": 1000, "web": 2000}


@pytest.mark.parametrize("hard_limit", [1024, 4096, 20000])
def test_default_totals_scale_silently_under_a_usual_hard_limit(hard_limit: int) -> None:
    """The defaults ask for 24,000 connections; under a usual hard RLIMIT_NOFILE (20,000 on
    the machine issue 15 was found on, 4,096 on older systems) they are scaled, not warned."""
    budget = plan_budget(DEFAULT_TOTALS, 256, hard_limit)
    assert budget != DEFAULT_TOTALS
    assert sum(budget.values()) <= hard_limit - 256
    assert budget_warning(DEFAULT_TOTALS, budget, operator_set=()) is None


def test_an_operator_set_total_that_cannot_be_had_is_warned() -> None:
    wanted = {**DEFAULT_TOTALS, "phones": 50000}
    budget = plan_budget(wanted, 256, 20000)
    assert budget_warning(wanted, budget, operator_set=["phones"]) == (
        f"phones 50000 -> {budget['phones']}"
    )
    assert budget["phones"] < 50000
    # Honoured (limit high enough): nothing to say, also for an operator-set value.
    assert budget_warning(wanted, plan_budget(wanted, 256, 1 << 20), ["phones"]) is None


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(10.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait() == pytest.approx(0.1)
    assert not bucket.take(0.05)
    assert bucket.take(0.1)
    assert bucket.full(10.0) and not bucket.full(0.1)


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def _run(loop_name: str, main: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        runner.run(main())  # type: ignore[arg-type]


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


async def _until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not predicate():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_slots_come_back_when_connections_close(loop_name: str) -> None:
    async def main() -> None:
        gate = ConnectionGate("t", GateLimits(max_connections=4, max_connections_per_address=4))
        server = AcceptLoop(listening_socket("127.0.0.1", 0, 64), Echo, gate)
        port = server.sockets[0].getsockname()[1]
        for _ in range(3):  # three rounds of four: only works if every slot comes back
            streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
            for reader, writer in streams:
                writer.write(b"ping")
                assert await reader.readexactly(4) == b"ping"
            # A fifth is refused at accept: closed without an answer.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"ping")
            assert await reader.read(4) == b""
            writer.close()
            for _, w in streams:
                w.close()
            await _until(lambda: gate.open == 0, f"slots back ({gate.open} open)")
        assert gate.refused == 3
        server.close()
        await server.wait_closed()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_tls_without_client_hello_is_closed_and_its_slot_returned(
    loop_name: str, tmp_path: Path
) -> None:
    cert, key = ensure_self_signed_cert(tmp_path)

    async def main() -> None:
        limits = GateLimits(max_connections=8, max_connections_per_address=8)
        limits.handshake_timeout = 0.3
        gate = ConnectionGate("t", limits)
        server = AcceptLoop(
            listening_socket("127.0.0.1", 0, 64), Echo, gate, ssl_context=server_context(cert, key)
        )
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(10), 5.0) == b""  # closed by the server
        writer.close()
        await _until(lambda: gate.open == 0 and gate.timed_out == 1, "handshake timeout")
        # A real TLS client is served, and quiet after its handshake it is closed too.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(verify=False)
        )
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        writer.close()
        await _until(lambda: gate.open == 0, "TLS connection's slot back")
        server.close()
        await server.wait_closed()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_idle_timeout_closes_a_quiet_connection(loop_name: str) -> None:
    async def main() -> None:
        limits = GateLimits(max_connections=8, max_connections_per_address=8, handshake_timeout=5.0)
        limits.idle_timeout = 0.3
        gate = ConnectionGate("t", limits)
        server = AcceptLoop(listening_socket("127.0.0.1", 0, 64), Echo, gate)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # traffic keeps it open past the idle timeout
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
            await asyncio.sleep(0.2)
        assert await asyncio.wait_for(reader.read(10), 5.0) == b""
        writer.close()
        await _until(lambda: gate.open == 0, "slot back")
        assert gate.timed_out == 1
        server.close()
        await server.wait_closed()

    _run(loop_name, main)


def test_listening_socket_is_bound_and_non_blocking() -> None:
    sock = listening_socket("127.0.0.1", 0, 8)
    try:
        assert sock.getsockname()[1] > 0 and not sock.getblocking()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    finally:
        sock.close()


def test_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    # In a child with soft 300 / hard 1000 (util-linux prlimit), not in the test process.
    code = (
        "import resource; from uacsta.net.guard import raise_open_files_limit; "
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run(
        ["prlimit", "--nofile=300:1000", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == "(300, 1000) (1000, 1000)"
