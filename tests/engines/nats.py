"""A real NATS server with JetStream for the tests (Debian's ``nats-server``).

Session-scoped: one server on a loopback port it picks itself (``-p -1``; it writes the
port to a ports file: no race with other tests for a "free" port), its store in a temporary
directory, stopped at the end. A missing binary fails the tests that need it (``make sysdeps``
installs it): a cluster test that skips proves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

START_TIMEOUT = 10.0


def _listening(ports_file: str) -> str | None:
    """The server's URL once its ports file is written and it accepts connections."""
    try:
        with open(ports_file, encoding="utf-8") as file:
            url = str(json.load(file)["nats"][0])
        host, port = url.removeprefix("nats://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=0.2):
            return url
    except (OSError, ValueError, KeyError, IndexError):
        return None


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    # Debian installs it in /usr/sbin, not on every user's PATH.
    binary = shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.path.exists(p)), None
    )
    if binary is None:
        pytest.fail("nats-server is not installed: run `make sysdeps` (Debian package nats-server)")
    with (
        tempfile.TemporaryDirectory(prefix="uacsta-nats-") as store,
        open(os.path.join(store, "nats-server.log"), "wb") as log,
    ):
        # -p -1: a port of its own choosing, written to the ports file.
        command = [binary, "-js", "-a", "127.0.0.1", "-p", "-1", "-sd", store]
        proc = subprocess.Popen(
            [*command, "--ports_file_dir", store],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            ports = os.path.join(store, f"nats-server_{proc.pid}.ports")
            url = None
            while url is None:
                if proc.poll() is not None:
                    log.flush()
                    with open(log.name, "rb") as written:
                        err = written.read().decode(errors="replace")
                    pytest.fail(f"nats-server exited at start:\n{err}")
                url = _listening(ports)
                if url is None:
                    if time.monotonic() > deadline:
                        pytest.fail("nats-server did not start listening")
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
