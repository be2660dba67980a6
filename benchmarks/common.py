"""Shared parts of the benchmarks: the server process, /proc readings, the load generator.

- :class:`ServerProcess` runs ``python -m uacsta.cli serve`` (or, for ``fanout.py``, this
  file as an instrumented launcher, see :func:`instrumented_server`) with a temporary config:
  production timers unless told otherwise, log level WARNING.
- The load generator runs in processes of its own (``multiprocessing``, spawn), so the
  server's CPU and RSS are its own: :class:`PhoneFleet` (the project's simulator, one SIP
  user agent and socket per phone, each on its own loopback address) and
  :class:`ClientPool` (the project's CSTA-over-TCP client, :mod:`uacsta.clients.cstatcp`).
  Both answer commands over a pipe.
- Latency as the server adds it: every client worker owns one device and has one request
  in flight, so the k-th request a worker sends is the k-th the phone of that device
  answers. The phone process timestamps each datagram as it arrives (before SIP parsing)
  and after its answer is handed to the kernel; all processes read the same clock
  (``time.perf_counter`` = CLOCK_MONOTONIC on Linux). Added latency =
  (client receive - client send) - (phone answer sent - phone request in).
- :func:`write_results` writes ``results/<name>.json`` and ``.md``.

Run with no arguments (``make bench`` does) it only prints what it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import multiprocessing
import os
import pathlib
import platform
import resource
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "results"
PASSWORD = "bench-secret"
CLIENT_USER = "bench"
CLIENT_PASSWORD = "bench-client-secret"
HOST = "127.0.0.1"
POLL_INTERVAL = 0.05
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0

#: The loopback address a simulated phone's outgoing TCP connections start from.
SOURCE: contextvars.ContextVar[str | None] = contextvars.ContextVar("source", default=None)


class BenchmarkError(RuntimeError):
    """The run did not get where it should; the message says how far it got."""


# ---------------------------------------------------------------------- /proc readings
def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchmarkError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine used so far (``/proc/stat``, every core)."""
    fields = pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """CPU used by processes other than ``pids`` during a window (other work on the box
    makes latencies worse; the results say how much there was)."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.start = time.perf_counter()
        self.busy = machine_busy_seconds()
        self.ours = sum(cpu_seconds(p) for p in self.pids)

    def cores(self) -> float:
        wall = time.perf_counter() - self.start
        busy = machine_busy_seconds() - self.busy
        ours = sum(cpu_seconds(p) for p in self.pids) - self.ours
        return round(max(0.0, busy - ours) / wall, 2) if wall > 0 else 0.0


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the UDP socket bound to HOST:``port`` (buffer full)."""
    local = f"{int.from_bytes(socket.inet_aton(HOST), 'little'):08X}:{port:04X}"
    for line in pathlib.Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            return int(fields[-1])
    return 0


def listen_overflows() -> int:
    """Connections the kernel refused because an accept queue was full (system-wide)."""
    lines = pathlib.Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def phone_address(i: int) -> str:
    """Phone ``i``'s own loopback address: real phones each have their own IP, and the
    server admits only a few TCP connections per remote address."""
    return f"127.10.{i // 250}.{i % 250 + 1}"


def raise_fd_limit(needed: int) -> int:
    """Raise the open-files limit for this process and the server it starts (TCP phones:
    a listener and a connection each here, a connection each in the server): the hard
    limit too when allowed. Returns the soft limit reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


class SourceBindingLoop(asyncio.SelectorEventLoop):
    """Outgoing connections start from the address in :data:`SOURCE` (the simulator's
    user agent connects without ``local_addr``, so all phones would come from 127.0.0.1)."""

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        source = SOURCE.get()
        if source is not None and kwargs.get("local_addr") is None and "sock" not in kwargs:
            kwargs["local_addr"] = (source, 0)
        return await super().create_connection(*args, **kwargs)


# ---------------------------------------------------------------------- server process
def free_port() -> int:
    """A port free for both UDP and TCP on HOST (the server binds both to it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((HOST, port))
                except OSError:
                    continue
            return port
    raise BenchmarkError("no port free for both UDP and TCP")


def write_config(
    folder: pathlib.Path,
    port: int,
    *,
    keepalive_interval: int | None = None,
    journal_enabled: bool | None = None,
) -> pathlib.Path:
    """Production defaults except addresses, passwords, data directory and log level;
    ``journal_enabled`` (None: the default, no ``[journal]`` section) sets
    ``journal.enabled``."""
    phones = [
        "[phones]",
        f'listen = ["udp:{HOST}:{port}", "tcp:{HOST}:{port}"]',
        f'password = "{PASSWORD}"',
    ]
    if keepalive_interval is not None:
        phones.append(f"keepalive_interval = {keepalive_interval}")
    config = folder / "uacsta.toml"
    config.write_text(
        "\n".join(
            [
                *phones,
                "[clients]",
                f'sip_listen = ["tcp:{HOST}:0"]',
                f'csta_listen = ["tcp:{HOST}:0"]',
                "[[clients.accounts]]",
                f'name = "{CLIENT_USER}"',
                f'password = "{CLIENT_PASSWORD}"',
                "[store]",
                f'path = "{folder / "data"}"',
                "[http]",
                f'listen = "tcp:{HOST}:0"',
                "[log]",
                'level = "WARNING"',
                *(
                    []
                    if journal_enabled is None
                    else ["[journal]", f"enabled = {str(journal_enabled).lower()}"]
                ),
                "",
            ]
        )
    )
    return config


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float, what: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:.0f}s waiting for {what()}")
        await asyncio.sleep(POLL_INTERVAL)


class ServerProcess:
    """``uacsta serve`` in its own process; ``instrumented`` runs :func:`instrumented_server`
    instead (the same server, plus fan-out and relay timestamps written to ``timings_path``),
    ``launcher`` another script's ``--instrumented-server <config> <timings_path>
    [*launcher_args]`` (a benchmark's own patches, e.g. ``calls.py``'s)."""

    def __init__(
        self,
        folder: pathlib.Path,
        port: int,
        *,
        keepalive_interval: int | None = None,
        instrumented: bool = False,
        launcher: str | None = None,
        launcher_args: Sequence[str] = (),
        journal_enabled: bool | None = None,
    ) -> None:
        self.folder = folder
        self.port = port
        self.config = write_config(
            folder, port, keepalive_interval=keepalive_interval, journal_enabled=journal_enabled
        )
        self.launcher = launcher or (__file__ if instrumented else None)
        self.launcher_args = list(launcher_args)
        self.sock = folder / "data" / "uacsta.sock"
        self.log = folder / "server.log"
        self.instrumented = instrumented
        self.timings_path = folder / "server-timings.json"
        self.proc: asyncio.subprocess.Process | None = None
        self.csta_port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> dict[str, Any]:
        if self.launcher is not None:
            args = [
                self.launcher,
                "--instrumented-server",
                str(self.config),
                str(self.timings_path),
                *self.launcher_args,
            ]
        else:
            args = ["-m", "uacsta.cli", "serve", "--config", str(self.config)]
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        status: dict[str, Any] = {}

        async def listening() -> bool:
            if self.proc is not None and self.proc.returncode is not None:
                raise BenchmarkError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            nonlocal status
            status = await self.status() or {}
            return bool(status)

        await wait_for(listening, START_TIMEOUT, lambda: "the server's control socket")
        wanted = {f"phones udp:{HOST}:{self.port}", f"phones tcp:{HOST}:{self.port}"}
        if not wanted <= set(status["listening"]):
            raise BenchmarkError(f"server listens on {status['listening']}, not {wanted}")
        for entry in status["listening"]:
            if entry.startswith("csta tcp:"):
                self.csta_port = int(entry.rsplit(":", 1)[1])
        return status

    async def status(self) -> dict[str, Any] | None:
        from uacsta.control import call

        answer = await call(self.sock, {"cmd": "status"}, timeout=10.0)
        if answer is None or not answer.get("ok"):
            return None
        status: dict[str, Any] = answer["status"]
        return status

    async def wait_ready(self, phones: int, timeout: float) -> None:
        """Poll the control socket until ``phones`` phones are ``ready``."""
        counts: dict[str, int] = {}

        async def all_ready() -> bool:
            nonlocal counts
            status = await self.status()
            if status is None:
                raise BenchmarkError(f"server stopped answering:\n{self.tail()}")
            counts = {k: v for k, v in status["phones"].items() if v}
            return counts.get("ready", 0) >= phones

        await wait_for(
            all_ready, timeout, lambda: f"{phones} phones ready; reached {counts}:\n{self.tail()}"
        )

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kb(self.pid)

    async def stop(self) -> tuple[int | None, float]:
        """SIGTERM; the exit code (None if it had to be killed) and the seconds it took."""
        if self.proc is None or self.proc.returncode is not None:
            return (None if self.proc is None else self.proc.returncode), 0.0
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            code = None
        return code, time.perf_counter() - start

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def instrumented_server(config: str, out: str) -> None:
    """The real server (``uacsta serve``) plus timestamps taken inside it, written to ``out``
    as JSON on exit. ``perf_counter`` calls and list appends are the whole cost.

    ``fanout``: (ended at, seconds, frames) for every datagram from a phone whose handling
    queued frames for
    CSTA-over-TCP clients, the time from the datagram's arrival (``datagram_received``
    entered) to the end of the gateway's write-out of those frames (every client's bytes
    handed to the kernel, one write per client, in the loop iteration after the datagram or
    sooner, see ``cstatcp.FLUSH_BUDGET``), and the number of frames.

    ``relay``: for every CSTA request relayed to a phone and answered, (time the answer was
    handed to the kernel, seconds the server spent on it): from the client's frame entering
    the gateway to its answer written out, minus the time the phone's INFO transaction took
    (INFO handed to the kernel -> its 200 parsed and matched). The request's start time
    travels with it in a context variable (futures run their callbacks in the context they
    were given them in).

    ``gc``: every garbage collection as (ended at, seconds, generation, unreachable objects
    it freed, CPU seconds of the collecting thread): a collection stops everything, so it
    shows up in latency tails; CPU close to the seconds says it was the collector's work.
    """
    import contextvars
    import gc

    from uacsta import cli
    from uacsta.gateways import cstatcp
    from uacsta.net import udp
    from uacsta.net.useragent import UserAgent

    fanout: list[tuple[float, float, int]] = []
    relay: list[tuple[float, float]] = []
    collections: list[tuple[float, float, int, int]] = []
    gc_started = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if phase == "start":
            gc_started[:] = now, cpu
        else:
            gen, found = int(info["generation"]), int(info["collected"])
            collections.append((now, now - gc_started[0], gen, found, cpu - gc_started[1]))

    gc.callbacks.append(on_gc)
    state = {"frames": 0, "t0": 0.0}
    #: [request in at, seconds in the phone so far] of the client request being handled.
    started: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("t0", default=None)
    waiting: dict[int, list[tuple[float, float]]] = {}
    received = udp.UdpProtocol.datagram_received
    handle_frame = cstatcp.CstaTcpClient._handle_frame
    ua_request = UserAgent.request
    send_frame = cstatcp.CstaTcpClient.send_frame
    client_flush = cstatcp.CstaTcpClient.flush
    flush_soon = cstatcp.CstaTcpGateway._flush_soon

    def timed_datagram(self: Any, data: bytes, addr: Any) -> None:
        if not state["frames"]:  # the earliest datagram whose frames are still queued
            state["t0"] = time.perf_counter()
        received(self, data, addr)

    def timed_handle_frame(self: Any, invoke: str, xml: bytes) -> None:
        token = started.set([time.perf_counter(), 0.0])
        try:
            handle_frame(self, invoke, xml)
        finally:
            started.reset(token)

    def timed_request(self: Any, request: Any, dest: Any, **kwargs: Any) -> Any:
        box = started.get()
        inner = kwargs.get("then")
        if box is not None and inner is not None:
            t0 = time.perf_counter()

            def done(result: Any) -> None:  # before the link's and the hub's handling
                box[1] += time.perf_counter() - t0
                inner(result)

            kwargs["then"] = done
        return ua_request(self, request, dest, **kwargs)

    def counted_frame(self: Any, invoke: str, xml: bytes) -> None:
        send_frame(self, invoke, xml)
        state["frames"] += 1
        box = started.get()
        if box is not None and box[1]:  # an answer the phone gave to a client request
            waiting.setdefault(id(self), []).append((box[0], box[1]))

    def timed_client_flush(self: Any) -> None:
        client_flush(self)
        pending = waiting.pop(id(self), None)
        if pending:
            now = time.perf_counter()
            relay.extend((now, now - t0 - phone) for t0, phone in pending)

    def timed_flush(self: Any) -> None:
        flush_soon(self)  # the end-of-iteration write-out: what earlier ones left
        if state["frames"]:
            now = time.perf_counter()
            fanout.append((now, now - state["t0"], int(state["frames"])))
            state["frames"] = 0

    udp.UdpProtocol.datagram_received = timed_datagram  # type: ignore[method-assign]
    cstatcp.CstaTcpClient._handle_frame = timed_handle_frame  # type: ignore[method-assign]
    UserAgent.request = timed_request  # type: ignore[method-assign]
    cstatcp.CstaTcpClient.send_frame = counted_frame  # type: ignore[method-assign]
    cstatcp.CstaTcpClient.flush = timed_client_flush  # type: ignore[method-assign]
    cstatcp.CstaTcpGateway._flush_soon = timed_flush  # type: ignore[method-assign]
    try:
        cli.serve(pathlib.Path(config))
    finally:
        timings = {"fanout": fanout, "relay": relay, "gc": collections}
        pathlib.Path(out).write_text(json.dumps(timings))


# ---------------------------------------------------------------------- worker processes
class Worker:
    """A child process (spawn) running ``target(conn, spec)``; commands are
    ``(name, *args)`` tuples, answers whatever the child sends back."""

    def __init__(self, target: Callable[..., None], spec: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, spec), daemon=True)
        self.proc.start()
        child.close()

    async def call(self, *command: Any, timeout: float = 600.0) -> Any:
        self.conn.send(command)
        if not await asyncio.to_thread(self.conn.poll, timeout):
            raise BenchmarkError(f"worker did not answer {command[0]} within {timeout}s")
        answer = self.conn.recv()
        if isinstance(answer, dict) and "error" in answer:
            raise BenchmarkError(f"worker failed on {command[0]}: {answer['error']}")
        return answer

    def cpu(self) -> float:
        assert self.proc.pid is not None
        return cpu_seconds(self.proc.pid)

    def rss(self) -> int:
        assert self.proc.pid is not None
        return rss_kb(self.proc.pid)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("exit", timeout=30.0)
        await asyncio.to_thread(self.proc.join, 10.0)
        if self.proc.is_alive():
            self.proc.kill()


def _serve_commands(conn: Any, handlers: dict[str, Callable[..., Awaitable[Any]]]) -> None:
    """The child side: run ``handlers[name](*args)`` for each command until ``exit``."""

    async def loop() -> None:
        while True:
            command = await asyncio.to_thread(conn.recv)
            name, args = command[0], command[1:]
            if name == "exit":
                with contextlib.suppress(Exception):
                    await handlers["close"]()
                conn.send(None)
                return
            try:
                answer = await handlers[name](*args)
            except Exception as exc:  # report, keep serving
                import traceback

                answer = {"error": f"{exc!r}\n{traceback.format_exc()}"}
            conn.send(answer)

    with asyncio.Runner(loop_factory=SourceBindingLoop) as runner:
        runner.run(loop())


# --- the phones ------------------------------------------------------------------------
@dataclass
class _PhoneTimes:
    """In the phone process: when the current datagram/segment arrived, and each answered
    request of the timed service per phone as (arrived, answer sent)."""

    service: bytes = b""
    rx: float = 0.0
    tx: float = 0.0
    per_phone: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def _phones_main(conn: Any, spec: dict[str, Any]) -> None:
    from uacsta.net import stream, udp
    from uacsta.simulator.agent import PhoneAgent
    from uacsta.simulator.runtime import Simulation

    raise_fd_limit(4 * spec["phones"] + 256)
    times = _PhoneTimes(service=spec.get("service", "GetDoNotDisturb").encode())

    # Arrival time of whatever is being handled (UDP datagram or TCP segment), the time the
    # last datagram/segment went out, and each timed request's handling in the dialog.
    datagram_received, sendto = udp.UdpProtocol.datagram_received, udp.UdpProtocol.sendto
    data_received = stream.StreamConnection.data_received
    in_dialog = PhoneAgent._in_dialog

    def on_datagram(self: Any, data: bytes, addr: Any) -> None:
        times.rx = time.perf_counter()
        datagram_received(self, data, addr)

    def on_data(self: Any, data: bytes) -> None:
        times.rx = time.perf_counter()
        data_received(self, data)

    def on_sendto(self: Any, data: bytes, addr: Any) -> None:
        sendto(self, data, addr)
        times.tx = time.perf_counter()

    def on_in_dialog(self: PhoneAgent, sr: Any) -> None:
        rx = times.rx
        in_dialog(self, sr)
        body = sr.request.body
        if times.service and body and times.service in body[:200]:
            times.per_phone.setdefault(self.mac, []).append((rx, time.perf_counter()))

    udp.UdpProtocol.datagram_received = on_datagram  # type: ignore[method-assign]
    udp.UdpProtocol.sendto = on_sendto  # type: ignore[method-assign]
    stream.StreamConnection.data_received = on_data  # type: ignore[method-assign]
    PhoneAgent._in_dialog = on_in_dialog  # type: ignore[method-assign]

    sim: Simulation | None = None
    vendors: list[str] = spec["vendors"]

    async def start() -> float:
        nonlocal sim
        sim = Simulation(
            HOST,
            {spec["transport"]: spec["port"]},
            password=PASSWORD,
            expires=spec.get("expires", 300),
        )
        for i in range(spec["phones"]):
            agent = sim.add_phone(
                vendors[i % len(vendors)], [str(100000 + i)], transport=spec["transport"]
            )
            agent.local_host = phone_address(i)
        first = time.perf_counter()

        async def start_from(agent: PhoneAgent) -> None:
            SOURCE.set(agent.local_host)
            await agent.start()

        agents = list(sim.agents.values())
        step = spec.get("ramp", 0.0) / len(agents)
        starts = []
        for agent in agents:
            starts.append(asyncio.ensure_future(start_from(agent)))
            if step:
                await asyncio.sleep(step)
        await asyncio.gather(*starts)
        return first

    async def devices() -> list[tuple[str, str]]:
        assert sim is not None
        return [(a.mac, a.phone.lines[0].device_id) for a in sim.agents.values()]

    async def linked() -> int:
        assert sim is not None
        return sum(a.linked.is_set() for a in sim.agents.values())

    async def timings() -> dict[str, list[tuple[float, float]]]:
        out, times.per_phone = times.per_phone, {}
        return out

    async def dnd(mac: str, on: bool) -> float:
        """Toggle DND on a phone (a DoNotDisturbEvent per monitor on its line); the time its
        INFO left (after the 2xx came back, so the event has surely been handled)."""
        assert sim is not None
        agent = sim.agents[mac]
        agent.phone.set_dnd(None, on)
        sent_before = times.tx
        sim.flush()
        for _ in range(500):
            await asyncio.sleep(0.002)
            if times.tx != sent_before and agent._outbox.empty():
                break
        await asyncio.sleep(0.01)
        return times.tx

    async def answered(service: str) -> int:
        """CSTA requests of ``service`` the phones answered so far."""
        assert sim is not None
        return sum(a.received[service] for a in sim.agents.values())

    async def cpu() -> float:
        return self_cpu_seconds()

    async def close() -> None:
        if sim is not None:
            await sim.close()

    _serve_commands(
        conn,
        {
            "start": start,
            "devices": devices,
            "linked": linked,
            "timings": timings,
            "dnd": dnd,
            "received": answered,
            "cpu": cpu,
            "close": close,
        },
    )


class PhoneFleet(Worker):
    """``phones`` simulated phones in a process of their own, vendors round-robin."""

    def __init__(
        self,
        port: int,
        phones: int,
        *,
        transport: str = "udp",
        vendors: Sequence[str] | None = None,
        ramp: float = 0.0,
        service: str = "GetDoNotDisturb",
        expires: int = 300,
    ) -> None:
        from uacsta.simulator.runtime import VENDORS

        super().__init__(
            _phones_main,
            {
                "port": port,
                "phones": phones,
                "transport": transport,
                "vendors": list(vendors or VENDORS),
                "ramp": ramp,
                "service": service,
                "expires": expires,
            },
        )


# --- the clients -----------------------------------------------------------------------
def _clients_main(conn: Any, spec: dict[str, Any]) -> None:
    from uacsta.clients.cstatcp import CstaTcpClient
    from uacsta.csta import messages as m

    clients: list[CstaTcpClient] = []
    events: list[list[float]] = []

    async def connect(n: int) -> int:
        for _ in range(n):
            # Each client from its own loopback address (the server admits 64 per address).
            i = len(clients)
            SOURCE.set(f"127.20.{i // 250}.{i % 250 + 1}")
            client = CstaTcpClient()
            await client.connect(HOST, spec["port"])
            await client.login(CLIENT_USER, CLIENT_PASSWORD)
            clients.append(client)
        return len(clients)

    def make(service: str, device: str) -> m.CstaRequest:
        if service == "SnapshotDevice":
            return m.SnapshotDevice(snapshot_object=device)
        return m.GetDoNotDisturb(device=device)

    async def relay(
        devices: list[str], service: str, seconds: float, rate: float | None, total: int | None
    ) -> dict[str, Any]:
        """One worker per device (worker i on client i % clients), one request in flight
        each. ``rate``: requests/s over all workers, paced (open loop per worker: a worker
        late for its slot sends at once); None: as fast as answers come (closed loop).
        ``total``: stop after that many requests in all (else after ``seconds``)."""
        loop = asyncio.get_running_loop()
        per_device: dict[str, list[tuple[float, float, bool]]] = {d: [] for d in devices}
        budget = [total if total is not None else -1]
        start = loop.time()
        deadline = start + seconds
        period = len(devices) / rate if rate else 0.0
        errors: list[str] = []

        async def worker(i: int, device: str) -> None:
            client = clients[i % len(clients)]
            request = make(service, device)
            records = per_device[device]
            slot = start + (i / len(devices)) * period
            while loop.time() < deadline and budget[0] != 0:
                if period:
                    slot += period
                    delay = slot - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if loop.time() >= deadline:
                        break
                budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    answer = await client.request(request)
                except Exception as exc:
                    errors.append(repr(exc))
                    records.append((t0, time.perf_counter(), False))
                    continue
                ok = not isinstance(answer, m.CSTAErrorCode)
                if not ok and len(errors) < 5:
                    errors.append(str(answer))
                records.append((t0, time.perf_counter(), ok))

        await asyncio.gather(*(worker(i, d) for i, d in enumerate(devices)))
        return {"per_device": per_device, "seconds": loop.time() - start, "errors": errors[:5]}

    async def monitor(device: str) -> int:
        """Every client starts a monitor on ``device``; returns the monitors started."""
        started = 0
        for client in clients:
            answer = await client.request(m.MonitorStart(monitor_object=device))
            if isinstance(answer, m.MonitorStartResponse):
                started += 1
        return started

    async def collect(count: int, timeout: float) -> list[float]:
        """Wait for ``count`` events on every client; their arrival times (per event, the
        latest over the clients, as each client's read loop stamped it)."""
        arrivals: list[list[float]] = []
        for client in clients:
            got = []
            for _ in range(count):
                await client.event(timeout)
                got.append(time.perf_counter())
            arrivals.append(got)
        events.extend(arrivals)
        return [max(col) for col in zip(*arrivals, strict=True)]

    async def cpu() -> float:
        return self_cpu_seconds()

    async def close() -> None:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()

    _serve_commands(
        conn,
        {
            "connect": connect,
            "relay": relay,
            "monitor": monitor,
            "collect": collect,
            "cpu": cpu,
            "close": close,
        },
    )


class ClientPool(Worker):
    """CSTA-over-TCP clients (logged in as the benchmark account) in a process of their own."""

    def __init__(self, port: int) -> None:
        super().__init__(_clients_main, {"port": port})


def added_latencies(
    per_device: dict[str, list[tuple[float, float, bool]]],
    phone_times: dict[str, list[tuple[float, float]]],
    mac_of: dict[str, str],
) -> tuple[list[float], list[float], int]:
    """Per request (matched by order per device): (client-observed, added by the server and
    the wire, unmatched devices). Devices whose counts differ are left out whole."""
    observed: list[float] = []
    added: list[float] = []
    unmatched = 0
    for device, records in per_device.items():
        phone = phone_times.get(mac_of[device], [])
        if len(phone) != len(records) or not all(ok for *_, ok in records):
            unmatched += 1
            continue
        for (t0, t1, _ok), (p0, p1) in zip(records, phone, strict=True):
            observed.append(t1 - t0)
            added.append((t1 - t0) - (p1 - p0))
    return observed, added, unmatched


# ---------------------------------------------------------------------- results
def meta(name: str, method: str) -> dict[str, Any]:
    return {
        "benchmark": name,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "method": method,
    }


def cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return str(value)


def markdown_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> list[str]:
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(cell(r.get(key, "")) for key, _ in columns) + " |" for r in rows]
    return lines


def write_results(
    name: str,
    title: str,
    info: dict[str, Any],
    rows: list[dict[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    notes: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> str:
    """``results/<name>.json`` (info + rows + extra) and ``.md``; returns the markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**info, "results": rows, **(extra or {})}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# {title}",
        "",
        f"Python {info['python']} on {info['platform']}, {info['cpus']} CPUs. {info['method']}.",
        "",
        *markdown_table(rows, columns),
    ]
    if notes:
        lines += ["", *notes]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    return text


def pin(server_pid: int, load_pids: Sequence[int]) -> None:
    """The server alone on CPU 0, the load generator (``load_pids``, this process
    included) on the other CPUs: the server's latency without the load generator's wake-ups
    preempting it on a shared core."""
    others = set(range(1, os.cpu_count() or 2)) or {0}
    os.sched_setaffinity(server_pid, {0})
    for pid in (*load_pids, os.getpid()):
        os.sched_setaffinity(pid, others)


def temp_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="uacsta-bench-")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--instrumented-server":
        instrumented_server(sys.argv[2], sys.argv[3])
    else:
        print("benchmarks/common.py: shared helpers of the benchmarks (nothing to run)")
