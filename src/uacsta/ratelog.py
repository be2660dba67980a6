"""Rate-limited log lines for what strangers can trigger (issue 15 item 11).

A refused REGISTER, a wrong CTI password or a peer over its transaction limit is worth a log
line, but not one per datagram: a flood would fill the disk and bury the lines that matter.
:class:`RateLimitedLog` wraps a logger. Per *key* (say the source address and the kind of
refusal) it writes the first ``lines`` lines of every ``interval`` seconds, then one line
saying that further lines like it are suppressed, and, when the key logs again after the
interval, one summary with the number suppressed. A second budget, ``total`` lines per
interval over all keys, bounds a flood that varies its keys (many source addresses); it too
is announced and summarised. Memory is bounded: at most ``max_keys`` keys are remembered
(least recently used forgotten; their suppressed counts join the global summary).

The defaults come from the ``log`` settings (:func:`configure`, called by the server);
an instance given explicit values keeps them.

For code that logs through a plain :class:`logging.Logger` it does not own (the sans-IO
core takes an injected logger), :class:`RateLimitFilter` applies the same per-line limit as
a logging filter, keyed by the record's message template.

Usage::

    rlog = RateLimitedLog(logging.getLogger(__name__))
    rlog.warning(("register-refused", source), "REGISTER from %s refused: %s", source, why)
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["RateLimitFilter", "RateLimitedLog", "configure"]


@dataclass(slots=True)
class _Defaults:
    lines: int = 5
    interval: float = 60.0
    total: int = 50


_defaults = _Defaults()


def configure(*, lines: int, interval: float, total: int | None = None) -> None:
    """Set the defaults of every :class:`RateLimitedLog` created without explicit values."""
    _defaults.lines = max(1, lines)
    _defaults.interval = max(0.001, interval)
    _defaults.total = max(_defaults.lines, total if total is not None else 10 * _defaults.lines)


@dataclass(slots=True)
class _Window:
    start: float
    level: int
    template: str
    written: int = 0
    suppressed: int = 0


class RateLimitedLog:
    """A logger wrapper that writes at most a few lines per key and interval."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        lines: int | None = None,
        interval: float | None = None,
        total: int | None = None,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self._lines = lines
        self._interval = interval
        self._total = total
        self.max_keys = max(1, max_keys)
        self._clock = clock
        self._keys: OrderedDict[Hashable, _Window] = OrderedDict()
        self._global = _Window(start=float("-inf"), level=logging.WARNING, template="")
        #: Lines not written since the server started (for metrics and tests).
        self.suppressed_total = 0

    @property
    def lines(self) -> int:
        return self._lines if self._lines is not None else _defaults.lines

    @property
    def interval(self) -> float:
        return self._interval if self._interval is not None else _defaults.interval

    @property
    def total(self) -> int:
        return self._total if self._total is not None else _defaults.total

    def debug(self, key: Hashable, msg: str, *args: object) -> bool:
        return self._log(logging.DEBUG, key, msg, args, 4)

    def info(self, key: Hashable, msg: str, *args: object) -> bool:
        return self._log(logging.INFO, key, msg, args, 4)

    def warning(self, key: Hashable, msg: str, *args: object) -> bool:
        return self._log(logging.WARNING, key, msg, args, 4)

    def error(self, key: Hashable, msg: str, *args: object) -> bool:
        return self._log(logging.ERROR, key, msg, args, 4)

    def log(self, level: int, key: Hashable, msg: str, *args: object) -> bool:
        """Write the line unless its key or the global budget is used up; True if written."""
        return self._log(level, key, msg, args, 3)

    def _log(
        self, level: int, key: Hashable, msg: str, args: tuple[object, ...], depth: int
    ) -> bool:
        # depth: the stacklevel that names our caller's caller in a record written from
        # here (logger.log <- _write <- _log <- log/warning <- the caller).
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        interval = self.interval
        g = self._global
        if now >= g.start + interval:
            if g.suppressed:
                self._write(
                    depth,
                    g.level,
                    "%d more log lines suppressed in %.0f s (log rate limit)",
                    g.suppressed,
                    now - g.start,
                )
            g.start, g.written, g.suppressed = now, 0, 0
        window = self._window(key, level, msg, now, interval, depth + 1)
        if window.written >= self.lines:
            window.suppressed += 1
            self.suppressed_total += 1
            if window.suppressed == 1 and self._budget(level, depth + 1):
                self._write(
                    depth,
                    level,
                    "further lines like %r suppressed for up to %.0f s",
                    msg,
                    window.start + interval - now,
                )
            return False
        if not self._budget(level, depth + 1):
            self.suppressed_total += 1
            return False
        window.written += 1
        self._write(depth, level, msg, *args)
        return True

    def _window(
        self, key: Hashable, level: int, msg: str, now: float, interval: float, depth: int
    ) -> _Window:
        window = self._keys.get(key)
        if window is not None and now < window.start + interval:
            self._keys.move_to_end(key)
            return window
        if window is not None:
            if window.suppressed and self._budget(window.level, depth + 1):
                self._write(
                    depth,
                    window.level,
                    "%d lines like %r suppressed in %.0f s",
                    window.suppressed,
                    window.template,
                    now - window.start,
                )
            self._keys.move_to_end(key)
            window.start, window.written, window.suppressed = now, 0, 0
            window.level, window.template = level, msg
            return window
        window = self._keys[key] = _Window(start=now, level=level, template=msg)
        while len(self._keys) > self.max_keys:
            _, old = self._keys.popitem(last=False)
            self._global.suppressed += old.suppressed
        return window

    def _budget(self, level: int, depth: int) -> bool:
        """Take one line from the global budget; on the first refusal say so once."""
        g = self._global
        if g.written < self.total:
            g.written += 1
            return True
        g.suppressed += 1
        if g.suppressed == 1:
            g.level = max(g.level, level)
            self._write(
                depth,
                g.level,
                "log rate limit reached: further lines suppressed for up to %.0f s",
                g.start + self.interval - self._clock(),
            )
        return False

    def _write(self, depth: int, level: int, msg: str, *args: object) -> None:
        # The record names the caller of log()/warning(), not this module.
        self.logger.log(level, msg, *args, stacklevel=depth)


class RateLimitFilter(logging.Filter):
    """A logging filter: per message template, ``lines`` records per ``interval``.

    The first record over the limit is kept with "(further lines like this suppressed ...)"
    appended; the first one of the next interval says how many were dropped. ``only``
    limits the filter to those templates (others always pass).
    """

    def __init__(
        self,
        *,
        only: frozenset[str] | None = None,
        lines: int | None = None,
        interval: float | None = None,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.only = only
        self._lines = lines
        self._interval = interval
        self.max_keys = max(1, max_keys)
        self._clock = clock
        self._keys: OrderedDict[str, _Window] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        if self.only is not None and template not in self.only:
            return True
        lines = self._lines if self._lines is not None else _defaults.lines
        interval = self._interval if self._interval is not None else _defaults.interval
        now = self._clock()
        window = self._keys.get(template)
        if window is None or now >= window.start + interval:
            dropped = window.suppressed - 1 if window is not None and window.suppressed else 0
            window = _Window(start=now, level=record.levelno, template=template)
            self._keys[template] = window
            self._keys.move_to_end(template)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
            if dropped > 0:
                record.msg = f"{template} ({dropped} similar lines suppressed before)"
        window.written += 1
        if window.written <= lines:
            return True
        window.suppressed += 1
        if window.suppressed == 1:
            record.msg = (
                f"{template} (further lines like this suppressed for up to "
                f"{window.start + interval - now:.0f} s)"
            )
            return True
        return False
