"""The phones side: registrar with digest (username = MAC), the inventory, and one link per phone.

Estos manual §2.2, §3.2, §3.6: phones register with their MAC address as digest username and
the configured phone password (per-phone overrides possible); new phones are enabled
automatically when ``auto_activate`` is on; enabled, registered phones get a CSTA link
(:mod:`uacsta.phones.link`). Wrong credentials get 403 after the retry, logged with MAC and
source (rate-limited: a stranger must not flood the log). Repeated failures block the
guesser, not the phone (:mod:`uacsta.throttle`): per address and phone, per address, and per
phone for addresses it never registered from. Nonces are bound to the source address, and a
nonce answered without qop is good once, so a captured REGISTER cannot be replayed.

Behind an edge proxy (``phones.trusted_proxies``, docs/edge.md) the source address is the
phone's as its Via names it (:class:`uacsta.sip.proxies.TrustedProxies`), and the binding's
Path (RFC 3327) is the Route set of the INVITE; the inventory keeps contact and Path, so a
phone can be linked from its stored binding (:meth:`PhoneService.link_stored`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from uacsta.config import Settings
from uacsta.csta import codec
from uacsta.csta import messages as m
from uacsta.hub import SwitchHub
from uacsta.net.errors import TransportError
from uacsta.net.flow import Flow, TransportLimits
from uacsta.net.useragent import ServerRequest, UserAgent
from uacsta.phones.inventory import Inventory
from uacsta.phones.link import LinkState, PhoneLink, Target
from uacsta.phones.mac import normalize_mac
from uacsta.phones.trace import TraceBuffer
from uacsta.phones.vendors import detect
from uacsta.ratelog import RateLimitedLog
from uacsta.sip.digest import Algorithm, DigestServer, NonceManager
from uacsta.sip.errors import SipParseError
from uacsta.sip.helpers import generate_tag
from uacsta.sip.message import Message, Request
from uacsta.sip.proxies import TrustedProxies
from uacsta.sip.registrar import Binding, Registrar, RegistrarPolicy, route_to
from uacsta.sip.uri import SipUri, parse_uri
from uacsta.sipauth import Authenticated, Blocked, DigestGuard, Failed
from uacsta.store.db import PhoneRecord, utcnow
from uacsta.throttle import AuthThrottle

log = logging.getLogger("uacsta.phones")
#: For the lines a stranger can trigger (refused REGISTERs, blocks).
auth_log = RateLimitedLog(log)

#: What the uacsta phone simulator appends to its User-Agent.
SIMULATOR_TAG = "uacsta-simulator"

ALLOW = "REGISTER, INVITE, ACK, BYE, CANCEL, INFO, OPTIONS"


class OwnerGate(Protocol):
    """Several nodes (uacsta.cluster): a phone is linked by the one node that owns it."""

    def may_link(self, mac: str) -> bool:
        """True: this node owns the phone, link it now. False: not yet; the gate claims it
        and calls :meth:`PhoneService.start_link` once it is ours."""


class PhoneService:
    def __init__(
        self,
        settings: Settings,
        inventory: Inventory,
        hub: SwitchHub,
        *,
        tls_context: ssl.SSLContext | None = None,
        observe_latency: Callable[[str, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.inventory = inventory
        self.hub = hub
        self.tls_context = tls_context
        p = settings.phones
        expires = max(30, p.registration_expires)
        self.registrar = Registrar(
            RegistrarPolicy(
                default_expires=expires, min_expires=min(30, expires), max_expires=expires
            )
        )
        self.digest = DigestServer(
            p.realm,
            NonceManager(secrets.token_bytes(32)),
            tuple(Algorithm.parse(a) for a in p.digest_algorithms),
        )
        #: Edge proxies whose requests name the phone's address in its Via.
        self.proxies = TrustedProxies(p.trusted_proxies)
        self.ua = self._user_agent()
        self.links: dict[str, PhoneLink] = {}
        #: Link set-ups in progress at one time (phones.max_parallel_setups).
        self._setup_limit = settings.phones.max_parallel_setups
        self.setup_slots = asyncio.Semaphore(self._setup_limit)
        self.targets: dict[str, Target] = {}
        size = max(0, settings.log.trace_messages)
        self.traces: dict[str, TraceBuffer] = defaultdict(lambda: TraceBuffer(size))
        self._flow_mac: dict[tuple[str, tuple[str, int]], str] = {}
        self._relink: dict[str, asyncio.TimerHandle] = {}
        #: Per phone: the last link failure's reason, its repeats in a row, when.
        self._relink_failures: dict[str, tuple[str, int, float]] = {}
        self.throttle = AuthThrottle(
            max_failures=p.max_auth_failures,
            max_source_failures=p.max_source_failures,
            max_account_failures=p.max_account_failures,
            block_time=p.block_time,
        )
        #: REGISTER authentication: one rule with the TR/87 INVITE's (uacsta.sipauth).
        self.guard = DigestGuard(self.digest, self.throttle)
        self._observe = observe_latency
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.auth_failures = 0
        #: Several nodes: asked before each link starts (None: this node links every phone).
        self.owner_gate: OwnerGate | None = None

    def _user_agent(self) -> UserAgent:
        p = self.settings.phones
        limits = TransportLimits(
            max_connections=p.max_connections,
            max_connections_per_address=p.max_connections_per_address,
            idle_timeout=max(900.0, 3.0 * p.registration_expires),
            handshake_timeout=self.settings.connections.handshake_timeout,
            message_rate=p.max_messages_per_second or None,
            message_burst=p.message_burst,
        )
        ua = UserAgent(
            on_request=self._on_request,
            on_closed=self._on_closed,
            user_agent="uacsta",
            tracer=self._trace_sip,
            limits=limits,
            registrar=self.registrar,
            on_expired=self._bindings_expired,
        )
        # An edge proxy's flow carries every phone behind it: the per-flow message rate
        # would throttle them all as one.
        ua.transport.unmetered = self._from_proxy
        return ua

    def _from_proxy(self, host: str) -> bool:
        return self.proxies.trusts(host)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> list[str]:
        bound = []
        for address in self.settings.phones.listen:
            ctx = self.tls_context if address.lower().startswith("tls:") else None
            if address.lower().startswith("tls:") and ctx is None:
                log.warning("no TLS certificate: %s not opened", address)
                continue
            await self.ua.listen(address, ssl_context=ctx)
        for listener in self.ua.transport.listeners:
            bound.append(listener.address)
        return bound

    def apply_settings(self) -> None:
        """Settings changed: registration expiry applies to the next REGISTER, timers to new
        links, passwords and auto-activation at once."""
        p = self.settings.phones
        self.throttle.configure(
            max_failures=p.max_auth_failures,
            block_time=p.block_time,
            max_source_failures=p.max_source_failures,
            max_account_failures=p.max_account_failures,
        )
        self.digest.algorithms = tuple(Algorithm.parse(a) for a in p.digest_algorithms)
        self.proxies = TrustedProxies(p.trusted_proxies)
        limit = self.settings.phones.max_parallel_setups
        if limit != self._setup_limit:
            # Set-ups already waiting finish under the old limit; new ones use the new one.
            self._setup_limit = limit
            self.setup_slots = asyncio.Semaphore(limit)
        expires = max(30, self.settings.phones.registration_expires)
        self.registrar.policy = RegistrarPolicy(
            default_expires=expires, min_expires=min(30, expires), max_expires=expires
        )

    async def restart_listeners(self) -> list[str]:
        """New listener addresses: links are closed (phones re-register and re-link)."""
        await asyncio.gather(
            *(link.stop("phone listeners changed") for link in list(self.links.values())),
            return_exceptions=True,
        )
        await self.ua.close()
        self.ua = self._user_agent()
        self.targets.clear()
        self._flow_mac.clear()
        return await self.start()

    async def close(self) -> None:
        """Shutdown: BYE to every linked phone, then close the listeners."""
        self._closing = True
        for handle in self._relink.values():
            handle.cancel()
        await asyncio.gather(
            *(link.stop("server shutdown") for link in list(self.links.values())),
            return_exceptions=True,
        )
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ua.close()

    # ------------------------------------------------------------------ settings
    def password_for_mac(self, mac: str) -> str:
        overrides = {normalize_mac(k) or k: v for k, v in self.settings.phones.passwords.items()}
        return overrides.get(mac, self.settings.phones.password)

    def _password_for_user(self, username: str) -> str | None:
        mac = normalize_mac(username)
        if mac is None:
            return None
        return self.password_for_mac(mac)

    # ------------------------------------------------------------------ SIP requests
    def _on_request(self, sr: ServerRequest) -> None:
        match sr.request.method:
            case "REGISTER":
                self._register(sr)
            case "OPTIONS":
                sr.reply(200, to_tag=generate_tag(), headers=(("Allow", ALLOW),))
            case "INVITE" | "INFO" | "BYE" | "MESSAGE" | "NOTIFY" | "SUBSCRIBE":
                sr.reply(
                    405 if sr.request.method != "BYE" else 481,
                    to_tag=generate_tag(),
                    headers=(("Allow", ALLOW),),
                )
            case _:
                sr.reply(501, to_tag=generate_tag())

    def _register(self, sr: ServerRequest) -> None:
        request, flow = sr.request, sr.flow
        now = asyncio.get_running_loop().time()
        address = self.proxies.client_address(request, flow.remote)
        source = address[0]
        # The account is the phone's MAC: a block of this address or of that phone does not
        # hold a phone that registered from here before (uacsta.sipauth, uacsta.throttle).
        verdict = self.guard.check(
            request.header("Authorization"),
            "REGISTER",
            source,
            now,
            self._password_for_user,
            normalize_mac,
        )
        if isinstance(verdict, Blocked):
            auth_log.warning(
                ("blocked", source),
                "REGISTER from %s as %r refused: blocked for %.0f s after repeated failures",
                source,
                verdict.account,
                verdict.wait,
            )
        elif isinstance(verdict, Failed):
            self._auth_failed(address, verdict)
        if not isinstance(verdict, Authenticated):
            sr.reply(verdict.status, verdict.phrase, to_tag=generate_tag(), headers=verdict.headers)
            return
        mac = verdict.account
        claimed_aor = _aor_user(request)
        if claimed_aor is not None and normalize_mac(claimed_aor) != mac:
            # RFC 3261 §10.3 step 6: the authenticated phone may register its own address of
            # record only (its MAC, estos §3.2); another phone's MAC or number would show it
            # in the inventory as that phone, and bind that address to it.
            auth_log.warning(
                ("identity", source),
                "REGISTER from %s as %s refused: address of record %r is not its MAC",
                source,
                mac,
                claimed_aor,
            )
            sr.reply(403, "Not Your Address Of Record", to_tag=generate_tag())
            return
        reg = self.registrar.process_register(request, now, flow)
        sr.respond(reg.response(request, to_tag=generate_tag()))
        if reg.ok:
            self._registered(mac, request, flow, reg.bindings, address)

    def _auth_failed(self, address: tuple[str, int], verdict: Failed) -> None:
        source = address[0]
        user = verdict.user
        self.auth_failures += 1
        hint = "" if user and normalize_mac(user) else " (the username must be the phone's MAC)"
        auth_log.warning(
            ("refused", source),
            "REGISTER from %s:%d as %r refused: %s%s",
            source,
            address[1],
            user,
            verdict.reason,
            hint,
        )
        if verdict.block:
            auth_log.warning(
                ("blocking", source),
                "blocking %s for %.0f s after repeated REGISTER failures",
                verdict.block_holds,
                verdict.block,
            )

    # ------------------------------------------------------------------ registrations
    def _registered(
        self,
        mac: str,
        request: Request,
        flow: Flow,
        bindings: tuple[Binding, ...],
        address: tuple[str, int],
    ) -> None:
        record, new = self.inventory.upsert(mac)
        if new:
            record.enabled = self.settings.phones.auto_activate
            log.info(
                "new phone %s (%s), %s",
                mac,
                request.header("User-Agent"),
                "enabled" if record.enabled else "waiting to be enabled",
            )
        _identify(record, mac, request.header("User-Agent"))
        record.identity = str(request.to.uri) if isinstance(request.to.uri, SipUri) else None
        record.ip, record.port = address
        record.transport = flow.transport
        if not bindings:
            record.contact, record.path = None, []
            log.info("phone %s un-registered", mac)
            self._forget_target(mac)
            self.inventory.touch(record)
            self._unlink(mac, "un-registered", state="offline")
            return
        record.last_login = utcnow()
        binding = bindings[0]
        record.contact, record.path = str(binding.contact.uri), list(binding.path)
        target = Target(
            contact=record.contact,
            flow=flow,
            aor=binding.aor,
            # Behind an edge the Request-URI names the edge: we are the address it reached.
            local_host=_local_host(flow) if binding.path else _host_phones_use(request),
            route=binding.path,
        )
        previous = self.targets.get(mac)
        self._forget_target(mac)
        self.targets[mac] = target
        if not binding.path:
            # The flow is the phone's own (an edge's flow carries every phone behind it: its
            # closing is not the phone's, and its messages are not this phone's trace).
            self._flow_mac[(flow.transport, flow.remote)] = mac
        link = self.links.get(mac)
        if not record.enabled:
            self.inventory.set_state(record, "disabled", "disabled by the administrator")
            return
        moved = previous is not None and (
            previous.flow != flow or previous.contact != target.contact
        )
        if link is not None and link.state is not LinkState.LOST and not moved:
            self.inventory.touch(record)
            return
        if link is not None and moved:
            log.info("phone %s moved to %s: re-linking", mac, flow)
            self._spawn(link.stop("phone re-registered elsewhere", bye=False))
        self._start_link(mac)

    async def link_stored(self, mac: str) -> bool:
        """Link a phone from its stored binding (contact and Path in the inventory), without
        waiting for its next REGISTER: a node taking over the phones of another. The INVITE
        goes to the first Path hop (the edge that still holds the phone's flow), or to the
        contact itself. False when the phone has no stored binding, is not enabled, or its
        first hop cannot be reached (no listener of its transport, connection refused). This
        node holds no binding of the phone: it stays the link's target (relinked after a
        failure) until the phone registers here, un-registers, or is disabled or deleted."""
        record = self.inventory.get(mac)
        if record is None or not record.contact or not record.enabled or self._closing:
            return False
        try:
            hop = route_to(record.contact, record.path)
            aor = parse_uri(record.identity or record.contact)
        except SipParseError:
            return False
        if not isinstance(aor, SipUri):
            return False
        try:
            flow = await self.ua.flow_to(hop.transport, hop.host, hop.port)
        except (TransportError, OSError) as exc:
            log.info("phone %s not linked from its stored binding: %s", mac, exc)
            return False
        link = self.links.get(mac)
        if link is not None:
            await link.stop("linked from its stored binding", bye=False)
        self._forget_target(mac)
        self.targets[mac] = Target(
            contact=hop.uri, flow=flow, aor=aor.aor, local_host=_local_host(flow), route=hop.route
        )
        if not hop.route:
            self._flow_mac[(flow.transport, flow.remote)] = mac
        self._start_link(mac)
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """A background task kept referenced until done (the loop holds only weak ones)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _bindings_expired(self, bindings: tuple[Binding, ...]) -> None:
        """The user agent's timer expired bindings: a phone whose last one ran out is
        offline (a phone's address of record is its MAC)."""
        for aor in dict.fromkeys(b.aor for b in bindings):
            if self.registrar.bound(aor):
                continue  # another contact of it is still registered
            mac = _aor_mac(aor)
            if mac is None:
                continue
            log.info("registration of %s expired", mac)
            self._forget_target(mac)
            self._forget_binding(mac)
            self._unlink(mac, "registration expired", state="offline")

    def _forget_binding(self, mac: str) -> None:
        """The stored binding is gone with the registration: nobody links it any more."""
        record = self.inventory.get(mac)
        if record is not None and record.contact is not None:
            record.contact, record.path = None, []
            self.inventory.touch(record)

    def _forget_target(self, mac: str) -> None:
        target = self.targets.pop(mac, None)
        if target is not None:
            key = (target.flow.transport, target.flow.remote)
            if self._flow_mac.get(key) == mac:
                del self._flow_mac[key]

    def _on_closed(self, flow: Flow) -> None:
        mac = self._flow_mac.get((flow.transport, flow.remote))
        if mac is None:
            return
        target = self.targets.get(mac)
        if target is None or target.flow != flow:
            return
        log.info("connection of phone %s closed", mac)
        self.registrar.remove_flow_of(target.aor, flow)
        self._forget_target(mac)
        self._forget_binding(mac)
        self._unlink(mac, "connection closed", state="offline")

    # ------------------------------------------------------------------ links
    def start_link(self, mac: str) -> None:
        """Link a registered, enabled phone (the owner gate calls it once the phone is ours)."""
        self._start_link(mac)

    def _start_link(self, mac: str) -> None:
        if self._closing:
            return
        record = self.inventory.get(mac)
        target = self.targets.get(mac)
        if record is None or target is None or not record.enabled:
            return
        if self.owner_gate is not None and not self.owner_gate.may_link(mac):
            return
        handle = self._relink.pop(mac, None)
        if handle is not None:
            handle.cancel()
        identity = detect(record.user_agent, mac)
        link = PhoneLink(self, mac, target, identity.profile, identity.firmware)
        self.links[mac] = link
        self.inventory.set_state(record, "linking")
        link.start()

    def link_ready(self, link: PhoneLink) -> None:
        record = self.inventory.get(link.mac)
        if record is not None:
            record.lines = list(link.lines)
            self.inventory.set_state(record, "ready")
            log.info("phone %s ready with lines %s", link.mac, ", ".join(link.lines))

    def lines_changed(self, link: PhoneLink) -> None:
        record = self.inventory.get(link.mac)
        if record is not None:
            record.lines = list(link.lines)
            self.inventory.touch(record)

    def link_ended(self, link: PhoneLink, reason: str) -> None:
        if self.links.get(link.mac) is not link:
            return
        del self.links[link.mac]
        record = self.inventory.get(link.mac)
        if record is None:
            return
        registered = link.mac in self.targets
        if self._closing:
            self.inventory.set_state(record, "offline", reason)
        elif not record.enabled:
            self.inventory.set_state(record, "disabled", "disabled by the administrator")
        elif registered:
            self.inventory.set_state(record, "failed", reason)
            loop = asyncio.get_running_loop()
            delay = self._relink_delay(link.mac, reason, loop.time())
            self._relink[link.mac] = loop.call_later(delay, self._start_link, link.mac)
        else:
            self.inventory.set_state(record, "offline", reason)

    def _relink_delay(self, mac: str, reason: str, now: float) -> float:
        """``relink_backoff``, doubled for each failure of the same reason in a row, capped
        at ``relink_backoff_max``: a phone that keeps failing is not relinked (and its
        clients' monitors restarted) every few seconds. A quiet spell of twice the cap, or
        another reason, starts again from ``relink_backoff``."""
        base = self.settings.phones.relink_backoff
        cap = max(base, self.settings.phones.relink_backoff_max)
        last = self._relink_failures.get(mac)
        repeats = 0
        if last is not None and last[0] == reason and now - last[2] <= 2 * cap:
            repeats = last[1] + 1
        self._relink_failures[mac] = (reason, repeats, now)
        return float(min(cap, base * 2 ** min(repeats, 32)))

    def _unlink(self, mac: str, reason: str, *, state: str) -> None:
        link = self.links.get(mac)
        handle = self._relink.pop(mac, None)
        if handle is not None:
            handle.cancel()
        if link is not None:
            self._spawn(link.stop(reason, bye=state != "offline" or reason == "un-registered"))
        record = self.inventory.get(mac)
        if record is not None and not record.enabled:  # as in link_ended: disabled wins
            self.inventory.set_state(record, "disabled", "disabled by the administrator")
        elif record is not None:
            self.inventory.set_state(record, state, reason)

    # ------------------------------------------------------------------ several nodes
    def adopt(self, mac: str, target: Target, user_agent: str | None) -> None:
        """Link a phone this node took over from a node that is gone: from the registration
        the cluster kept (it registered elsewhere, so not in this node's registrar)."""
        record, new = self.inventory.upsert(mac)
        if new:
            record.enabled = True  # it was linked at its last owner
        if user_agent:
            _identify(record, mac, user_agent)
        record.ip, record.port = target.flow.remote
        record.transport = target.flow.transport
        self._forget_target(mac)
        self.targets[mac] = target
        self._flow_mac[(target.flow.transport, target.flow.remote)] = mac
        self.inventory.touch(record)
        self._start_link(mac)

    async def release(self, mac: str, reason: str) -> None:
        """Another node owns the phone now (or this one lost its lease): its link ends without
        a BYE (the phone's dialog may already belong to the new owner) and is not retried."""
        self._forget_target(mac)
        handle = self._relink.pop(mac, None)
        if handle is not None:
            handle.cancel()
        link = self.links.get(mac)
        if link is not None:
            await link.stop(reason, bye=False)
        record = self.inventory.get(mac)
        if record is not None and record.enabled:
            self.inventory.set_state(record, "offline", reason)

    async def set_enabled(self, mac: str, enabled: bool) -> bool:
        record = self.inventory.get(mac)
        if record is None:
            return False
        record.enabled = enabled
        self.inventory.touch(record)
        if not enabled:
            link = self.links.get(mac)
            if link is not None:
                await link.stop("disabled by the administrator")
            self.hub.phone_removed(mac)
            self.inventory.set_state(record, "disabled", "disabled by the administrator")
        elif mac in self.targets and mac not in self.links:
            self._start_link(mac)
        elif mac not in self.targets:
            self.inventory.set_state(record, "offline", "enabled; waiting for its registration")
        return True

    async def delete(self, mac: str) -> bool:
        link = self.links.get(mac)
        if link is not None:
            await link.stop("deleted")
        self.hub.phone_removed(mac)
        self.traces.pop(mac, None)
        return self.inventory.delete(mac)

    # ------------------------------------------------------------------ diagnostics
    def _trace_sip(self, direction: str, message: Message, flow: Flow) -> None:
        mac = self._flow_mac.get((flow.transport, flow.remote))
        if mac is None:
            return
        trace = self.traces[mac]
        full = message.to_bytes() if trace.keeps_details else None
        trace.add(direction, "sip", message.start_line(), full)

    def trace_csta(self, mac: str, direction: str, message: m.CstaMessage) -> None:
        trace = self.traces[mac]
        body: bytes | None = None
        if trace.keeps_details:
            try:
                body = codec.encode(message)
            except (TypeError, ValueError):  # a message the codec cannot write: the name only
                body = None
        trace.add(direction, "csta", type(message).__name__, body)

    def observe_latency(self, service: str, seconds: float) -> None:
        if self._observe is not None:
            self._observe(service, seconds)


def _identify(record: PhoneRecord, mac: str, user_agent: str | None) -> None:
    """Vendor, model and firmware from the phone's User-Agent (the vendor profile's key)."""
    identity = detect(user_agent, mac)
    record.vendor, record.model, record.firmware = (
        identity.vendor,
        identity.model,
        identity.firmware,
    )
    record.user_agent = user_agent
    record.simulated = bool(user_agent and SIMULATOR_TAG in user_agent)


def _aor_mac(aor: str) -> str | None:
    """The MAC an address of record names (its user part), or None."""
    try:
        uri = parse_uri(aor)
    except SipParseError:
        return None
    return normalize_mac(uri.user or "") if isinstance(uri, SipUri) else None


def _aor_user(request: Request) -> str | None:
    """The user part of the REGISTER's To (its address of record); None when it has no
    readable SIP URI (the registrar answers those 400/404)."""
    try:
        uri = request.to.uri
    except SipParseError:
        return None
    return (uri.user or "") if isinstance(uri, SipUri) else None


def _local_host(flow: Flow) -> str | None:
    """Our address on ``flow`` when the socket is bound to one (a wildcard listener: None,
    the listener's advertised address)."""
    host = flow.local[0]
    return None if host in ("", "0.0.0.0", "::") else host


def _host_phones_use(request: Request) -> str | None:
    """Our address as the phone knows it: the host of its REGISTER's Request-URI (already
    validated when the message was parsed)."""
    uri = request.request_uri
    return uri.host.strip("[]") if isinstance(uri, SipUri) else None
