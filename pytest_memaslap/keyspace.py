"""Keys and values: a shard's slice of the keyspace, sizes drawn from distributions.

Keys are built once, as bytes, before the load starts; values are slices of one
shared random buffer, so the hot path never formats or allocates a payload
beyond the request it sends.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

from .workload import SizeSpec, WorkloadError

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


def build_keys(prefix: str, indices: range, key_size: SizeSpec, rng: random.Random) -> list[bytes]:
    """The keys of ``indices``: prefix, base-36 index, then ``-`` and filler up to the drawn size."""
    needed = min_key_size(prefix, indices.stop)
    smallest = min(low for low, _, _ in key_size)
    if smallest < needed:
        raise WorkloadError(
            f"key_size: keys of {smallest} bytes are too short for {indices.stop} keys under the prefix "
            f"{prefix!r}; use key_size of at least {needed} (or fewer keys)"
        )
    sizes = sample_table(key_size, rng, len(indices)) if len(indices) else []
    keys = []
    for index, size in zip(indices, sizes, strict=True):
        stem = prefix + base36(index)
        if len(stem) < size:
            stem = stem + "-" + _FILLER[: size - len(stem) - 1]
        keys.append(stem.encode("ascii"))
    return keys


class ValueSource:
    """Value payloads as slices of one random buffer; a key's value depends only on (key, size).

    ``sizes`` is a table of draws from the value-size distribution (indexing it
    at random is one draw) and ``labels`` their ASCII length fields, both built
    once per shard and shared by its connections.
    """

    def __init__(self, spec: SizeSpec, rng: random.Random) -> None:
        max_size = max(high for _, high, _ in spec)
        self.max_size = max_size
        span = max_size + 65_536
        self.buffer = memoryview(rng.randbytes(span))
        self._span = span - max_size
        self.sizes = sample_table(spec, rng)
        self.labels = size_labels(self.sizes)

    def value(self, key_index: int, size: int) -> memoryview:
        offset = (key_index * 2_654_435_761) % self._span
        return self.buffer[offset : offset + size]


def size_labels(sizes: Sequence[int]) -> dict[int, bytes]:
    """ASCII length fields for every size that can occur (formatted once, not per request)."""
    return {size: str(size).encode("ascii") for size in set(sizes)}
