"""Writes the sample cache traces the example suite replays and the tests read, in both formats.

    python example_suites/traces/make_traces.py [FOLDER]

A small synthetic cluster, seeded so every run writes the same bytes: 1,000
keys drawn by a Zipf-like popularity (s=0.99), 90 % gets and the rest sets,
deletes, incrs (of 50 counters set first), a cas; key sizes 20-60 bytes;
values 10-2,000 bytes; a few sets with a TTL. ``sample.twitter.csv.zst`` has Twitter's columns (a
timestamp a second, 600 requests in each of 5 seconds, zstd-compressed);
``sample.kvreplay.csv`` CacheLib's KVReplay columns (no clock, some lines
repeated with op_count).
"""

from __future__ import annotations

import bisect
import random
import sys
from pathlib import Path

KEYS = 1_000
COUNTERS = 50  # incr goes to counters of their own, set (to a short number) before any incr
SECONDS = 5
PER_SECOND = 600
OPS = (("get", 0.90), ("set", 0.06), ("delete", 0.02), ("incr", 0.01), ("cas", 0.01))


def _popularity(rng: random.Random) -> list[float]:
    weights = [1 / (rank**0.99) for rank in range(1, KEYS + 1)]
    total = 0.0
    cumulative = []
    for weight in weights:
        total += weight
        cumulative.append(total)
    return [c / total for c in cumulative]


def requests(seed: int = 7) -> list[tuple[int, str, int, int, str, int]]:
    """(second, key, key size, value size, operation, TTL) of every request, in time order."""
    rng = random.Random(seed)
    popularity = _popularity(rng)
    sizes = {k: (rng.randint(20, 60), rng.randint(10, 2_000)) for k in range(KEYS)}
    ops, shares = zip(*OPS, strict=True)
    out = [(0, f"c{c:03d}", 12, 3, "set", 0) for c in range(COUNTERS)]
    for second in range(SECONDS):
        for _ in range(PER_SECOND):
            k = min(bisect.bisect_left(popularity, rng.random()), KEYS - 1)
            op = rng.choices(ops, shares)[0]
            key_size, value_size = sizes[k]
            ttl = 3600 if op == "set" and rng.random() < 0.2 else 0
            if op == "incr":
                out.append((second, f"c{k % COUNTERS:03d}", 12, 0, op, 0))
                continue
            out.append((second, f"k{k:05d}", key_size, value_size if op in ("set", "cas") else 0, op, ttl))
    return out


def twitter_lines(seed: int = 7) -> list[str]:
    """Twitter's columns: timestamp,anonymized key,key size,value size,client id,operation,TTL."""
    return [
        f"{1_000 + second},{key},{key_size},{value_size},{index % 7},{op},{ttl}\n"
        for index, (second, key, key_size, value_size, op, ttl) in enumerate(requests(seed))
    ]


def kvreplay_lines(seed: int = 7) -> list[str]:
    """CacheLib's KVReplay columns, with its header: key,op,size,op_count,key_size,ttl (ops in capitals)."""
    lines = ["key,op,size,op_count,key_size,ttl\n"]
    for second, key, key_size, value_size, op, ttl in requests(seed):
        repeat = 2 if op == "get" and second == 0 and key.endswith("0") else 1
        lines.append(f"{key},{op.upper()},{value_size},{repeat},{key_size},{ttl}\n")
    return lines


def write(path: Path, lines: list[str], compressed: bool) -> Path:
    data = "".join(lines).encode()
    if compressed:
        import zstandard

        data = zstandard.ZstdCompressor(level=19).compress(data)
    path.write_bytes(data)
    return path


def main(folder: Path) -> None:
    print(write(folder / "sample.twitter.csv.zst", twitter_lines(), compressed=True))
    print(write(folder / "sample.kvreplay.csv", kvreplay_lines(), compressed=False))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
