"""What a reply parser reports, shared by the protocol codecs: an outcome, and what verification found."""

from __future__ import annotations

import time
from collections.abc import Callable

HIT = 0
MISS = 1
ERROR = 2


class VerifyLog:
    """What ``verify`` and ``expire`` found: values checked and wrong, expired keys checked and still there."""

    KEEP = 10

    def __init__(self) -> None:
        self.checked = 0
        self.mismatches = 0
        self.keys: list[str] = []
        self.expired_checked = 0
        self.expired_returned = 0
        self.expired_keys: list[str] = []

    def mismatch(self, key: bytes) -> None:
        self.mismatches += 1
        if len(self.keys) < self.KEEP:
            self.keys.append(key.decode("ascii", "replace"))

    def returned_after_expiry(self, key: bytes) -> None:
        self.expired_returned += 1
        if len(self.expired_keys) < self.KEEP:
            self.expired_keys.append(key.decode("ascii", "replace"))

    def to_dict(self) -> dict[str, int | list[str]]:
        return {
            "checked": self.checked,
            "mismatches": self.mismatches,
            "keys": list(self.keys),
            "expired_checked": self.expired_checked,
            "expired_returned": self.expired_returned,
            "expired_keys": list(self.expired_keys),
        }


def parse_value_blocks(
    opener: bytes,
    value_block: Callable[[bytearray | bytes, int, int], int],
    closer: bytes,
    buf: bytearray | bytes,
    pos: int,
    expect: int,
) -> tuple[int, int]:
    """A text multi-get's reply: value blocks (lines starting ``opener``) up to the ``closer`` line.

    A hit when all ``expect`` keys came back, a miss when some did not.
    ``value_block`` gives where a block ends: -1 incomplete, -2 malformed.
    """
    found = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1, ERROR
        if buf.startswith(opener, pos):
            end = value_block(buf, pos, eol)
            if end < 0:
                return (-1, ERROR) if end == -1 else (eol + 2, ERROR)
            found += 1
            pos = end
            continue
        if eol + 2 - pos == len(closer) and buf.startswith(closer, pos):
            if found > expect:
                return eol + 2, ERROR
            return eol + 2, (HIT if found == expect else MISS)
        return eol + 2, ERROR


def command_parsers(
    get: Callable[..., tuple[int, int]],
    gets: Callable[..., tuple[int, int]],
    store: Callable[..., tuple[int, int]],
    delete: Callable[..., tuple[int, int]],
    touch: Callable[..., tuple[int, int]],
    arith: Callable[..., tuple[int, int]],
) -> dict[str, Callable[..., tuple[int, int]]]:
    """A text codec's parser per command: which commands share a reply shape is the same in every text protocol."""
    storage = dict.fromkeys(("set", "add", "replace", "append", "prepend", "cas"), store)
    return {"get": get, "gets": gets, **storage, "delete": delete, "touch": touch, "incr": arith, "decr": arith}


class CasStep:
    """A ``cas`` op's first half: the ``gets`` whose reply carries the CAS unique the ``cas`` then sends.

    The reply's parser builds the ``cas`` request and leaves it in ``followups``,
    which the connection sends right away, in place of a new request.
    """

    __slots__ = ("key", "value", "size_label", "followups", "slot")

    def __init__(
        self, key: bytes, value: memoryview, size_label: bytes, followups: list[tuple[int, bytes]], slot: int
    ) -> None:
        self.key, self.value, self.size_label, self.followups, self.slot = key, value, size_label, followups, slot

    def follow(self, request: bytes) -> None:
        self.followups.append((self.slot, request))


VerifyExpect = tuple[bytes, int, memoryview, bytes, VerifyLog]  # hit header, total length, value, key, log


def parse_verified_get(
    parse_get: Callable[..., tuple[int, int]],
    data_offset: int | None,
    buf: bytearray | bytes,
    pos: int,
    expect: VerifyExpect,
) -> tuple[int, int]:
    """A get whose value is checked byte for byte against what this shard writes to the key.

    A miss is a miss (the key may have been deleted); a value that differs is
    an error of the get, and its key goes into the log. ``data_offset``: where
    the value starts in the reply (None: right after the expected header).
    """
    header, total, value, key, log = expect
    end, outcome = parse_get(buf, pos, None)
    if end < 0 or outcome != HIT:
        return end, outcome
    log.checked += 1
    start = pos + (len(header) if data_offset is None else data_offset)
    if end != pos + total or not buf.startswith(header, pos) or memoryview(buf)[start : start + len(value)] != value:
        log.mismatch(key)
        return end, ERROR
    return end, HIT


EXPIRY_SLACK_S = 1.5  # memcached's clock ticks once a second: a key is surely gone this long after its TTL


class ExpiryBook:
    """``expire=``: which keys were set with a TTL, when they must be gone, and how often each was written.

    Shared by a shard's connections and written when a set is built. Each key
    has one writing connection (so its sets reach the server in the order they
    were built), and a get that finds a value is only wrong if no set of that
    key was built since the get was: the generation counter tells.
    """

    def __init__(self) -> None:
        self.deadlines: dict[int, float] = {}
        self.generations: dict[int, int] = {}

    def wrote(self, key_index: int, ttl_s: float | None) -> None:
        self.generations[key_index] = self.generations.get(key_index, 0) + 1
        if ttl_s is None:
            self.deadlines.pop(key_index, None)
        else:
            self.deadlines[key_index] = time.monotonic() + ttl_s

    def expired(self, key_index: int) -> int | None:
        """The key's generation if its TTL surely ran out; None if it may still be there."""
        deadline = self.deadlines.get(key_index)
        if deadline is None or time.monotonic() <= deadline + EXPIRY_SLACK_S:
            return None
        return self.generations.get(key_index, 0)


ExpiredExpect = tuple[bytes, VerifyLog, ExpiryBook, int, int]  # key, log, book, key index, generation


def parse_expired_get(
    parse_get: Callable[..., tuple[int, int]], buf: bytearray | bytes, pos: int, expect: ExpiredExpect
) -> tuple[int, int]:
    """A get of a key whose TTL has passed: a miss is right (counted as a miss), a value is an error."""
    key, log, book, key_index, generation = expect
    end, outcome = parse_get(buf, pos, None)
    if end < 0:
        return end, outcome
    if book.generations.get(key_index, 0) != generation:
        return end, outcome  # written again since: whatever came back may be right; not a check
    log.expired_checked += 1
    if outcome == HIT:
        log.returned_after_expiry(key)
        return end, ERROR
    return end, outcome
