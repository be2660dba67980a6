"""Failed-login throttling shared by every interface that checks a password.

Used by the registrar (phones), CSTA over TCP, TR/87 and the web client. It throttles the
attacker, not the victim (issue 15 item 9): anyone can send a wrong password *naming* an
account, so a lock on the account alone would let a stranger lock out a phone or a CRM.

Failures are counted within a sliding ``window`` under three keys:

- the pair (source address, account): ``max_failures`` blocks that source for that account;
- the source address over all accounts: ``max_source_failures`` blocks the source (one host
  guessing many accounts);
- the account over all sources: ``max_account_failures`` blocks the account (many hosts
  guessing one account).

A source that has logged in to an account before (a *trusted* pair, remembered for
``trust_time`` seconds) is held only by its own pair's failures: neither the block of its
address (other phones behind the same NAT, a hostile neighbour) nor the block of its account
(guesses from elsewhere) stops it. Each new block of a key lasts twice as long as the
previous one (from ``block_time``, up to an hour). Memory is bounded by ``max_tracked``
(least recently used keys forgotten). Time comes in as ``now``.

Where the password check itself takes time (a password hash awaited in a thread), wrap it in
:meth:`begin`/:meth:`end`: attempts in flight count like failures, so forty concurrent
guesses cannot all run before the first failure is counted.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["MAX_BLOCK", "TRUST_TIME", "AuthThrottle"]

MAX_BLOCK = 3600.0
#: How long a successful login keeps its (source, account) pair trusted.
TRUST_TIME = 30 * 86400.0


@dataclass(slots=True)
class _Record:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    blocks: int = 0


class AuthThrottle:
    def __init__(
        self,
        *,
        max_failures: int = 10,
        max_source_failures: int = 50,
        max_account_failures: int = 20,
        window: float = 300.0,
        block_time: float = 60.0,
        trust_time: float = TRUST_TIME,
        max_tracked: int = 50_000,
    ) -> None:
        self.window = window
        self.trust_time = trust_time
        self.max_tracked = max(1, max_tracked)
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.last_blocked = ""
        self._inflight: Counter[str] = Counter()
        self.configure(
            max_failures=max_failures,
            block_time=block_time,
            max_source_failures=max_source_failures,
            max_account_failures=max_account_failures,
        )

    def configure(
        self,
        *,
        max_failures: int,
        block_time: float,
        max_source_failures: int | None = None,
        max_account_failures: int | None = None,
    ) -> None:
        self.max_failures = max(1, max_failures)
        self.block_time = block_time
        if max_source_failures is not None:
            self.max_source_failures = max(1, max_source_failures)
        if max_account_failures is not None:
            self.max_account_failures = max(1, max_account_failures)

    # ------------------------------------------------------------------ keys
    @staticmethod
    def _pair_key(source: str | None, account: str | None) -> str | None:
        if not source:
            return None
        return f"pair:{source}\x00{account or ''}"

    def _limits(self, source: str | None, account: str | None) -> list[tuple[str, str, int]]:
        """(key, kind, limit) for every key a failure counts under."""
        keys = []
        pair = self._pair_key(source, account)
        if pair is not None:
            keys.append((pair, "source and account", self.max_failures))
            keys.append((f"src:{source}", "source", self.max_source_failures))
        if account:
            keys.append((f"acct:{account}", "account", self.max_account_failures))
        return keys

    def trusted(self, source: str | None, account: str | None, now: float) -> bool:
        """Whether ``source`` logged in to ``account`` within ``trust_time``."""
        if not source or not account:
            return False
        since = self._trusted.get((source, account))
        return since is not None and now - since < self.trust_time

    # ------------------------------------------------------------------ queries
    def blocked_for(self, source: str | None, account: str | None, now: float) -> float:
        """Seconds a login from ``source`` as ``account`` is still refused (0: go ahead).

        Call it with the account the request *claims*, before checking the password, so a
        blocked guesser learns nothing from the answer.
        """
        trusted = self.trusted(source, account, now)
        remaining = 0.0
        for key, kind, limit in self._limits(source, account):
            if trusted and kind != "source and account":
                continue
            record = self._records.get(key)
            if record is not None and record.blocked_until > now:
                remaining = max(remaining, record.blocked_until - now)
            inflight = self._inflight.get(key, 0)
            if inflight:
                recent = (
                    0 if record is None else sum(t > now - self.window for t in record.failures)
                )
                if recent + inflight >= limit:
                    remaining = max(remaining, 1.0)  # until the attempts in flight end
        return remaining

    def begin(self, source: str | None, account: str | None) -> None:
        """An attempt whose outcome is not known yet: it counts as a failure meanwhile."""
        for key, _, _ in self._limits(source, account):
            self._inflight[key] += 1

    def end(self, source: str | None, account: str | None) -> None:
        """The attempt from :meth:`begin` is over (then call :meth:`failure` or :meth:`success`)."""
        for key, _, _ in self._limits(source, account):
            self._inflight[key] -= 1
            if self._inflight[key] <= 0:
                del self._inflight[key]

    # ------------------------------------------------------------------ outcomes
    def failure(self, source: str | None, account: str | None, now: float) -> float:
        """Count a failure; returns the length of the block it started (0: none).

        :attr:`last_blocked` then says what that block holds (``"source"``,
        ``"account"`` or ``"source and account"``), for the log line.
        """
        started = 0.0
        self.last_blocked = ""
        for key, kind, limit in self._limits(source, account):
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = _Record()
                while len(self._records) > self.max_tracked:
                    self._records.popitem(last=False)  # forget the oldest, bounded memory
            else:
                self._records.move_to_end(key)
            failures = record.failures
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            failures.append(now)
            if len(failures) >= limit:
                record.blocks += 1
                duration = min(MAX_BLOCK, self.block_time * 2 ** min(record.blocks - 1, 32))
                record.blocked_until = now + duration
                failures.clear()
                if duration > started:
                    started, self.last_blocked = duration, kind
        return started

    def describe_block(self, source: str | None, account: str | None) -> str:
        """What the block just started by :meth:`failure` holds, for a log line."""
        if self.last_blocked == "source":
            return f"{source} (every account it has not logged in to before)"
        if self.last_blocked == "account":
            return f"account {account!r} (for addresses it has not logged in from before)"
        return f"{source} for account {account!r}" if account else f"{source}"

    def success(self, source: str | None, account: str | None, now: float | None = None) -> None:
        """A correct login: the pair's failures are cleared and (given ``now``) it is trusted.

        The account's and the source's counts stay: a legitimate login in between must not
        reset the guesses others make.
        """
        pair = self._pair_key(source, account)
        if pair is not None:
            self._records.pop(pair, None)
        if source and account and now is not None:
            self._trusted[(source, account)] = now
            self._trusted.move_to_end((source, account))
            while len(self._trusted) > self.max_tracked:
                self._trusted.popitem(last=False)

    def __len__(self) -> int:
        return len(self._records)
