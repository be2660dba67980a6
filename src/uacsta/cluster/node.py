"""One node of a cluster: phone ownership with leases and fencing, and the mirror of every
other node's phones in this node's switch (NATS with JetStream; docs/cluster.md).

**Ownership.** A phone's key in the phones bucket names its owner node; it is written only
with compare-and-set (``create``, or ``update`` with the revision last read), so the key's
revision is the fencing token: a node acting on an old revision cannot write, learns that
it lost the phone and lets it go. Only the owner links the phone (INVITE, keep-alive).
A node claims a phone when the phone registers with it, and when the phone's owner is gone:
each node keeps a lease, its key in the nodes bucket, whose max age is the lease time and
which it rewrites every third of it. A node whose key has lapsed is gone; the live nodes
pick the new owner of each of its phones by rendezvous hashing (all compute the same one,
and compare-and-set settles any disagreement), and the new owner links the phone from the
registration kept in its key (its contact; the first hop of its Path when it registered
through an edge proxy). A node that could not renew its lease for most of the lease time
(:class:`~uacsta.cluster.rules.Lease`) gives every phone up before anyone else may claim
them: links end without a BYE, its clients get OutOfService. It never fights.

Why leases in the NATS key-value store and not PostgreSQL advisory locks: an advisory lock
lives as long as one database session, so a node cut off from the database holds its phones
until TCP keep-alive notices (minutes), and nothing fences its writes; a lapsed key has a
server-side age, and the revision fences every later write. NATS also carries the requests
and events between nodes, so ownership and traffic fail together: a node that cannot reach
the others cannot serve their clients either. And the key-value watch tells every node of
every change at once, which a lock table does not.

**One switching function.** Every node's switch holds every phone of the cluster: a phone
owned elsewhere is *mirrored* (its lines and readiness come from its key, its events from
the owner's ``evt`` subject, its requests go to the owner through
:class:`~uacsta.cluster.channel.RemotePhoneChannel`). A client on any node sees every line,
gets its monitors and call IDs from its own node's switch (call-ID prefixes come from the
phone's MAC, so they are the same on every node), and the switch's existing rules give the
failover its shape: the owner gone, the mirror's phone is lost (pending requests fail,
monitors OutOfService); linked again by a new owner it is ready (monitor points restarted,
BackInService). Chosen over proxying clients into the owner's switch because nothing in the
switch needed to learn about nodes: its monitors, cross-refs and switch-level answers
(GetSwitchingFunctionDevices, GetCSTAFeatures) stay as they are. The price: each node with
a client monitoring a line keeps its own monitor in the phone (phones allow several), and
the owner sends each event once to the bus. Only the owner journals a phone's calls and
publishes its notices to webhooks (the hub asks :meth:`is_local`); mirrors keep no monitor
of their own on a mirrored phone's lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import socket
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.errors import KeyWrongLastSequenceError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from uacsta.cluster import ClusterError, bus
from uacsta.cluster.channel import OUT_OF_SERVICE, RemotePhoneChannel
from uacsta.cluster.rules import Lease, PhoneEntry, call_id_prefix, node_token, to_claim
from uacsta.config import Settings
from uacsta.csta import messages as m
from uacsta.hub import PhoneChannel, SwitchHub
from uacsta.phones.link import Target
from uacsta.phones.service import PhoneService
from uacsta.phones.vendors import detect
from uacsta.sip.registrar import route_to
from uacsta.switch.callids import CallIdSpace

log = logging.getLogger("uacsta.cluster")

#: Connection attempts per NATS server when joining.
JOIN_ATTEMPTS = 3
#: Seconds beyond the phone's CSTA timeout a relayed request waits for the owner's answer.
RELAY_MARGIN = 2.0


class ClusterNode:
    """This node in the cluster: the hub's :class:`~uacsta.hub.PhoneObserver` and the phone
    service's :class:`~uacsta.phones.service.OwnerGate`."""

    def __init__(
        self,
        settings: Settings,
        hub: SwitchHub,
        phones: PhoneService,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        c = settings.cluster
        self.settings = settings
        self.hub = hub
        self.phones = phones
        self.clock = clock
        self.node_id = node_token(c.node_id or socket.gethostname())
        self.names = bus.Names(c.name)
        self.lease = Lease(c.lease_seconds)
        self.request_timeout = settings.phones.csta_timeout + RELAY_MARGIN
        self.nc: NatsClient | None = None
        self._nodes_kv: KeyValue | None = None
        self._phones_kv: KeyValue | None = None
        #: What the phones bucket says, with each key's revision (the fencing token).
        self.entries: dict[str, tuple[int, PhoneEntry]] = {}
        #: Nodes whose lease was seen live at the last look.
        self.live: frozenset[str] = frozenset()
        #: Phones this node owns (claimed at the revision in ``entries``).
        self.held: set[str] = set()
        #: Phones being claimed now.
        self._claiming: set[str] = set()
        #: Phones mirrored ready in the switch: their owner and lines.
        self.mirrored: dict[str, tuple[str, tuple[str, ...]]] = {}
        #: Per phone: the entry still to write (one writer per phone at a time).
        self._to_write: dict[str, dict[str, Any]] = {}
        self._writing: set[str] = set()
        self._relinking: set[str] = set()
        #: Requests relayed to owners, by reply subject: who gets the answer, the timeout.
        self._replies: dict[str, tuple[Callable[[m.CstaMessage], None], asyncio.TimerHandle]] = {}
        self._reply_numbers = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._watcher_task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing = False
        #: Counters for the status page and the tests.
        self.claims = 0
        self.releases = 0
        self.fenced = 0
        #: Lease ticks done (a look at the nodes and the claims after it).
        self.ticks = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        url = self.settings.cluster.nats_url
        servers = [u.strip() for u in url.split(",") if u.strip()]
        try:
            self.nc = await nats.connect(
                servers=servers,
                name=f"uacsta-{self.node_id}",
                connect_timeout=2,
                allow_reconnect=True,
                # A few tries to join (a node that cannot reach NATS must not start), then
                # reconnect for ever once joined (set below).
                max_reconnect_attempts=JOIN_ATTEMPTS,
                reconnect_time_wait=0.5,
                error_cb=self._nats_error,
                disconnected_cb=self._nats_disconnected,
                reconnected_cb=self._nats_reconnected,
            )
            self.nc.options["max_reconnect_attempts"] = -1
            js = self.nc.jetstream()
            self._nodes_kv = await _bucket(
                js, self.names.nodes_bucket, ttl=self.lease.lease_seconds
            )
            self._phones_kv = await _bucket(js, self.names.phones_bucket, ttl=None)
            if not await self._renew():
                raise ClusterError("the first lease could not be written")
        except ClusterError:
            raise
        except Exception as exc:
            raise ClusterError(f"cannot join the cluster at {url}: {exc}") from exc
        self.hub.switch.call_ids = CallIdSpace(prefix_of=call_id_prefix)
        self.hub.observer = self
        self.phones.owner_gate = self
        await self.nc.subscribe(self.names.requests(self.node_id), cb=self._on_request)
        await self.nc.subscribe(self.names.all_events, cb=self._on_event)
        watcher = await self._phones_kv.watchall()
        loop = asyncio.get_running_loop()
        self._watcher_task = loop.create_task(self._watch(watcher), name="cluster-watch")
        self._loops.append(self._watcher_task)
        await self._look_at_nodes()
        self._loops.append(loop.create_task(self._tick_loop(), name="cluster-lease"))
        log.info("node %s joined cluster %s at %s", self.node_id, self.names.cluster, url)

    async def close(self) -> None:
        """Leave: the lease is given back at once so the others take the phones over now
        (the phone service has ended the links before, with a BYE)."""
        self._closing = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for subject in list(self._replies):
            self._settle(subject, OUT_OF_SERVICE)
        for task in self._loops:
            task.cancel()
        pending = [t for t in (*self._loops, *self._tasks) if t is not asyncio.current_task()]
        if pending:  # the last ownership writes; relayed requests are cut short
            _done, late = await asyncio.wait(pending, timeout=2.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._nodes_kv is not None and self.nc is not None and self.nc.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._nodes_kv.delete(self.names.node_key(self.node_id)), 2.0
                )
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain(), 2.0)
        if self.hub.observer is self:
            self.hub.observer = None
        if self.phones.owner_gate is self:
            self.phones.owner_gate = None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cluster task failed", exc_info=task.exception())

    async def _nats_error(self, exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    async def _nats_disconnected(self) -> None:
        log.warning("node %s lost its NATS connection", self.node_id)

    async def _nats_reconnected(self) -> None:
        log.info("node %s reconnected to NATS", self.node_id)
        if not self._closing:  # read every phone's entry again: changes may have been missed
            self.spawn(self._restart_watch())

    async def _restart_watch(self) -> None:
        assert self._phones_kv is not None
        watcher = await self._phones_kv.watchall()
        old = self._watcher_task
        self._watcher_task = asyncio.get_running_loop().create_task(self._watch(watcher))
        self._loops.append(self._watcher_task)
        if old is not None:
            old.cancel()

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "cluster": self.names.cluster,
            "holding": self.lease.holding(self.clock()),
            "live_nodes": sorted(self.live),
            "owned": sorted(self.held),
            "mirrored": sorted(self.mirrored),
        }

    # ------------------------------------------------------------------ the lease
    async def _tick_loop(self) -> None:
        interval = min(1.0, self.lease.refresh_interval)
        next_renew = self.clock() + self.lease.refresh_interval
        while True:
            # Wake at the tick, or when the lease would lapse if sooner: giving the phones up
            # must not wait for a tick, or another node could claim them meanwhile.
            now = self.clock()
            wait = interval
            expires = self.lease.expires_at()
            if (self.held or self.mirrored) and expires is not None and expires > now:
                wait = min(wait, expires - now + 0.001)
            await asyncio.sleep(wait)
            now = self.clock()
            if now >= next_renew or not self.lease.holding(now):
                next_renew = now + self.lease.refresh_interval
                await self._renew()
            if not self.lease.holding(self.clock()):
                self._fence()
                continue
            try:
                await self._look_at_nodes()
            except Exception as exc:
                log.info("reading the cluster's nodes failed: %s", exc)
                continue
            self._claim_orphans()
            self._claim_registered()
            self.ticks += 1

    async def _renew(self) -> bool:
        assert self._nodes_kv is not None
        sent = self.clock()
        try:
            await asyncio.wait_for(
                self._nodes_kv.put(self.names.node_key(self.node_id), b"{}"),
                self.lease.refresh_interval,
            )
        except Exception as exc:
            log.warning("node %s could not renew its lease: %s", self.node_id, exc)
            return False
        self.lease.confirmed(sent)
        self._arm_watchdog()
        return True

    def _arm_watchdog(self) -> None:
        """Give the phones up the moment the lease would lapse, whatever the tick is doing
        (a renewal or a look at the nodes may be waiting on a partitioned connection)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        expires = self.lease.expires_at()
        if expires is None or self._closing:
            return
        delay = max(0.0, expires - self.clock())
        self._watchdog = asyncio.get_running_loop().call_later(delay, self._lease_lapsed)

    def _lease_lapsed(self) -> None:
        self._watchdog = None
        if self.lease.holding(self.clock()):
            self._arm_watchdog()  # renewed meanwhile
        else:
            self._fence()

    def _fence(self) -> None:
        """Our lease may lapse now: stop acting as owner at once (nothing relayed to our
        links, nothing written) and end the links without a BYE (a new owner may hold the
        phone's dialog soon); its clients here get OutOfService."""
        if not self.held and not self.mirrored:
            return
        self.fenced += 1
        log.warning(
            "node %s could not renew its lease: giving up %d phones", self.node_id, len(self.held)
        )
        for mac in list(self.held):
            self.held.discard(mac)
            self.releases += 1
            self.spawn(self.phones.release(mac, "this node lost its cluster lease"))
        for mac in list(self.mirrored):
            self._unmirror(mac, "cluster unreachable")
        self.live = frozenset()  # the next good look mirrors again

    async def _look_at_nodes(self) -> None:
        assert self._nodes_kv is not None
        try:
            keys = await asyncio.wait_for(self._nodes_kv.keys(), self.lease.refresh_interval)
        except NoKeysError:
            keys = []
        live = frozenset(n for n in (self.names.node_of_key(k) for k in keys) if n is not None)
        changed = live != self.live
        self.live = live
        if changed:
            log.info("live nodes: %s", ", ".join(sorted(live)))
            for mac in list(self.entries):
                self._reconcile(mac)

    # ------------------------------------------------------------------ claims
    def _claim_orphans(self) -> None:
        entries = {mac: entry for mac, (_rev, entry) in self.entries.items()}
        busy = self.held | self._claiming
        for mac in to_claim(entries, self.live, self.node_id, busy):
            self._claiming.add(mac)
            self.spawn(self._take_over(mac))

    def _claim_registered(self) -> None:
        """Phones registered here whose first claim failed (the store was unreachable):
        again. (Phones the cluster knows are claimed by the rules of :func:`to_claim`.)"""
        for mac in list(self.phones.targets):
            if mac not in self.entries and mac not in self._claiming and mac not in self.held:
                record = self.phones.inventory.get(mac)
                if record is not None and record.enabled:
                    self._claiming.add(mac)
                    self.spawn(self._claim_registration(mac))

    async def _take_over(self, mac: str) -> None:
        """The phone's owner is gone: claim it and link it from the kept registration."""
        try:
            found = self.entries.get(mac)
            if found is None:
                return
            revision, entry = found
            mine = dataclasses.replace(entry, owner=self.node_id, ready=False)
            new = await self._cas(mac, mine, revision)
            if new is None or not self.lease.holding(self.clock()):
                return  # another node was first; or fenced meanwhile: claimed again later
            previous = entry.owner
            self.held.add(mac)
            self.claims += 1
            self._unmirror(mac, f"node {previous} is gone")
            try:
                target = await self._target(mine)
            except Exception as exc:
                log.warning("phone %s: cannot reach %s: %s", mac, mine.contact, exc)
                return  # kept: the lease tick does not retry it, its next REGISTER does
            log.info("phone %s taken over from node %s", mac, previous)
            self.phones.adopt(mac, target, mine.user_agent)
        finally:
            self._claiming.discard(mac)

    async def _target(self, entry: PhoneEntry) -> Target:
        """Where this node reaches a phone that registered with another one: the first hop
        of its Path (an edge proxy), else for UDP the address it registered from (its NAT
        binding, RFC 3581), for TCP/TLS its contact's address."""
        if entry.path:  # the edge holds the phone's flow: the INVITE follows the Path
            hop = route_to(entry.contact, entry.path)
            flow = await self.phones.ua.flow_to(hop.transport, hop.host, hop.port)
            return Target(
                contact=hop.uri, flow=flow, aor=entry.aor, local_host=None, route=hop.route
            )
        if entry.transport == "udp":
            host, port = entry.remote
        else:
            host, port = _hostport(entry.contact, entry.transport)
        flow = await self.phones.ua.flow_to(entry.transport, host, port)
        return Target(contact=entry.contact, flow=flow, aor=entry.aor, local_host=None)

    def may_link(self, mac: str) -> bool:
        """The phone service is about to link ``mac`` (it registered here, or relinks)."""
        if mac in self.held:
            self._binding_changed(mac)
            return True
        found = self.entries.get(mac)
        if found is not None and found[1].owner != self.node_id and found[1].owner in self.live:
            # Its owner is alive: it keeps the phone (a phone registering with two nodes
            # must not move back and forth); it learns the new binding and re-links if
            # the phone is somewhere else now.
            self.spawn(self._share_binding(mac))
            return False
        if mac not in self._claiming:
            self._claiming.add(mac)
            self.spawn(self._claim_registration(mac))
        return False

    async def _share_binding(self, mac: str) -> None:
        found = self.entries.get(mac)
        fresh = self._registered_entry(mac)
        if found is None or fresh is None:
            return
        entry = found[1]
        if (entry.contact, entry.transport, entry.remote, entry.path) == (
            fresh.contact,
            fresh.transport,
            fresh.remote,
            fresh.path,
        ):
            return
        shared = dataclasses.replace(
            entry,
            contact=fresh.contact,
            transport=fresh.transport,
            remote=fresh.remote,
            path=fresh.path,
            user_agent=fresh.user_agent or entry.user_agent,
        )
        if await self._cas(mac, shared, found[0]) is not None:
            log.info("phone %s registered here: its owner %s re-links it", mac, entry.owner)

    def _registered_entry(self, mac: str) -> PhoneEntry | None:
        target = self.phones.targets.get(mac)
        if target is None:
            return None
        record = self.phones.inventory.get(mac)
        return PhoneEntry(
            owner=self.node_id,
            path=target.route,  # an edge proxy's RFC 3327 Path
            contact=target.contact,
            transport=target.flow.transport,
            remote=target.flow.remote,
            aor=target.aor,
            local_host=target.local_host,
            user_agent=record.user_agent if record is not None else None,
        )

    async def _claim_registration(self, mac: str) -> None:
        """The phone registered here: it is ours from now on (a live owner elsewhere sees
        the change and lets it go), then linked."""
        try:
            entry = self._registered_entry(mac)
            if entry is None or not self.lease.holding(self.clock()):
                return
            found = self.entries.get(mac)
            if found is not None and found[1].owner == self.node_id and mac in self.held:
                return
            new = await self._cas(mac, entry, found[0] if found is not None else None)
            if new is None or not self.lease.holding(self.clock()):
                return
            self.held.add(mac)
            self.claims += 1
            self._unmirror(mac, "moved to this node")
            if found is not None and found[1].owner != self.node_id:
                log.info("phone %s registered here: taken over from node %s", mac, found[1].owner)
        finally:
            self._claiming.discard(mac)
        if mac in self.held:
            self.phones.start_link(mac)

    def _binding_changed(self, mac: str) -> None:
        found = self.entries.get(mac)
        fresh = self._registered_entry(mac)
        if found is None or fresh is None:
            return
        entry = found[1]
        if (entry.contact, entry.transport, entry.remote) != (
            fresh.contact,
            fresh.transport,
            fresh.remote,
        ):
            self._write(mac, contact=fresh.contact, transport=fresh.transport, remote=fresh.remote)

    async def _cas(self, mac: str, entry: PhoneEntry, revision: int | None) -> int | None:
        """Write ``entry`` if the key is still at ``revision`` (None: absent); the new
        revision, or None when another node got there first."""
        assert self._phones_kv is not None
        try:
            if revision is None:
                new = await self._phones_kv.create(mac, entry.to_json())
            else:
                new = await self._phones_kv.update(mac, entry.to_json(), last=revision)
        except KeyWrongLastSequenceError:
            log.info("phone %s: another node wrote it first", mac)
            self.spawn(self._reread(mac))  # what we knew is stale: learn what is there
            return None
        except Exception as exc:
            log.warning("phone %s: writing its ownership failed: %s", mac, exc)
            return None
        self._store(mac, new, entry)
        return new

    # ------------------------------------------------------------------ the phones bucket
    async def _watch(self, watcher: Any) -> None:
        try:
            await self._follow(watcher)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()

    async def _follow(self, watcher: Any) -> None:
        while True:
            try:
                entry = await watcher.updates(timeout=3600)
            except asyncio.CancelledError:
                raise
            except Exception:  # a timeout of an idle watch, a reconnect
                await asyncio.sleep(0.1)
                continue
            if entry is None:  # the initial values are in
                continue
            mac = entry.key
            if entry.operation in ("DEL", "PURGE") or entry.value is None:
                self.entries.pop(mac, None)
                self._unmirror(mac, "removed from the cluster")
                continue
            try:
                value = PhoneEntry.from_json(entry.value)
            except (ValueError, KeyError, TypeError):
                log.warning("phone %s: unreadable cluster entry ignored", mac)
                continue
            if self._store(mac, entry.revision, value):
                self._reconcile(mac)

    def _store(self, mac: str, revision: int, entry: PhoneEntry) -> bool:
        """Keep the newest revision only (a watch may deliver after our own write)."""
        known = self.entries.get(mac)
        if known is not None and known[0] >= revision:
            return False
        self.entries[mac] = (revision, entry)
        return True

    def _reconcile(self, mac: str) -> None:
        """Bring this node in line with the phone's entry: let it go if another node owns
        it now, mirror it while its owner is live and has it ready."""
        found = self.entries.get(mac)
        if found is None or self._closing:
            return
        entry = found[1]
        if entry.owner == self.node_id:
            if mac in self.held and mac not in self._relinking and self._moved(mac, entry):
                self._relinking.add(mac)
                self.spawn(self._relink(mac, entry))
            return  # ours (held or being reclaimed by the lease tick)
        if mac in self.held:
            self.held.discard(mac)
            self.releases += 1
            log.info("phone %s now belongs to node %s: link ended here", mac, entry.owner)
            self.spawn(self._release_then_mirror(mac))
            return
        self._mirror(mac)

    def _moved(self, mac: str, entry: PhoneEntry) -> bool:
        """The entry's binding (shared by the node the phone registered with) is not where
        our link reaches the phone."""
        target = self.phones.targets.get(mac)
        if target is None:
            return False
        if entry.contact != target.contact or entry.transport != target.flow.transport:
            return True
        return entry.transport == "udp" and not entry.path and entry.remote != target.flow.remote

    async def _relink(self, mac: str, entry: PhoneEntry) -> None:
        try:
            log.info("phone %s registered at another node: re-linked at %s", mac, entry.contact)
            await self.phones.release(mac, "the phone registered elsewhere")
            target = await self._target(entry)
            if mac in self.held:
                self.phones.adopt(mac, target, entry.user_agent)
        finally:
            self._relinking.discard(mac)

    async def _release_then_mirror(self, mac: str) -> None:
        await self.phones.release(mac, "linked at another node")
        self._mirror(mac)

    def _mirror(self, mac: str) -> None:
        found = self.entries.get(mac)
        if found is None or mac in self.held:
            return
        entry = found[1]
        usable = entry.ready and entry.owner in self.live and entry.owner != self.node_id
        if not usable or not self.lease.holding(self.clock()):
            self._unmirror(mac, f"not linked at node {entry.owner}")
            return
        current = self.mirrored.get(mac)
        if current is not None and current[0] == entry.owner:
            if current[1] != entry.lines:
                self.mirrored[mac] = (entry.owner, entry.lines)
                self.hub.phone_lines_changed(mac, entry.lines, aliases=entry.aliases)
            return
        if current is not None:
            self._unmirror(mac, f"moved to node {entry.owner}")
        identity = detect(entry.user_agent, mac)
        profile = identity.profile
        channel = RemotePhoneChannel(self, mac, entry.owner, profile, identity.firmware)
        self.mirrored[mac] = (entry.owner, entry.lines)
        self.hub.phone_ready(
            mac,
            channel,
            entry.lines,
            services=None,
            emulate_alternate_call=profile.emulate_alternate_call,
            offered=profile.services(identity.firmware),
            aliases=entry.aliases,
            names_releasing_device=profile.names_releasing_device,
            mirrored=True,
        )

    def _unmirror(self, mac: str, reason: str) -> None:
        if mac in self.mirrored:
            # Lost while still mirrored: the owner (or nobody) journals and publishes it.
            self.hub.phone_lost(mac, reason)
            del self.mirrored[mac]

    def _write(self, mac: str, **changes: Any) -> None:
        """Change fields of our phone's entry (compare-and-set on the revision we know):
        changes queued meanwhile are merged, one write at a time per phone."""
        self._to_write.setdefault(mac, {}).update(changes)
        if mac not in self._writing:
            self._writing.add(mac)
            self.spawn(self._writer(mac))

    async def _writer(self, mac: str) -> None:
        try:
            while mac in self._to_write:
                changes = self._to_write.pop(mac)
                for _attempt in range(3):
                    found = self.entries.get(mac)
                    if mac not in self.held or found is None:
                        return
                    if found[1].owner != self.node_id:
                        return  # fenced: _reconcile lets the phone go
                    entry = dataclasses.replace(found[1], **changes)
                    if await self._cas(mac, entry, found[0]) is not None:
                        break
                    # Another node wrote the key (a registration elsewhere shared its
                    # binding, or a claim): read it; still ours, the change is made again.
                    await self._reread(mac)
        finally:
            self._writing.discard(mac)
            self._to_write.pop(mac, None)

    async def _reread(self, mac: str) -> None:
        assert self._phones_kv is not None
        try:
            got = await self._phones_kv.get(mac)
        except Exception as exc:
            log.info("phone %s: reading its entry failed: %s", mac, exc)
            return
        if got.value is not None and got.revision is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                if self._store(mac, got.revision, PhoneEntry.from_json(got.value)):
                    self._reconcile(mac)

    # ------------------------------------------------------------------ the hub's observer
    def is_local(self, phone: str) -> bool:
        return phone not in self.mirrored

    def phone_ready(
        self,
        phone: str,
        channel: PhoneChannel,
        lines: list[str],
        aliases: Mapping[str, Iterable[str]] | None,
    ) -> None:
        self._publish_lines(phone, lines, aliases)

    def phone_lines_changed(
        self, phone: str, lines: list[str], aliases: Mapping[str, Iterable[str]] | None
    ) -> None:
        self._publish_lines(phone, lines, aliases)

    def _publish_lines(
        self, phone: str, lines: list[str], aliases: Mapping[str, Iterable[str]] | None
    ) -> None:
        """Our phone is ready (or its lines changed): the other nodes mirror it."""
        found = self.entries.get(phone)
        if phone in self.held and found is not None:
            self._write(
                phone,
                ready=True,
                lines=tuple(lines),
                aliases={k: tuple(v) for k, v in (aliases or {}).items()},
            )

    def phone_lost(self, phone: str, reason: str) -> None:
        if phone in self.held and phone in self.entries:
            self._write(phone, ready=False)

    def phone_event(self, phone: str, event: m.CstaEvent) -> None:
        nc = self.nc
        if phone not in self.held or nc is None:
            return
        try:
            data = bus.encode_message(event)
        except (TypeError, ValueError):
            return
        self.spawn(nc.publish(self.names.events(phone), data))

    # ------------------------------------------------------------------ the bus
    async def _on_event(self, msg: Msg) -> None:
        if self.names.is_reply(msg.subject):
            self._on_reply(msg)
            return
        mac = self.names.mac_of_event_subject(msg.subject)
        if mac not in self.mirrored:
            return  # ours (our own publication), or not ready here
        try:
            event = bus.decode_message(msg.data)
        except Exception:
            log.warning("unreadable event for %s from the bus ignored", mac)
            return
        if isinstance(event, m.CstaEvent):
            self.hub.phone_event(mac, event)

    def relay(
        self,
        owner: str,
        mac: str,
        request: m.CstaRequest,
        done: Callable[[m.CstaMessage], None],
    ) -> None:
        """Send ``request`` for ``mac`` to its owner; ``done`` gets the answer once, when
        it is read (before the events the phone sent after it), or a CSTA error: no answer
        within the phone's CSTA timeout plus a margin, or the bus is unreachable. Such a
        request is never sent again: its outcome is unknown (a MakeCall must not ring
        twice)."""
        nc = self.nc
        if nc is None or not nc.is_connected:
            done(OUT_OF_SERVICE)
            return
        subject = self.names.reply(self.node_id, next(self._reply_numbers))
        timer = asyncio.get_running_loop().call_later(
            self.request_timeout, self._no_reply, subject, owner, type(request).__name__
        )
        self._replies[subject] = (done, timer)
        self.spawn(self._send_request(nc, owner, subject, bus.encode_request(mac, request)))

    async def _send_request(self, nc: NatsClient, owner: str, reply: str, data: bytes) -> None:
        try:
            await nc.publish(self.names.requests(owner), data, reply=reply)
        except Exception as exc:
            log.info("relaying a request to node %s failed: %s", owner, exc)
            self._settle(reply, OUT_OF_SERVICE)

    def _on_reply(self, msg: Msg) -> None:
        if msg.subject not in self._replies:
            return  # another node's answer (every node reads the evt subjects)
        try:
            answer = bus.decode_message(msg.data)
        except Exception:
            log.warning("unreadable answer from the bus: the request is answered with an error")
            answer = m.CSTAErrorCode.timeout()
        self._settle(msg.subject, answer)

    def _no_reply(self, subject: str, owner: str, service: str) -> None:
        log.info("%s relayed to node %s: no answer in %.1f s", service, owner, self.request_timeout)
        self._settle(subject, m.CSTAErrorCode.timeout())

    def _settle(self, subject: str, answer: m.CstaMessage) -> None:
        waiting = self._replies.pop(subject, None)
        if waiting is None:
            return  # answered already (or timed out): once only
        done, timer = waiting
        timer.cancel()
        try:
            done(answer)
        except Exception:
            log.exception("delivering a relayed answer failed")

    async def _on_request(self, msg: Msg) -> None:
        """Another node's switch relays a request for a phone we own to its link."""
        try:
            mac, request = bus.decode_request(msg.data)
        except Exception:
            log.warning("unreadable relayed request ignored")
            return
        link = self.phones.links.get(mac)
        if mac not in self.held or link is None or not isinstance(request, m.CstaRequest):
            await msg.respond(bus.encode_message(OUT_OF_SERVICE))
            return

        def answered(answer: m.CstaMessage) -> None:
            self.spawn(msg.respond(bus.encode_message(answer)))

        link.csta_request_then(request, answered)


async def _bucket(js: Any, name: str, *, ttl: float | None) -> KeyValue:
    """The bucket, made on first use (two nodes starting at once: the second one finds it)."""
    try:
        kv: KeyValue = await js.key_value(name)
        return kv
    except NotFoundError:
        pass
    from nats.js.api import KeyValueConfig

    try:
        kv = await js.create_key_value(KeyValueConfig(bucket=name, history=1, ttl=ttl))
    except Exception:
        kv = await js.key_value(name)
    return kv


def _hostport(uri: str, transport: str) -> tuple[str, int]:
    from uacsta.net.flow import DEFAULT_PORTS
    from uacsta.sip.uri import SipUri, parse_uri

    parsed = parse_uri(uri.strip("<>"))
    if not isinstance(parsed, SipUri):
        raise ValueError(f"not a SIP URI: {uri}")
    return parsed.host.strip("[]"), parsed.port or DEFAULT_PORTS[transport]
