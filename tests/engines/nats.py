"""A real NATS server with JetStream for the tests (Debian's ``nats-server``).

Session-scoped: one server on a free loopback port, its store in a temporary directory,
stopped at the end. A missing binary fails the tests that need it (``make sysdeps``
installs it): a cluster test that skips proves nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    # Debian installs it in /usr/sbin, not on every user's PATH.
    binary = shutil.which("nats-server") or next(
        (p for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server") if os.path.exists(p)), None
    )
    if binary is None:
        pytest.fail("nats-server is not installed: run `make sysdeps` (Debian package nats-server)")
    port = _free_port()
    with (
        tempfile.TemporaryDirectory(prefix="uacsta-nats-") as store,
        open(os.path.join(store, "nats-server.log"), "wb") as log,
    ):
        proc = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    log.flush()
                    with open(log.name, "rb") as written:
                        err = written.read().decode(errors="replace")
                    pytest.fail(f"nats-server exited at start:\n{err}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("nats-server did not start listening")
                    time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
