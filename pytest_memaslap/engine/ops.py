"""Hot path: what each connection sends next, drawn from the workload's distributions.

One ``OpSource`` per connection, each with its own RNG seeded from
(seed, shard index, connection index), so a run's request stream is
reproducible and no state is shared between connections or shards.
"""

from __future__ import annotations

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

    def next_request(self) -> Request:
        draw = self.random()
        cmd = 0
        for bound in self.bounds:
            if draw < bound:
                break
            cmd += 1
        if self.sequential:
            index = self.cursor
            self.cursor = index + 1 if index + 1 < self.key_count else 0
        else:
            index = int(self.random() * self.key_count)
        return cmd, self.builders[cmd](index)

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

    def next_request(self) -> Request:
        index = next(self.indices)
        size = self.value_sizes[int(self.random() * SAMPLE_TABLE_SIZE)]
        value = self.values.value(self.key_base + index, size)
        return self.set_cmd, ascii.set_request(self.keys[index], value, self.labels[size])
