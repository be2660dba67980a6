"""`uacsta demo` (what `make run` starts): five simulated phones ready, a banner, clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys


async def test_demo_starts_links_the_phones_and_stops_on_sigterm(tmp_path) -> None:
    env = {
        **os.environ,
        "UACSTA_PHONES__LISTEN": "udp:127.0.0.1:0,tcp:127.0.0.1:0",
        "UACSTA_CLIENTS__SIP_LISTEN": "tcp:127.0.0.1:0",
        "UACSTA_CLIENTS__CSTA_LISTEN": "tcp:127.0.0.1:0",
        "UACSTA_HTTP__LISTEN": "tcp:127.0.0.1:0",
        "UACSTA_STORE__PATH": str(tmp_path / "data"),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uacsta.cli",
        "demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    banner: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not banner or "uacsta status" not in banner[-1]:
                line = (await proc.stdout.readline()).decode()
                assert line, "the demo ended before printing its banner"
                banner.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    text = "".join(banner)
    assert "simulated phones : 5 of 5 ready" in text
    assert "web admin        : http://127.0.0.1:" in text
    assert "initial-admin-password" in text
    assert proc.returncode == 0
