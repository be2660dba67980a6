"""The ``uacsta`` command (Typer): run the server, manage phones, simulate phones, demo."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from uacsta import __version__
from uacsta.config import ConfigError, Settings, load_settings

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
def serve(config: ConfigOpt = None) -> None:
    """Run the server until SIGTERM/SIGINT."""
    from uacsta.server import Server

    settings = _settings(config)
    setup_logging(settings.log.level)
    try:
        asyncio.run(Server(settings).run_forever())
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
