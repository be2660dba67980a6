"""Soak test: the real server in its own process under a steady call load for minutes.

    .venv/bin/python tools/soak.py --minutes 3 --phones 20 --clients 2 --rate 2

``uacsta serve`` runs as a subprocess (loopback ports, a temporary data directory). In this
process: N simulated phones (every vendor, UDP and TCP), M CSTA-over-TCP clients that each
monitor every line, and a call generator: MakeCall from a random client between a random pair of
idle lines, the callee answers (simulated user), the call is held for a random time, then
ended by a ClearConnection from a client or by a simulated user hanging up.

Checked: every call produces Delivered, Established and ConnectionCleared on both lines at every
client (a missing one is a lost sequence); no OutOfService during the run; the server's resident
memory (sampled every few seconds) does not grow by more than ``--max-rss-growth`` MB between
the end of the warm-up and the end; nothing is left once the calls stop (client monitors, phone
monitors); no ERROR in the server log; SIGTERM ends the server with exit code 0.
Exit status 0 when all holds, 1 otherwise; the figures are printed (and written as JSON with
``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uacsta.clients.cstatcp import CstaTcpClient
from uacsta.control import call as control_call
from uacsta.csta import appsession as ecma354
from uacsta.csta import messages as m
from uacsta.simulator.runtime import VENDORS, Simulation

PASSWORD = "soak-phone-secret"
REQUIRED = ("DeliveredEvent", "EstablishedEvent", "ConnectionClearedEvent")
#: How long one step of a call (ringing to answered, hang-up to cleared) may take.
STEP_TIMEOUT = 10.0


def free_port(*, udp_too: bool = False) -> int:
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


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------ the server
class ServerProcess:
    def __init__(self, workdir: Path, keepalive: int) -> None:
        self.data = workdir / "data"
        self.sock = self.data / "uacsta.sock"
        self.log = workdir / "server.log"
        self.phone_port = free_port(udp_too=True)
        self.csta_port = free_port()
        self.config = workdir / "uacsta.toml"
        self.config.write_text(
            f"""
[phones]
listen = ["udp:127.0.0.1:{self.phone_port}", "tcp:127.0.0.1:{self.phone_port}"]
password = "{PASSWORD}"
keepalive_interval = {keepalive}

[clients]
sip_listen = ["tcp:127.0.0.1:{free_port()}"]
csta_listen = ["tcp:127.0.0.1:{self.csta_port}"]
[[clients.accounts]]
name = "soak"
password = "soak-secret"

[store]
path = "{self.data}"

[http]
listen = "tcp:127.0.0.1:{free_port()}"

[log]
level = "WARNING"
"""
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "uacsta.cli", "serve", "--config", str(self.config),
                stdout=log, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while await self.control("status") is None:
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; log:\n{self.log.read_text()}")
            await asyncio.sleep(0.1)

    async def control(self, cmd: str) -> dict[str, Any] | None:
        return await control_call(self.sock, {"cmd": cmd}, timeout=5.0)

    async def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            return None

    def errors(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [ln for ln in text.splitlines() if " ERROR " in ln or "Traceback" in ln]


# ------------------------------------------------------------------------------ calls
@dataclass
class Call:
    number: int
    caller: str
    callee: str
    #: (client index, line) -> names of the events seen for this call
    seen: dict[tuple[int, str], set[str]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def saw(self, client: int, line: str, name: str) -> None:
        self.seen.setdefault((client, line), set()).add(name)
        self.changed.set()

    def all_saw(self, clients: int, name: str) -> bool:
        return all(
            name in self.seen.get((c, line), set())
            for c in range(clients)
            for line in (self.caller, self.callee)
        )

    def missing(self, clients: int) -> list[str]:
        out = []
        for c in range(clients):
            for line in (self.caller, self.callee):
                lacking = [n for n in REQUIRED if n not in self.seen.get((c, line), set())]
                if lacking:
                    out.append(f"client {c} line {line}: no {', '.join(lacking)}")
        return out

    async def until(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True


class Soak:
    def __init__(self, args: argparse.Namespace, server: ServerProcess) -> None:
        self.args = args
        self.server = server
        self.rng = random.Random(args.seed)
        self.lines = [str(1000 + i) for i in range(args.phones)]
        self.sim = Simulation(
            "127.0.0.1",
            {"udp": server.phone_port, "tcp": server.phone_port},
            password=PASSWORD,
            min_se=90,
        )
        self.clients: list[CstaTcpClient] = []
        self.xrefs: list[dict[str, str]] = []  # per client: monitorCrossRefID -> line
        self.active: dict[str, Call] = {}
        self.counter = itertools.count(1)
        self.events: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.lost: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.rss: list[tuple[float, int]] = []

    # --- set-up ----------------------------------------------------------------------------
    async def setup(self) -> None:
        for i, line in enumerate(self.lines):
            vendor = VENDORS[i % len(VENDORS)]
            self.sim.add_phone(vendor, [line], transport="udp" if i % 2 else "tcp")
        await self.sim.start()
        self.sim.auto_answer(self.args.answer_after)
        deadline = time.monotonic() + 30
        while True:
            status = await self.server.control("status")
            ready = (status or {}).get("status", {}).get("phones", {}).get("ready", 0)
            if ready == self.args.phones:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {ready} of {self.args.phones} phones ready")
            await asyncio.sleep(0.2)
        for index in range(self.args.clients):
            client = CstaTcpClient()
            await client.connect("127.0.0.1", self.server.csta_port)
            await client.login("soak", "soak-secret", duration=300)
            self.clients.append(client)
            xrefs: dict[str, str] = {}
            self.xrefs.append(xrefs)
            for line in self.lines:
                answer = await client.request(m.MonitorStart(monitor_object=line))
                if not isinstance(answer, m.MonitorStartResponse):
                    raise SystemExit(f"MonitorStart {line}: {answer}")
                xrefs[answer.monitor_cross_ref_id] = line
            self.spawn(self.reader(index, client))
            self.spawn(self.session_keepalive(client))

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- clients ---------------------------------------------------------------------------
    async def reader(self, index: int, client: CstaTcpClient) -> None:
        xrefs = self.xrefs[index]
        while True:
            message = await client.events.get()
            name = type(message).__name__
            if isinstance(message, m.UnknownMessage):
                name = message.name
            self.events[name] += 1
            if not isinstance(message, m.CstaEvent):
                continue
            line = xrefs.get(message.monitor_cross_ref_id or "")
            if line is None:
                self.stats["events for unknown monitors"] += 1
                continue
            call = self.active.get(line)
            if call is not None:
                call.saw(index, line, name)
            elif name in REQUIRED:
                self.stats["events outside any call"] += 1

    async def session_keepalive(self, client: CstaTcpClient) -> None:
        while True:
            await asyncio.sleep(60)
            assert client.session_id is not None
            reset = ecma354.ResetApplicationSessionTimer(session_id=client.session_id)
            await client._exchange(ecma354.encode_appsession(reset))

    # --- calls -----------------------------------------------------------------------------
    async def generate(self, until: float) -> None:
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            idle = [line for line in self.lines if line not in self.active]
            if len(idle) < 2:
                self.stats["skipped: no idle pair"] += 1
                continue
            caller, callee = self.rng.sample(idle, 2)
            call = Call(next(self.counter), caller, callee)
            self.active[caller] = self.active[callee] = call
            self.spawn(self.one_call(call))

    async def one_call(self, call: Call) -> None:
        n = len(self.clients)
        self.stats["calls"] += 1
        try:
            client = self.rng.choice(self.clients)
            made = await client.request(
                m.MakeCall(calling_device=call.caller, called_directory_number=call.callee)
            )
            if not isinstance(made, m.MakeCallResponse) or made.calling_device is None:
                self.stats["MakeCall refused"] += 1
                self.lost.append(f"call {call.number} {call.caller}->{call.callee}: {made}")
                await asyncio.sleep(1)  # let whatever happened settle before freeing the lines
                return
            if not await call.until(lambda: call.all_saw(n, "EstablishedEvent"), STEP_TIMEOUT):
                self.stats["not established in time"] += 1
            await asyncio.sleep(self.rng.uniform(self.args.hold_min, self.args.hold_max))
            if self.rng.random() < 0.5:
                self.stats["ended by ClearConnection"] += 1
                clear = m.ClearConnection(connection_to_be_cleared=made.calling_device)
                answer = await self.rng.choice(self.clients).request(clear)
                if not isinstance(answer, m.ClearConnectionResponse):
                    self.stats["ClearConnection refused"] += 1
            else:
                self.stats["ended by a user hanging up"] += 1
                self.sim.hangup(self.rng.choice((call.caller, call.callee)))
            await call.until(lambda: call.all_saw(n, "ConnectionClearedEvent"), STEP_TIMEOUT)
            missing = call.missing(n)
            if missing:
                self.stats["lost sequences"] += len(missing)
                self.lost.extend(f"call {call.number}: {text}" for text in missing)
            else:
                self.stats["complete calls"] += 1
        except Exception as exc:
            self.stats["call errors"] += 1
            self.lost.append(f"call {call.number}: {type(exc).__name__}: {exc}")
        finally:
            for line in (call.caller, call.callee):
                if self.active.get(line) is call:
                    del self.active[line]

    # --- memory ----------------------------------------------------------------------------
    async def sample_rss(self, pid: int) -> None:
        start = time.monotonic()
        while True:
            kib = rss_kib(pid)
            if kib is not None:
                self.rss.append((time.monotonic() - start, kib))
            await asyncio.sleep(self.args.sample)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            await client.close()
        await self.sim.close()


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="uacsta-soak-"))
    server = ServerProcess(workdir, args.keepalive)
    await server.start()
    assert server.proc is not None
    pid = server.proc.pid
    soak = Soak(args, server)
    failures: list[str] = []
    started = time.monotonic()
    try:
        await soak.setup()
        soak.spawn(soak.sample_rss(pid))
        calls_from = time.monotonic()
        duration = args.minutes * 60
        warmup = min(60.0, duration * 0.2)
        generator = asyncio.get_running_loop().create_task(soak.generate(calls_from + duration))
        await asyncio.sleep(warmup)
        baseline = rss_kib(pid) or 0
        await generator
        while soak.active:  # the calls in progress finish
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        end_rss = rss_kib(pid) or 0
        status = ((await server.control("status")) or {}).get("status", {})
    finally:
        await soak.close()
    rc = await server.stop()
    elapsed = time.monotonic() - started

    expected_monitors = args.phones * args.clients
    if soak.stats["lost sequences"] or soak.lost:
        failures.append(f"{len(soak.lost)} lost sequences or failed calls")
    if soak.events["OutOfServiceEvent"]:
        failures.append(f"{soak.events['OutOfServiceEvent']} OutOfService events")
    growth_mb = (end_rss - baseline) / 1024
    if growth_mb > args.max_rss_growth:
        failures.append(f"RSS grew {growth_mb:.1f} MB after warm-up (limit {args.max_rss_growth})")
    if status.get("monitors") != expected_monitors or status.get("phone_monitors") != args.phones:
        failures.append(
            f"server holds {status.get('monitors')} client monitors and "
            f"{status.get('phone_monitors')} phone monitors, expected {expected_monitors} and "
            f"{args.phones}"
        )
    if status.get("phones", {}).get("ready") != args.phones:
        failures.append(f"phones by state at the end: {status.get('phones')}")
    errors = server.errors()
    if errors:
        failures.append(f"{len(errors)} ERROR lines in the server log")
    if rc != 0:
        failures.append(f"server exit code {rc} after SIGTERM")

    rss_values = [kib for _, kib in soak.rss]
    figures = {
        "minutes_of_calls": args.minutes,
        "elapsed_s": round(elapsed, 1),
        "phones": args.phones,
        "clients": args.clients,
        "rate_per_s": args.rate,
        "calls": soak.stats["calls"],
        "complete_calls": soak.stats["complete calls"],
        "lost_sequences": soak.stats["lost sequences"],
        "events_total": sum(soak.events.values()),
        "events": dict(soak.events.most_common()),
        "stats": dict(soak.stats),
        "rss_mb": {
            "start": round(rss_values[0] / 1024, 1) if rss_values else None,
            "after_warmup": round(baseline / 1024, 1),
            "end": round(end_rss / 1024, 1),
            "max": round(max(rss_values) / 1024, 1) if rss_values else None,
            "growth_after_warmup": round(growth_mb, 1),
            "samples": len(rss_values),
        },
        "server_status_at_end": status,
        "server_exit_code": rc,
        "server_log": str(server.log),
        "failures": failures,
        "first_losses": soak.lost[:20],
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print("SOAK " + ("FAILED: " + "; ".join(failures) if failures else "PASSED"))
    for line in errors[:20]:
        print("  server:", line)
    if failures or args.keep:
        print(f"server data and log kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="minutes of calls")
    parser.add_argument("--phones", type=int, default=40, help="simulated phones (one line each)")
    parser.add_argument("--clients", type=int, default=3, help="CSTA clients monitoring all")
    parser.add_argument("--rate", type=float, default=3.0, help="new calls per second")
    parser.add_argument("--hold-min", type=float, default=1.0, help="shortest call (s)")
    parser.add_argument("--hold-max", type=float, default=6.0, help="longest call (s)")
    parser.add_argument("--answer-after", type=float, default=0.5, help="ringing time (s)")
    parser.add_argument("--keepalive", type=int, default=10, help="phones.keepalive_interval")
    parser.add_argument("--sample", type=float, default=3.0, help="RSS sampling period (s)")
    parser.add_argument(
        "--max-rss-growth", type=float, default=16.0, help="MB allowed after the warm-up"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the data and log directory")
    args = parser.parse_args()
    if args.phones < 2 or args.clients < 1 or args.rate <= 0 or args.minutes <= 0:
        parser.error("need at least 2 phones, 1 client, a positive rate and duration")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
