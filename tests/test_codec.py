"""The reply parsers: the one right outcome of every known reply, and against anything a broken server or
proxy might send an error, never a crash or a hang."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_memaslap import SlapRunError, Target, Workload, run_shard
from pytest_memaslap.engine.hot.requests import CODECS
from pytest_memaslap.engine.hot.slow import VerifyLog, verified_get_parser
from pytest_memaslap.protocol import ascii

OUTCOMES = {ascii.HIT, ascii.MISS, ascii.ERROR}
REPLY_WORDS = [b"VALUE k 0 5\r\nhello\r\nEND\r\n", b"END\r\n", b"STORED\r\n", b"NOT_STORED\r\n", b"EXISTS\r\n"]
REPLY_WORDS += [b"NOT_FOUND\r\n", b"DELETED\r\n", b"TOUCHED\r\n", b"42\r\n", b"SERVER_ERROR out of memory\r\n"]
REPLY_WORDS += [b"CLIENT_ERROR bad\r\n", b"ERROR\r\n", b"VALUE k 0 -1\r\n", b"VALUE k 0 99999999999\r\n", b"\r\n"]
REPLY_WORDS += [b"VA 5\r\nhello\r\n", b"VA -3\r\n", b"VA 99999999999 f\r\n", b"EN\r\n", b"HD\r\n", b"NS\r\n"]
REPLY_WORDS += [b"NF\r\n", b"EX\r\n", b"MN\r\n", b"VA\r\n", b"VA x\r\n"]
BINARY = struct.Struct(">BBHBBHIIQ")
REPLY_WORDS += [
    BINARY.pack(0x81, 0x00, 0, 4, 0, 0, 9, 0, 7) + b"\0\0\0\0hello",  # a GET hit
    BINARY.pack(0x81, 0x00, 0, 0, 0, 1, 0, 0, 0),  # a GET miss
    BINARY.pack(0x81, 0x0A, 0, 0, 0, 0, 0, 0, 0),  # NOOP
    BINARY.pack(0x81, 0x01, 0, 0, 0, 5, 0, 0, 0),  # SET not stored
    BINARY.pack(0x81, 0x0D, 1, 4, 0, 0, 10, 0, 0) + b"\0\0\0\0khello",  # GETKQ hit
    BINARY.pack(0x80, 0x00, 0, 0, 0, 0, 0, 0, 0),  # a request where a response belongs
]
replies = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(REPLY_WORDS) | st.binary(max_size=12), max_size=8).map(b"".join),
)


PARSERS = [(protocol, name) for protocol in sorted(CODECS) for name in sorted(CODECS[protocol].PARSERS)]
PARSERS += [(protocol, special) for protocol in sorted(CODECS) for special in ("multi_get", "verified_get")]


def _parser_and_expect(protocol: str, name: str):  # type: ignore[no-untyped-def]
    codec = CODECS[protocol]
    header, total = codec.expected_hit(b"k", b"5", 5)
    if name == "multi_get":
        return codec.parse_multi_get, 3
    if name == "verified_get":
        return verified_get_parser(codec), (header, total, memoryview(b"hello"), b"k", VerifyLog())
    return codec.PARSERS[name], (header, total) if name == "get" else None


def _packet(opcode: int, status: int, extras: bytes = b"", value: bytes = b"") -> bytes:
    return BINARY.pack(0x81, opcode, 0, len(extras), 0, status, len(extras) + len(value), 0, 0) + extras + value


HIT, MISS, ERROR = ascii.HIT, ascii.MISS, ascii.ERROR
# (protocol, command, one complete reply, the one right outcome)
KNOWN_REPLIES = [
    ("ascii", "get", b"VALUE k 0 5\r\nhello\r\nEND\r\n", HIT),
    ("ascii", "get", b"END\r\n", MISS),
    ("ascii", "get", b"SERVER_ERROR out of memory\r\n", ERROR),
    ("ascii", "get", b"CLIENT_ERROR bad data chunk\r\n", ERROR),
    ("ascii", "get", b"ERROR\r\n", ERROR),
    ("ascii", "get", b"STORED\r\n", ERROR),  # a reply of another command
    ("ascii", "get", b"VALUE k 0 -1\r\n", ERROR),
    ("ascii", "gets", b"VALUE k 0 5 77\r\nhello\r\nEND\r\n", HIT),
    ("ascii", "gets", b"END\r\n", MISS),
    ("ascii", "set", b"STORED\r\n", HIT),
    ("ascii", "set", b"NOT_STORED\r\n", MISS),
    ("ascii", "set", b"SERVER_ERROR out of memory storing object\r\n", ERROR),
    ("ascii", "set", b"END\r\n", ERROR),
    ("ascii", "add", b"NOT_STORED\r\n", MISS),
    ("ascii", "cas", b"STORED\r\n", HIT),
    ("ascii", "cas", b"EXISTS\r\n", MISS),
    ("ascii", "cas", b"NOT_FOUND\r\n", MISS),
    ("ascii", "delete", b"DELETED\r\n", HIT),
    ("ascii", "delete", b"NOT_FOUND\r\n", MISS),
    ("ascii", "delete", b"STORED\r\n", ERROR),
    ("ascii", "touch", b"TOUCHED\r\n", HIT),
    ("ascii", "touch", b"NOT_FOUND\r\n", MISS),
    ("ascii", "incr", b"42\r\n", HIT),
    ("ascii", "incr", b"NOT_FOUND\r\n", MISS),
    ("ascii", "incr", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n", ERROR),
    ("meta", "get", b"VA 5\r\nhello\r\n", HIT),
    ("meta", "get", b"EN\r\n", MISS),
    ("meta", "get", b"SERVER_ERROR busy\r\n", ERROR),
    ("meta", "get", b"HD\r\n", ERROR),
    ("meta", "set", b"HD\r\n", HIT),
    ("meta", "set", b"NS\r\n", MISS),
    ("meta", "set", b"CLIENT_ERROR bad command line format\r\n", ERROR),
    ("meta", "delete", b"HD\r\n", HIT),
    ("meta", "delete", b"NF\r\n", MISS),
    ("binary", "get", _packet(0x00, 0, b"\0\0\0\0", b"hello"), HIT),
    ("binary", "get", _packet(0x00, 0x01), MISS),
    ("binary", "get", _packet(0x00, 0x82), ERROR),  # out of memory
    ("binary", "set", _packet(0x01, 0), HIT),
    ("binary", "set", _packet(0x01, 0x05), MISS),  # not stored
    ("binary", "set", _packet(0x01, 0x82), ERROR),
    ("binary", "delete", _packet(0x04, 0), HIT),
    ("binary", "delete", _packet(0x04, 0x01), MISS),
]


@pytest.mark.parametrize(("protocol", "command", "reply", "outcome"), KNOWN_REPLIES)
def test_a_reply_has_one_right_outcome_and_is_consumed_whole(protocol, command, reply, outcome):
    parse, expect = _parser_and_expect(protocol, command)
    assert parse(bytearray(reply), 0, expect) == (len(reply), outcome)
    # after other bytes, and followed by the next reply: the same answer, nothing read past its end
    buf = bytearray(b"XX" + reply + reply)
    assert parse(buf, 2, expect) == (2 + len(reply), outcome)


@pytest.mark.parametrize(("protocol", "command", "reply", "outcome"), KNOWN_REPLIES)
def test_any_cut_of_a_reply_waits_for_the_rest(protocol, command, reply, outcome):
    parse, expect = _parser_and_expect(protocol, command)
    for cut in range(len(reply)):
        assert parse(bytearray(reply[:cut]), 0, expect)[0] == -1, reply[:cut]


@pytest.mark.parametrize(("protocol", "command"), PARSERS)
@settings(max_examples=200, deadline=None)
@given(data=replies, more=replies, pos=st.integers(min_value=0, max_value=20))
def test_every_parser_consumes_or_waits_and_never_raises(protocol, command, data, more, pos):
    parse, expect = _parser_and_expect(protocol, command)
    buf = bytearray(data)
    pos = min(pos, len(buf))
    end, outcome = parse(buf, pos, expect)
    assert outcome in OUTCOMES
    assert end == -1 or pos < end <= len(buf)  # progress (no loop on the same bytes) or a wait for more
    if end < 0 or command == "verified_get":  # (a verified get records what it checked)
        return
    if protocol == "binary" and buf[pos] != 0x81:
        assert (end, outcome) == (len(buf), ERROR)  # not a response: the stream is lost, all of it dropped
        return
    if protocol == "binary" and (end, outcome) == (len(buf), ERROR):
        return  # (a later packet of a multi-get was not a response: the same rule, all of it dropped)
    # a decided reply stays decided whatever arrives after it
    assert parse(bytearray(data + more), pos, expect) == (end, outcome)


@settings(max_examples=200, deadline=None)
@given(data=replies)
def test_a_stream_of_garbage_is_parsed_to_its_end_in_bounded_steps(data):
    buf, pos, steps = bytearray(data), 0, 0
    while pos < len(buf):
        end, _ = ascii.parse_get(buf, pos, None)
        if end < 0:
            break
        pos, steps = end, steps + 1
    assert steps <= len(buf)


class ScriptedServer:
    """Answers every request line with one fixed reply: a stand-in for a broken server or proxy."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                while data := conn.recv(65536):
                    conn.sendall(self.reply * data.count(b"\r\n"))
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize(
    ("reply", "expect_error"),
    [
        (b"SERVER_ERROR busy\r\n", None),  # a well-formed error: counted per request, the run goes on
        (b"VALUE k 0 notanumber\r\n", None),
        (b"garbage without a line end", "no reply from memcached"),  # never completes: the stall bound ends it
    ],
)
def test_malformed_replies_are_errors_and_the_run_ends(reply, expect_error):
    server = ScriptedServer(reply)
    workload = Workload.from_args(
        {"ops": 200, "duration": "3s", "connections": 1, "keys": 10, "preload": False, "commands": {"get": 1.0}}
    )
    workload = Workload.from_args({"timeout": "0.5s"}, base=workload)
    try:
        if expect_error:
            with pytest.raises(SlapRunError, match=expect_error):
                run_shard(workload, Target("127.0.0.1", server.port), "fuzz:")
            return
        result = run_shard(workload, Target("127.0.0.1", server.port), "fuzz:")
    finally:
        server.close()
    get = result.measured.commands["get"]
    assert get.ops == 200 and get.errors == 200


def test_a_connection_the_server_closes_before_any_request_fails_the_run():
    """An idle connection dropped (memcached's idle_timeout, a proxy) must fail the run, not count nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_and_close() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.close()

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    workload = Workload.from_args({"ops": 200, "duration": None, "connections": 1, "keys": 10, "preload": False})
    try:
        with pytest.raises(SlapRunError, match="server closed the (idle )?connection"):
            run_shard(workload, Target("127.0.0.1", port), "idle:")
    finally:
        listener.close()
        thread.join(5)
