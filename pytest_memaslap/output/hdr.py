"""HdrHistogram interval logs (``--slap-hdr=DIR``): our latencies in the form HdrHistogram's own tools read.

Our buckets are HdrHistogram's with a lowest discernible value of 1 ns and 2
significant digits (128 linear sub-buckets per power of two, exact below
256): bucket i is its counts index i, so a histogram is encoded by copying its
counts. The encoding is HdrHistogram's V2: a header, the counts as ZigZag
LEB128 varints with runs of zeros as negative numbers, deflated and base64'd
(the ``HISTFAAAA...`` strings). Values are nanoseconds.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from pytest_memaslap.output.files import write_text
from pytest_memaslap.stats.histogram import LAST_BUCKET, bucket_bounds
from pytest_memaslap.stats.outcome import CallOutcome

V2_COOKIE = 0x1C849303 | 0x10  # (the low bit of the word-size nibble: ZigZag LEB128 counts)
V2_COMPRESSED_COOKIE = 0x1C849304 | 0x10
SIGNIFICANT_DIGITS = 2
LOWEST_NS = 1
HIGHEST_NS = bucket_bounds(LAST_BUCKET)[1]
MAX_UNIT_RATIO = 1e6  # Interval_Max is in milliseconds (ns / 1e6), HistogramLogProcessor's default ratio


NAME_KEEP = 150  # characters of a test's key kept in its log's name (file names stop at 255 bytes)


def encode(counts: Mapping[int, int] | Sequence[int]) -> str:
    """One histogram (bucket index -> count, or a dense list) in HdrHistogram's compressed V2 base64 form."""
    sparse = dict(counts) if isinstance(counts, Mapping) else {i: c for i, c in enumerate(counts) if c}
    payload = bytearray()
    position = 0
    for index in sorted(i for i, count in sparse.items() if count):
        if index > position:  # a run of empty buckets: its length, negated
            _zigzag_leb128(payload, -(index - position))
        _zigzag_leb128(payload, sparse[index])
        position = index + 1
    header = struct.pack(">iiiiqqd", V2_COOKIE, len(payload), 0, SIGNIFICANT_DIGITS, LOWEST_NS, HIGHEST_NS, 1.0)
    compressed = zlib.compress(header + bytes(payload))
    return base64.b64encode(struct.pack(">ii", V2_COMPRESSED_COOKIE, len(compressed)) + compressed).decode("ascii")


def _zigzag_leb128(out: bytearray, value: int) -> None:
    """HdrHistogram's varint: ZigZag, then 7 bits a byte, at most 9 bytes (the ninth carries 8 bits)."""
    encoded = (value << 1) ^ (value >> 63)
    for _ in range(8):
        if encoded < 0x80:
            out.append(encoded)
            return
        out.append((encoded & 0x7F) | 0x80)
        encoded >>= 7
    out.append(encoded & 0xFF)


def interval_log(outcome: CallOutcome) -> str:
    """A test's log: one interval per second of the measured phase (all commands, ``Tag=total``), then
    one interval over the whole phase per command (``Tag=get``, ...)."""
    raw = outcome.result.raw
    measured = raw.measured
    started = raw.started_at or time.time()
    lines = [
        "#[Histogram log format version 1.3]",
        f"#[StartTime: {started:.3f} (seconds since epoch), {time.ctime(started)}]",
        f"#[BaseTime: {started:.3f} (seconds since epoch)]",
        f"#[pytest-memaslap: {outcome.key}; latencies in nanoseconds, Interval_Max in milliseconds]",
        '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"',
    ]
    for number, second in enumerate(measured.timeline):
        latency = second.latency
        if latency:
            lines.append(_line("total", float(number), 1.0, latency))
    for name, stats in measured.commands.items():
        sparse = stats.latency.to_sparse()
        if sparse:
            lines.append(_line(name, 0.0, measured.elapsed_s, sparse))
    return "\n".join(lines) + "\n"


def _line(tag: str, start_s: float, length_s: float, sparse: Mapping[int, int]) -> str:
    highest = bucket_bounds(max(sparse))[1] / MAX_UNIT_RATIO
    return f"Tag={tag},{start_s:.3f},{length_s:.3f},{highest:.3f},{encode(sparse)}"


def log_name(key: str) -> str:
    """A file name for a test's key (``tests/test_x.py::test_y[a]`` -> ``tests.test_x.py..test_y_a_.hlog``).

    A key too long for a file name (a long parametrize id) keeps its first
    ``NAME_KEEP`` characters and gains a hash of the whole key, so names stay
    distinct and the same from run to run.
    """
    name = re.sub(r"[^A-Za-z0-9._-]", "_", key.replace("/", ".").replace("::", ".."))
    if len(name) > NAME_KEEP:
        name = f"{name[:NAME_KEEP]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    return name + ".hlog"


def write_logs(outcomes: list[CallOutcome], directory: str) -> list[Path]:
    """One interval log per slap() call in ``directory``; returns the files written.

    A log that cannot be written does not stop the others; the first failure
    is raised once all were tried, with how many failed.
    """
    written, failed = [], []
    for outcome in outcomes:
        path = Path(directory) / log_name(outcome.key)
        try:
            write_text(str(path), interval_log(outcome))
        except OSError as exc:
            failed.append(f"{path.name}: {exc.strerror or exc}")
            continue
        written.append(path)
    if failed:
        raise OSError(f"{len(failed)} of {len(outcomes)} interval logs not written (first: {failed[0]})")
    return written
