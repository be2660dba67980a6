"""Registrar bindings, sans-IO (RFC 3261 §10.3; expiry §10.2.1.1, §20.19; 423 §10.3 step 7;
Path, RFC 3327).

This module owns the binding store: for each address of record (AOR) the Contact URIs a
user agent registered, when each expires, the Call-ID/CSeq that last touched it (ordering
per §10.3 step 7) and the opaque *flow token* of the transport flow the REGISTER came on,
so that requests to a phone can go back over the connection it registered on (the same
idea as RFC 5626 flows, without its extensions).

Path (RFC 3327): an edge proxy in front of the registrar (Kamailio) adds a Path header to
the REGISTER; the binding keeps the Path values, the 200 OK echoes them when the UA said
``Supported: path`` (§5.3), and a request to the bound contact outside a dialog carries them
as its Route set and goes to the first of them (:func:`route_to`, §5.3 with RFC 3261 §8.1.2
and §16.12 loose routing: the Request-URI stays the contact).

Authentication and authorization (§10.3 steps 3-4) are the caller's job, done with
:mod:`uacsta.sip.digest` before :meth:`Registrar.process_register` is called. Time is
always an argument (``now``, seconds on any monotonic clock); nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from uacsta.sip.errors import SipParseError
from uacsta.sip.helpers import build_response, reason_phrase
from uacsta.sip.message import Request, Response
from uacsta.sip.uri import NameAddr, SipUri, parse_name_addr, parse_uri

__all__ = [
    "Binding",
    "RegisterResult",
    "Registrar",
    "RegistrarPolicy",
    "RouteTo",
    "contact_key",
    "route_to",
]

#: Option tags a REGISTER may require of us (§10.3 step 2; RFC 3327 §5.3).
SUPPORTED = frozenset({"path"})

# §20.19 / §10.2.1.1: a value larger than 2**32-1 is taken as 2**32-1.
_MAX_DELTA = 2**32 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrarPolicy:
    """Expiry and size limits (seconds). ``max_expires`` is the server-suggested clamp."""

    default_expires: int = 3600
    min_expires: int = 60
    max_expires: int = 7200
    max_bindings_per_aor: int = 10
    # None: any domain; otherwise the Request-URI host must be one of these (§10.3 step 1).
    domains: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if self.max_bindings_per_aor < 1:
            raise ValueError("max_bindings_per_aor must be at least 1")


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """One registered contact of an AOR. ``flow`` is the caller's opaque flow token."""

    aor: str
    contact: NameAddr
    expires_at: float
    call_id: str
    cseq: int
    flow: Hashable | None = None
    registered_at: float = 0.0
    user_agent: str | None = None
    #: The REGISTER's Path values in order (RFC 3327): the Route set of requests to it.
    path: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return contact_key(self.contact)

    @property
    def q(self) -> float:
        value = self.contact.param("q")
        try:
            return float(value) if value else 1.0
        except ValueError:
            return 1.0

    def expires_in(self, now: float) -> int:
        """Whole seconds left (rounded), never negative."""
        return max(0, math.floor(self.expires_at - now + 0.5))

    def contact_header(self, now: float) -> str:
        """The Contact value a 200 OK lists for this binding, with its ``expires``."""
        return str(self.contact.with_param("expires", str(self.expires_in(now))))


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterResult:
    """Outcome of a REGISTER: status, the headers to put in the response, and the changes.

    ``headers`` holds Contact (one per current binding, with ``expires``), Expires (when the
    request registered contacts), Min-Expires for 423, Unsupported for 420.
    """

    status_code: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    aor: str | None = None
    bindings: tuple[Binding, ...] = ()
    added: tuple[Binding, ...] = ()
    refreshed: tuple[Binding, ...] = ()
    removed: tuple[Binding, ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    def response(self, request: Request, *, to_tag: str | None = None) -> Response:
        """The response to ``request`` carrying this result (§10.3 step 8)."""
        return build_response(
            request, self.status_code, self.reason, to_tag=to_tag, headers=self.headers
        )


def contact_key(contact: NameAddr) -> str:
    """Comparison key of a Contact URI (§19.1.4, simplified).

    Scheme and host compare case-insensitively, user and password case-sensitively; URI
    parameters compare by lower-cased name in any order. Header parameters (``expires``,
    ``q``) are not part of the URI and do not make a different binding.
    """
    uri = contact.uri
    if not isinstance(uri, SipUri):
        return str(uri)
    params = ";".join(sorted(f"{k.lower()}={(v or '').lower()}" for k, v in uri.params))
    password = f":{uri.password}" if uri.password is not None else ""
    user = f"{uri.user}{password}@" if uri.user is not None else ""
    port = f":{uri.port}" if uri.port is not None else ""
    return f"{uri.scheme.lower()}:{user}{uri.host.lower()}{port};{params}"


def _fail(
    status: int, reason: str | None = None, *, headers: tuple[tuple[str, str], ...] = ()
) -> RegisterResult:
    return RegisterResult(
        status_code=status,
        reason=reason or reason_phrase(status),
        headers=headers,
    )


@dataclass(slots=True)
class _Change:
    contact: NameAddr
    key: str
    expires: int
    existing: Binding | None


@dataclass(slots=True)
class Registrar:
    """The binding store. Not thread-safe; one instance per server."""

    policy: RegistrarPolicy = field(default_factory=RegistrarPolicy)
    _aors: dict[str, dict[str, Binding]] = field(default_factory=dict)
    #: (expires_at, seq, aor, contact key) per binding written; entries whose binding has
    #: gone or been refreshed are skipped when they come up (lazy deletion).
    _expiry: list[tuple[float, int, str, str]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    # --- queries -------------------------------------------------------------------------
    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Live bindings of an AOR, best first (highest q, then most recently registered)."""
        live = [b for b in self._aors.get(aor, {}).values() if b.expires_at > now]
        live.sort(key=lambda b: (-b.q, -b.registered_at))
        return live

    def all_bindings(self) -> list[Binding]:
        return [b for contacts in self._aors.values() for b in contacts.values()]

    def bindings_for_flow(self, flow: Hashable) -> list[Binding]:
        return [b for b in self.all_bindings() if b.flow == flow]

    def __len__(self) -> int:
        return sum(len(c) for c in self._aors.values())

    def bound(self, aor: str) -> bool:
        """Whether ``aor`` has bindings still in the store (expired ones not yet removed
        count: :meth:`handle_timer` removes them)."""
        return aor in self._aors

    # --- timers --------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """When the next binding expires (call :meth:`handle_timer` then), or None."""
        heap = self._expiry
        while heap:
            expires_at, _, aor, key = heap[0]
            binding = self._aors.get(aor, {}).get(key)
            if binding is not None and binding.expires_at == expires_at:
                return expires_at
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> list[Binding]:
        """Remove and return the bindings whose expiry time has passed (O(log n) each)."""
        expired: list[Binding] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            expires_at, _, aor, key = heapq.heappop(heap)
            contacts = self._aors.get(aor)
            binding = contacts.get(key) if contacts is not None else None
            if binding is None or binding.expires_at != expires_at:
                continue
            assert contacts is not None
            expired.append(contacts.pop(key))
            if not contacts:
                del self._aors[aor]
        if len(heap) > 2 * len(self) + 64:
            self._expiry = [
                (b.expires_at, next(self._seq), aor, key)
                for aor, contacts in self._aors.items()
                for key, b in contacts.items()
            ]
            heapq.heapify(self._expiry)
        return expired

    def expire(self, now: float) -> list[Binding]:
        """Remove and return every binding whose expiry time has passed."""
        return self._remove_where(lambda b: b.expires_at <= now)

    def remove_flow(self, flow: Hashable) -> list[Binding]:
        """Remove and return the bindings registered over ``flow`` (its connection died)."""
        return self._remove_where(lambda b: b.flow == flow)

    def remove_flow_of(self, aor: str, flow: Hashable) -> list[Binding]:
        """:meth:`remove_flow` for one AOR whose owner is known."""
        return self._remove_in(aor, lambda b: b.flow == flow)

    def _remove_in(self, aor: str, pred: Callable[[Binding], bool]) -> list[Binding]:
        contacts = self._aors.get(aor)
        if contacts is None:
            return []
        removed = [contacts.pop(k) for k, b in list(contacts.items()) if pred(b)]
        if not contacts:
            del self._aors[aor]
        return removed

    def _remove_where(self, pred: Callable[[Binding], bool]) -> list[Binding]:
        removed: list[Binding] = []
        for aor in list(self._aors):
            contacts = self._aors[aor]
            for key in [k for k, b in contacts.items() if pred(b)]:
                removed.append(contacts.pop(key))
            if not contacts:
                del self._aors[aor]
        return removed

    # --- REGISTER ------------------------------------------------------------------------
    def process_register(
        self, request: Request, now: float, flow_token: Hashable | None = None
    ) -> RegisterResult:
        """Apply a REGISTER (already authenticated) per §10.3 steps 1, 2 and 5-8.

        The request is applied atomically: either every contact is processed or none.
        """
        if request.method != "REGISTER":
            raise ValueError("process_register needs a REGISTER request")
        policy = self.policy
        try:
            to = request.to
            call_id = request.call_id
            cseq = request.cseq.seq
        except SipParseError as exc:
            return _fail(400, str(exc)[:80] or None)

        # Step 1: the Request-URI names a domain we are responsible for.
        if policy.domains is not None:
            host = _request_uri_host(request.uri)
            if host is None or host.lower() not in policy.domains:
                return _fail(404, "Domain Not Served")

        # Step 2: of the extensions a registrar can be required to support, Path only.
        unsupported = [t for t in _option_tags(request, "Require") if t.lower() not in SUPPORTED]
        if unsupported:
            return _fail(420, headers=tuple(("Unsupported", tag) for tag in unsupported))
        # RFC 3327 §5.3: stored whether or not the UA supports it (the edge needs it to reach
        # the phone), echoed only to a UA that said it does.
        path = tuple(request.header_values("Path"))
        try:
            for hop in path:
                parse_name_addr(hop)
        except SipParseError:
            return _fail(400, "Bad Path")
        echo_path = path if _supports_path(request) else ()

        # Step 5: the AOR from To.
        if not isinstance(to.uri, SipUri):
            return _fail(404, "Address Not Supported")
        aor = to.uri.aor

        contacts_raw = request.header_values("Contact")
        header_expires = _delta(request.header("Expires"))
        if request.header("Expires") is not None and header_expires is None:
            return _fail(400, "Bad Expires")

        current = self._aors.get(aor, {})

        # Step 6: Contact: * removes every binding (Expires must be 0, no other contact).
        if "*" in contacts_raw:
            if len(contacts_raw) != 1 or header_expires != 0:
                return _fail(400, "Invalid Wildcard Contact")
            removed: list[Binding] = []
            for key, binding in list(current.items()):
                if binding.call_id == call_id and cseq <= binding.cseq:
                    return _fail(500, "Out of Order CSeq")
                removed.append(binding)
                del current[key]
            if not current:
                self._aors.pop(aor, None)
            return self._ok(aor, now, registered=None, removed=removed, path=echo_path)

        try:
            contacts = [parse_name_addr(v) for v in contacts_raw]
        except SipParseError:
            return _fail(400, "Bad Contact")

        # Step 7, first pass: validate everything before changing anything.
        changes: list[_Change] = []
        for contact in contacts:
            param = contact.param("expires")
            if param is not None:
                expires = _delta(param)
                if expires is None:
                    return _fail(400, "Bad Contact Expires")
            elif header_expires is not None:
                expires = header_expires
            else:
                expires = policy.default_expires
            if expires != 0:
                if expires < policy.min_expires:
                    return _fail(423, headers=(("Min-Expires", str(policy.min_expires)),))
                expires = min(expires, policy.max_expires)
            key = contact_key(contact)
            existing = current.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                return _fail(500, "Out of Order CSeq")
            changes.append(_Change(contact=contact, key=key, expires=expires, existing=existing))

        new_keys = {c.key for c in changes if c.expires and c.existing is None}
        if len(current) + len(new_keys) > policy.max_bindings_per_aor:
            return _fail(403, "Too Many Contacts")

        # Second pass: apply.
        user_agent = request.header("User-Agent")
        added: list[Binding] = []
        refreshed: list[Binding] = []
        removed = []
        for change in changes:
            if change.expires == 0:
                old = current.pop(change.key, None)
                if old is not None:
                    removed.append(old)
                continue
            binding = Binding(
                aor=aor,
                contact=_strip_header_params(change.contact),
                expires_at=now + change.expires,
                call_id=call_id,
                cseq=cseq,
                flow=flow_token,
                registered_at=now,
                user_agent=user_agent,
                path=path,
            )
            current[change.key] = binding
            heapq.heappush(self._expiry, (binding.expires_at, next(self._seq), aor, change.key))
            (refreshed if change.existing is not None else added).append(binding)
        if current:
            self._aors[aor] = current
        else:
            self._aors.pop(aor, None)
        first = next((c.expires for c in changes), None)
        return self._ok(
            aor,
            now,
            registered=first,
            added=added,
            refreshed=refreshed,
            removed=removed,
            path=echo_path,
        )

    def _ok(
        self,
        aor: str,
        now: float,
        *,
        registered: int | None,
        added: Iterable[Binding] = (),
        refreshed: Iterable[Binding] = (),
        removed: Iterable[Binding] = (),
        path: tuple[str, ...] = (),
    ) -> RegisterResult:
        live = self.lookup(aor, now)
        headers = [("Contact", b.contact_header(now)) for b in live]
        if registered is not None:
            headers.append(("Expires", str(registered)))
        headers.extend(("Path", hop) for hop in path)  # RFC 3327 §5.3, in the same order
        return RegisterResult(
            status_code=200,
            reason="OK",
            headers=tuple(headers),
            aor=aor,
            bindings=tuple(live),
            added=tuple(added),
            refreshed=tuple(refreshed),
            removed=tuple(removed),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteTo:
    """Where a request to a registered contact goes outside a dialog.

    ``uri`` is the Request-URI (the contact), ``route`` the Route values (the binding's
    Path, in order), and ``transport``/``host``/``port`` the next hop: the first Route's
    address when there is one, else the contact's (RFC 3261 §8.1.2, §18.1.1; a URI without
    a port means 5060, or 5061 for ``sips`` and TLS; without ``transport``, UDP, or TLS for
    ``sips``).
    """

    uri: str
    route: tuple[str, ...]
    transport: str
    host: str
    port: int


def route_to(contact: str, path: Iterable[str] = ()) -> RouteTo:
    """The Request-URI, Route set and next hop of a request to ``contact`` registered with
    ``path`` (RFC 3327 §5.3: the Path becomes the Route set; loose routing, §16.12, keeps the
    contact as Request-URI). Raises :class:`SipParseError` for a URI that names no host."""
    route = tuple(path)
    hop = parse_name_addr(route[0]).uri if route else parse_uri(contact)
    if not isinstance(hop, SipUri):
        raise SipParseError(f"not a SIP URI: {hop}")
    secure = hop.scheme.lower() == "sips"
    transport = (hop.transport or ("TLS" if secure else "UDP")).lower()
    if secure and transport == "tcp":
        transport = "tls"
    port = hop.port or (5061 if transport == "tls" else 5060)
    return RouteTo(
        uri=contact, route=route, transport=transport, host=hop.host.strip("[]"), port=port
    )


def _option_tags(request: Request, name: str) -> list[str]:
    """The option tags of a Supported/Require header, however the values were written."""
    return [t.strip() for v in request.header_values(name) for t in v.split(",") if t.strip()]


def _supports_path(request: Request) -> bool:
    tags = (*_option_tags(request, "Supported"), *_option_tags(request, "Require"))
    return any(t.lower() == "path" for t in tags)


def _delta(value: str | None) -> int | None:
    """delta-seconds (§25.1), clamped to 2**32-1; None when absent or malformed."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        return None
    return _MAX_DELTA if len(value) > 10 else min(int(value), _MAX_DELTA)


def _strip_header_params(contact: NameAddr) -> NameAddr:
    """The stored contact keeps its URI and parameters except ``expires`` (re-added live)."""
    params = tuple((k, v) for k, v in contact.params if k.lower() != "expires")
    return NameAddr(uri=contact.uri, display_name=contact.display_name, params=params)


def _request_uri_host(uri: str) -> str | None:
    try:
        parsed = parse_uri(uri)
    except SipParseError:
        return None
    return parsed.host if isinstance(parsed, SipUri) else None
