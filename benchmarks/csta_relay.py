"""CSTA request relay: client -> server -> phone -> server -> client, throughput and latency.

Run: ``.venv/bin/python benchmarks/csta_relay.py [--phones 100] [--clients 4]
[--service GetDoNotDisturb|SnapshotDevice] [--seconds 5] [--rate 2500] [--transport udp]``.
Writes ``benchmarks/results/csta_relay.json`` and ``.md``.

Three processes besides this one (see ``common.py``): the server (``uacsta serve``, production
timers, log level WARNING), the simulated phones (UDP by default) and the CSTA-over-TCP
clients. Each phone's line gets one client worker with one request in flight.

1. **Throughput** (closed loop, ``--seconds``): every worker sends its next request as soon
   as the answer arrives. Reported: requests/s achieved, server CPU over the window, and
   **requests per server CPU-second** (the server's capacity per core: on this 2-core box
   the load generator shares the cores, so the achieved rate is bounded by it, not by the
   server).
2. **Latency** at ``--rate`` (default 2,500/s, half the 5,000/s target), paced, for
   ``--seconds``: client-observed latency, and the latency the server adds: client-observed
   minus the phone's own time from the request's arrival (before its SIP parse) to its answer
   handed to the kernel, matched per request. Percentiles from ``histogram.py`` (log-linear
   buckets, < 0.8 % error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import sys
import time
from typing import Any

from common import (
    RESULTS,
    BenchmarkError,
    ClientPool,
    OtherLoad,
    PhoneFleet,
    ServerProcess,
    added_latencies,
    free_port,
    meta,
    pin,
    temp_folder,
    write_results,
)
from histogram import Histogram

DEFAULT_PHONES = 100
DEFAULT_CLIENTS = 4
DEFAULT_SECONDS = 5.0
DEFAULT_RATE = 2500.0
TARGET_PER_CORE = 5000.0


async def measure(
    server: ServerProcess,
    phones: PhoneFleet,
    clients: ClientPool,
    devices: list[str],
    mac_of: dict[str, str],
    *,
    service: str,
    seconds: float,
    rate: float | None,
) -> dict[str, Any]:
    await phones.call("timings")  # forget earlier rounds
    cpu0, p_cpu0, c_cpu0 = server.cpu(), phones.cpu(), clients.cpu()
    other = OtherLoad([server.pid, phones.proc.pid or 0, clients.proc.pid or 0, os.getpid()])
    t0 = time.perf_counter()
    out = await clients.call("relay", devices, service, seconds, rate, None)
    wall = time.perf_counter() - t0
    cpu = server.cpu() - cpu0
    p_cpu, c_cpu = phones.cpu() - p_cpu0, clients.cpu() - c_cpu0
    other_cores = other.cores()
    phone_times = await phones.call("timings")
    observed, added, unmatched = added_latencies(out["per_device"], phone_times, mac_of)
    done = sum(len(r) for r in out["per_device"].values())
    failed = sum(1 for r in out["per_device"].values() for *_, ok in r if not ok)
    h_obs, h_add, h_phone = Histogram(), Histogram(), Histogram()
    h_obs.record_many(observed)
    h_add.record_many(added)
    for records in phone_times.values():
        h_phone.record_many(p1 - p0 for p0, p1 in records)
    elapsed = out["seconds"]
    return {
        "mode": "closed loop" if rate is None else f"paced {rate:g}/s",
        "requests": done,
        "failed": failed,
        "errors": out["errors"],
        "seconds": round(elapsed, 2),
        "requests_per_s": round(done / elapsed, 1),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_share": round(cpu / wall, 3),
        "server_us_per_request": round(cpu / done * 1e6, 1) if done else None,
        "requests_per_server_cpu_s": round(done / cpu, 0) if cpu else None,
        "server_rss_kb": server.rss(),
        "phones_cpu_s": round(p_cpu, 2),
        "clients_cpu_s": round(c_cpu, 2),
        "other_processes_cores": other_cores,
        "matched_requests": h_add.count,
        "unmatched_devices": unmatched,
        "observed": h_obs.summary_ms(),
        "phone": h_phone.summary_ms(),
        "added": h_add.summary_ms(),
        "window": (t0, t0 + wall),
    }


def add_server_side(rounds: list[dict[str, Any]], timings: dict[str, Any]) -> None:
    """Each round's server-side latency and garbage collections, from the instrumented
    server's records that fall in the round's window."""
    for r in rounds:
        start, end = r.pop("window")
        h = Histogram()
        h.record_many(seconds for at, seconds in timings["relay"] if start <= at <= end)
        r["server_side"] = h.summary_ms()
        pauses = [seconds for at, seconds, *_ in timings["gc"] if start <= at <= end]
        r["gc_collections"] = len(pauses)
        r["gc_max_ms"] = round(max(pauses, default=0.0) * 1e3, 2)
        r["gc_total_ms"] = round(sum(pauses) * 1e3, 1)
        by_gen: dict[str, list[tuple[float, int, float]]] = {}
        for at, seconds, gen, found, cpu in timings["gc"]:
            if start <= at <= end:
                by_gen.setdefault(f"gen{gen}", []).append((seconds, found, cpu))
        r["gc_by_generation"] = ", ".join(
            f"{gen}: {len(p)} up to {max(s for s, _, _ in p) * 1e3:.1f} ms "
            f"(CPU up to {max(c for _, _, c in p) * 1e3:.1f} ms), "
            f"{sum(f for _, f, _ in p)} objects freed"
            for gen, p in sorted(by_gen.items())
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with temp_folder() as tmp:
        server = ServerProcess(pathlib.Path(tmp), free_port(), instrumented=True)
        phones: PhoneFleet | None = None
        clients: ClientPool | None = None
        try:
            await server.start()
            idle_kb = server.rss()
            phones = PhoneFleet(
                server.port, args.phones, transport=args.transport, service=args.service
            )
            clients = ClientPool(server.csta_port)
            if args.pin:
                pin(server.pid, [phones.proc.pid or 0, clients.proc.pid or 0])
            await phones.call("start")
            await server.wait_ready(args.phones, 120.0)
            linked_kb = server.rss()
            pairs = await phones.call("devices")
            mac_of = {device: mac for mac, device in pairs}
            devices = [device for _mac, device in pairs]
            await clients.call("connect", args.clients)
            # Warm-up: every path once, allocations settle.
            await clients.call("relay", devices, args.service, 1.0, None, None)
            rounds = []
            throughput = await measure(
                server, phones, clients, devices, mac_of,
                service=args.service, seconds=args.seconds, rate=None,
            )  # fmt: skip
            rounds.append(throughput)
            print(_line(throughput), flush=True)
            for rate in args.rate:
                latency = await measure(
                    server, phones, clients, devices, mac_of,
                    service=args.service, seconds=args.seconds, rate=rate,
                )  # fmt: skip
                rounds.append(latency)
                print(_line(latency), flush=True)
            code, _ = await server.stop()
            if code != 0:
                raise BenchmarkError(f"server exit code {code}:\n{server.tail()}")
            add_server_side(rounds, json.loads(server.timings_path.read_text()))
        finally:
            await server.stop()
            if clients is not None:
                await clients.close()
            if phones is not None:
                await phones.close()
    return {
        "phones": args.phones,
        "clients": args.clients,
        "transport": args.transport,
        "service": args.service,
        "server_rss_idle_kb": idle_kb,
        "server_rss_linked_kb": linked_kb,
        "rounds": rounds,
    }


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['mode']}: {r['requests']} requests ({r['failed']} failed) in {r['seconds']}s = "
        f"{r['requests_per_s']}/s; server {r['server_us_per_request']} us CPU/request = "
        f"{r['requests_per_server_cpu_s']}/s per core; added p50 {r['added']['p50_ms']} ms "
        f"p99 {r['added']['p99_ms']} ms (observed p50 {r['observed']['p50_ms']} "
        f"p99 {r['observed']['p99_ms']}, phone p50 {r['phone']['p50_ms']})"
    )


COLUMNS = (
    ("mode", "load"),
    ("pinned", "server pinned to its own core"),
    ("requests", "requests"),
    ("failed", "failed"),
    ("requests_per_s", "achieved/s"),
    ("server_cpu_share", "server CPU (cores)"),
    ("server_us_per_request", "server µs CPU/request"),
    ("requests_per_server_cpu_s", "requests per server core-s"),
    ("server_side_p50_ms", "server-side p50 ms"),
    ("server_side_p99_ms", "server-side p99 ms"),
    ("server_side_p999_ms", "server-side p99.9 ms"),
    ("gc_collections", "GCs"),
    ("gc_max_ms", "longest GC ms"),
    ("gc_by_generation", "GCs by generation"),
    ("added_p50_ms", "added p50 ms"),
    ("added_p99_ms", "added p99 ms"),
    ("added_p999_ms", "added p99.9 ms"),
    ("observed_p50_ms", "client p50 ms"),
    ("observed_p99_ms", "client p99 ms"),
    ("phone_p50_ms", "phone p50 ms"),
    ("phones_cpu_s", "phones CPU s"),
    ("clients_cpu_s", "clients CPU s"),
    ("other_processes_cores", "other load (cores)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=DEFAULT_PHONES)
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument(
        "--service", choices=("GetDoNotDisturb", "SnapshotDevice"), default="GetDoNotDisturb"
    )
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument(
        "--pin", action="store_true", help="server on CPU 0, the load generator on the others"
    )
    parser.add_argument(
        "--rate", type=float, action="append", help=f"paced rounds (default {DEFAULT_RATE:g}/s)"
    )
    args = parser.parse_args(argv)
    args.rate = args.rate or [DEFAULT_RATE]
    if args.phones < 1 or args.clients < 1 or args.clients > 64:
        parser.error("need phones >= 1 and 1..64 clients")
    if args.phones > args.clients * 64:
        parser.error("at most 64 requests in flight per client: add --clients")
    try:
        result = asyncio.run(run(args))
    except BenchmarkError as exc:
        print(f"csta_relay: FAILED: {exc}", file=sys.stderr)
        return 1
    rows = []
    for r in result["rounds"]:
        row = {k: v for k, v in r.items() if not isinstance(v, dict)}
        for part in ("server_side", "added", "observed", "phone"):
            for key, value in r[part].items():
                row[f"{part}_{key.replace('.', '')}"] = value
        row["pinned"] = args.pin
        rows.append(row)
    with contextlib.suppress(OSError, ValueError, KeyError):  # keep the other mode's rows
        earlier = json.loads((RESULTS / "csta_relay.json").read_text())["results"]
        rows += [old for old in earlier if old.get("pinned", False) != args.pin]
    rows.sort(key=lambda r: (r.get("pinned", False), r["mode"] != "closed loop", r["mode"]))
    info = meta(
        "csta_relay",
        f"{result['phones']} {result['transport']} phones, {result['clients']} CSTA-over-TCP "
        f"clients, {result['service']}, one worker per phone line with one request in flight; "
        "server, phones and clients in separate processes on the same 2 cores (pinned: server "
        "alone on CPU 0, phones and clients on CPU 1); server CPU = "
        "utime+stime from /proc over the round; added latency = client-observed minus the "
        "phone's own time (request datagram in -> answer handed to the kernel), matched per "
        "request; HDR-style histogram (benchmarks/histogram.py)",
    )
    notes = [
        f"Server RSS idle {result['server_rss_idle_kb']} KB, with phones linked "
        f"{result['server_rss_linked_kb']} KB. Target: {TARGET_PER_CORE:g} requests/s per "
        "server core (the 'requests per server core-s' column); added latency p50 < 0.5 ms, "
        "p99 < 2 ms at 2,500/s.",
    ]
    print(
        write_results(
            "csta_relay", "CSTA request relay", info, rows, COLUMNS, notes=notes,
            extra={"run": {k: v for k, v in result.items() if k != "rounds"}},
        ),
        end="",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
