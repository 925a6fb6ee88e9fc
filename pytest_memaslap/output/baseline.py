"""Saved results and regression verdicts: store a run, compare a run with a stored one.

Pure comparison logic plus a small file store; no pytest here, so the
``slap-compare`` command and the plugin share it. A saved file is the
``--slap-json`` document with a ``machine`` section (CPU, cores, Python,
memcached, git commit) so a reader knows what the numbers were measured on.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_memaslap.model.metrics import HIGHER_IS_BETTER, is_latency, percentile_key, percentile_of
from pytest_memaslap.model.workload import COMMANDS
from pytest_memaslap.output.files import write_json

DEFAULT_METRICS = ("ops_per_sec", "p99", "get.p99", "set.p99", "errors", "capacity")  # (capacity: searches only)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ALLOWANCE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*:\s*([-+]?[0-9]*\.?[0-9]+)\s*%\s*$")


class BaselineError(ValueError):
    """A baseline name, file or allowance is unusable; the message says which and why."""


# -- storage -------------------------------------------------------------------


# what changes the numbers a comparison sees, apart from the code under test
MACHINE_KEYS = ("cpu", "cores", "memcached_version", "engine")


def machine_info(memcached_version: str, engine: dict[str, str] | None = None) -> dict[str, Any]:
    """What the numbers were measured on (``engine``: the hot path and event loop that ran the loads)."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    commit = ""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False)
        commit = done.stdout.strip() if done.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memcached_version": memcached_version,
        "engine": "/".join(engine.values()) if engine else "",
        "git_commit": commit,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def check_name(name: str) -> str:
    if name == "latest" or re.fullmatch(r"\d{1,4}", name):
        raise BaselineError(f"--slap-save={name!r}: 'latest' and plain numbers name autosaved runs; choose another")
    if not _NAME.match(name):
        raise BaselineError(
            f"--slap-save={name!r}: a name is letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return name


def document_machine(document: dict[str, Any]) -> dict[str, Any]:
    """The machine info of a run's document: what ``save`` stores with it."""
    return machine_info(str(document.get("memcached_version", "")), document.get("engine"))


def save(document: dict[str, Any], storage: str, name: str, machine: dict[str, Any] | None = None) -> Path:
    """Store ``document`` as ``STORAGE/NAME.json`` with its machine info; returns the path."""
    path = Path(storage) / f"{check_name(name)}.json"
    saved = dict(document)
    saved["machine"] = machine if machine is not None else document_machine(document)
    write_json(str(path), saved)
    return path


def machine_differences(baseline: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """``cores: 32 -> 2``, ...: what differs between two runs' machines (nothing when the baseline has no info)."""
    if not isinstance(baseline, dict):
        return []
    differences = []
    for key in MACHINE_KEYS:
        before, after = baseline.get(key), current.get(key)
        if before not in (None, "") and after not in (None, "") and before != after:
            differences.append(f"{key}: {before} -> {after}")
    return differences


_NUMBERED = re.compile(r"^(\d{4})_[A-Za-z0-9]+_\d{8}_\d{6}\.json$")


def numbered_runs(storage: str) -> list[Path]:
    """The runs ``--slap-autosave`` stored (``0001_<commit>_<date>.json``, ...), oldest first."""
    folder = Path(storage)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NUMBERED.match(p.name))


def autosave_name(storage: str, commit: str) -> str:
    """The next numbered name: one more than the highest stored, the commit's first 8 characters, the time."""
    runs = numbered_runs(storage)
    number = int(runs[-1].name[:4]) + 1 if runs else 1
    if number > 9999:
        raise BaselineError(f"--slap-autosave: {storage} already holds run 9999; move the old runs away")
    return f"{number:04d}_{(commit or 'nocommit')[:8]}_{time.strftime('%Y%m%d_%H%M%S')}"


def resolve(reference: str, storage: str) -> Path:
    """``NAME`` (in the storage folder), a path to a saved file, ``latest`` or ``NNNN`` (autosaved runs)."""
    path = Path(reference)
    if path.is_file():
        return path
    if reference == "latest" or re.fullmatch(r"\d{1,4}", reference):
        runs = numbered_runs(storage)
        chosen = runs[-1:] if reference == "latest" else [p for p in runs if int(p.name[:4]) == int(reference)]
        if not chosen:
            raise BaselineError(
                f"baseline {reference!r}: no run saved with --slap-autosave in {storage!r} "
                f"({len(runs)} numbered run{'s' if len(runs) != 1 else ''} there)"
            )
        return chosen[0]
    stored = Path(storage) / f"{reference}.json"
    if stored.is_file():
        return stored
    raise BaselineError(f"baseline {reference!r}: no file {reference!r} and no saved run {str(stored)!r}")


def load(path: Path) -> dict[str, Any]:
    """A saved run (or a --slap-json document), checked for the parts a comparison reads."""
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise BaselineError(f"baseline {str(path)!r}: cannot read it: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {str(path)!r}: not JSON ({exc.msg} at line {exc.lineno})") from None
    tests = document.get("tests") if isinstance(document, dict) else None
    if not isinstance(tests, dict):
        raise BaselineError(f"baseline {str(path)!r}: not a pytest-memaslap result (no 'tests' object)")
    for key, test in tests.items():
        problem = _test_problem(test)
        if problem:
            raise BaselineError(f"baseline {str(path)!r}: test {key!r}: {problem}")
    return dict(document)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers_problem(where: str, value: Any, nullable: bool = False) -> str | None:
    """Why ``value`` is not an object of numbers (None: it is)."""
    if not isinstance(value, dict):
        return f"{where} must be an object of numbers, not {type(value).__name__}"
    for name, number in value.items():
        if not (_is_number(number) or (nullable and number is None)):
            return f"{where}.{name} must be a number, not {number!r}"
    return None


def _test_problem(test: Any) -> str | None:
    """What in one test entry a comparison could not read (None: nothing), named by its JSON path."""
    if not isinstance(test, dict):
        return f"must be an object, not {type(test).__name__}"
    if "ops_per_sec" not in test or "latency_us" not in test:
        return "lacks 'ops_per_sec' or 'latency_us'"
    if not _is_number(test["ops_per_sec"]):
        return f"ops_per_sec must be a number, not {test['ops_per_sec']!r}"
    checks = [("latency_us", test["latency_us"], True)]
    commands = test.get("commands", {})
    if not isinstance(commands, dict):
        return f"commands must be an object, not {type(commands).__name__}"
    for name, command in commands.items():
        if not isinstance(command, dict):
            return f"commands.{name} must be an object, not {type(command).__name__}"
        checks.append((f"commands.{name}.latency_us", command.get("latency_us", {}), True))
    rounds = test.get("rounds")
    if rounds is not None:
        if not isinstance(rounds, dict):
            return f"rounds must be an object, not {type(rounds).__name__}"
        checks += [("rounds.median", rounds.get("median", {}), False)]
        checks += [("rounds.spread_pct", rounds.get("spread_pct", {}), True)]
    return next((p for where, value, nullable in checks if (p := _numbers_problem(where, value, nullable))), None)


# -- comparison ----------------------------------------------------------------


def metric_value(test: dict[str, Any], metric: str) -> float | None:
    """A metric of one test entry of the JSON document (its median over rounds); None when it has no such number."""
    rounds = test.get("rounds")
    if isinstance(rounds, dict) and metric in rounds.get("median", {}):
        return float(rounds["median"][metric])
    if metric == "capacity":
        search = test.get("capacity")
        value = search.get("ops_per_sec") if isinstance(search, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    command, _, name = metric.rpartition(".")
    if command in ("loop_lag", "send_lag"):  # the load generator's lateness: the engine and rate blocks
        block = test.get("engine") if command == "loop_lag" else test.get("rate")
        lags = block.get(f"{command}_us") if isinstance(block, dict) else None
        value = lags.get(name) if isinstance(lags, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    source = test
    if command:
        source = test.get("commands", {}).get(command)
        if source is None:
            return None
    if is_latency(name):
        q = percentile_of(name)
        value = source.get("latency_us", {}).get(name if q is None else percentile_key(q))
    else:
        value = source.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def metric_spread(test: dict[str, Any], metric: str) -> float | None:
    """The metric's spread over the test's rounds in % (inf when unbounded); None after a single round."""
    rounds = test.get("rounds")
    if not isinstance(rounds, dict) or metric not in rounds.get("spread_pct", {}):
        return None
    spread = rounds["spread_pct"][metric]
    return float("inf") if spread is None else float(spread)


@dataclass(frozen=True)
class Allowance:
    """How far a metric may move the wrong way before it is a regression, in percent."""

    metric: str
    percent: float

    @property
    def higher_is_better(self) -> bool:
        return self.metric.rpartition(".")[2] in HIGHER_IS_BETTER

    def violated_by(self, change: float) -> bool:
        return change < -abs(self.percent) if self.higher_is_better else change > abs(self.percent)


def parse_allowances(text: str) -> tuple[Allowance, ...]:
    """``"ops_per_sec:-5%,get.p99:+10%"``: the sign says the bad direction and must match the metric."""
    allowances = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _ALLOWANCE.match(part)
        if not match:
            raise BaselineError(
                f"--slap-compare-fail: {part!r} is not METRIC:PERCENT%, e.g. 'ops_per_sec:-5%' or 'get.p99:+10%'"
            )
        metric, number = match.group(1), float(match.group(2))
        command, _, name = metric.rpartition(".")
        known = name in HIGHER_IS_BETTER or is_latency(name) or name in ("errors", "hits", "misses")
        if (command and command not in COMMANDS) or not known:
            raise BaselineError(f"--slap-compare-fail: unknown metric {metric!r}")
        allowance = Allowance(metric, number)
        if number and (number < 0) != allowance.higher_is_better:
            direction = "drop (use -N%)" if allowance.higher_is_better else "rise (use +N%)"
            raise BaselineError(f"--slap-compare-fail: {part!r}: a regression of {metric} is a {direction}")
        allowances.append(allowance)
    return tuple(allowances)


@dataclass(frozen=True)
class Row:
    test: str
    metric: str
    baseline: float | None
    current: float | None
    regression: bool
    allowance: float | None = None  # percent, when --slap-compare-fail names this metric
    spreads: tuple[float | None, float | None] = (None, None)  # baseline's and current's, in %

    @property
    def noisy(self) -> bool:
        """The spread of either side exceeds the allowance: the data cannot support this verdict."""
        if self.allowance is None:
            return False
        return any(s is not None and s > abs(self.allowance) for s in self.spreads)

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        if self.baseline == 0:
            return 0.0 if self.current == 0 else None
        return (self.current - self.baseline) / abs(self.baseline) * 100.0


@dataclass(frozen=True)
class Comparison:
    rows: tuple[Row, ...]
    only_in_baseline: tuple[str, ...]
    only_in_current: tuple[str, ...]
    machines_differ: tuple[str, ...] = ()  # what differs between the two runs' machines (``machine_differences``)
    strict: bool = False  # --slap-compare-strict: regressions fail the run even across different machines

    @property
    def failing(self) -> bool:
        """Whether the regressions fail the run: always on the same machine; across machines only when strict."""
        return bool(self.regressions) and (self.strict or not self.machines_differ)

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.regression)

    @property
    def noisy(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.noisy)

    @property
    def single_round(self) -> bool:
        """No side has rounds: the noise is unknown, so a verdict rests on one sample each."""
        return all(row.spreads == (None, None) for row in self.rows)


def compare(
    baseline: dict[str, Any],
    current: dict[str, Any],
    allowances: tuple[Allowance, ...] = (),
    machines_differ: list[str] | None = None,
    strict: bool = False,
) -> Comparison:
    """Test by test, metric by metric; a test on one side only is listed, not compared.

    ``machines_differ``: what differs between the runs' machines (default: read from their ``machine``
    sections); regressions across different machines fail the run only when ``strict``.
    """
    before, after = baseline["tests"], current["tests"]
    metrics = list(DEFAULT_METRICS) + [a.metric for a in allowances if a.metric not in DEFAULT_METRICS]
    by_metric = {a.metric: a for a in allowances}
    rows = []
    for test in sorted(set(before) & set(after)):
        for metric in metrics:
            old, new = metric_value(before[test], metric), metric_value(after[test], metric)
            if old is None and new is None:
                continue
            allowance = by_metric.get(metric)
            spreads = (metric_spread(before[test], metric), metric_spread(after[test], metric))
            row = Row(test, metric, old, new, False, allowance.percent if allowance else None, spreads)
            change = row.change
            if allowance is not None and change is not None and allowance.violated_by(change):
                row = replace(row, regression=True)
            rows.append(row)
    if machines_differ is None:
        machines_differ = machine_differences(baseline.get("machine"), current.get("machine") or {})
    return Comparison(
        tuple(rows),
        tuple(sorted(set(before) - set(after))),
        tuple(sorted(set(after) - set(before))),
        tuple(machines_differ),
        strict,
    )
