"""HTTP Digest authentication for SIP, sans-IO (RFC 3261 §22.4, RFC 7616, RFC 8760).

This module owns:

- parsing of ``WWW-Authenticate`` / ``Authorization`` / ``Proxy-Authenticate`` /
  ``Proxy-Authorization`` header *values* of the ``Digest`` scheme (RFC 7616 §3.3-3.4,
  RFC 7235 §2.1 auth-param syntax, RFC 3261 §25.1 quoted-string);
- challenges (RFC 7616 §3.3), one header value per algorithm, in the configured order.
  RFC 8760 §2.3 puts the preferred one first and asks clients to use the first they support,
  but many deployed clients read *only* the first (SIPp 3.6/3.7, PJSIP before 2.10, most
  desk-phone firmwares know MD5 only), so the default order is MD5, then SHA-256: clients
  that choose SHA-256 still find it;
- stateless server nonces with integrity and expiry (RFC 7616 §3.3 and §5.4-5.5), bound to
  the client's address, the ``stale`` flag (§3.3) and nonce-count replay protection (§5.5);
  an RFC 2069 answer (no ``qop``, hence no ``nc``) may use its nonce once only;
- server-side verification of credentials (RFC 7616 §3.4.1-3.4.3, RFC 2617 §3.2.2 and the
  RFC 2069 no-``qop`` form that some phones still send), MD5, SHA-256 and SHA-512-256 and
  their ``-sess`` variants, ``qop=auth`` and ``qop=auth-int``;
- the client answer to a challenge (used by the phone simulator and tests).

It works on strings only: the SIP message layer extracts header values, the method and the
Request-URI; time comes in as ``now`` (seconds, any epoch, monotonic preferred).

Why our own code: we would have checked for a maintained, sans-IO Python library that does
*server-side* SIP digest with RFC 8760 algorithms. ``requests.auth.HTTPDigestAuth`` and
``httpx.DigestAuth`` are client-only and bound to their HTTP request objects;
``urllib.request.HTTPDigestAuthHandler`` is client-only and does I/O; Werkzeug parses the
headers for HTTP but has no nonce management, ``nc`` replay tracking or SIP specifics
(``stale`` re-challenge, RFC 2069 phones); the SIP stacks (PJSIP, sipsorcery, Kamailio,
OpenSIPS) are not Python. The protocol is small enough that owning it costs less than
adapting any of those.

Not supported (yet): ``userhash=true`` (RFC 7616 §3.4.4, rejected as unsupported) and the
``Authentication-Info``/``rspauth`` mutual authentication (RFC 7616 §3.5).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from uacsta.sip.errors import SipError

__all__ = [
    "Algorithm",
    "AuthResult",
    "AuthStatus",
    "Challenge",
    "DigestError",
    "DigestServer",
    "FailureReason",
    "NonceManager",
    "NonceStatus",
    "answer_challenge",
    "claimed_username",
    "digest_response",
    "parse_digest_params",
]

#: Longest header value we parse; a real Authorization value is a few hundred bytes.
MAX_VALUE_LENGTH = 8192
#: Most auth-params we accept in one value (RFC 7616 defines about a dozen).
MAX_PARAMS = 32


class DigestError(SipError, ValueError):
    """A Digest header value or challenge cannot be used (malformed or unsupported)."""

    status_code = 400


# --------------------------------------------------------------------------- parsing

_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WS = " \t"
# Unquoted values: RFC 7235 says token, but phones send base64 nonces and URIs unquoted
# (with '/', '=', ':', '@'), so we accept anything visible up to a separator.
_UNQUOTED_STOP = frozenset(',"' + _WS)


def _is_bad_char(ch: str) -> bool:
    # Controls (other than HTAB) never belong in a header value; the message layer has
    # already unfolded continuation lines (RFC 3261 §7.3.1).
    o = ord(ch)
    return (o < 0x20 and ch != "\t") or o == 0x7F


def _skip_ws(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _read_token(s: str, i: int) -> tuple[str, int]:
    start = i
    n = len(s)
    while i < n and s[i] in _TCHARS:
        i += 1
    return s[start:i], i


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at the opening quote; return (unescaped, index after)."""
    out: list[str] = []
    i += 1
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(s[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    raise DigestError("unterminated quoted-string")


def parse_digest_params(value: str) -> dict[str, str]:
    """Parse ``Digest k=v, k="quoted", ...`` into a dict with lower-case keys.

    Quoted values are unescaped. Empty list elements (``a=1,,b=2``) are tolerated, as
    RFC 7230 §7 asks. Raises :class:`DigestError` on anything else that is not well formed:
    another scheme, a missing ``=``, an unterminated quote, a duplicated parameter (RFC 7616
    §3.3 allows each at most once), control characters, or an oversized value.
    """
    if len(value) > MAX_VALUE_LENGTH:
        raise DigestError("header value too long")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DigestError("header value is not valid Unicode text") from exc
    if any(_is_bad_char(ch) for ch in value):
        raise DigestError("control character in header value")

    i = _skip_ws(value, 0)
    scheme, i = _read_token(value, i)
    if scheme.lower() != "digest":
        raise DigestError("not a Digest credential or challenge")
    n = len(value)
    if i < n and value[i] not in _WS:
        raise DigestError("scheme must be followed by whitespace")

    params: dict[str, str] = {}
    while True:
        i = _skip_ws(value, i)
        while i < n and value[i] == ",":  # empty list elements
            i = _skip_ws(value, i + 1)
        if i >= n:
            break
        key, i = _read_token(value, i)
        if not key:
            raise DigestError(f"expected a parameter name at offset {i}")
        i = _skip_ws(value, i)
        if i >= n or value[i] != "=":
            raise DigestError(f"expected '=' after {key!r}")
        i = _skip_ws(value, i + 1)
        if i < n and value[i] == '"':
            val, i = _read_quoted(value, i)
        else:
            start = i
            while i < n and value[i] not in _UNQUOTED_STOP:
                i += 1
            val = value[start:i]
            if not val:
                raise DigestError(f"empty unquoted value for {key!r}")
        key = key.lower()
        if key in params:
            raise DigestError(f"duplicate parameter {key!r}")
        if len(params) >= MAX_PARAMS:
            raise DigestError("too many parameters")
        params[key] = val
        i = _skip_ws(value, i)
        if i < n and value[i] != ",":
            raise DigestError(f"expected ',' after {key!r}")
    if not params:
        raise DigestError("Digest without parameters")
    return params


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split_qop(value: str) -> tuple[str, ...]:
    return tuple(q.strip().lower() for q in value.split(",") if q.strip())


# --------------------------------------------------------------------------- algorithms


class Algorithm(StrEnum):
    """Digest algorithms (IANA "HTTP Digest Hash Algorithms", RFC 7616 §6.1, RFC 8760 §3)."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    @classmethod
    def parse(cls, value: str) -> Algorithm:
        """Case-insensitive lookup; raises :class:`DigestError` for unknown algorithms."""
        found = _ALGORITHMS_BY_LOWER.get(value.strip().lower())
        if found is None:
            raise DigestError(f"unsupported algorithm {value!r}")
        return found

    @property
    def is_session(self) -> bool:
        return self.value.endswith("-sess")

    def hash(self, data: bytes) -> str:
        """Lower-case hex digest of ``data`` with this algorithm's hash function."""
        return hashlib.new(_HASHLIB_NAMES[self], data).hexdigest()

    @property
    def hex_length(self) -> int:
        return 32 if self in (Algorithm.MD5, Algorithm.MD5_SESS) else 64


_ALGORITHMS_BY_LOWER = {a.value.lower(): a for a in Algorithm}
_HASHLIB_NAMES = {
    Algorithm.MD5: "md5",
    Algorithm.MD5_SESS: "md5",
    Algorithm.SHA_256: "sha256",
    Algorithm.SHA_256_SESS: "sha256",
    Algorithm.SHA_512_256: "sha512_256",
    Algorithm.SHA_512_256_SESS: "sha512_256",
}


def digest_response(
    algorithm: Algorithm,
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1-3.4.3; RFC 2069 form when ``qop`` is None).

    ``nc`` is the 8-hex-digit string exactly as sent. Strings are hashed as UTF-8.
    """
    h = algorithm.hash
    ha1 = h(f"{username}:{realm}:{password}".encode())
    if algorithm.is_session:
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}".encode())
    if qop == "auth-int":
        ha2 = h(f"{method}:{uri}:{h(body)}".encode())
    else:
        ha2 = h(f"{method}:{uri}".encode())
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}".encode())
    if nc is None or cnonce is None:
        raise DigestError("qop needs nc and cnonce")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


# --------------------------------------------------------------------------- challenge


@dataclass(frozen=True, kw_only=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate``/``Proxy-Authenticate`` Digest challenge (RFC 7616 §3.3).

    ``qop`` is the offered list; an empty tuple means no ``qop`` (RFC 2069 style).
    """

    realm: str
    nonce: str
    algorithm: Algorithm = Algorithm.MD5
    qop: tuple[str, ...] = ("auth",)
    opaque: str | None = None
    stale: bool = False
    algorithm_given: bool = field(default=True, compare=False)

    def to_header(self) -> str:
        """The header value, e.g. ``Digest realm="x", nonce="y", algorithm=SHA-256, ...``."""
        parts = [f"realm={_quote(self.realm)}", f"nonce={_quote(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.algorithm_given:
            parts.append(f"algorithm={self.algorithm.value}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        if self.stale:
            parts.append("stale=TRUE")
        return "Digest " + ", ".join(parts)

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse a challenge header value; raises :class:`DigestError`."""
        p = parse_digest_params(value)
        if "realm" not in p or "nonce" not in p:
            raise DigestError("challenge needs realm and nonce")
        algo = p.get("algorithm")
        return cls(
            realm=p["realm"],
            nonce=p["nonce"],
            algorithm=Algorithm.MD5 if algo is None else Algorithm.parse(algo),
            qop=_split_qop(p["qop"]) if "qop" in p else (),
            opaque=p.get("opaque"),
            stale=p.get("stale", "").lower() == "true",
            algorithm_given=algo is not None,
        )


# --------------------------------------------------------------------------- nonces


class NonceStatus(Enum):
    VALID = "valid"
    STALE = "stale"  # authentic but expired (or its nc history was forgotten)
    INVALID = "invalid"  # not ours: forged, corrupted or bound to something else


_TS_LEN = 8  # milliseconds, unsigned big-endian
_RAND_LEN = 12  # makes nonces unique per challenge, so nc counters are per client
_MAC_LEN = 16  # truncated HMAC-SHA256: 128 bits is plenty against forgery
_NONCE_LEN = _TS_LEN + _RAND_LEN + _MAC_LEN
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{48}")  # 36 bytes in base64url, no padding
_FUTURE_SKEW_MS = 5_000  # tolerate a small backwards step of the caller's clock
#: Recorded as the nonce count of a nonce used without qop: no later ``nc`` can exceed it.
_NC_SPENT = 0x1_0000_0000


@dataclass(slots=True)
class _NcEntry:
    highest: int
    issued_ms: int


class NonceManager:
    """Stateless server nonces plus bounded nonce-count tracking (RFC 7616 §5.4-5.5).

    ``nonce = base64url(timestamp_ms || random || HMAC-SHA256(secret, timestamp_ms ||
    random || binding)[:16])``. :meth:`check` needs no state. :meth:`record_nc` remembers
    the highest ``nc`` per nonce in an LRU capped at ``max_tracked`` entries. When a live
    entry must be evicted, every nonce issued at or before it becomes STALE for nc purposes
    (a low-water mark), so eviction under load forces a re-challenge instead of opening a
    replay window.
    """

    def __init__(self, secret: bytes, lifetime: float = 300, *, max_tracked: int = 10_000):
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if lifetime <= 0 or max_tracked < 1:
            raise ValueError("lifetime and max_tracked must be positive")
        self._secret = secret
        self.lifetime = lifetime
        self._lifetime_ms = int(lifetime * 1000)
        self.max_tracked = max_tracked
        self._nc: OrderedDict[str, _NcEntry] = OrderedDict()
        self._floor_ms = -1  # nonces issued at or before this may have lost their nc state

    def _mac(self, head: bytes, binding: str) -> bytes:
        msg = head + b"\x00" + binding.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_MAC_LEN]

    def make(self, now: float, *, binding: str = "") -> str:
        """A fresh nonce issued at ``now``, bound to ``binding`` (e.g. the realm)."""
        ts = max(0, int(now * 1000))
        head = ts.to_bytes(_TS_LEN, "big") + secrets.token_bytes(_RAND_LEN)
        return base64.urlsafe_b64encode(head + self._mac(head, binding)).decode("ascii")

    def _issued_ms(self, nonce: str, binding: str) -> int | None:
        # 36 bytes -> 48 base64url characters, no padding. The exact alphabet matters:
        # the decoder would also take '+' and '/', and nc tracking is keyed by the string.
        if not _NONCE_RE.fullmatch(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce)
        head, mac = raw[: _TS_LEN + _RAND_LEN], raw[_TS_LEN + _RAND_LEN :]
        if not hmac.compare_digest(mac, self._mac(head, binding)):
            return None
        return int.from_bytes(head[:_TS_LEN], "big")

    def check(self, nonce: str, now: float, *, binding: str = "") -> NonceStatus:
        """VALID, STALE (ours but expired) or INVALID (not ours)."""
        issued = self._issued_ms(nonce, binding)
        if issued is None:
            return NonceStatus.INVALID
        now_ms = int(now * 1000)
        if issued > now_ms + _FUTURE_SKEW_MS:
            return NonceStatus.INVALID
        if issued < now_ms - self._lifetime_ms:  # same test as prune(), to the millisecond
            return NonceStatus.STALE
        return NonceStatus.VALID

    def record_nc(self, nonce: str, nc: int, now: float) -> NonceStatus:
        """Accept ``nc`` for a VALID nonce if it is higher than any seen before.

        Returns VALID (accepted and remembered), STALE (the nonce's history was evicted:
        re-challenge) or INVALID (``nc`` did not increase: a replay). The caller must have
        checked the nonce with :meth:`check` first.
        """
        if nc < 1:
            return NonceStatus.INVALID
        self.prune(now, limit=4)
        entry = self._nc.get(nonce)
        if entry is None:
            issued = int.from_bytes(base64.urlsafe_b64decode(nonce)[:_TS_LEN], "big")
            if issued <= self._floor_ms:
                return NonceStatus.STALE
            self._nc[nonce] = _NcEntry(nc, issued)
            while len(self._nc) > self.max_tracked:
                _, old = self._nc.popitem(last=False)
                self._floor_ms = max(self._floor_ms, old.issued_ms)
            return NonceStatus.VALID
        self._nc.move_to_end(nonce)
        if nc <= entry.highest:
            return NonceStatus.INVALID
        entry.highest = nc
        return NonceStatus.VALID

    def use_once(self, nonce: str, now: float) -> NonceStatus:
        """Accept a VALID nonce for one use only (RFC 2069 answers carry no ``nc``).

        VALID the first time; INVALID after any earlier use, with or without ``nc`` (no later
        ``nc`` can exceed the one recorded); STALE when its history may have been evicted.
        """
        if nonce in self._nc:
            self._nc.move_to_end(nonce)
            return NonceStatus.INVALID
        return self.record_nc(nonce, _NC_SPENT, now)

    def prune(self, now: float, *, limit: int | None = None) -> None:
        """Drop expired entries from the least recently used end (all of them if no limit)."""
        horizon = int(now * 1000) - self._lifetime_ms
        if limit is None:
            for key in [k for k, e in self._nc.items() if e.issued_ms < horizon]:
                del self._nc[key]
            return
        for _ in range(limit):
            if not self._nc:
                return
            key, entry = next(iter(self._nc.items()))
            if entry.issued_ms >= horizon:
                return
            del self._nc[key]

    def __len__(self) -> int:
        return len(self._nc)


# --------------------------------------------------------------------------- server


class AuthStatus(Enum):
    OK = "ok"
    STALE = "stale"  # correct credentials, expired nonce: re-challenge with stale=true
    FAILED = "failed"


class FailureReason(StrEnum):
    MALFORMED = "malformed"  # unparseable header or missing/ill-formed parameters
    REALM_MISMATCH = "realm-mismatch"
    URI_MISMATCH = "uri-mismatch"
    OPAQUE_MISMATCH = "opaque-mismatch"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    UNSUPPORTED_QOP = "unsupported-qop"
    UNSUPPORTED_USERHASH = "unsupported-userhash"
    BAD_NONCE = "bad-nonce"
    UNKNOWN_USER = "unknown-user"
    WRONG_RESPONSE = "wrong-response"
    REPLAY = "replay"


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthResult:
    """Outcome of :meth:`DigestServer.verify`.

    ``username`` is set whenever the header named one (also on failure, for logging).
    """

    status: AuthStatus
    username: str | None = None
    reason: FailureReason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


def _failed(reason: FailureReason, detail: str, username: str | None = None) -> AuthResult:
    return AuthResult(status=AuthStatus.FAILED, username=username, reason=reason, detail=detail)


_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_NC_RE = re.compile(r"[0-9a-fA-F]{1,8}")
_EXT_VALUE_RE = re.compile(r"(?i:utf-8)'[^']*'((?:[!#$&+\-.^_`|~0-9A-Za-z]|%[0-9A-Fa-f]{2})*)")
#: MD5 first: clients that read only the first challenge know MD5 (see the module docstring).
_DEFAULT_ALGORITHMS = (Algorithm.MD5, Algorithm.SHA_256)


def _decode_ext_value(value: str) -> str:
    """RFC 8187 ext-value (``UTF-8''J%C3%A4s``), used by ``username*`` (RFC 7616 §3.4)."""
    m = _EXT_VALUE_RE.fullmatch(value)
    if m is None:
        raise DigestError("username* must be UTF-8''pct-encoded")
    try:
        return urllib.parse.unquote_to_bytes(m.group(1)).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DigestError("username* is not UTF-8") from exc


def claimed_username(authorization_value: str) -> str | None:
    """The user an ``Authorization`` value names (``username`` or ``username*``), unverified.

    For throttling before the password is checked; None when the value names none or is
    malformed.
    """
    try:
        p = parse_digest_params(authorization_value)
    except DigestError:
        return None
    if "username*" in p:
        try:
            return _decode_ext_value(p["username*"])
        except DigestError:
            return None
    return p.get("username")


class DigestServer:
    """Challenges and verifies Digest credentials for one realm (UAS/registrar side).

    ``algorithms`` are offered in the given order (the first is the one clients that read
    only one challenge use). ``qop`` is what challenges offer; ``allow_no_qop`` accepts
    RFC 2069 credentials (no ``qop``, hence no ``nc``): such a nonce is good for one request
    only, so a captured answer cannot be replayed. Nonces are bound to the ``client`` given
    to :meth:`challenges` and :meth:`verify` (the source address), so an answer captured
    from one address is worth nothing from another.
    """

    def __init__(
        self,
        realm: str,
        nonces: NonceManager,
        algorithms: Iterable[Algorithm] = _DEFAULT_ALGORITHMS,
        *,
        qop: tuple[str, ...] = ("auth",),
        allow_no_qop: bool = True,
        opaque: str | None = None,
    ) -> None:
        self.realm = realm
        self.nonces = nonces
        self.algorithms = tuple(algorithms)
        if not self.algorithms:
            raise ValueError("at least one algorithm")
        unknown = set(qop) - {"auth", "auth-int"}
        if unknown:
            raise ValueError(f"unsupported qop {sorted(unknown)}")
        self.qop = qop
        self.allow_no_qop = allow_no_qop
        self.opaque = opaque

    def _binding(self, client: str) -> str:
        return f"{self.realm}\x00{client}" if client else self.realm

    def challenges(self, now: float, stale: bool = False, *, client: str = "") -> list[str]:
        """Header values for a 401/407, one per algorithm, sharing one fresh nonce.

        ``client`` (the requester's address) is bound into the nonce; :meth:`verify` must
        get the same value.
        """
        nonce = self.nonces.make(now, binding=self._binding(client))
        return [
            Challenge(
                realm=self.realm,
                nonce=nonce,
                algorithm=algo,
                qop=self.qop,
                opaque=self.opaque,
                stale=stale,
            ).to_header()
            for algo in self.algorithms
        ]

    def verify(
        self,
        authorization_value: str,
        method: str,
        password_for: Callable[[str], str | None],
        now: float,
        *,
        request_uri: str | None = None,
        body: bytes = b"",
        client: str = "",
    ) -> AuthResult:
        """Check an ``Authorization``/``Proxy-Authorization`` value; never raises on input.

        ``password_for`` gets the username exactly as sent (the lookup decides on case
        folding; the hash always uses the sent form, as the client did). ``request_uri``,
        when given, must equal the ``uri`` parameter (RFC 3261 §22.4 item 2; simple string
        equality, pass None to compare with full SIP URI rules yourself). ``body`` is only
        used for ``qop=auth-int``. ``client`` is the address the challenge was sent to; a
        nonce issued to another address is BAD_NONCE (the caller re-challenges).
        """
        try:
            p = parse_digest_params(authorization_value)
        except DigestError as exc:
            return _failed(FailureReason.MALFORMED, str(exc))

        username = p.get("username")
        if "username*" in p:
            if username is not None:
                return _failed(FailureReason.MALFORMED, "both username and username*")
            try:
                username = _decode_ext_value(p["username*"])
            except DigestError as exc:
                return _failed(FailureReason.MALFORMED, str(exc))
        missing = [k for k in ("realm", "nonce", "uri", "response") if k not in p]
        if username is None:
            missing.insert(0, "username")
        if missing:
            return _failed(FailureReason.MALFORMED, f"missing {', '.join(missing)}", username)
        assert username is not None
        realm, nonce, uri, response = p["realm"], p["nonce"], p["uri"], p["response"]

        if p.get("userhash", "false").lower() == "true":
            return _failed(FailureReason.UNSUPPORTED_USERHASH, "userhash=true", username)
        if realm != self.realm:
            return _failed(FailureReason.REALM_MISMATCH, f"realm {realm!r}", username)
        try:
            algorithm = Algorithm.parse(p.get("algorithm", "MD5"))
        except DigestError as exc:
            return _failed(FailureReason.UNSUPPORTED_ALGORITHM, str(exc), username)
        if algorithm not in self.algorithms:
            return _failed(
                FailureReason.UNSUPPORTED_ALGORITHM, f"{algorithm} not offered", username
            )

        qop = p.get("qop")
        nc_text = p.get("nc")
        cnonce = p.get("cnonce")
        nc = 0
        if qop is not None:
            qop = qop.lower()
            if qop not in self.qop:
                return _failed(FailureReason.UNSUPPORTED_QOP, f"qop {qop!r}", username)
            if nc_text is None or cnonce is None:
                return _failed(FailureReason.MALFORMED, "qop needs nc and cnonce", username)
            if not _NC_RE.fullmatch(nc_text):
                return _failed(FailureReason.MALFORMED, f"bad nc {nc_text!r}", username)
            nc = int(nc_text, 16)
            if nc == 0:
                return _failed(FailureReason.MALFORMED, "nc must start at 1", username)
        else:
            if not self.allow_no_qop:
                return _failed(FailureReason.UNSUPPORTED_QOP, "qop required", username)
            if algorithm.is_session:
                return _failed(FailureReason.MALFORMED, f"{algorithm} needs qop", username)
            # RFC 2617 §3.2.2: without qop, nc and cnonce are not part of the digest.
            nc_text = cnonce = None

        if len(response) != algorithm.hex_length or not _HEX_RE.fullmatch(response):
            return _failed(FailureReason.MALFORMED, "response is not a hex digest", username)
        if request_uri is not None and uri != request_uri:
            return _failed(FailureReason.URI_MISMATCH, f"uri {uri!r}", username)
        if self.opaque is not None and p.get("opaque") != self.opaque:
            return _failed(FailureReason.OPAQUE_MISMATCH, "opaque not echoed", username)

        nonce_status = self.nonces.check(nonce, now, binding=self._binding(client))
        if nonce_status is NonceStatus.INVALID:
            return _failed(FailureReason.BAD_NONCE, "nonce not issued by us", username)

        password = password_for(username)
        if password is None:
            return _failed(FailureReason.UNKNOWN_USER, "no such user", username)
        expected = digest_response(
            algorithm,
            username=username,
            realm=realm,
            password=password,
            method=method,
            uri=uri,
            nonce=nonce,
            qop=qop,
            nc=nc_text,
            cnonce=cnonce,
            body=body,
        )
        if not hmac.compare_digest(expected.encode("ascii"), response.lower().encode("ascii")):
            return _failed(FailureReason.WRONG_RESPONSE, "digest mismatch", username)

        # RFC 7616 §3.3: stale only once the client has proven it knows the password.
        if nonce_status is NonceStatus.STALE:
            return AuthResult(status=AuthStatus.STALE, username=username, detail="nonce expired")
        if qop is not None:
            nc_status = self.nonces.record_nc(nonce, nc, now)
            if nc_status is NonceStatus.STALE:
                return AuthResult(
                    status=AuthStatus.STALE, username=username, detail="nonce state evicted"
                )
            if nc_status is NonceStatus.INVALID:
                return _failed(FailureReason.REPLAY, f"nc {nc_text} not increasing", username)
        else:
            # RFC 2069: nothing in the answer changes between two uses, so a second use is
            # a replay (or a phone re-using its nonce): re-challenge, as for an old nonce.
            spent = self.nonces.use_once(nonce, now)
            if spent is not NonceStatus.VALID:
                return AuthResult(
                    status=AuthStatus.STALE, username=username, detail="no-qop nonce used before"
                )
        return AuthResult(status=AuthStatus.OK, username=username)


# --------------------------------------------------------------------------- client


def answer_challenge(
    www_authenticate_value: str,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    nc: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``Authorization`` value answering one challenge (RFC 7616 §3.4, RFC 3261 §22.2).

    Picks ``qop=auth`` when offered, else ``auth-int``, else answers in RFC 2069 form.
    Raises :class:`DigestError` for malformed or unsupported challenges.
    """
    ch = Challenge.parse(www_authenticate_value)
    if not 1 <= nc <= 0xFFFFFFFF:
        raise DigestError("nc out of range")
    qop: str | None
    if not ch.qop:
        qop = None
    elif "auth" in ch.qop:
        qop = "auth"
    elif "auth-int" in ch.qop:
        qop = "auth-int"
    else:
        raise DigestError(f"no supported qop in {ch.qop}")
    nc_text: str | None = None
    if qop is None:
        if ch.algorithm.is_session:
            raise DigestError(f"{ch.algorithm} without qop is not supported")
        cnonce = None
    else:
        cnonce = cnonce if cnonce is not None else secrets.token_hex(8)
        nc_text = f"{nc:08x}"
    response = digest_response(
        ch.algorithm,
        username=username,
        realm=ch.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=ch.nonce,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(ch.realm)}",
        f"nonce={_quote(ch.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
    ]
    if ch.algorithm_given:
        parts.append(f"algorithm={ch.algorithm.value}")
    if cnonce is not None:
        parts.append(f"cnonce={_quote(cnonce)}")
    if ch.opaque is not None:
        parts.append(f"opaque={_quote(ch.opaque)}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_text}")
    return "Digest " + ", ".join(parts)
