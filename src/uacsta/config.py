"""Settings: the one source of truth for every listener, timer and credential.

Order of precedence: defaults < TOML file (``--config``) < ``UACSTA_<SECTION>__<KEY>`` environment
variables (e.g. ``UACSTA_PHONES__PASSWORD=secret``, lists comma-separated) < explicit overrides
from the command line. Unknown keys and wrong types are errors that name the offending key, so
a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key and what to fix."""


@dataclass
class PhoneSettings:
    """Phone connection (estos manual §3.2, §3.6)."""

    listen: list[str] = field(
        default_factory=lambda: ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060", "tls:0.0.0.0:5061"]
    )
    password: str = "change-me"
    #: Per-phone password overrides, keyed by MAC (any notation).
    passwords: dict[str, str] = field(default_factory=dict)
    realm: str = "uacsta"
    #: Digest algorithms offered, one WWW-Authenticate each, in this order. MD5 first: most
    #: desk-phone firmwares, SIPp and PJSIP < 2.10 read only the first challenge and know
    #: only MD5; phones that prefer SHA-256 pick it from the second. ["SHA-256", "MD5"]
    #: (RFC 8760's order) locks such phones out.
    digest_algorithms: list[str] = field(default_factory=lambda: ["MD5", "SHA-256"])
    auto_activate: bool = True
    registration_expires: int = 300
    keepalive_interval: int = 60
    session_expires: int = 1800
    csta_timeout: float = 5.0
    relink_backoff: float = 5.0
    #: A link that fails again for the same reason (a phone answering MonitorStart with
    #: garbage on every relink) is retried after twice the last delay, up to this.
    relink_backoff_max: float = 300.0
    #: Phones whose CSTA link is being set up at one time (INVITE, SystemRegister, lines);
    #: more wait their turn. After a power cut thousands register at once: set-ups in
    #: parallel beyond what the phones and the server answer within SIP's 500 ms first
    #: retransmission only add retransmissions and memory.
    max_parallel_setups: int = 200
    #: TCP/TLS connections from phones in total, and from one address (phones behind one NAT).
    max_connections: int = 20000
    max_connections_per_address: int = 256
    #: SIP messages per second one phone may send (per TCP/TLS connection, per UDP source
    #: address and port), with bursts of ``message_burst``; 0: no limit. Over it, datagrams
    #: are dropped and a connection is not read for a moment (TCP back-pressure), so one
    #: flooding phone cannot stall the server for everyone else.
    max_messages_per_second: float = 100.0
    message_burst: int = 200
    #: Wrong REGISTERs from one address naming one phone before that address is blocked
    #: for that phone for ``block_time`` s (doubling per new block, up to an hour).
    max_auth_failures: int = 10
    #: Wrong REGISTERs from one address over all phones before the address is blocked
    #: (phones that registered from it before are not: a NAT's other phones keep working).
    max_source_failures: int = 50
    #: Wrong REGISTERs naming one phone from all addresses before the phone's account is
    #: blocked for every address except those it registered from before.
    max_account_failures: int = 20
    block_time: float = 60.0
    #: SIP edge proxies (addresses or networks, e.g. Kamailio in front of several nodes):
    #: for a request from one of them the phone's address is the one in the phone's own Via
    #: (``received``/``rport`` the edge added), for the nonces and the login throttle; empty:
    #: none, the source address is the phone's (no Via can pick a new one). Their flows are
    #: not held to ``max_messages_per_second`` (one flow carries many phones). docs/edge.md
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass
class ClientAccount:
    name: str = "cti"
    password: str = "change-me"
    #: Devices this account may monitor and control; empty means all.
    devices: list[str] = field(default_factory=list)


@dataclass
class ClientSettings:
    """Client connection: uaCSTA over SIP (TR/87) and CSTA XML over TCP (ECMA-323 Annex J)."""

    sip_listen: list[str] = field(default_factory=lambda: ["tcp:0.0.0.0:5062", "tls:0.0.0.0:5063"])
    csta_listen: list[str] = field(default_factory=lambda: ["tcp:0.0.0.0:8882", "tls:0.0.0.0:8883"])
    require_authentication: bool = True
    session_duration: int = 180
    max_session_duration: int = 3600
    #: Digest algorithms offered to TR/87 clients, in order (see phones.digest_algorithms).
    digest_algorithms: list[str] = field(default_factory=lambda: ["MD5", "SHA-256"])
    #: Wrong logins (CSTA over TCP, TR/87, shared) from one address naming one account before
    #: that address is blocked for that account for ``block_time`` s (doubling, up to an hour).
    max_auth_failures: int = 10
    #: Wrong logins from one address over all accounts before the address is blocked
    #: (except for accounts that logged in from it before).
    max_source_failures: int = 30
    #: Wrong logins naming one account from all addresses before the account is blocked for
    #: every address except those it logged in from before.
    max_account_failures: int = 20
    block_time: float = 60.0
    #: CSTA-over-TCP connections in total and from one address; requests in flight per client.
    max_connections: int = 1000
    max_connections_per_address: int = 64
    max_pending_requests: int = 64
    #: Bytes waiting to be sent to one CSTA-over-TCP client (beyond what the kernel took)
    #: before the client counts as not reading and its session is closed.
    max_output_buffer: int = 4 * 1024 * 1024
    #: Monitors one client may hold at a time, over every gateway (CSTA over TCP, TR/87,
    #: WebSocket); MonitorStart beyond it gets systemResourceAvailability /
    #: overallMonitorLimitExceeded.
    max_monitors: int = 20000
    #: CSTA-over-TCP connections that receive nothing this long are closed (s); above
    #: max_session_duration, since a client in session resets its timer before that.
    idle_timeout: float = 3900.0
    accounts: list[ClientAccount] = field(default_factory=lambda: [ClientAccount()])


@dataclass
class StoreSettings:
    path: str = "./data"
    #: SQLAlchemy URL; empty means SQLite in ``path``.
    url: str = ""

    @property
    def database_url(self) -> str:
        return self.url or f"sqlite:///{Path(self.path).resolve() / 'uacsta.db'}"


@dataclass
class TlsSettings:
    certificate: str = ""
    private_key: str = ""


@dataclass
class HttpSettings:
    listen: str = "tcp:0.0.0.0:8080"
    #: Connections in total and from one address (browsers open about six each).
    max_connections: int = 2000
    max_connections_per_address: int = 256
    #: A request head (line and headers) must arrive within this many seconds of the
    #: connection or of the previous response, a request body within ``body_timeout``.
    head_timeout: float = 10.0
    body_timeout: float = 60.0
    #: Request bodies (JSON API, logins); larger ones get 413 before they are read.
    max_body_bytes: int = 64 * 1024
    #: Bodies of the web admin's forms (logged-in administrators only).
    max_admin_body_bytes: int = 1024 * 1024
    #: Web client (/client/) logins: wrong passwords from one address for one extension
    #: before that address is refused (429) for that extension for ``client_login_block_time``
    #: s (doubling, up to an hour); from one address over all extensions; for one extension
    #: from all addresses (addresses it logged in from before are not held by the last two).
    client_login_max_failures: int = 5
    client_login_max_source_failures: int = 20
    client_login_max_account_failures: int = 10
    client_login_block_time: float = 60.0
    #: Admin (/admin/) logins, the same three limits per user name and the block time.
    admin_login_max_failures: int = 5
    admin_login_max_source_failures: int = 20
    admin_login_max_account_failures: int = 10
    admin_login_block_time: float = 60.0
    #: Reverse proxies (addresses or networks) whose ``X-Forwarded-For``/``-Proto`` are
    #: believed; empty: none, the TCP peer is the client (no header can pick a new source).
    trusted_proxies: list[str] = field(default_factory=list)
    #: Lifetime of a web session (admin, web client) from its login, in seconds; sessions live
    #: on the server and end at logout, password change or reset, and user deletion.
    session_lifetime: float = 12 * 3600.0
    #: Web sessions one user keeps at a time (a new login ends the oldest beyond this).
    max_sessions_per_user: int = 20


@dataclass
class ConnectionSettings:
    """Every TCP/TLS listener (phones, clients, web): admitted at accept, before TLS."""

    #: TLS handshake plus the first bytes of the peer must arrive within this (seconds).
    handshake_timeout: float = 10.0
    #: Open files kept free of inbound connections (database, logs, listeners, connections
    #: the server opens): the listener kinds' totals are scaled down to fit the rest.
    reserve_files: int = 256
    #: Raise the soft open-files limit (RLIMIT_NOFILE) to the hard limit at start-up.
    raise_files_limit: bool = True


@dataclass
class ProvisioningSettings:
    """Configuration files for phones (estos manual §3.5.1), served at ``/provisioning/``."""

    #: Provisioning secret; empty: endpoint off. Each phone logs in with HTTP Basic, its MAC as
    #: user name and a password derived from this secret (shown per phone in the admin), so one
    #: phone's login never opens another phone's file. A new secret replaces every login.
    password: str = ""
    #: The shared login of old (``user`` / ``password``): off by default; when on it fetches
    #: only files holding the common ``phones.password`` (never a per-phone password).
    user: str = "provision"
    allow_shared_login: bool = False
    #: Files only for phones of the inventory and these MACs (any notation)...
    approved_macs: list[str] = field(default_factory=list)
    #: ...or for any MAC when on (a lab; anyone who can guess a login then gets a file).
    auto_approve_unknown: bool = False
    #: Address phones register to; empty: the local address the phone's HTTP request reached
    #: (never the request's Host header).
    server_host: str = ""
    #: Transport phones use: udp, tcp or tls (must be among phones.listen).
    transport: str = "tcp"
    #: Wrong logins from one source address before it is refused (429) for ``block_time`` s,
    #: doubling for each new block (up to an hour).
    max_auth_failures: int = 10
    block_time: float = 60.0


@dataclass
class LogSettings:
    level: str = "INFO"
    directory: str = ""
    max_file_size: int = 10 * 1024 * 1024
    delete_daily: bool = False
    mac_filter: list[str] = field(default_factory=list)
    #: Last SIP/CSTA messages kept per phone for the web admin's ladder (memory per phone).
    trace_messages: int = 64
    #: Log lines strangers can trigger (refused logins, over-limit peers): at most this many
    #: per kind and source in ``rate_limit_interval`` seconds, then one "suppressed" line;
    #: ten times as many over all sources together.
    rate_limit_lines: int = 5
    rate_limit_interval: float = 60.0


@dataclass
class JournalSettings:
    """The call journal: one row per call per line, in the store (``/api/v1/journal``)."""

    #: The server keeps its own monitor on every line, so the journal has the calls of lines
    #: no client monitors too; off: no such monitors, only calls clients' monitors see.
    enabled: bool = True
    #: Days a journal row is kept; older rows are deleted at start and daily (0: forever).
    retention_days: int = 90


@dataclass
class WebhookSettings:
    """Webhook delivery (docs/webhooks.md): endpoints are configured in the admin or the API."""

    #: Seconds to wait for a receiver's answer to one POST.
    timeout: float = 10.0
    #: Retries: ``retry_initial`` s after the first failure, doubling each time (with jitter),
    #: at most ``retry_max`` s apart; a delivery not made within ``give_up_after`` s of its
    #: event is marked failed.
    retry_initial: float = 5.0
    retry_max: float = 3600.0
    give_up_after: float = 24 * 3600.0
    #: Deliveries in flight at once, over all endpoints and to one endpoint.
    max_concurrency: int = 16
    max_per_endpoint: int = 4
    #: Events held in memory while the database cannot take them (the oldest go first).
    queue_size: int = 10000
    #: Delivered and failed deliveries are kept this many days for the admin, then purged.
    keep_days: float = 7.0


@dataclass
class ClusterSettings:
    """Several nodes as one switching function (docs/cluster.md), over NATS with JetStream."""

    #: NATS server(s), comma-separated (``nats://10.0.0.5:4222``); empty: this node alone.
    nats_url: str = ""
    #: This node's name in the cluster; empty: the host name.
    node_id: str = ""
    #: Nodes of one cluster share this name (subjects and key-value buckets are named by it).
    name: str = "uacsta"
    #: A node silent this long (s) is gone: its phones move to the others. A node that could
    #: not renew its lease for about this long gives its phones up.
    lease_seconds: float = 10.0


@dataclass
class Settings:
    phones: PhoneSettings = field(default_factory=PhoneSettings)
    clients: ClientSettings = field(default_factory=ClientSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    provisioning: ProvisioningSettings = field(default_factory=ProvisioningSettings)
    log: LogSettings = field(default_factory=LogSettings)
    connections: ConnectionSettings = field(default_factory=ConnectionSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {str(k): _coerce(v, item, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return _build(hint, value, key)
    if isinstance(hint, types.UnionType):  # pragma: no cover - no optional settings yet
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _build(cls: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(sorted(_key(prefix, u) for u in unknown))}; "
            f"known in [{prefix or 'top level'}]: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], _key(prefix, k)) for k, v in data.items()}
    return cls(**kwargs)


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge of nested settings tables (``extra`` wins)."""
    out = dict(base)
    for key, value in extra.items():
        if value is None:  # a change that removes an entry (a per-phone password...)
            out.pop(key, None)
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("UACSTA_") or "__" not in name:
            continue
        section, _, key = name[len("UACSTA_") :].lower().partition("__")
        out.setdefault(section, {})[key] = value
    return out


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, a TOML file, the environment and overrides."""
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {p} is not valid TOML: {exc}") from None
    data = merge(data, _env_overrides(os.environ if env is None else env))
    if overrides:
        data = merge(data, overrides)
    settings: Settings = _build(Settings, data, "")
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    from uacsta.net.address import parse_listen_address  # adapters own address syntax

    for key, addresses in (
        ("phones.listen", settings.phones.listen),
        ("clients.sip_listen", settings.clients.sip_listen),
        ("clients.csta_listen", settings.clients.csta_listen),
        ("http.listen", [settings.http.listen]),
    ):
        for address in addresses:
            try:
                parse_listen_address(address)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
    for key, proxies in (
        ("http.trusted_proxies", settings.http.trusted_proxies),
        ("phones.trusted_proxies", settings.phones.trusted_proxies),
    ):
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy)  # strict: uvicorn ignores "10.0.0.1/8" silently
            except ValueError:
                raise ConfigError(
                    f"{key}: {proxy!r} is not an IP address or network "
                    "(a network without host bits, e.g. 10.0.0.0/8)"
                ) from None
    if settings.http.session_lifetime < 60:
        raise ConfigError("http.session_lifetime: must be at least 60 seconds")
    if settings.http.max_sessions_per_user < 1:
        raise ConfigError("http.max_sessions_per_user: must be at least 1")
    p = settings.phones
    if p.registration_expires < 30:
        raise ConfigError("phones.registration_expires: must be at least 30 seconds")
    if p.keepalive_interval <= 0:
        raise ConfigError("phones.keepalive_interval: must be positive")
    if p.max_parallel_setups < 1:
        raise ConfigError("phones.max_parallel_setups: must be at least 1")
    if p.session_expires < 90:
        raise ConfigError("phones.session_expires: RFC 4028 requires at least 90 seconds")
    if not p.password:
        raise ConfigError("phones.password: must not be empty")
    known = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
    for key, algorithms in (
        ("phones.digest_algorithms", p.digest_algorithms),
        ("clients.digest_algorithms", settings.clients.digest_algorithms),
    ):
        bad = [a for a in algorithms if a not in known]
        if bad or not algorithms or len(set(algorithms)) != len(algorithms):
            raise ConfigError(f"{key}: choose from {', '.join(known)} (each once)")
    for section, limits in (("phones", p), ("clients", settings.clients)):
        for name in ("max_auth_failures", "max_source_failures", "max_account_failures"):
            if getattr(limits, name) < 1:
                raise ConfigError(f"{section}.{name}: must be at least 1")
    if settings.provisioning.transport not in ("udp", "tcp", "tls"):
        raise ConfigError("provisioning.transport: one of udp, tcp, tls")
    if settings.log.rate_limit_lines < 1 or settings.log.rate_limit_interval <= 0:
        raise ConfigError("log.rate_limit_lines / rate_limit_interval: must be positive")
    h = settings.http
    for key, value in (
        ("http.max_connections", h.max_connections),
        ("http.max_connections_per_address", h.max_connections_per_address),
        ("http.max_body_bytes", h.max_body_bytes),
        ("http.max_admin_body_bytes", h.max_admin_body_bytes),
        ("phones.max_connections", p.max_connections),
        ("phones.max_connections_per_address", p.max_connections_per_address),
        ("phones.message_burst", p.message_burst),
        ("clients.max_connections", settings.clients.max_connections),
        ("clients.max_connections_per_address", settings.clients.max_connections_per_address),
        ("clients.max_monitors", settings.clients.max_monitors),
        ("clients.max_output_buffer", settings.clients.max_output_buffer),
    ):
        if value < 1:
            raise ConfigError(f"{key}: must be at least 1")
    for key, seconds in (
        ("http.head_timeout", h.head_timeout),
        ("http.body_timeout", h.body_timeout),
        ("clients.idle_timeout", settings.clients.idle_timeout),
        ("clients.session_duration", settings.clients.session_duration),
        ("clients.max_session_duration", settings.clients.max_session_duration),
        ("connections.handshake_timeout", settings.connections.handshake_timeout),
    ):
        if seconds <= 0:
            raise ConfigError(f"{key}: must be positive")
    if p.max_messages_per_second < 0 or settings.connections.reserve_files < 0:
        raise ConfigError("phones.max_messages_per_second / connections.reserve_files: >= 0")
    if settings.journal.retention_days < 0:
        raise ConfigError("journal.retention_days: must be 0 (keep forever) or more days")
    w = settings.webhooks
    if w.timeout <= 0 or w.retry_initial <= 0 or w.retry_max < w.retry_initial:
        raise ConfigError("webhooks.timeout / retry_initial / retry_max: positive, max >= initial")
    if w.give_up_after <= 0 or w.keep_days <= 0:
        raise ConfigError("webhooks.give_up_after / keep_days: must be positive")
    if w.max_concurrency < 1 or w.max_per_endpoint < 1 or w.queue_size < 1:
        raise ConfigError("webhooks.max_concurrency / max_per_endpoint / queue_size: at least 1")
    c = settings.cluster
    if c.lease_seconds < 1:
        raise ConfigError("cluster.lease_seconds: at least 1 second")
    if c.name and not all(ch.isalnum() or ch in "-_" for ch in c.name):
        raise ConfigError("cluster.name: letters, digits, '-' and '_' only")
    if settings.log.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log.level: one of DEBUG, INFO, WARNING, ERROR")


def settings_to_dict(settings: Settings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def apply_changes(settings: Settings, changes: Mapping[str, Any]) -> Settings:
    """A new :class:`Settings` with ``changes`` (``{"phones": {"password": ...}}``) applied,
    validated like a file; raises :class:`ConfigError` naming the offending key."""
    data = merge(dataclasses.asdict(settings), changes)
    new: Settings = _build(Settings, data, "")
    validate(new)
    return new
