"""The workload: what the load does, validated once, immutable and serialisable.

A workload comes from a ``@pytest.mark.slap(...)`` mark, command-line / ini
overrides and ``slap(**overrides)``; every field is checked here so that a bad
value is reported with its name and what is allowed, before any load runs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from os import PathLike
from typing import Any, TypeVar

from pytest_memaslap.model import presets, units
from pytest_memaslap.model import trace as traces
from pytest_memaslap.model.rate_profile import RateProfile
from pytest_memaslap.model.units import UnitError

COMMANDS = ("get", "set", "delete", "add", "replace", "append", "prepend", "touch", "incr", "decr", "gets", "cas")
STORAGE_COMMANDS = {"set", "add", "replace", "cas"}  # what stores a whole value (append/prepend add a few bytes)
PRELOAD_OVERFILL = 4  # a preload this many times the servers' memory is refused (see ``too_large_to_preload``)
ITEM_OVERHEAD = 64  # memcached's item header, flags, CAS and line ends, rounded up
COUNTER_COMMANDS = ("incr", "decr")  # these work on numeric counter keys of their own
PROTOCOLS = ("ascii", "meta", "binary")
ARRIVALS = ("poisson", "uniform", "etc")  # etc: Facebook ETC's inter-arrival times (see model/presets.py)
TRANSPORTS = ("tcp", "udp")
MAX_KEY_SIZE = 250
MAX_DIVISION = 100
MAX_AMPLIFY = 1000
MAX_PROBE_RATE = 10_000.0

SizeSpec = tuple[tuple[int, int, float], ...]


class WorkloadError(ValueError):
    """A workload argument is invalid; the message names it and says what is allowed."""


_ANY = TypeVar("_ANY")


def _as_workload_error(parse: Callable[..., _ANY]) -> Callable[..., _ANY]:
    """A ``units`` parser whose errors are WorkloadErrors (what mark and option validation catches)."""

    @functools.wraps(parse)
    def parse_value(*args: Any) -> _ANY:
        try:
            return parse(*args)
        except UnitError as exc:
            raise WorkloadError(str(exc)) from None

    return parse_value


parse_duration = _as_workload_error(units.parse_duration)
parse_count = _as_workload_error(units.parse_count)


def _positive_count(value: Any, name: str) -> int:
    number = parse_count(value, name)
    if number < 1:
        raise WorkloadError(f"{name}={value!r}: must be at least 1")
    return number


def parse_size_spec(value: Any, name: str) -> SizeSpec:
    """Normalise a size: ``N``, ``(min, max)`` or memaslap-style ``[(min, max, proportion), ...]``."""
    allowed = f"{name}: expected a size N, a range (min, max) or a list [(min, max, proportion), ...]"
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        size = parse_count(value, name)
        segments: list[tuple[int, int, float]] = [(size, size, 1.0)]
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        segments = [(int(value[0]), int(value[1]), 1.0)]
    elif isinstance(value, (tuple, list)) and value and all(isinstance(s, (tuple, list)) for s in value):
        segments = []
        for seg in value:
            if len(seg) != 3 or not _is_int(seg[0]) or not _is_int(seg[1]) or not _is_number(seg[2]):
                raise WorkloadError(f"{allowed}; got the segment {seg!r}")
            segments.append((int(seg[0]), int(seg[1]), float(seg[2])))
    else:
        raise WorkloadError(f"{allowed}; got {value!r}")
    for low, high, proportion in segments:
        if low < 1 or high < low:
            raise WorkloadError(f"{name}={value!r}: sizes must satisfy 1 <= min <= max; got ({low}, {high})")
        if proportion <= 0:
            raise WorkloadError(f"{name}={value!r}: proportions must be positive; got {proportion}")
    total = sum(p for _, _, p in segments)
    if abs(total - 1.0) > 1e-6:
        raise WorkloadError(f"{name}={value!r}: proportions must sum to 1; they sum to {total:g}")
    return tuple(segments)


def parse_key_pattern(value: Any) -> str:
    """``uniform``, ``sequential``, ``zipf[:THETA]`` (0 < THETA < 1, default 0.99),
    ``gaussian[:SIGMA]`` (SIGMA a fraction of the keyspace, default 1/6) or ``latest[:INSERTS]`` (YCSB's
    read-latest: a Zipfian over recency, the newest key moving on in INSERTS of the draws, default 0.05);
    normalised with defaults."""
    allowed = (
        f"key_pattern={value!r}: allowed: uniform, sequential, zipf:THETA with 0 < THETA < 1 (e.g. zipf:0.99), "
        "gaussian:SIGMA with SIGMA the standard deviation as a fraction of the keyspace (e.g. gaussian:0.1), "
        "latest:INSERTS with 0 < INSERTS < 1 the share of draws that insert the next key (e.g. latest:0.05)"
    )
    if not isinstance(value, str):
        raise WorkloadError(allowed)
    name, _, parameter = value.partition(":")
    if name in ("uniform", "sequential") and not parameter:
        return name
    defaults = {"zipf": 0.99, "gaussian": 1 / 6, "latest": 0.05}
    if name not in defaults:
        raise WorkloadError(allowed)
    try:
        number = float(parameter) if parameter else defaults[name]
    except ValueError:
        raise WorkloadError(allowed) from None
    if name in ("zipf", "latest") and not 0 < number < 1:
        raise WorkloadError(allowed)
    if name == "gaussian" and not 0 < number <= 10:
        raise WorkloadError(allowed)
    return f"{name}:{number:g}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float (NaN and infinities are no proportion, size or count)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_commands(value: Any) -> tuple[tuple[str, float], ...]:
    """The command mix as ``((name, proportion), ...)``; proportions must sum to 1."""
    allowed = (
        "commands: expected a mapping of command to proportion, e.g. {'get': 0.9, 'set': 0.1}; "
        f"commands: {', '.join(COMMANDS)}"
    )
    if not isinstance(value, Mapping) or not value:
        raise WorkloadError(f"{allowed}; got {value!r}")
    mix = []
    for command, proportion in value.items():
        if command not in COMMANDS:
            raise WorkloadError(f"commands: unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
        if not _is_number(proportion) or not 0 <= proportion <= 1:
            raise WorkloadError(f"commands[{command!r}]={proportion!r}: a proportion must be a number from 0 to 1")
        if proportion > 0:
            mix.append((command, float(proportion)))
    total = sum(p for _, p in mix)
    if abs(total - 1.0) > 1e-6:
        raise WorkloadError(f"commands={dict(value)!r}: proportions must sum to 1; they sum to {total:g}")
    return tuple(mix)


@dataclass(frozen=True)
class Workload:
    """A validated load description; build one with ``Workload.from_args`` or ``Workload.build``."""

    duration: float | None = 10.0
    ops: int | None = None
    warmup: float = 0.0
    connections: int = 32
    window: int = 1
    commands: tuple[tuple[str, float], ...] = (("get", 0.9), ("set", 0.1))
    keys: int = 100_000
    key_size: SizeSpec = ((64, 64, 1.0),)
    value_size: SizeSpec = ((1024, 1024, 1.0),)
    key_pattern: str = "uniform"
    seed: int = 0
    preload: bool = True
    protocol: str = "ascii"
    timeout: float = 5.0
    reconnect: bool = False
    rate: float | None = None  # requests per second over all shards: open loop; None: closed loop
    # open loop whose rate ramps: (duration s, rate at its end) per stage, from ``rate`` (or 0); sets the duration
    stages: tuple[tuple[float, float], ...] | None = None
    # a closed loop that adds connections (memtier's client steps): (first, added per step); ``connections`` is the last
    connection_steps: tuple[int, int] | None = None
    step_duration: float = 10.0  # seconds per connection step; the steps set the duration
    arrivals: str = "poisson"  # how an open loop spaces its requests: poisson or uniform
    division: int = 1  # keys per get (memaslap -d): more than 1 is a multi-get
    verify: float = 0.0  # proportion of gets whose value is checked byte for byte (memaslap -v)
    expire: float = 0.0  # proportion of sets with a TTL; gets of expired keys are checked to miss (memaslap -e)
    expire_after: float = 2.0  # that TTL, whole seconds (memcached's expiry clock ticks in seconds)
    overwrite: float = 1.0  # proportion of sets to keys of the keyspace; the rest write new keys (memaslap -o)
    transport: str = "tcp"  # "udp": the measured load's gets go over UDP (memaslap -U); preload stays on TCP
    trace: str | None = None  # a cache trace to replay instead of the mix (Twitter's or KVReplay's; plain or zstd)
    speed: float = 1.0  # a timed trace plays this many times faster than recorded
    loop: bool = False  # the trace starts again when it ends (until duration or ops)
    amplify: int = 1  # every trace key becomes this many distinct keys, each sent the key's requests
    preset: str | None = None  # the published workload whose arguments this one began from (model/presets.py)
    # a measurement probe: gets at this Poisson rate (over all shards) from a process of its own beside the
    # load, their latencies kept apart (free of the load connections' client-side queueing)
    probe_rate: float | None = None

    @classmethod
    def argument_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_args(
        cls, args: Mapping[str, Any], base: Workload | None = None, also_allowed: tuple[str, ...] = ()
    ) -> Workload:
        """Apply user-facing arguments (strings, tuples, dicts) over ``base`` and validate.

        ``also_allowed``: arguments the caller took out before (the mark's ``config``), named among the
        allowed ones when an argument is unknown.
        """
        known = cls.argument_names()
        if args.get("preset") is not None:  # a published workload's arguments, under the ones given with it
            try:
                filled = presets.preset_arguments(args["preset"])
            except ValueError as exc:
                raise WorkloadError(str(exc)) from None
            args = {**filled, **args}
        unknown = sorted(set(args) - set(known))
        if unknown:
            raise WorkloadError(
                f"unknown slap argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(known + also_allowed)}"
            )
        values: dict[str, Any] = {}
        for name, raw in args.items():
            if name == "connections" and isinstance(raw, (list, tuple)):  # (first, step, last): connection steps
                values["connections"], values["connection_steps"] = parse_connection_steps(raw)
                continue
            values[name] = _PARSERS[name](raw)
            if name == "connections" and "connection_steps" not in args:
                values["connection_steps"] = None  # a plain count (e.g. --slap-connections) ends any steps
        workload = replace(base or cls(), **values)
        if workload.stages:
            workload = replace(workload, **_staged_duration(workload, values))
        if workload.connection_steps:
            workload = replace(workload, **_stepped_duration(workload, values))
        workload.check()
        return workload

    def step_count(self) -> int:
        """Connection steps: how many (1 without steps)."""
        if not self.connection_steps:
            return 1
        first, step = self.connection_steps
        return -(-(self.connections - first) // step) + 1

    def active_connections(self, step: int) -> int:
        """Connections running in connection step ``step`` (0-based), over all shards."""
        if not self.connection_steps:
            return self.connections
        first, added = self.connection_steps
        return min(first + step * added, self.connections)

    @property
    def open_loop(self) -> bool:
        """Requests leave on a schedule (``rate`` or ``stages``), not when replies come back."""
        return self.rate is not None or self.stages is not None

    def rate_profile(self) -> RateProfile | None:
        """The open loop's rate over time (over all shards); None for a closed loop."""
        if self.stages:
            return RateProfile(self.rate or 0.0, self.stages)
        return RateProfile.constant(self.rate) if self.rate is not None else None

    def check(self) -> None:
        """Cross-field rules that no single argument can check alone."""
        if self.duration is None and self.ops is None and (self.trace is None or self.loop):
            ends = "; a looped trace never ends" if self.trace is not None else ""
            raise WorkloadError(f"duration/ops: give a duration (e.g. '10s'), an op count, or both{ends}")
        if self.duration is not None and self.duration <= 0:
            raise WorkloadError(f"duration={self.duration!r}: must be longer than 0 s")
        if self.window > 10_000:
            raise WorkloadError(f"window={self.window}: at most 10000 requests in flight per connection")
        if self.connections > 10_000:
            raise WorkloadError(f"connections={self.connections}: at most 10000 per shard")
        max_key = max(high for _, high, _ in self.key_size)
        if max_key > MAX_KEY_SIZE:
            raise WorkloadError(f"key_size: memcached keys are at most {MAX_KEY_SIZE} bytes; got {max_key}")
        if self.division > MAX_DIVISION:
            raise WorkloadError(f"division={self.division}: at most {MAX_DIVISION} keys per get")
        if self.division > 1 and self.verify > 0:
            raise WorkloadError("verify: checks single-key gets; use division=1 with verify (or verify=0)")
        growing = sorted(set(self.command_names()) & {"append", "prepend"})
        if self.verify > 0 and growing:
            raise WorkloadError(
                f"verify: checks a get's value against what set wrote; {', '.join(growing)} change values in ways "
                "it cannot know (another connection's bytes may land first), so drop them from the mix or use verify=0"
            )
        if self.expire > 0 and "set" not in self.command_names():
            raise WorkloadError("expire: applies to sets (a proportion of them get a TTL), and the mix has none")
        ttl_changing = sorted(set(self.command_names()) & {"add", "replace", "append", "prepend", "touch", "cas"})
        if self.expire > 0 and ttl_changing:
            raise WorkloadError(
                f"expire: works with get, set, delete, incr and decr; {', '.join(ttl_changing)} would change "
                "which keys expire when"
            )
        if self.connection_steps and (self.open_loop or self.ops is not None or self.warmup > 0):
            raise WorkloadError(
                "connections=(first, step, last): connection steps are a closed loop that runs for its steps; "
                "drop rate=/stages=, ops= and warmup= (the first step warms up)"
            )
        if self.stages and self.ops is not None:
            raise WorkloadError("stages: a staged run lasts as long as its stages; drop ops=")
        if self.transport == "udp":
            if self.command_names() != ("get",) or self.protocol != "ascii" or self.open_loop:
                raise WorkloadError(
                    "transport='udp': UDP carries gets only (commands={'get': 1.0}), over the ascii protocol, in "
                    "a closed loop (no rate); sets stay on TCP because a value may not fit one datagram"
                )
            if self.division > 1:
                raise WorkloadError(
                    "transport='udp': single-key gets only; memcached answers a multi-key get over UDP with "
                    "END alone (seen with 1.6.18), so use division=1"
                )
        if self.overwrite < 1 and self.expire > 0:
            raise WorkloadError("overwrite: new keys are never read back; use overwrite=1 with expire")
        if self.expire > 0 and self.division > 1:
            raise WorkloadError("expire: checks single-key gets; use division=1 with expire (or expire=0)")
        if (self.division > 1 or self.verify > 0) and "get" not in self.command_names():
            which = "division" if self.division > 1 else "verify"
            raise WorkloadError(f"{which}: applies to gets, and the command mix has none")
        self._check_trace()
        if self.probe_rate is not None and (self.trace is not None or self.protocol != "ascii"):
            raise WorkloadError(
                "probe_rate: the probe gets keys of the keyspace over the ascii protocol; drop it with trace= "
                "(no keyspace) or with protocol='meta'/'binary'"
            )
        if self.preload and self.keys > 50_000_000:
            raise WorkloadError(f"keys={self.keys}: at most 50M keys when preload=True")

    def _check_trace(self) -> None:
        """A replay's own arguments, and what of the synthetic load does not apply to it."""
        if self.trace is None:
            given = [
                name
                for name, default in (("speed", 1.0), ("loop", False), ("amplify", 1))
                if getattr(self, name) != default
            ]
            if given:
                raise WorkloadError(f"{', '.join(given)}: apply to a trace replay; give trace= as well, or drop them")
            return
        clashing = [
            name
            for name, on in (
                ("stages", self.stages is not None),
                ("connections=(first, step, last)", self.connection_steps is not None),
                ("transport='udp'", self.transport == "udp"),
                ("verify", self.verify > 0),
                ("division", self.division > 1),
                ("expire", self.expire > 0),
                ("overwrite", self.overwrite < 1),
            )
            if on
        ]
        if clashing:
            raise WorkloadError(
                f"trace: a replay sends the trace's own requests, so {', '.join(clashing)} cannot apply; drop them"
            )
        if self.arrivals == "etc":
            raise WorkloadError("trace: arrivals='etc' spaces a synthetic open loop; a replay's are poisson or uniform")
        if self.amplify > MAX_AMPLIFY:
            raise WorkloadError(f"amplify={self.amplify}: at most {MAX_AMPLIFY} copies of each key")
        if self.rate is not None and self.speed != 1.0:
            raise WorkloadError(
                "trace: speed= scales the trace's own clock and rate= replaces it with a steady rate; give one"
            )
        try:
            found = traces.inspect(self.trace)
        except traces.TraceError as exc:
            raise WorkloadError(str(exc)) from None
        if not found.timed and self.rate is None:
            raise WorkloadError(
                f"trace={self.trace!r}: a KVReplay trace has no clock; give it a rate to replay at (rate= in a mark, "
                "-P/--tps in memaslap-py: requests per second over all shards)"
            )

    def command_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.commands)

    @property
    def preloads(self) -> bool:
        """Whether the keyspace is set before the load (a trace replay starts from what its own sets write)."""
        return self.preload and self.trace is None

    def measured_commands(self) -> tuple[str, ...]:
        """The commands that get statistics: the mix's, plus ``gets`` when ``cas`` (gets, then cas) is in it;
        a trace's: every command a trace may hold."""
        if self.trace is not None:
            return traces.REPLAYED_OPS
        names = self.command_names()
        return names + ("gets",) if "cas" in names and "gets" not in names else names

    def max_value_size(self) -> int:
        return max(high for _, high, _ in self.value_size)

    def preload_bytes(self) -> int:
        """About what the preload stores: every key with its mean key and value size and memcached's per-item
        overhead (0 without a preload; a trace replay has none)."""
        if not self.preloads:
            return 0
        mean_key = sum((low + high) / 2 * share for low, high, share in self.key_size)
        mean_value = sum((low + high) / 2 * share for low, high, share in self.value_size)
        return int(self.keys * (mean_key + mean_value + ITEM_OVERHEAD))

    def too_large_to_preload(self, memory_limit: int | None) -> str | None:
        """Why the preload is far beyond servers that store ``memory_limit`` bytes (None: it is not, or the
        limit is unknown). Filling a server past its memory on purpose (to see it evict, or refuse with
        ``-M``) is a test people write; more than ``PRELOAD_OVERFILL`` times over, most keys are evicted as they
        are written, and the preload can run for hours."""
        needed = self.preload_bytes()
        if memory_limit is None or needed <= memory_limit * PRELOAD_OVERFILL:
            return None
        return (
            f"the preload of {self.keys:,} keys needs about {needed / 1e6:,.0f} MB (mean key and value sizes plus "
            f"{ITEM_OVERHEAD} bytes an item), more than {PRELOAD_OVERFILL} times the {memory_limit / 1e6:,.0f} MB "
            "the server stores (stats limit_maxbytes): most keys would be evicted as they are written"
        )

    def oversized_items(self, item_size_max: int | None) -> str | None:
        """Why the values would not fit a server storing items up to ``item_size_max`` bytes (None: they fit).

        None too when the limit is unknown (a proxy does not say) or nothing is written.
        """
        writes = STORAGE_COMMANDS & set(self.command_names()) or self.preload
        if item_size_max is None or not writes or self.trace is not None:  # (a trace's sizes are its own)
            return None
        largest_key = max(high for _, high, _ in self.key_size)
        fits = item_size_max - largest_key - ITEM_OVERHEAD
        if self.max_value_size() <= fits:
            return None
        return (
            f"values up to {self.max_value_size()} bytes (keys up to {largest_key}) exceed the server's "
            f"item_size_max of {item_size_max} bytes (stats settings): values of at most {fits} bytes fit"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, in the shapes a user writes into a mark."""
        data = asdict(self)
        data["commands"] = dict(self.commands)
        data["key_size"] = [list(s) for s in self.key_size]
        data["value_size"] = [list(s) for s in self.value_size]
        return data


def _optional_duration(name: str):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> float | None:
        return None if value is None else parse_duration(value, name)

    return parse


def _optional_count(name: str):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> int | None:
        return None if value is None else _positive_count(value, name)

    return parse


def _choice(name: str, allowed: tuple[str, ...]):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> str:
        if value not in allowed:
            raise WorkloadError(f"{name}={value!r}: allowed: {', '.join(allowed)}")
        return str(value)

    return parse


def _bool(name: str):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise WorkloadError(f"{name}={value!r}: expected True or False")
        return value

    return parse


def _seed(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise WorkloadError(f"seed={value!r}: expected a non-negative integer")
    return int(value)


def _probe_rate(value: Any) -> float | None:
    if value is None:
        return None
    rate: float = _as_workload_error(units.parse_rate)(value, "probe_rate")
    if rate > MAX_PROBE_RATE:
        raise WorkloadError(f"probe_rate={value!r}: a probe samples latency at a low rate: at most 10k/s")
    return rate


def _trace_path(value: Any) -> str | None:
    """A trace file's path (checked readable, of a known format, by ``Workload.check``)."""
    if value is None:
        return None
    if not isinstance(value, (str, PathLike)) or not str(value):
        raise WorkloadError(f"trace={value!r}: the path of a trace file (Twitter's cache-trace CSV or KVReplay's)")
    return str(value)


def _positive_float(name: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise WorkloadError(f"{name}={value!r}: a number above 0 (e.g. 2 plays twice as fast)")
        return float(value)

    return parse


def parse_rate(value: Any) -> float | None:
    """Requests per second: a number or a string such as ``"40k"`` or ``"40k/s"``; None is closed loop."""
    if value is None:
        return None
    rate: float = _as_workload_error(units.parse_rate)(value, "rate")
    if rate > 10_000_000:
        raise WorkloadError(f"rate={value!r}: at most 10M requests per second")
    return rate


def _proportion(name: str):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> float:
        if not _is_number(value) or not 0 <= value <= 1:
            raise WorkloadError(f"{name}={value!r}: a proportion from 0 to 1, e.g. 0.01")
        return float(value)

    return parse


def _whole_seconds(name: str):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> float:
        seconds = parse_duration(value, name)
        if seconds < 1 or not seconds.is_integer() or seconds > 2_592_000:
            raise WorkloadError(f"{name}={value!r}: whole seconds from 1 to 30 days (memcached's TTLs are seconds)")
        return seconds

    return parse


MAX_STAGES = 100


def parse_stages(value: Any) -> tuple[tuple[float, float], ...] | None:
    """``[("10s", "1k"), ("20s", "50k"), ("5s", 0)]``: each stage's duration and the rate it ramps to."""
    if value is None:
        return None
    allowed = f"stages={value!r}: expected a list of (duration, rate) pairs such as [('10s', '1k'), ('20s', '50k')]"
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_STAGES:
        raise WorkloadError(f"{allowed}; 1 to {MAX_STAGES} stages")
    stages = []
    for number, stage in enumerate(value, start=1):
        if not isinstance(stage, (list, tuple)) or len(stage) != 2:
            raise WorkloadError(f"{allowed}; stage {number} is {stage!r}")
        duration = parse_duration(stage[0], f"stages[{number}] duration")
        if duration <= 0:
            raise WorkloadError(f"stages: stage {number} lasts {stage[0]!r}; it must be longer than 0 s")
        target = 0.0 if stage[1] in (0, "0", "0/s") else _stage_rate(stage[1], number)
        stages.append((duration, target))
    if not any(target for _, target in stages):
        raise WorkloadError(f"stages={value!r}: every stage's rate is 0; nothing would be sent")
    return tuple(stages)


def parse_connection_steps(value: Any) -> tuple[int, tuple[int, int]]:
    """``(2, 2, 16)``: start with 2 connections, add 2 each step, up to 16 -> (16, (2, 2))."""
    allowed = f"connections={value!r}: a count, or (first, step, last) such as (4, 4, 32)"
    if len(value) != 3 or not all(_is_int(v) and v > 0 for v in value):
        raise WorkloadError(allowed)
    first, step, last = (int(v) for v in value)
    if last <= first:
        raise WorkloadError(f"{allowed}: last ({last}) must be more than first ({first})")
    return last, (first, step)


def _connection_steps_field(value: Any) -> tuple[int, int] | None:
    """The wire form of connection steps, ``[first, step]`` (users write ``connections=(first, step, last)``)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(v) and v > 0 for v in value):
        raise WorkloadError(
            f"connection_steps={value!r}: expected [first, step]; write connections=(first, step, last)"
        )
    return int(value[0]), int(value[1])


def _stepped_duration(workload: Workload, values: Mapping[str, Any]) -> dict[str, Any]:
    """Connection steps set the duration; a duration given later (``--slap-duration``) shortens each step."""
    total = workload.step_count() * workload.step_duration
    duration = values.get("duration")
    if duration is None or "duration" not in values:
        return {"duration": total}
    return {"step_duration": duration / workload.step_count()}


def _stage_rate(value: Any, number: int) -> float:
    rate: float = _as_workload_error(units.parse_rate)(value, f"stages[{number}] rate")
    if rate > 10_000_000:
        raise WorkloadError(f"stages: stage {number}'s rate {value!r}: at most 10M requests per second")
    return rate


def _staged_duration(workload: Workload, values: Mapping[str, Any]) -> dict[str, Any]:
    """Stages set the duration; a duration given later (``--slap-duration``) rescales them to it."""
    assert workload.stages is not None
    total = sum(duration for duration, _ in workload.stages)
    duration = values.get("duration")
    if duration is None or "stages" in values and "duration" not in values:
        return {"duration": total}
    if "stages" in values and abs(duration - total) > 1e-9:
        raise WorkloadError(
            f"stages: they last {total:g} s in all, and duration={duration:g} s says otherwise; drop duration="
        )
    factor = duration / total
    return {"stages": tuple((d * factor, target) for d, target in workload.stages)}


def _positive_duration(name: str):  # type: ignore[no-untyped-def]
    def parse(value: Any) -> float:
        seconds = parse_duration(value, name)
        if seconds <= 0:
            raise WorkloadError(f"{name}={value!r}: must be longer than 0 s")
        return seconds

    return parse


def _timeout(value: Any) -> float:
    seconds = parse_duration(value, "timeout")
    if seconds <= 0:
        raise WorkloadError(f"timeout={value!r}: must be longer than 0 s")
    return seconds


_PARSERS = {
    "duration": _optional_duration("duration"),
    "ops": _optional_count("ops"),
    "warmup": lambda v: parse_duration(v, "warmup"),
    "connections": lambda v: _positive_count(v, "connections"),
    "window": lambda v: _positive_count(v, "window"),
    "commands": parse_commands,
    "keys": lambda v: _positive_count(v, "keys"),
    "key_size": lambda v: parse_size_spec(v, "key_size"),
    "value_size": lambda v: parse_size_spec(v, "value_size"),
    "key_pattern": parse_key_pattern,
    "seed": _seed,
    "preload": _bool("preload"),
    "protocol": _choice("protocol", PROTOCOLS),
    "timeout": _timeout,
    "reconnect": _bool("reconnect"),
    "rate": parse_rate,
    "stages": parse_stages,
    "connection_steps": _connection_steps_field,
    "step_duration": _positive_duration("step_duration"),
    "arrivals": _choice("arrivals", ARRIVALS),
    "division": lambda v: _positive_count(v, "division"),
    "verify": _proportion("verify"),
    "expire": _proportion("expire"),
    "expire_after": _whole_seconds("expire_after"),
    "overwrite": _proportion("overwrite"),
    "transport": _choice("transport", TRANSPORTS),
    "trace": _trace_path,
    "speed": _positive_float("speed"),
    "loop": _bool("loop"),
    "amplify": lambda v: _positive_count(v, "amplify"),
    "preset": lambda v: v,  # (checked, and its arguments filled in, by ``Workload.from_args``)
    "probe_rate": lambda v: _probe_rate(v),
}
