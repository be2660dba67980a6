"""Calls at a steady rate: what the call tracker and the call journal cost the server per call.

Run: ``.venv/bin/python benchmarks/calls.py [--phones 100] [--rate 100] [--seconds 6]
[--ring 0.2] [--talk 0.5] [--rounds A,B,C,D]``. Writes ``benchmarks/results/calls.json``
and ``.md``.

Processes: the server (``uacsta serve``, production settings, log level WARNING, started by
this file's ``--instrumented-server``, see below), the phones with the call generator (one
process), the CSTA client (one process) and this one. Every round starts a fresh server and
fresh phones: ``--phones`` simulated snom phones over UDP, one line each (``1000``, ``1001``
...), each from its own loopback address, all linked before the calls start.

The call generator (in the phones' process, on the simulator's PBX): ``--rate`` calls/s,
paced (call k starts at t0 + k/rate), for ``--seconds``. An outside number (a new one per
call) calls a random idle line; the line answers after ``--ring`` s; the call is hung up
``--talk`` s later, by the line and by the outside party in turn; every 10th call is not
answered: the outside party gives up after ``--ring`` s (a missed call). A call with no idle
line to go to is skipped and counted.

Rounds (the same settings but ``journal.enabled``, the client and, in T, the tracker):

- **A** ``journal.enabled = false``, no client: the phones have no monitor, so the calls
  make no traffic to the server at all; the baseline (registrations, keep-alives, timers).
- **B** ``journal.enabled = false``, one CSTA-over-TCP client monitoring every line: every
  phone event reaches the server, goes through the switching function and is relayed to the
  client. The call tracker cannot be switched off by a setting: it runs for every monitored
  line (its finished calls are dropped, not journaled), so B includes the tracker.
- **C** ``journal.enabled = true`` and the same client: the server's own monitor on every
  line (sharing the phone's monitor point with the client's), the tracker, the journal rows
  written by the journal writer (batched, in a worker thread).
- **D** ``journal.enabled = true``, no client: what journaling every call costs a server
  nobody watches (the phones send events only because of the server's own monitors).
- **T** B with the call tracker taken out (the launcher's ``--no-tracker``: the switching
  function is built without a tracker; no setting does this, the tracker cannot be switched
  off on its own): events relayed to the client and nothing else. B - T is the tracker.

Per round: the server's CPU time (utime + stime from ``/proc/<pid>/stat``) over the paced
window only (t0 to t0 + ``--seconds``: call starts are spread over it, the ring and talk of
the last calls fall after it and the first calls' hang-ups are missing at its start, which
balance in steady state), divided by the calls started in it (µs per call); also the
sum of the server's threads' ``/proc/<pid>/task/*/schedstat`` run times (ns resolution; the
clock ticks of utime + stime are 10 ms, ~17 µs per call at the defaults). C - B is what the
journal (with its own monitors) adds per call on top of relaying and tracking; D - A
everything journaling every call costs; B - T the tracker. Also: calls started, completed,
missed and skipped; the phone events the server received per completed call; events
relayed to clients (status); journal rows (``sqlite3`` on the database after the server
stopped) and write batches.

The subtractions compare separate runs on a shared 2-core box: run to run, the same round
varies by 10-25 % (200-500 µs per call: under other load the server handles more datagrams
per loop wake-up and spends less per call), as much as the tracker and the journal cost. So
the
launcher (``--instrumented-server``, ``uacsta serve`` with records patched in) also charges
them directly, inside the server, in every round:

- **tracker**: the event loop thread's CPU time (``time.thread_time``) in
  ``CallTracker.event``, ``SwitchingFunction._tracked`` (its output made into actions) and
  ``SwitchHub._notify`` (its notices handed to the webhook service and clients), per
  completed call; the timer's own cost (a clock read at each end, ~1 µs a call) is in it;
- **journal**: the loop's CPU in ``JournalWriter.add`` plus the writer thread's CPU in
  ``JournalStore.add`` (one batch write, timed with its start, end and rows), per completed
  call; the flush task's few wake-ups (every 0.25 s) are not in it. The writer thread holds
  the GIL for SQLAlchemy's Python work: the loop waits for it then, which is what the
  latency split below looks for;
- ``SwitchHub.phone_event`` counts the phone events by type (one dict increment each).

Hence also the batches and rows per batch (the writer counts rows, not batches, and
``status`` shows neither).

"Journal writes never block the event path", measured end to end: for every answered or
missed call, the phone's DeliveredEvent INFO handed to the kernel (``sendto`` returned, in
the phones' process) to the CSTA client's read loop handing the event's frame on (before
its XML is decoded, in the client's process), matched per line by order (a line has one
call at a time); all processes read ``time.perf_counter`` (CLOCK_MONOTONIC). This is the
whole event path (phone -> SIP INFO -> switching function -> tracker -> client frame) and
includes the two load processes' own scheduling delays on the shared cores, similar in B
and C.
p50/p99/max in B and C, and in C split by whether a journal batch write was running in the
worker thread when the phone sent the event: a write that held up the event loop (database
I/O or the GIL) shows up as a higher latency of those events. (Sent-during, not
overlapping: a slow event overlaps more writes because it is slow, which would bias the
split.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import random
import sqlite3
import sys
import time
from collections import Counter
from typing import Any

from common import (
    CLIENT_PASSWORD,
    CLIENT_USER,
    HOST,
    PASSWORD,
    SOURCE,
    BenchmarkError,
    OtherLoad,
    ServerProcess,
    Worker,
    _serve_commands,
    free_port,
    meta,
    phone_address,
    raise_fd_limit,
    self_cpu_seconds,
    temp_folder,
    wait_for,
    write_results,
)
from histogram import Histogram

DEFAULT_PHONES = 100
DEFAULT_RATE = 100.0
DEFAULT_SECONDS = 6.0
DEFAULT_RING = 0.2
DEFAULT_TALK = 0.5
MISSED_EVERY = 10
FIRST_LINE = 1000
#: Round -> (journal.enabled, a CSTA client monitoring every line, the call tracker on,
#: what it is).
ROUNDS: dict[str, tuple[bool, bool, bool, str]] = {
    "A": (False, False, True, "no journal, no client: the calls make no server traffic"),
    "B": (False, True, True, "no journal, 1 client monitors every line: relay + tracker"),
    "C": (True, True, True, "journal, 1 client: relay + tracker + journal"),
    "D": (True, False, True, "journal, no client: own monitors + tracker + journal"),
    "T": (False, True, False, "B with the tracker patched out: relay alone"),
}


# ---------------------------------------------------------------------- the server
def instrumented_server(config: str, out: str, *, tracker: bool = True) -> None:
    """``uacsta serve`` counting phone events by type and timing each journal batch write
    (in the writer's thread: start, end, rows); written to ``out`` as JSON on exit.
    ``tracker=False``: the switching function gets no call tracker (no setting does that)."""
    from uacsta import cli, server
    from uacsta.hub import SwitchHub
    from uacsta.journal.writer import JournalWriter
    from uacsta.store.journal import JournalStore
    from uacsta.switch.calls import CallTracker
    from uacsta.switch.function import SwitchingFunction

    if not tracker:
        server.CallTracker = lambda: None  # type: ignore[assignment,misc]

    events: Counter[str] = Counter()
    batches: list[tuple[float, float, int, float]] = []
    phone_event, store_add = SwitchHub.phone_event, JournalStore.add
    #: Event-loop thread CPU seconds spent in the tracker and in the journal's add.
    charged: dict[str, float] = {"tracker": 0.0, "journal_add": 0.0}

    def charge(cls: Any, name: str, key: str) -> None:
        original = getattr(cls, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu0 = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                charged[key] += time.thread_time() - cpu0

        setattr(cls, name, timed)

    # The tracker's work for an event: the event itself, turning its output into actions,
    # and handing its notices on (webhooks, clients); none of these calls nests another.
    charge(CallTracker, "event", "tracker")
    charge(SwitchingFunction, "_tracked", "tracker")
    charge(SwitchHub, "_notify", "tracker")
    charge(JournalWriter, "add", "journal_add")

    def counted_event(self: Any, phone: str, event: Any) -> None:
        events[type(event).__name__] += 1
        phone_event(self, phone, event)

    def timed_add(self: Any, records: Any) -> int:
        records = list(records)
        t0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            return store_add(self, records)
        finally:
            batches.append((t0, time.perf_counter(), len(records), time.thread_time() - cpu0))

    SwitchHub.phone_event = counted_event  # type: ignore[method-assign]
    JournalStore.add = timed_add  # type: ignore[method-assign]
    try:
        cli.serve(pathlib.Path(config))
    finally:
        timings = {"events": events, "batches": batches, "charged": charged}
        pathlib.Path(out).write_text(json.dumps(timings))


# ---------------------------------------------------------------------- the phones
def _phones_main(conn: Any, spec: dict[str, Any]) -> None:
    """Simulated snom phones (one line each) and the paced call generator."""
    from uacsta.csta import messages as m
    from uacsta.net import udp
    from uacsta.simulator.agent import PhoneAgent
    from uacsta.simulator.runtime import Simulation

    raise_fd_limit(4 * spec["phones"] + 256)
    #: line -> when each DeliveredEvent INFO of the line was handed to the kernel.
    delivered: dict[str, list[float]] = {}
    sent: Counter[str] = Counter()
    pending: list[str | None] = [None]
    documents, sendto = PhoneAgent._documents, udp.UdpProtocol.sendto

    def on_documents(self: PhoneAgent, message: Any) -> list[bytes]:
        out = documents(self, message)
        sent[type(message).__name__] += 1
        if isinstance(message, m.DeliveredEvent) and out:
            pending[0] = self.phone.lines[0].number  # its INFO goes out now (same call)
        return out

    def on_sendto(self: Any, data: bytes, addr: Any) -> None:
        sendto(self, data, addr)
        if pending[0] is not None and b"DeliveredEvent" in data:
            delivered.setdefault(pending[0], []).append(time.perf_counter())
            pending[0] = None

    PhoneAgent._documents = on_documents  # type: ignore[method-assign]
    udp.UdpProtocol.sendto = on_sendto  # type: ignore[method-assign]

    sim: Simulation | None = None
    lines = [str(FIRST_LINE + i) for i in range(spec["phones"])]
    stats: Counter[str] = Counter()
    done = asyncio.Event()
    total = [0]

    async def start() -> int:
        nonlocal sim
        sim = Simulation(HOST, {"udp": spec["port"]}, password=PASSWORD)
        for i, line in enumerate(lines):
            agent = sim.add_phone("snom", [line], transport="udp")
            agent.local_host = phone_address(i)

        async def start_from(agent: PhoneAgent) -> None:
            SOURCE.set(agent.local_host)
            await agent.start()

        await asyncio.gather(*(start_from(a) for a in sim.agents.values()))
        return len(sim.agents)

    async def devices() -> dict[str, str]:
        assert sim is not None
        return {a.phone.lines[0].number: a.phone.lines[0].device_id for a in sim.agents.values()}

    async def start_calls(rate: float, seconds: float, ring: float, talk: float) -> float:
        """Schedule the calls; returns t0 (``perf_counter``), the first call's start."""
        assert sim is not None
        s = sim
        loop = asyncio.get_running_loop()
        rng = random.Random(17)
        busy: set[str] = set()
        stats.clear()
        done.clear()
        delivered.clear()
        sent.clear()
        total[0] = int(rate * seconds)
        answered = [0]

        def check_done() -> None:
            if stats["completed"] + stats["failed"] + stats["skipped"] >= total[0]:
                done.set()

        def finish(line: str, ok: bool) -> None:
            busy.discard(line)
            stats["completed" if ok else "failed"] += 1
            check_done()

        def begin(k: int) -> None:
            idle = [line for line in lines if line not in busy]
            if not idle:
                stats["skipped"] += 1
                check_done()
                return
            line = rng.choice(idle)
            busy.add(line)
            outside = f"0301{k:07d}"
            stats["started"] += 1
            s.incoming_call(line, outside)
            if k % MISSED_EVERY == MISSED_EVERY - 1:
                loop.call_later(ring, give_up, line, outside)
            else:
                loop.call_later(ring, answer, line, outside)

        def answer(line: str, outside: str) -> None:
            if not s.answer(line):
                stats["not_answered"] += 1
                finish(line, False)
                return
            loop.call_later(talk, hang_up, line, outside)

        def hang_up(line: str, outside: str) -> None:
            answered[0] += 1
            if answered[0] % 2:
                ok = s.hangup(line)
                stats["hung_up_by_line"] += ok
            else:
                ok = s.pbx.external_hangup(outside, s.now())
                s.flush()
                stats["hung_up_by_outside"] += ok
            finish(line, ok)

        def give_up(line: str, outside: str) -> None:
            ok = s.pbx.external_hangup(outside, s.now())
            s.flush()
            stats["missed"] += ok
            finish(line, ok)

        t0 = loop.time() + 0.3
        for k in range(total[0]):
            loop.call_at(t0 + k / rate, begin, k)
        if not total[0]:
            done.set()
        return t0  # loop.time() is time.monotonic(): the same clock as perf_counter here

    async def wait_calls(timeout: float) -> dict[str, Any]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
        await asyncio.sleep(0.3)  # the last events' INFOs
        return {"stats": dict(stats), "sent": dict(sent), "delivered": delivered}

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
            "start_calls": start_calls,
            "wait_calls": wait_calls,
            "cpu": cpu,
            "close": close,
        },
    )


class CallPhones(Worker):
    def __init__(self, port: int, phones: int) -> None:
        super().__init__(_phones_main, {"port": port, "phones": phones})


# ---------------------------------------------------------------------- the client
def _client_main(conn: Any, spec: dict[str, Any]) -> None:
    """One CSTA-over-TCP client; every event frame stamped as its read loop hands it on."""
    from uacsta.clients.cstatcp import CstaTcpClient
    from uacsta.csta import messages as m

    client = CstaTcpClient()
    device_of: dict[str, str] = {}
    arrivals: dict[str, list[float]] = {}
    received: Counter[str] = Counter()
    unsolicited = CstaTcpClient._unsolicited

    def stamped(self: CstaTcpClient, invoke: str, xml: bytes) -> None:
        at = time.perf_counter()
        unsolicited(self, invoke, xml)
        while not self.events.empty():
            event = self.events.get_nowait()
            received[type(event).__name__] += 1
            if isinstance(event, m.DeliveredEvent):
                device = device_of.get(event.monitor_cross_ref_id, "?")
                arrivals.setdefault(device, []).append(at)

    CstaTcpClient._unsolicited = stamped  # type: ignore[method-assign]

    async def connect() -> None:
        SOURCE.set("127.20.0.1")
        await client.connect(HOST, spec["port"])
        await client.login(CLIENT_USER, CLIENT_PASSWORD)

    async def monitor(devices: list[str]) -> int:
        for device in devices:
            answer = await client.request(m.MonitorStart(monitor_object=device))
            if isinstance(answer, m.MonitorStartResponse):
                device_of[answer.monitor_cross_ref_id] = device
        return len(device_of)

    async def results() -> dict[str, Any]:
        out = {"arrivals": dict(arrivals), "received": dict(received)}
        arrivals.clear()
        received.clear()
        return out

    async def cpu() -> float:
        return self_cpu_seconds()

    async def close() -> None:
        with contextlib.suppress(Exception):
            await client.close()

    _serve_commands(
        conn,
        {"connect": connect, "monitor": monitor, "results": results, "cpu": cpu, "close": close},
    )


class CallClient(Worker):
    def __init__(self, port: int) -> None:
        super().__init__(_client_main, {"port": port})


# ---------------------------------------------------------------------- one round
def run_seconds(pid: int) -> float | None:
    """CPU time of ``pid``'s live threads in ns resolution (``/proc/<pid>/task/*/schedstat``,
    first field), None where the kernel has no schedstat. utime + stime counts in clock ticks
    (10 ms here), too coarse for differences of a few µs per call over a few hundred calls;
    a thread that ends is missing from this sum (the server's worker threads stay)."""
    total = 0
    try:
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def summary(h: Histogram) -> dict[str, float] | None:
    return h.summary_ms() if h.count else None


def journal_rows(db: pathlib.Path) -> int | None:
    if not db.exists():
        return None
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM call_journal").fetchone()[0])
        except sqlite3.OperationalError:
            return None


def event_latencies(
    sent: dict[str, list[float]],
    arrivals: dict[str, list[float]],
    numbers: dict[str, str],
) -> tuple[list[tuple[float, float]], int]:
    """(phone sent, client read) per DeliveredEvent, matched per line by order; lines whose
    counts differ are left out (returned: how many)."""
    pairs: list[tuple[float, float]] = []
    unmatched = 0
    for number, device in numbers.items():
        out, got = sent.get(number, []), arrivals.get(device, [])
        if len(out) != len(got):
            unmatched += 1
            continue
        pairs += zip(out, got, strict=True)
    return pairs, unmatched


async def run_round(name: str, args: argparse.Namespace) -> dict[str, Any]:
    journal, with_client, tracker, what = ROUNDS[name]
    with temp_folder() as tmp:
        folder = pathlib.Path(tmp)
        server = ServerProcess(
            folder,
            free_port(),
            launcher=str(pathlib.Path(__file__).resolve()),
            launcher_args=() if tracker else ("--no-tracker",),
            journal_enabled=journal,
        )
        phones: CallPhones | None = None
        client: CallClient | None = None
        try:
            await server.start()
            phones = CallPhones(server.port, args.phones)
            await phones.call("start")
            await server.wait_ready(args.phones, 60.0)
            numbers: dict[str, str] = await phones.call("devices")
            if with_client:
                client = CallClient(server.csta_port)
                await client.call("connect")
                started = await client.call("monitor", list(numbers.values()))
                if started != args.phones:
                    raise BenchmarkError(f"{started} of {args.phones} client monitors started")
            status: dict[str, Any] = {}

            async def monitored() -> bool:
                nonlocal status
                status = await server.status() or {}
                return status.get("phone_monitors", 0) >= args.phones

            if journal or with_client:
                await wait_for(monitored, 30.0, lambda: f"phone monitors: {status}")
            await asyncio.sleep(0.5)  # the link set-ups' last messages
            before = await server.status() or {}
            t0 = await phones.call("start_calls", args.rate, args.seconds, args.ring, args.talk)
            pids = [server.pid, phones.proc.pid or 0, os.getpid()]
            if client is not None:
                pids.append(client.proc.pid or 0)
            await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
            cpu0, load_cpu0 = server.cpu(), phones.cpu() + (client.cpu() if client else 0.0)
            run0 = run_seconds(server.pid)
            other = OtherLoad(pids)
            await asyncio.sleep(max(0.0, t0 + args.seconds - time.perf_counter()))
            cpu, run1 = server.cpu() - cpu0, run_seconds(server.pid)
            load_cpu = phones.cpu() + (client.cpu() if client else 0.0) - load_cpu0
            other_cores = other.cores()
            calls = await phones.call("wait_calls", args.ring + args.talk + 30.0)
            await asyncio.sleep(0.6)  # the journal writer's last batch (every 0.25 s)
            after = await server.status() or {}
            got = await client.call("results") if client is not None else None
            code, _ = await server.stop()
            if code != 0:
                raise BenchmarkError(f"server exit code {code}:\n{server.tail()}")
            timings = json.loads(server.timings_path.read_text())
            rows = journal_rows(folder / "data" / "uacsta.db")
        finally:
            await server.stop()
            if client is not None:
                await client.close()
            if phones is not None:
                await phones.close()
    run = None if run0 is None or run1 is None else run1 - run0
    stats = calls["stats"]
    started, completed = stats.get("started", 0), stats.get("completed", 0)
    phone_events = sum(timings["events"].values())
    batches = timings["batches"]
    in_window = [b for b in batches if t0 <= b[0] <= t0 + args.seconds]
    write_ms = Histogram()
    write_ms.record_many(end - start for start, end, *_ in batches)
    write_cpu = sum(b[3] for b in batches)
    charged = timings["charged"]

    def per_call(seconds: float) -> float | None:
        return round(seconds / completed * 1e6, 1) if completed else None

    r: dict[str, Any] = {
        "round": name,
        "journal": journal,
        "client": with_client,
        "tracker": tracker,
        "what": what,
        "calls_started": started,
        "calls_completed": completed,
        "calls_missed": stats.get("missed", 0),
        "calls_failed": stats.get("failed", 0),
        "calls_skipped": stats.get("skipped", 0),
        "server_cpu_s": round(cpu, 3),
        "server_us_per_call": round(cpu / started * 1e6, 1) if started else None,
        "server_cpu_share": round(cpu / args.seconds, 3),
        "server_run_s": None if run is None else round(run, 4),
        "server_run_us_per_call": round(run / started * 1e6, 1) if started and run else None,
        "load_generator_cpu_s": round(load_cpu, 2),
        "other_processes_cores": other_cores,
        "phone_events": dict(timings["events"]),
        "phone_events_per_call": round(phone_events / completed, 2) if completed else None,
        "phone_events_sent": calls["sent"],
        "events_relayed": after.get("events_relayed", 0) - before.get("events_relayed", 0),
        "server_monitors": after.get("server_monitors"),
        "journal_rows": rows,
        "journal_batches": len(batches),
        "journal_batches_in_window": len(in_window),
        "journal_rows_per_batch": round(sum(b[2] for b in batches) / len(batches), 1)
        if batches
        else None,
        "journal_write": summary(write_ms),
        "journal_thread_cpu_s": round(write_cpu, 4),
        "journal_thread_us_per_row": round(write_cpu / rows * 1e6, 1) if rows else None,
        "tracker_cpu_s": round(charged["tracker"], 4),
        "tracker_us_per_call": per_call(charged["tracker"]),
        "journal_add_us_per_call": per_call(charged["journal_add"]),
        "journal_thread_us_per_call": per_call(write_cpu),
        "journal_us_per_call": per_call(charged["journal_add"] + write_cpu),
        "server_exit_code": code,
    }
    if got is not None:
        pairs, unmatched = event_latencies(calls["delivered"], got["arrivals"], numbers)
        h, during, clear = Histogram(), Histogram(), Histogram()
        for sent_at, read_at in pairs:
            h.record(read_at - sent_at)
            busy = any(b0 <= sent_at <= b1 for b0, b1, *_ in batches)
            (during if busy else clear).record(read_at - sent_at)
        r["client_events"] = got["received"]
        r["delivered_matched"] = h.count
        r["delivered_unmatched_lines"] = unmatched
        r["delivered"] = summary(h)
        r["delivered_during_write"] = summary(during)
        r["delivered_during_write_count"] = during.count
        r["delivered_no_write"] = summary(clear)
    return r


COLUMNS = (
    ("round", "round"),
    ("what", "setting"),
    ("calls_started", "calls"),
    ("calls_completed", "completed"),
    ("calls_missed", "missed"),
    ("server_cpu_s", "server CPU s (window)"),
    ("server_us_per_call", "server µs CPU / call"),
    ("server_run_us_per_call", "same, schedstat ns"),
    ("tracker_us_per_call", "tracker µs CPU / call (inside)"),
    ("journal_us_per_call", "journal µs CPU / call (inside)"),
    ("phone_events_per_call", "phone events / call"),
    ("events_relayed", "events relayed"),
    ("journal_rows", "journal rows"),
    ("journal_batches", "write batches"),
    ("journal_rows_per_batch", "rows / batch"),
    ("journal_write_p99_ms", "batch write p99 ms"),
    ("delivered_p50_ms", "Delivered phone->client p50 ms"),
    ("delivered_p99_ms", "p99 ms"),
    ("delivered_max_ms", "max ms"),
    ("delivered_during_write_count", "events during a write"),
    ("delivered_during_write_p50_ms", "their p50 ms"),
    ("delivered_no_write_p50_ms", "the others' p50 ms"),
    ("other_processes_cores", "other load (cores)"),
)


def flatten(r: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in r.items() if not isinstance(v, dict)}
    for part in ("journal_write", "delivered", "delivered_during_write", "delivered_no_write"):
        for key, value in (r.get(part) or {}).items():
            row[f"{part}_{key.replace('.', '')}"] = value
    return row


def differences(rounds: dict[str, dict[str, Any]]) -> dict[str, float]:
    """C-B and D-A in µs per call, from utime+stime and (``..._schedstat``) from schedstat."""
    out: dict[str, float] = {}
    for a, b, key in (("C", "B", "C-B"), ("D", "A", "D-A"), ("B", "T", "B-T")):
        for field, suffix in (("server_us_per_call", ""), ("server_run_us_per_call", "_schedstat")):
            if a in rounds and b in rounds:
                x, y = rounds[a][field], rounds[b][field]
                if x is not None and y is not None:
                    out[key + suffix] = round(x - y, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=DEFAULT_PHONES)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="calls/s")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--ring", type=float, default=DEFAULT_RING)
    parser.add_argument("--talk", type=float, default=DEFAULT_TALK)
    parser.add_argument("--rounds", default="A,B,C,D,T", help="which of A,B,C,D,T, in order")
    args = parser.parse_args(argv)
    names = [n.strip().upper() for n in args.rounds.split(",") if n.strip()]
    if not names or any(n not in ROUNDS for n in names):
        parser.error(f"--rounds: some of {','.join(ROUNDS)}")
    if not 1 <= args.phones <= 1000 or args.rate <= 0 or args.seconds <= 0:
        parser.error("1..1000 phones, a positive rate and duration")
    rounds: dict[str, dict[str, Any]] = {}
    try:
        for name in names:
            rounds[name] = asyncio.run(run_round(name, args))
            print(f"round {name}: {rounds[name]['server_us_per_call']} µs/call", flush=True)
    except BenchmarkError as exc:
        print(f"calls: FAILED: {exc}", file=sys.stderr)
        return 1
    diff = differences(rounds)
    info = meta(
        "calls",
        f"{args.phones} snom UDP phones (one line each), {args.rate:g} calls/s for "
        f"{args.seconds:g} s: ring {args.ring:g} s, talk {args.talk:g} s, every "
        f"{MISSED_EVERY}th call missed; server CPU over the paced window / calls started; "
        "DeliveredEvent latency = client read - phone's INFO sent, matched per line "
        "(one clock); each round a fresh server and fresh phones",
    )
    notes = [
        f"C - B (journal writer and rows, own monitors shared with the client's): "
        f"{diff.get('C-B', '-')} µs server CPU per call (utime+stime), "
        f"{diff.get('C-B_schedstat', '-')} µs (schedstat).",
        f"D - A (everything journaling every call costs a server nobody watches): "
        f"{diff.get('D-A', '-')} µs server CPU per call (utime+stime), "
        f"{diff.get('D-A_schedstat', '-')} µs (schedstat).",
        f"B - T (the call tracker, switched off by a patch: no setting does it): "
        f"{diff.get('B-T', '-')} µs server CPU per call (utime+stime), "
        f"{diff.get('B-T_schedstat', '-')} µs (schedstat).",
        "The tracker runs for every monitored line whatever journal.enabled says, so B "
        "includes it and C - B is the journal writer and its rows, not the tracker.",
        "The subtractions compare separate runs on a shared box (10-25 % run to run); the "
        "'inside' columns charge the tracker and the journal directly, in the server's "
        "threads, and are the figures to quote.",
        "Other load: CPU used by processes outside the benchmark during the window, in cores "
        "(2 on this box); latencies and, less so, CPU figures taken while it is high are not "
        "comparable with quiet runs.",
        "Events during a write: DeliveredEvents the phone sent while a journal batch write "
        "ran in the writer's thread (C).",
        f"Command: `python benchmarks/calls.py --phones {args.phones} --rate {args.rate:g} "
        f"--seconds {args.seconds:g} --ring {args.ring:g} --talk {args.talk:g} "
        f"--rounds {','.join(names)}`.",
    ]
    rows = [flatten(rounds[n]) for n in names]
    text = write_results(
        "calls",
        "Calls: tracker and journal cost",
        info,
        rows,
        COLUMNS,
        notes=notes,
        extra={"differences_us_per_call": diff, "rounds": rounds},
    )
    print(text, end="")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--instrumented-server":
        instrumented_server(sys.argv[2], sys.argv[3], tracker="--no-tracker" not in sys.argv)
    else:
        sys.exit(main())
