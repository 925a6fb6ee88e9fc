"""pytest hooks only: options, markers, collection-time validation, fixtures, verdicts, summary.

The work happens elsewhere: ``config`` reads options, ``workload`` and
``thresholds`` validate marks, ``fixture`` runs the load, ``sharding`` knows
the xdist roles and merges shards, ``report`` formats the output.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any

import pytest
from pymemcache.client.base import Client

from pytest_memaslap.memcached.server import MemcachedServer, ServerError, ServerPool
from pytest_memaslap.model.memaslap_file import load_config
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.thresholds import ThresholdError, parse_all
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.output.progress import ProgressPoller, ProgressPrinter, ProgressPublisher, progress_key, stat_freq
from pytest_memaslap.output.terminal import comparison_table, terminal_table, thresholds_table
from pytest_memaslap.plugin.fixture import Slap
from pytest_memaslap.plugin.modes import SERVER_ERROR_KEY, SERVER_KEY, SHARDED_KEY, TOKEN_KEY, role_for
from pytest_memaslap.plugin.options import Settings, add_options, server_config_from_mark, shards_option
from pytest_memaslap.plugin.session import SlapPlan, SlapSession
from pytest_memaslap.plugin.signals import install_sigterm_handler, restore_sigterm_handler

SCALARS = ("ops", "ops_per_sec", "errors", "hit_ratio", "duration_s")
SESSION = pytest.StashKey[SlapSession]()
PLAN = pytest.StashKey[SlapPlan]()
INDEX = pytest.StashKey[int]()
SLAP = pytest.StashKey[Slap]()

MARKERS = (
    "slap(**workload): the load this test runs with the slap fixture: duration, ops, warmup, connections, "
    "window, commands, keys, key_size, value_size, key_pattern, seed, preload, protocol, timeout, reconnect, "
    "rate, arrivals, config (a memaslap -F file)",
    "slap_thresholds(*exprs): pass/fail rules on the result, e.g. 'ops_per_sec >= 50k', 'get.p99 < 2ms'",
    "memcached(threads=, memory=, args=, binary=, udp=): settings of the memcached the plugin starts for these tests",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """``--slap-shards=N`` is ``-n N --dist each``: every worker runs every slap test as one shard."""
    shards = shards_option(config)
    if shards is None or hasattr(config, "workerinput"):
        return  # a worker sees the option too; only the controller starts workers
    if not config.pluginmanager.hasplugin("xdist"):
        raise pytest.UsageError(f"--slap-shards={shards} needs pytest-xdist, which is not active (-p no:xdist?)")
    numprocesses = getattr(config.option, "numprocesses", None)
    if numprocesses not in (None, shards):
        raise pytest.UsageError(f"--slap-shards={shards} conflicts with -n {numprocesses}; give one of them")
    config.option.numprocesses = shards
    config.option.dist = "each"


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    state = SlapSession(Settings.from_config(config), role_for(config))
    config.stash[SESSION] = state
    if state.role.reports:
        config.pluginmanager.register(ReportCollector(state), "memaslap-report-collector")


def _session(config: pytest.Config) -> SlapSession:
    return config.stash[SESSION]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: start the one server all workers share, and tell them the run token."""
    state = _session(node.config)
    node.workerinput[TOKEN_KEY] = state.role.token
    node.workerinput[SHARDED_KEY] = node.config.getoption("dist", "no") == "each"
    try:
        server = state.pool.get(state.settings.server)
    except ServerError as exc:
        node.workerinput[SERVER_ERROR_KEY] = str(exc)
        return
    node.workerinput[SERVER_KEY] = server.spec
    if state.settings.stat_freq != 0:
        _watch_progress(node.config, state, server, str(node.gateway.id))


def _watch_progress(config: pytest.Config, state: SlapSession, server: MemcachedServer, worker: str) -> None:
    """The controller prints the workers' progress, read from the server (see ``progress``)."""
    if state.progress is None:
        write_line = _terminal_writer(config)
        if write_line is None:
            return
        state.progress = ProgressPoller(
            server.host, server.port, lambda period: write_line(period.line()), server.tls, server.sasl
        )
    state.progress.watch(progress_key(state.role.token, worker))


def plan_for(item: pytest.Item, session: SlapSession) -> SlapPlan:
    """Merge the item's marks (closest wins) with the options; raises on any bad value."""
    slap_kwargs: dict[str, Any] = {}
    slap_marks = list(item.iter_markers("slap"))
    for mark in reversed(slap_marks):
        if mark.args:
            raise WorkloadError(f"slap mark: takes keyword arguments only; got positional {mark.args!r}")
        slap_kwargs.update(mark.kwargs)
    if "config" in slap_kwargs:  # memaslap's -F file, relative to the test's file; the mark's own arguments win
        config = slap_kwargs.pop("config")
        if not isinstance(config, (str, os.PathLike)):
            raise WorkloadError(f"config={config!r}: expected the path of a memaslap configuration file")
        slap_kwargs = {**load_config(item.path.parent / config), **slap_kwargs}
    workload = Workload.from_args(slap_kwargs)
    workload = Workload.from_args(dict(session.settings.workload_overrides), base=workload)
    exprs: tuple[Any, ...] = ()
    for mark in item.iter_markers("slap_thresholds"):
        if mark.kwargs:
            raise ThresholdError(f"slap_thresholds mark: takes expressions only; got {mark.kwargs!r}")
        exprs += mark.args
    thresholds = parse_all(exprs, workload.measured_commands())
    server = session.settings.server
    for mark in reversed(list(item.iter_markers("memcached"))):
        if mark.args:
            raise WorkloadError(f"memcached mark: takes keyword arguments only; got {mark.args!r}")
        server = server_config_from_mark(server, mark.kwargs)
    return SlapPlan(workload, thresholds, server)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """Validate marks as tests are collected, so a bad argument fails collection, naming it."""
    result = yield
    items = result if isinstance(result, list) else [result]
    session = _session(collector.config)
    for item in items:
        if isinstance(item, pytest.Function):
            try:
                item.stash[PLAN] = plan_for(item, session)
            except (WorkloadError, ThresholdError) as exc:
                raise collector.CollectError(f"{item.nodeid}: {exc}") from None
    return result


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Number the tests: every shard collects the same list, so the numbers name a test's keys alike."""
    for index, item in enumerate(items):
        item.stash[INDEX] = index


@pytest.fixture(scope="session")
def memcached_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """Every memcached of the session, one per configuration; stopped and reaped at the end.

    While it exists, SIGTERM is handled like Ctrl-C (so a CI runner's stop ends
    the load and stops the servers in order); suites that never use the
    plugin's fixtures keep their own SIGTERM behaviour.
    """
    pool = _session(request.config).pool
    previous = install_sigterm_handler()
    try:
        yield pool
    finally:
        pool.close()
        restore_sigterm_handler(previous)


@pytest.fixture
def memcached_server(request: pytest.FixtureRequest, memcached_pool: ServerPool) -> MemcachedServer:
    """The memcached for this test: started once per configuration, or the one given with --memcached."""
    state = _session(request.config)
    plan = request.node.stash.get(PLAN, None)
    try:
        return state.server_for(plan.server if plan is not None else state.settings.server)
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def memcached_client(memcached_server: MemcachedServer) -> Iterator[Client]:
    """A pymemcache client connected to ``memcached_server``."""
    client = memcached_server.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def slap(request: pytest.FixtureRequest, memcached_server: MemcachedServer) -> Slap:
    """Call ``slap()`` to run the test's workload; it returns a SlapResult."""
    state = _session(request.config)
    item = request.node
    plan = item.stash.get(PLAN, None) or plan_for(item, state)
    index = item.stash.get(INDEX, 0)
    role = state.role
    runner = Slap(
        plan.workload,
        plan.thresholds,
        memcached_server,
        lambda call: state.prefix_for(index, call),
        ShardPlan(role.shard_index, role.shard_count, state.settings.sync_timeout),
        state.settings.cleanup,
        _progress_printer(request.config, item.nodeid, memcached_server),
        state.settings.rounds,
    )
    item.stash[SLAP] = runner
    return runner


def _progress_printer(config: pytest.Config, nodeid: str, server: MemcachedServer) -> Any:
    """Live progress: lines on this terminal, or (on an xdist worker) records for the controller to print."""
    state = _session(config)
    emit: Any
    if state.role.kind == "worker":
        key = progress_key(state.role.token, state.role.worker_id)
        emit = ProgressPublisher(server.host, server.port, key, server.tls, server.sasl)
    else:
        write_line = _terminal_writer(config)
        if write_line is None:
            return None
        emit = lambda period: write_line(period.line())  # noqa: E731

    def for_workload(workload: Workload, label: str) -> ProgressPrinter | None:
        every = stat_freq(state.settings.stat_freq, workload.duration)
        if not every:
            return None
        return ProgressPrinter(emit, nodeid + label, workload.duration, every, state.role.shard_count)

    return for_workload


def _terminal_writer(config: pytest.Config) -> Any:
    """Writes a live line to the terminal, past output capture; None when quiet (-q) or there is no terminal."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or config.get_verbosity() < 0:
        return None

    def write_line(line: str) -> None:
        if _session(config).role.kind == "controller":
            # the xdist controller runs no tests (nothing is captured) and its dots do not end their line
            if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
                reporter.write("\n")
            reporter.write_line(line)
            return
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():  # live, not in the test's captured output
            reporter.write_line(line)

    return write_line


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After a passing test body, fail the test if a slap run misses a threshold.

    A shard cannot judge alone: under sharding, the controller judges the merged result.
    """
    state = _session(item.config)
    try:
        result = yield
    except KeyboardInterrupt:
        _report_interrupted(item, state)
        raise
    plan = item.stash.get(PLAN, None)
    runner = item.stash.get(SLAP, None)
    if plan is None or not plan.thresholds or not state.settings.enforce_thresholds:
        return result
    if runner is None or not runner.runs:
        pytest.fail("this test declares slap_thresholds but never called slap()", pytrace=False)
    if state.role.sharded:
        return result
    for number, run in enumerate(runner.runs, start=1):
        if not run.passed:
            which = f" (slap() call #{number})" if len(runner.runs) > 1 else ""
            pytest.fail(_threshold_failure([v.row() for v in run.verdicts], which), pytrace=False)
    return result


def _report_interrupted(item: pytest.Item, state: SlapSession) -> None:
    """Ctrl-C ends the session before the test's report exists: hand its runs to the summary directly."""
    runner = item.stash.get(SLAP, None)
    if runner is None or not runner.runs or not state.role.reports:
        return  # (on a worker, Ctrl-C reaches the controller, which stops the session)
    exprs = tuple(t.expr for t in runner.thresholds)
    for entry in state.entries_for(item.nodeid, runner.runs, exprs):
        state.collect(entry)


def _threshold_failure(rows: list[tuple[str, str, str, str]], which: str = "") -> str:
    failed = sum(1 for row in rows if row[3] != "pass")
    return f"slap thresholds failed{which}: {failed} of {len(rows)}\n{thresholds_table(rows)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the test's slap results to its report (and user_properties, for JUnit XML)."""
    report: pytest.TestReport = yield
    runner = item.stash.get(SLAP, None)
    if report.when == "call" and runner is not None and runner.runs:
        state = _session(item.config)
        exprs = tuple(t.expr for t in runner.thresholds)
        report.slap = state.entries_for(item.nodeid, runner.runs, exprs)  # type: ignore[attr-defined]
        for number, run in enumerate(runner.runs, start=1):
            result = run.result.to_dict()
            prefix = "slap" if number == 1 else f"slap#{number}"
            properties = [(f"{prefix}.{name}", result[name]) for name in SCALARS]
            properties += [
                (f"{prefix}.{name}_us", result["latency_us"][name]) for name in ("p50", "p99", "p999", "max")
            ]
            # junitxml writes the teardown report's properties, which come from the item
            item.user_properties.extend(properties)
            report.user_properties.extend(properties)
    return report


class ReportCollector:
    """On the reporting process: gathers shard entries from reports, merges them, judges sharded tests."""

    def __init__(self, state: SlapSession) -> None:
        self.state = state

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for entry in getattr(report, "slap", None) or ():
            merged = self.state.collect(entry)
            shards = entry["shard"][1]
            if merged is None or shards == 1 or not merged["enforced"] or report.failed:
                continue
            if any(not v["passed"] for v in merged["thresholds"]):
                # the last shard's report carries the verdict on the aggregate of all shards
                report.outcome = "failed"
                report.longrepr = _threshold_failure(merged["rows"], f" on the aggregate of {shards} shards")


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _session(session.config)
    if state.progress is not None:
        state.progress.stop()
    if not state.role.reports:
        return
    state.finish()
    failed = state.missing_shards() or (state.comparison is not None and state.comparison.regressions)
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _session(config)
    if not state.role.reports or not (state.entries or state.missing_shards() or state.comparison):
        return
    terminalreporter.write_sep("=", "slap summary")
    if state.entries:
        terminalreporter.write_line(terminal_table(state.entries, state.settings.percentiles))
    for key, missing, count in state.missing_shards():
        shards = ", ".join(map(str, missing))
        terminalreporter.write_line(
            f"{key}: no result from shard {shards} of {count}: the aggregate is incomplete and the run fails",
            red=True,
        )
    if state.role.kind == "controller" and config.getoption("dist", "no") != "each" and len(state.entries) > 1:
        terminalreporter.write_line(
            "note: slap tests were spread over xdist workers and may have run at the same time against one "
            "server; use --slap-shards=N (or --dist each) to run each test as N shards instead"
        )
    if state.entries:  # (the engine ran, so importing it costs nothing here)
        from pytest_memaslap.engine import LOOP_NOTE

        if LOOP_NOTE:
            terminalreporter.write_line(f"note: {LOOP_NOTE}")
    if state.settings.json_path:
        terminalreporter.write_line(f"slap results written to {state.settings.json_path}")
    if state.saved_to:
        terminalreporter.write_line(f"slap results saved to {state.saved_to}")
    if state.comparison is not None:
        terminalreporter.write_sep("=", "slap comparison with the baseline")
        terminalreporter.write_line(comparison_table(state.comparison))
        regressions = sorted({row.test for row in state.comparison.regressions})
        if regressions:
            terminalreporter.write_line(f"regressions past the allowances in: {', '.join(regressions)}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    if state is not None:
        state.pool.close()
