"""The per-phone message trace (the diagnostics ladder), kept compact.

A site keeps one trace per phone for as long as the phone is known, so the entry layout
decides a good part of the memory a linked phone costs: 10,000 phones x 64 entries as
``(float, str, str, str)`` tuples is ~60 MB. Here an entry is 17 bytes (an 8-byte time in
an ``array``, a 1-byte direction/kind code, a reference to the text), and texts are
interned: a phone's start lines and the CSTA message names repeat with every keep-alive.

The full text of a message (the SIP message with its body, the CSTA XML) is kept for the
newest ``details`` entries only, zlib-compressed (~32 x 0.4 kB), and only while an operator
watches the phone's trace (:meth:`TraceBuffer.watch`, renewed by every look, e.g. the admin's
phone page): writing and compressing every message of every phone cost a fifth of the
server's CPU per relayed request, for texts nobody reads.
"""

from __future__ import annotations

import sys
import time
import zlib
from array import array
from collections import deque

#: (direction, kind) pairs by code; a pair not seen before gets the next code.
_PAIRS: list[tuple[str, str]] = [("in", "sip"), ("out", "sip"), ("in", "csta"), ("out", "csta")]
_CODES: dict[tuple[str, str], int] = {pair: i for i, pair in enumerate(_PAIRS)}
_MAX_PAIRS = 256


def _code(direction: str, kind: str) -> int:
    code = _CODES.get((direction, kind))
    if code is None:
        if len(_PAIRS) >= _MAX_PAIRS:
            raise ValueError(f"too many trace entry kinds: {direction!r}, {kind!r}")
        code = len(_PAIRS)
        _PAIRS.append((direction, kind))
        _CODES[(direction, kind)] = code
    return code


class TraceBuffer:
    """The last ``size`` messages of one phone, oldest dropped first."""

    __slots__ = ("_codes", "_details", "_next", "_seq", "_seqs", "_texts", "_times",
                 "_watched_until", "size")  # fmt: skip

    def __init__(self, size: int = 64, details: int = 32) -> None:
        self.size = max(0, size)
        #: ``(sequence number, compressed full text)`` of the newest entries that have one.
        self._details: deque[tuple[int, bytes]] = deque(maxlen=max(0, min(details, self.size)))
        self._seqs = array("Q")
        self._seq = 0
        self._times = array("d")
        self._codes = bytearray()
        self._texts: list[str] = []
        #: Where the next entry goes once the buffer is full (the oldest entry).
        self._next = 0
        #: Full texts are kept until then (``time.monotonic``): someone watches the trace.
        self._watched_until = 0.0

    @property
    def keeps_details(self) -> bool:
        """Whether :meth:`add` keeps a full text (else the caller need not make one)."""
        # Never watched (the common case): no clock read.
        return (
            self._watched_until > 0.0
            and bool(self._details.maxlen)
            and time.monotonic() < self._watched_until
        )

    def watch(self, seconds: float) -> None:
        """Keep full texts for the next ``seconds`` (an operator opened the trace)."""
        self._watched_until = max(self._watched_until, time.monotonic() + seconds)

    def add(self, direction: str, kind: str, text: str, detail: str | bytes | None = None) -> None:
        if not self.size:
            return
        code = _code(direction, kind)
        text = sys.intern(text)
        now = time.time()
        self._seq += 1
        if detail is not None and self.keeps_details:
            raw = detail.encode("utf-8", "replace") if isinstance(detail, str) else detail
            self._details.append((self._seq, zlib.compress(raw, 1)))
        if len(self._texts) < self.size:  # grows with use: a quiet phone costs little
            self._times.append(now)
            self._codes.append(code)
            self._texts.append(text)
            self._seqs.append(self._seq)
            return
        i = self._next
        self._times[i] = now
        self._codes[i] = code
        self._texts[i] = text
        self._seqs[i] = self._seq
        self._next = (i + 1) % self.size

    def full_entries(self) -> list[tuple[float, str, str, str, str | None]]:
        """``(unix time, direction, kind, text, full text or None)``, oldest first."""
        details = {seq: blob for seq, blob in self._details}
        order = list(range(self._next, len(self._texts))) + list(range(self._next))
        out: list[tuple[float, str, str, str, str | None]] = []
        for i in order:
            blob = details.get(self._seqs[i])
            full = zlib.decompress(blob).decode("utf-8", "replace") if blob else None
            out.append((self._times[i], *_PAIRS[self._codes[i]], self._texts[i], full))
        return out

    @property
    def entries(self) -> list[tuple[float, str, str, str]]:
        """``(unix time, direction, kind, text)``, oldest first."""
        order = list(range(self._next, len(self._texts))) + list(range(self._next))
        return [(self._times[i], *_PAIRS[self._codes[i]], self._texts[i]) for i in order]

    def __len__(self) -> int:
        return len(self._texts)
