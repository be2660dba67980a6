"""The ``uacsta`` command (Typer): run the server, manage phones, simulate phones, demo."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from uacsta import __version__
from uacsta.config import ConfigError, Settings, load_settings
from uacsta.safety import ALLOW_ENV, ALLOW_FLAG

app = typer.Typer(help="uacsta: uaCSTA server for SIP desk phones.", no_args_is_help=True)
phones_app = typer.Typer(help="The phone inventory.", invoke_without_command=True)
app.add_typer(phones_app, name="phones")

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file", exists=False)
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def version() -> None:
    """Print the uacsta version."""
    typer.echo(__version__)


@app.command()
def serve(
    config: ConfigOpt = None,
    allow_default_credentials: Annotated[
        bool,
        typer.Option(
            ALLOW_FLAG,
            envvar=ALLOW_ENV,
            help="start even while a default password ('change-me') guards a listener other "
            "machines reach (a lab); the server then warns in its log, banner, admin, /healthz",
        ),
    ] = False,
) -> None:
    """Run the server until SIGTERM/SIGINT.

    Refuses to start while a well-known default password guards a listener that is not
    loopback-only (unless --allow-default-credentials): the error names the setting to change.
    """
    from uacsta.banner import serve_banner
    from uacsta.safety import DefaultCredentialsError
    from uacsta.server import Server

    settings = _settings(config)
    setup_logging(settings.log.level)
    try:
        import uvloop  # faster event loop when installed (uvicorn[standard] brings it)
    except ImportError:  # pragma: no cover - uvloop is an optional speed-up
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    server = Server(settings, refuse_default_credentials=not allow_default_credentials)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(server.run_forever(lambda: typer.echo(serve_banner(server))))
    except DefaultCredentialsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"cannot start: {exc} (is another server using the port?)", err=True)
        raise typer.Exit(1) from None


def _control(settings: Settings, request: dict[str, Any]) -> dict[str, Any] | None:
    from uacsta.control import call

    path = Path(settings.store.path).resolve() / "uacsta.sock"
    return asyncio.run(call(path, request))


def _print_phones(rows: list[dict[str, Any]]) -> None:
    from uacsta.phones.mac import format_mac

    headers = ["MAC", "VENDOR/MODEL", "IDENTITY", "IP", "LAST LOGIN", "STATUS", "ENABLED", "LINES"]
    table = [headers]
    for r in rows:
        model = r["vendor"] + (f" {r['model']}" if r.get("model") else "")
        if r.get("simulated"):
            model += " (simulated)"
        status = r["state"] + (f": {r['state_reason']}" if r.get("state_reason") else "")
        address = f"{r['ip']} ({r['transport']})" if r.get("ip") else "-"
        table.append(
            [
                format_mac(r["mac"]),
                model,
                r.get("identity") or "-",
                address,
                r.get("last_login") or "-",
                status,
                "yes" if r["enabled"] else "no",
                ", ".join(r.get("lines") or []) or "-",
            ]
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(headers))]
    for row in table:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@phones_app.callback()
def phones_list(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """List the phone inventory (from the running server, else from the store)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(config)
    answer = _control(settings, {"cmd": "phones"})
    if answer is not None and answer.get("ok"):
        _print_phones(answer["phones"])
        return
    from uacsta.store.db import Store

    store = Store(settings.store.database_url)
    try:
        _print_phones([asdict(r) for r in store.load_phones()])
    finally:
        store.close()


def _set_enabled(mac: str, enabled: bool, config: Path | None) -> None:
    from uacsta.phones.mac import normalize_mac

    settings = _settings(config)
    normalized = normalize_mac(mac)
    if normalized is None:
        typer.echo(f"{mac!r} is not a MAC address (12 hex digits)", err=True)
        raise typer.Exit(2)
    answer = _control(settings, {"cmd": "enable" if enabled else "disable", "mac": normalized})
    if answer is not None:
        if not answer.get("ok"):
            typer.echo(answer.get("error") or "failed", err=True)
            raise typer.Exit(1)
    else:
        from uacsta.store.db import Store

        store = Store(settings.store.database_url)
        try:
            records = {r.mac: r for r in store.load_phones()}
            record = records.get(normalized)
            if record is None:
                typer.echo(f"no phone {normalized} in the inventory", err=True)
                raise typer.Exit(1)
            record.enabled = enabled
            record.state = "offline" if enabled else "disabled"
            store.save_phones([record])
        finally:
            store.close()
    typer.echo(f"{normalized} {'enabled' if enabled else 'disabled'}")


@phones_app.command("enable")
def phones_enable(mac: str, config: ConfigOpt = None) -> None:
    """Enable a phone: it is linked as soon as it is registered."""
    _set_enabled(mac, True, config)


@phones_app.command("disable")
def phones_disable(mac: str, config: ConfigOpt = None) -> None:
    """Disable a phone: its link is closed and its lines leave the switching function."""
    _set_enabled(mac, False, config)


@app.command("admin-password")
def admin_password(
    config: ConfigOpt = None,
    user: Annotated[str, typer.Option(help="admin user name")] = "admin",
) -> None:
    """Set the web admin password (asked twice, not echoed)."""
    from uacsta.store.db import Store
    from uacsta.web.auth import Auth

    settings = _settings(config)
    password = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        typer.echo("the password must have at least 8 characters", err=True)
        raise typer.Exit(2)
    store = Store(settings.store.database_url)
    try:
        Auth(store).set_password(user, password, role="admin")
    finally:
        store.close()
    typer.echo(f"password of {user!r} set")


@app.command()
def token(
    name: str,
    config: ConfigOpt = None,
) -> None:
    """Create an API token (printed once; only its hash is stored)."""
    from uacsta.store.db import Store
    from uacsta.web.auth import Auth

    settings = _settings(config)
    store = Store(settings.store.database_url)
    try:
        token_id, value = Auth(store).create_token(name)
    finally:
        store.close()
    typer.echo(f"token {token_id} ({name}): {value}")


@app.command()
def status(config: ConfigOpt = None) -> None:
    """Show the running server's status."""
    settings = _settings(config)
    answer = _control(settings, {"cmd": "status"})
    if answer is None:
        typer.echo("no server is running (control socket not found)", err=True)
        raise typer.Exit(1)
    for key, value in answer["status"].items():
        typer.echo(f"{key}: {value}")


@app.command()
def demo(
    config: ConfigOpt = None,
    answer_after: Annotated[float, typer.Option(help="seconds before phones answer")] = 3.0,
) -> None:
    """Run the server with simulated phones of several vendors (what ``make run`` does).

    Its listeners bind loopback (a wildcard address in the settings becomes 127.0.0.1), so
    the default passwords are harmless; the log shows the phones' activity at log.level.
    """
    from uacsta.demo import run_demo

    settings = _settings(config)
    setup_logging(settings.log.level)
    try:
        asyncio.run(run_demo(settings, answer_after=answer_after))
    except OSError as exc:
        typer.echo(
            f"cannot start the demo: {exc}. Another program uses a port: set other "
            "listeners in a --config file or UACSTA_PHONES__LISTEN=...",
            err=True,
        )
        raise typer.Exit(1) from None


@app.command()
def simulate(
    server: Annotated[str, typer.Option(help="uacsta phone listener host:port")] = "127.0.0.1:5060",
    phones: Annotated[int, typer.Option(help="how many phones")] = 5,
    vendor: Annotated[
        str, typer.Option(help="yealink, snom, mitel, auerswald, fanvil")
    ] = "yealink",
    transport: Annotated[str, typer.Option(help="udp or tcp")] = "udp",
    password: Annotated[str, typer.Option(help="the server's phone password")] = "change-me",
    first_number: Annotated[int, typer.Option(help="number of the first line")] = 100,
    answer_after: Annotated[float, typer.Option(help="auto-answer delay (0: never)")] = 0.0,
    duration: Annotated[float, typer.Option(help="stop after this many seconds (0: never)")] = 0.0,
) -> None:
    """Run simulated uaCSTA phones against a uacsta server (Ctrl-C to stop).

    Script them on standard input: `ring 100 from 0301234`, `dial 100 200`, `answer 101`,
    `hangup 100`, `dnd 100 on`, `silent 100 on`, `drop 100`, `offline 100`, `online 100`,
    `list` (`help` lists them).
    """
    from uacsta.simulator.runtime import Simulation
    from uacsta.simulator.script import run_command

    host, _, port_text = server.rpartition(":")
    if not host or not port_text.isdigit():
        typer.echo("--server must be host:port", err=True)
        raise typer.Exit(2)
    setup_logging("WARNING")

    async def run() -> None:
        sim = Simulation(host, {transport: int(port_text)}, password=password)
        for i in range(phones):
            sim.add_phone(vendor, [str(first_number + i)], transport=transport)
        await sim.start()
        if answer_after > 0:
            sim.auto_answer(answer_after)
        typer.echo(f"{phones} simulated {vendor} phones registering to {server} over {transport}")
        typer.echo("type commands (help lists them); Ctrl-C or end of input stops")
        loop = asyncio.get_running_loop()
        try:
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                answer = await run_command(sim, line)
                if answer:
                    typer.echo(answer)
            await asyncio.Event().wait()  # end of input: run until stopped
        finally:
            await sim.close()

    async def bounded() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run(), duration if duration > 0 else None)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bounded())


def _csta_endpoint(settings: Settings) -> tuple[str, int, str, str]:
    from uacsta.net.address import connect_host, parse_listen_address

    for address in settings.clients.csta_listen:
        parsed = parse_listen_address(address)
        if parsed.transport == "tcp":
            host = connect_host(parsed.host)
            account = settings.clients.accounts[0]
            return host, parsed.port, account.name, account.password
    typer.echo("no tcp entry in clients.csta_listen", err=True)
    raise typer.Exit(2)


def _describe(message: Any) -> str:
    fields = []
    for name in ("connection", "calling_device", "called_device", "alerting_device", "device"):
        value = getattr(message, name, None)
        if value is not None:
            text = getattr(value, "value", None) or getattr(value, "device_id", None) or value
            fields.append(f"{name}={text}")
    for name in ("local_connection_info", "cause", "do_not_disturb_on"):
        value = getattr(message, name, None)
        if value is not None:
            fields.append(f"{name}={value}")
    return f"{type(message).__name__} " + " ".join(fields)


async def _watch(client: Any, names: dict[str, str], seconds: float | None) -> None:
    from uacsta.csta import messages as m

    loop = asyncio.get_running_loop()
    end = None if seconds is None else loop.time() + seconds
    while end is None or loop.time() < end:
        try:
            message = await client.event(1.0 if end is None else max(0.05, end - loop.time()))
        except TimeoutError:
            continue
        if isinstance(message, m.CstaEvent):
            line = names.get(message.monitor_cross_ref_id or "", "?")
            typer.echo(f"[{line}] {_describe(message)}")


def _with_client(config: Path | None, body: Callable[[Any], Awaitable[int]]) -> int:
    """Connect and log in to the CSTA-over-TCP interface, run ``body(client)``, close."""
    from uacsta.clients.cstatcp import CstaClientError, CstaTcpClient

    settings = _settings(config)
    host, port, user, password = _csta_endpoint(settings)

    async def run() -> int:
        client = CstaTcpClient()
        try:
            await client.connect(host, port)
            await client.login(user, password)
            return await body(client)
        except (OSError, CstaClientError) as exc:
            typer.echo(f"cannot reach uacsta at {host}:{port}: {exc}", err=True)
            return 1
        finally:
            await client.close()

    return asyncio.run(run())


@app.command()
def call(
    calling: str,
    called: str,
    config: ConfigOpt = None,
    watch: Annotated[float, typer.Option(help="seconds to show events")] = 8.0,
) -> None:
    """Make a call from one line to a number (MakeCall), showing the lines' events."""
    from uacsta.csta import messages as m

    async def body(client: Any) -> int:
        names: dict[str, str] = {}
        for device in (calling, called):
            answer = await client.request(m.MonitorStart(monitor_object=device))
            if isinstance(answer, m.MonitorStartResponse) and answer.monitor_cross_ref_id:
                names[answer.monitor_cross_ref_id] = device
        made = await client.request(
            m.MakeCall(calling_device=calling, called_directory_number=called)
        )
        if isinstance(made, m.CSTAErrorCode):
            typer.echo(f"MakeCall refused: {made.category} {made.value}", err=True)
            return 1
        typer.echo(f"MakeCall accepted: {_describe(made)}")
        await _watch(client, names, watch)
        return 0

    raise typer.Exit(_with_client(config, body))


@app.command()
def monitor(device: str, config: ConfigOpt = None) -> None:
    """Show the CSTA events of one line until Ctrl-C."""
    from uacsta.csta import messages as m

    async def body(client: Any) -> int:
        answer = await client.request(m.MonitorStart(monitor_object=device))
        if not isinstance(answer, m.MonitorStartResponse):
            typer.echo(f"MonitorStart refused: {answer}", err=True)
            return 1
        typer.echo(f"monitoring {device} (Ctrl-C to stop)")
        await _watch(client, {answer.monitor_cross_ref_id or "": device}, None)
        return 0

    with contextlib.suppress(KeyboardInterrupt):
        raise typer.Exit(_with_client(config, body))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
