"""Hot path: what each connection sends next, drawn from the workload's distributions.

One ``OpSource`` per connection, each with its own RNG seeded from
(seed, shard index, connection index), so a run's request stream is
reproducible and no state is shared between connections or shards.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from pytest_memaslap.engine.hot.slow import ExpiryBook, VerifyLog
from pytest_memaslap.model.keyspace import ValueSource, base36, key_chooser
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.protocol.codecs import CODECS, Codec
from pytest_memaslap.protocol.replies import CasStep

APPEND_CHUNK = b"+appended"  # what append/prepend add: small, so values grow slowly (a set restores the size)
COUNTER_START = b"1000000"  # preloaded counters: room for a million decrs before memcached stops them at 0
# what a reply's parser is told in advance: a get's hit reply (header, total length), a multi-get's key
# count, a verified get's expected value; None: parse it the general way
Expect = Any
Request = tuple[int, bytes, Expect]


class OpSource:
    """Draws (command id, request bytes) for the mixed load phases, a batch at a time."""

    def __init__(
        self,
        workload: Workload,
        keys: Sequence[bytes],
        key_base: int,
        values: ValueSource,
        rng: random.Random,
        get_lines: GetLines | None = None,
        counters: Sequence[bytes] | None = None,
        verify_log: VerifyLog | None = None,
        expiry: ExpiryBook | None = None,
        writer: tuple[int, int] = (0, 1),
        fresh_prefix: str = "",
        followups: list[tuple[int, bytes]] | None = None,
    ) -> None:
        self.random = rng.random
        self.codec = CODECS[workload.protocol]
        self.keys = keys
        self.counters = counters if counters is not None else keys
        self.key_count = len(keys)
        self.key_base = key_base
        self.values = values
        self.labels = values.labels
        self.get_lines = get_lines
        self.sequential = workload.key_pattern == "sequential"
        self.chooser = key_chooser(workload.key_pattern, self.key_count, rng)
        self.cursor = rng.randrange(self.key_count) if self.sequential else 0
        names = workload.command_names()
        self.get_id = names.index("get") if "get" in names else -1
        self.commands = command_table(workload)
        self.command_ends = command_ends(self.commands)
        self.builders: tuple[Callable[[int], bytes], ...] = tuple(getattr(self, "_" + name) for name in names)
        # gets that are multi-gets or verified take their own reply parsers: slots after the commands'
        self.division = workload.division
        self.verify = workload.verify
        self.verify_log = verify_log or VerifyLog()
        special = workload.division > 1 or workload.verify > 0 or workload.expire > 0
        self.special_get = self.get_id if special else -2
        self.verify_slot, self.multi_slot, self.expired_slot = extra_slots(workload)
        # cas: a gets (its own statistics) whose reply sends the cas, via the connection's followups
        measured = workload.measured_commands()
        self.cas_id = names.index("cas") if "cas" in names else -2
        self.gets_slot = measured.index("gets") if "gets" in measured else -1
        self.followups = followups if followups is not None else []
        # expire=: sets with a TTL note when their key must be gone (shared by the shard's connections)
        self.expire = workload.expire
        self.expiry = expiry if expiry is not None else ExpiryBook()
        self.writer_rank, self.writers = writer  # expire=: this connection sets only keys it owns
        # overwrite < 1: the other sets write new keys, under this connection's own prefix, never read back
        self.overwrite = workload.overwrite
        self.fresh_prefix = fresh_prefix
        self.fresh_written = 0
        self.ttl_label = str(int(workload.expire_after)).encode()
        self.ttl_s = workload.expire_after
        # a plain set (ASCII, no TTL, overwriting its own key) the compiled draw builds in C, as ``_set`` would;
        # its key arithmetic is exact in 64 bits below 2**32 keys
        plain = not workload.expire and workload.overwrite >= 1 and workload.protocol == "ascii"
        plain = plain and isinstance(keys, list) and key_base + len(keys) < 2**32
        self.plain_set_id = names.index("set") if plain and "set" in names else -3

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
        special_get = self.special_get
        cas_id = self.cas_id
        if lines is None or special_get >= 0:
            get_id = -1  # no prebuilt lines, or gets of a special kind: build them one by one
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
                line = lines[index]  # type: ignore[index]
                append((cmd, line[2], line))  # (the line is its own expect: header and length first)
            elif cmd == special_get:
                append(self._special_get(cmd, index))
            elif cmd == cas_id:
                append(self._cas(cmd, index))
            else:
                append((cmd, builders[cmd](index), None))
        self.cursor = cursor
        return out

    def _get(self, index: int) -> bytes:
        return self.codec.get_request(self.keys[index])

    def _gets(self, index: int) -> bytes:
        return self.codec.gets_request(self.keys[index])

    def _cas(self, cmd: int, index: int) -> Request:
        """A read-modify-write: ``gets`` now; its reply sends ``cas`` with the same value and the unique it got."""
        key_index = self.key_base + index
        size = self.values.size_of(key_index)
        step = CasStep(self.keys[index], self.values.value(key_index, size), self.labels[size], self.followups, cmd)
        return (self.gets_slot, self.codec.gets_request(self.keys[index]), step)

    def _special_get(self, cmd: int, index: int) -> Request:
        """A multi-get of ``division`` keys (this one first), or a get whose value will be verified."""
        keys = self.keys
        if self.division > 1:
            chosen = [keys[index]]
            count = self.key_count
            for step in range(1, self.division):
                if self.chooser is not None:
                    chosen.append(keys[self.chooser()])
                elif self.sequential:
                    chosen.append(keys[(index + step) % count])
                else:
                    chosen.append(keys[int(self.random() * count)])
            return (self.multi_slot, self.codec.multi_get_request(chosen), self.division)
        key = keys[index]
        if self.expire:
            generation = self.expiry.expired(self.key_base + index)
            if generation is not None:
                gone = (key, self.verify_log, self.expiry, self.key_base + index, generation)
                return (self.expired_slot, self.codec.get_request(key), gone)
        if self.random() >= self.verify:
            return (cmd, self.codec.get_request(key), None)
        key_index = self.key_base + index
        size = self.values.size_of(key_index)
        header, total = self.codec.expected_hit(key, self.labels[size], size)
        expect = (header, total, self.values.value(key_index, size), key, self.verify_log)
        return (self.verify_slot, self.codec.get_request(key), expect)

    def _set(self, index: int) -> bytes:
        if self.expire:
            return self._set_maybe_expiring(index)
        if self.overwrite < 1 and self.random() >= self.overwrite:
            return self._set_fresh(index)
        key_index = self.key_base + index
        size = self.values.size_of(key_index)
        return self.codec.set_request(self.keys[index], self.values.value(key_index, size), self.labels[size])

    def _set_fresh(self, index: int) -> bytes:
        """A set of a key never written before (memaslap's sets that do not overwrite); key ``index``'s value."""
        key = self._fresh(self.fresh_written)
        self.fresh_written += 1
        key_index = self.key_base + index
        size = self.values.size_of(key_index)
        return self.codec.set_request(key, self.values.value(key_index, size), self.labels[size])

    def _fresh(self, number: int) -> bytes:
        """The ``number``-th new key: as long as a key of the keyspace, so sizes follow ``key_size``."""
        return fresh_key(self.fresh_prefix, number, len(self.keys[number % self.key_count]))

    def fresh_keys(self) -> list[bytes]:
        """Every new key this source wrote (for --slap-cleanup)."""
        return [self._fresh(n) for n in range(self.fresh_written)]

    def _set_maybe_expiring(self, index: int) -> bytes:
        """expire=: a set of a key this connection owns, with a TTL in ``expire`` of the cases."""
        owned = index - index % self.writers + self.writer_rank
        index = owned if owned < self.key_count else max(0, owned - self.writers)
        key_index = self.key_base + index
        size = self.values.size_of(key_index)
        value = self.values.value(key_index, size)
        if self.random() < self.expire:
            self.expiry.wrote(key_index, self.ttl_s)
            return self.codec.set_ttl_request(self.keys[index], value, self.labels[size], self.ttl_label)
        self.expiry.wrote(key_index, None)
        return self.codec.set_request(self.keys[index], value, self.labels[size])

    def _delete(self, index: int) -> bytes:
        return self.codec.delete_request(self.keys[index])

    def _store(self, verb: bytes, index: int) -> bytes:
        key_index = self.key_base + index
        size = self.values.size_of(key_index)
        return self.codec.store_request(verb, self.keys[index], self.values.value(key_index, size), self.labels[size])

    def _add(self, index: int) -> bytes:
        return self._store(b"add", index)

    def _replace(self, index: int) -> bytes:
        return self._store(b"replace", index)

    def _append(self, index: int) -> bytes:
        return self.codec.store_request(b"append", self.keys[index], APPEND_CHUNK, _CHUNK_LABEL)

    def _prepend(self, index: int) -> bytes:
        return self.codec.store_request(b"prepend", self.keys[index], APPEND_CHUNK, _CHUNK_LABEL)

    def _touch(self, index: int) -> bytes:
        return self.codec.touch_request(self.keys[index])

    def _incr(self, index: int) -> bytes:
        return self.codec.arith_request(b"incr", self.counters[index])

    def _decr(self, index: int) -> bytes:
        return self.codec.arith_request(b"decr", self.counters[index])


_CHUNK_LABEL = str(len(APPEND_CHUNK)).encode()


COMMAND_TABLE_SIZE = 1 << 16


def extra_slots(workload: Workload) -> tuple[int, int, int]:
    """Slot numbers of verified gets, multi-gets and gets of expired keys: after the measured commands, as gets."""
    count = len(workload.measured_commands())
    return count, count + 1, count + 2


def command_table(workload: Workload) -> bytes:
    """Command ids in their proportions (to 1/65536): indexing it at random is one draw.

    One byte an entry (there are fewer than 256 commands): 64 KiB that a
    random index reads from the CPU's cache, where a list of ints is 512 KiB
    of pointers that it often reads from memory.
    """
    table = bytearray()
    total = 0.0
    for cmd, (_, proportion) in enumerate(workload.commands):
        total += proportion
        table.extend(bytes([cmd]) * (round(total * COMMAND_TABLE_SIZE) - len(table)))
    table.extend(bytes([len(workload.commands) - 1]) * (COMMAND_TABLE_SIZE - len(table)))
    return bytes(table[:COMMAND_TABLE_SIZE])


def command_ends(table: bytes) -> tuple[int, ...]:
    """Where each command's run in ``table`` ends (it holds the ids in order): the compiled draw compares an
    index with these few numbers instead of reading the table, which is one more cache miss per request."""
    return tuple(bisect_right(table, cmd) for cmd in range(table[-1] + 1))


# per key: (the hit's header, the hit's whole length, the get request); the first two are what the parser
# expects, so a line is its own ``expect``: one object less to reach per get, where cache misses cost most
GetLines = list[tuple[bytes, int, bytes]]


def get_lines(
    keys: Sequence[bytes], key_base: int, values: ValueSource, codec: Codec | None = None, limit: int = 500_000
) -> GetLines | None:
    """Every key's get request and the reply it gets on a hit, built once per shard and shared.

    Knowing a hit's reply in advance (the shard owns its keys, and a key's
    value size is fixed) lets the parser check one prefix instead of parsing
    the header. A line is one tuple that is also the parser's ``expect``:
    a get draws from a keyspace of a million keys or more, so each object it
    touches is a likely cache miss (measured: 0.8 µs more user CPU per
    request at 96k keys than at 1k, before this layout). Skipped for huge
    keyspaces (memory), where gets are built and parsed the general way.
    """
    if len(keys) > limit:
        return None
    codec = codec or CODECS["ascii"]
    lines: GetLines = []
    lengths: dict[int, int] = {}  # one int object per distinct length, shared by the keys (and warm in cache)
    for index, key in enumerate(keys):
        size = values.size_of(key_base + index)
        header, length = codec.expected_hit(key, values.labels[size], size)
        lines.append((header, lengths.setdefault(length, length), codec.get_request(key)))
    return lines


class PreloadSource:
    """Sets every key of a connection's share once, so later gets hit (and its counter, for incr/decr)."""

    def __init__(
        self,
        keys: Sequence[bytes],
        indices: range,
        key_base: int,
        values: ValueSource,
        set_cmd: int,
        counters: Sequence[bytes] | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.codec = codec or CODECS["ascii"]
        self.keys = keys
        self.counters = counters
        self.requests = itertools.chain.from_iterable(self._requests(i) for i in indices)
        self.count = len(indices) * (2 if counters is not None else 1)
        self.key_base = key_base
        self.values = values
        self.labels = values.labels
        self.set_cmd = set_cmd

    def _requests(self, index: int) -> list[bytes]:
        key_index = self.key_base + index
        size = self.values.size_of(key_index)
        set_request = self.codec.set_request
        requests = [set_request(self.keys[index], self.values.value(key_index, size), self.labels[size])]
        if self.counters is not None:
            requests.append(set_request(self.counters[index], COUNTER_START, _COUNTER_LABEL))
        return requests

    def batch(self, count: int) -> list[Request]:
        return [(self.set_cmd, request, None) for request in itertools.islice(self.requests, count)]


_COUNTER_LABEL = str(len(COUNTER_START)).encode()


def fresh_key(prefix: str, number: int, length: int) -> bytes:
    """The ``number``-th new key of a connection: its prefix, a base-36 count, filler up to ``length``."""
    stem = f"{prefix}{base36(number)}"
    if len(stem) + 1 < length:
        stem = f"{stem}-{'x' * (length - len(stem) - 1)}"
    return stem.encode("ascii")


class CleanupSource:
    """Deletes every key of a connection's share once: what ``--slap-cleanup`` leaves behind is nothing."""

    def __init__(
        self,
        keys: Sequence[bytes],
        indices: range,
        counters: Sequence[bytes] | None = None,
        codec: Codec | None = None,
        fresh: list[bytes] = [],  # noqa: B006 (read only)
    ) -> None:
        self.count = len(indices) * (2 if counters is not None else 1) + len(fresh)
        lists = [keys] if counters is None else [keys, counters]
        delete = (codec or CODECS["ascii"]).delete_request
        owned = (delete(names[i]) for i in indices for names in lists)
        self.requests = itertools.chain(owned, (delete(key) for key in fresh))

    def batch(self, count: int) -> list[Request]:
        return [(0, request, None) for request in itertools.islice(self.requests, count)]
