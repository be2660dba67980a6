"""A CRM connector in a page: pop "incoming call from X" when a line rings, log missed calls.

    pip install uacsta     # or use the project's .venv
    export UACSTA_URL=http://127.0.0.1:8080 UACSTA_TOKEN=uac_...   # uacsta token crm
    python examples/crm_connector.py 100 200                        # the lines to watch

Replace ``lookup``, ``popup`` and ``missed`` with your CRM's calls. On start the connector
first reports the calls missed since it last ran (the journal), then follows the events;
when the server goes away it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from uacsta.client import Client, Event, UacstaError

log = logging.getLogger("crm")

#: Your CRM's contacts (here: a dict; there: a query).
CONTACTS = {"+4930123456": "Jane Doe, ACME Corp."}


def lookup(number: str | None) -> str:
    return CONTACTS.get(number or "", number or "an unknown number")


def popup(line: str, text: str) -> None:
    """Show the screen pop to the user of ``line`` (here: print it)."""
    print(f"[{line}] {text}", flush=True)


def missed(entry: dict[str, object]) -> None:
    """Log a missed call in the CRM (``entry`` is the call's journal entry)."""
    number = entry.get("remote_number")
    caller = lookup(number if isinstance(number, str) else None)
    log.warning("missed call on %s from %s", entry["line"], caller)
    print(f"[{entry['line']}] missed call from {caller}", flush=True)


async def handle(event: Event) -> None:
    if event.type == "call.ringing" and event.data.get("direction") == "incoming":
        name = f" ({event.remote_name})" if event.remote_name else ""
        popup(event.line or "?", f"incoming call from {lookup(event.remote_number)}{name}")
    elif event.type == "call.missed" and event.call is not None:
        missed(event.call)


async def run(url: str, token: str, lines: list[str], since: float) -> None:
    """One connection: the calls missed since ``since``, then the events of ``lines``."""
    async with Client(url, token) as api:
        async for entry in api.journal_entries(line=lines, outcome="missed", since=since):
            missed(entry)
        async with api.events(lines) as events:
            async for event in events:
                await handle(event)


async def main(url: str, token: str, lines: list[str]) -> None:
    since = time.time()
    while True:
        started = time.time()
        try:
            await run(url, token, lines, since)
        except UacstaError as exc:
            log.error("%s; reconnecting in 5 s", exc.error)
        since = started
        await asyncio.sleep(5)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    url = os.environ.get("UACSTA_URL", "http://127.0.0.1:8080")
    asyncio.run(main(url, os.environ["UACSTA_TOKEN"], sys.argv[1:] or ["100"]))
