"""Per-node cost of a cluster of 1, 2 and 3 nodes on one nats-server.

Run: ``.venv/bin/python benchmarks/cluster.py [--phones 300] [--nodes 1,2,3] [--seconds 3]``.
Writes ``benchmarks/results/cluster.json`` and ``.md``.

For each node count a fresh ``nats-server -js`` (its own process, a port of its own choosing
written to a ports file, its store in a temporary directory; the run stops at once when the
binary is missing) and that many ``uacsta serve`` processes with ``[cluster]`` settings
(production timers, journal at its default, each node its own SQLite store, log level
WARNING). Then, in processes of their own (see ``common.py``):

1. **Linking.** N simulated UDP phones (one process), phone i registering directly with node
   i mod k; every node must show every phone (owned or mirrored) before the window ends.
   Reported per node: CPU seconds from idle to all ready, per phone it owns.
2. **Relayed requests.** One CSTA-over-TCP client on node 1 monitors every line, then 64
   workers (one request in flight each) send GetDoNotDisturb closed loop for ``--seconds``
   to the lines of every node's phones. Per node: CPU per request, over all requests on the
   client's node (node 1), over the requests to the phones it owns on the others.
3. **Events.** The same with SetDoNotDisturb (on/off alternately): each request makes the
   phone send a DoNotDisturbEvent, relayed by the owner to node 1 and to the client. CPU per
   request + event; minus the GetDoNotDisturb figure, an estimate of the event's own cost.

The nats-server's CPU is reported for each phase too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
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
    cpu_seconds,
    free_port,
    meta,
    phone_address,
    raise_fd_limit,
    self_cpu_seconds,
    temp_folder,
    wait_for,
    write_results,
)

DEFAULT_PHONES = 300
DEFAULT_NODES = "1,2,3"
DEFAULT_SECONDS = 3.0
IN_FLIGHT = 64  # the server admits 64 requests in flight per client
CLUSTER_NAME = "bench"


# ---------------------------------------------------------------------- nats-server
class NatsServer:
    """``nats-server -js`` on a port of its own choosing (``-p -1``, read from its ports file)."""

    def __init__(self, folder: pathlib.Path) -> None:
        binary = shutil.which("nats-server") or next(
            (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.path.exists(p)),
            None,
        )
        if binary is None:
            raise BenchmarkError("nats-server is not installed (make sysdeps; Debian nats-server)")
        self.folder = folder
        self.log = folder / "nats-server.log"
        command = [binary, "-js", "-a", HOST, "-p", "-1", "-sd", str(folder / "store")]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*command, "--ports_file_dir", str(folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = ""

    async def wait(self, timeout: float = 10.0) -> str:
        ports = self.folder / f"nats-server_{self.proc.pid}.ports"

        async def listening() -> bool:
            if self.proc.poll() is not None:
                raise BenchmarkError(f"nats-server exited:\n{self.log.read_text()[-2000:]}")
            try:
                url = str(json.loads(ports.read_text())["nats"][0])
                host, port = url.removeprefix("nats://").rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=0.2):
                    self.url = url
                    return True
            except (OSError, ValueError, KeyError, IndexError):
                return False

        await wait_for(listening, timeout, lambda: "nats-server listening")
        return self.url

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def node_process(folder: pathlib.Path, url: str, node_id: str) -> ServerProcess:
    folder.mkdir(parents=True)
    server = ServerProcess(folder, free_port())
    server.config.write_text(
        server.config.read_text()
        + f'[cluster]\nnats_url = "{url}"\nnode_id = "{node_id}"\nname = "{CLUSTER_NAME}"\n'
    )
    return server


# ---------------------------------------------------------------------- load generator
def _phones_main(conn: Any, spec: dict[str, Any]) -> None:
    """N UDP phones in one simulation (distinct MACs), phone i registering with node i mod k."""
    from uacsta.simulator.runtime import VENDORS, Simulation

    raise_fd_limit(4 * spec["phones"] + 256)
    ports: list[int] = spec["ports"]
    sim = Simulation(HOST, {"udp": ports[0]}, password=PASSWORD)
    owner: dict[str, int] = {}

    async def start() -> int:
        for i in range(spec["phones"]):
            sim.ports = {"udp": ports[i % len(ports)]}
            agent = sim.add_phone(VENDORS[i % len(VENDORS)], [str(100000 + i)], transport="udp")
            agent.local_host = phone_address(i)
            owner[agent.mac] = i % len(ports)

        async def start_one(agent: Any) -> None:
            SOURCE.set(agent.local_host)
            await agent.start()

        await asyncio.gather(*(start_one(a) for a in sim.agents.values()))
        return len(sim.agents)

    async def devices() -> list[tuple[str, str, int]]:
        return [(a.mac, a.phone.lines[0].device_id, owner[a.mac]) for a in sim.agents.values()]

    async def cpu() -> float:
        return self_cpu_seconds()

    async def close() -> None:
        await sim.close()

    _serve_commands(conn, {"start": start, "devices": devices, "cpu": cpu, "close": close})


def _client_main(conn: Any, spec: dict[str, Any]) -> None:
    """One CSTA-over-TCP client: monitors, then closed-loop requests from IN_FLIGHT workers."""
    from uacsta.clients.cstatcp import CstaTcpClient
    from uacsta.csta import messages as m

    client = CstaTcpClient()

    async def connect() -> bool:
        await client.connect(HOST, spec["port"])
        await client.login(CLIENT_USER, CLIENT_PASSWORD)
        return True

    async def monitor(devices: list[str]) -> int:
        started = 0
        for device in devices:
            answer = await client.request(m.MonitorStart(monitor_object=device))
            started += isinstance(answer, m.MonitorStartResponse)
        return started

    def drain() -> int:
        n = 0
        while not client.events.empty():
            client.events.get_nowait()
            n += 1
        return n

    async def run(devices: list[str], service: str, seconds: float) -> dict[str, Any]:
        drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        per_device = dict.fromkeys(devices, 0)
        failed: list[str] = []

        async def worker(w: int) -> None:
            mine = devices[w::IN_FLIGHT]
            k = 0
            while loop.time() < deadline:
                device = mine[k % len(mine)]
                if service == "SetDoNotDisturb":
                    on = (k // len(mine)) % 2 == 0
                    request: m.CstaRequest = m.SetDoNotDisturb(device=device, do_not_disturb_on=on)
                else:
                    request = m.GetDoNotDisturb(device=device)
                k += 1
                answer = await client.request(request)
                if isinstance(answer, m.CSTAErrorCode):
                    failed.append(str(answer))
                else:
                    per_device[device] += 1

        start = loop.time()
        await asyncio.gather(*(worker(w) for w in range(min(IN_FLIGHT, len(devices)))))
        await asyncio.sleep(0.3)  # the last events
        return {
            "per_device": per_device,
            "failed": len(failed),
            "errors": failed[:3],
            "events": drain(),
            "seconds": loop.time() - start,
        }

    async def cpu() -> float:
        return self_cpu_seconds()

    async def close() -> None:
        with contextlib.suppress(Exception):
            await client.close()

    _serve_commands(
        conn, {"connect": connect, "monitor": monitor, "run": run, "cpu": cpu, "close": close}
    )


# ---------------------------------------------------------------------- one node count
async def all_known(nodes: list[ServerProcess], phones: int, timeout: float) -> list[list[str]]:
    """Wait until every node owns or mirrors every phone and has its own phones ready (a
    node's ``ready`` count is its own phones); each node's owned MACs."""
    owned: list[list[str]] = [[] for _ in nodes]
    reached: list[str] = []

    async def check() -> bool:
        reached.clear()
        done = True
        for i, node in enumerate(nodes):
            status = await node.status()
            if status is None:
                raise BenchmarkError(f"node {i + 1} stopped answering:\n{node.tail()}")
            cluster = status.get("cluster") or {}
            owned[i] = list(cluster.get("owned", []))
            seen = len(owned[i]) + len(cluster.get("mirrored", []))
            ready = status["phones"].get("ready", 0)
            reached.append(f"n{i + 1}: owned {len(owned[i])}, seen {seen}, ready {ready}")
            done = done and seen >= phones and ready >= len(owned[i])
        return done

    await wait_for(check, timeout, lambda: f"{phones} phones on every node; {reached}")
    return owned


async def one_count(k: int, phones_n: int, seconds: float) -> dict[str, Any]:
    with temp_folder() as tmp:
        folder = pathlib.Path(tmp)
        (folder / "nats").mkdir()
        nats = NatsServer(folder / "nats")
        nodes: list[ServerProcess] = []
        phones: Worker | None = None
        client: Worker | None = None
        try:
            url = await nats.wait()
            for i in range(k):
                node = node_process(folder / f"n{i + 1}", url, f"n{i + 1}")
                nodes.append(node)
                await node.start()
            await asyncio.sleep(1.0)
            pids = [n.pid for n in nodes] + [nats.proc.pid, os.getpid()]
            cpu0 = [n.cpu() for n in nodes]
            nats0 = nats.cpu()
            phones = Worker(_phones_main, {"phones": phones_n, "ports": [n.port for n in nodes]})
            other = OtherLoad([*pids, phones.proc.pid or 0])
            t0 = time.perf_counter()
            await phones.call("start")
            owned = await all_known(nodes, phones_n, 120.0)
            link_s = time.perf_counter() - t0
            link_cpu = [n.cpu() - c for n, c in zip(nodes, cpu0, strict=True)]
            link_nats = nats.cpu() - nats0
            link_other = other.cores()
            triples = await phones.call("devices")
            owner_of = {}
            for i, macs in enumerate(owned):
                for mac in macs:
                    owner_of[mac] = i
            expected = sum(owner_of.get(mac) == o for mac, _d, o in triples)
            device_owner = {d: owner_of.get(mac, o) for mac, d, o in triples}
            devices = [d for _m, d, _o in triples]
            client = Worker(_client_main, {"port": nodes[0].csta_port})
            await client.call("connect")
            monitors = await client.call("monitor", devices)
            await client.call("run", devices, "GetDoNotDisturb", 0.5)  # warm-up
            rounds = {}
            for service in ("GetDoNotDisturb", "SetDoNotDisturb"):
                c0 = [n.cpu() for n in nodes]
                n0 = nats.cpu()
                other = OtherLoad([*pids, phones.proc.pid or 0, client.proc.pid or 0])
                out = await client.call("run", devices, service, seconds)
                cpu = [n.cpu() - c for n, c in zip(nodes, c0, strict=True)]
                to_node = [0] * k
                for device, count in out["per_device"].items():
                    to_node[device_owner[device]] += count
                rounds[service] = {
                    "requests": sum(to_node),
                    "to_node": to_node,
                    "failed": out["failed"],
                    "errors": out["errors"],
                    "events": out["events"],
                    "seconds": round(out["seconds"], 2),
                    "node_cpu_s": [round(c, 3) for c in cpu],
                    "nats_cpu_s": round(nats.cpu() - n0, 3),
                    "other_processes_cores": other.cores(),
                }
            owned_after = [
                len(((await n.status()) or {}).get("cluster", {}).get("owned", [])) for n in nodes
            ]
        finally:
            if client is not None:
                await client.close()
            for node in nodes:
                await node.stop()
            if phones is not None:
                await phones.close()
            nats.stop()
    rows = []
    get, put = rounds["GetDoNotDisturb"], rounds["SetDoNotDisturb"]
    for i in range(k):
        own = len(owned[i])
        get_n = get["requests"] if i == 0 else get["to_node"][i]
        set_n = put["requests"] if i == 0 else put["to_node"][i]
        us_get = get["node_cpu_s"][i] / get_n * 1e6 if get_n else None
        us_set = put["node_cpu_s"][i] / set_n * 1e6 if set_n else None
        rows.append(
            {
                "nodes": k,
                "node": f"n{i + 1}" + (" (client)" if i == 0 else ""),
                "phones_owned": own,
                "link_cpu_s": round(link_cpu[i], 2),
                "link_ms_per_phone": round(link_cpu[i] / own * 1e3, 2) if own else None,
                "get_requests": get_n,
                "get_us_per_request": round(us_get, 1) if us_get else None,
                "set_requests": set_n,
                "set_us_per_request_and_event": round(us_set, 1) if us_set else None,
                "event_us_estimate": round(us_set - us_get, 1) if us_set and us_get else None,
            }
        )
    rows.append(
        {
            "nodes": k,
            "node": "nats-server",
            "link_cpu_s": round(link_nats, 2),
            "link_ms_per_phone": round(link_nats / phones_n * 1e3, 2),
            "get_requests": get["requests"],
            "get_us_per_request": round(get["nats_cpu_s"] / get["requests"] * 1e6, 1)
            if get["requests"]
            else None,
            "set_requests": put["requests"],
            "set_us_per_request_and_event": round(put["nats_cpu_s"] / put["requests"] * 1e6, 1)
            if put["requests"]
            else None,
        }
    )
    return {
        "nodes": k,
        "phones": phones_n,
        "seconds_to_all_ready": round(link_s, 2),
        "owners_as_registered": expected,
        "owned_after_rounds": owned_after,
        "monitors": monitors,
        "other_processes_cores_while_linking": link_other,
        "rounds": rounds,
        "rows": rows,
    }


COLUMNS = (
    ("nodes", "nodes"),
    ("node", "process"),
    ("phones_owned", "phones owned"),
    ("link_cpu_s", "CPU s linking"),
    ("link_ms_per_phone", "ms CPU/phone linked"),
    ("get_requests", "GetDND requests"),
    ("get_us_per_request", "µs CPU/request"),
    ("set_requests", "SetDND requests (= events)"),
    ("set_us_per_request_and_event", "µs CPU/(request+event)"),
    ("event_us_estimate", "µs/event (Set - Get)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phones", type=int, default=DEFAULT_PHONES)
    parser.add_argument("--nodes", default=DEFAULT_NODES, help="comma-separated node counts")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    if args.phones < 1 or not counts or min(counts) < 1:
        parser.error("need phones >= 1 and node counts >= 1")
    runs = []
    for k in counts:
        try:
            run = asyncio.run(one_count(k, args.phones, args.seconds))
        except BenchmarkError as exc:
            print(f"cluster: FAILED with {k} nodes: {exc}", file=sys.stderr)
            return 1
        get, put = run["rounds"]["GetDoNotDisturb"], run["rounds"]["SetDoNotDisturb"]
        print(
            f"{k} nodes: {args.phones} phones ready on every node in "
            f"{run['seconds_to_all_ready']}s; GetDND {get['requests']} ({get['failed']} failed), "
            f"SetDND {put['requests']} ({put['failed']} failed, {put['events']} events)",
            flush=True,
        )
        runs.append(run)
    rows = [row for run in runs for row in run["rows"]]
    info = meta(
        "cluster",
        f"per node count: fresh nats-server -js and uacsta serve nodes (journal at its "
        f"default, own SQLite store each), {args.phones} UDP phones in one process registering "
        "directly with the nodes round-robin; CPU = utime+stime from /proc: linking from idle "
        "to every phone ready on every node, per phone owned; then one CSTA-over-TCP client on "
        f"node n1 monitoring every line, {IN_FLIGHT} requests in flight, closed loop "
        f"{args.seconds:g} s of GetDoNotDisturb, then of SetDoNotDisturb (each makes one "
        "DoNotDisturbEvent, relayed owner -> n1 -> client) to the lines of every node; n1's "
        "CPU is per request of all, another node's per request to the phones it owns, the "
        "nats-server's per request of all. Every process on the same 2 cores, shared with "
        "another engineer's work: figures are noisy, compare within a run",
    )
    notes = [
        f"{r['nodes']} nodes: all ready on every node in {r['seconds_to_all_ready']} s, "
        f"owners as registered {r['owners_as_registered']}/{r['phones']}, "
        f"owned per node after the rounds {r['owned_after_rounds']}, "
        f"monitors {r['monitors']}; GetDND {r['rounds']['GetDoNotDisturb']['requests']} in "
        f"{r['rounds']['GetDoNotDisturb']['seconds']} s "
        f"({r['rounds']['GetDoNotDisturb']['failed']} failed), SetDND "
        f"{r['rounds']['SetDoNotDisturb']['requests']} "
        f"({r['rounds']['SetDoNotDisturb']['failed']} failed, "
        f"{r['rounds']['SetDoNotDisturb']['events']} events at the client); other load "
        f"(cores) linking {r['other_processes_cores_while_linking']}, GetDND "
        f"{r['rounds']['GetDoNotDisturb']['other_processes_cores']}, SetDND "
        f"{r['rounds']['SetDoNotDisturb']['other_processes_cores']}."
        for r in runs
    ]
    print(
        write_results(
            "cluster", "Cluster: per-node cost", info, rows, COLUMNS, notes=notes,
            extra={"runs": [{k: v for k, v in r.items() if k != "rows"} for r in runs]},
        ),
        end="",
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
