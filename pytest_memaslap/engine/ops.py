"""Hot path: what each connection sends next, drawn from the workload's distributions.

One ``OpSource`` per connection, each with its own RNG seeded from
(seed, shard index, connection index), so a run's request stream is
reproducible and no state is shared between connections or shards.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from ..keyspace import SAMPLE_TABLE_SIZE, ValueSource
from ..workload import Workload
from . import ascii

Request = tuple[int, bytes]


class OpSource:
    """Draws (command id, request bytes) for the mixed load phases."""

    def __init__(
        self,
        workload: Workload,
        keys: Sequence[bytes],
        key_base: int,
        values: ValueSource,
        rng: random.Random,
    ) -> None:
        self.random = rng.random
        self.keys = keys
        self.key_count = len(keys)
        self.key_base = key_base
        self.values = values
        self.value_sizes = values.sizes
        self.labels = values.labels
        self.sequential = workload.key_pattern == "sequential"
        self.cursor = rng.randrange(self.key_count) if self.sequential else 0
        bounds: list[float] = []
        total = 0.0
        builders: list[Callable[[int], bytes]] = []
        for name, proportion in workload.commands:
            total += proportion
            bounds.append(total)
            builders.append(getattr(self, "_" + name))
        bounds[-1] = 2.0  # rounding can never fall off the end
        self.bounds = tuple(bounds)
        self.builders = tuple(builders)

    def batch(self, count: int) -> list[Request]:
        """The next ``count`` requests, built in one tight loop (cheaper than one call each)."""
        draw = self.random
        bounds = self.bounds
        builders = self.builders
        key_count = self.key_count
        out = []
        if self.sequential:
            cursor = self.cursor
            for _ in range(count):
                value = draw()
                cmd = 0
                for bound in bounds:
                    if value < bound:
                        break
                    cmd += 1
                out.append((cmd, builders[cmd](cursor)))
                cursor = cursor + 1 if cursor + 1 < key_count else 0
            self.cursor = cursor
            return out
        keys = self.keys
        if builders[0] == self._get and len(bounds) <= 2:
            # the common mixes (get only, or get first then one more command): gets built inline
            first = bounds[0]
            other = builders[-1]
            for _ in range(count):
                index = int(draw() * key_count)
                if draw() < first:
                    out.append((0, b"get " + keys[index] + b"\r\n"))
                else:
                    out.append((1, other(index)))
            return out
        for _ in range(count):
            value = draw()
            cmd = 0
            for bound in bounds:
                if value < bound:
                    break
                cmd += 1
            out.append((cmd, builders[cmd](int(draw() * key_count))))
        return out

    def _get(self, index: int) -> bytes:
        return b"get " + self.keys[index] + b"\r\n"

    def _set(self, index: int) -> bytes:
        size = self.value_sizes[int(self.random() * SAMPLE_TABLE_SIZE)]
        value = self.values.value(self.key_base + index, size)
        return ascii.set_request(self.keys[index], value, self.labels[size])

    def _delete(self, index: int) -> bytes:
        return b"delete " + self.keys[index] + b"\r\n"


class PreloadSource:
    """Sets every key of a connection's share once, so later gets hit."""

    def __init__(
        self,
        keys: Sequence[bytes],
        indices: range,
        key_base: int,
        values: ValueSource,
        rng: random.Random,
        set_cmd: int,
    ) -> None:
        self.keys = keys
        self.indices = iter(indices)
        self.count = len(indices)
        self.key_base = key_base
        self.values = values
        self.random = rng.random
        self.value_sizes = values.sizes
        self.labels = values.labels
        self.set_cmd = set_cmd

    def batch(self, count: int) -> list[Request]:
        out = []
        for index in itertools.islice(self.indices, count):
            size = self.value_sizes[int(self.random() * SAMPLE_TABLE_SIZE)]
            value = self.values.value(self.key_base + index, size)
            out.append((self.set_cmd, ascii.set_request(self.keys[index], value, self.labels[size])))
        return out
