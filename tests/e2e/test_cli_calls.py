"""`uacsta call` and `uacsta monitor`: CTI smoke tests from the command line, end to end."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from tests.e2e.conftest import Harness, csta_port
from uacsta.cli import app


async def test_call_command_places_a_call_and_shows_both_lines(harness: Harness, tmp_path) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    a = sim.add_phone("yealink", ["100"], transport="udp")
    b = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    sim.auto_answer(0.3)
    await harness.wait_state(a.mac, "ready")
    await harness.wait_state(b.mac, "ready")
    config = tmp_path / "cli.toml"
    config.write_text(
        f'[clients]\ncsta_listen = ["tcp:127.0.0.1:{csta_port(server)}"]\n'
        '[[clients.accounts]]\nname = "crm"\npassword = "crm-secret"\n'
        f'[store]\npath = "{tmp_path / "cli-data"}"\n'
    )
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, ["call", "100", "200", "--watch", "2", "-c", str(config)]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "MakeCall accepted" in out
    assert "[200] DeliveredEvent" in out and "local_connection_info=alerting" in out
    assert "[100] EstablishedEvent" in out and "[200] EstablishedEvent" in out

    refused = await asyncio.to_thread(
        runner.invoke, app, ["call", "999", "200", "--watch", "0", "-c", str(config)]
    )
    assert refused.exit_code == 1 and "MakeCall refused" in refused.output
