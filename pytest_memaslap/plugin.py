"""pytest hooks only: options, markers, collection-time validation, fixtures, verdicts, summary.

The work happens elsewhere: ``config`` reads options, ``workload`` and
``thresholds`` validate marks, ``fixture`` runs the load, ``report`` formats it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest
from pymemcache.client.base import Client

from .config import Settings, add_options, server_config_from_mark
from .engine import LOOP_NOTE
from .fixture import Slap
from .report import terminal_table, thresholds_table
from .server import MemcachedServer, ServerError, ServerPool
from .session import SlapPlan, SlapSession
from .signals import install_sigterm_handler, restore_sigterm_handler
from .thresholds import ThresholdError, parse_all
from .workload import Workload, WorkloadError

SCALARS = ("ops", "ops_per_sec", "errors", "hit_ratio", "duration_s")
SESSION = pytest.StashKey[SlapSession]()
PLAN = pytest.StashKey[SlapPlan]()
SLAP = pytest.StashKey[Slap]()
SIGTERM = pytest.StashKey[Any]()

MARKERS = (
    "slap(**workload): the load this test runs with the slap fixture: duration, ops, warmup, connections, "
    "window, commands, keys, key_size, value_size, key_pattern, seed, preload, protocol, timeout",
    "slap_thresholds(*exprs): pass/fail rules on the result, e.g. 'ops_per_sec >= 50k', 'get.p99 < 2ms'",
    "memcached(threads=, memory=, args=, binary=): settings of the memcached the plugin starts for these tests",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    state = SlapSession(Settings.from_config(config))
    config.stash[SESSION] = state
    config.pluginmanager.register(ReportCollector(state), "memaslap-report-collector")
    config.stash[SIGTERM] = install_sigterm_handler()


def _session(config: pytest.Config) -> SlapSession:
    return config.stash[SESSION]


def plan_for(item: pytest.Item, session: SlapSession) -> SlapPlan:
    """Merge the item's marks (closest wins) with the options; raises on any bad value."""
    slap_kwargs: dict[str, Any] = {}
    slap_marks = list(item.iter_markers("slap"))
    for mark in reversed(slap_marks):
        if mark.args:
            raise WorkloadError(f"slap mark: takes keyword arguments only; got positional {mark.args!r}")
        slap_kwargs.update(mark.kwargs)
    workload = Workload.from_args(slap_kwargs)
    workload = Workload.from_args(dict(session.settings.workload_overrides), base=workload)
    exprs: tuple[Any, ...] = ()
    for mark in item.iter_markers("slap_thresholds"):
        if mark.kwargs:
            raise ThresholdError(f"slap_thresholds mark: takes expressions only; got {mark.kwargs!r}")
        exprs += mark.args
    thresholds = parse_all(exprs, workload.command_names())
    server = session.settings.server
    for mark in reversed(list(item.iter_markers("memcached"))):
        if mark.args:
            raise WorkloadError(f"memcached mark: takes keyword arguments only; got {mark.args!r}")
        server = server_config_from_mark(server, mark.kwargs)
    return SlapPlan(workload, thresholds, server, bool(slap_marks))


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


@pytest.fixture(scope="session")
def memcached_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """Every memcached of the session, one per configuration; stopped and reaped at the end."""
    pool = _session(request.config).pool
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def memcached_server(request: pytest.FixtureRequest, memcached_pool: ServerPool) -> MemcachedServer:
    """The memcached for this test: started once per configuration, or the one given with --memcached."""
    plan = request.node.stash.get(PLAN, None)
    config = plan.server if plan is not None else _session(request.config).settings.server
    try:
        return memcached_pool.get(config)
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
    session = _session(request.config)
    plan = request.node.stash.get(PLAN, None)
    if plan is None:
        plan = plan_for(request.node, session)
    runner = Slap(plan.workload, plan.thresholds, memcached_server, session.next_prefix)
    request.node.stash[SLAP] = runner
    return runner


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After a passing test body, fail the test if a slap run misses a threshold."""
    result = yield
    plan = item.stash.get(PLAN, None)
    runner = item.stash.get(SLAP, None)
    if plan is None or not plan.thresholds or not _session(item.config).settings.enforce_thresholds:
        return result
    if runner is None or not runner.runs:
        pytest.fail("this test declares slap_thresholds but never called slap()", pytrace=False)
    for number, run in enumerate(runner.runs, start=1):
        if not run.passed:
            failed = sum(1 for v in run.verdicts if not v.passed)
            which = f" (slap() call #{number})" if len(runner.runs) > 1 else ""
            table = thresholds_table([v.row() for v in run.verdicts])
            pytest.fail(f"slap thresholds failed{which}: {failed} of {len(run.verdicts)}\n{table}", pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the test's slap results to its report (and user_properties, for JUnit XML)."""
    report: pytest.TestReport = yield
    runner = item.stash.get(SLAP, None)
    if report.when == "call" and runner is not None and runner.runs:
        entries = _session(item.config).entries_for(item.nodeid, runner.runs)
        report.slap = entries  # type: ignore[attr-defined]  # serialised by xdist with the report
        for entry in entries:
            result = entry["result"]
            prefix = "slap" if entry["key"] == item.nodeid else f"slap{entry['key'][len(item.nodeid) :]}"
            properties = [(f"{prefix}.{name}", result[name]) for name in SCALARS]
            properties += [
                (f"{prefix}.{name}_us", result["latency_us"][name]) for name in ("p50", "p99", "p999", "max")
            ]
            # junitxml writes the teardown report's properties, which come from the item
            item.user_properties.extend(properties)
            report.user_properties.extend(properties)
    return report


class ReportCollector:
    """Gathers slap entries from test reports, local or sent by xdist workers."""

    def __init__(self, state: SlapSession) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entries = getattr(report, "slap", None)
        if entries and report.when == "call":
            self.state.collect(entries)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _session(session.config)
    if state.settings.json_path and not hasattr(session.config, "workerinput"):
        state.write_json(state.settings.json_path)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = _session(config)
    if not state.entries:
        return
    terminalreporter.write_sep("=", "slap summary")
    terminalreporter.write_line(terminal_table(state.entries))
    if LOOP_NOTE:
        terminalreporter.write_line(f"note: {LOOP_NOTE}")
    if state.settings.json_path:
        terminalreporter.write_line(f"slap results written to {state.settings.json_path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    restore_sigterm_handler(config.stash.get(SIGTERM, None))
    state = config.stash.get(SESSION, None)
    if state is not None:
        state.pool.close()
