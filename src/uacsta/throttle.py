"""Failed-login throttling shared by every interface that checks a password.

Failures are counted per source address and per account within a sliding ``window``; reaching
``max_failures`` blocks that source (or account) for ``block_time`` seconds, doubling on every
new block of the same key (up to an hour), which makes password guessing slow without locking
out a legitimate user for long. Every refusal is logged by the caller with what it knows.
Time comes in as ``now`` so the rules are testable without a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

MAX_BLOCK = 3600.0


@dataclass(slots=True)
class _Record:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0
    blocks: int = 0


class AuthThrottle:
    def __init__(
        self,
        *,
        max_failures: int = 10,
        window: float = 300.0,
        block_time: float = 60.0,
        max_tracked: int = 50_000,
    ) -> None:
        self.max_failures = max(1, max_failures)
        self.window = window
        self.block_time = block_time
        self.max_tracked = max_tracked
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def configure(self, *, max_failures: int, block_time: float) -> None:
        self.max_failures = max(1, max_failures)
        self.block_time = block_time

    def _keys(self, source: str | None, account: str | None) -> list[str]:
        keys = []
        if source:
            keys.append(f"src:{source}")
        if account:
            keys.append(f"acct:{account}")
        return keys

    def blocked_for(self, source: str | None, account: str | None, now: float) -> float:
        """Seconds the source or the account is still blocked (0: not blocked)."""
        remaining = 0.0
        for key in self._keys(source, account):
            record = self._records.get(key)
            if record is not None and record.blocked_until > now:
                remaining = max(remaining, record.blocked_until - now)
        return remaining

    def failure(self, source: str | None, account: str | None, now: float) -> float:
        """Count a failure; returns the block time started by it (0: no new block)."""
        started = 0.0
        for key in self._keys(source, account):
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = _Record()
                if len(self._records) > self.max_tracked:
                    self._records.popitem(last=False)  # forget the oldest, bounded memory
            else:
                self._records.move_to_end(key)
            record.failures = [t for t in record.failures if t > now - self.window]
            record.failures.append(now)
            if len(record.failures) >= self.max_failures:
                record.blocks += 1
                duration = min(MAX_BLOCK, self.block_time * 2 ** (record.blocks - 1))
                record.blocked_until = now + duration
                record.failures.clear()
                started = max(started, duration)
        return started

    def success(self, source: str | None, account: str | None) -> None:
        """A correct login clears the failures of that account (not of the source)."""
        if account:
            self._records.pop(f"acct:{account}", None)

    def __len__(self) -> int:
        return len(self._records)
