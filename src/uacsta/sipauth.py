"""Digest authentication of one SIP request with the login throttle, sans-IO.

Why one module: the phones' REGISTER (:mod:`uacsta.phones.service`, the account is the
phone's MAC) and the CTI clients' TR/87 INVITE (:mod:`uacsta.gateways.tr87`, the account is
the client's username) follow the same rule, and a rule written twice drifts apart:

- no ``Authorization`` → 401 with one ``WWW-Authenticate`` per offered algorithm;
- the account the header *claims* is blocked (:meth:`AuthThrottle.blocked_for`) → 403
  "Too Many Failed Attempts", checked before the password, so a blocked guesser learns
  nothing from the answer;
- :meth:`DigestServer.verify`: correct → :meth:`AuthThrottle.success`; correct but with an
  old nonce → 401 with ``stale=TRUE``; a nonce we did not issue (to this address) → a fresh
  401; any other failure → :meth:`AuthThrottle.failure` and 403.

:meth:`DigestGuard.check` applies it and returns a verdict: :class:`Authenticated`, or a
:class:`Refusal` (:class:`Challenged`, :class:`Blocked`, :class:`Failed`) that carries the
response to send (status, reason phrase, headers) and what the caller logs. Logging stays
with the callers: the lines name the interface ("REGISTER from ...", "TR/87 client ...") and
go through their rate-limited logs. No sockets, no asyncio, no clock: ``now`` comes in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from uacsta.sip.digest import AuthStatus, DigestServer, FailureReason, claimed_username
from uacsta.throttle import AuthThrottle

__all__ = [
    "TOO_MANY_FAILED_ATTEMPTS",
    "Authenticated",
    "Blocked",
    "Challenged",
    "DigestGuard",
    "Failed",
    "Refusal",
    "Verdict",
]

#: The reason phrase of the 403 to a blocked account.
TOO_MANY_FAILED_ATTEMPTS = "Too Many Failed Attempts"


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The credentials are correct: ``user`` as sent, ``account`` as the throttle knows it."""

    user: str
    account: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Refusal:
    """The response to send instead of serving the request."""

    status: int
    phrase: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Challenged(Refusal):
    """401: no credentials, an old nonce (``stale``) or a nonce we did not issue."""

    stale: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Blocked(Refusal):
    """403 "Too Many Failed Attempts": the claimed ``account`` is blocked for ``wait`` s more."""

    account: str | None
    wait: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Failed(Refusal):
    """403: wrong credentials, counted by the throttle.

    ``user`` is the username the header named (None if none), ``account`` the throttle's
    key for it. ``block`` is the length of the block this failure started (0: none) and
    ``block_holds`` what that block holds, for the log line.
    """

    user: str | None
    account: str | None
    reason: FailureReason | None
    detail: str
    block: float = 0.0
    block_holds: str = ""


Verdict = Authenticated | Challenged | Blocked | Failed


def _same(username: str) -> str | None:
    return username


class DigestGuard:
    """Digest authentication plus the login throttle, for requests of one interface.

    ``digest`` and ``throttle`` are used as they are at each call: settings changed on them
    (algorithms, limits) apply to the next request.
    """

    def __init__(self, digest: DigestServer, throttle: AuthThrottle) -> None:
        self.digest = digest
        self.throttle = throttle

    def check(
        self,
        authorization: str | None,
        method: str,
        source: str,
        now: float,
        password_for: Callable[[str], str | None],
        account_of: Callable[[str], str | None] = _same,
    ) -> Verdict:
        """The verdict on a request with this ``Authorization`` value (None: no header).

        ``source`` is the requester's address: nonces are bound to it and the throttle counts
        under it. ``password_for`` gets the username as sent. ``account_of`` maps a username
        to its account (the phones' MAC, normalized); the throttle's key is that account, or
        the username itself when it names none. A correct answer for a username that names
        no account still fails (``unknown-user``).
        """
        if authorization is None:
            return self._challenge(source, now, stale=False)

        def key(user: str | None) -> str | None:
            return None if user is None else account_of(user) or user

        claimed = key(claimed_username(authorization))
        wait = self.throttle.blocked_for(source, claimed, now)
        if wait > 0:
            return Blocked(status=403, phrase=TOO_MANY_FAILED_ATTEMPTS, account=claimed, wait=wait)
        result = self.digest.verify(authorization, method, password_for, now, client=source)
        reason: FailureReason | None
        if result.status is AuthStatus.STALE:
            return self._challenge(source, now, stale=True)
        if result.status is AuthStatus.OK:
            assert result.username is not None
            account = account_of(result.username)
            if account is not None:
                self.throttle.success(source, account, now)
                return Authenticated(result.username, account)
            reason, detail = FailureReason.UNKNOWN_USER, "username names no account"
        elif result.reason is FailureReason.BAD_NONCE:
            return self._challenge(source, now, stale=False)
        else:
            reason, detail = result.reason, result.detail
        account = key(result.username)
        block = self.throttle.failure(source, account, now)
        return Failed(
            status=403,
            user=result.username,
            account=account,
            reason=reason,
            detail=detail,
            block=block,
            block_holds=self.throttle.describe_block(source, account) if block else "",
        )

    def _challenge(self, source: str, now: float, *, stale: bool) -> Challenged:
        challenges = self.digest.challenges(now, stale, client=source)
        headers = tuple(("WWW-Authenticate", value) for value in challenges)
        return Challenged(status=401, headers=headers, stale=stale)
