"""Session-wide state: settings, this process's mode, the server pool, and what the session reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_memaslap import __version__
from pytest_memaslap.memcached.server import MemcachedServer, ServerConfig, ServerError, ServerPool
from pytest_memaslap.model.capacity import CapacitySearch
from pytest_memaslap.model.keyspace import key_prefix
from pytest_memaslap.model.thresholds import Threshold
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.plugin.modes import Mode
from pytest_memaslap.plugin.options import Settings

T = TypeVar("T")

if TYPE_CHECKING:  # (loaded when a slap test ran: a suite without one pays for none of it)
    from pytest_memaslap.output.baseline import Comparison
    from pytest_memaslap.plugin.fixture import SlapRun
    from pytest_memaslap.plugin.messages import ShardReport
    from pytest_memaslap.stats.outcome import CallOutcome


@dataclass(frozen=True)
class SlapPlan:
    """What a test's marks and the options ask for, validated at collection."""

    workload: Workload
    thresholds: tuple[Threshold, ...]
    server: ServerConfig
    capacity: CapacitySearch | None = None  # a slap_capacity mark: the load is a capacity search


@dataclass
class SlapSession:
    """One pytest session's plugin state: its settings, its mode, its servers, and what it reported."""

    settings: Settings
    mode: Mode
    config: Any = None  # pytest's config: its hooks (``hookspecs``) hear of every result and the JSON document
    pool: ServerPool = field(init=False)
    comparison: Comparison | None = None
    saved_to: str | None = None
    output_errors: list[str] = field(default_factory=list)  # outputs that failed at the end (the run still reports)
    failed: bool = False  # the session ended with a failure: the servers' logs are kept
    _announced: int = field(default=0, init=False)  # outcomes the result hook has heard of
    versus_address: str | None = field(default=None, init=False)  # B of an interleaved A/B, once known
    _versus_pool: ServerPool | None = field(default=None, init=False)  # --slap-versus: B, a server given

    def __post_init__(self) -> None:
        external = self.mode.server_address or self.settings.external
        self.pool = ServerPool(
            external,
            self.settings.allow_flush,
            self.settings.tls_context(),
            self.settings.sasl,
            self._log_dir,
            self.settings.proxy_stats,
        )

    def _log_dir(self) -> str | None:
        """The started servers' output goes under pytest's basetemp (kept when the session fails)."""
        factory = getattr(self.config, "_tmp_path_factory", None)
        if factory is None:
            return None
        folder = factory.getbasetemp() / "memcached"
        folder.mkdir(exist_ok=True)
        return str(folder)

    def server_for(self, config: ServerConfig) -> MemcachedServer:
        """The server a test with ``config`` talks to; raises ServerError saying why there is none."""
        problem = self.mode.refuse_server(config, self.settings.server, bool(self.settings.external))
        if problem:
            raise ServerError(problem)
        return self.pool.get(config)

    def versus_for(self, config: ServerConfig) -> MemcachedServer | None:
        """B of an interleaved A/B (None: no A/B): the --slap-versus server, or --slap-versus-bin started with the
        options ``config`` gives A. Raises ServerError saying why there is none."""
        settings = self.settings
        external = self.mode.versus_address or settings.versus
        if external:
            if self._versus_pool is None:
                self._versus_pool = ServerPool(external, False, settings.tls_context(), settings.sasl, self._log_dir)
            server = self._versus_pool.get(config)
        elif settings.versus_bin:
            server = self.pool.get(replace(config, binary=settings.versus_bin))
        else:
            return None
        self.versus_address = server.address
        return server

    def prefix_for(self, item_index: int, call: int) -> str:
        """Keys of the ``call``-th slap() of the ``item_index``-th test: the same on every shard."""
        return key_prefix(self.mode.token, item_index, call)

    def shard_reports(self, nodeid: str, runs: list[SlapRun], thresholds: tuple[Threshold, ...]) -> list[ShardReport]:
        """This process's report of each slap() call of a test, as one shard of it."""
        from pytest_memaslap.plugin.messages import ShardReport, VersusReport

        mode, settings = self.mode, self.settings
        return [
            ShardReport(
                nodeid,
                call,
                mode.shard_index,
                mode.shard_count,
                run.rounds[0].workload,
                thresholds,
                tuple(r.raw for r in run.rounds),
                run.rounds[0].server_version,
                settings.enforce_thresholds,
                run.interrupted,
                run.error,
                settings.inconclusive_fails,
                settings.allowances,
                None
                if not run.order
                else VersusReport(
                    self.versus_address or "",
                    run.versus_rounds[0].server_version if run.versus_rounds else "",
                    tuple(run.order),
                    tuple(r.raw for r in run.versus_rounds),
                ),
                settings.validity_fails,
            )
            for call, run in enumerate(runs, start=1)
        ]

    @property
    def outcomes(self) -> list[CallOutcome]:
        return self.mode.outcomes

    def announce(self) -> None:
        """Tell the result hook of every call judged since the last time (``pytest_memaslap_result``)."""
        outcomes = self.outcomes
        while self._announced < len(outcomes):
            outcome = outcomes[self._announced]
            self._announced += 1
            if self.config is not None:
                self.config.hook.pytest_memaslap_result(outcome=outcome, config=self.config)

    def versus_failing(self) -> bool:
        """An interleaved A/B call whose B regressed past an allowance (or, when strict, stayed undecided)."""
        for outcome in self.outcomes:
            if outcome.versus is None:
                continue
            if outcome.versus.regressions or (self.settings.inconclusive_fails and outcome.versus.inconclusive):
                return True
        return False

    def document(self) -> dict[str, Any]:
        """The run's results as the JSON document (--slap-json, --slap-save)."""
        from pytest_memaslap.output.document import json_document

        version = next((o.memcached_version for o in self.outcomes if o.memcached_version), "")
        document = json_document(self.outcomes, self.settings.percentiles, __version__, version)
        missing = self.mode.missing_shards()
        if missing:
            document["missing_shards"] = {key: shards for key, shards, _ in missing}
        if self.config is not None:
            self.config.hook.pytest_memaslap_update_json(document=document, config=self.config)
        return document

    def finish(self) -> None:
        """At the session's end: write the JSON and the HDR logs, save the run, compare it with the baseline."""
        settings = self.settings
        if settings.hdr_dir and self.outcomes:
            from pytest_memaslap.output.hdr import write_logs

            self._write("--slap-hdr", settings.hdr_dir, write_logs, self.outcomes, settings.hdr_dir)
        if not (
            settings.json_path
            or settings.save
            or settings.autosave
            or settings.baseline is not None
            or settings.html_path
        ):
            return
        from pytest_memaslap.output.baseline import (
            BaselineError,
            autosave_name,
            compare,
            document_machine,
            machine_differences,
            save,
        )
        from pytest_memaslap.output.files import write_json
        from pytest_memaslap.output.html import write_html

        document = self.document()
        machine = document_machine(document)
        if self.config is not None:
            self.config.hook.pytest_memaslap_update_machine_info(machine_info=machine, config=self.config)
        if settings.save:
            saved = self._write(
                "--slap-save", settings.storage, save, document, settings.storage, settings.save, machine
            )
            self.saved_to = None if saved is None else str(saved)
        if settings.autosave:
            try:
                name = autosave_name(settings.storage, str(machine.get("git_commit", "")))
            except BaselineError as exc:
                self.output_errors.append(str(exc))
            else:
                saved = self._write(
                    "--slap-autosave", settings.storage, save, document, settings.storage, name, machine
                )
                self.saved_to = ", ".join(filter(None, [self.saved_to, None if saved is None else str(saved)])) or None
        if settings.baseline is not None:
            before = settings.baseline.get("machine") or {}
            differ = None
            if self.config is not None:
                differ = self.config.hook.pytest_memaslap_compare_machine_info(
                    baseline=before, current=machine, config=self.config
                )
            if differ is None:
                differ = machine_differences(before, machine)
            self.comparison = compare(
                settings.baseline,
                document,
                settings.allowances,
                list(differ),
                settings.compare_strict,
                settings.inconclusive_fails,
            )
            document = {**document, "comparison": self.comparison.to_dict()}  # (not in the saved run: the JSON)
        if settings.json_path:
            self._write("--slap-json", settings.json_path, write_json, settings.json_path, document)
        if settings.html_path:
            outcomes, percentiles = self.outcomes, settings.percentiles
            self._write(
                "--slap-html",
                settings.html_path,
                write_html,
                settings.html_path,
                outcomes,
                percentiles,
                document,
                self.comparison,
                settings.html_inline,
            )

    def _write(self, option: str, path: str, write: Callable[..., T], *args: Any) -> T | None:
        """Write one output; if it fails (a disk filled during the run), say so and go on with the others."""
        try:
            return write(*args)
        except OSError as exc:
            self.output_errors.append(f"{option}: {path} could not be written: {exc.strerror or exc}")
            return None
