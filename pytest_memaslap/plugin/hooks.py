"""pytest hooks only: options, markers, collection-time validation, fixtures, verdicts, summary.

The work happens elsewhere: ``options`` reads the command line and ini,
``model`` validates marks, ``fixture`` runs the load, ``modes`` knows what
this process is (single, xdist controller or worker) and ``aggregate`` judges
each call once, ``output`` formats what is reported.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_memaslap import hotpath
from pytest_memaslap.plugin.optiontable import add_options, any_given, shards_option

if TYPE_CHECKING:  # (loaded on first use: a suite without slap tests pays for none of it)
    from pymemcache.client.base import Client

    from pytest_memaslap.memcached.server import MemcachedServer, ServerPool
    from pytest_memaslap.model.workload import Workload
    from pytest_memaslap.plugin.fixture import Slap
    from pytest_memaslap.plugin.messages import ShardReport
    from pytest_memaslap.plugin.modes import Mode
    from pytest_memaslap.plugin.session import SlapPlan, SlapSession
    from pytest_memaslap.stats.live import OnPreload, OnSecond
    from pytest_memaslap.stats.outcome import CallOutcome

SESSION: pytest.StashKey[SlapSession] = pytest.StashKey()
PLAN: pytest.StashKey[SlapPlan] = pytest.StashKey()
INDEX = pytest.StashKey[int]()
SLAP: pytest.StashKey[Slap] = pytest.StashKey()
SHARD_REPORTS: pytest.StashKey[list[ShardReport]] = pytest.StashKey()  # this process's reports of its slap() calls
CONTROLLER_SIGINT = pytest.StashKey[Any]()  # the SIGINT handler the xdist controller replaced

# the slap mark's arguments, as the workload takes them (a test checks the two are the same: written out here,
# so that registering the marks loads no model)
MARK_ARGUMENTS = (
    "duration", "ops", "warmup", "connections", "window", "commands", "keys", "key_size", "value_size",
    "key_pattern", "seed", "preload", "protocol", "timeout", "reconnect", "rate", "stages", "connection_steps",
    "step_duration", "arrivals", "division", "verify", "expire", "expire_after", "overwrite", "transport", "trace",
    "speed", "loop", "amplify", "preset", "probe_rate", "poll_interval",
)  # fmt: skip
STARTED_ON_FIRST_USE = "memcached started by the plugin on first use"
SLAP_MARKS = ("slap", "slap_thresholds", "slap_capacity", "memcached")
SLAP_FIXTURES = ("slap", "memcached_server", "memcached_client", "memcached_pool")
MARKERS = (
    f"slap(**workload): the load this test runs with the slap fixture: {', '.join(MARK_ARGUMENTS)}, "
    "config (a memaslap -F file)",
    "slap_thresholds(*exprs): pass/fail rules on the result, e.g. 'ops_per_sec >= 50k', 'get.p99 < 2ms'",
    "slap_capacity(slo=, start=, limit=, step=, precision=, max_steps=, time_limit=): instead of one load, find "
    "the highest open-loop rate that keeps the SLO (e.g. slo='get.p99 < 1ms'); gate it with 'capacity >= 40k'",
    "memcached(threads=, memory=, args=, binary=, udp=): settings of the memcached the plugin starts for these tests",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Hooks other plugins implement: results as they are judged, the JSON document before it is written."""
    from pytest_memaslap.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


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
    if any_given(config) or _under_xdist(config):  # (else the session starts with the first slap test)
        _start_session(config)


def _under_xdist(config: pytest.Config) -> bool:
    """A worker, or a controller that will start workers: the modes need the session from the start."""
    return hasattr(config, "workerinput") or bool(getattr(config.option, "numprocesses", None))


def _start_session(config: pytest.Config) -> SlapSession:
    """The plugin's session: its settings read and checked, its mode found, its reporting set up."""
    from pytest_memaslap.plugin.modes import Controller, mode_for
    from pytest_memaslap.plugin.options import Settings
    from pytest_memaslap.plugin.session import SlapSession
    from pytest_memaslap.plugin.signals import install_first_interrupt_handler

    state = SlapSession(Settings.from_config(config), mode_for(config), config)
    config.stash[SESSION] = state
    if isinstance(state.mode, Controller):  # (it runs no load: its first Ctrl-C defers the next from the start)
        config.stash[CONTROLLER_SIGINT] = install_first_interrupt_handler()
    if state.mode.reports:
        config.pluginmanager.register(ReportCollector(state), "memaslap-report-collector")
        if state.settings.prometheus is not None:
            _serve_metrics(state.mode, *state.settings.prometheus)
    return state


def _serve_metrics(mode: Mode, host: str, port: int) -> None:
    from pytest_memaslap.output.prometheus import ExporterError

    try:
        mode.serve_metrics(host, port)
    except ExporterError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str | None:
    """Which engine and event loop the load runs on, and against which memcached (found without loading them)."""
    state = config.stash.get(SESSION, None)
    loop = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio (uvloop is not installed)"
    if state is None:  # (no option of the plugin given: it starts a memcached when a slap test first needs one)
        return f"memaslap: hot path {hotpath.describe()}, event loop {loop}; {STARTED_ON_FIRST_USE}"
    external = state.mode.server_address or state.settings.external
    server = f"memcached at {external}" if external else STARTED_ON_FIRST_USE
    exporter = state.mode.exporter
    metrics = f"; live metrics for Prometheus at {exporter.url}" if exporter is not None else ""
    return f"memaslap: hot path {hotpath.describe()}, event loop {loop}; {server}{metrics}"


def _session(config: pytest.Config) -> SlapSession:
    """The plugin's session, started now if nothing needed it before."""
    state = config.stash.get(SESSION, None)
    return state if state is not None else _start_session(config)


def _uses_the_plugin(item: pytest.Item) -> bool:
    """Whether a test has a mark or a fixture of the plugin (the others never load it)."""
    fixtures = getattr(item, "fixturenames", ())
    return any(item.get_closest_marker(name) for name in SLAP_MARKS) or any(f in fixtures for f in SLAP_FIXTURES)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: start the one server all workers share, and tell them the run token."""
    from pytest_memaslap.memcached.server import ServerError
    from pytest_memaslap.plugin.modes import Controller

    state = _session(node.config)
    controller = state.mode
    assert isinstance(controller, Controller)  # (xdist calls this hook on its controller only)
    try:
        server = state.pool.get(state.settings.server)
        versus = state.versus_for(state.settings.server)
    except ServerError as exc:
        controller.configure_worker(node, None, str(exc))
        return
    controller.configure_worker(node, server, None, versus)
    if state.settings.stat_freq != 0:
        controller.watch_progress(node.config, server, str(node.gateway.id))
    controller.watch_live(server, str(node.gateway.id))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: a worker crashed; shards of a sharded run waiting for it at a barrier stop now."""
    from pytest_memaslap.memcached.server import ServerError
    from pytest_memaslap.plugin.modes import Controller

    state = _session(node.config)
    controller = state.mode
    if not error or not isinstance(controller, Controller) or node.config.getoption("dist", "no") != "each":
        return
    try:
        server = state.pool.get(state.settings.server)
    except ServerError:
        return
    controller.call_off(server, f"xdist worker {node.gateway.id} went down ({str(error).strip()[:200]})")


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """Validate marks as tests are collected, so a bad argument fails collection, naming it."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function) and _uses_the_plugin(item):
            from pytest_memaslap.model.thresholds import ThresholdError
            from pytest_memaslap.model.workload import WorkloadError
            from pytest_memaslap.plugin.plans import plan_for

            session = _session(collector.config)
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
    from pytest_memaslap.plugin.signals import install_sigterm_handler, restore_sigterm_handler

    pool = _session(request.config).pool
    previous = install_sigterm_handler()
    try:
        yield pool
    finally:
        pool.close(keep_logs=request.session.testsfailed > 0)  # (a failing session keeps the servers' output)
        restore_sigterm_handler(previous)


@pytest.fixture
def memcached_server(request: pytest.FixtureRequest, memcached_pool: ServerPool) -> MemcachedServer:
    """The memcached for this test: started once per configuration, or the one given with --memcached."""
    from pytest_memaslap.memcached.server import ServerError

    state = _session(request.config)
    plan = request.node.stash.get(PLAN, None)
    try:
        return state.server_for(plan.server if plan is not None else state.settings.server)
    except ServerError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # (outside the except: the message once, not chained to itself)


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
    from pytest_memaslap.memcached.server import ServerError
    from pytest_memaslap.plugin.fixture import Slap
    from pytest_memaslap.plugin.plans import plan_for

    state = _session(request.config)
    item = request.node
    plan = item.stash.get(PLAN, None) or plan_for(item, state)
    index = item.stash.get(INDEX, 0)
    problem = ""
    try:
        versus = state.versus_for(plan.server)
    except ServerError as exc:
        versus, problem = None, f"--slap-versus*: B: {exc}"
    if problem:
        pytest.fail(problem, pytrace=False)  # (outside the except: the message once)
    settings = state.settings
    runner = Slap(
        plan.workload,
        plan.thresholds,
        memcached_server,
        lambda call: state.prefix_for(index, call),
        state.mode.shard_plan(state.settings.sync_timeout),
        state.settings.cleanup,
        _second_sinks(request.config, item.nodeid, memcached_server),
        settings.rounds,
        plan.capacity,
        versus,
        settings.max_rounds,
        settings.allowances,
        settings.server_stats != "off" and state.mode.shard_index == 0,  # (one shard samples for all)
        "under pytest-xdist, other tests may use the server in the same seconds" if state.mode.parallel else None,
    )
    item.stash[SLAP] = runner
    return runner


def _second_sinks(config: pytest.Config, nodeid: str, server: MemcachedServer) -> Any:
    """What sees each second of a slap() call: live progress and live metrics, where the mode sends them."""
    state = _session(config)
    emit = state.mode.progress_sink(config, server)
    live = state.mode.live_sink(server)
    if emit is None and live is None:
        return None

    from pytest_memaslap.output.progress import PRELOAD_EVERY_S, PreloadPrinter, ProgressPrinter, stat_freq
    from pytest_memaslap.stats.live import LiveFeed, every_second

    def for_workload(workload: Workload, label: str) -> tuple[OnSecond | None, OnPreload | None]:
        every = stat_freq(state.settings.stat_freq, workload.duration)
        mode = state.mode
        printer = preload = None
        if emit is not None and every:
            printer = ProgressPrinter(emit, nodeid + label, workload.duration, every, mode.shard_count)
        if emit is not None and state.settings.stat_freq != 0:  # (a long preload shows, unless progress is off)
            preload_every = state.settings.stat_freq or PRELOAD_EVERY_S
            preload = PreloadPrinter(emit, f"{nodeid}{label} preload", preload_every, mode.shard_count)
        feed = LiveFeed(live, nodeid + label, mode.shard_index, mode.shard_count) if live is not None else None
        return every_second(printer, feed), preload

    return for_workload


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Hand the test's slap() calls to the mode; fail a passing test whose calls it judged as failed.

    A shard cannot judge alone: on an xdist worker nothing is judged here, the
    controller judges the merged result when the last shard's report arrives.
    """
    if PLAN not in item.stash:  # (not a test of the plugin's)
        return (yield)
    state = _session(item.config)
    try:
        result = yield
    except KeyboardInterrupt:  # (Ctrl-C ends the session before any report exists)
        _hand_in(item, state, interrupted=True)
        raise
    except BaseException:
        _hand_in(item, state)
        raise
    outcomes = _hand_in(item, state)
    plan = item.stash.get(PLAN, None)
    runner = item.stash.get(SLAP, None)
    if plan is not None and plan.thresholds and state.settings.enforce_thresholds and not (runner and runner.runs):
        pytest.fail("this test declares slap_thresholds but never called slap()", pytrace=False)
    failed = [outcome for outcome in outcomes if outcome.fails_test]
    if failed:
        pytest.fail(_threshold_failure(failed[0], len(outcomes)), pytrace=False)
    return result


def _hand_in(item: pytest.Item, state: SlapSession, interrupted: bool = False) -> list[CallOutcome]:
    """The test's calls as this process's shard reports, kept for its test report; the outcomes judged here."""
    runner = item.stash.get(SLAP, None)
    if runner is None or not runner.runs or SHARD_REPORTS in item.stash:
        return []
    reports = state.shard_reports(item.nodeid, runner.runs, runner.thresholds)
    item.stash[SHARD_REPORTS] = reports
    return state.mode.hand_in(reports, interrupted)


def _threshold_failure(outcome: CallOutcome, calls: int) -> str:
    """The failed test's message: which call, on what, and the thresholds table."""
    from pytest_memaslap.output.terminal import thresholds_table

    which = f" (slap() call #{outcome.call})" if calls > 1 else ""
    if len(outcome.shards) > 1:
        which += f" on the aggregate of {len(outcome.shards)} shards"
    if outcome.validity_fails and outcome.result.validity()["passed"] is False:
        from pytest_memaslap.stats.validity import failure_text

        invalid = f"slap run failed its validity checks{which} (--slap-validity=fail): "
        invalid += failure_text(outcome.result.validity())
        if not any(verdict.failed for verdict in outcome.verdicts):
            return invalid
        which = f"{which}; {invalid}"
    failed = sum(1 for verdict in outcome.verdicts if verdict.failed)
    undecided = len(outcome.inconclusive) if outcome.strict else 0
    counted = f"{failed} of {len(outcome.verdicts)}" + (f", {undecided} inconclusive (strict)" if undecided else "")
    return f"slap thresholds failed{which}: {counted}\n{thresholds_table(outcome.threshold_rows())}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Give the call report what the reporting process needs (on an xdist worker: the shard reports)."""
    report: pytest.TestReport = yield
    if report.when == "call" and SHARD_REPORTS in item.stash:
        _session(item.config).mode.attach(report, item.stash[SHARD_REPORTS])
    return report


class ReportCollector:
    """On the reporting process: judges what arrives from workers, and puts each outcome in JUnit XML."""

    def __init__(self, state: SlapSession) -> None:
        self.state = state
        self.properties: dict[str, list[tuple[str, Any]]] = {}  # node id -> JUnit properties not written yet
        self.seen = 0  # outcomes already handled

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self._judge(report)
        elif report.when == "teardown" and report.nodeid in self.properties:
            # junitxml writes the teardown report's properties
            report.user_properties.extend(self.properties.pop(report.nodeid))

    def _judge(self, report: pytest.TestReport) -> None:
        """Outcomes this report completes: a worker's last shard of a call, or (one process) the test's calls."""
        mode = self.state.mode
        mode.receive(report)
        fresh = mode.outcomes[self.seen :]
        self.seen = len(mode.outcomes)
        self.state.announce()
        for outcome in fresh:
            self.properties.setdefault(outcome.nodeid, []).extend(outcome.junit_properties())
            if outcome.fails_test and report.passed:  # (one process: the test has failed already)
                report.outcome = "failed"
                report.longrepr = _threshold_failure(outcome, len(fresh))


@pytest.hookimpl(tryfirst=True)  # (before xdist stops its workers: an interrupted run waits for their shards)
def pytest_sessionfinish(session: pytest.Session) -> None:
    if SESSION not in session.config.stash:
        return
    from pytest_memaslap.plugin.signals import interrupts_deferred

    interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
    with interrupts_deferred() if interrupted else contextlib.nullcontext():  # (a second Ctrl-C loses nothing)
        _finish_session(session, interrupted)


def _finish_session(session: pytest.Session, interrupted: bool) -> None:
    state = session.config.stash.get(SESSION, None)
    if state is None:  # (the plugin was never used)
        return
    if interrupted:
        state.mode.collect_interrupted()
    state.mode.close()
    state.failed = session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if not state.mode.reports:
        return
    state.announce()  # (calls that no test report carried: interrupted ones)
    state.finish()
    failed = (
        state.mode.missing_shards()
        or state.output_errors
        or (state.comparison is not None and state.comparison.failing)
        or state.versus_failing()
    )
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    state.failed = session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)


@pytest.hookimpl(tryfirst=True)  # (before pytest's own, which takes a while to format the traceback)
def pytest_keyboard_interrupt(excinfo: Any) -> None:
    """From pytest's first word of an interrupt to the end of the session, further interrupts are noted, not
    raised: the wrap-up (the shards' partial results, the summary, the JSON) is bounded and must not be cut."""
    from pytest_memaslap.plugin.signals import defer_interrupts_until_exit

    defer_interrupts_until_exit()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    if state is None:
        return
    mode = state.mode
    if not mode.reports or not (mode.outcomes or mode.missing_shards() or state.comparison or state.output_errors):
        return
    from pytest_memaslap.output.terminal import (
        capacity_tables,
        comparison_table,
        inconclusive_notes,
        open_loop_notes,
        poll_interval_notes,
        probe_notes,
        replay_notes,
        server_notes,
        stage_tables,
        terminal_table,
        validity_notes,
        versus_table,
    )

    terminalreporter.write_sep("=", "slap summary")
    if mode.outcomes:
        settings = state.settings
        column = settings.server_stats == "column"
        width = getattr(getattr(terminalreporter, "_tw", None), "fullwidth", None)  # (pytest's terminal width)
        table = terminal_table(mode.outcomes, settings.percentiles, column, settings.columns, width)
        terminalreporter.write_line(table)
    for table in capacity_tables(mode.outcomes) + stage_tables(mode.outcomes):
        terminalreporter.write_line("")
        terminalreporter.write_line(table)
    for key, missing, count in mode.missing_shards():
        shards = ", ".join(map(str, missing))
        terminalreporter.write_line(
            f"{key}: no result from shard {shards} of {count}: the aggregate is incomplete and the run fails",
            red=True,
        )
    notes = mode.summary_notes(config) + open_loop_notes(mode.outcomes) + replay_notes(mode.outcomes)
    notes += server_notes(mode.outcomes)
    notes += validity_notes(mode.outcomes) + probe_notes(mode.outcomes) + poll_interval_notes(mode.outcomes)
    for outcome in mode.outcomes:
        why = outcome.result.limited_by_load_generator()
        if why:
            notes.append(
                f"{outcome.key}: results limited by the load generator ({why}): its own queueing, or its "
                "machine's stalls, are in the latencies; add shards (--slap-shards) or load machines, ask for "
                "less load, or run the load on a quieter machine"
            )
    if mode.outcomes:  # (the engine ran, so importing it costs nothing here)
        from pytest_memaslap.engine import LOOP_NOTE

        notes += [LOOP_NOTE] if LOOP_NOTE else []
    notes += inconclusive_notes(mode.outcomes)
    for note in notes:
        terminalreporter.write_line(f"note: {note}")
    for error in state.output_errors:
        terminalreporter.write_line(error, red=True)
    if state.settings.json_path and not any(e.startswith("--slap-json") for e in state.output_errors):
        terminalreporter.write_line(f"slap results written to {state.settings.json_path}")
    if state.saved_to:
        terminalreporter.write_line(f"slap results saved to {state.saved_to}")
    if any(outcome.versus for outcome in mode.outcomes):
        terminalreporter.write_sep("=", "slap A/B, interleaved")
        terminalreporter.write_line(versus_table(mode.outcomes))
        regressed = sorted({o.key for o in mode.outcomes if o.versus and o.versus.regressions})
        if regressed:
            terminalreporter.write_line(f"B regressed past the allowances in: {', '.join(regressed)}", red=True)
    if state.comparison is not None:
        terminalreporter.write_sep("=", "slap comparison with the baseline")
        terminalreporter.write_line(comparison_table(state.comparison))
        regressions = sorted({row.test for row in state.comparison.regressions})
        if regressions:
            failing = state.comparison.failing
            terminalreporter.write_line(
                f"regressions past the allowances in: {', '.join(regressions)}"
                + ("" if failing else " (not failing the run: measured on another machine)"),
                red=failing,
                yellow=not failing,
            )


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(SESSION, None)
    if state is None:
        return
    from pytest_memaslap.plugin.signals import restore_first_interrupt_handler, restore_interrupts

    state.mode.stop_serving()
    state.pool.close(keep_logs=state.failed)
    restore_interrupts()
    restore_first_interrupt_handler(config.stash.get(CONTROLLER_SIGINT, None))
