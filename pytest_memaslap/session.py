"""Session-wide state: settings, the server pool, key prefixes, and the runs to report."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .config import Settings
from .fixture import SlapRun
from .keyspace import base36
from .report import json_document, write_json
from .server import ServerConfig, ServerPool
from .thresholds import Threshold
from .workload import Workload


@dataclass(frozen=True)
class SlapPlan:
    """What a test's marks and the options ask for, validated at collection."""

    workload: Workload
    thresholds: tuple[Threshold, ...]
    server: ServerConfig
    has_slap_mark: bool


@dataclass
class SlapSession:
    """One pytest session's plugin state (one per process; under xdist also on the controller)."""

    settings: Settings
    pool: ServerPool = field(init=False)
    entries: list[dict[str, Any]] = field(default_factory=list)
    token: str = field(default_factory=lambda: base36(secrets.randbelow(36**4)).rjust(4, "0"))
    _calls: int = 0

    def __post_init__(self) -> None:
        self.pool = ServerPool(self.settings.external, self.settings.allow_flush)

    def next_prefix(self) -> str:
        """A key prefix no other slap() call of this run (or another run) shares."""
        self._calls += 1
        return f"sl{self.token}{base36(self._calls)}:"

    def entries_for(self, nodeid: str, runs: list[SlapRun]) -> list[dict[str, Any]]:
        """Report entries of a test's runs; a second call of slap() in a test is ``nodeid#2``."""
        out = []
        for i, run in enumerate(runs, start=1):
            out.append(
                {
                    "key": nodeid if i == 1 else f"{nodeid}#{i}",
                    "result": run.result.to_dict(),
                    "thresholds": [v.to_dict() for v in run.verdicts],
                    "enforced": self.settings.enforce_thresholds,
                    "memcached_version": run.result.server_version,
                }
            )
        return out

    def collect(self, entries: list[dict[str, Any]]) -> None:
        self.entries.extend(entries)

    def write_json(self, path: str) -> None:
        version = next((e["memcached_version"] for e in self.entries if e["memcached_version"]), "")
        write_json(path, json_document(self.entries, __version__, version))
