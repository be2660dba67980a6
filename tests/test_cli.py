"""The command line: version, inventory without a running server, tokens and admin password."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from uacsta.cli import app
from uacsta.store.db import PhoneRecord, Store
from uacsta.web.auth import Auth, token_hash


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"UACSTA_STORE__PATH": str(tmp_path / "data")}


def test_version() -> None:
    result = CliRunner().invoke(app, ["version"])
    assert result.exit_code == 0 and result.output.strip()


def test_phones_from_the_store_when_no_server_runs(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'data' / 'uacsta.db'}")
    store.save_phones(
        [PhoneRecord(mac="001565AABBCC", vendor="yealink", model="T46G", state="offline")]
    )
    store.close()
    runner = CliRunner()
    listing = runner.invoke(app, ["phones"], env=env)
    assert listing.exit_code == 0, listing.output
    assert "00:15:65:AA:BB:CC" in listing.output and "yealink T46G" in listing.output
    off = runner.invoke(app, ["phones", "disable", "00-15-65-aa-bb-cc"], env=env)
    assert off.exit_code == 0, off.output
    store = Store(f"sqlite:///{tmp_path / 'data' / 'uacsta.db'}")
    assert store.load_phones()[0].enabled is False
    store.close()
    missing = runner.invoke(app, ["phones", "enable", "001565000000"], env=env)
    assert missing.exit_code == 1 and "no phone" in missing.output


def test_token_and_admin_password(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    runner = CliRunner()
    created = runner.invoke(app, ["token", "crm"], env=env)
    assert created.exit_code == 0, created.output
    value = created.output.strip().split(": ", 1)[1]
    store = Store(f"sqlite:///{tmp_path / 'data' / 'uacsta.db'}")
    assert store.find_token(token_hash(value)) is not None
    short = runner.invoke(app, ["admin-password"], env=env, input="short\nshort\n")
    assert short.exit_code == 2
    ok = runner.invoke(app, ["admin-password"], env=env, input="long-enough\nlong-enough\n")
    assert ok.exit_code == 0, ok.output
    assert Auth(store).login("admin", "long-enough") is not None
    assert Auth(store).login("admin", "wrong") is None
    store.close()


def test_bad_configuration_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["phones"], env={"UACSTA_PHONES__NOPE": "1", **env_for(tmp_path)}
    )
    assert result.exit_code == 2 and "unknown setting" in result.output
