"""Hot path: what each connection sends next, drawn from the workload's distributions.

One ``OpSource`` per connection, each with its own RNG seeded from
(seed, shard index, connection index), so a run's request stream is
reproducible and no state is shared between connections or shards.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from ..keyspace import SAMPLE_TABLE_SIZE, ValueSource, key_chooser
from ..workload import Workload
from . import ascii

Request = tuple[int, bytes]


class OpSource:
    """Draws (command id, request bytes) for the mixed load phases, a batch at a time."""

    def __init__(
        self,
        workload: Workload,
        keys: Sequence[bytes],
        key_base: int,
        values: ValueSource,
        rng: random.Random,
        get_lines: Sequence[bytes] | None = None,
    ) -> None:
        self.rng = rng
        self.random = rng.random
        self.keys = keys
        self.key_count = len(keys)
        self.key_base = key_base
        self.values = values
        self.value_sizes = values.sizes
        self.labels = values.labels
        self.get_lines = get_lines
        self.sequential = workload.key_pattern == "sequential"
        self.chooser = key_chooser(workload.key_pattern, self.key_count, rng)
        self.cursor = rng.randrange(self.key_count) if self.sequential else 0
        names = workload.command_names()
        self.get_id = names.index("get") if "get" in names else -1
        self.commands = command_table(workload)
        self.builders: tuple[Callable[[int], bytes], ...] = tuple(getattr(self, "_" + name) for name in names)

    def batch(self, count: int) -> list[Request]:
        """The next ``count`` requests, built in one tight loop.

        One random draw picks both the key and the command: ``r * keys`` is
        uniform on [0, keys), so its integer part (the key) and its fraction
        (indexing the command table) are independent.
        """
        draw = self.random
        key_count = self.key_count
        table = self.commands
        builders = self.builders
        get_id = self.get_id
        lines = self.get_lines
        if lines is None:
            get_id = -1  # no prebuilt lines: build gets like every other command
        sequential = self.sequential
        chooser = self.chooser
        cursor = self.cursor
        out: list[Request] = []
        append = out.append
        for _ in range(count):
            if chooser is not None:
                index = chooser()
                cmd = table[int(draw() * COMMAND_TABLE_SIZE)]
            elif sequential:
                index = cursor
                cursor = cursor + 1 if cursor + 1 < key_count else 0
                cmd = table[int(draw() * COMMAND_TABLE_SIZE)]
            else:
                position = draw() * key_count
                index = int(position)
                cmd = table[int((position - index) * COMMAND_TABLE_SIZE)]
            if cmd == get_id:
                append((cmd, lines[index]))  # type: ignore[index]
            else:
                append((cmd, builders[cmd](index)))
        self.cursor = cursor
        return out

    def _get(self, index: int) -> bytes:
        return b"get " + self.keys[index] + b"\r\n"

    def _set(self, index: int) -> bytes:
        size = self.value_sizes[int(self.random() * SAMPLE_TABLE_SIZE)]
        value = self.values.value(self.key_base + index, size)
        return ascii.set_request(self.keys[index], value, self.labels[size])

    def _delete(self, index: int) -> bytes:
        return b"delete " + self.keys[index] + b"\r\n"


COMMAND_TABLE_SIZE = 1 << 16


def command_table(workload: Workload) -> list[int]:
    """Command ids in their proportions (to 1/65536): indexing it at random is one draw."""
    table: list[int] = []
    total = 0.0
    for cmd, (_, proportion) in enumerate(workload.commands):
        total += proportion
        table.extend([cmd] * (round(total * COMMAND_TABLE_SIZE) - len(table)))
    table.extend([len(workload.commands) - 1] * (COMMAND_TABLE_SIZE - len(table)))
    return table[:COMMAND_TABLE_SIZE]


def get_lines(keys: Sequence[bytes], limit: int = 2_000_000) -> list[bytes] | None:
    """Every key's get request, built once per shard and shared (skipped for huge keyspaces)."""
    if len(keys) > limit:
        return None
    return [b"get " + key + b"\r\n" for key in keys]


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


class CleanupSource:
    """Deletes every key of a connection's share once: what ``--slap-cleanup`` leaves behind is nothing."""

    def __init__(self, keys: Sequence[bytes], indices: range) -> None:
        self.keys = keys
        self.indices = iter(indices)

    def batch(self, count: int) -> list[Request]:
        return [(0, ascii.delete_request(self.keys[index])) for index in itertools.islice(self.indices, count)]
