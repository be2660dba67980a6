"""Shared fixtures for integration tests: free ports, sipp as a subprocess, TLS certificates."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import harness  # noqa: F401  (the real server, for sipp to talk to)
from uacsta.net import ensure_self_signed_cert

SIPP_DIR = Path(__file__).parent / "sipp"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP right now (sipp binds both for -t t1)."""
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


def free_port_range(count: int, host: str = "127.0.0.1") -> int:
    """The first of ``count`` consecutive UDP ports that are free (sipp's media ports)."""
    for _ in range(50):
        base = free_port(host)
        socks: list[socket.socket] = []
        try:
            for offset in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((host, base + offset))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free port range")


@dataclass
class SippResult:
    returncode: int
    stdout: str
    stderr: str
    errors: str  # the -trace_err log, if any

    def explain(self) -> str:
        return (
            f"sipp exit code {self.returncode}\n--- stderr\n{self.stderr[-3000:]}"
            f"\n--- error log\n{self.errors[-3000:]}\n--- stdout\n{self.stdout[-2000:]}"
        )


SippRunner = Callable[..., Coroutine[Any, Any, SippResult]]


@pytest.fixture
def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail(
            "sipp is not installed: the sipp integration tests need it "
            "(`make test` installs it; Debian/Ubuntu: apt-get install sip-tester)"
        )
    return path


@pytest.fixture
def run_sipp(sipp_binary: str, tmp_path: Path) -> SippRunner:
    """``await run_sipp(scenario, *args, remote="h:p", port=None, timeout=20, transport="u1")``.

    Runs sipp once and collects its output. sipp runs with its working directory in
    ``tmp_path`` (its logs land there), local signalling (``port``, else a free one) and media
    ports chosen free, ``-m 1``, its own ``-timeout`` and ours. Without ``remote`` it is a UAS.
    """

    async def run(
        scenario: str,
        *args: str,
        remote: str | None = None,
        port: int | None = None,
        timeout: float = 20.0,
        transport: str = "u1",
    ) -> SippResult:
        workdir = tmp_path / f"sipp-{scenario.removesuffix('.xml')}-{transport}"
        workdir.mkdir(exist_ok=True)
        error_file = workdir / "errors.log"
        cmd = [
            sipp_binary,
            *([remote] if remote else []),
            "-sf",
            str(SIPP_DIR / scenario),
            "-t",
            transport,
            "-i",
            "127.0.0.1",
            "-p",
            str(port or free_port()),
            "-mp",
            str(free_port_range(4)),
            "-m",
            "1",
            "-timeout",
            f"{int(timeout)}s",
            "-timeout_error",
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(error_file),
            *args,
        ]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout + 10)
        except TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            pytest.fail(f"sipp did not finish within {timeout + 10} s: {cmd}")
        errors = error_file.read_text(errors="replace") if error_file.exists() else ""
        assert proc.returncode is not None
        return SippResult(
            proc.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            errors,
        )

    return run


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost/127.0.0.1 in ``tmp_path``."""
    return ensure_self_signed_cert(tmp_path / "tls")
