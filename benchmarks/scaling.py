"""Cost per phone and per request as the number of linked phones grows.

Run: ``.venv/bin/python benchmarks/scaling.py [--phones 100,1000] [--seconds 3]``; all three
sizes: ``--phones 100,1000,10000``. Writes ``benchmarks/results/scaling.json`` and ``.md``.

For each size a fresh server (``uacsta serve``, production timers, log level WARNING) and the
simulated phones in their own process (UDP, all starting at once, vendors round-robin; each
its own loopback address). Reported per size:

- seconds from the first REGISTER to every phone ``ready`` (control socket, polled every
  50 ms; the first REGISTER's time is read in the phone process on the same clock);
- server RSS growth per linked phone (VmRSS after - idle) and server CPU per phone linked;
- server CPU per relayed request (GetDoNotDisturb, closed loop for ``--seconds`` over up to
  256 of the phones, 4 CSTA-over-TCP clients in their own process);
- server CPU while idle-linked for ``--seconds`` (keep-alives at the production 60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
    free_port,
    meta,
    temp_folder,
    udp_drops,
    write_results,
)

DEFAULT_SIZES = "100,1000"
DEFAULT_SECONDS = 3.0
RELAY_DEVICES = 256
CLIENTS = 4


async def one_size(phones_n: int, seconds: float) -> dict[str, Any]:
    with temp_folder() as tmp:
        server = ServerProcess(pathlib.Path(tmp), free_port())
        phones: PhoneFleet | None = None
        clients: ClientPool | None = None
        try:
            await server.start()
            await asyncio.sleep(0.5)
            idle_kb, cpu0 = server.rss(), server.cpu()
            phones = PhoneFleet(server.port, phones_n)
            other = OtherLoad([server.pid, phones.proc.pid or 0])
            first = await phones.call("start")
            await server.wait_ready(phones_n, 600.0)
            link_s = time.perf_counter() - first
            link_cpu = server.cpu() - cpu0
            other_cores = other.cores()
            linked_kb = server.rss()
            drops = udp_drops(server.port)
            cpu1 = server.cpu()
            await asyncio.sleep(seconds)
            idle_cpu = server.cpu() - cpu1
            pairs = (await phones.call("devices"))[:RELAY_DEVICES]
            devices = [d for _mac, d in pairs]
            clients = ClientPool(server.csta_port)
            await clients.call("connect", CLIENTS)
            await clients.call("relay", devices, "GetDoNotDisturb", 0.5, None, None)
            cpu2 = server.cpu()
            out = await clients.call("relay", devices, "GetDoNotDisturb", seconds, None, None)
            relay_cpu = server.cpu() - cpu2
            done = sum(len(r) for r in out["per_device"].values())
            failed = sum(1 for r in out["per_device"].values() for *_, ok in r if not ok)
            after_kb = server.rss()
            code, _ = await server.stop()
            if code != 0:
                raise BenchmarkError(f"server exit code {code}:\n{server.tail()}")
        finally:
            await server.stop()
            if clients is not None:
                await clients.close()
            if phones is not None:
                await phones.close()
    return {
        "phones": phones_n,
        "seconds_to_all_ready": round(link_s, 2),
        "server_rss_idle_kb": idle_kb,
        "server_rss_linked_kb": linked_kb,
        "server_kb_per_phone": round((linked_kb - idle_kb) / phones_n, 1),
        "server_cpu_link_s": round(link_cpu, 2),
        "server_ms_cpu_per_phone_linked": round(link_cpu / phones_n * 1e3, 3),
        "udp_drops": drops,
        "idle_core_share": round(idle_cpu / seconds, 4),
        "relay_requests": done,
        "relay_failed": failed,
        "relay_per_s": round(done / out["seconds"], 1),
        "server_us_per_request": round(relay_cpu / done * 1e6, 1) if done else None,
        "server_rss_after_relay_kb": after_kb,
        "other_processes_cores_while_linking": other_cores,
    }


COLUMNS = (
    ("phones", "phones"),
    ("seconds_to_all_ready", "s to all ready"),
    ("server_kb_per_phone", "server KB/phone"),
    ("server_ms_cpu_per_phone_linked", "server ms CPU/phone linked"),
    ("udp_drops", "UDP drops"),
    ("idle_core_share", "idle-linked CPU (share of a core)"),
    ("relay_per_s", "relay achieved/s"),
    ("server_us_per_request", "server µs CPU/request"),
    ("relay_failed", "failed"),
    ("other_processes_cores_while_linking", "other load (cores)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", default=DEFAULT_SIZES, help="comma-separated sizes")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.phones.split(",") if x.strip()]
    rows: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        rows = json.loads((RESULTS / "scaling.json").read_text())["results"]
    for n in sizes:
        try:
            row = asyncio.run(one_size(n, args.seconds))
        except BenchmarkError as exc:
            print(f"scaling: FAILED at {n} phones: {exc}", file=sys.stderr)
            return 1
        print(
            f"{n} phones: ready in {row['seconds_to_all_ready']}s, "
            f"{row['server_kb_per_phone']} KB/phone, {row['server_us_per_request']} us/request",
            flush=True,
        )
        rows = sorted([r for r in rows if r["phones"] != n] + [row], key=lambda r: r["phones"])
    info = meta(
        "scaling",
        "per size: fresh server, UDP phones in their own process all starting at once; "
        "time first REGISTER -> all ready; RSS = VmRSS growth / phones; server CPU from /proc "
        "for linking, idle-linked and a closed-loop GetDoNotDisturb relay over up to 256 "
        "phones from 4 CSTA-over-TCP clients",
    )
    notes = [
        "Targets: 10,000 phones ready in < 60 s; < 20 KB per linked phone beyond the idle server."
    ]
    print(write_results("scaling", "Scaling", info, rows, COLUMNS, notes=notes), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
