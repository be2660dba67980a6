"""`uacsta call`: a CTI smoke test from the command line, end to end, against a server named
by ``--url`` and ``--token`` (another machine's, as an operator would use it)."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from tests.e2e.conftest import Harness
from uacsta.cli import app
from uacsta.web.auth import Auth


async def test_call_command_places_a_call_and_shows_both_lines(harness: Harness, tmp_path) -> None:
    server = await harness.start_server()
    sim = harness.simulation()
    a = sim.add_phone("yealink", ["100"], transport="udp")
    b = sim.add_phone("snom", ["200"], transport="tcp")
    await sim.start()
    sim.auto_answer(0.3)
    await harness.wait_state(a.mac, "ready")
    await harness.wait_state(b.mac, "ready")
    assert server.store is not None
    _id, token = Auth(server.store).create_token("cli")
    remote = [
        "--url",
        f"http://127.0.0.1:{server.http_port}",
        "--token",
        token,
    ]
    env = {"UACSTA_STORE__PATH": str(tmp_path / "cli-data")}
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, ["call", "100", "200", "--watch", "2", *remote], env=env
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("call ") and "from sip:100@sim.invalid to 200" in out
    assert "[200] DeliveredEvent" in out and "local_connection_info=alerting" in out
    assert "[100] EstablishedEvent" in out and "[200] EstablishedEvent" in out
    assert "call.answered" in out

    refused = await asyncio.to_thread(
        runner.invoke, app, ["call", "999", "200", "--watch", "0", *remote], env=env
    )
    assert refused.exit_code == 1
    assert refused.stderr.strip() == "unknown device '999': no phone has this line"
    hung = await asyncio.to_thread(runner.invoke, app, ["hangup", "100", *remote], env=env)
    assert hung.exit_code == 0, hung.output
