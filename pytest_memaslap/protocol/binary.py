"""Hot path: the memcached binary protocol codec (for servers and proxies that still speak it).

Every packet is a 24-byte header and a body whose length the header gives,
so a reply is complete when its bytes are, whatever they hold. Same
interface as ``ascii``: request builders, and parsers that take (buffer,
position, expect) and return (end, outcome), ``end`` -1 while the reply is
incomplete. A multi-get is quiet ``GETKQ`` requests closed by ``NOOP``: hits
come back, misses stay silent, and the ``NOOP`` reply ends it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from pytest_memaslap.protocol import replies
from pytest_memaslap.protocol.outcomes import ERROR, HIT, MISS

Parser = Callable[[bytearray | bytes, int, object], tuple[int, int]]

REQUEST = 0x80
RESPONSE = 0x81
GET, SET, ADD, REPLACE, DELETE, INCR, DECR, NOOP, GETKQ, APPEND, PREPEND, TOUCH = (
    0x00,
    0x01,
    0x02,
    0x03,
    0x04,
    0x05,
    0x06,
    0x0A,
    0x0D,
    0x0E,
    0x0F,
    0x1C,
)
OK, NOT_FOUND, EXISTS, NOT_STORED = 0x0000, 0x0001, 0x0002, 0x0005
# outside the load: the control paths' opcodes (probe, stats, flush, progress records) and SASL's
FLUSH, VERSION, STAT, SASL_AUTH = 0x08, 0x0B, 0x10, 0x21
UNKNOWN_COMMAND = 0x0081
_HEADER = struct.Struct(">BBHBBHIIQ")
HEADER = _HEADER  # magic, opcode, key length, extras length, data type, status, body length, opaque, cas
_STORE_OPCODES = {b"set": SET, b"add": ADD, b"replace": REPLACE, b"append": APPEND, b"prepend": PREPEND}
_NO_EXTRAS = (APPEND, PREPEND)
_ARITH_EXTRAS = struct.pack(">QQI", 1, 0, 0xFFFFFFFF)  # delta 1, no initial value: a missing counter is a miss


def _request(opcode: int, key: bytes, extras: bytes = b"", value: memoryview | bytes = b"") -> bytes:
    """One request packet: the header, then extras, key and value."""
    body = len(extras) + len(key) + len(value)
    return b"".join((_HEADER.pack(REQUEST, opcode, len(key), len(extras), 0, 0, body, 0, 0), extras, key, value))


request = _request


def get_request(key: bytes) -> bytes:
    return _request(GET, key)


def set_request(key: bytes, value: memoryview | bytes, size_label: bytes) -> bytes:
    return _request(SET, key, b"\0" * 8, value)


def set_ttl_request(key: bytes, value: memoryview | bytes, size_label: bytes, ttl_label: bytes) -> bytes:
    return _request(SET, key, struct.pack(">II", 0, int(ttl_label)), value)


def store_request(verb: bytes, key: bytes, value: memoryview | bytes, size_label: bytes) -> bytes:
    opcode = _STORE_OPCODES[verb]
    return _request(opcode, key, b"" if opcode in _NO_EXTRAS else b"\0" * 8, value)


def touch_request(key: bytes) -> bytes:
    return _request(TOUCH, key, b"\0" * 4)


def arith_request(verb: bytes, key: bytes) -> bytes:
    return _request(DECR if verb == b"decr" else INCR, key, _ARITH_EXTRAS)


def gets_request(key: bytes) -> bytes:
    return _request(GET, key)  # every GET reply carries the CAS value in its header


def cas_request(key: bytes, value: memoryview | bytes, size_label: bytes, unique: int) -> bytes:
    body = 8 + len(key) + len(value)
    header = _HEADER.pack(REQUEST, SET, len(key), 8, 0, 0, body, 0, unique)
    return b"".join((header, b"\0" * 8, key, value))


def parse_gets(buf: bytearray | bytes, pos: int, expect: replies.CasStep | None = None) -> tuple[int, int]:
    """A GET reply; with a CasStep, queue a SET carrying the reply's CAS value."""
    end, outcome = parse_get(buf, pos, None)
    if end < 0 or outcome != HIT:
        return end, outcome
    if expect is not None:
        expect.follow(cas_request(expect.key, expect.value, expect.size_label, _HEADER.unpack_from(buf, pos)[8]))
    return end, HIT


def delete_request(key: bytes) -> bytes:
    return _request(DELETE, key)


def multi_get_request(keys: list[bytes]) -> bytes:
    return b"".join(_request(GETKQ, key) for key in keys) + _request(NOOP, b"")


def expected_hit(key: bytes, size_label: bytes, size: int) -> tuple[bytes, int]:
    """The first 12 bytes of a GET's hit reply (all but opaque and CAS are known) and its total length."""
    return struct.pack(">BBHBBHI", RESPONSE, GET, 0, 4, 0, OK, 4 + size), 24 + 4 + size


def _packet(buf: bytearray | bytes, pos: int) -> tuple[int, int, int, int, int]:
    """(end, opcode, status, extras length, key length) of the packet at ``pos``; end -1 if incomplete."""
    if len(buf) - pos < 24:
        return -1, 0, 0, 0, 0
    magic, opcode, key_length, extras_length, _, status, body, _, _ = _HEADER.unpack_from(buf, pos)
    if magic != RESPONSE:
        return -2, 0, 0, 0, 0
    end = pos + 24 + body
    return (end if len(buf) >= end else -1), opcode, status, extras_length, key_length


def _status_parser(opcode: int, misses: tuple[int, ...]) -> Parser:
    def parse(buf: bytearray | bytes, pos: int, expect: object = None) -> tuple[int, int]:
        end, got, status, _, _ = _packet(buf, pos)
        if end == -2:
            return len(buf), ERROR  # not a response packet: nothing after it can be trusted
        if end < 0:
            return -1, ERROR
        if got != opcode:
            return end, ERROR
        if status == OK:
            return end, HIT
        return end, (MISS if status in misses else ERROR)

    return parse


parse_get = _status_parser(GET, (NOT_FOUND,))
_STORE_MISSES = (NOT_FOUND, EXISTS, NOT_STORED)


def parse_get_fast(buf: bytearray | bytes, pos: int, expect: tuple[bytes, int] | None = None) -> tuple[int, int]:
    """A GET whose hit reply's header is known: one prefix check, else the general path."""
    if expect is not None and buf.startswith(expect[0], pos):
        end = pos + expect[1]
        return (end, HIT) if len(buf) >= end else (-1, ERROR)
    return parse_get(buf, pos, None)


def parse_multi_get(buf: bytearray | bytes, pos: int, expect: int) -> tuple[int, int]:
    """GETKQ replies (hits only) up to the NOOP reply; a hit when all ``expect`` keys came back."""
    found = 0
    while True:
        end, opcode, status, _, _ = _packet(buf, pos)
        if end == -2:
            return len(buf), ERROR
        if end < 0:
            return -1, ERROR
        if opcode == NOOP:
            if found > expect:
                return end, ERROR
            return end, (HIT if found == expect else MISS)
        if opcode != GETKQ or status != OK:
            return end, ERROR
        found += 1
        pos = end


PARSERS = {
    "get": parse_get_fast,
    "set": _status_parser(SET, _STORE_MISSES),
    "add": _status_parser(ADD, _STORE_MISSES),
    "replace": _status_parser(REPLACE, _STORE_MISSES),
    "append": _status_parser(APPEND, _STORE_MISSES),
    "prepend": _status_parser(PREPEND, _STORE_MISSES),
    "delete": _status_parser(DELETE, (NOT_FOUND,)),
    "touch": _status_parser(TOUCH, (NOT_FOUND,)),
    "incr": _status_parser(INCR, (NOT_FOUND,)),
    "decr": _status_parser(DECR, (NOT_FOUND,)),
    "gets": parse_gets,
    "cas": _status_parser(SET, _STORE_MISSES),
}

VALUE_OFFSET = 24 + 4  # where a get's value starts in its reply: after the header and 4 bytes of flags
