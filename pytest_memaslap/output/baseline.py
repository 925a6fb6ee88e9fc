"""Saved results and their comparison: store a run, compare a run with a stored one.

A small file store, and the reading of two JSON documents into the rounds
that ``stats.comparison`` judges; no pytest here, so the
``slap-compare`` command and the plugin share it. A saved file is the
``--slap-json`` document with a ``machine`` section (CPU, cores, Python,
memcached, git commit) so a reader knows what the numbers were measured on.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_memaslap.model.allowances import Allowance
from pytest_memaslap.model.metrics import is_latency, percentile_key, percentile_of
from pytest_memaslap.output.files import write_json
from pytest_memaslap.stats.comparison import GatedRows, Row, compare_metric, compared_metrics

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
        document = json.loads(path.read_text(), parse_constant=_refuse_constant, parse_float=_finite_float)
    except OSError as exc:
        raise BaselineError(f"baseline {str(path)!r}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"baseline {str(path)!r}: not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {str(path)!r}: not JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise BaselineError(f"baseline {str(path)!r}: not a pytest-memaslap result (nested too deeply)") from None
    except ValueError as exc:  # (NaN, Infinity, a number too large for a float)
        raise BaselineError(f"baseline {str(path)!r}: {exc}") from None
    tests = document.get("tests") if isinstance(document, dict) else None
    if not isinstance(tests, dict):
        raise BaselineError(f"baseline {str(path)!r}: not a pytest-memaslap result (no 'tests' object)")
    for key, test in tests.items():
        problem = _test_problem(test)
        if problem:
            raise BaselineError(f"baseline {str(path)!r}: test {key!r}: {problem}")
    return dict(document)


def _refuse_constant(name: str) -> float:
    """JSON's NaN and Infinity (Python writes them; no run measures them): bad input, not a number to compare."""
    raise ValueError(f"{name} is not a number a run can have: the file is corrupt or was edited")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number a run can have: the file is corrupt or was edited")
    return value


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
    """A metric of one test entry of the JSON document (its representative round); None when it has no such number."""
    if metric == "capacity":
        search = test.get("capacity")
        value = search.get("ops_per_sec") if isinstance(search, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    command, _, name = metric.rpartition(".")
    if command == "server":  # the servers' own figures over the measured phase
        server = test.get("server")
        total = server.get("total") if isinstance(server, dict) else None
        value = total.get(name) if isinstance(total, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    if command in ("loop_lag", "send_lag"):  # the load generator's lateness: the engine and rate blocks
        block = test.get("engine") if command == "loop_lag" else test.get("rate")
        lags = block.get(f"{command}_us") if isinstance(block, dict) else None
        value = lags.get(name) if isinstance(lags, dict) else None
        return float(value) if isinstance(value, (int, float)) else None
    source: Any = test
    if command:
        source = test.get("probe") if command == "probe" else test.get("commands", {}).get(command)
        if not isinstance(source, dict):
            return None
    if is_latency(name):
        q = percentile_of(name)
        value = source.get("latency_us", {}).get(name if q is None else percentile_key(q))
    else:
        value = source.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def metric_rounds(test: dict[str, Any], metric: str) -> list[float]:
    """Every round's value of a metric (``rounds.values``); one value for a single round; [] when absent.

    A run saved before rounds kept their values (only a median) counts as a
    single round: its noise is unknown.
    """
    rounds = test.get("rounds")
    values = rounds.get("values", {}).get(metric) if isinstance(rounds, dict) else None
    if isinstance(values, list) and values and all(_is_number(v) for v in values):
        return [float(v) for v in values]
    if isinstance(rounds, dict) and metric in rounds.get("median", {}):
        return [float(rounds["median"][metric])]
    value = metric_value(test, metric)
    return [] if value is None else [value]


@dataclass(frozen=True)
class Comparison(GatedRows):
    """A run against a saved one: a row per test and metric, and what fails the run."""

    rows: tuple[Row, ...]
    only_in_baseline: tuple[str, ...]
    only_in_current: tuple[str, ...]
    machines_differ: tuple[str, ...] = ()  # what differs between the two runs' machines (``machine_differences``)
    strict: bool = False  # --slap-compare-strict: regressions fail the run even across different machines
    inconclusive_fails: bool = False  # --slap-inconclusive=fail: an undecided gated metric fails the run too
    machine_unknown: bool = False  # the baseline has no machine section (a --slap-json file): judged as the same

    @property
    def failing(self) -> bool:
        """Whether the verdicts fail the run: on the same machine (or when strict); inconclusive ones when asked."""
        judged = self.strict or not self.machines_differ
        return judged and (bool(self.regressions) or (self.inconclusive_fails and bool(self.inconclusive)))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document's ``comparison`` section."""
        return {
            "rows": [{"test": row.test, **row.to_dict()} for row in self.rows],
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_current": list(self.only_in_current),
            "machines_differ": list(self.machines_differ),
            "machine_unknown": self.machine_unknown,
            "failing": self.failing,
        }


def compare(
    baseline: dict[str, Any],
    current: dict[str, Any],
    allowances: tuple[Allowance, ...] = (),
    machines_differ: list[str] | None = None,
    strict: bool = False,
    inconclusive_fails: bool = False,
) -> Comparison:
    """Test by test, metric by metric, each side's rounds unpaired; a test on one side only is listed, not compared.

    ``machines_differ``: what differs between the runs' machines (default: read from their ``machine``
    sections); regressions across different machines fail the run only when ``strict``.
    """
    before, after = baseline["tests"], current["tests"]
    by_metric = {a.metric: a for a in allowances}
    rows = []
    for test in sorted(set(before) & set(after)):
        for metric in compared_metrics(allowances):
            old, new = metric_rounds(before[test], metric), metric_rounds(after[test], metric)
            if not old and not new:
                continue
            rows.append(compare_metric(test, metric, old, new, by_metric.get(metric)))
    if machines_differ is None:
        machines_differ = machine_differences(baseline.get("machine"), current.get("machine") or {})
    return Comparison(
        tuple(rows),
        tuple(sorted(set(before) - set(after))),
        tuple(sorted(set(after) - set(before))),
        tuple(machines_differ),
        strict,
        inconclusive_fails,
        not isinstance(baseline.get("machine"), dict),
    )
