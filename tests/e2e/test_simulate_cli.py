"""`uacsta simulate` scripted from standard input against a running server."""

from __future__ import annotations

import asyncio
import sys

from tests.e2e.conftest import PASSWORD, Harness, phone_ports, wait_until


async def test_simulate_command_registers_phones_and_runs_a_script(harness: Harness) -> None:
    server = await harness.start_server()
    port = phone_ports(server)["udp"]
    script = b"list\nring 700 from 0301234\nanswer 700\ndnd 701 on\nbogus\n"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uacsta.cli",
        "simulate",
        "--server",
        f"127.0.0.1:{port}",
        "--phones",
        "2",
        "--vendor",
        "snom",
        "--first-number",
        "700",
        "--password",
        PASSWORD,
        "--duration",
        "4",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    inventory = server.inventory
    assert inventory is not None
    await wait_until(
        lambda: sum(1 for r in inventory.all() if r.state == "ready") == 2,
        timeout=15,
        what="two simulated phones ready",
    )
    proc.stdin.write(script)
    await proc.stdin.drain()
    proc.stdin.close()
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "0301234 is calling 700" in text and "700 answered" in text
    assert "do-not-disturb on at 701" in text
    assert "unknown command 'bogus'" in text
    assert all(r.simulated for r in inventory.all())
