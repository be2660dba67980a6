"""Server CPU for keep-alives while phones sit idle and linked.

Run: ``.venv/bin/python benchmarks/keepalive.py [--phones 1000] [--interval 5] [--window 20]``;
production: ``--phones 10000 --interval 60 --window 120``. Writes
``benchmarks/results/keepalive.json`` and ``.md``.

The server (``uacsta serve``, log level WARNING) links ``--phones`` simulated phones (their own
process), then nothing happens but the link keep-alive (a RequestSystemStatus INFO per phone
every ``keepalive_interval`` s). The server's CPU (utime+stime from /proc) is read over
``--window`` seconds after every phone is ready plus one interval (so the keep-alives run in
their steady spread). Registration is set to 3600 s on both sides so that no re-REGISTER falls
in the window, and the session refresh (1800 s) does not either: the window holds
keep-alives and the idle server only. Reported: the share of one core, the keep-alives
answered (counted by the phones), the CPU per keep-alive, and that figure scaled to 10,000
phones at the production interval of 60 s (the scaling is linear in keep-alives per second;
the idle cost of the server without keep-alives is in the window too, so the estimate is an
upper bound).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sys
import time
from typing import Any

from common import (
    BenchmarkError,
    OtherLoad,
    PhoneFleet,
    ServerProcess,
    free_port,
    meta,
    temp_folder,
    write_results,
)

DEFAULT_PHONES = 1000
DEFAULT_INTERVAL = 5
DEFAULT_WINDOW = 20.0
PRODUCTION_PHONES = 10_000
PRODUCTION_INTERVAL = 60


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with temp_folder() as tmp:
        server = ServerProcess(
            pathlib.Path(tmp), free_port(), keepalive_interval=args.interval, instrumented=True
        )
        _move_into_phones(server.config, "registration_expires = 3600")
        phones: PhoneFleet | None = None
        try:
            await server.start()
            idle_kb = server.rss()
            phones = PhoneFleet(server.port, args.phones, transport=args.transport, expires=3600)
            await phones.call("start")
            await server.wait_ready(args.phones, 300.0)
            await asyncio.sleep(args.interval + 1.0)  # keep-alives settle into their spread
            linked_kb = server.rss()
            before = await phones.call("received", "RequestSystemStatus")
            other = OtherLoad([server.pid, phones.proc.pid or 0])
            cpu0, t0 = server.cpu(), time.perf_counter()
            await asyncio.sleep(args.window)
            cpu, t1 = server.cpu() - cpu0, time.perf_counter()
            other_cores = other.cores()
            answered = await phones.call("received", "RequestSystemStatus") - before
            code, _ = await server.stop()
            if code != 0:
                raise BenchmarkError(f"server exit code {code}:\n{server.tail()}")
            collections = json.loads(server.timings_path.read_text())["gc"]
        finally:
            await server.stop()
            if phones is not None:
                await phones.close()
    per_keepalive = cpu / answered if answered else float("nan")
    # Garbage collections in the window (the server's clock is this process's clock).
    gc_cpu = [c for at, _, _, _, c in collections if t0 <= at <= t1]
    production_rate = PRODUCTION_PHONES / PRODUCTION_INTERVAL
    return {
        "phones": args.phones,
        "transport": args.transport,
        "keepalive_interval_s": args.interval,
        "window_s": args.window,
        "keepalives_answered": answered,
        "keepalives_per_s": round(answered / args.window, 1),
        "server_cpu_s": round(cpu, 3),
        "server_core_share": round(cpu / args.window, 4),
        "server_us_per_keepalive": round(per_keepalive * 1e6, 1),
        "production_core_share_10000_at_60s": round(per_keepalive * production_rate, 4),
        "gc_collections": len(gc_cpu),
        "gc_share_of_server_cpu": round(sum(gc_cpu) / cpu, 3) if cpu else None,
        "server_rss_idle_kb": idle_kb,
        "server_rss_linked_kb": linked_kb,
        "other_processes_cores": other_cores,
    }


def _move_into_phones(config: pathlib.Path, line: str) -> None:
    """Put ``line`` into the [phones] table of the generated config."""
    text = config.read_text().replace(f"\n{line}\n", "\n")
    config.write_text(text.replace("[phones]\n", f"[phones]\n{line}\n", 1))


COLUMNS = (
    ("phones", "phones"),
    ("keepalive_interval_s", "keep-alive interval s"),
    ("gc_collections", "GCs in the window"),
    ("gc_share_of_server_cpu", "GC share of server CPU"),
    ("window_s", "window s"),
    ("keepalives_answered", "keep-alives"),
    ("keepalives_per_s", "keep-alives/s"),
    ("server_core_share", "server CPU (share of a core)"),
    ("server_us_per_keepalive", "server µs CPU/keep-alive"),
    ("production_core_share_10000_at_60s", "→ 10,000 phones at 60 s (share of a core)"),
    ("other_processes_cores", "other load (cores)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=DEFAULT_PHONES)
    parser.add_argument("--interval", type=int, default=DEFAULT_INTERVAL)
    parser.add_argument("--window", type=float, default=DEFAULT_WINDOW)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    args = parser.parse_args(argv)
    try:
        row = asyncio.run(run(args))
    except BenchmarkError as exc:
        print(f"keepalive: FAILED: {exc}", file=sys.stderr)
        return 1
    info = meta(
        "keepalive",
        "server CPU (utime+stime from /proc) over a window while the phones sit linked and "
        "idle; keep-alives counted by the simulated phones; CPU per keep-alive scaled "
        "linearly to 10,000 phones at the production interval of 60 s (an upper bound: the "
        "window includes the idle server's own cost)",
    )
    rows = _merge(row)
    notes = ["Target: under 5 % of one core for 10,000 phones at keepalive_interval = 60 s."]
    print(write_results("keepalive", "Keep-alive CPU", info, rows, COLUMNS, notes=notes), end="")
    return 0


def _merge(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per phones x interval, kept across runs."""
    import contextlib
    import json

    from common import RESULTS

    rows: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        rows = json.loads((RESULTS / "keepalive.json").read_text())["results"]
    key = (row["phones"], row["keepalive_interval_s"])
    rows = [r for r in rows if (r["phones"], r["keepalive_interval_s"]) != key]
    return sorted([*rows, row], key=lambda r: (r["phones"], r["keepalive_interval_s"]))


if __name__ == "__main__":
    sys.exit(main())
