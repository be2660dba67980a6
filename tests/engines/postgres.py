"""A throw-away PostgreSQL server for the tests: started once per session, removed after.

The server binaries come from the Debian package (``make sysdeps`` installs it): ``initdb`` and
``pg_ctl`` in ``/usr/lib/postgresql/<version>/bin`` (not on PATH). A missing binary fails the
fixture (never a skip), with a message naming ``make sysdeps``.

The API (fixtures are registered for every test by ``tests/conftest.py``):

- ``postgres_url`` (session fixture): the SQLAlchemy URL
  (``postgresql+psycopg://uacsta:...@127.0.0.1:<port>/uacsta``) of a database on the server.
- ``postgres_db`` (fixture): the URL of a fresh, empty database of its own for one test.
- ``store_url`` (fixture, parametrized ``sqlite`` / ``postgresql``): a fresh empty database
  of each engine for one test, a SQLite file in ``tmp_path`` then a PostgreSQL database; the
  PostgreSQL run carries the ``postgres`` marker (``-m "not postgres"`` leaves it out).
- :func:`fresh_database` ``(url) -> url``: a new empty database on the server of ``url``
  (what ``postgres_db`` uses; call it for more databases in one test).
- :class:`PostgresServer`: start/stop a cluster in a directory, for tests that need their
  own server (not for ordinary use).

The cluster lives in a temporary directory (data, log and the Unix socket) and listens on a
free loopback TCP port with password authentication (SCRAM). ``initdb`` refuses to run as
root: as root the server runs as the ``postgres`` system user (``runuser``), which owns the
directory. Durability is off (``fsync=off``): the server is thrown away after the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = [
    "PostgresServer",
    "find_bindir",
    "fresh_database",
    "postgres_db",
    "postgres_url",
    "store_url",
]

USER = "uacsta"
DATABASE = "uacsta"
SYSTEM_USER = "postgres"  # created by the Debian package; runs the server when we are root
MISSING = (
    "PostgreSQL server binaries not found ({what}): run `make sysdeps` (installs the Debian "
    "package postgresql) or install PostgreSQL so that /usr/lib/postgresql/*/bin/initdb exists"
)


class PostgresMissing(RuntimeError):
    """The server binaries (or the psycopg driver) are not installed."""


def find_bindir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: the newest Debian version, else PATH."""

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    candidates = [Path(p).parent for p in found]
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "pg_ctl").exists():
            return bindir
    raise PostgresMissing(MISSING.format(what="initdb and pg_ctl"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in ``base`` (created by :meth:`start`, gone after :meth:`stop`)."""

    def __init__(self, base: Path, bindir: Path | None = None) -> None:
        self.base = base
        self.bindir = bindir or find_bindir()
        self.data = base / "data"
        self.log = base / "server.log"
        self.password = secrets.token_urlsafe(16)
        self.port = 0
        self._as_system_user = os.geteuid() == 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_system_user:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{log}"
            )
        return result

    def start(self) -> None:
        if self._as_system_user:
            shutil.chown(self.base, SYSTEM_USER, SYSTEM_USER)
        self.base.chmod(0o700)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_system_user:
            shutil.chown(pwfile, SYSTEM_USER, SYSTEM_USER)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        for attempt in range(3):  # the free port may be taken between the probe and the start
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    options,
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self.create_database(DATABASE)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast")
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE ``name``; returns its URL."""
        return fresh_database(self.url(), name=name)


def fresh_database(url: str, *, name: str | None = None) -> str:
    """A new, empty database on the server of ``url`` (a unique name unless ``name``);
    returns its SQLAlchemy URL."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the dev extra brings it
        raise PostgresMissing("psycopg is missing: pip install -e '.[dev]'") from None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = name or f"t_{secrets.token_hex(6)}"
    with psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the session; yields the URL of its ``uacsta`` database."""
    bindir: Path | None = None
    missing = ""
    try:
        bindir = find_bindir()
    except PostgresMissing as exc:
        missing = str(exc)
    if bindir is None:  # a failure, never a skip: CI must run these tests
        pytest.fail(missing, pytrace=False)
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="uacsta-pg-")), bindir)
    try:
        server.start()
        yield server.url()
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres_url: str) -> str:
    """The URL of a fresh, empty database for one test (the server starts once)."""
    return fresh_database(postgres_url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each engine (the test runs once per engine)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'uacsta.db'}"
    return fresh_database(request.getfixturevalue("postgres_url"))
