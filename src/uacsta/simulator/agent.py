"""The SIP side of a simulated phone: a real SIP user agent over real sockets.

It registers with digest (username = its MAC), refreshes the registration, accepts the server's
CSTA INVITE dialog (RFC 4028 session timer honoured), answers CSTA requests in the 2xx of each
INFO, and sends its events and own requests as INFO, in order, exactly as the protocol notes
describe a uaCSTA phone. Fault scripting: stop answering, drop the TCP connection, go offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import tempfile
from collections import Counter
from typing import TYPE_CHECKING

from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.csta.errors import CstaDecodeError, error_code
from uacsta.net.flow import Flow
from uacsta.net.tls import client_context, ensure_self_signed_cert, server_context
from uacsta.net.useragent import DialogUsage, ServerRequest, UserAgent
from uacsta.simulator.callmodel import SimPhone
from uacsta.simulator.personality import single_quoted
from uacsta.simulator.yealink import YealinkFirmware
from uacsta.sip.dialog import Dialog, negotiate_session_timer_uas
from uacsta.sip.digest import answer_challenge
from uacsta.sip.helpers import generate_branch, generate_call_id, generate_tag
from uacsta.sip.message import Request, Response

if TYPE_CHECKING:
    from uacsta.simulator.runtime import Simulation

log = logging.getLogger("uacsta.simulator")

CSTA_TYPE = "application/csta+xml"
#: Appended to the vendor User-Agent so the server labels simulated phones as such.
SIMULATOR_TAG = "uacsta-simulator"


class PhoneAgent:
    """One simulated phone on the wire."""

    def __init__(
        self,
        sim: Simulation,
        phone: SimPhone,
        *,
        server: tuple[str, str, int],
        password: str,
        expires: int = 300,
        local_host: str = "127.0.0.1",
        min_se: int = 90,
        tls_dir: str | None = None,
    ) -> None:
        self.min_se = min_se
        self.tls_dir = tls_dir
        #: CSTA requests received from the server, by service name.
        self.received: Counter[str] = Counter()
        #: SIP requests received in the CSTA dialog, by method (INFO, INVITE refreshes, BYE).
        self.sip_received: Counter[str] = Counter()
        self.sim = sim
        self.phone = phone
        self.transport, self.server_host, self.server_port = server
        self.password = password
        self.expires = expires
        self.local_host = local_host
        tls_client = client_context(verify=False) if self.transport == "tls" else None
        self.ua = UserAgent(
            on_request=self._on_request,
            user_agent=self.user_agent,
            tls_client_context=tls_client,
        )
        self.usage: DialogUsage | None = None
        self.registered = asyncio.Event()
        self.linked = asyncio.Event()
        self.last_register_status: int | None = None
        self.registrations = 0
        self.infos_received = 0
        self._call_id = generate_call_id(local_host)
        self._from_tag = generate_tag()
        self._cseq = itertools.count(1)
        self._outbox: asyncio.Queue[m.CstaMessage | bytes] = asyncio.Queue()
        #: The firmware's own CSTA processor, for personalities that have one (Yealink).
        self.firmware: YealinkFirmware | None = None
        if phone.personality.firmware == "yealink":
            self.firmware = YealinkFirmware(
                phone, csta_account=(phone.mac, self.server_host, self.server_port)
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._flow: Flow | None = None
        self._closed = False

    @property
    def mac(self) -> str:
        return self.phone.mac

    @property
    def user_agent(self) -> str:
        return f"{self.phone.user_agent} {SIMULATOR_TAG}"

    def __repr__(self) -> str:
        return f"<PhoneAgent {self.mac} {self.phone.personality.key}>"

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, register: bool = True) -> None:
        """Listen and start sending events; with ``register`` also keep a registration."""
        ctx = None
        if self.transport == "tls":
            # Phones need a TLS listener of their own too (requests may come on a new flow).
            folder = self.tls_dir or tempfile.mkdtemp(prefix="uacsta-sim-tls-")
            ctx = server_context(*ensure_self_signed_cert(folder))
        await self.ua.listen(f"{self.transport}:{self.local_host}:0", ssl_context=ctx)
        self.ua.transport.source_host = self.local_host  # its connections come from there too
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._sender()))
        if register:
            self._tasks.append(loop.create_task(self._registration_loop()))

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.ua.close()

    # ------------------------------------------------------------------ registration
    @property
    def local_port(self) -> int:
        return self.ua.transport.listener(self.transport).port

    def _register_request(self, expires: int, auth: tuple[tuple[str, str], ...]) -> Request:
        host = self.server_host
        aor = f"sip:{self.mac}@{host}"
        via = self.ua.via(self.transport, self.local_host).with_param("branch", generate_branch())
        contact = self.ua.contact(self.transport, self.mac, self.local_host)
        return Request(
            method="REGISTER",
            uri=f"sip:{host}:{self.server_port}",
            headers=(
                ("Via", str(via)),
                ("Max-Forwards", "70"),
                ("From", f"<{aor}>;tag={self._from_tag}"),
                ("To", f"<{aor}>"),
                ("Call-ID", self._call_id),
                ("CSeq", f"{next(self._cseq)} REGISTER"),
                ("Contact", contact),
                ("Expires", str(expires)),
                ("User-Agent", self.user_agent),
                *auth,
            ),
        )

    async def register(self, expires: int | None = None) -> int:
        """REGISTER (answering the digest challenge); returns the final status code."""
        expires = self.expires if expires is None else expires
        dest: tuple[str, str, int] | Flow = (self.transport, self.server_host, self.server_port)
        if (
            self._flow is not None
            and self._flow.is_stream
            and self._flow in self.ua.transport.connections
        ):
            dest = self._flow
        auth: tuple[tuple[str, str], ...] = ()
        response: Response | None = None
        for _ in range(2):
            request = self._register_request(expires, auth)
            pending = self.ua.request(request, dest)
            response = await pending
            flow = pending.flow
            if flow is not None:
                self._flow = flow
                dest = flow
            if response.status_code != 401 or auth:
                break
            challenge = response.header("WWW-Authenticate")
            if challenge is None:
                break
            value = answer_challenge(challenge, "REGISTER", request.uri, self.mac, self.password)
            auth = (("Authorization", value),)
        assert response is not None
        self.last_register_status = response.status_code
        if response.is_success and expires > 0:
            self.registrations += 1
            self.registered.set()
        else:
            self.registered.clear()
        return response.status_code

    async def _registration_loop(self) -> None:
        while not self._closed:
            if self.phone.online:
                try:
                    status = await self.register()
                except Exception:  # keep the simulated phone alive whatever the server does
                    log.exception("%r: REGISTER failed", self)
                    status = 0
                delay = self.expires / 2 if status == 200 else 5.0
            else:
                delay = 1.0
            await asyncio.sleep(delay)

    async def unregister(self) -> int:
        return await self.register(expires=0)

    # ------------------------------------------------------------------ faults
    def stop_answering(self, silent: bool = True) -> None:
        self.phone.silent = silent

    def drop_connection(self) -> None:
        if self._flow is not None and self._flow.is_stream:
            self.ua.transport.close_flow(self._flow)

    async def go_offline(self) -> None:
        """The phone is unplugged: nothing answered, no registration refresh."""
        self.phone.online = False
        self.drop_connection()

    def come_back(self) -> None:
        self.phone.online = True

    # ------------------------------------------------------------------ requests from the server
    def _on_request(self, sr: ServerRequest) -> None:
        if not self.phone.online:
            return  # unplugged: nothing answers
        request = sr.request
        if request.method == "INVITE":
            self._on_invite(sr)
        elif request.method == "OPTIONS":
            sr.reply(200, to_tag=generate_tag())
        else:
            sr.reply(481 if request.method in ("INFO", "BYE") else 405, to_tag=generate_tag())

    def _on_invite(self, sr: ServerRequest) -> None:
        request = sr.request
        timer = negotiate_session_timer_uas(request, min_se=self.min_se)
        if timer.status_code != 200:
            sr.reply(timer.status_code, to_tag=generate_tag(), headers=timer.headers)
            return
        answer = self._answer_csta(request)
        if answer is None:
            return
        tag = generate_tag()
        contact = self.ua.contact(sr.flow.transport, self.mac, self.local_host)
        dialog = Dialog.from_uas(request, tag, contact)
        if self.usage is not None:
            self.ua.remove_usage(self.usage)
        # Monitors belong to the CSTA session: a new dialog starts without any (a Yealink
        # keeps them: the firmware does not clear monitors when the CSTA dialog ends).
        if self.firmware is None:
            self.phone.monitors.clear()
        self.usage = DialogUsage(
            dialog, sr.flow, on_request=self._in_dialog, local_host=self.local_host
        )
        self.ua.add_usage(self.usage)
        if timer.session_expires is not None and timer.session_expires.refresher is not None:
            now = asyncio.get_running_loop().time()
            dialog.session_refreshed(
                now,
                timer.session_expires.interval,
                timer.session_expires.refresher,
                local_is_uac=False,
            )
        body, ctype = answer
        sr.reply(
            200,
            to_tag=tag,
            headers=(*timer.headers, ("Contact", contact), ("Allow", "INVITE, ACK, BYE, INFO")),
            body=body,
            content_type=ctype,
        )
        self.linked.set()
        self.sim.flush()

    def _answer_csta(self, request: Request) -> tuple[bytes, str | None] | None:
        """The CSTA answer to a request body; None when the phone stays silent."""
        if not request.body:
            return b"", None
        if self.firmware is not None:
            return self._firmware_answer(request.body)
        try:
            message, edition = codec.decode_with_edition(request.body)
        except CstaDecodeError as exc:
            error = error_code(exc)
            return codec.encode(error, codec.Edition.ED3), CSTA_TYPE
        if not isinstance(message, m.CstaRequest):
            return b"", None
        self.received[type(message).__name__] += 1
        if edition is codec.Edition.NONE:
            edition = codec.Edition.ED3
        now = asyncio.get_running_loop().time()
        reply = self.phone.handle_request(message, now, edition)
        if reply.response is None:
            return None
        return self._styled(codec.encode(reply.response, reply.edition)), CSTA_TYPE

    def _firmware_answer(self, body: bytes) -> tuple[bytes, str | None] | None:
        """The firmware reads the request and writes its answer itself (None: silent)."""
        assert self.firmware is not None
        if self.phone.silent or not self.phone.online:
            return None
        now = asyncio.get_running_loop().time()
        seen = len(self.firmware.received)
        answer = self.firmware.handle(body, now)
        for name in self.firmware.received[seen:]:
            self.received[name] += 1
        for document in self.firmware.outbox:
            self.enqueue(document)  # after the answer, in order (the line list)
        self.firmware.outbox.clear()
        return None if answer is None else (answer, CSTA_TYPE)

    def firmware_accounts_changed(self) -> None:
        """The phone's accounts changed (a Yealink tells the server, which re-reads them)."""
        assert self.firmware is not None
        self.firmware.accounts_changed()
        for document in self.firmware.outbox:
            self.enqueue(document)
        self.firmware.outbox.clear()

    def _in_dialog(self, sr: ServerRequest) -> None:
        if not self.phone.online:
            return
        request = sr.request
        self.sip_received[request.method] += 1
        if request.method == "INFO":
            self.infos_received += 1
            answer = self._answer_csta(request)
            if answer is not None:
                body, ctype = answer
                sr.reply(200, body=body, content_type=ctype)
            self.sim.flush()
        elif request.method == "BYE":
            sr.reply(200)
            if self.usage is not None:
                self.ua.remove_usage(self.usage)
                self.usage = None
            self.linked.clear()
            if self.firmware is None:
                self.phone.monitors.clear()
        elif request.method == "INVITE":
            timer = negotiate_session_timer_uas(request, min_se=self.min_se)
            answer = self._answer_csta(request)
            if answer is None:
                return
            body, ctype = answer
            contact = self.ua.contact(sr.flow.transport, self.mac, self.local_host)
            sr.reply(
                timer.status_code,
                headers=(*timer.headers, ("Contact", contact)),
                body=body,
                content_type=ctype,
            )
        else:
            sr.reply(200)

    # ------------------------------------------------------------------ events to the server
    def enqueue(self, message: m.CstaMessage | bytes) -> None:
        """Queue an event or request (a message, or a document the firmware wrote)."""
        self._outbox.put_nowait(message)

    def _documents(self, message: m.CstaMessage | bytes) -> list[bytes]:
        if isinstance(message, bytes):
            return [message]
        if self.firmware is not None:
            if isinstance(message, m.CstaEvent):
                return self.firmware.render_event(message)
            return []  # the firmware sends no other message of the call model
        return [self._styled(codec.encode(message, self.phone.personality.event_edition))]

    def _styled(self, document: bytes) -> bytes:
        """The vendor's way of writing what the codec wrote (snom: single-quoted attributes)."""
        if self.phone.personality.single_quoted_attributes:
            return single_quoted(document)
        return document

    async def _sender(self) -> None:
        """Events and requests go out in order, one INFO at a time."""
        while True:
            message = await self._outbox.get()
            usage = self.usage
            if usage is None or not self.phone.online:
                continue
            for body in self._documents(message):
                try:
                    await self.ua.request("INFO", usage, body=body, content_type=CSTA_TYPE)
                except Exception:
                    log.exception("%r: sending %s failed", self, type(message).__name__)
