"""An HDR-style latency histogram: log-linear buckets, fixed relative error, mergeable.

Values (seconds) are recorded in integer nanoseconds. Bucket ``b`` covers ``[2**b, 2**(b+1))``
ns and is split into ``SUB`` equal sub-buckets, so every recorded value is known to within
``1/SUB`` of itself (SUB=128: under 0.8 %), as HdrHistogram with 2 significant digits. Counts
live in a dict (only non-empty sub-buckets), so merging histograms from several processes is
adding dicts. Percentiles are the upper edge of the sub-bucket holding that rank (never
optimistic). Written for the benchmarks (no dependency on the ``hdrhistogram`` package).

Run as a script it checks itself against sorted samples and prints a line.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterable

SUB_BITS = 7
SUB = 1 << SUB_BITS


class Histogram:
    __slots__ = ("count", "counts", "max_ns", "min_ns", "sum_ns")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.sum_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    @staticmethod
    def _index(ns: int) -> int:
        if ns < SUB:
            return ns  # exact below 128 ns
        shift = ns.bit_length() - 1 - SUB_BITS
        return ((shift + 1) << SUB_BITS) + ((ns >> shift) - SUB)

    @staticmethod
    def _upper(index: int) -> int:
        """The largest value (ns) that falls in sub-bucket ``index``."""
        if index < SUB:
            return index
        shift = (index >> SUB_BITS) - 1
        sub = (index & (SUB - 1)) + SUB
        return ((sub + 1) << shift) - 1

    def record(self, seconds: float) -> None:
        ns = max(0, round(seconds * 1e9))
        i = self._index(ns)
        self.counts[i] = self.counts.get(i, 0) + 1
        if self.count == 0 or ns < self.min_ns:
            self.min_ns = ns
        self.max_ns = max(self.max_ns, ns)
        self.count += 1
        self.sum_ns += ns

    def record_many(self, values: Iterable[float]) -> None:
        for v in values:
            self.record(v)

    def merge(self, other: Histogram) -> None:
        for i, c in other.counts.items():
            self.counts[i] = self.counts.get(i, 0) + c
        if other.count:
            self.min_ns = other.min_ns if not self.count else min(self.min_ns, other.min_ns)
            self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.sum_ns += other.sum_ns

    def percentile(self, p: float) -> float:
        """Value (seconds) at or below which ``p`` percent of the samples fall."""
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(p / 100.0 * self.count))
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return min(self._upper(i), self.max_ns) / 1e9
        return self.max_ns / 1e9

    @property
    def mean(self) -> float:
        return self.sum_ns / self.count / 1e9 if self.count else math.nan

    def summary_ms(self, percentiles: Iterable[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
        """``{"p50_ms": ..., "max_ms": ..., "mean_ms": ..., "count": n}`` for the results."""
        out: dict[str, float] = {"count": self.count}
        for p in percentiles:
            out[f"p{p:g}_ms"] = round(self.percentile(p) * 1e3, 4)
        out["max_ms"] = round(self.max_ns / 1e6, 4)
        out["mean_ms"] = round(self.mean * 1e3, 4) if self.count else math.nan
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "sub_bits": SUB_BITS,
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
            "count": self.count,
            "sum_ns": self.sum_ns,
            "min_ns": self.min_ns,
            "max_ns": self.max_ns,
        }


def _self_check() -> int:
    rng = random.Random(7)
    values = [rng.lognormvariate(-8, 1.0) for _ in range(20000)]
    h = Histogram()
    h.record_many(values)
    values.sort()
    worst = 0.0
    for p in (50, 90, 99, 99.9):
        exact = values[max(1, math.ceil(p / 100 * len(values))) - 1]
        worst = max(worst, abs(h.percentile(p) - exact) / exact)
    assert worst < 1.0 / SUB + 1e-9, worst
    print(f"histogram: {len(values)} samples, worst percentile error {worst:.4%} (<{1 / SUB:.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(_self_check())
