"""A workload that reproduces a live server's: its command mix, and its items' key and value sizes.

Pure: it is handed the server's ``stats`` (two samples a window apart, or
one: the totals since the server started) and its items' sizes (from the
LRU crawler), and gives mark arguments and a memaslap ``-F`` file. Sizes are
kept in bounded histograms (every key size; value sizes in log-linear
ranges), so a server of any size is captured in the same memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

MAX_KEY = 250
VALUE_RANGES_PER_DOUBLING = 4  # value sizes are kept in ranges a quarter of a doubling wide (exact below 16)
TTL_BUCKETS = (0, 60, 600, 3_600, 86_400)  # seconds: how TTLs are summarised (never, under a minute, ...)

# what each command of the mix is counted by in memcached's stats (cmd_set counts every storage command,
# cas included; a cas is counted apart)
_COUNTERS = {
    "get": ("cmd_get",),
    "set": ("cmd_set",),
    "delete": ("delete_hits", "delete_misses"),
    "incr": ("incr_hits", "incr_misses"),
    "decr": ("decr_hits", "decr_misses"),
    "touch": ("cmd_touch",),
    "cas": ("cas_hits", "cas_misses", "cas_badval"),
}


@dataclass
class ItemSizes:
    """The items seen: how many of each key size, of each value-size range, of each TTL bucket."""

    keys: Counter[int] = field(default_factory=Counter)
    values: Counter[tuple[int, int]] = field(default_factory=Counter)
    ttls: Counter[str] = field(default_factory=Counter)
    items: int = 0

    def add(self, key_size: int, value_size: int, ttl_s: int | None) -> None:
        self.items += 1
        self.keys[min(max(key_size, 1), MAX_KEY)] += 1
        self.values[value_range(max(value_size, 1))] += 1
        self.ttls[ttl_bucket(ttl_s)] += 1


def value_range(size: int) -> tuple[int, int]:
    """The log-linear range a value size falls in: exact below 16 bytes, then 4 ranges a doubling."""
    if size < 16:
        return size, size
    top = size.bit_length() - 1  # 2**top <= size < 2**(top + 1)
    step = (1 << top) // VALUE_RANGES_PER_DOUBLING
    low = (size >> (top - 2)) << (top - 2)  # (the quarter of the doubling it is in)
    return low, low + step - 1


def ttl_bucket(ttl_s: int | None) -> str:
    if ttl_s is None:
        return "none"
    for upper in TTL_BUCKETS[1:]:
        if ttl_s < upper:
            return f"< {upper} s"
    return f">= {TTL_BUCKETS[-1]} s"


def command_mix(before: dict[str, str] | None, after: dict[str, str]) -> dict[str, float]:
    """The commands' shares from the stats counters (their growth between two samples, or their totals)."""
    counts: dict[str, int] = {}
    for command, names in _COUNTERS.items():
        total = sum(_counter(after, n) - (_counter(before, n) if before else 0) for n in names)
        counts[command] = max(total, 0)
    counts["set"] = max(counts["set"] - counts["cas"], 0)  # (cmd_set counts the cas commands too)
    total = sum(counts.values())
    if not total:
        return {}
    return {command: round(count / total, 6) for command, count in counts.items() if count}


def hit_ratio(before: dict[str, str] | None, after: dict[str, str]) -> float | None:
    hits = _counter(after, "get_hits") - (_counter(before, "get_hits") if before else 0)
    misses = _counter(after, "get_misses") - (_counter(before, "get_misses") if before else 0)
    return round(hits / (hits + misses), 6) if hits + misses else None


def workload_arguments(mix: dict[str, float], sizes: ItemSizes) -> dict[str, Any]:
    """Mark arguments whose mix, key sizes and value sizes are the server's (``keys``: the items seen)."""
    if not sizes.items:
        raise ValueError("no item was read: the server holds none (or the crawl saw none)")
    arguments: dict[str, Any] = {
        "keys": sizes.items,
        "key_size": _spec(sizes.keys.items(), sizes.items, exact=True),
        "value_size": _spec(sizes.values.items(), sizes.items, exact=False),
    }
    if mix:
        arguments["commands"] = _summing_to_one(mix)
    return arguments


def memaslap_config(mix: dict[str, float], arguments: dict[str, Any]) -> str:
    """The same sizes as a memaslap ``-F`` file; its cmd section has set and get only (memaslap's), in the
    proportion they have to each other."""
    lines = ["# written by slap-capture: the key and value sizes of a live server's items", "key"]
    lines += [f"{low} {high} {share:.6f}" for low, high, share in arguments["key_size"]]
    lines.append("value")
    lines += [f"{low} {high} {share:.6f}" for low, high, share in arguments["value_size"]]
    gets, sets = mix.get("get", 0.0), mix.get("set", 0.0)
    if gets + sets:
        lines += ["cmd", f"0 {sets / (gets + sets):.6f}", f"1 {gets / (gets + sets):.6f}"]
    return "\n".join(lines) + "\n"


def _spec(counts: Any, total: int, exact: bool) -> list[tuple[int, int, float]]:
    segments = []
    for key, count in sorted(counts):
        low, high = (key, key) if exact else key
        segments.append((low, high, count / total))
    return _summing_to_one_spec(segments)


def _summing_to_one_spec(segments: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    """Shares rounded to 6 places whose sum is exactly 1 (the largest takes the rounding)."""
    rounded = [(low, high, round(share, 6)) for low, high, share in segments]
    rounded = [s for s in rounded if s[2] > 0] or [max(segments, key=lambda s: s[2])[:2] + (1.0,)]
    largest = max(range(len(rounded)), key=lambda i: rounded[i][2])
    low, high, share = rounded[largest]
    rounded[largest] = (low, high, round(share + 1.0 - sum(s[2] for s in rounded), 6))
    return rounded


def _summing_to_one(mix: dict[str, float]) -> dict[str, float]:
    largest = max(mix, key=lambda name: mix[name])
    fixed = dict(mix)
    fixed[largest] = round(fixed[largest] + 1.0 - sum(mix.values()), 6)
    return fixed


def _counter(stats: dict[str, str] | None, name: str) -> int:
    try:
        return int((stats or {}).get(name, "0"))
    except ValueError:
        return 0
