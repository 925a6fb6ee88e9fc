"""The parsers of the mark's arguments: each reads one value and checks it, or raises a WorkloadError
that names the argument and says what is allowed."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from os import PathLike
from typing import Any, TypeVar

from pytest_memaslap.model import presets, units
from pytest_memaslap.model.units import UnitError

COMMANDS = ("get", "set", "delete", "add", "replace", "append", "prepend", "touch", "incr", "decr", "gets", "cas")
PROTOCOLS = ("ascii", "meta", "binary")
ARRIVALS = ("poisson", "uniform", "etc")  # etc: Facebook ETC's inter-arrival times (see model/presets.py)
TRANSPORTS = ("tcp", "udp")
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


def parse_positive_count(value: Any, name: str) -> int:
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


def parse_optional_duration(name: str) -> Callable[[Any], float | None]:
    def parse(value: Any) -> float | None:
        return None if value is None else parse_duration(value, name)

    return parse


def parse_optional_count(name: str) -> Callable[[Any], int | None]:
    def parse(value: Any) -> int | None:
        return None if value is None else parse_positive_count(value, name)

    return parse


def parse_choice(name: str, allowed: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise WorkloadError(f"{name}={value!r}: allowed: {', '.join(allowed)}")
        return str(value)

    return parse


def parse_bool(name: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise WorkloadError(f"{name}={value!r}: expected True or False")
        return value

    return parse


def parse_seed(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise WorkloadError(f"seed={value!r}: expected a non-negative integer")
    return int(value)


def parse_probe_rate(value: Any) -> float | None:
    if value is None:
        return None
    rate: float = _as_workload_error(units.parse_rate)(value, "probe_rate")
    if rate > MAX_PROBE_RATE:
        raise WorkloadError(f"probe_rate={value!r}: a probe samples latency at a low rate: at most 10k/s")
    return rate


def parse_trace_path(value: Any) -> str | None:
    """A trace file's path (checked readable, of a known format, by ``Workload.check``)."""
    if value is None:
        return None
    if not isinstance(value, (str, PathLike)) or not str(value):
        raise WorkloadError(f"trace={value!r}: the path of a trace file (Twitter's cache-trace CSV or KVReplay's)")
    return str(value)


def parse_positive_float(name: str) -> Callable[[Any], float]:
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


def parse_proportion(name: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if not _is_number(value) or not 0 <= value <= 1:
            raise WorkloadError(f"{name}={value!r}: a proportion from 0 to 1, e.g. 0.01")
        return float(value)

    return parse


def parse_whole_seconds(name: str) -> Callable[[Any], float]:
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


def parse_connection_steps_field(value: Any) -> tuple[int, int] | None:
    """The wire form of connection steps, ``[first, step]`` (users write ``connections=(first, step, last)``)."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_is_int(v) and v > 0 for v in value):
        raise WorkloadError(
            f"connection_steps={value!r}: expected [first, step]; write connections=(first, step, last)"
        )
    return int(value[0]), int(value[1])


def _stage_rate(value: Any, number: int) -> float:
    rate: float = _as_workload_error(units.parse_rate)(value, f"stages[{number}] rate")
    if rate > 10_000_000:
        raise WorkloadError(f"stages: stage {number}'s rate {value!r}: at most 10M requests per second")
    return rate


def parse_positive_duration(name: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        seconds = parse_duration(value, name)
        if seconds <= 0:
            raise WorkloadError(f"{name}={value!r}: must be longer than 0 s")
        return seconds

    return parse


def parse_timeout(value: Any) -> float:
    seconds = parse_duration(value, "timeout")
    if seconds <= 0:
        raise WorkloadError(f"timeout={value!r}: must be longer than 0 s")
    return seconds


MAX_POLL_INTERVAL_S = 0.001


def parse_poll_interval(value: Any) -> float:
    """A sleep of 0 to 1 ms (``"50us"``) between the loop's passes: longer only delays replies and timers."""
    seconds = parse_duration(value, "poll_interval")
    if not 0 <= seconds <= MAX_POLL_INTERVAL_S:
        raise WorkloadError(
            f"poll_interval={value!r}: from 0 to 1ms (e.g. '50us'); 0 lets the event loop wake for each reply"
        )
    return seconds


def parse_preset(value: Any) -> str | None:
    """A published workload's name (its arguments are filled in by ``Workload.from_args``)."""
    if value is not None and value not in presets.PRESETS:
        raise WorkloadError(f"preset={value!r}: allowed: {', '.join(presets.PRESETS)}")
    return None if value is None else str(value)
