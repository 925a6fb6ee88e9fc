"""The slow path: rare, side-effecting reply handling that the hot loop hands off.

Verified gets (``verify=``: the value is compared byte for byte with what this
shard wrote) and gets of keys whose TTL ran out (``expire=``) are the only
replies that need more than an outcome code. They are parsed by the codec's
plain get parser and then checked here, against the shard's ``VerifyLog`` and
``ExpiryBook``. (A ``cas``'s follow-up request is queued by the codec itself,
through ``protocol.replies.CasStep``; multi-gets use ``parse_value_blocks``.)
Nothing here is on the path of an ordinary reply.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from pytest_memaslap.protocol.outcomes import ERROR, HIT


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


def verified_get_parser(codec: Any) -> Callable[..., tuple[int, int]]:
    """The codec's get parser with the value check added (the codec says where a value starts)."""
    return functools.partial(parse_verified_get, codec.parse_get, codec.VALUE_OFFSET)


def expired_get_parser(codec: Any) -> Callable[..., tuple[int, int]]:
    """The codec's get parser with the expiry check added."""
    return functools.partial(parse_expired_get, codec.parse_get)
