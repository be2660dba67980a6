"""The ``uacsta`` command (Typer): run the server, manage phones, simulate phones, demo, and
make and handle calls from the shell.

Where each command gets its answers:

- **The JSON API, through the SDK** (:mod:`uacsta.client`): ``call``, ``calls``, ``answer``,
  ``hangup``, ``hold``, ``retrieve``, ``transfer`` and ``monitor`` (the event WebSocket), so
  their errors are the API's own words. The server's address is ``--url`` (``UACSTA_URL``),
  else the running server's web listener as its control socket reports it, else
  ``http.listen``; the token is ``--token`` (``UACSTA_TOKEN``), else one the CLI created for
  itself in the store (``<store.path>/cli-token``, mode 0600).
- **The control socket** (:mod:`uacsta.control`) for what only it offers: ``status``,
  ``phones`` and ``phones enable|disable`` without any token, the same answers as the API's
  for the local operator, and the address of the running server's web listener.
- **The store** directly when no server runs (``phones``), and for ``token`` and
  ``admin-password``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
import typer.core

from uacsta import __version__
from uacsta.config import ConfigError, Settings, load_settings
from uacsta.safety import ALLOW_ENV, ALLOW_FLAG

if TYPE_CHECKING:
    from uacsta.client import Client, CurrentCall, Event, EventStream


class _Argument(typer.core.TyperArgument):
    """An argument whose help shows its name and description, no type column."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


def _tidy_params(command: Any, ctx: typer.Context) -> None:
    """Help without type placeholders: arguments and options show a word, flags nothing."""
    for param in command.get_params(ctx):
        if isinstance(param, typer.core.TyperOption) and (param.is_flag or param.count):
            param.metavar = param.metavar or ""
        elif param.metavar is None:
            param.metavar = (param.name or "value").upper()
        if type(param) is typer.core.TyperArgument:
            param.__class__ = _Argument  # same object, no type placeholder in the help


class Command(typer.core.TyperCommand):
    """A command whose help shows ``LINE``, not ``{line}`` or ``<str>``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        _tidy_params(self, ctx)
        pieces = ["[OPTIONS]"]
        for param in self.get_params(ctx):
            if isinstance(param, typer.core.TyperArgument):
                name = param.metavar or (param.name or "").upper()
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy_params(self, ctx)
        super().format_help(ctx, formatter)


class Group(typer.core.TyperGroup):
    """A command group with the same tidy help as :class:`Command`."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _tidy_params(self, ctx)
        super().format_help(ctx, formatter)


app = typer.Typer(
    help="uacsta: uaCSTA server for SIP desk phones.", no_args_is_help=True, cls=Group
)
phones_app = typer.Typer(help="The phone inventory.", invoke_without_command=True, cls=Group)
app.add_typer(phones_app, name="phones")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file", exists=False, metavar="FILE"),
]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        help="web address of the server (default: the running server's, else http.listen)",
        envvar="UACSTA_URL",
        metavar="URL",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        help="API token (default: one the CLI keeps in the data directory)",
        envvar="UACSTA_TOKEN",
        metavar="TOKEN",
    ),
]
LineArg = Annotated[
    str, typer.Argument(help="the line: 100, tel:100 or sip:100@pbx", metavar="LINE")
]
CallOpt = Annotated[
    str | None,
    typer.Option(
        "--call",
        "-i",
        help="call ID (as uacsta call and uacsta calls show it); default: the line's only call",
        metavar="CALL_ID",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]


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


@app.command(cls=Command)
def version() -> None:
    """Print the uacsta version."""
    typer.echo(__version__)


@app.command(cls=Command)
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
    from uacsta.cluster import ClusterError
    from uacsta.safety import DefaultCredentialsError
    from uacsta.server import Server
    from uacsta.store.db import StoreError

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
    except (DefaultCredentialsError, StoreError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except ClusterError as exc:
        typer.echo(f"cannot start: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"cannot start: {exc} (is another server using the port?)", err=True)
        raise typer.Exit(1) from None


def _control(settings: Settings, request: dict[str, Any]) -> dict[str, Any] | None:
    from uacsta.control import call

    path = Path(settings.store.path).resolve() / "uacsta.sock"
    return asyncio.run(call(path, request))


def _table(table: list[list[str]], *, drop: tuple[int, ...] = ()) -> list[str]:
    """Rows in aligned columns that fit the terminal: the columns in ``drop`` are left out
    (in that order) while too wide, then the widest column is shortened with an ellipsis.
    Output to a pipe or a file (no ``COLUMNS``) keeps everything."""
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        width = shutil.get_terminal_size().columns
    else:
        width = sys.maxsize  # into a pipe or file: every column, whole
    keep = list(range(len(table[0])))

    def widths() -> list[int]:
        return [max(len(row[i]) for row in table) for i in keep]

    def total(ws: list[int]) -> int:
        return sum(ws) + 2 * (len(ws) - 1)

    for column in drop:
        if total(widths()) <= width:
            break
        keep.remove(column)
    ws = widths()
    while total(ws) > width:
        widest = max(range(len(ws)), key=lambda i: ws[i])
        if ws[widest] <= 8:
            break
        ws[widest] -= min(ws[widest] - 8, total(ws) - width)
    lines = []
    for row in table:
        cells = []
        for w, i in zip(ws, keep, strict=True):
            text = row[i] if len(row[i]) <= w else row[i][: w - 1] + "\u2026"
            cells.append(text.ljust(w))
        lines.append("  ".join(cells).rstrip())
    return lines


def _print_phones(rows: list[dict[str, Any]]) -> None:
    from uacsta.phones.mac import format_mac

    headers = ["MAC", "VENDOR/MODEL", "STATUS", "LINES", "IP", "IDENTITY", "LAST LOGIN", "ENABLED"]
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
                status,
                ", ".join(r.get("lines") or []) or "-",
                address,
                r.get("identity") or "-",
                r.get("last_login") or "-",
                "yes" if r["enabled"] else "no",
            ]
        )
    # Narrow terminals lose the least needed columns first (ENABLED shows in STATUS too).
    for line in _table(table, drop=(7, 6, 5, 4)):
        typer.echo(line)


MacArg = Annotated[str, typer.Argument(help="the phone's MAC address, in any notation")]


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


@phones_app.command("enable", cls=Command)
def phones_enable(mac: MacArg, config: ConfigOpt = None) -> None:
    """Enable a phone: it is linked as soon as it is registered."""
    _set_enabled(mac, True, config)


@phones_app.command("disable", cls=Command)
def phones_disable(mac: MacArg, config: ConfigOpt = None) -> None:
    """Disable a phone: its link is closed and its lines leave the switching function."""
    _set_enabled(mac, False, config)


@app.command("admin-password", cls=Command)
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


@app.command(cls=Command)
def token(
    name: Annotated[str, typer.Argument(help="what the token is for (e.g. crm)")],
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


@app.command(cls=Command)
def demo(
    config: ConfigOpt = None,
    answer_after: Annotated[float, typer.Option(help="seconds before phones answer")] = 3.0,
) -> None:
    """Run the server with simulated phones of several vendors (what make run does).

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


@app.command(cls=Command)
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

    Script them on standard input, one command a line: ring 100 from 0301234, dial 100 200,
    answer 101, hangup 100, dnd 100 on, silent 100 on, drop 100, offline 100, online 100,
    list (help lists them).
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


# --------------------------------------------------------------------------- status
def _duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_status(status: dict[str, Any]) -> list[str]:
    """The status in words and units, one fact a line (what ``uacsta status`` prints)."""
    phones = status.get("phones") or {}
    total = sum(phones.values())
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(phones.items()) if n) or "none"
    rows: list[tuple[str, str]] = [
        ("uptime", _duration(float(status.get("uptime", 0)))),
        ("phones", f"{total} in the inventory ({by_state})" if total else "none"),
        ("lines", f"{status.get('devices', 0)} in the switching function"),
        (
            "clients",
            f"{status.get('clients', 0)} connected, {_plural(status.get('monitors', 0), 'monitor')}"
            f" (and {status.get('server_monitors', 0)} of the server's own, for the journal)",
        ),
        ("phone monitors", f"{status.get('phone_monitors', 0)} (one per watched line, shared)"),
        (
            "relayed",
            f"{status.get('requests_relayed', 0)} requests, {status.get('events_relayed', 0)} "
            "events",
        ),
    ]
    for kind, gate in sorted((status.get("connections") or {}).items()):
        rows.append(
            (
                f"{kind} connections",
                f"{gate.get('open', 0)} open, {gate.get('refused', 0)} refused, "
                f"{gate.get('timed_out', 0)} timed out",
            )
        )
    flood = status.get("sip_flood") or {}
    rows.append(
        (
            "SIP flood",
            f"{_plural(flood.get('dropped', 0), 'message')} dropped, "
            f"{_plural(flood.get('paused', 0), 'pause')}",
        )
    )
    cluster = status.get("cluster")
    if cluster:
        rows.append(
            (
                "cluster",
                f"node {cluster.get('node')} of {cluster.get('cluster')}"
                f" ({'holding its lease' if cluster.get('holding') else 'LEASE LOST'}), "
                f"live nodes: {', '.join(cluster.get('live_nodes') or []) or 'none'}; "
                f"{_plural(len(cluster.get('owned') or []), 'phone')} owned here, "
                f"{len(cluster.get('mirrored') or [])} linked at other nodes",
            )
        )
    for i, address in enumerate(status.get("listening") or []):
        rows.append(("listening" if i == 0 else "", str(address)))
    width = max(len(name) for name, _ in rows) + 2
    return [f"{name.ljust(width)}{value}".rstrip() for name, value in rows]


@app.command(cls=Command)
def status(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show the running server's status."""
    settings = _settings(config)
    answer = _control(settings, {"cmd": "status"})
    if answer is None:
        typer.echo("no server is running (control socket not found)", err=True)
        raise typer.Exit(1)
    if not answer.get("ok"):
        typer.echo(answer.get("error") or "the server refused", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(answer["status"], indent=2, sort_keys=True))
        return
    for line in format_status(answer["status"]):
        typer.echo(line)


# --------------------------------------------------------------------------- the API
T = TypeVar("T")


def _server_url(settings: Settings) -> str:
    """The running server's web address (its control socket says), else ``http.listen``."""
    from uacsta.net.address import connect_host, parse_listen_address

    answer = _control(settings, {"cmd": "status"})
    if answer is not None and answer.get("ok"):
        parts = urlsplit(str(answer["status"].get("web_url") or ""))
        if parts.scheme in ("http", "https") and parts.port:
            host = connect_host(parts.hostname or "")
            host = f"[{host}]" if ":" in host else host
            return f"{parts.scheme}://{host}:{parts.port}"
    parsed = parse_listen_address(settings.http.listen)
    scheme = "https" if parsed.transport == "tls" else "http"
    return f"{scheme}://{connect_host(parsed.host)}:{parsed.port}"


def _token_file(settings: Settings) -> Path:
    return Path(settings.store.path).resolve() / "cli-token"


def _own_token(settings: Settings, *, renew: bool = False) -> str:
    """The token the CLI keeps for itself (created in the store on first use)."""
    path = _token_file(settings)
    if not renew:
        with contextlib.suppress(OSError):
            text = path.read_text().strip()
            if text:
                return text
    from uacsta.store.db import Store
    from uacsta.web.auth import Auth

    try:
        store = Store(settings.store.database_url)
        try:
            _id, value = Auth(store).create_token("uacsta CLI (local)")
        finally:
            store.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(value + "\n")
    except Exception as exc:  # no write access to the data directory or its database
        typer.echo(
            f"no API token: pass --token or set UACSTA_TOKEN (cannot keep one in "
            f"{path.parent}: {exc})",
            err=True,
        )
        raise typer.Exit(1) from None
    return value


def _fail(exc: Exception) -> typer.Exit:
    """Print an API error as the API words it (detail on the next line); exit status 1."""
    from uacsta.client import UacstaError

    if isinstance(exc, UacstaError):
        typer.echo(exc.error, err=True)
        if isinstance(exc.detail, str) and exc.detail and exc.detail not in exc.error:
            typer.echo(exc.detail, err=True)
    else:
        typer.echo(str(exc), err=True)
    return typer.Exit(1)


def _with_api(
    config: Path | None,
    url: str | None,
    token: str | None,
    body: Callable[[Client], Awaitable[T]],
) -> T:
    """Run ``body(client)`` against the server's JSON API; an API error ends the command."""
    from uacsta.client import Client, UacstaError

    settings = _settings(config)
    base = url or _server_url(settings)

    async def run(value: str) -> T:
        async with Client(base, value, verify=not base.startswith("https://127.")) as client:
            return await body(client)

    try:
        try:
            return asyncio.run(run(token or _own_token(settings)))
        except UacstaError as exc:
            if token is not None or exc.status != 401:
                raise
            return asyncio.run(run(_own_token(settings, renew=True)))  # a stale kept token
    except (UacstaError, OSError) as exc:
        raise _fail(exc) from None


def _describe_event(event: Event) -> str:
    """One line for one WebSocket message: a notice in words, a CSTA event with its fields."""
    data = event.data
    if event.type == "event":
        fields = []
        payload = data.get("data") or {}
        call_id = event.call_id
        if call_id:
            fields.append(f"call {call_id}")
        for name in ("calling_device", "called_device", "alerting_device", "device"):
            value = payload.get(name)
            if isinstance(value, dict):
                value = value.get("device_id")
            if value:
                fields.append(f"{name}={value}")
        for name in ("local_connection_info", "cause", "do_not_disturb_on"):
            if payload.get(name) is not None:
                fields.append(f"{name}={payload[name]}")
        return f"[{event.device}] {event.event} " + " ".join(fields)
    words = [f"[{event.line or event.data.get('phone') or '-'}] {event.type}"]
    if event.call_id:
        words.append(f"call {event.call_id}")
    remote = event.remote_number
    if remote:
        direction = data.get("direction")
        preposition = "from" if direction == "incoming" else "to"
        name = f" ({event.remote_name})" if event.remote_name else ""
        words.append(f"{preposition} {remote}{name}")
    call = event.call
    if call:
        words.append(f"outcome {call.get('outcome')}")
    if data.get("data"):
        words.append(json.dumps(data["data"], sort_keys=True))
    return " ".join(words)


async def _print_events(events: EventStream, seconds: float | None) -> None:
    """Print events for ``seconds`` (None: until interrupted or the stream ends)."""
    loop = asyncio.get_running_loop()
    end = None if seconds is None else loop.time() + seconds
    while end is None or loop.time() < end:
        try:
            event = await events.next(None if end is None else max(0.05, end - loop.time()))
        except TimeoutError:
            continue
        except StopAsyncIteration:
            return
        typer.echo(_describe_event(event))


# --------------------------------------------------------------------------- calls
@app.command(cls=Command)
def call(
    calling: Annotated[str, typer.Argument(help="the line that calls: 100 or sip:100@pbx")],
    called: Annotated[str, typer.Argument(help="the number to call")],
    config: ConfigOpt = None,
    watch: Annotated[
        float, typer.Option(help="seconds to show the lines' events (0: none)", metavar="SECONDS")
    ] = 8.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Make a call from a line to a number and show the call ID and the lines' events."""

    async def body(client: Client) -> None:
        async def place() -> None:
            made = await client.make_call(calling, called)
            typer.echo(f"call {made.call_id} from {made.device_id} to {called}")
            typer.echo(f"hang up with: uacsta hangup {calling} --call {made.call_id}")

        if watch <= 0:
            await place()
            return
        from uacsta.client import UacstaError

        async with client.events() as events:
            for device in (calling, called):
                with contextlib.suppress(UacstaError):  # the number may be no line of ours
                    await events.subscribe(device)
            await place()
            await _print_events(events, watch)

    _with_api(config, url, token, body)


def _format_calls(calls: list[CurrentCall]) -> list[str]:
    from datetime import datetime

    table = [["CALL ID", "STATE", "DIRECTION", "REMOTE", "SINCE", "LINE"]]
    for c in calls:
        remote = (c.remote_number or "-") + (f" ({c.remote_name})" if c.remote_name else "")
        state = c.state + (" (held)" if c.held and c.state != "hold" else "")
        since = datetime.fromtimestamp(c.started).strftime("%H:%M:%S")
        direction = (c.direction or "-") + (" internal" if c.internal else "")
        table.append([c.call_id, state, direction, remote, since, c.line])
    return _table(table)


@app.command(cls=Command)
def calls(
    device: LineArg,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List the calls up at a line now, with their call IDs."""

    async def body(client: Client) -> list[CurrentCall]:
        return await client.calls(device)

    found = _with_api(config, url, token, body)
    if as_json:
        typer.echo(json.dumps([asdict(c) for c in found], indent=2))
    elif not found:
        typer.echo(f"no calls at {device}")
    else:
        for line in _format_calls(found):
            typer.echo(line)


#: Which calls an action without ``--call`` may pick, by state.
_FITS: dict[str, tuple[str, Callable[[CurrentCall], bool]]] = {
    "answer": ("to answer", lambda c: c.state == "alerting"),
    "hold": ("to hold", lambda c: c.state == "connected" and not c.held),
    "retrieve": ("on hold", lambda c: c.held or c.state == "hold"),
    "hangup": ("", lambda c: True),
    "transfer": ("to transfer", lambda c: c.state in ("connected", "hold") or c.held),
}


async def _pick_call(client: Client, device: str, call_id: str | None, action: str) -> str:
    """The call an action names, or the line's only call that fits the action."""
    from uacsta.client import UacstaError

    if call_id:
        return call_id
    what, fits = _FITS[action]
    found = [c for c in await client.calls(device) if fits(c)]
    if len(found) == 1:
        return found[0].call_id
    words = f"calls {what}".strip()
    if not found:
        raise UacstaError(f"{device} has no {words}")
    ids = ", ".join(c.call_id for c in found)
    raise UacstaError(f"{device} has {len(found)} {words} ({ids}): name one with --call")


def _call_action(
    action: str,
    device: str,
    call_id: str | None,
    config: Path | None,
    url: str | None,
    token: str | None,
    to: str | None = None,
) -> None:
    async def body(client: Client) -> str:
        chosen = await _pick_call(client, device, call_id, action)
        if action == "answer":
            await client.answer(device, chosen)
            return f"call {chosen} answered at {device}"
        if action == "hangup":
            await client.clear(device, chosen)
            return f"call {chosen} cleared at {device}"
        if action == "hold":
            await client.hold(device, chosen)
            return f"call {chosen} held at {device}"
        if action == "retrieve":
            await client.retrieve(device, chosen)
            return f"call {chosen} retrieved at {device}"
        assert to is not None
        await client.single_step_transfer(device, chosen, to)
        return f"call {chosen} transferred from {device} to {to}"

    typer.echo(_with_api(config, url, token, body))


@app.command(cls=Command)
def answer(
    device: LineArg,
    call_id: CallOpt = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Answer a ringing call at a line."""
    _call_action("answer", device, call_id, config, url, token)


@app.command(cls=Command)
def hangup(
    device: LineArg,
    call_id: CallOpt = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Hang up a call at a line (ringing, dialling, connected or held)."""
    _call_action("hangup", device, call_id, config, url, token)


@app.command(cls=Command)
def hold(
    device: LineArg,
    call_id: CallOpt = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Put a connected call at a line on hold."""
    _call_action("hold", device, call_id, config, url, token)


@app.command(cls=Command)
def retrieve(
    device: LineArg,
    call_id: CallOpt = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Take a held call at a line off hold."""
    _call_action("retrieve", device, call_id, config, url, token)


@app.command(cls=Command)
def transfer(
    device: LineArg,
    to: Annotated[str, typer.Argument(help="the number to transfer the call to")],
    call_id: CallOpt = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Transfer a call at a line to another number (blind transfer); the line leaves it."""
    _call_action("transfer", device, call_id, config, url, token, to=to)


@app.command(cls=Command)
def monitor(
    device: LineArg,
    config: ConfigOpt = None,
    seconds: Annotated[
        float, typer.Option(help="stop after this many seconds (0: at Ctrl-C)", metavar="SECONDS")
    ] = 0.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a line's events (CSTA events and call notices, with call IDs) until Ctrl-C."""

    async def body(client: Client) -> None:
        async with client.events([device]) as events:  # refused here, in the API's words
            typer.echo(f"monitoring {device} (Ctrl-C to stop)")
            await _print_events(events, seconds if seconds > 0 else None)

    with contextlib.suppress(KeyboardInterrupt):
        _with_api(config, url, token, body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
