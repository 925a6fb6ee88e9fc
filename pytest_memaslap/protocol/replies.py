"""What a reply parser reports, shared by the protocol codecs: an outcome, and what verification found."""

from __future__ import annotations

from collections.abc import Callable

from pytest_memaslap.protocol.outcomes import ERROR, HIT, MISS


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
