"""An async Python client (SDK) for uacsta's JSON API (``/api/v1``) and its event WebSocket.

For integrators (a CRM connector, a dashboard) and for the ``uacsta`` CLI itself::

    async with Client("http://127.0.0.1:8080", token) as api:
        call = await api.make_call("100", "200")
        async with api.events(["200"]) as events:
            async for event in events:
                if event.type == "call.ringing":
                    await api.answer(event.line or "200", event.call_id or "")

Every refusal is one exception, :class:`UacstaError`, carrying the API's words (``error``),
the HTTP status and the CSTA error (``{"category": "operation", "value": "invalidDeviceID"}``)
when a phone or the switching function refused. Authentication: an API token (``uacsta token
NAME`` or the web admin), sent as ``Authorization: Bearer``. This is not
:mod:`uacsta.clients`, the CSTA-over-TCP client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

__all__ = [
    "CallRef",
    "Client",
    "CurrentCall",
    "Event",
    "EventStream",
    "JournalPage",
    "UacstaError",
]


class UacstaError(Exception):
    """The API refused (or could not be reached): ``error`` is the API's own text."""

    def __init__(
        self,
        error: str,
        *,
        status: int | None = None,
        csta_error: Mapping[str, Any] | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        #: The HTTP status (None: no answer, e.g. the server is not reachable).
        self.status = status
        #: ``{"category": ..., "value": ...}`` when a phone or the switch refused.
        self.csta_error = dict(csta_error) if csta_error is not None else None
        #: More about why (the phone model's limits; validation problems).
        self.detail = detail

    @classmethod
    def from_body(cls, status: int | None, body: Any, fallback: str) -> UacstaError:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return cls(
                body["error"],
                status=status,
                csta_error=body.get("csta_error"),
                detail=body.get("detail"),
            )
        return cls(fallback, status=status)


@dataclass(frozen=True, slots=True)
class CallRef:
    """A call at a device (the CSTA connection): what MakeCall and ConsultationCall return."""

    call_id: str | None
    device_id: str | None


@dataclass(frozen=True, slots=True)
class CurrentCall:
    """A call up at a line now (``GET /devices/{d}/calls``); times are epoch seconds."""

    call_id: str
    line: str
    direction: str | None
    state: str
    remote_number: str | None
    remote_name: str | None
    started: float
    answered: float | None
    held: bool
    internal: bool
    related: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CurrentCall:
        return cls(
            call_id=str(data["call_id"]),
            line=str(data["line"]),
            direction=data.get("direction"),
            state=str(data.get("state")),
            remote_number=data.get("remote_number"),
            remote_name=data.get("remote_name"),
            started=float(data["started"]),
            answered=data.get("answered"),
            held=bool(data.get("held")),
            internal=bool(data.get("internal")),
            related=tuple(data.get("related") or ()),
        )


@dataclass(frozen=True, slots=True)
class JournalPage:
    """One page of the call journal, newest first; ``next`` is the cursor of the next page."""

    items: list[dict[str, Any]]
    next: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """One message of the event WebSocket, as sent (:attr:`data` is the whole JSON object).

    ``type`` is ``"event"`` for a CSTA event (:attr:`event` names it, e.g.
    ``DeliveredEvent``), or a normalized notice: ``call.ringing``, ``call.dialing``,
    ``call.answered``, ``call.held``, ``call.retrieved``, ``call.missed``, ``call.ended``,
    ``phone.online``, ``phone.offline``, ``dnd.changed``, ``forwarding.changed``.
    """

    type: str
    data: dict[str, Any] = field(repr=False)

    @property
    def event(self) -> str | None:
        """The CSTA event's name (``type == "event"``)."""
        return self.data.get("event")

    @property
    def device(self) -> str | None:
        """The subscribed device as the subscription named it (CSTA events)."""
        return self.data.get("device")

    @property
    def line(self) -> str | None:
        """The line's device ID (notices)."""
        return self.data.get("line")

    @property
    def call_id(self) -> str | None:
        """The call ID (notices; for CSTA events, that of the event's connection)."""
        if "call_id" in self.data:
            return self.data.get("call_id")
        connection = (self.data.get("data") or {}).get("connection")
        return connection.get("call_id") if isinstance(connection, dict) else None

    @property
    def remote_number(self) -> str | None:
        return self.data.get("remote_number")

    @property
    def remote_name(self) -> str | None:
        return self.data.get("remote_name")

    @property
    def call(self) -> dict[str, Any] | None:
        """The finished call's journal entry (``call.missed``, ``call.ended``)."""
        return self.data.get("call")


def _path(text: str) -> str:
    return quote(text, safe="")


class Client:
    """The JSON API of one uacsta server, authenticated with an API token.

    ``base_url`` is the server's web address (``http://127.0.0.1:8080``); ``verify`` is
    passed to httpx (False for a self-signed certificate you trust anyway).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._verify = verify
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            verify=verify,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing ---------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
    ) -> Any:
        """One API request; the decoded JSON answer (None for 204), else :class:`UacstaError`."""
        try:
            response = await self._http.request(method, path, json=json_body, params=params)
        except httpx.HTTPError as exc:
            raise UacstaError(f"cannot reach uacsta at {self.base_url}: {exc}") from exc
        if response.status_code == 204 or not response.content:
            body: Any = None
        else:
            try:
                body = response.json()
            except ValueError:
                body = None
        if response.is_error:
            fallback = f"HTTP {response.status_code} {response.reason_phrase}"
            raise UacstaError.from_body(response.status_code, body, fallback)
        return body

    # --- server and devices -----------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        """The server's status (admin tokens): uptime, listeners, counts."""
        return dict(await self.request("GET", "/status"))

    async def devices(self) -> list[dict[str, Any]]:
        """The lines this token may use: ``device``, ``phone``, ``extension``, ``ready``."""
        return list(await self.request("GET", "/devices"))

    async def calls(self, device: str) -> list[CurrentCall]:
        """The calls up at a line now, as the server tracks them."""
        rows = await self.request("GET", f"/devices/{_path(device)}/calls")
        return [CurrentCall.from_json(r) for r in rows]

    # --- calls ------------------------------------------------------------------------------
    async def make_call(self, device: str, to: str) -> CallRef:
        """Call ``to`` from the line ``device`` (MakeCall); the line's new call."""
        body = await self.request("POST", f"/devices/{_path(device)}/calls", json_body={"to": to})
        return CallRef(call_id=body.get("call_id"), device_id=body.get("device_id"))

    async def _action(
        self, device: str, call_id: str, action: str, body: Any = None
    ) -> dict[str, Any]:
        path = f"/devices/{_path(device)}/calls/{_path(call_id)}/{action}"
        return dict(await self.request("POST", path, json_body=body) or {})

    async def answer(self, device: str, call_id: str) -> dict[str, Any]:
        """Answer an alerting call (AnswerCall)."""
        return await self._action(device, call_id, "answer")

    async def clear(self, device: str, call_id: str) -> dict[str, Any]:
        """Hang up: clear the line's connection to the call (ClearConnection)."""
        return await self._action(device, call_id, "clear")

    async def hold(self, device: str, call_id: str) -> dict[str, Any]:
        """Put the call on hold (HoldCall)."""
        return await self._action(device, call_id, "hold")

    async def retrieve(self, device: str, call_id: str) -> dict[str, Any]:
        """Take the call off hold (RetrieveCall)."""
        return await self._action(device, call_id, "retrieve")

    async def deflect(self, device: str, call_id: str, to: str) -> dict[str, Any]:
        """Divert an alerting call to another number (DeflectCall)."""
        return await self._action(device, call_id, "deflect", {"to": to})

    async def single_step_transfer(self, device: str, call_id: str, to: str) -> dict[str, Any]:
        """Blind transfer of the call to ``to`` (SingleStepTransferCall)."""
        return await self._action(device, call_id, "single-step-transfer", {"to": to})

    async def consult(self, device: str, call_id: str, to: str) -> CallRef:
        """Hold the call and call ``to`` (ConsultationCall); the new call."""
        body = await self._action(device, call_id, "consult", {"to": to})
        return CallRef(call_id=body.get("call_id"), device_id=body.get("device_id"))

    async def transfer(self, device: str, held_call: str, active_call: str) -> dict[str, Any]:
        """Connect the held call with the active one and leave (TransferCall)."""
        body = {"held_call": held_call, "active_call": active_call}
        return dict(
            await self.request("POST", f"/devices/{_path(device)}/transfer", json_body=body)
        )

    async def send_digits(self, device: str, call_id: str, digits: str) -> dict[str, Any]:
        """Send DTMF on the call (GenerateDigits)."""
        return await self._action(device, call_id, "digits", {"digits": digits})

    # --- features ---------------------------------------------------------------------------
    async def dnd(self, device: str) -> bool:
        """Whether do-not-disturb is on at the line."""
        return bool((await self.request("GET", f"/devices/{_path(device)}/dnd"))["on"])

    async def set_dnd(self, device: str, on: bool) -> None:
        await self.request("PUT", f"/devices/{_path(device)}/dnd", json_body={"on": on})

    async def forwarding(self, device: str) -> list[dict[str, Any]]:
        """The line's forwarding entries: ``type``, ``on``, ``to``."""
        body = await self.request("GET", f"/devices/{_path(device)}/forwarding")
        return list(body["forwarding"])

    async def set_forwarding(
        self, device: str, on: bool, to: str | None = None, *, type: str = "forwardImmediate"
    ) -> None:
        """Switch forwarding on (to ``to``) or off; ``type`` as ECMA-269 names it
        (``forwardImmediate``, ``forwardBusy``, ``forwardNoAns``...)."""
        body = {"type": type, "on": on, "to": to}
        await self.request("PUT", f"/devices/{_path(device)}/forwarding", json_body=body)

    # --- journal ----------------------------------------------------------------------------
    async def journal(
        self,
        *,
        line: str | Iterable[str] = (),
        outcome: str | None = None,
        direction: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
        remote: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JournalPage:
        """One page of the call journal, newest first (``GET /journal``); pass the page's
        ``next`` as ``cursor`` for the next one. Times: ISO 8601 (UTC) or epoch seconds."""
        params: list[tuple[str, str]] = [
            ("line", name) for name in ([line] if isinstance(line, str) else line)
        ]
        for key, value in (
            ("outcome", outcome),
            ("direction", direction),
            ("since", since),
            ("until", until),
            ("remote", remote),
            ("cursor", cursor),
        ):
            if value is not None:
                params.append((key, str(value)))
        params.append(("limit", str(limit)))
        body = await self.request("GET", "/journal", params=params)
        return JournalPage(items=list(body["items"]), next=body.get("next"))

    async def journal_entries(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """Every journal entry matching ``filters`` (as :meth:`journal`), page after page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = await self.journal(cursor=cursor, **filters)
            for item in page.items:
                yield item
            if page.next is None:
                return
            cursor = page.next

    # --- events -----------------------------------------------------------------------------
    def events(self, devices: Iterable[str] = (), *, max_queue: int = 10_000) -> EventStream:
        """The event WebSocket, subscribed to ``devices`` when entered::

        async with api.events(["100"]) as events:
            async for event in events: ...

        At most ``max_queue`` events wait for the application; then the socket is no longer
        read, and a server whose own queue overflows closes it (1013, :class:`UacstaError`).
        """
        parts = urlsplit(self.base_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = urlunsplit((scheme, parts.netloc, parts.path + "/api/v1/events", "", ""))
        context: ssl.SSLContext | None = None
        if scheme == "wss":
            if isinstance(self._verify, ssl.SSLContext):
                context = self._verify
            else:
                context = ssl.create_default_context()
                if not self._verify:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
        return EventStream(url, self._token, list(devices), context, max_queue)


class EventStream:
    """The event WebSocket: an async iterator of :class:`Event` with subscribe/unsubscribe.

    Subscription answers are not yielded: :meth:`subscribe` waits for them and raises
    :class:`UacstaError` with the API's words when a device is refused. Iteration ends when
    the server closes the socket normally; a close for a reason (too slow, token expired)
    raises :class:`UacstaError`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        devices: list[str],
        context: ssl.SSLContext | None,
        max_queue: int = 10_000,
    ) -> None:
        self._url = url
        self._token = token
        self._initial = devices
        self._context = context
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue(max_queue)
        self._ended = False  # the reader is done: iteration ends when the queue is empty
        self._wake = asyncio.Event()
        self._waiting: dict[tuple[str, str], list[asyncio.Future[dict[str, Any]]]] = {}
        self._closed_error: UacstaError | None = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and subscribe to the devices given to :meth:`Client.events`."""
        try:
            self._ws = await connect(
                self._url,
                additional_headers={"Authorization": f"Bearer {self._token}"},
                ssl=self._context,
            )
        except InvalidStatus as exc:
            raise UacstaError(
                f"the event WebSocket was refused (HTTP {exc.response.status_code})",
                status=exc.response.status_code,
            ) from exc
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise UacstaError(f"cannot reach uacsta at {self._url}: {exc}") from exc
        self._reader = asyncio.create_task(self._read(self._ws), name="uacsta-events")
        if self._initial:
            try:
                await self.subscribe(*self._initial)
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def subscribe(self, *devices: str) -> None:
        """Receive the events of these devices (each becomes a monitor of the server)."""
        await self._ask("subscribe", devices)

    async def unsubscribe(self, *devices: str) -> None:
        """Stop the events of these devices."""
        await self._ask("unsubscribe", devices)

    async def _ask(self, kind: str, devices: Iterable[str]) -> None:
        if self._ws is None:
            raise UacstaError("the event stream is not open")
        names = list(devices)
        loop = asyncio.get_running_loop()
        futures = []
        for device in names:
            future: asyncio.Future[dict[str, Any]] = loop.create_future()
            self._waiting.setdefault((kind + "d", device), []).append(future)
            futures.append(future)
        try:
            await self._ws.send(json.dumps({kind: names}))
        except ConnectionClosed as exc:
            raise self._closed(exc) from exc
        for answer in await asyncio.gather(*futures):
            if not answer.get("ok"):
                raise UacstaError.from_body(
                    answer.get("status"), answer, f"{kind} {answer.get('device')!r} refused"
                )

    def _closed(self, exc: ConnectionClosed) -> UacstaError:
        return self._abnormal(
            exc.rcvd.code if exc.rcvd else None, exc.rcvd.reason if exc.rcvd else ""
        ) or (UacstaError("the event WebSocket was closed"))

    @staticmethod
    def _abnormal(code: int | None, reason: str | None) -> UacstaError | None:
        """The error of a close for a reason (too slow, token expired); None: normal."""
        if code is None or code in (1000, 1001):
            return None
        return UacstaError(f"the event WebSocket was closed: {reason} (code {code})")

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                data = json.loads(text)
                if not isinstance(data, dict):
                    continue
                kind = str(data.get("type"))
                waiting = self._waiting.get((kind, str(data.get("device"))))
                if waiting:
                    future = waiting.pop(0)
                    if not future.done():
                        future.set_result(data)
                    continue
                await self._queue.put(Event(type=kind, data=data))  # full: stop reading
        except ConnectionClosed:
            pass
        finally:
            self._closed_error = self._abnormal(ws.close_code, ws.close_reason)
            error = self._closed_error or UacstaError("the event WebSocket was closed")
            for waiting in self._waiting.values():
                for future in waiting:
                    if not future.done():
                        future.set_exception(error)
            self._waiting.clear()
            self._ended = True
            self._wake.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while self._queue.empty() and not self._ended:
            self._wake.clear()
            getter = asyncio.ensure_future(self._queue.get())
            ended = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({getter, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                return getter.result()
        if not self._queue.empty():
            return self._queue.get_nowait()
        if self._closed_error is not None:
            raise self._closed_error
        raise StopAsyncIteration

    async def next(self, timeout: float | None = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds (TimeoutError)."""
        return await asyncio.wait_for(self.__anext__(), timeout)
