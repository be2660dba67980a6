"""A CSTA-over-TCP client (ECMA-323 Annex J + ECMA-354), as CTI applications speak it.

Used by the CLI (``uacsta call``), the tests and the load generator; it is an independent
client of the server: it shares only the codec and framing with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from uacsta.csta import appsession as ecma354
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.framing import FrameDecoder, InvokeIdAllocator, encode_frame


class CstaClientError(Exception):
    pass


class CstaTcpClient:
    def __init__(self, *, edition: codec.Edition = codec.Edition.ED3) -> None:
        self.edition = edition
        self.events: asyncio.Queue[m.CstaMessage] = asyncio.Queue()
        self.session_id: str | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._ids = InvokeIdAllocator(start=1)
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._reader, self._writer = await asyncio.open_connection(host, port, ssl=ssl_context)
        self._task = asyncio.get_running_loop().create_task(self._read_loop())

    async def login(self, user: str, password: str, duration: int = 180) -> int:
        """StartApplicationSession; returns the actual session duration."""
        start = ecma354.StartApplicationSession(
            application_id="uacsta-client",
            requested_protocol_versions=(self.edition.namespace or ecma354.CSTA_ED3,),
            requested_session_duration=duration,
            credentials=ecma354.SessionLoginInfo(user_name=user, password=password),
        )
        answer = ecma354.decode_appsession(await self._exchange(ecma354.encode_appsession(start)))
        if not isinstance(answer, ecma354.StartApplicationSessionPosResponse):
            raise CstaClientError(f"login refused: {answer}")
        self.session_id = answer.session_id
        return answer.actual_session_duration

    async def request(self, message: m.CstaMessage, timeout: float = 10.0) -> m.CstaMessage:
        xml = await asyncio.wait_for(self._exchange(codec.encode(message, self.edition)), timeout)
        return codec.decode(xml)

    async def event(self, timeout: float = 10.0) -> m.CstaMessage:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def wait_for(self, kind: type[m.CstaMessage], timeout: float = 10.0) -> m.CstaMessage:
        """The next unsolicited message of ``kind`` (others are dropped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.event(max(0.0, deadline - loop.time()))
            if isinstance(message, kind):
                return message

    async def _exchange(self, xml: bytes) -> bytes:
        assert self._writer is not None
        invoke = self._ids.allocate()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[invoke] = future
        self._writer.write(encode_frame(invoke, xml))
        try:
            return await future
        finally:
            self._pending.pop(invoke, None)
            self._ids.release(invoke)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        decoder = FrameDecoder()
        try:
            while data := await self._reader.read(65536):
                decoder.receive_data(data)
                for frame in decoder.frames():
                    future = self._pending.get(frame.invoke_id)
                    if future is not None and not future.done():
                        future.set_result(frame.xml)
                        continue
                    self._unsolicited(frame.invoke_id, frame.xml)
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CstaClientError("connection closed"))

    def _unsolicited(self, invoke: str, xml: bytes) -> None:
        root = codec.parse(xml)  # once: the root tells ECMA-354 from ECMA-323
        app = ecma354.decode_appsession_element(root)
        if app is not None:
            self.events.put_nowait(m.UnknownMessage(name=type(app).__name__, xml=xml))
            return
        message, _edition = codec.decode_element(root, xml)
        self.events.put_nowait(message)
        if isinstance(message, m.CstaRequest) and self._writer is not None:
            # Requests from the switching function (SwitchingFunctionDevices...) get answered.
            response_cls = m.response_class_for(type(message))
            if response_cls is not None:
                self._writer.write(encode_frame(invoke, codec.encode(response_cls(), self.edition)))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await self._writer.wait_closed()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
