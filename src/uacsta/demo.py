"""``uacsta demo`` / ``make run``: the server with simulated phones of several vendors.

Everything a new user needs to see the product work on a machine without phones: the server
with its embedded defaults (SQLite in ./data, self-signed TLS), five simulated phones (clearly
labelled as simulated in the inventory) that register and link, and what to try next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from uacsta.banner import listening_lines, warning_lines
from uacsta.config import Settings
from uacsta.net.address import connect_host, parse_listen_address
from uacsta.server import Server
from uacsta.simulator.runtime import Simulation

log = logging.getLogger("uacsta.demo")

#: (vendor, lines, transport) of the demo phones.
DEMO_PHONES = (
    ("yealink", ["100"], "udp"),
    ("snom", ["200", "201"], "tcp"),
    ("mitel", ["300"], "udp"),
    ("auerswald", ["400"], "tcp"),
    ("fanvil", ["500"], "udp"),
)


#: Hosts meaning "every interface": the demo binds loopback instead.
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def on_loopback(address: str) -> str:
    """``address`` with a wildcard host made loopback (``udp:0.0.0.0:5060`` ->
    ``udp:127.0.0.1:5060``); explicit addresses stay as they are."""
    parsed = parse_listen_address(address)
    if parsed.host not in WILDCARDS:
        return address
    host = WILDCARDS[parsed.host]
    return f"{parsed.transport}:{f'[{host}]' if ':' in host else host}:{parsed.port}"


def loopback_settings(settings: Settings) -> None:
    """The demo's listeners on loopback: its phones are simulated on this machine, and its
    passwords are the well-known defaults, harmless only where no one else can connect
    (uacsta.safety). ``uacsta serve`` is what offers the server to a network."""
    settings.phones.listen = [on_loopback(a) for a in settings.phones.listen]
    settings.clients.sip_listen = [on_loopback(a) for a in settings.clients.sip_listen]
    settings.clients.csta_listen = [on_loopback(a) for a in settings.clients.csta_listen]
    settings.http.listen = on_loopback(settings.http.listen)


async def run_demo(settings: Settings, *, answer_after: float = 3.0) -> None:
    loopback_settings(settings)
    server = Server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    assert server.phones is not None and server.inventory is not None
    ports = {lst.transport: lst.port for lst in server.phones.ua.transport.listeners}
    host = connect_host(server.phones.ua.transport.listeners[0].host)
    sim = Simulation(host, ports, password=settings.phones.password, external_answer_delay=3.0)
    agents = [sim.add_phone(v, lines, transport=t) for v, lines, t in DEMO_PHONES if t in ports]
    try:
        await sim.start()
        sim.auto_answer(answer_after)
        inventory = server.inventory
        deadline = loop.time() + 15
        while loop.time() < deadline and not all(
            (r := inventory.get(a.mac)) is not None and r.state == "ready" for a in agents
        ):
            await asyncio.sleep(0.1)
        print(banner(server, settings, sim), flush=True)
        await stop.wait()
    finally:
        await sim.close()
        await server.stop()


def banner(server: Server, settings: Settings, sim: Simulation) -> str:
    assert server.inventory is not None
    ready = [r for r in server.inventory.all() if r.simulated and r.state == "ready"]
    lines = sorted(line.number for a in sim.agents.values() for line in a.phone.lines)
    account = settings.clients.accounts[0] if settings.clients.accounts else None
    csta = [parse_listen_address(a) for a in settings.clients.csta_listen]
    csta_tcp = next((a for a in csta if a.transport == "tcp"), None)
    out = [
        "",
        "uacsta demo is running — press Ctrl-C to stop",
        f"  simulated phones : {len(ready)} of {len(sim.agents)} ready, lines {', '.join(lines)}",
        "                     (they answer incoming calls after 3 s; outside numbers answer too)",
    ]
    out += listening_lines(server)
    out.append(
        f"  phone login      : username = phone MAC, password = {settings.phones.password!r}"
    )
    if account is not None:
        out.append(
            f"  CTI client login : user {account.name!r}, password {account.password!r}"
            + (
                f" (CSTA XML/TCP on {connect_host(csta_tcp.host)}:{csta_tcp.port})"
                if csta_tcp
                else ""
            )
        )
    if server.web_url is not None:
        web = server.web_url
        password = (
            f"password in {server.data_dir / 'initial-admin-password'}"
            if (server.data_dir / "initial-admin-password").exists()
            else "password as you set it (uacsta admin-password)"
        )
        out += [
            f"  web admin        : {web}admin/  (user 'admin', {password})",
            f"  web client       : {web}client/  (create users in the admin, Users page)",
            f"  API docs         : {web}docs",
        ]
    out += [
        "  try, in another terminal:",
        "    .venv/bin/uacsta phones            # the inventory (simulated phones are labelled)",
        "    .venv/bin/uacsta call 100 200      # 100 calls 200: its call ID, both lines' events",
        "    .venv/bin/uacsta calls 100         # the calls at 100 now, with their IDs",
        "    .venv/bin/uacsta hold 100          # then: uacsta retrieve 100",
        "    .venv/bin/uacsta transfer 100 300  # 100 leaves; 200 talks to 300",
        "    .venv/bin/uacsta hangup 300        # and no call is left",
        "    .venv/bin/uacsta monitor 201       # watch one line's events",
        "    .venv/bin/uacsta status",
    ]
    out += warning_lines(server)
    out.append("")
    return "\n".join(out)
