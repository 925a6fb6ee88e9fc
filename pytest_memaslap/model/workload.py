"""The workload: what the load does, validated once, immutable and serialisable.

A workload comes from a ``@pytest.mark.slap(...)`` mark, command-line / ini
overrides and ``slap(**overrides)``. Every argument is checked by its parser
(``model/parsers.py``, named in ``model/arguments.py``), then by the
cross-field rules here, so that a bad value is reported with its name and what
is allowed, before any load runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pytest_memaslap.model import presets
from pytest_memaslap.model import trace as traces
from pytest_memaslap.model.arguments import ARGUMENTS
from pytest_memaslap.model.parsers import COMMANDS as COMMANDS
from pytest_memaslap.model.parsers import SizeSpec as SizeSpec
from pytest_memaslap.model.parsers import WorkloadError as WorkloadError
from pytest_memaslap.model.parsers import parse_connection_steps
from pytest_memaslap.model.parsers import parse_count as parse_count
from pytest_memaslap.model.parsers import parse_duration as parse_duration
from pytest_memaslap.model.rate_profile import RateProfile

STORAGE_COMMANDS = {"set", "add", "replace", "cas"}  # what stores a whole value (append/prepend add a few bytes)
PRELOAD_OVERFILL = 4  # a preload this many times the servers' memory is refused (see ``too_large_to_preload``)
ITEM_OVERHEAD = 64  # memcached's item header, flags, CAS and line ends, rounded up
COUNTER_COMMANDS = ("incr", "decr")  # these work on numeric counter keys of their own
MAX_KEY_SIZE = 250
MAX_DIVISION = 100
MAX_AMPLIFY = 1000


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
    # seconds the shard's event loop sleeps between passes instead of waking for each reply (0: it wakes), so
    # that replies gather between reads: see docs/speed.md, "the pipelined gap"
    poll_interval: float = 0.0

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
            values[name] = ARGUMENTS[name].parse(raw)
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


def _stepped_duration(workload: Workload, values: Mapping[str, Any]) -> dict[str, Any]:
    """Connection steps set the duration; a duration given later (``--slap-duration``) shortens each step."""
    total = workload.step_count() * workload.step_duration
    duration = values.get("duration")
    if duration is None or "duration" not in values:
        return {"duration": total}
    return {"step_duration": duration / workload.step_count()}


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
