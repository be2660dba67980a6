"""The JSON gateway's WebSocket (``/api/v1/events``): one client of the switching function.

A WebSocket subscribes to devices (``{"subscribe": [...]}``), which become MonitorStart
requests of its own; the switch's answers and fanned-out events come back as JSON, and so do
the normalized notices about those lines (``call.ringing``, ``call.answered``,
``call.ended``...; see :mod:`uacsta.switch.callrecord`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import WebSocket

from uacsta.csta import messages as m
from uacsta.gateways.json.client import csta_failure
from uacsta.gateways.json.shapes import event_data
from uacsta.switch.callrecord import CallNotice
from uacsta.switch.function import ToClient, event_to_client
from uacsta.web import apimodels as am
from uacsta.web.apicommon import ApiError, api_router, operations_of, principal_of
from uacsta.web.auth import Refusal

if TYPE_CHECKING:
    from uacsta.hub import SwitchHub

__all__ = ["MAX_QUEUE", "MAX_SUBSCRIPTIONS", "EventSocket", "router"]

log = logging.getLogger("uacsta.web.api")

#: Events queued for one WebSocket before it counts as a slow consumer and is closed (1013).
MAX_QUEUE = 1000
#: Devices one WebSocket may monitor.
MAX_SUBSCRIPTIONS = 500
#: WebSocket close code for an unauthenticated handshake (sent as HTTP 403 before accept).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TRY_AGAIN_LATER = 1013

router = api_router()

_OVERFLOW: dict[str, Any] = {"type": "__overflow__"}


class EventSocket:
    """One WebSocket as a client of the switching function: its monitors and its event queue.

    ``deliver`` runs inside the hub's fan-out, so it never blocks: messages go to a bounded
    queue that a sender task drains. A consumer too slow to keep up is closed with 1013.
    """

    def __init__(
        self, websocket: WebSocket, hub: SwitchHub, allowed: Iterable[str], max_queue: int
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.allowed = list(allowed)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(max_queue)
        self.overflowed = False
        self.by_xref: dict[str, str] = {}
        self.subscribed: dict[str, str | None] = {}  # device text → xref (None: starting)
        self._pending: dict[int, tuple[str, str]] = {}
        self._invokes = itertools.count(1)

    def __repr__(self) -> str:
        return f"<API events {id(self):x}>"

    # --- from the switching function ----------------------------------------------------
    def deliver(self, action: ToClient) -> None:
        message = action.message
        if isinstance(action.invoke, int):
            kind, device = self._pending.pop(action.invoke, ("", ""))
            if kind == "subscribe":
                self._push(self._subscribed(device, message, action.detail))
            elif kind == "unsubscribe":
                ok = not isinstance(message, m.CSTAErrorCode)
                self._push({"type": "unsubscribed", "device": device, "ok": ok, "error": None})
            return
        if not isinstance(message, m.CstaEvent):
            return
        subscribed = self.by_xref.get(message.monitor_cross_ref_id or "")
        if subscribed is None:
            return
        if isinstance(message, m.MonitorEndedEvent):
            self.by_xref.pop(message.monitor_cross_ref_id or "", None)
            self.subscribed.pop(subscribed, None)
        self._push(
            {
                "type": "event",
                "device": subscribed,
                "event": type(message).__name__,
                "data": event_data(message),
            }
        )

    def deliver_event(self, event: m.CstaEvent, xref: str) -> None:
        self.deliver(event_to_client(self, event, xref))

    def deliver_notice(self, notice: CallNotice) -> None:
        """A normalized notice about a subscribed line, besides its CSTA events: a web
        application needs no CSTA knowledge (``{"type": "call.ringing", ...}``)."""
        self._push(notice.to_json())

    def _subscribed(
        self, device: str, message: m.CstaMessage, detail: str | None
    ) -> dict[str, Any]:
        if isinstance(message, m.MonitorStartResponse) and message.monitor_cross_ref_id:
            self.by_xref[message.monitor_cross_ref_id] = device
            self.subscribed[device] = message.monitor_cross_ref_id
            return {"type": "subscribed", "device": device, "ok": True, "error": None}
        self.subscribed.pop(device, None)
        if isinstance(message, m.CSTAErrorCode):
            failure = csta_failure("MonitorStart", device, message, detail)
        else:
            failure = ApiError(409, f"MonitorStart on {device!r}: unexpected answer")
        return {"type": "subscribed", "device": device, "ok": False, **failure.body()}

    def _push(self, item: dict[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("%r: event queue full (%d), closing", self, self.queue.maxsize)
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_OVERFLOW)

    # --- from the WebSocket -------------------------------------------------------------
    def handle_text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            self._push({"type": "error", "error": "not JSON"})
            return
        if not isinstance(data, dict) or not set(data) & {"subscribe", "unsubscribe"}:
            self._push(
                {
                    "type": "error",
                    "error": 'expected {"subscribe": [...]} or {"unsubscribe": [...]}',
                }
            )
            return
        for key in ("subscribe", "unsubscribe"):
            devices = data.get(key, [])
            if not isinstance(devices, list) or not all(
                isinstance(d, str) and 0 < len(d) <= am.MAX_TEXT for d in devices
            ):
                self._push({"type": "error", "error": f"{key!r} must be a list of device names"})
                return
        for device in data.get("unsubscribe", []):
            self.unsubscribe(device)
        for device in data.get("subscribe", []):
            self.subscribe(device)

    def subscribe(self, device: str) -> None:
        try:
            am.xml_safe(device)
        except ValueError as exc:
            self._push(
                {"type": "subscribed", "device": device, "ok": False, "error": f"bad name: {exc}"}
            )
            return
        if device in self.subscribed:
            self._push({"type": "subscribed", "device": device, "ok": True, "error": None})
            return
        if len(self.subscribed) >= MAX_SUBSCRIPTIONS:
            error = f"at most {MAX_SUBSCRIPTIONS} devices per WebSocket"
            self._push({"type": "subscribed", "device": device, "ok": False, "error": error})
            return
        self.subscribed[device] = None
        invoke = next(self._invokes)
        self._pending[invoke] = ("subscribe", device)
        self.hub.client_request(self, invoke, m.MonitorStart(monitor_object=device))

    def unsubscribe(self, device: str) -> None:
        xref = self.subscribed.pop(device, None)
        if xref is None:
            self._push(
                {"type": "unsubscribed", "device": device, "ok": False, "error": "not subscribed"}
            )
            return
        self.by_xref.pop(xref, None)  # no events after unsubscribe, even before the answer
        invoke = next(self._invokes)
        self._pending[invoke] = ("unsubscribe", device)
        self.hub.client_request(self, invoke, m.MonitorStop(monitor_cross_ref_id=xref))

    # --- the connection -----------------------------------------------------------------
    async def run(self) -> None:
        self.hub.client_attach(self, allowed_devices=self.allowed)
        tasks = {
            asyncio.create_task(self._receive_loop(), name="api-events-receive"),
            asyncio.create_task(self._send_loop(), name="api-events-send"),
        }
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                exc = None if task.cancelled() else task.exception()
                if exc is not None:
                    log.info("%r closed: %r", self, exc)
        finally:
            for task in tasks:
                task.cancel()
            self.hub.client_detach(self)

    async def _receive_loop(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            if text is not None:
                self.handle_text(text)

    async def _send_loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is _OVERFLOW:
                with contextlib.suppress(Exception):
                    await self.websocket.close(
                        CLOSE_TRY_AGAIN_LATER, "too slow: the event queue overflowed"
                    )
                return
            await self.websocket.send_text(json.dumps(item, separators=(",", ":")))


def _same_origin(websocket: WebSocket) -> bool:
    """Cookie-authenticated WebSockets only from our own pages (no cross-site hijacking)."""
    origin = websocket.headers.get("origin")
    if not origin:
        return True  # not a browser
    return urlsplit(origin).netloc.lower() == websocket.headers.get("host", "").lower()


@router.websocket("/events")
async def events(websocket: WebSocket) -> None:
    """Events of subscribed devices. Send ``{"subscribe": ["100"]}``; receive
    ``{"type": "subscribed", ...}`` then ``{"type": "event", "device", "event", "data"}``."""
    principal = principal_of(websocket, query_token=True)
    if isinstance(principal, Refusal):
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="API token expired")
        return
    if principal is not None and principal.via == "session" and not _same_origin(websocket):
        principal = None
    if principal is None:
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="authentication required")
        return
    if not principal.may("read"):
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="the token lacks 'read' scope")
        return
    ops = operations_of(websocket)
    await websocket.accept()
    sock = EventSocket(websocket, ops.parts.hub, ops.allowed_devices(principal), MAX_QUEUE)
    await sock.run()
