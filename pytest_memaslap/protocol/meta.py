"""Hot path: the memcached meta protocol codec (``mg``, ``ms``, ``md``, ``ma``, ``mn``).

The text protocol memcached recommends today: short two-letter replies, one
form for every storage mode. Same interface as ``ascii``: request builders,
and parsers that take (buffer, position, expect) and return (end, outcome),
``end`` -1 while the reply is incomplete.

Requests: ``mg KEY v`` (get; replies ``VA <size>`` + data, or ``EN``),
``ms KEY SIZE [M<mode>]`` (set, add E, replace R, append A, prepend P;
``HD`` stored, ``NS``/``EX``/``NF`` not), ``md KEY`` (``HD``/``NF``),
``mg KEY T0`` (touch: ``HD``/``EN``), ``ma KEY [MD]`` (incr/decr by 1:
``HD``/``NF``), and a multi-get as quiet ``mg KEY v q`` lines closed by
``mn`` (hits come back as ``VA`` blocks, then ``MN``).
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_memaslap.protocol import replies
from pytest_memaslap.protocol.outcomes import ERROR, HIT, MISS

Parser = Callable[[bytearray | bytes, int, object], tuple[int, int]]

_CRLF = b"\r\n"
_EN = b"EN\r\n"
_HD = b"HD"
_MN = b"MN\r\n"
_MODES = {b"set": b"", b"add": b" ME", b"replace": b" MR", b"append": b" MA", b"prepend": b" MP"}


def get_request(key: bytes) -> bytes:
    return b"mg " + key + b" v" + _CRLF


def set_request(key: bytes, value: memoryview | bytes, size_label: bytes) -> bytes:
    return b"".join((b"ms ", key, b" ", size_label, _CRLF, value, _CRLF))


def set_ttl_request(key: bytes, value: memoryview | bytes, size_label: bytes, ttl_label: bytes) -> bytes:
    return b"".join((b"ms ", key, b" ", size_label, b" T", ttl_label, _CRLF, value, _CRLF))


def store_request(verb: bytes, key: bytes, value: memoryview | bytes, size_label: bytes) -> bytes:
    return b"".join((b"ms ", key, b" ", size_label, _MODES[verb], _CRLF, value, _CRLF))


def touch_request(key: bytes) -> bytes:
    return b"mg " + key + b" T0" + _CRLF


def arith_request(verb: bytes, key: bytes) -> bytes:
    return b"ma " + key + (b" MD" if verb == b"decr" else b"") + _CRLF


def gets_request(key: bytes) -> bytes:
    return b"mg " + key + b" v c" + _CRLF


def cas_request(key: bytes, value: memoryview | bytes, size_label: bytes, unique: int) -> bytes:
    return b"".join((b"ms ", key, b" ", size_label, b" C", str(unique).encode(), _CRLF, value, _CRLF))


def parse_gets(buf: bytearray | bytes, pos: int, expect: replies.CasStep | None = None) -> tuple[int, int]:
    """``VA <size> c<cas unique>`` + data; with a CasStep, queue its ``cas`` (``ms ... C<unique>``)."""
    end, outcome = parse_get(buf, pos, None)
    if end < 0 or outcome != HIT:
        return end, outcome
    eol = buf.find(_CRLF, pos)
    flags = [f for f in bytes(buf[pos + 3 : eol]).split(b" ")[1:] if f.startswith(b"c")]
    if len(flags) != 1 or not flags[0][1:].isdigit():
        return end, ERROR
    if expect is not None:
        expect.follow(cas_request(expect.key, expect.value, expect.size_label, int(flags[0][1:])))
    return end, HIT


def delete_request(key: bytes) -> bytes:
    return b"md " + key + _CRLF


def multi_get_request(keys: list[bytes]) -> bytes:
    return b"".join(b"mg " + key + b" v q" + _CRLF for key in keys) + b"mn" + _CRLF


def expected_hit(key: bytes, size_label: bytes, size: int) -> tuple[bytes, int]:
    """The header and total length of ``mg KEY v``'s reply when it hits a value of ``size`` bytes."""
    header = b"VA " + size_label + _CRLF
    return header, len(header) + size + 2


def _value_block(buf: bytearray | bytes, pos: int, eol: int) -> int:
    """Where ``VA <size> [flags]`` + data + CRLF at ``pos`` ends; -1 incomplete, -2 malformed."""
    fields = bytes(buf[pos + 3 : eol]).split(b" ", 1)
    if not fields[0].isdigit():
        return -2
    end = eol + 2 + int(fields[0]) + 2
    if len(buf) < end:
        return -1
    return end if buf[end - 2 : end] == _CRLF else -2


def parse_get(buf: bytearray | bytes, pos: int, expect: tuple[bytes, int] | None = None) -> tuple[int, int]:
    """``VA`` + data is a hit, ``EN`` a miss, anything else an error."""
    if expect is not None and buf.startswith(expect[0], pos):
        end = pos + expect[1]
        if len(buf) < end:
            return -1, ERROR
        if buf[end - 2 : end] == _CRLF:
            return end, HIT
    eol = buf.find(_CRLF, pos)
    if eol < 0:
        return -1, ERROR
    if buf.startswith(b"VA ", pos):
        end = _value_block(buf, pos, eol)
        if end < 0:
            return (-1, ERROR) if end == -1 else (eol + 2, ERROR)
        return end, HIT
    if eol - pos == 2 and buf.startswith(_EN, pos):
        return eol + 2, MISS
    return eol + 2, ERROR


def parse_multi_get(buf: bytearray | bytes, pos: int, expect: int) -> tuple[int, int]:
    """Quiet gets closed by ``mn``: ``VA`` blocks for the hits, then ``MN``; a hit when all ``expect`` came back."""
    return replies.parse_value_blocks(b"VA ", _value_block, _MN, buf, pos, expect)


def _status_parser(hit: bytes, misses: tuple[bytes, ...]) -> Parser:
    def parse(buf: bytearray | bytes, pos: int, expect: object = None) -> tuple[int, int]:
        eol = buf.find(_CRLF, pos)
        if eol < 0:
            return -1, ERROR
        line = bytes(buf[pos:eol])
        if line == hit:
            return eol + 2, HIT
        if line in misses:
            return eol + 2, MISS
        return eol + 2, ERROR

    return parse


parse_set = _status_parser(_HD, (b"NS", b"EX", b"NF"))
parse_delete = _status_parser(_HD, (b"NF",))
parse_touch = _status_parser(_HD, (b"EN",))
parse_arith = _status_parser(_HD, (b"NF",))

PARSERS = replies.command_parsers(parse_get, parse_gets, parse_set, parse_delete, parse_touch, parse_arith)

VALUE_OFFSET = None  # where a get's value starts in its reply (None: right after the hit header)
