"""Cache traces to replay: their two formats, read line by line from plain or zstd-compressed files.

- Twitter's cache traces (twitter/cache-trace): ``timestamp,anonymized key,
  key size,value size,client id,operation,TTL``, timestamps in whole seconds.
- CacheLib's KVReplay CSV (cachebench): ``key,op,size,op_count,key_size,ttl``
  with a header line; no clock, and ``op_count`` repeats a line.

A file is read as a stream (a trace is many GB): nothing here holds more
than one line. Compression is found from the content (zstd's magic bytes),
not the name; ``zstandard`` is imported only for a compressed file. A line
that cannot be replayed is not an error: ``parse`` says why, and the replay
counts it under that reason.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
TWITTER = "twitter"
KVREPLAY = "kvreplay"
KVREPLAY_HEADER = "key,op,size,op_count,key_size,ttl"
# what a trace's operation becomes: memcached's own commands, by their names in either format
REPLAYED_OPS = ("get", "gets", "set", "add", "replace", "cas", "append", "prepend", "delete", "incr", "decr")
MAX_OP_COUNT = 1_000_000  # a KVReplay line repeats at most this often (a larger count is a broken line)
MALFORMED = "malformed line"
_REPLAYED = frozenset(REPLAYED_OPS)
_new = tuple.__new__  # (a NamedTuple built from C: its generated constructor costs a Python call a line)


class TraceError(ValueError):
    """A trace that cannot be replayed at all (missing, unreadable, of an unknown format)."""


class Record(NamedTuple):
    """One request of a trace: when (s, None: no clock), which key, its sizes, the operation, TTL, repeats.

    Built with ``tuple.__new__`` in ``parse`` (fields read by position in the hot loop, by name elsewhere).
    """

    time: float | None
    key: str
    key_size: int
    value_size: int
    op: str
    ttl: int
    repeat: int


@dataclass(frozen=True)
class TraceFile:
    """A trace file found readable, its format and whether it is compressed."""

    path: str
    format: str
    compressed: bool

    @property
    def timed(self) -> bool:
        """Whether its lines carry a time (Twitter's do; KVReplay's do not)."""
        return self.format == TWITTER


def inspect(path: str | Path) -> TraceFile:
    """Check that ``path`` is a trace this module reads: its format from its first line."""
    name = str(path)
    try:
        with Path(path).open("rb") as raw:
            compressed = raw.read(4) == ZSTD_MAGIC
    except OSError as exc:
        raise TraceError(f"trace={name!r}: cannot read it: {exc.strerror or exc}") from None
    with _TextLines(name, compressed) as lines:
        try:
            first = next(iter(lines), "")
        except (UnicodeDecodeError, OSError) as exc:  # (zstandard's errors are ZstdError, an Exception)
            raise TraceError(f"trace={name!r}: cannot read its first line: {exc}") from None
    return TraceFile(name, detect_format(first, name), compressed)


def detect_format(first_line: str, name: str = "<trace>") -> str:
    """Twitter's or KVReplay's, from the first line; anything else is refused, naming both."""
    line = first_line.strip()
    if line.lower().replace(" ", "") == KVREPLAY_HEADER:
        return KVREPLAY
    fields = line.split(",")
    if len(fields) >= 7 and _is_int(fields[0]) and _is_int(fields[-1]):
        return TWITTER
    if len(fields) == 6 and _is_int(fields[2]):
        return KVREPLAY
    shown = line[:80] + ("..." if len(line) > 80 else "")
    raise TraceError(
        f"trace={name!r}: its first line {shown!r} is neither Twitter's cache-trace format (timestamp,anonymized "
        f"key,key size,value size,client id,operation,TTL) nor CacheLib's KVReplay ({KVREPLAY_HEADER})"
    )


def lines(trace: TraceFile) -> Iterator[str]:
    """The trace's lines, streamed (KVReplay's header left out); the file is closed when the iterator ends."""
    with _TextLines(trace.path, trace.compressed) as text:
        for line in text:
            if trace.format == KVREPLAY and line.lower().startswith("key,op,"):
                continue
            yield line


def parse(line: str, format: str) -> Record | str:
    """One line as a Record, or why it cannot be replayed (the reason it is counted under).

    Hot path of a replay (every line of the trace, on every shard): plain
    splits and int conversions, and a tuple rather than a NamedTuple's
    constructor (measured: half the time of the first version).
    """
    fields = line.split(",")
    try:
        if format == TWITTER:
            if len(fields) == 7:
                stamp, key, key_size, value_size, _client, op, ttl = fields
            elif len(fields) > 7:  # (an anonymized key with a comma in it keeps it)
                stamp, key, (key_size, value_size, _client, op, ttl) = fields[0], ",".join(fields[1:-5]), fields[-5:]
            else:
                return MALFORMED
            record = _new(Record, (float(stamp), key, int(key_size), int(value_size), op.lower(), int(ttl), 1))
        else:
            if len(fields) < 6:
                return MALFORMED
            key = fields[0] if len(fields) == 6 else ",".join(fields[:-5])
            op, size, count, key_size, ttl = fields[-5:]
            sized = int(key_size) if key_size else len(key)
            record = _new(Record, (None, key, sized, int(size), op.lower(), int(ttl or 0), int(count or 1)))
    except ValueError:
        return MALFORMED
    if record[4] not in _REPLAYED:
        return f"operation {record[4][:20]!r} has no memcached command"
    if record[2] < 0 or record[3] < 0 or record[5] < 0 or not 1 <= record[6] <= MAX_OP_COUNT:
        return MALFORMED
    return record


def _is_int(text: str) -> bool:
    return text.strip().isdigit()


class _TextLines:
    """The file as text lines, through zstd when compressed (``zstandard`` imported only then)."""

    def __init__(self, path: str, compressed: bool) -> None:
        self.path, self.compressed = path, compressed
        self._file: IO[bytes] | None = None

    def __enter__(self) -> IO[str]:
        self._file = Path(self.path).open("rb")
        stream: IO[bytes] = self._file
        if self.compressed:
            try:
                import zstandard
            except ImportError:
                self._file.close()
                raise TraceError(
                    f"trace={self.path!r}: the file is zstd-compressed, and reading it needs the zstandard "
                    "package: pip install 'pytest-memaslap[traces]' (or decompress it with zstd -d)"
                ) from None
            stream = zstandard.ZstdDecompressor().stream_reader(self._file, read_size=1 << 20)  # type: ignore[assignment]
        return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
