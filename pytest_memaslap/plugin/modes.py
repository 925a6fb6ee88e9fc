"""pytest-xdist integration: which shard a process is, and one result from many shards.

Three roles, chosen once per process (as pytest-cov chooses its engine):

- ``single``: no xdist; one shard does the whole workload.
- ``controller``: the xdist controller; starts the one memcached all workers
  use, hands its address and the run token to the workers, and merges the
  shards' results into one verdict per test.
- ``worker``: an xdist worker. With ``--dist each`` every worker runs every
  slap test as shard ``gwN`` of ``workercount``; with other modes tests are
  spread over workers and each runs whole (one shard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pytest_memaslap.model.keyspace import new_token
from pytest_memaslap.model.metrics import DEFAULT_PERCENTILES
from pytest_memaslap.model.thresholds import evaluate_all, parse_all
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.plugin.fixture import SlapRun, with_rounds
from pytest_memaslap.stats.result import SlapResult
from pytest_memaslap.stats.results import ShardResult, merge_results
from pytest_memaslap.stats.rounds import representative, summarize

SERVER_KEY = "slap_memcached"
SERVER_ERROR_KEY = "slap_memcached_error"
TOKEN_KEY = "slap_token"
SHARDED_KEY = "slap_sharded"  # workers see dist="no"; the controller tells them it is "each"


@dataclass(frozen=True)
class Role:
    """This process's part in the run."""

    kind: str  # "single", "controller" or "worker"
    token: str
    shard_index: int = 0
    shard_count: int = 1
    server_address: str | None = None
    server_error: str | None = None
    worker_id: str = ""  # xdist's gwN on a worker

    @property
    def sharded(self) -> bool:
        return self.shard_count > 1

    @property
    def reports(self) -> bool:
        """Whether this process prints the summary and writes the JSON."""
        return self.kind != "worker"


def role_for(config: pytest.Config) -> Role:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None:
        distributed = config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") != "no"
        return Role("controller" if distributed else "single", new_token())
    index, count = 0, 1
    if workerinput.get(SHARDED_KEY):
        index = int(str(workerinput["workerid"]).lstrip("gw") or 0)
        count = int(workerinput["workercount"])
    return Role(
        "worker",
        str(workerinput.get(TOKEN_KEY) or new_token()),
        index,
        count,
        workerinput.get(SERVER_KEY),
        workerinput.get(SERVER_ERROR_KEY),
        str(workerinput.get("workerid", "")),
    )


def shard_entry(key: str, run: SlapRun, role: Role, exprs: tuple[str, ...], enforced: bool) -> dict[str, Any]:
    """What one shard reports of one slap() call (JSON-safe: it travels with the test report)."""
    result = run.result
    return {
        "interrupted": run.interrupted,
        "error": run.error,
        "key": key,
        "shard": [role.shard_index, role.shard_count],
        "workload": result.workload.to_dict(),
        "thresholds": list(exprs),
        "rounds": [r.raw.to_dict() for r in (result.rounds or [result])],
        "memcached_version": result.server_version,
        "enforced": enforced,
    }


class Aggregator:
    """Collects shard entries and merges a call's shards once all of them have arrived."""

    def __init__(self, percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> None:
        self.percentiles = percentiles  # latency keys the merged entries add (--slap-percentiles)
        self._waiting: dict[str, dict[int, dict[str, Any]]] = {}
        self._expected: dict[str, int] = {}
        self.done: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """Add one shard's entry; return the merged entry when it completes its call."""
        key = entry["key"]
        index, count = entry["shard"]
        self._expected[key] = count
        shards = self._waiting.setdefault(key, {})
        shards[index] = entry
        if len(shards) < count:
            return None
        del self._waiting[key]
        merged = merge_entries([shards[i] for i in sorted(shards)], self.percentiles)
        self.done.append(merged)
        return merged

    def missing(self) -> list[tuple[str, list[int], int]]:
        """Calls with shards that never reported: (key, missing shard indices, shard count)."""
        return [
            (key, sorted(set(range(self._expected[key])) - set(shards)), self._expected[key])
            for key, shards in self._waiting.items()
        ]


def merge_entries(
    entries: list[dict[str, Any]], percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
) -> dict[str, Any]:
    """One summary entry from the shard entries of one call: merged numbers, verdicts on the whole."""
    first = entries[0]
    workload = Workload.from_args(first["workload"])
    by_round = [
        [ShardResult.from_dict(e["rounds"][k]) for e in entries if k < len(e["rounds"])]
        for k in range(max(len(e["rounds"]) for e in entries))
    ]
    rounds = [SlapResult(workload, merge_results(raws), first["memcached_version"]) for raws in by_round]
    median = representative(rounds)
    result = with_rounds(rounds)
    shards = [(e, ShardResult.from_dict(e["rounds"][median])) for e in entries if median < len(e["rounds"])]
    thresholds = parse_all(tuple(first["thresholds"]))
    verdicts = evaluate_all(thresholds, result)
    data = result.to_dict(percentiles)
    if len(rounds) > 1:
        data["rounds"] = summarize(rounds)
    data["interrupted"] = any(e.get("interrupted") for e in entries)
    data["error"] = next((e["error"] for e in entries if e.get("error")), None)
    starts = [raw.started_at for _, raw in shards if raw.started_at]
    data["start_skew_ms"] = round((max(starts) - min(starts)) * 1000, 3) if len(starts) > 1 else 0.0
    data["per_shard"] = [
        {
            "index": e["shard"][0],
            "ops": raw.measured.ops,
            "ops_per_sec": round(raw.measured.ops / raw.measured.elapsed_s, 1) if raw.measured.elapsed_s else 0.0,
            "errors": sum(c.errors for c in raw.measured.commands.values()),
            "duration_s": round(raw.measured.elapsed_s, 6),
            "started_at": raw.started_at,
        }
        for e, raw in shards
    ]
    return {
        "key": first["key"],
        "result": data,
        "thresholds": [v.to_dict() for v in verdicts],
        "rows": [v.row() for v in verdicts],
        "enforced": first["enforced"],
        "memcached_version": first["memcached_version"],
    }
