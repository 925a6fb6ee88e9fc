"""A capacity search (the ``slap_capacity`` mark): the most load a server takes while it keeps an SLO.

It runs open-loop steps (latencies from each request's scheduled time, so a
server that falls behind shows it), one rate per step: the rate doubles from
``start`` until a step breaks the SLO or cannot reach its rate (achieved below
98 %), or ``limit`` is reached; then it bisects between the highest good and
the lowest bad rate until they are within ``precision`` of each other. A
step that failed narrowly is run once more before its rate counts as bad, so
one stall of the machine does not end the climb. The capacity is the highest rate that
passed. Bounded three ways: ``limit``,
``max_steps`` and ``time_limit``; the result says which one ended it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_memaslap.model import units
from pytest_memaslap.model.thresholds import Threshold, ThresholdError, Verdict, parse_all
from pytest_memaslap.model.workload import WorkloadError

GROWTH = 2.0  # each step's rate over the last good one, until a step fails
RATE_KEPT = 0.98  # a step whose answers fall short of this share of its requests could not take its rate
LOWEST_RATE = 10.0  # requests/s: below this, a search whose every step failed gives up (capacity 0)
MAX_RATE = 10_000_000.0
ARGUMENTS = ("slo", "start", "limit", "step", "precision", "max_steps", "time_limit")


class CapacityError(WorkloadError):
    """A slap_capacity argument is invalid; the message names it and says what is allowed."""


@dataclass(frozen=True)
class CapacitySearch:
    """A validated search; build it with ``CapacitySearch.from_args`` (the mark's arguments)."""

    slo: tuple[Threshold, ...]
    start: float = 1000.0  # requests/s of the first step, over all connections
    limit: float = MAX_RATE  # the highest rate to try
    step_s: float = 2.0  # seconds per step
    precision: float = 0.05  # stop bisecting when the good and bad rates are this close (relative)
    max_steps: int = 20
    time_limit_s: float = 300.0  # the whole search, steps and drains

    @classmethod
    def from_args(
        cls, args: Mapping[str, Any], commands: tuple[str, ...], step_s: float | None = None
    ) -> CapacitySearch:
        """Validate the mark's arguments; ``step_s`` (``--slap-capacity-step``) overrides ``step``."""
        unknown = sorted(set(args) - set(ARGUMENTS))
        if unknown:
            raise CapacityError(
                f"slap_capacity: unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(ARGUMENTS)}"
            )
        if "slo" not in args:
            raise CapacityError(
                "slap_capacity: give slo=, e.g. slo='get.p99 < 1ms' or slo=['p99 < 1ms', 'errors == 0']"
            )
        raw_slo = args["slo"]
        exprs = (raw_slo,) if isinstance(raw_slo, str) else tuple(raw_slo) if isinstance(raw_slo, (list, tuple)) else ()
        if not exprs:
            raise CapacityError(f"slap_capacity: slo={raw_slo!r}: expected an expression or a list of them")
        try:
            slo = parse_all(exprs, commands)
        except ThresholdError as exc:
            raise CapacityError(f"slap_capacity: slo: {exc}") from None
        for rule in slo:
            if rule.metric in ("capacity", "duration", "ops", "ops_per_sec"):
                raise CapacityError(
                    f"slap_capacity: slo {rule.expr!r}: the search sets the rate and the duration of each step; "
                    "give latencies, errors or ratios (e.g. 'get.p99 < 1ms', 'errors == 0')"
                )
        start = _rate(args.get("start", 1000.0), "start")
        limit = _rate(args.get("limit", MAX_RATE), "limit")
        if limit < start:
            raise CapacityError(
                f"slap_capacity: limit={args.get('limit')!r} is below start={args.get('start', 1000)!r}"
            )
        step = step_s if step_s is not None else _duration(args.get("step", 2.0), "step")
        precision = args.get("precision", 0.05)
        if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0.001 <= precision <= 0.5:
            raise CapacityError(f"slap_capacity: precision={precision!r}: a share from 0.001 to 0.5 (0.05 is 5 %)")
        max_steps = args.get("max_steps", 20)
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or not 2 <= max_steps <= 200:
            raise CapacityError(f"slap_capacity: max_steps={max_steps!r}: a whole number from 2 to 200")
        time_limit = _duration(args.get("time_limit", 300.0), "time_limit")
        if time_limit < step:
            raise CapacityError(f"slap_capacity: time_limit={args.get('time_limit')!r} is shorter than one step")
        return cls(slo, start, limit, step, float(precision), max_steps, time_limit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": [rule.expr for rule in self.slo],
            "start": self.start,
            "limit": self.limit,
            "step_s": self.step_s,
            "precision": self.precision,
            "max_steps": self.max_steps,
            "time_limit_s": self.time_limit_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], commands: tuple[str, ...]) -> CapacitySearch:
        """The inverse of ``to_dict`` (a search that crosses to an xdist worker)."""
        return cls(
            parse_all(tuple(data["slo"]), commands),
            data["start"],
            data["limit"],
            data["step_s"],
            data["precision"],
            data["max_steps"],
            data["time_limit_s"],
        )


def _rate(value: Any, name: str) -> float:
    try:
        rate = units.parse_rate(value, name)
    except units.UnitError as exc:
        raise CapacityError(f"slap_capacity: {exc}") from None
    if not 0 < rate <= MAX_RATE:
        raise CapacityError(f"slap_capacity: {name}={value!r}: a rate above 0 and at most 10M requests/s")
    return rate


def _duration(value: Any, name: str) -> float:
    try:
        seconds = units.parse_duration(value, name)
    except units.UnitError as exc:
        raise CapacityError(f"slap_capacity: {exc}") from None
    if seconds <= 0:
        raise CapacityError(f"slap_capacity: {name}={value!r}: must be longer than 0 s")
    return seconds


class CapacityPlanner:
    """The search's decisions, apart from running it: which rate next, and when to stop (and why)."""

    def __init__(self, search: CapacitySearch) -> None:
        self.search = search
        self.good: float | None = None  # the highest rate that passed
        self.bad: float | None = None  # the lowest rate that failed
        self.steps = 0
        self.stopped_by: str | None = None  # "precision", "limit", "max_steps", "time_limit", "nothing_passed"

    def next_rate(self, elapsed_s: float) -> float | None:
        """The next step's rate, or None when the search is over (``stopped_by`` says why)."""
        search = self.search
        if self.stopped_by is not None:
            return None
        rate = self._candidate()
        if rate is None:
            return None
        if self.steps >= search.max_steps:
            self.stopped_by = "max_steps"
            return None
        if elapsed_s + search.step_s > search.time_limit_s:
            self.stopped_by = "time_limit"
            return None
        return rate

    def _candidate(self) -> float | None:
        search = self.search
        good, bad = self.good, self.bad
        if bad is None:  # still growing
            if good is None:
                return search.start
            if good >= search.limit:
                self.stopped_by = "limit"
                return None
            return min(good * GROWTH, search.limit)
        if good is None:  # nothing passed yet: go down
            rate = bad / GROWTH
            if rate < LOWEST_RATE:
                self.stopped_by = "nothing_passed"
                return None
            return rate
        if bad - good <= search.precision * bad:
            self.stopped_by = "precision"
            return None
        return (good + bad) / 2

    def may_retry(self, elapsed_s: float) -> bool:
        """Whether a failed step may run once more: each try counts against ``max_steps`` and ``time_limit``.

        When it may, the failed try is counted here (``record`` counts the retry).
        """
        search = self.search
        if self.steps + 2 > search.max_steps or elapsed_s + search.step_s > search.time_limit_s:
            return False
        self.steps += 1
        return True

    def record(self, rate: float, passed: bool) -> None:
        """The verdict on ``rate`` (after its retry, if it had one)."""
        self.steps += 1
        if passed:
            self.good = rate if self.good is None else max(self.good, rate)
        else:
            self.bad = rate if self.bad is None else min(self.bad, rate)

    @property
    def capacity(self) -> float:
        """The highest rate that passed (0 when none did)."""
        return self.good or 0.0

    @property
    def lower_bound(self) -> bool:
        """No step failed: the search stopped (at its limit, steps or time) below where the server would have
        broken the SLO, so the capacity is at least ``capacity``, not the highest rate the server keeps."""
        return self.bad is None and self.good is not None


def step_passed(sent: int, step_s: float, answered: int, elapsed_s: float, slo_passed: bool) -> bool:
    """A step passes when it kept the SLO and the server took its rate.

    Taking the rate: what it answered over the step and its drain, per
    second, is at least 98 % of what the schedule sent over the step. A
    server that falls behind answers everything, but late: the drain grows,
    and the achieved rate falls below the offered one. (Both sides count the
    same requests, so Poisson arrivals, which scatter around the nominal
    rate, do not fail a step by chance.)
    """
    if not slo_passed or sent <= 0 or elapsed_s <= 0:
        return False
    return answered / elapsed_s >= RATE_KEPT * sent / step_s


def narrow_miss(verdicts: list[Verdict], sent: int, step_s: float, answered: int, elapsed_s: float) -> bool:
    """A failed step that missed by little: each SLO within a factor of 2 of its bound, the rate within 10 %.

    Only such a step is tried again; one that missed by far (a tail ten times
    the bound, a server far behind) is a clear answer.
    """
    for verdict in verdicts:
        if verdict.passed:
            continue
        measured, required, op = verdict.measured, verdict.threshold.required, verdict.threshold.op
        if measured != measured:  # (not measured)
            return False
        if op in ("<", "<=") and measured > 2 * required:
            return False
        if op in (">", ">=") and measured < required / 2:
            return False
        if op == "==":
            return False
    if sent <= 0 or elapsed_s <= 0:
        return False
    return answered / elapsed_s >= 0.9 * sent / step_s
