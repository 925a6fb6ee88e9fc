"""The compiled hot path and its pure-Python twin: the same results from the same bytes, and which one runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_memaslap import hotpath
from pytest_memaslap.engine.hot.connection import CompiledConnection, PythonConnection
from pytest_memaslap.engine.hot.recorder import MIN_NS, RUN_DATA, new_counters, new_latencies, new_runs, new_second
from pytest_memaslap.protocol import ascii
from pytest_memaslap.stats.histogram import BUCKET_COUNT

needs_compiled = pytest.mark.skipif(
    CompiledConnection is None and not os.environ.get("CI"), reason="the compiled hot path is not built here"
)
KEY = b"key:0001"
VALUE = b"v" * 40
HEADER, TOTAL = ascii.expected_hit(KEY, b"40", 40)
HIT = HEADER + VALUE + b"\r\nEND\r\n"
# replies the codec must take apart: the expected hit, other hits, misses, storage answers, errors, junk
REPLIES = [
    HIT,
    b"END\r\n",
    b"VALUE key:0001 0 3\r\nabc\r\nEND\r\n",
    b"VALUE key:0001 0 40\r\n" + b"w" * 40 + b"\r\nEND\r\n",
    b"VALUE other 5 2\r\nhi\r\nEND\r\n",
    HEADER + VALUE + b"\r\nENX\r\n",
    b"STORED\r\n",
    b"NOT_STORED\r\n",
    b"EXISTS\r\n",
    b"DELETED\r\n",
    b"NOT_FOUND\r\n",
    b"SERVER_ERROR out of memory\r\n",
    b"ERROR\r\n",
    b"VALUE key 0 x\r\n",
    # hits the compiled core reads itself, and the odd ones it leaves to the Python parser
    b"VALUE k 0 0\r\n\r\nEND\r\n",
    b"VALUE k 0 003\r\nabc\r\nEND\r\n",
    b"VALUE k 0 +3\r\nabc\r\nEND\r\n",
    b"VALUE k 0 1_0\r\n0123456789\r\nEND\r\n",
    b"VALUE k\r0 3\r\nabc\r\nEND\r\n",
    b"VALUE k 0 3\r\nabcXYEND\r\n",
    b"VALUE k 0 99999999999999999999\r\n",
    b"VALUE  \r\n",
    b"garbage",
    b"\r\n",
]
COMMANDS = ["get", "set", "delete", "get-expected"]


class Recorded:
    """What a connection told its runner."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def connection_failed(self, connection: object, reason: str) -> None:
        self.failures.append(reason)

    def connection_lost(self, connection: object, reason: str) -> None:
        self.failures.append(reason)


class Sink:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False


def _feed(cls: type, commands: list[str], chunks: list[bytes]) -> tuple[object, ...]:
    """Send ``commands`` (stopped: replies trigger nothing), feed ``chunks``; what was counted and said."""
    events = Recorded()
    connection = cls(events, 0)
    connection.connection_made(Sink())
    slots = {
        name: (ascii.PARSERS[name.split("-")[0]], new_counters(), new_latencies(), new_second(), new_runs())
        for name in ("get", "set", "delete", "get-expected")
    }
    connection.enter_phase(tuple(slots.values()))
    connection.stop()
    for name in commands:
        connection.track(slots[name], 0, 11, (HEADER, TOTAL) if name == "get-expected" else None)
    for chunk in chunks:
        connection.data_received(chunk)
    # (the exact min and max are latencies: time, which differs between the two runs; counted alike elsewhere)
    counted = {name: (slot[1][:MIN_NS], sum(slot[2]), slot[4][:RUN_DATA].tolist()) for name, slot in slots.items()}
    connection.fail_pending()
    abandoned = {name: slot[1][:MIN_NS] for name, slot in slots.items()}
    return counted, abandoned, events.failures, bytes(connection.buffer)


@needs_compiled
@settings(max_examples=300, deadline=None)
@given(
    commands=st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=12),
    replies=st.lists(st.sampled_from(REPLIES) | st.binary(max_size=30), max_size=14),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6),
)
def test_both_cores_count_any_bytes_alike(commands, replies, cuts):
    """Any stream of replies, whole, split anywhere or malformed: the same counts, failures and leftover bytes."""
    stream = b"".join(replies)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]
    assert _feed(CompiledConnection, commands, chunks) == _feed(PythonConnection, commands, chunks)


@needs_compiled
def test_both_cores_send_the_same_requests_for_the_same_source():
    """A closed loop of depth 3 from one request list: the same bytes written, in the same writes."""

    class Source:
        def __init__(self) -> None:
            self.drawn = 0

        def batch(self, count: int) -> list[tuple[int, bytes, object]]:
            out = [(0, ascii.get_request(f"k{self.drawn + i}".encode()), None) for i in range(count)]
            self.drawn += count
            return out

    written = []
    for cls in (CompiledConnection, PythonConnection):
        sink = Sink()
        connection = cls(Recorded(), 0)
        connection.connection_made(sink)
        connection.enter_phase(((ascii.parse_get, new_counters(), new_latencies(), new_second(), new_runs()),))
        connection.set_source(Source())
        connection.budget = 600
        connection.depth = 3
        connection.send(3, 0)
        for _ in range(200):
            connection.data_received(b"END\r\n" * 2)
            connection.data_received(b"END\r\n")
        written.append(sink.written)
    assert written[0] == written[1] and len(b"".join(written[0]).split(b"\r\n")) == 601


def test_the_choice_is_the_users_and_is_shown(monkeypatch):
    """``PYTEST_MEMASLAP_NO_EXTENSIONS=1`` picks the twin; without it the compiled core runs where it is built."""
    from pytest_memaslap.engine.hot.connection import connection_class

    monkeypatch.setenv(hotpath.NO_EXTENSIONS, "1")
    assert connection_class() is PythonConnection
    assert hotpath.describe() == "python (PYTEST_MEMASLAP_NO_EXTENSIONS is set)"
    monkeypatch.delenv(hotpath.NO_EXTENSIONS)
    if CompiledConnection is None:
        assert connection_class() is PythonConnection and hotpath.describe().startswith("python (")
        if os.environ.get("CI"):
            pytest.fail("the compiled hot path is not built; .ci/setup builds it with a C compiler")
    else:
        assert connection_class() is CompiledConnection and hotpath.describe() == "compiled"


def test_memaslap_py_says_which_hot_path_runs(memcached_server):
    env = {**os.environ, hotpath.NO_EXTENSIONS: "1"}
    address = f"{memcached_server.host}:{memcached_server.port}"
    out = subprocess.run(
        [sys.executable, "-m", "pytest_memaslap.cli", "-s", address, "-x", "200", "-c", "2", "-w", "100"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert "hot path python (PYTEST_MEMASLAP_NO_EXTENSIONS is set)" in out.stdout + out.stderr, out.stdout + out.stderr


@needs_compiled
@pytest.mark.parametrize(
    "args",
    [
        {},
        {"key_pattern": "sequential"},
        {"key_pattern": "zipf:0.99", "commands": {"get": 0.5, "set": 0.3, "delete": 0.1, "incr": 0.1}},
        {"key_pattern": "gaussian:0.1", "commands": {"get": 0.6, "cas": 0.2, "append": 0.2}},
        {"division": 4},
        {"verify": 0.3},
        {"value_size": 1024},  # (one size for every key: the compiled sets read no size table)
        {"value_size": 1, "commands": {"get": 0.2, "set": 0.8}},
    ],
)
def test_the_compiled_draw_is_the_sources_own_batch(args):
    """The compiled loop over an ``OpSource`` draws the same requests, in the same order, as its Python twin."""
    import random

    from pytest_memaslap.engine.hot import _core
    from pytest_memaslap.engine.hot.requests import OpSource, get_lines
    from pytest_memaslap.model.keyspace import ValueSource, build_keys, counter_keys
    from pytest_memaslap.model.workload import Workload

    workload = Workload.from_args({"keys": 3000, "key_size": (8, 40), "value_size": (10, 300), **args})
    keys = build_keys("d:", range(3000), workload.key_size, random.Random(1))
    values = ValueSource(workload.value_size, random.Random("values"))
    lines = get_lines(keys, 0, values)
    counters = counter_keys(keys)

    def source() -> OpSource:
        return OpSource(workload, keys, 0, values, random.Random(7), lines, counters)

    python, compiled = source(), source()
    for count in (1, 256, 1000, 37):
        expected, drawn = python.batch(count), _core.draw(compiled, count)
        assert [(c, bytes(r)) for c, r, _ in expected] == [(c, bytes(r)) for c, r, _ in drawn]
    assert python.cursor == compiled.cursor


def test_both_cores_keep_the_exact_shortest_and_longest_latency(hot_path):
    """Replies read in one event share one clock reading: their latencies differ exactly as their send times do."""
    import time

    from pytest_memaslap.engine.hot import connection as module
    from pytest_memaslap.engine.hot.recorder import MAX_NS

    conn = module.connection_class()(Recorded(), 0)
    conn.connection_made(Sink())
    counters = new_counters()
    conn.enter_phase(((ascii.PARSERS["set"], counters, new_latencies(), new_second(), new_runs()),))
    conn.stop()
    offsets = [123_457, 5_000_001, 2_000_000_017]  # ns before now: 0.12 ms, 5 ms, 2 s (all far inside one bucket)
    base = time.perf_counter_ns()
    for offset in offsets:
        conn.track(conn.slots[0], base - offset, 10)
    conn.data_received(b"STORED\r\n" * len(offsets))
    spent = time.perf_counter_ns() - base  # the reading came between base and now
    assert 0 <= counters[MIN_NS] - offsets[0] <= spent
    assert counters[MAX_NS] - counters[MIN_NS] == offsets[-1] - offsets[0]


@needs_compiled
def test_the_compiled_core_refuses_slots_it_could_not_write_safely():
    """Its reply loop writes the recorder's C arrays without bounds checks: anything else is refused up front."""
    conn = CompiledConnection(Recorded(), 0)
    with pytest.raises(TypeError, match="the recorder's arrays"):  # (one array short)
        conn.enter_phase(((ascii.PARSERS["set"], new_counters(), new_latencies(), new_second()),))
    with pytest.raises(TypeError, match="must be the recorder's arrays"):
        conn.enter_phase(((ascii.PARSERS["set"], [0] * 10, [0] * BUCKET_COUNT, [0] * BUCKET_COUNT, new_runs()),))
    with pytest.raises(TypeError, match="must be the recorder's arrays"):  # (runs too short for their room)
        conn.enter_phase(((ascii.PARSERS["set"], new_counters(), new_latencies(), new_second(), new_runs()[:20]),))
    with pytest.raises(TypeError, match="must be the recorder's arrays"):  # (the right kind, too short)
        conn.enter_phase(((ascii.PARSERS["set"], new_counters()[:3], new_latencies(), new_second(), new_runs()),))
    conn.enter_phase(((ascii.PARSERS["set"], new_counters(), new_latencies(), new_second(), new_runs()),))


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.integers(0, BUCKET_COUNT - 1), st.integers(1, 2**20), max_size=40))
def test_both_cores_close_a_second_alike(occupied):
    """The once-a-second close: the same run, offset and sum on both cores, and the histogram left empty."""
    seconds = [new_second(), new_second()]
    for second in seconds:
        for index, count in occupied.items():
            second[index] = count
    python = PythonConnection.take_run(seconds[0])
    compiled = CompiledConnection.take_run(seconds[1])
    assert python == compiled
    offset, run, total = python
    assert total == sum(occupied.values()) and dict(occupied) == {offset + i: c for i, c in enumerate(run) if c}
    assert not any(seconds[0]) and not any(seconds[1])
