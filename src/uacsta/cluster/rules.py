"""The cluster's pure rules (sans-IO): the phone record kept in the key-value store, who
should claim an orphaned phone, the node's lease as a clock-driven state machine, and the
cluster-wide call-ID prefix of a phone.

Nothing here reads a clock or touches a socket: ``now`` comes in, decisions come out, so
the rules are tested with a fake clock (``tests/cluster/test_rules.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Characters a node ID may keep: it is a token of NATS subjects and of KV keys.
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def node_token(name: str) -> str:
    """``name`` (a hostname: ``pbx-1.example.com``) as one subject token (``pbx-1_example_com``)."""
    token = "".join(c if c in _ID_CHARS else "_" for c in name.strip())
    return token or "node"


def call_id_prefix(mac: str) -> str:
    """The call-ID prefix of a phone, the same on every node: its MAC (unique per phone,
    never reused for another one, and stable across a move to another node)."""
    return mac.lower().replace(":", "").replace("-", "")


@dataclass(frozen=True, kw_only=True, slots=True)
class PhoneEntry:
    """What the cluster knows of one phone (the value of its key, the MAC, in the phones
    bucket): its owner node, where to reach it (the registration binding) and, while its
    link is up, what the other nodes need to mirror it."""

    owner: str
    #: The registered contact (the INVITE's Request-URI).
    contact: str
    #: The flow it registered on: transport and the source address (the phone behind a NAT
    #: is reached there, RFC 3581), and the host it sent its REGISTER to (our address).
    transport: str
    remote: tuple[str, int]
    aor: str
    local_host: str | None = None
    #: RFC 3327 Path of the registration (an edge proxy in front of the nodes), first hop
    #: first: a new owner sends the INVITE to the first hop.
    path: tuple[str, ...] = ()
    #: Its User-Agent (vendor profile, firmware: what it can do, how it says it).
    user_agent: str | None = None
    #: The link is up at the owner (the lines below are the phone's).
    ready: bool = False
    lines: tuple[str, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "owner": self.owner,
            "contact": self.contact,
            "transport": self.transport,
            "remote": [self.remote[0], self.remote[1]],
            "aor": self.aor,
            "local_host": self.local_host,
            "path": list(self.path),
            "user_agent": self.user_agent,
            "ready": self.ready,
            "lines": list(self.lines),
            "aliases": {k: list(v) for k, v in self.aliases.items()},
        }
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PhoneEntry:
        """Raises ValueError (or KeyError/TypeError) on a value no node wrote."""
        raw = json.loads(data)
        host, port = raw["remote"]
        aliases = raw.get("aliases") or {}
        return cls(
            owner=str(raw["owner"]),
            contact=str(raw["contact"]),
            transport=str(raw["transport"]),
            remote=(str(host), int(port)),
            aor=str(raw["aor"]),
            local_host=raw.get("local_host"),
            path=tuple(str(p) for p in raw.get("path") or ()),
            user_agent=raw.get("user_agent"),
            ready=bool(raw.get("ready", False)),
            lines=tuple(str(line) for line in raw.get("lines") or ()),
            aliases={str(k): tuple(str(a) for a in v) for k, v in aliases.items()},
        )


def rendezvous(mac: str, nodes: Iterable[str]) -> str | None:
    """The node that should own ``mac`` among ``nodes`` (highest random weight): every node
    computes the same answer from the same set, and a node leaving moves only its phones."""
    best: tuple[bytes, str] | None = None
    for node in nodes:
        weight = hashlib.sha256(f"{node}\x00{mac}".encode()).digest()
        if best is None or (weight, node) > best:
            best = (weight, node)
    return best[1] if best is not None else None


def to_claim(
    entries: Mapping[str, PhoneEntry], live: Iterable[str], me: str, held: Iterable[str]
) -> list[str]:
    """The phones this node should claim now: those whose owner's lease is gone and for
    which rendezvous hashing over the live nodes names us, and those the store names us the
    owner of while we hold no link (we were fenced, or restarted, and nobody took them)."""
    alive = frozenset(live) | {me}
    mine = frozenset(held)
    claims = []
    for mac, entry in sorted(entries.items()):
        if entry.owner == me:
            if mac not in mine:
                claims.append(mac)
        elif entry.owner not in alive and rendezvous(mac, alive) == me:
            claims.append(mac)
    return claims


class Lease:
    """This node's lease on its ownership, as seen from here.

    The store forgets the node's key ``lease_seconds`` after its last successful write (the
    bucket's max age, measured by the server). The write reached the server after we sent
    it, so the key lives at least until ``sent + lease_seconds``: we hold while ``now`` is
    before that minus a ``margin`` (clock rates, the time to stop the links), and after it
    we are fenced: another node may already claim our phones. Time is the caller's
    monotonic clock, passed in."""

    def __init__(self, lease_seconds: float, *, margin: float = 0.25) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.lease_seconds = lease_seconds
        self.margin = margin
        #: When the last write that succeeded was sent (None: never).
        self.confirmed_at: float | None = None

    @property
    def refresh_interval(self) -> float:
        """How often to rewrite the key: three tries before it lapses."""
        return self.lease_seconds / 3

    def confirmed(self, sent_at: float) -> None:
        """The write sent at ``sent_at`` succeeded."""
        if self.confirmed_at is None or sent_at > self.confirmed_at:
            self.confirmed_at = sent_at

    def expires_at(self) -> float | None:
        """When we stop holding (None: we never held)."""
        if self.confirmed_at is None:
            return None
        return self.confirmed_at + self.lease_seconds * (1.0 - self.margin)

    def holding(self, now: float) -> bool:
        expires = self.expires_at()
        return expires is not None and now < expires
