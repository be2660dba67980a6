"""One phone event fanned out to many monitoring CSTA-over-TCP clients.

Run: ``.venv/bin/python benchmarks/fanout.py [--clients 100] [--events 300] [--interval 0.02]``.
Writes ``benchmarks/results/fanout.json`` and ``.md``.

The server runs as ``uacsta serve`` with two timestamps added by ``common.py``
(``--instrumented-server``): when the phone's event datagram enters ``datagram_received``
and after the last client frame it caused is handed to the kernel (the gateway's write-out); the
difference is the server-side fan-out time (SIP parse, 200 to the phone, CSTA decode, the
switching function, one encode per client edition, one write per client). ``--clients``
clients (each from its own loopback address) in their own process all start a monitor on one
simulated phone's line (one shared monitor point on the phone); the phone toggles
do-not-disturb every ``--interval`` s, each toggle one DoNotDisturbEvent INFO. Also reported:
the client-side figure, the latest client's read minus the phone's send time (one clock,
``perf_counter``), which adds the client process reading 100 sockets one after the other.

The kernel floor: after the server run, this process writes one frame of the event's size to
each of ``--clients`` plain loopback TCP connections (TCP_NODELAY, as the server's), read by
another process waiting in ``select``, one round every ``--interval`` s, and times each
round's writes alone: what one write per client costs in the kernel with no server work at
all, on the same cores (pinned like the server when ``--pin``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import selectors
import socket
import sys
import time
from typing import Any

from common import (
    RESULTS,
    BenchmarkError,
    ClientPool,
    PhoneFleet,
    ServerProcess,
    free_port,
    meta,
    pin,
    temp_folder,
    write_results,
)
from histogram import Histogram
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.framing import EVENT_INVOKE_ID, encode_frame

DEFAULT_CLIENTS = 100
DEFAULT_EVENTS = 300
DEFAULT_INTERVAL = 0.02


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with temp_folder() as tmp:
        server = ServerProcess(pathlib.Path(tmp), free_port(), instrumented=True)
        phones: PhoneFleet | None = None
        clients: ClientPool | None = None
        client_side = Histogram()
        try:
            await server.start()
            phones = PhoneFleet(server.port, 1, transport=args.transport, vendors=[args.vendor])
            clients = ClientPool(server.csta_port)
            if args.pin:
                pin(server.pid, [phones.proc.pid or 0, clients.proc.pid or 0])
            await phones.call("start")
            await server.wait_ready(1, 60.0)
            ((mac, device),) = await phones.call("devices")
            await clients.call("connect", args.clients)
            started = await clients.call("monitor", device)
            if started != args.clients:
                raise BenchmarkError(f"{started} of {args.clients} monitors started")
            cpu0 = server.cpu()
            on = True
            for i in range(args.events):
                sent = await phones.call("dnd", mac, on)
                on = not on
                arrivals = await clients.call("collect", 1, 10.0)
                if i >= args.warmup:
                    client_side.record(arrivals[0] - sent)
                await asyncio.sleep(args.interval)
            cpu = server.cpu() - cpu0
            events_done = time.perf_counter()  # the same clock as the server's records
            rss = server.rss()
            code, _ = await server.stop()
            if code != 0:
                raise BenchmarkError(f"server exit code {code}:\n{server.tail()}")
            timings = json.loads(server.timings_path.read_text())
            records, collections = timings["fanout"], timings["gc"]
        finally:
            await server.stop()
            if clients is not None:
                await clients.close()
            if phones is not None:
                await phones.close()
    frame = encode_frame(
        EVENT_INVOKE_ID,
        codec.encode(
            m.DoNotDisturbEvent(
                monitor_cross_ref_id="17", device=m.DeviceIdentifier(device), do_not_disturb_on=on
            )
        ),
    )
    floor = kernel_floor(args.clients, len(frame), args.events, args.interval, args.pin)
    # Fan-outs of the events (not the monitor starts before them, nor the server's notice
    # to every client when it stops, which reaches every client too).
    counted = [
        (at, seconds)
        for at, seconds, frames in records
        if frames == args.clients and at <= events_done
    ]
    counted = counted[args.warmup :]
    server_side = Histogram()
    server_side.record_many(seconds for _, seconds in counted)
    # Garbage collections that ended inside a counted fan-out: they stopped it.
    during = [
        (gc_seconds, gen)
        for at, seconds in counted
        for gc_at, gc_seconds, gen, *_ in collections
        if at - seconds <= gc_at <= at
    ]
    return {
        "clients": args.clients,
        "events": args.events,
        "warmup_events": args.warmup,
        "transport": args.transport,
        "vendor": args.vendor,
        "events_fanned_out": len(counted),
        "gc_in_fanouts": len(during),
        "longest_gc_in_a_fanout_ms": round(max((s for s, _ in during), default=0.0) * 1e3, 2),
        "gc_generations_in_fanouts": sorted({gen for _, gen in during}),
        "server": server_side.summary_ms(),
        "client_side": client_side.summary_ms(),
        "kernel_floor": floor.summary_ms(),
        "frame_bytes": len(frame),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_ms_per_event": round(cpu / args.events * 1e3, 3),
        "pinned": args.pin,
        "server_rss_kb": rss,
    }


def _drain(port: int, count: int, conn: multiprocessing.connection.Connection) -> None:
    """The floor's reader (a process of its own): ``count`` connections, read until closed."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    conn.send(True)
    open_ = count
    while open_:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if not sock.recv(65536):
                selector.unregister(sock)
                sock.close()
                open_ -= 1


def kernel_floor(count: int, size: int, rounds: int, interval: float, pinned: bool) -> Histogram:
    """Seconds for one ``size``-byte write to each of ``count`` loopback TCP connections."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=count)
    port = listener.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    reader = ctx.Process(target=_drain, args=(port, count, child), daemon=True)
    reader.start()
    conns = [listener.accept()[0] for _ in range(count)]
    listener.close()
    parent.recv()
    affinity = os.sched_getaffinity(0)
    if pinned:  # this process in the server's place: CPU 0 alone
        os.sched_setaffinity(0, {0})
        os.sched_setaffinity(reader.pid or 0, set(range(1, os.cpu_count() or 2)) or {0})
    for sock in conns:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = b"x" * size
    floor = Histogram()
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            for sock in conns:
                sock.send(frame)
            floor.record(time.perf_counter() - t0)
            time.sleep(interval)  # the reader goes back to waiting, as the clients do
    finally:
        for sock in conns:
            sock.close()
        reader.join(10)
        os.sched_setaffinity(0, affinity)
    return floor


COLUMNS = (
    ("clients", "clients"),
    ("pinned", "server pinned to its own core"),
    ("events_fanned_out", "events"),
    ("server_p50_ms", "server p50 ms"),
    ("server_p99_ms", "server p99 ms"),
    ("server_p999_ms", "server p99.9 ms"),
    ("server_max_ms", "server max ms"),
    ("client_side_p50_ms", "last client - phone send p50 ms"),
    ("client_side_p99_ms", "last client - phone send p99 ms"),
    ("server_cpu_ms_per_event", "server CPU ms per event"),
    ("kernel_floor_p50_ms", "bare writes to every client p50 ms"),
    ("kernel_floor_p99_ms", "bare writes p99 ms"),
    ("gc_in_fanouts", "fan-outs with a GC"),
    ("longest_gc_in_a_fanout_ms", "longest such GC ms"),
    ("target_met", "p99 < 1 ms"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS)
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    parser.add_argument("--warmup", type=int, default=20, help="first events not counted")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL)
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--vendor", default="yealink")
    parser.add_argument(
        "--pin", action="store_true", help="server on CPU 0, the load generator on the others"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 1000 or args.events <= args.warmup:
        parser.error("1..1000 clients, more events than --warmup")
    try:
        r = asyncio.run(run(args))
    except BenchmarkError as exc:
        print(f"fanout: FAILED: {exc}", file=sys.stderr)
        return 1
    row = {k: v for k, v in r.items() if not isinstance(v, dict)}
    for part in ("server", "client_side", "kernel_floor"):
        for key, value in r[part].items():
            row[f"{part}_{key.replace('.', '')}"] = value
    row["target_met"] = r["server"]["p99_ms"] < 1.0
    info = meta(
        "fanout",
        f"one {r['transport']} {r['vendor']} phone's DoNotDisturbEvent to {r['clients']} "
        "monitoring CSTA-over-TCP clients; server side = event datagram in -> last client "
        "frame handed to the kernel, timestamped inside the server process; client side = "
        "latest client read minus the phone's send, one clock; HDR-style histogram "
        f"(benchmarks/histogram.py); first {r['warmup_events']} events not counted",
    )
    rows = [row]
    with contextlib.suppress(OSError, ValueError, KeyError):  # keep the other modes' rows
        earlier = json.loads((RESULTS / "fanout.json").read_text())["results"]
        key = (row["clients"], row["pinned"])
        rows += [old for old in earlier if (old["clients"], old.get("pinned", False)) != key]
    rows.sort(key=lambda r: (r["clients"], r.get("pinned", False)))
    text = write_results("fanout", "Event fan-out", info, rows, COLUMNS, extra={"run": r})
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
