"""The real server with ``store.url`` on PostgreSQL: a simulated phone links, its inventory row
and the journal row of a call land in the PostgreSQL database (read back with SQL, not
through the server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import Harness, make_settings, wait_until
from uacsta.server import Server
from uacsta.store.db import engine_url

pytestmark = pytest.mark.postgres


async def poll_sql(engine: sa.Engine, query: str, what: str, timeout: float = 10.0) -> list[Any]:
    """Rows of ``query`` once there are some (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def read() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(query)))

    while not (found := await asyncio.to_thread(read)):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return found


async def test_a_phone_and_its_call_land_in_postgresql(harness: Harness, postgres_db: str) -> None:
    settings = make_settings(harness.tmp_path / "data")
    settings.store.url = postgres_db
    harness.server = server = Server(settings)
    await server.start()
    assert server.store is not None and server.store.dialect == "postgresql"
    assert not (harness.tmp_path / "data" / "uacsta.db").exists()  # no SQLite beside it

    sim = harness.simulation(external_answer_delay=None)
    phone = sim.add_phone("snom", ["100"], transport="tcp")
    await sim.start()
    await harness.wait_state(phone.mac, "ready")
    device = server.hub.switch.devices.resolve("100")
    assert device is not None
    await wait_until(lambda: bool(server.hub.switch.monitors.points), 5.0, "the line's monitor")

    sim.incoming_call("100", "+4930555")
    tracker = server.hub.switch.calls
    assert tracker is not None
    await wait_until(lambda: bool(tracker.calls(device.device_id)), 5.0, "the call ringing")
    assert sim.pbx.external_hangup("+4930555", sim.now())
    sim.flush()

    engine = sa.create_engine(engine_url(postgres_db))
    try:
        (row,) = await poll_sql(
            engine,
            f"SELECT mac, vendor, state, enabled, lines FROM phones WHERE mac = '{phone.mac}'",
            "the phone's inventory row",
        )
        assert row.vendor == "snom" and row.enabled is True
        (call,) = await poll_sql(
            engine,
            "SELECT line, direction, outcome, remote_number, internal FROM call_journal",
            "the call's journal row",
        )
        assert call.line == device.device_id and call.direction == "incoming"
        assert call.outcome == "missed" and call.remote_number == "+4930555"
        assert call.internal is False
    finally:
        engine.dispose()
