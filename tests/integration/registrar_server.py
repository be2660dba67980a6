"""A small registrar built from the core, for integration tests (not the product server).

UDP/TCP/TLS listeners from :mod:`uacsta.net`, REGISTER with digest (RFC 3261 §22.4) and
:class:`uacsta.sip.registrar.Registrar`. A wrong answer to one of our nonces gets 403, not a
second 401; an unknown or foreign nonce gets a fresh 401, an expired one a 401 with
``stale=true``. Other methods: 405 (known) or 501 (unknown), ACK is absorbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Iterable

from uacsta.net import Flow, FlowClosed, SipTransport, TransportLimits
from uacsta.sip.digest import Algorithm, AuthStatus, DigestServer, FailureReason, NonceManager
from uacsta.sip.helpers import build_response, generate_tag
from uacsta.sip.message import Message, Request, Response
from uacsta.sip.registrar import Registrar, RegistrarPolicy
from uacsta.sip.transaction import (
    DeliverRequest,
    LayerAction,
    Terminated,
    TimerSettings,
    TransactionKey,
    TransactionLayer,
    Transmit,
    server_key,
)
from uacsta.sip.uri import SipUri

KNOWN_METHODS = {
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "INFO",
    "NOTIFY",
    "SUBSCRIBE",
    "PRACK",
    "UPDATE",
    "MESSAGE",
    "REFER",
    "PUBLISH",
}


class RegistrarServer:
    def __init__(
        self,
        users: dict[str, str],
        *,
        realm: str = "uacsta.test",
        algorithms: Iterable[Algorithm] | None = None,
        policy: RegistrarPolicy | None = None,
        limits: TransportLimits | None = None,
    ) -> None:
        self.users = users
        nonces = NonceManager(b"test-secret" * 3)
        # None: DigestServer's default challenge order, the one the server ships with.
        self.digest = (
            DigestServer(realm, nonces)
            if algorithms is None
            else DigestServer(realm, nonces, algorithms)
        )
        self.registrar = Registrar(policy or RegistrarPolicy())
        self.transport = SipTransport(self._on_message, on_closed=self._on_closed, limits=limits)
        self.sent: list[tuple[str, int]] = []  # (method, status) of every response sent
        self.closed_flows: list[Flow] = []
        self._loop = asyncio.get_running_loop()
        # Server transactions absorb retransmitted REGISTERs before digest sees them (a
        # replayed nc would otherwise turn a UDP retransmission into a 403).
        self.layer = TransactionLayer(timers=TimerSettings(trying_delay=None))
        self._flows: dict[TransactionKey, Flow] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()

    async def listen(self, address: str, ssl_context: ssl.SSLContext | None = None) -> int:
        listener = await self.transport.listen(address, ssl_context=ssl_context)
        return listener.port

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.transport.close()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checked after every response and close."""

        async def _wait() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    def _notify(self) -> None:
        self._changed.set()

    def _on_closed(self, flow: Flow) -> None:
        self.closed_flows.append(flow)
        self._notify()

    def _reply(self, request: Request, response: Response, flow: Flow) -> None:
        self.sent.append((request.method, response.status_code))
        key = server_key(request)
        self._run(self.layer.send_response(key, response, self._loop.time()), flow)
        self._notify()

    def _run(self, actions: list[LayerAction], flow: Flow) -> None:
        for key, action in actions:
            match action:
                case Transmit(message=message, data=data):
                    target = self._flows.get(key, flow) if key is not None else flow
                    with contextlib.suppress(FlowClosed):
                        self.transport.send(message, target, data)
                case DeliverRequest(request=request) if key is not None:
                    self._flows[key] = flow
                    self._on_request(request, flow)
                case Terminated() if key is not None:
                    self._flows.pop(key, None)
                case _:
                    pass  # ACKs matching nothing, timeouts: nothing to do here
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.layer.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._run(self.layer.handle_timer(self._loop.time()), Flow("udp", ("", 0), ("", 0)))

    def _on_message(self, message: Message, flow: Flow) -> None:
        if isinstance(message, Request):
            now = self._loop.time()
            self._run(self.layer.receive_request(message, reliable=flow.is_stream, now=now), flow)

    def _on_request(self, message: Request, flow: Flow) -> None:
        if message.method != "REGISTER":
            if message.method in KNOWN_METHODS:
                resp = build_response(
                    message, 405, to_tag=generate_tag(), headers=(("Allow", "REGISTER"),)
                )
            else:
                resp = build_response(message, 501, to_tag=generate_tag())
            self._reply(message, resp, flow)
            return
        self._register(message, flow)

    def _register(self, request: Request, flow: Flow) -> None:
        now = self._loop.time()
        tag = generate_tag()
        authorization = request.header("Authorization")
        if authorization is None:
            self._challenge(request, flow, now, stale=False)
            return
        result = self.digest.verify(authorization, "REGISTER", self.users.get, now)
        if result.status is AuthStatus.STALE:
            self._challenge(request, flow, now, stale=True)
            return
        if result.status is AuthStatus.FAILED:
            if result.reason is FailureReason.BAD_NONCE:
                self._challenge(request, flow, now, stale=False)
            else:
                self._reply(request, build_response(request, 403, to_tag=tag), flow)
            return
        # §10.3 step 4: the authenticated user may only register its own AOR.
        to_uri = request.to.uri
        if not isinstance(to_uri, SipUri) or to_uri.user != result.username:
            self._reply(request, build_response(request, 403, to_tag=tag), flow)
            return
        reg = self.registrar.process_register(request, now, flow)
        self._reply(request, reg.response(request, to_tag=tag), flow)

    def _challenge(self, request: Request, flow: Flow, now: float, *, stale: bool) -> None:
        headers = tuple(("WWW-Authenticate", v) for v in self.digest.challenges(now, stale))
        resp = build_response(request, 401, to_tag=generate_tag(), headers=headers)
        self._reply(request, resp, flow)
