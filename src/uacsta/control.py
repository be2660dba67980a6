"""The local control socket (``<data>/uacsta.sock``): how the CLI talks to a running server.

One JSON object per line in, one per line out. Only the local machine can reach it (a Unix
socket with mode 0600), so it needs no credentials of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from uacsta.operations import OperationError, Operations, phone_dict
from uacsta.phones.mac import normalize_mac

log = logging.getLogger("uacsta.control")


class ControlServer:
    def __init__(self, ops: Operations) -> None:
        self.ops = ops
        self._server: asyncio.AbstractServer | None = None
        self.path: Path | None = None

    async def start(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(path))
        except OSError as exc:  # e.g. path too long for a Unix socket
            log.warning("control socket %s not available: %s", path, exc)
            return
        os.chmod(path, 0o600)
        self.path = path

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    answer = await self.handle(request)
                except Exception as exc:
                    answer = {"ok": False, "error": str(exc)}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        ops = self.ops
        command = request.get("cmd")
        if command == "status":
            return {"ok": True, "status": ops.status()}
        if command == "phones":
            return {"ok": True, "phones": [phone_dict(r) for r in ops.phones()]}
        if command in ("enable", "disable", "delete"):
            mac = normalize_mac(str(request.get("mac", "")))
            if mac is None:
                return {"ok": False, "error": "not a MAC address"}
            try:
                if command == "delete":
                    await ops.delete_phone(mac)
                else:
                    await ops.set_enabled(mac, command == "enable")
            except OperationError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True, "error": None}
        if command == "webhook-test":
            # Queue a webhook.test event for one endpoint (operators; the durability tests).
            webhooks = getattr(ops.parts, "webhooks", None)
            if webhooks is None:
                return {"ok": False, "error": "webhooks are not running"}
            try:
                delivery = webhooks.send_test(str(request.get("endpoint", "")))
            except KeyError:
                return {"ok": False, "error": "no such webhook endpoint"}
            return {"ok": True, "delivery": delivery}
        return {"ok": False, "error": f"unknown command {command!r}"}


async def call(path: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
    """Ask a running server; None when none is listening on ``path``."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        return json.loads(line) if line else None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
