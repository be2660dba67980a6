"""A few seconds of the benchmarks' load generator, so it keeps working (no timing asserts).

A real server process (``uacsta serve``), 20 simulated phones and 2 CSTA-over-TCP clients in
processes of their own (``benchmarks/common.py``), 200 GetDoNotDisturb requests relayed;
``phones_link.py`` with 300 TCP phones; one round of ``calls.py`` in small.
"""

from __future__ import annotations

import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parent.parent / "benchmarks"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def common():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import common
        import histogram

        yield common, histogram
    finally:
        sys.path.remove(str(BENCHMARKS))


async def test_relay_smoke(common, tmp_path: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    bench, histogram = common
    phones_n, requests = 20, 200
    server = bench.ServerProcess(tmp_path, bench.free_port())
    phones = clients = None
    try:
        await server.start()
        phones = bench.PhoneFleet(server.port, phones_n)
        clients = bench.ClientPool(server.csta_port)
        await phones.call("start")
        await server.wait_ready(phones_n, 60.0)
        pairs = await phones.call("devices")
        assert len(pairs) == phones_n
        mac_of = {device: mac for mac, device in pairs}
        assert await clients.call("connect", 2) == 2
        out = await clients.call("relay", list(mac_of), "GetDoNotDisturb", 30.0, None, requests)
        per_device = out["per_device"]
        assert sum(len(r) for r in per_device.values()) == requests
        assert all(ok for records in per_device.values() for *_, ok in records), out["errors"]
        timings = await phones.call("timings")
        assert sum(len(t) for t in timings.values()) == requests
        observed, added, unmatched = bench.added_latencies(per_device, timings, mac_of)
        assert unmatched == 0 and len(observed) == len(added) == requests
        h = histogram.Histogram()
        h.record_many(observed)
        assert h.count == requests
        assert h.percentile(50) <= h.percentile(99) <= h.max_ns / 1e9
        code, _ = await server.stop()
        assert code == 0, server.tail()
    finally:
        await server.stop()
        if clients is not None:
            await clients.close()
        if phones is not None:
            await phones.close()


def test_phones_link_smoke_each_phone_from_its_own_address(common) -> None:  # type: ignore[no-untyped-def]
    """300 TCP phones: more than the server admits from one address (256), so every phone
    must connect from its own loopback address, as the benchmark intends."""
    import asyncio

    bench, _ = common
    import phones_link

    phones = 300
    with asyncio.Runner(loop_factory=bench.SourceBindingLoop) as runner:
        row = runner.run(phones_link.run(phones, "tcp", ["yealink", "snom"], 0.0, 60.0, 0.0))
    assert row["phones_linked_in_simulator"] == phones
    assert row["server_exit_code"] == 0
    assert row["server_rss_after_kb"] >= row["server_rss_idle_kb"] > 0


async def test_calls_smoke_journal_round(common) -> None:  # type: ignore[no-untyped-def]
    """``calls.py`` round C in small: 10 phones, 20 calls/s for 1 s; every call is one
    journal row, and every DeliveredEvent the phones sent is matched at the client."""
    import argparse

    import calls

    args = argparse.Namespace(phones=10, rate=20.0, seconds=1.0, ring=0.1, talk=0.2)
    r = await calls.run_round("C", args)
    assert r["server_exit_code"] == 0
    assert r["calls_started"] + r["calls_skipped"] == 20
    assert r["calls_completed"] == r["calls_started"] > 0
    assert r["journal_rows"] == r["calls_completed"]
    assert r["journal_batches"] >= 1
    assert r["phone_events"]["DeliveredEvent"] == r["calls_started"]
    assert r["delivered_matched"] == r["calls_started"]
    assert r["delivered_unmatched_lines"] == 0


@pytest.mark.cluster
async def test_cluster_smoke_two_nodes(common) -> None:  # type: ignore[no-untyped-def]
    """``cluster.py`` with 2 nodes in small: 10 phones on a real nats-server, every request
    answered and the SetDoNotDisturbs' events relayed to the client on node 1."""
    import cluster

    run = await cluster.one_count(2, 10, 0.5)
    assert run["owners_as_registered"] == 10 and run["monitors"] == 10
    get, put = run["rounds"]["GetDoNotDisturb"], run["rounds"]["SetDoNotDisturb"]
    assert get["failed"] == put["failed"] == 0
    assert get["to_node"][1] > 0 and put["to_node"][1] > 0
    # one event per SetDoNotDisturb; the last ones may still be on their way
    assert put["requests"] > 0 and abs(put["events"] - put["requests"]) <= put["requests"] // 10
    assert [r["phones_owned"] for r in run["rows"][:2]] == [5, 5]
