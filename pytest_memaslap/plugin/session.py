"""Session-wide state: settings, this process's role, the server pool, and the runs to report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_memaslap import __version__
from pytest_memaslap.memcached.server import MemcachedServer, ServerConfig, ServerError, ServerPool
from pytest_memaslap.model.keyspace import key_prefix
from pytest_memaslap.model.thresholds import Threshold
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.output.baseline import Comparison, compare, save
from pytest_memaslap.output.document import json_document
from pytest_memaslap.output.files import write_json
from pytest_memaslap.output.html import write_html
from pytest_memaslap.output.progress import ProgressPoller
from pytest_memaslap.plugin.fixture import SlapRun
from pytest_memaslap.plugin.modes import Aggregator, Role, shard_entry
from pytest_memaslap.plugin.options import Settings


@dataclass(frozen=True)
class SlapPlan:
    """What a test's marks and the options ask for, validated at collection."""

    workload: Workload
    thresholds: tuple[Threshold, ...]
    server: ServerConfig


@dataclass
class SlapSession:
    """One pytest session's plugin state (one per process: single, xdist controller or worker)."""

    settings: Settings
    role: Role
    pool: ServerPool = field(init=False)
    aggregator: Aggregator = field(init=False)
    comparison: Comparison | None = None
    saved_to: str | None = None
    progress: ProgressPoller | None = None  # the xdist controller's reader of the workers' progress

    def __post_init__(self) -> None:
        self.aggregator = Aggregator(self.settings.percentiles)
        external = self.role.server_address or self.settings.external
        self.pool = ServerPool(external, self.settings.allow_flush, self.settings.tls_context(), self.settings.sasl)

    def server_for(self, config: ServerConfig) -> MemcachedServer:
        """The server a test with ``config`` talks to; raises ServerError saying why there is none."""
        role = self.role
        if role.server_error:
            raise ServerError(role.server_error)
        if role.kind == "worker" and not self.settings.external and config != self.settings.server:
            raise ServerError(
                "@pytest.mark.memcached(...) asks for a server of its own, which pytest-xdist runs do not "
                "support yet: all workers share the server the controller started; set its configuration "
                "with --memcached-threads, --memcached-memory and --memcached-args instead"
            )
        return self.pool.get(config)

    def prefix_for(self, item_index: int, call: int) -> str:
        """Keys of the ``call``-th slap() of the ``item_index``-th test: the same on every shard."""
        return key_prefix(self.role.token, item_index, call)

    def entries_for(self, nodeid: str, runs: list[SlapRun], exprs: tuple[str, ...]) -> list[dict[str, Any]]:
        """This shard's entries for a test's runs; a second call of slap() in a test is ``nodeid#2``."""
        return [
            shard_entry(nodeid if i == 1 else f"{nodeid}#{i}", run, self.role, exprs, self.settings.enforce_thresholds)
            for i, run in enumerate(runs, start=1)
        ]

    def collect(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """Take one shard's entry; the merged entry once the call's last shard is in."""
        return self.aggregator.add(entry)

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.aggregator.done

    def missing_shards(self) -> list[tuple[str, list[int], int]]:
        return self.aggregator.missing()

    def document(self) -> dict[str, Any]:
        """The run's results as the JSON document (--slap-json, --slap-save)."""
        version = next((e["memcached_version"] for e in self.entries if e["memcached_version"]), "")
        from pytest_memaslap.engine import LOOP_NAME  # (the plugin imports the engine only once a load runs)

        document = json_document(self.entries, __version__, version, LOOP_NAME)
        if self.missing_shards():
            document["missing_shards"] = {key: missing for key, missing, _ in self.missing_shards()}
        return document

    def finish(self) -> None:
        """At the session's end: write the JSON, save the run, compare it with the baseline."""
        settings = self.settings
        document = self.document()
        if settings.json_path:
            write_json(settings.json_path, document)
        if settings.save:
            self.saved_to = str(save(document, settings.storage, settings.save))
        if settings.baseline is not None:
            self.comparison = compare(settings.baseline, document, settings.allowances)
        if settings.html_path:
            write_html(settings.html_path, self.entries, document, self.comparison)
