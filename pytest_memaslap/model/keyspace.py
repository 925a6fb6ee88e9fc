"""Keys and values: a shard's slice of the keyspace, sizes drawn from distributions.

Keys are built once, as bytes, before the load starts; values are slices of one
shared random buffer, so the hot path never formats or allocates a payload
beyond the request it sends.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import secrets
import string
from collections.abc import Callable, Sequence

from pytest_memaslap.model.workload import SizeSpec, WorkloadError

_DIGITS = string.digits + string.ascii_lowercase
_FILLER = (string.ascii_letters + string.digits) * 8
SAMPLE_TABLE_SIZE = 1 << 16


def base36(number: int) -> str:
    """Compact key index, so short keys still leave room for the run prefix."""
    if number == 0:
        return "0"
    out = []
    while number:
        number, digit = divmod(number, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def sample_table(spec: SizeSpec, rng: random.Random, size: int = SAMPLE_TABLE_SIZE) -> list[int]:
    """``size`` draws from a size distribution, in random order; indexing it is one draw."""
    table: list[int] = []
    draw = rng.random
    for low, high, proportion in spec:
        count = round(size * proportion)
        if low == high:
            table.extend([low] * count)
        else:
            width = high - low + 1
            table.extend([low + int(draw() * width) for _ in range(count)])
    low, high, _ = spec[-1]
    while len(table) < size:
        table.append(low + int(draw() * (high - low + 1)))
    del table[size:]
    if len(spec) > 1:
        rng.shuffle(table)
    return table


def key_slice(keys: int, index: int, count: int) -> range:
    """Shard ``index`` of ``count`` owns this contiguous, disjoint slice of key indices."""
    return range(keys * index // count, keys * (index + 1) // count)


def min_key_size(prefix: str, keys: int) -> int:
    """The shortest key size that keeps every key of the keyspace distinct."""
    return len(prefix) + len(base36(max(keys - 1, 0)))


def check_key_size(key_size: SizeSpec, keys: int, prefix: str) -> None:
    """Every key must stay distinct under ``prefix``: the smallest key size must hold the prefix and the index."""
    needed = min_key_size(prefix, keys)
    smallest = min(low for low, _, _ in key_size)
    if smallest < needed:
        raise WorkloadError(
            f"key_size: keys of {smallest} bytes are too short for {keys} keys under the prefix "
            f"{prefix!r}; use key_size of at least {needed} (or fewer keys)"
        )


def build_keys(prefix: str, indices: range, key_size: SizeSpec, rng: random.Random) -> list[bytes]:
    """The keys of ``indices``: prefix, base-36 index, then ``-`` and filler up to the drawn size."""
    return make_keys(prefix, indices, key_sizes(prefix, indices, key_size, rng))


def key_sizes(prefix: str, indices: range, key_size: SizeSpec, rng: random.Random) -> list[int]:
    """The drawn size of each key of ``indices`` (checked: every key must stay distinct under ``prefix``)."""
    needed = min_key_size(prefix, indices.stop)
    smallest = min(low for low, _, _ in key_size)
    if smallest < needed:
        raise WorkloadError(
            f"key_size: keys of {smallest} bytes are too short for {indices.stop} keys under the prefix "
            f"{prefix!r}; use key_size of at least {needed} (or fewer keys)"
        )
    return sample_table(key_size, rng, len(indices)) if len(indices) else []


def make_keys(prefix: str, indices: range, sizes: Sequence[int]) -> list[bytes]:
    """The keys of ``indices`` with the given sizes (a slice of ``key_sizes``: a large keyspace is built in parts)."""
    keys = []
    for index, size in zip(indices, sizes, strict=True):
        stem = prefix + base36(index)
        if len(stem) < size:
            stem = stem + "-" + _FILLER[: size - len(stem) - 1]
        keys.append(stem.encode("ascii"))
    return keys


def counter_keys(keys: Sequence[bytes]) -> list[bytes]:
    """incr/decr work on numbers, not on the random values: key ``s...`` has the counter ``#...``.

    Same length (so the 250-byte limit holds) and distinct, since all keys of a run share their first byte.
    """
    return [b"#" + key[1:] for key in keys]


class ValueSource:
    """Value payloads as slices of one random buffer; a key's size and value depend only on the key.

    ``sizes`` is a table of draws from the value-size distribution (a key's
    size is the entry its index hashes to) and ``labels`` their ASCII length
    fields, both built once per shard and shared by its connections.
    """

    def __init__(self, spec: SizeSpec, rng: random.Random) -> None:
        max_size = max(high for _, high, _ in spec)
        self.max_size = max_size
        span = max_size + 65_536
        self.data = rng.randbytes(span)
        self.buffer = memoryview(self.data)
        self.span = span - max_size  # values start anywhere in [0, span): each fits in the buffer
        self.sizes = sample_table(spec, rng)
        self.labels = size_labels(self.sizes)

    def size_of(self, key_index: int) -> int:
        """Each key has one value size, drawn from the distribution by its index (as memaslap's items do).

        (The compiled draw repeats this and ``value`` in C for plain sets; a test pins the two together.)
        """
        return self.sizes[((key_index * 2_654_435_761) >> 7) % SAMPLE_TABLE_SIZE]

    def value(self, key_index: int, size: int) -> memoryview:
        offset = (key_index * 2_654_435_761) % self.span
        return self.buffer[offset : offset + size]


def size_labels(sizes: Sequence[int]) -> dict[int, bytes]:
    """ASCII length fields for every size that can occur (formatted once, not per request)."""
    return {size: str(size).encode("ascii") for size in set(sizes)}


@functools.lru_cache(maxsize=4)
def zipf_cumulative(count: int, theta: float) -> list[float]:
    """Running sums of 1/rank^theta over the keyspace: built once, shared by all connections.

    A list, not an array: bisect then compares stored floats without boxing one per probe.
    """
    return list(itertools.accumulate(1.0 / (rank**theta) for rank in range(1, count + 1)))


class Zipfian:
    """Key ranks drawn with probability proportional to 1/rank^theta (rank 0 is the hottest key).

    Exact inverse-CDF sampling: a binary search (C's bisect) over the shared
    cumulative table, so each draw is O(log keys) and the distribution is the
    Zipf law itself, not an approximation of its tail.
    """

    def __init__(self, count: int, theta: float, draw: Callable[[], float]) -> None:
        self.cumulative = zipf_cumulative(count, theta)
        self.total = self.cumulative[-1]
        self.last = count - 1
        self.draw = draw

    def __call__(self) -> int:
        rank = bisect.bisect_right(self.cumulative, self.draw() * self.total)
        return rank if rank <= self.last else self.last


class Gaussian:
    """Key indices around the middle of the keyspace (memtier_benchmark's G pattern), clamped to it."""

    def __init__(self, count: int, sigma_fraction: float, gauss: Callable[[float, float], float]) -> None:
        self.count = count
        self.mean = (count - 1) / 2.0
        self.sigma = sigma_fraction * count
        self.gauss = gauss

    def __call__(self) -> int:
        index = int(round(self.gauss(self.mean, self.sigma)))
        return 0 if index < 0 else (self.count - 1 if index >= self.count else index)


class Latest:
    """YCSB's read-latest: the most recently inserted keys are the most popular (a Zipfian over recency).

    The newest key moves on by one in ``inserts`` of the draws (that draw is
    the insert: it returns the new newest key), over the keyspace as a ring;
    every other draw is the newest key less a Zipfian rank. Which command a
    draw serves is drawn apart, so an insert may be a get and a set may
    update a recent key: the popularity moves as YCSB's does, the command of
    each insert does not follow it.
    """

    def __init__(self, count: int, inserts: float, draw: Callable[[], float], theta: float = 0.99) -> None:
        self.count = count
        self.inserts = inserts
        self.newest = count - 1  # the preloaded keyspace: its last key is the newest
        self.ranks = Zipfian(count, theta, draw)
        self.draw = draw

    def __call__(self) -> int:
        if self.draw() < self.inserts:
            self.newest = self.newest + 1 if self.newest + 1 < self.count else 0
            return self.newest
        index = self.newest - self.ranks()
        return index if index >= 0 else index + self.count


def key_chooser(pattern: str, count: int, rng: random.Random) -> Callable[[], int] | None:
    """A draw of key indices for ``zipf``/``gaussian``/``latest``; None for uniform and sequential (inline)."""
    name, _, parameter = pattern.partition(":")
    if name == "zipf":
        return Zipfian(count, float(parameter), rng.random)
    if name == "latest":
        return Latest(count, float(parameter), rng.random)
    if name == "gaussian":
        return Gaussian(count, float(parameter), rng.gauss)
    return None


def new_token() -> str:
    """Four base-36 characters naming this run in every key it writes."""
    return base36(secrets.randbelow(36**4)).rjust(4, "0")


def call_off_key(token: str) -> str:
    """The key that tells a run's waiting shards to stop (its value says why): one for the whole run."""
    return f"s{token}:call-off"


def key_prefix(token: str, item_index: int, call: int) -> str:
    """The prefix of every key of one slap() call; equal on all shards of that call."""
    return f"s{token}{base36(item_index)}_{base36(call)}:"


SHORTEST_PREFIX = key_prefix("0000", 0, 1)  # (a run's first test's first call: no call's prefix is shorter)
