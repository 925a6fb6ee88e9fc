"""Hot path: the memcached ASCII protocol codec (retrieval, storage, delete, touch, incr/decr).

Requests are built by concatenating pre-built bytes; replies are parsed by
searching the receive buffer for line ends, never byte by byte. A parser takes
the buffer and a position and returns ``(end, outcome)``: ``end`` is -1 when
the reply is not complete yet; ``outcome`` is HIT, MISS or ERROR.
"""

from __future__ import annotations

from pytest_memaslap.protocol import replies
from pytest_memaslap.protocol.outcomes import ERROR, HIT, MISS

__all__ = ["ERROR", "HIT", "MISS", "PARSERS"]

_CRLF = b"\r\n"
_END = b"END\r\n"
_VALUE = b"VALUE "


def get_request(key: bytes) -> bytes:
    """Request formats live here only; the hot path prebuilds gets once per key with this."""
    return b"get " + key + _CRLF


def set_request(key: bytes, value: memoryview | bytes, size_label: bytes) -> bytes:
    return b"".join((b"set ", key, b" 0 0 ", size_label, _CRLF, value, _CRLF))


def set_ttl_request(key: bytes, value: memoryview | bytes, size_label: bytes, ttl_label: bytes) -> bytes:
    """A set that expires after ``ttl_label`` seconds (``expire=``)."""
    return b"".join((b"set ", key, b" 0 ", ttl_label, b" ", size_label, _CRLF, value, _CRLF))


def store_request(verb: bytes, key: bytes, value: memoryview | bytes, size_label: bytes) -> bytes:
    """``add``, ``replace``, ``append``, ``prepend`` (and ``set``): the storage commands share one form."""
    return b"".join((verb, b" ", key, b" 0 0 ", size_label, _CRLF, value, _CRLF))


def touch_request(key: bytes) -> bytes:
    """Touch with exptime 0: the item stays, never expiring (the load must not change what is stored)."""
    return b"touch " + key + b" 0" + _CRLF


def arith_request(verb: bytes, key: bytes) -> bytes:
    """``incr``/``decr`` by 1."""
    return verb + b" " + key + b" 1" + _CRLF


def expected_hit(key: bytes, size_label: bytes, size: int) -> tuple[bytes, int]:
    """The header and total length of a get's reply when it hits a value of ``size`` bytes we set."""
    header = _VALUE + key + b" 0 " + size_label + _CRLF
    return header, len(header) + size + 7  # data + \r\n + END\r\n


def multi_get_request(keys: list[bytes]) -> bytes:
    return b"get " + b" ".join(keys) + _CRLF


def gets_request(key: bytes) -> bytes:
    return b"gets " + key + _CRLF


def cas_request(key: bytes, value: memoryview | bytes, size_label: bytes, unique: int) -> bytes:
    return b"".join((b"cas ", key, b" 0 0 ", size_label, b" ", str(unique).encode(), _CRLF, value, _CRLF))


def parse_gets(buf: bytearray | bytes, pos: int, expect: replies.CasStep | None = None) -> tuple[int, int]:
    """``VALUE <key> <flags> <bytes> <cas unique>`` + data + ``END``; with a CasStep, queue its ``cas``."""
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return -1, ERROR
    if not buf.startswith(_VALUE, pos):
        return parse_get(buf, pos, None)  # END (a miss) or an error line
    fields = bytes(buf[pos:eol]).split(b" ")
    if len(fields) != 5 or not fields[3].isdigit() or not fields[4].isdigit():
        return eol + 2, ERROR
    end = eol + 2 + int(fields[3]) + 2
    if len(buf) < end + 5:
        return -1, ERROR
    if buf[end - 2 : end] != _CRLF or buf[end : end + 5] != _END:
        return eol + 2, ERROR
    if expect is not None:
        expect.follow(cas_request(expect.key, expect.value, expect.size_label, int(fields[4])))
    return end + 5, HIT


def delete_request(key: bytes) -> bytes:
    return b"delete " + key + _CRLF


def parse_get(buf: bytearray | bytes, pos: int, expect: tuple[bytes, int] | None = None) -> tuple[int, int]:
    """``END`` is a miss; ``VALUE <key> <flags> <bytes>`` + data + ``END`` a hit; any other line an error.

    ``expect`` is the hit's header and total length when known in advance:
    then a hit is one prefix check, and anything else takes the general path.
    """
    if expect is not None and buf.startswith(expect[0], pos):
        end = pos + expect[1]
        if len(buf) < end:
            return -1, ERROR
        if buf[end - 5 : end] == _END:
            return end, HIT
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return -1, ERROR
    if buf[pos] == 86:  # "V": of the replies a get can receive, only VALUE starts so
        end = _value_block(buf, pos, eol)
        if end == -1 or (end > 0 and len(buf) < end + 5):
            return -1, ERROR
        if end == -2 or buf[end : end + 5] != _END:
            return eol + 2, ERROR
        return end + 5, HIT
    if eol - pos == 3 and buf.startswith(_END, pos):
        return eol + 2, MISS
    return eol + 2, ERROR


def _value_block(buf: bytearray | bytes, pos: int, eol: int) -> int:
    """Where ``VALUE <key> <flags> <bytes>`` + data + CRLF at ``pos`` ends; -1 incomplete, -2 malformed."""
    try:
        length = int(buf[buf.rfind(b" ", pos, eol) + 1 : eol])
    except ValueError:
        return -2
    if length < 0:
        return -2
    end = eol + length + 4
    if len(buf) < end:
        return -1
    return end if buf[end - 2 : end] == _CRLF else -2


def parse_multi_get(buf: bytearray | bytes, pos: int, expect: int) -> tuple[int, int]:
    """A get of ``expect`` keys: VALUE blocks then ``END``; a hit when every key came back, else a miss."""
    return replies.parse_value_blocks(_VALUE, _value_block, _END, buf, pos, expect)


def parse_set(buf: bytearray | bytes, pos: int, expect: object = None) -> tuple[int, int]:
    """``STORED`` is a hit; ``NOT_STORED``/``EXISTS``/``NOT_FOUND`` a miss; anything else an error."""
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return -1, ERROR
    if eol - pos == 6 and buf.startswith(b"STORED", pos):
        return eol + 2, HIT
    line = bytes(buf[pos:eol])
    if line in (b"NOT_STORED", b"EXISTS", b"NOT_FOUND"):
        return eol + 2, MISS
    return eol + 2, ERROR


def parse_delete(buf: bytearray | bytes, pos: int, expect: object = None) -> tuple[int, int]:
    """``DELETED`` is a hit, ``NOT_FOUND`` a miss, anything else an error."""
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return -1, ERROR
    line = bytes(buf[pos:eol])
    if line == b"DELETED":
        return eol + 2, HIT
    if line == b"NOT_FOUND":
        return eol + 2, MISS
    return eol + 2, ERROR


def parse_touch(buf: bytearray | bytes, pos: int, expect: object = None) -> tuple[int, int]:
    """``TOUCHED`` is a hit, ``NOT_FOUND`` a miss, anything else an error."""
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return -1, ERROR
    line = bytes(buf[pos:eol])
    if line == b"TOUCHED":
        return eol + 2, HIT
    if line == b"NOT_FOUND":
        return eol + 2, MISS
    return eol + 2, ERROR


def parse_arith(buf: bytearray | bytes, pos: int, expect: object = None) -> tuple[int, int]:
    """The new value (digits) is a hit, ``NOT_FOUND`` a miss, anything else (non-numeric value) an error."""
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return -1, ERROR
    line = bytes(buf[pos:eol])
    if line.isdigit():
        return eol + 2, HIT
    if line == b"NOT_FOUND":
        return eol + 2, MISS
    return eol + 2, ERROR


# (cas: STORED, or EXISTS when someone wrote since the gets, or NOT_FOUND, both misses)
PARSERS = replies.command_parsers(parse_get, parse_gets, parse_set, parse_delete, parse_touch, parse_arith)

VALUE_OFFSET = None  # where a get's value starts in its reply (None: right after the hit header)
