"""Kamailio, the SIP edge, as a real process for tests (the shipped deploy/kamailio config).

Small on purpose::

    with kamailio_edge(["sip:127.0.0.1:5070"], tmp_path) as edge:
        edge.host, edge.port      # where phones send (UDP and TCP)
        edge.states()             # {"sip:127.0.0.1:5070": "AP"}: the dispatcher's view

``nodes`` are the uacsta nodes' SIP URIs (dispatcher set 1, e.g. ``sip:127.0.0.1:5070`` or
``sip:127.0.0.1:5071;transport=tcp``). Kamailio runs in the foreground (``-DD -E``) with its
work and runtime directories under ``workdir``, probes the nodes every ``ping_interval``
seconds and gives up on a node's answer after ``fr_timer`` ms. A missing binary fails the
test: ``make sysdeps`` installs it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "kamailio" / "kamailio.cfg"


def kamailio_binary() -> str:
    path = shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if Path(p).exists()), None
    )
    if path is None:
        pytest.fail(
            "kamailio is not installed: the edge tests need it; run `make sysdeps` "
            "(Debian/Ubuntu: apt-get install kamailio)"
        )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (Kamailio binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port")


@dataclass
class KamailioEdge:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    rundir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def states(self) -> dict[str, str]:
        """Each node's dispatcher flags (``AP``: active and probed; ``IP``: inactive)."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        out = subprocess.run(
            [kamcmd, "-s", f"unix:{self.rundir}/kamailio_ctl", "dispatcher.list"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
        return dict(re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)", out))


def _wait_listening(edge: KamailioEdge, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if edge.process.poll() is not None:
            raise AssertionError(f"kamailio exited ({edge.process.returncode}):\n{edge.log()}")
        with socket.socket() as s:
            s.settimeout(0.2)
            try:
                s.connect((edge.host, edge.port))
            except OSError:
                pass
            else:
                if (edge.rundir / "kamailio_ctl").exists():
                    return
        if time.monotonic() > deadline:
            raise AssertionError(f"kamailio did not listen within {timeout}s:\n{edge.log()}")
        time.sleep(0.05)


@contextlib.contextmanager
def kamailio_edge(
    nodes: Sequence[str],
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    ping_interval: int = 1,
    fr_timer: int = 1000,
) -> Iterator[KamailioEdge]:
    """Kamailio on a free loopback port in front of ``nodes``; stopped on exit."""
    binary = kamailio_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    # A short directory: the control socket's path must fit a sockaddr_un (108 bytes).
    rundir = Path(tempfile.mkdtemp(prefix="kam-"))
    dispatcher = workdir / "dispatcher.list"
    dispatcher.write_text("".join(f"1 {uri}\n" for uri in nodes))
    port = free_port(host)
    log_path = workdir / "kamailio.log"
    args = [
        binary, "-DD", "-E", "-f", str(CONFIG), "-w", str(workdir), "-Y", str(rundir),
        "-n", "2", "-m", "32", "-M", "8",
        "-A", f"EDGE_IP={host}", "-A", f"EDGE_PORT={port}",
        "-A", f'DS_LIST="{dispatcher}"', "-A", f"DS_PING_INTERVAL={ping_interval}",
        "-A", f"FR_TIMER={fr_timer}", "-A", f'CTL_SOCKET="unix:{rundir}/kamailio_ctl"',
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    edge = KamailioEdge(host, port, process, rundir, log_path)
    try:
        _wait_listening(edge, 10.0)
        yield edge
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(rundir, ignore_errors=True)
