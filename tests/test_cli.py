"""The command line: version, inventory without a running server, tokens and admin password;
against a running server: status, calls and their commands, monitor, errors in the API's words;
help texts."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner, Result

from tests.e2e.conftest import Harness
from tests.web.conftest import Api, start_api
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


# --- against a running server (the API through the SDK, status through the control socket) ---


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Api]:
    harness = Harness(tmp_path)
    try:
        api = await start_api(harness, ("yealink", "snom", "yealink"))
        try:
            yield api
        finally:
            await api.client.aclose()
    finally:
        for sim in harness.sims:
            await sim.close()
        await harness.stop_server()


async def cli(tmp_path: Path, *args: str) -> Result:
    """The CLI in a thread (it runs its own event loop), against the server of ``tmp_path``."""
    env = {**env_for(tmp_path), "COLUMNS": "200"}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def calls_at(api: Api, line: str) -> list[dict[str, Any]]:
    answer = await api.client.get(f"/api/v1/devices/{line}/calls")
    return list(answer.json())


async def wait_calls(api: Api, line: str, states: list[str]) -> list[dict[str, Any]]:
    async with asyncio.timeout(5):
        while True:
            found = await calls_at(api, line)
            if sorted(c["state"] for c in found) == sorted(states):
                return found
            await asyncio.sleep(0.05)


async def test_status_in_words_and_as_json(running: Api, tmp_path: Path) -> None:
    human = await cli(tmp_path, "status")
    assert human.exit_code == 0, human.output
    pairs = [re.split(r"\s{2,}", line, maxsplit=1) for line in human.stdout.splitlines()]
    lines = {pair[0]: pair[-1] for pair in pairs}
    assert lines["uptime"].endswith(" s"), human.stdout
    assert lines["phones"].startswith("3 in the inventory (3 ready)"), human.stdout
    assert lines["web connections"].endswith("open, 0 refused, 0 timed out"), human.stdout
    assert "[" not in human.stdout and "{" not in human.stdout and "': " not in human.stdout
    assert "web http:127.0.0.1:" in human.stdout  # what it listens on
    as_json = await cli(tmp_path, "status", "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["phones"]["ready"] == 3 and data["devices"] == 3


async def test_errors_are_the_apis_words_on_stderr(running: Api, tmp_path: Path) -> None:
    api_error = (await running.client.post("/api/v1/devices/999/calls", json={"to": "200"})).json()
    made = await cli(tmp_path, "call", "999", "200", "--watch", "0")
    assert made.exit_code == 1
    assert made.stdout == ""
    assert (
        made.stderr.strip() == api_error["error"] == "unknown device '999': no phone has this line"
    )

    watched = await cli(tmp_path, "monitor", "999", "--seconds", "1")
    assert watched.exit_code == 1 and watched.stdout == ""
    assert watched.stderr.strip() == "MonitorStart failed: unknown device '999'"

    listed = await cli(tmp_path, "calls", "999")
    assert listed.exit_code == 1 and listed.stderr.strip() == api_error["error"]
    nothing = await cli(tmp_path, "answer", "100")
    assert nothing.exit_code == 1 and nothing.stderr.strip() == "100 has no calls to answer"
    wrong = await cli(tmp_path, "hold", "100", "--call", "no-such-call")
    assert wrong.exit_code == 1 and wrong.stderr.startswith("HoldCall failed")


async def test_call_commands_from_dialling_to_hanging_up(running: Api, tmp_path: Path) -> None:
    made = await cli(tmp_path, "call", "100", "200", "--watch", "1")
    assert made.exit_code == 0, made.output
    first = made.stdout.splitlines()[0]
    assert first.startswith("call ") and first.endswith(" from sip:100@sim.invalid to 200")
    a_call = first.split()[1]
    [ringing] = await wait_calls(running, "200", ["alerting"])
    b_call = ringing["call_id"]
    assert f"[sip:200@sim.invalid] call.ringing call {b_call} from 100" in made.stdout
    assert f"[100] DeliveredEvent call {a_call}" in made.stdout

    listed = await cli(tmp_path, "calls", "200")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0].split()[:3] == ["CALL", "ID", "STATE"]
    assert listed.stdout.splitlines()[1].split()[:3] == [b_call, "alerting", "incoming"]
    as_json = await cli(tmp_path, "calls", "200", "--json")
    assert [c["call_id"] for c in json.loads(as_json.stdout)] == [b_call]

    answered = await cli(tmp_path, "answer", "200")
    assert answered.exit_code == 0, answered.output
    assert answered.stdout.strip() == f"call {b_call} answered at 200"
    await wait_calls(running, "200", ["connected"])

    held = await cli(tmp_path, "hold", "200", "--call", b_call)
    assert held.exit_code == 0 and held.stdout.strip() == f"call {b_call} held at 200"
    await wait_calls(running, "200", ["hold"])
    retrieved = await cli(tmp_path, "retrieve", "200")
    assert retrieved.exit_code == 0, retrieved.output
    assert retrieved.stdout.strip() == f"call {b_call} retrieved at 200"
    await wait_calls(running, "200", ["connected"])

    moved = await cli(tmp_path, "transfer", "200", "300")
    assert moved.exit_code == 0, moved.output
    assert moved.stdout.strip() == f"call {b_call} transferred from 200 to 300"
    await wait_calls(running, "200", [])
    await wait_calls(running, "300", ["alerting"])
    assert (await cli(tmp_path, "answer", "300")).exit_code == 0
    await wait_calls(running, "300", ["connected"])

    hung = await cli(tmp_path, "hangup", "300")
    assert hung.exit_code == 0, hung.output
    assert hung.stdout.strip().endswith("cleared at 300")
    for line in ("100", "200", "300"):
        await wait_calls(running, line, [])  # no stale calls


async def test_monitor_shows_call_ids_until_its_time_is_up(running: Api, tmp_path: Path) -> None:
    task = asyncio.create_task(cli(tmp_path, "monitor", "200", "--seconds", "2"))
    await asyncio.sleep(0.8)
    made = await running.client.post("/api/v1/devices/100/calls", json={"to": "200"})
    assert made.status_code == 201, made.text
    result = await task
    assert result.exit_code == 0, result.output
    [ringing] = await calls_at(running, "200")
    assert result.stdout.startswith("monitoring 200")
    assert f"call.ringing call {ringing['call_id']} from 100" in result.stdout
    assert f"[200] DeliveredEvent call {ringing['call_id']}" in result.stdout
    assert (await cli(tmp_path, "hangup", "100")).exit_code == 0
    await wait_calls(running, "200", [])


def test_phones_fit_the_terminal(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'data' / 'uacsta.db'}")
    store.save_phones(
        [
            PhoneRecord(
                mac="001565AABBCC",
                vendor="yealink",
                model="T46G",
                state="offline",
                identity="a rather long identity of a phone in the meeting room",
                lines=["sip:100@pbx.example.com", "sip:101@pbx.example.com"],
            )
        ]
    )
    store.close()
    for columns in (60, 80, 200):
        listing = CliRunner().invoke(
            app, ["phones"], env={**env_for(tmp_path), "COLUMNS": str(columns)}
        )
        assert listing.exit_code == 0, listing.output
        assert all(len(line) <= columns for line in listing.stdout.splitlines()), listing.stdout
        assert "00:15:65:AA:BB:CC" in listing.stdout
    wide = CliRunner().invoke(app, ["phones"], env={**env_for(tmp_path), "COLUMNS": "200"})
    assert "sip:100@pbx.example.com, sip:101@pbx.example.com" in wide.stdout


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = [(prefix, group)]
    for name, command in getattr(group, "commands", {}).items():
        out += _commands(command, (*prefix, name))
    return out


def test_help_has_no_placeholders_and_describes_every_argument() -> None:
    root = typer.main.get_command(app)
    commands = _commands(root)
    assert len(commands) > 15
    for path, command in commands:
        for param in command.params:
            assert getattr(param, "help", None), f"{' '.join(path)}: {param.name} has no help"
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        text = result.stdout
        assert not re.search(r"<[a-z]+>|\{[a-z_]+\}|``|`", text), (path, text)


async def test_the_readme_tour_leaves_no_stale_calls(tmp_path: Path) -> None:
    """The README's tour with the demo's vendors (phones answer by themselves)."""
    harness = Harness(tmp_path)
    try:
        api = await start_api(harness, ("yealink", "snom", "mitel"))
        harness.sims[0].auto_answer(0.3)
        try:
            made = await cli(tmp_path, "call", "100", "200", "--watch", "1")
            assert made.exit_code == 0, made.output
            await wait_calls(api, "100", ["connected"])
            listed = await cli(tmp_path, "calls", "100")
            assert listed.exit_code == 0 and "connected" in listed.stdout, listed.output
            steps = [
                (["hold", "100"], ["hold"]),
                (["retrieve", "100"], ["connected"]),
                (["transfer", "100", "300"], []),
            ]
            for step, states_at_100 in steps:
                done = await cli(tmp_path, *step)
                assert done.exit_code == 0, (step, done.output)
                await wait_calls(api, "100", states_at_100)
            await wait_calls(api, "300", ["connected"])
            hung = await cli(tmp_path, "hangup", "300")
            assert hung.exit_code == 0, hung.output
            for line in ("100", "200", "300"):
                await wait_calls(api, line, [])
                assert (await cli(tmp_path, "calls", line)).stdout.strip() == f"no calls at {line}"
        finally:
            await api.client.aclose()
    finally:
        for sim in harness.sims:
            await sim.close()
        await harness.stop_server()
