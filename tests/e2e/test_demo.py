"""`uacsta demo` (what `make run` starts): five simulated phones ready, a banner, clean stop.

The demo binds loopback even where the settings say every interface (its passwords are the
well-known defaults), so it starts without --allow-default-credentials and warns of nothing;
its log shows the phones' activity at INFO, the README's default log level.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys


async def test_demo_starts_links_the_phones_and_stops_on_sigterm(tmp_path) -> None:
    env = {
        **os.environ,
        # Every interface, as the defaults (ephemeral ports): the demo makes them loopback.
        "UACSTA_PHONES__LISTEN": "udp:0.0.0.0:0,tcp:0.0.0.0:0",
        "UACSTA_CLIENTS__SIP_LISTEN": "tcp:0.0.0.0:0",
        "UACSTA_CLIENTS__CSTA_LISTEN": "tcp:0.0.0.0:0",
        "UACSTA_HTTP__LISTEN": "tcp:0.0.0.0:0",
        "UACSTA_STORE__PATH": str(tmp_path / "data"),
    }
    log = tmp_path / "demo.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uacsta.cli",
            "demo",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
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
    # The real listeners, all loopback; nothing to warn of.
    listening = [line for line in banner if "listening        :" in line]
    assert len(listening) == 5 and all(":127.0.0.1:" in line for line in listening), listening
    assert "0.0.0.0" not in text and "WARNING (security)" not in text
    # The phones' activity in the log, at INFO.
    logged = log.read_text(errors="replace")
    assert " INFO    uacsta.phones" in logged and "ready with lines" in logged, logged[-2000:]
    assert "SECURITY" not in logged
