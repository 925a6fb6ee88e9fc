"""Published workloads as presets: mark arguments that a mark (or ``slap()``) can still override.

- ``facebook-etc``: the ETC pool of Atikoglu et al., "Workload Analysis of a
  Large-Scale Key-Value Store" (SIGMETRICS 2012), with the parameters
  mutilate uses: key sizes GEV(location 30.7984, scale 8.20449, shape
  0.078688); value sizes a measured head for 0-14 bytes, then a generalized
  Pareto(location 15, scale 214.476, shape 0.348238); inter-arrival times a
  generalized Pareto(location 0, scale 16.0292 µs, shape 0.154971), rescaled
  to the run's rate (``arrivals="etc"``; it matters in an open loop, with
  ``rate=``). The mix is 30 gets to 1 set (ETC's read-heavy share, as
  mutilate is commonly run with ``--update=0.033``).
- ``ycsb-a`` ... ``ycsb-f``: the YCSB core workloads that map to memcached
  (records of 1,000 bytes, 10 fields of 100; Zipfian popularity, 0.99): A
  50/50 reads and updates, B 95/5, C reads only, D 95 % reads of the latest
  keys and 5 % inserts, F 50 % reads and 50 % read-modify-writes (a ``gets``
  then a ``cas``). YCSB's E (scans) has no memcached command.

Sizes become ``SizeSpec`` segments that follow the published distributions
to the byte where they are dense and in equal-probability ranges in the
tail; what cannot be stored as published is said where it happens (keys
under 20 bytes, values of 0 bytes).
"""

from __future__ import annotations

import math
from typing import Any

# Atikoglu et al. 2012, ETC, as mutilate encodes it
ETC_KEY_GEV = (30.7984, 8.20449, 0.078688)  # location, scale, shape
ETC_VALUE_HEAD = (  # P(value size = index), sizes 0 to 14
    0.00536, 0.00047, 0.17820, 0.09239, 0.00018, 0.02740, 0.00065, 0.00606,
    0.00023, 0.00837, 0.00837, 0.08989, 0.00092, 0.00326, 0.01980,
)  # fmt: skip
ETC_VALUE_TAIL = (15.0, 214.476, 0.348238)  # generalized Pareto: location, scale, shape
ETC_ARRIVAL_SHAPE = 0.154971  # generalized Pareto, location 0 (its scale, 16.0292 µs, is set by the rate)
ETC_GETS_PER_SET = 30

MIN_KEY = 20  # ETC keys drawn shorter become this long: a run's prefix and key index need the room
MAX_KEY = 250  # memcached's limit
MAX_VALUE = 100_000  # the tail beyond (a share of 4e-7) is folded into the last range
TAIL_RANGES = 256  # equal-probability ranges of the value tail
TAIL_HALVINGS = 16  # the last of them split into halves of its probability, this many times
YCSB_RECORD = 1_000  # bytes: 10 fields of 100
YCSB_KEY = 24  # "user" and a 64-bit hash, as YCSB names records, with room for a run's prefix

SizeSpec = tuple[tuple[int, int, float], ...]


def gev_cdf(x: float, location: float, scale: float, shape: float) -> float:
    """The generalized extreme value distribution's CDF (shape != 0)."""
    t = 1.0 + shape * (x - location) / scale
    if t <= 0.0:
        return 0.0 if shape > 0 else 1.0
    return float(math.exp(-(t ** (-1.0 / shape))))


def gpareto_cdf(x: float, location: float, scale: float, shape: float) -> float:
    """The generalized Pareto distribution's CDF (shape > 0)."""
    if x <= location:
        return 0.0
    return float(1.0 - (1.0 + shape * (x - location) / scale) ** (-1.0 / shape))


def gpareto_quantile(p: float, location: float, scale: float, shape: float) -> float:
    return float(location + scale * ((1.0 - p) ** (-shape) - 1.0) / shape)


def etc_key_sizes() -> SizeSpec:
    """ETC's key sizes, to the byte: P(round(size) = s) from the GEV, under MIN_KEY folded into MIN_KEY."""
    location, scale, shape = ETC_KEY_GEV
    segments = []
    for size in range(MIN_KEY, MAX_KEY + 1):
        low = 0.0 if size == MIN_KEY else gev_cdf(size - 0.5, location, scale, shape)
        high = 1.0 if size == MAX_KEY else gev_cdf(size + 0.5, location, scale, shape)
        if high - low > 1e-9:
            segments.append((size, size, high - low))
    return _normalised(segments)


def etc_value_sizes() -> SizeSpec:
    """ETC's value sizes: the measured head (a 0-byte value is stored as 1 byte), then the generalized Pareto
    tail in ranges of equal probability (to the byte where they are narrower), the last of them halved again
    and again, so its heavy end keeps its shape up to ``MAX_VALUE``."""
    location, scale, shape = ETC_VALUE_TAIL
    tail_share = 1.0 - sum(ETC_VALUE_HEAD)
    levels = [i / TAIL_RANGES for i in range(TAIL_RANGES)]
    levels += [1.0 - 2.0**-j / TAIL_RANGES for j in range(1, TAIL_HALVINGS + 1)] + [1.0]
    merged: dict[tuple[int, int], float] = {}
    for size, share in enumerate(ETC_VALUE_HEAD):
        merged[(max(size, 1), max(size, 1))] = merged.get((max(size, 1), max(size, 1)), 0.0) + share
    for p_low, p_high in zip(levels, levels[1:], strict=False):
        start = gpareto_quantile(p_low, location, scale, shape)
        end = MAX_VALUE if p_high >= 1.0 else min(gpareto_quantile(p_high, location, scale, shape), MAX_VALUE)
        low = min(max(int(location), math.ceil(start)), MAX_VALUE)
        high = max(low, math.ceil(end) - 1)
        merged[(low, high)] = merged.get((low, high), 0.0) + tail_share * (p_high - p_low)
    return _normalised([(low, high, share) for (low, high), share in merged.items()])


def etc_gap(u: float) -> float:
    """ETC's inter-arrival time for a uniform draw ``u`` in (0, 1], in units of the mean gap (so the rate sets
    the scale): a generalized Pareto with location 0, whose mean scale / (1 - shape) is 1."""
    shape = ETC_ARRIVAL_SHAPE
    return float((1.0 - shape) * ((u or 1e-300) ** (-shape) - 1.0) / shape)


def _normalised(segments: list[tuple[int, int, float]]) -> SizeSpec:
    total = sum(share for _, _, share in segments)
    return tuple((low, high, share / total) for low, high, share in segments)


def _ycsb(commands: dict[str, float], pattern: str = "zipf:0.99") -> dict[str, Any]:
    return {"commands": commands, "key_pattern": pattern, "value_size": YCSB_RECORD, "key_size": YCSB_KEY}


PRESETS: dict[str, Any] = {
    "facebook-etc": lambda: {
        "key_size": etc_key_sizes(),
        "value_size": etc_value_sizes(),
        "arrivals": "etc",
        "commands": {"get": ETC_GETS_PER_SET / (ETC_GETS_PER_SET + 1), "set": 1 / (ETC_GETS_PER_SET + 1)},
    },
    "ycsb-a": lambda: _ycsb({"get": 0.5, "set": 0.5}),
    "ycsb-b": lambda: _ycsb({"get": 0.95, "set": 0.05}),
    "ycsb-c": lambda: _ycsb({"get": 1.0}),
    "ycsb-d": lambda: _ycsb({"get": 0.95, "set": 0.05}, "latest:0.05"),
    "ycsb-f": lambda: _ycsb({"get": 0.5, "cas": 0.5}),
}


def preset_arguments(name: Any) -> dict[str, Any]:
    """The mark arguments of preset ``name``; an unknown name is refused, listing the presets."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"preset={name!r}: allowed: {', '.join(PRESETS)}")
    arguments: dict[str, Any] = PRESETS[name]()
    return arguments
