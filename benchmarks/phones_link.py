"""N simulated phones register and link against a real uacsta server on loopback.

Run: ``.venv/bin/python benchmarks/phones_link.py --phones 1000 [--transport udp|tcp]
[--vendors yealink,snom,...] [--ramp SECONDS]``. Writes ``benchmarks/results/phones_link.json``
and ``.md`` next to this file and prints the table.

The server runs as a separate process (``python -m uacsta.cli serve --config <tmp toml>``):
a free port for phones (UDP and TCP on the same number, as 5060 in production), client
listeners on ephemeral ports, the data directory in a temporary directory, log level WARNING,
every timer (keep-alive, session, registration expiry, CSTA timeout) at its production
default. Once its control socket answers, its idle RSS is read from ``/proc/<pid>/status``.
Then the phone simulator (:class:`uacsta.simulator.runtime.Simulation`, one real SIP user
agent with its own socket per phone) runs in this process, on the other core: by default all
phones start at once (the burst after a power cut, the worst case); ``--ramp`` spreads the
starts evenly over that many seconds instead. The control socket is polled until every phone
is ``ready``; the figure is the wall time from the first REGISTER sent to all phones ready.
Then the server's RSS and CPU time (utime + stime from ``/proc/<pid>/stat``) are read, the
server gets SIGTERM (it says BYE to every phone, which the still-running simulation answers)
and must exit 0 within a timeout; the simulation is closed last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
from typing import Any

from common import (
    SOURCE,
    BenchmarkError,
    ServerProcess,
    SourceBindingLoop,
    cpu_seconds,
    free_port,
    listen_overflows,
    phone_address,
    raise_fd_limit,
    rss_kb,
    self_cpu_seconds,
    udp_drops,
    wait_for,
)
from uacsta.simulator.agent import PhoneAgent
from uacsta.simulator.runtime import VENDORS, Simulation

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "results"
PASSWORD = "bench-secret"
HOST = "127.0.0.1"
#: ``make bench`` runs this with no arguments; 1000 phones take well under a minute here.
DEFAULT_PHONES = 1000
#: UDP runs vary with the retransmission timers (see benchmarks/README.md): median of 3.
DEFAULT_REPEAT = 3
POLL_INTERVAL = 0.05
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0


# ---------------------------------------------------------------------- /proc readings


# ---------------------------------------------------------------------- server process


# ---------------------------------------------------------------------- the run
async def start_from(agent: PhoneAgent) -> None:
    """Start a phone; its tasks (hence its connections) inherit its source address."""
    SOURCE.set(agent.local_host)
    await agent.start()


def time_first_register(agent: PhoneAgent, first: list[float]) -> None:
    """Record in ``first`` when the first REGISTER of the run goes out."""
    register = agent.register

    async def timed_register(expires: int | None = None) -> int:
        if not first:
            first.append(time.perf_counter())
        return await register(expires)

    agent.register = timed_register  # type: ignore[method-assign]


async def run(
    phones: int, transport: str, vendors: list[str], ramp: float, timeout: float, settle: float
) -> dict[str, Any]:
    needed = (2 * phones if transport == "tcp" else phones) + 256  # listener (+ connection)
    reached = raise_fd_limit(needed)
    if reached < needed:
        raise BenchmarkError(
            f"{phones} simulated {transport} phones need {needed} open files in this process; "
            f"the limit is {reached} (raise the hard limit, ulimit -Hn, or run fewer phones)"
        )
    with tempfile.TemporaryDirectory(prefix="uacsta-bench-") as tmp:
        folder = pathlib.Path(tmp)
        server = ServerProcess(folder, free_port())
        sim = Simulation(HOST, {transport: server.port}, password=PASSWORD)
        first_register: list[float] = []
        for i in range(phones):
            agent = sim.add_phone(vendors[i % len(vendors)], [str(100000 + i)], transport=transport)
            agent.local_host = phone_address(i)  # its socket, Via and Contact
            time_first_register(agent, first_register)
        counts: dict[str, int] = {}
        try:
            await server.start()
            await asyncio.sleep(0.5)  # let start-up allocations settle
            idle_kb = rss_kb(server.pid)
            cpu_idle = cpu_seconds(server.pid)
            bench_cpu = self_cpu_seconds()
            overflows = listen_overflows()
            agents = list(sim.agents.values())
            step = ramp / len(agents)
            starts = []
            for agent in agents:
                starts.append(asyncio.ensure_future(start_from(agent)))
                if step:
                    await asyncio.sleep(step)
            await asyncio.gather(*starts)

            async def all_ready() -> bool:
                nonlocal counts
                status = await server.status()
                if status is None:
                    raise BenchmarkError(f"server stopped answering:\n{server.tail()}")
                counts = {k: v for k, v in status["phones"].items() if v}
                return counts.get("ready", 0) >= phones

            def reached() -> str:
                return f"{phones} phones ready; reached {counts}:\n{server.tail()}"

            await wait_for(all_ready, timeout, reached)
            ready_at = time.perf_counter()
            seconds = ready_at - first_register[0]
            after_kb = rss_kb(server.pid)
            cpu_total = cpu_seconds(server.pid)
            bench_cpu = self_cpu_seconds() - bench_cpu
            bench_kb = rss_kb(os.getpid())
            drops = udp_drops(server.port)
            overflows = listen_overflows() - overflows
            linked = sum(agent.linked.is_set() for agent in sim.agents.values())
            settled_kb = None
            if settle:
                # The set-up's transactions linger for Timer J/D (32 s over UDP): memory for
                # a linked phone is what is left once they are gone.
                await asyncio.sleep(settle)
                settled_kb = rss_kb(server.pid)
            code, stop_seconds = await server.stop()
        finally:
            await server.stop()
            await sim.close()
        if code != 0:
            raise BenchmarkError(f"server exit code {code} after SIGTERM:\n{server.tail()}")
        return {
            "phones": phones,
            "transport": transport,
            "vendors": vendors,
            "ramp_s": ramp,
            "seconds_to_all_ready": round(seconds, 2),
            "phones_per_s": round(phones / seconds, 1),
            "server_rss_idle_kb": idle_kb,
            "server_rss_after_kb": after_kb,
            "server_kb_per_phone": round((after_kb - idle_kb) / phones, 1),
            "settle_s": settle,
            "server_rss_settled_kb": settled_kb,
            "server_kb_per_phone_settled": (
                None if settled_kb is None else round((settled_kb - idle_kb) / phones, 1)
            ),
            "server_cpu_s": round(cpu_total - cpu_idle, 2),
            "server_cpu_startup_s": round(cpu_idle, 2),
            "server_udp_drops": drops,
            "tcp_listen_overflows": overflows,
            "simulator_cpu_s": round(bench_cpu, 2),
            "simulator_rss_kb": bench_kb,
            "phones_linked_in_simulator": linked,
            "server_stop_s": round(stop_seconds, 2),
            "server_exit_code": code,
        }


# ---------------------------------------------------------------------- output
def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median time to all ready, plus the spread of every run."""
    ordered = sorted(runs, key=lambda r: r["seconds_to_all_ready"])
    row = dict(ordered[(len(ordered) - 1) // 2])
    row["runs"] = len(runs)
    row["seconds_all_runs"] = [r["seconds_to_all_ready"] for r in runs]
    row["udp_drops_all_runs"] = [r["server_udp_drops"] for r in runs]
    row["listen_overflows_all_runs"] = [r["tcp_listen_overflows"] for r in runs]
    return row


COLUMNS = (
    ("phones", "phones"),
    ("transport", "transport"),
    ("seconds_to_all_ready", "s to all ready (median)"),
    ("seconds_all_runs", "every run s"),
    ("phones_per_s", "phones/s"),
    ("server_rss_idle_kb", "server RSS idle KB"),
    ("server_rss_after_kb", "server RSS after KB"),
    ("server_kb_per_phone", "KB/phone"),
    ("server_kb_per_phone_settled", "KB/phone after settle_s"),
    ("server_cpu_s", "server CPU s"),
    ("server_udp_drops", "UDP drops"),
    ("tcp_listen_overflows", "TCP listen overflows"),
    ("simulator_cpu_s", "simulator CPU s"),
    ("server_stop_s", "stop s"),
)


def cell(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def write_results(row: dict[str, Any]) -> str:
    """Merge ``row`` into the results (one row per phones x transport) and render them."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "phones_link.json"
    rows: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        rows = json.loads(path.read_text())["results"]
    rows = [r for r in rows if (r["phones"], r["transport"]) != (row["phones"], row["transport"])]
    rows = sorted([*rows, row], key=lambda r: (r["transport"], r["phones"]))
    meta = {
        "benchmark": "phones_link",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "method": (
            "server in its own process, simulated phones in the benchmark process, loopback; "
            "wall time from the first REGISTER to every phone 'ready' on the control socket; "
            "RSS = VmRSS, CPU = utime+stime from /proc; server CPU counts from idle to all ready; "
            "UDP drops: the server socket's /proc/net/udp counter; TCP listen overflows: "
            "TcpExt ListenOverflows (system-wide) during the run"
        ),
    }
    path.write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    lines = [
        "# Phones registering and linking",
        "",
        f"Python {meta['python']} on {meta['platform']}, {meta['cpus']} CPUs. {meta['method']}.",
        "Every phone starts at once (`ramp_s` 0) unless the JSON says otherwise; timers at "
        "production defaults.",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" if key == "transport" else "---:" for key, _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cell(r.get(key, "")) for key, _ in COLUMNS) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    (RESULTS / "phones_link.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=DEFAULT_PHONES)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--vendors", default=",".join(VENDORS), help="round-robin over these")
    parser.add_argument("--ramp", type=float, default=0.0, help="spread starts over N seconds")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds until all ready")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="then wait N seconds (set-up transactions expire after 32 s) and read RSS again",
    )
    parser.add_argument(
        "--repeat", type=int, default=DEFAULT_REPEAT, help="runs (fresh server each); median"
    )
    args = parser.parse_args(argv)
    vendors = [v.strip() for v in args.vendors.split(",") if v.strip()]
    if args.phones < 1 or not vendors:
        parser.error("need at least one phone and one vendor")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    runs = []
    for i in range(args.repeat):
        try:
            with asyncio.Runner(loop_factory=SourceBindingLoop) as runner:
                row = runner.run(
                    run(args.phones, args.transport, vendors, args.ramp, args.timeout, args.settle)
                )
        except BenchmarkError as exc:
            print(f"phones_link: FAILED: {exc}", file=sys.stderr)
            return 1
        print(
            f"run {i + 1}/{args.repeat}: {row['phones']} {row['transport']} phones ready in "
            f"{row['seconds_to_all_ready']}s, server CPU {row['server_cpu_s']}s, "
            f"{row['server_udp_drops']} UDP drops, "
            f"{row['tcp_listen_overflows']} TCP listen overflows",
            flush=True,
        )
        runs.append(row)
    print(write_results(median_row(runs)), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
