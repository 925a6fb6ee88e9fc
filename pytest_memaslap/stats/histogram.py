"""Latency histograms: log-linear buckets over nanoseconds, exact to merge.

Pure numbers: no pytest, no I/O, no clock. Values below 256 ns are exact;
above, every power of two is split into 128 linear sub-buckets, so a reported
value (the bucket midpoint) is within 0.4 % of the true sample. Merging adds
counts, so the merge of two histograms is the histogram of both sample sets.

The bucket maths has one home, ``bucket_index``; the hot path inlines it
(``engine/hot/connection.py``) and a test pins that copy to this one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

SUB_BITS = 7
SUB_COUNT = 1 << SUB_BITS
EXACT_LIMIT = SUB_COUNT << 1
MAX_SHIFT = 40
BUCKET_COUNT = EXACT_LIMIT + (MAX_SHIFT << SUB_BITS)
LAST_BUCKET = BUCKET_COUNT - 1

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))
SPECTRUM = (10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.995, 99.999, 99.9995, 99.9999)


def bucket_index(value_ns: int) -> int:
    """The bucket a latency in nanoseconds falls into (the hot path inlines this)."""
    bits = value_ns.bit_length()
    if bits <= SUB_BITS + 1:
        return value_ns if value_ns > 0 else 0
    shift = bits - SUB_BITS - 1
    index = (shift << SUB_BITS) + (value_ns >> shift)
    return index if index < BUCKET_COUNT else LAST_BUCKET


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest and highest nanosecond value that land in bucket ``index``."""
    if index < EXACT_LIMIT:
        return index, index
    shift = (index >> SUB_BITS) - 1
    sub = index - (shift << SUB_BITS)
    return sub << shift, ((sub + 1) << shift) - 1


def bucket_value(index: int) -> float:
    """The value reported for a bucket: its midpoint, in nanoseconds."""
    low, high = bucket_bounds(index)
    return (low + high) / 2.0


class Histogram:
    """Log-linear latency histogram over nanoseconds; ``counts`` is dense and mergeable."""

    __slots__ = ("counts",)

    def __init__(self, counts: list[int] | None = None) -> None:
        self.counts = counts if counts is not None else [0] * BUCKET_COUNT

    def record(self, value_ns: int, count: int = 1) -> None:
        """Add ``count`` samples of ``value_ns`` (tests and slow paths; the engine inlines it)."""
        self.counts[bucket_index(value_ns)] += count

    def merge(self, other: Histogram) -> None:
        """Add another histogram's samples to this one."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def _nonzero(self) -> Iterable[tuple[int, int]]:
        return ((i, c) for i, c in enumerate(self.counts) if c)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0 < q <= 100) in nanoseconds; 0.0 when empty."""
        total = self.total
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(total * q / 100.0))
        seen = 0
        for index, count in self._nonzero():
            seen += count
            if seen >= rank:
                return bucket_value(index)
        return self.max()

    def max(self) -> float:
        for index in range(BUCKET_COUNT - 1, -1, -1):
            if self.counts[index]:
                return bucket_value(index)
        return 0.0

    def mean(self) -> float:
        total = self.total
        if not total:
            return 0.0
        return sum(bucket_value(i) * c for i, c in self._nonzero()) / total

    def stdev(self) -> float:
        total = self.total
        if total < 2:
            return 0.0
        mean = self.mean()
        var = sum(c * (bucket_value(i) - mean) ** 2 for i, c in self._nonzero()) / total
        return math.sqrt(var)

    def summary_us(self) -> dict[str, float]:
        """Percentiles, max, mean and stdev in microseconds (the units users read)."""
        out = {name: round(self.percentile(q) / 1000.0, 3) for name, q in PERCENTILES}
        out["max"] = round(self.max() / 1000.0, 3)
        out["mean"] = round(self.mean() / 1000.0, 3)
        out["stdev"] = round(self.stdev() / 1000.0, 3)
        return out

    def spectrum_us(self) -> list[tuple[float, float]]:
        """(percentile, µs) from p10 to the max, HdrHistogram-style; only the tail ranks the count can resolve."""
        total = self.total
        points = [q for q in SPECTRUM if total * (100.0 - q) / 100.0 >= 1.0]
        out = [(q, round(self.percentile(q) / 1000.0, 3)) for q in points]
        return out + [(100.0, round(self.max() / 1000.0, 3))] if total else []

    def to_sparse(self) -> dict[int, int]:
        return dict(self._nonzero())

    @classmethod
    def from_sparse(cls, sparse: dict[int, int]) -> Histogram:
        hist = cls()
        for index, count in sparse.items():
            hist.counts[int(index)] += count
        return hist
