"""A few seconds of the benchmarks' load generator, so it keeps working (no timing asserts).

A real server process (``uacsta serve``), 20 simulated phones and 2 CSTA-over-TCP clients in
processes of their own (``benchmarks/common.py``), 200 GetDoNotDisturb requests relayed.
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
