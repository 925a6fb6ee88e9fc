"""The three kinds of process a session can have, each a class chosen once at configure time.

- ``SingleProcess``: no xdist; one shard runs the whole workload, and this
  process judges each call as soon as it ends and reports.
- ``Controller``: the xdist controller; starts the one memcached every worker
  uses, hands its address and the run token to the workers, and turns the
  shard reports that arrive with the workers' test reports into one judged
  outcome per call.
- ``Worker``: an xdist worker. With ``--dist each`` every worker runs every
  slap test as shard ``gwN`` of ``workercount``; with other modes tests are
  spread over workers and each runs whole (one shard). It judges nothing: it
  sends its shard reports (``messages``) to the controller.

Hooks call these methods and never ask which kind of process they run in
(as pytest-cov's engines and xdist's session classes do).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_memaslap.model.keyspace import call_off_key, new_token
from pytest_memaslap.model.shard_plan import ShardPlan

if TYPE_CHECKING:  # (loaded on first use: a suite without slap tests pays for none of it)
    from pytest_memaslap.memcached.server import MemcachedServer, ServerConfig
    from pytest_memaslap.output.progress import Period, ProgressPoller, RecordPoller
    from pytest_memaslap.output.prometheus import Exporter
    from pytest_memaslap.plugin.aggregate import Aggregator
    from pytest_memaslap.plugin.messages import ShardReport
    from pytest_memaslap.stats.live import LiveSnapshot
    from pytest_memaslap.stats.outcome import CallOutcome

SERVER_KEY = "slap_memcached"
SERVER_ERROR_KEY = "slap_memcached_error"
VERSUS_KEY = "slap_versus"  # B of an interleaved A/B: the controller tells its workers where it is
TOKEN_KEY = "slap_token"
SHARDED_KEY = "slap_sharded"  # workers see dist="no"; the controller tells them it is "each"
CALL_OFF_TTL_S = 600  # the call-off key outlives any wait of the run, then leaves the server
REPORT_ATTRIBUTE = "slap"  # the test report's attribute that carries a worker's shard reports
INTERRUPTED_KEY = "slap_interrupted"  # a worker's output: the shard reports of calls Ctrl-C cut short
INTERRUPTED_WAIT_S = 5.0  # how long an interrupted controller waits for its workers' last reports
LIVE_KEY = "slap_live"  # the controller serves live metrics: its workers publish their totals each second

Emit = Callable[["Period"], None]


class Mode:
    """What every kind of process provides; the defaults are a single process's."""

    reports = True  # prints the summary and writes the JSON, HTML and baseline
    parallel = False  # other processes of the session may run tests against the same server at the same time
    server_address: str | None = None  # the server the controller started for the workers
    server_error: str | None = None  # why the controller could not start it
    versus_address: str | None = None  # B of an interleaved A/B, which the controller started or was given

    def __init__(self, token: str) -> None:
        self.token = token
        self.shard_index = 0
        self.shard_count = 1
        self._aggregator: Aggregator | None = None  # made with the first report (the judging code loads then)
        self.exporter: Exporter | None = None  # --slap-prometheus: serves the live metrics (a reporting process)

    def _add(self, report: ShardReport) -> CallOutcome | None:
        if self._aggregator is None:
            from pytest_memaslap.plugin.aggregate import Aggregator

            self._aggregator = Aggregator()
        return self._aggregator.add(report)

    def shard_plan(self, sync_timeout: float) -> ShardPlan:
        call_off = call_off_key(self.token) if self.shard_count > 1 else None
        return ShardPlan(self.shard_index, self.shard_count, sync_timeout, call_off)

    def refuse_server(self, config: ServerConfig, default: ServerConfig, external: bool) -> str | None:
        """Why a test cannot have the server ``config`` in this process (None: it can)."""
        return self.server_error

    def progress_sink(self, config: pytest.Config, server: MemcachedServer) -> Emit | None:
        """Where live progress lines go: this terminal, past output capture; None when quiet."""
        write_line = terminal_writer(config)
        return None if write_line is None else lambda period: write_line(period.line())

    def serve_metrics(self, host: str, port: int) -> None:
        """Serve live metrics for Prometheus until ``stop_serving`` (raises ExporterError when it cannot)."""
        from pytest_memaslap.output.prometheus import Exporter

        self.exporter = Exporter(host, port)

    def stop_serving(self) -> None:
        if self.exporter is not None:
            self.exporter.close()
            self.exporter = None

    def live_sink(self, server: MemcachedServer) -> Callable[[LiveSnapshot], None] | None:
        """Where this process's running totals go each second (None: nobody serves them)."""
        return self.exporter.metrics.update if self.exporter is not None else None

    def hand_in(self, reports: list[ShardReport], interrupted: bool = False) -> list[CallOutcome]:
        """A test's calls have ended here: judge them now (the calls this process can judge)."""
        return [outcome for report in reports if (outcome := self._add(report)) is not None]

    def attach(self, report: pytest.TestReport, reports: list[ShardReport]) -> None:
        """Put what the reporting process needs on the test's report (a single process needs nothing)."""

    def receive(self, report: pytest.TestReport) -> list[CallOutcome]:
        """Outcomes completed by a report that arrived from elsewhere (only a controller gets such reports)."""
        return []

    @property
    def outcomes(self) -> list[CallOutcome]:
        """Every call judged here, in the order they completed."""
        return self._aggregator.done if self._aggregator is not None else []

    def missing_shards(self) -> list[tuple[str, list[int], int]]:
        """Calls with shards that never reported: (key, missing shard indices, shard count)."""
        return self._aggregator.missing() if self._aggregator is not None else []

    def summary_notes(self, config: pytest.Config) -> list[str]:
        return []

    def collect_interrupted(self) -> None:
        """The session was interrupted: take in what other processes measured until then (a controller)."""

    def close(self) -> None:
        """At the session's end: stop what the mode runs in the background."""


class SingleProcess(Mode):
    """No xdist: every test runs whole here, and is judged here."""


class Controller(Mode):
    """The xdist controller: runs no tests; merges and judges what the workers report."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.progress: ProgressPoller | None = None  # reads the workers' progress from the server
        self.live: RecordPoller | None = None  # reads the workers' live totals from the server (--slap-prometheus)
        self.workers: list[Any] = []  # xdist's nodes, to read their output when the run is interrupted

    def configure_worker(
        self, node: Any, server: MemcachedServer | None, error: str | None, versus: MemcachedServer | None = None
    ) -> None:
        """Tell a starting worker the run token, whether it is a shard, and the servers (or why there are none)."""
        if versus is not None:
            node.workerinput[VERSUS_KEY] = versus.address
        self.workers.append(node)
        node.workerinput[TOKEN_KEY] = self.token
        node.workerinput[SHARDED_KEY] = node.config.getoption("dist", "no") == "each"
        node.workerinput[LIVE_KEY] = self.exporter is not None
        if server is None:
            node.workerinput[SERVER_ERROR_KEY] = error
        else:
            node.workerinput[SERVER_KEY] = server.spec

    def watch_progress(self, config: pytest.Config, server: MemcachedServer, worker: str) -> None:
        """Print the workers' progress, which they publish on the server (see ``progress``)."""
        from pytest_memaslap.output.progress import ProgressPoller, progress_key

        if self.progress is None:
            write_line = terminal_writer(config, after_dots=True)
            if write_line is None:
                return
            self.progress = ProgressPoller(
                server.host, server.port, lambda period: write_line(period.line()), server.tls, server.sasl
            )
        self.progress.watch(progress_key(self.token, worker))

    def watch_live(self, server: MemcachedServer, worker: str) -> None:
        """Serve the workers' running totals, which they publish on the server each second."""
        from pytest_memaslap.output.progress import RecordPoller, live_key

        if self.exporter is None:
            return
        if self.live is None:
            take = self.exporter.metrics.take_records
            self.live = RecordPoller(server.host, server.port, take, server.tls, server.sasl)
        self.live.watch(live_key(self.token, worker))

    def progress_sink(self, config: pytest.Config, server: MemcachedServer) -> Emit | None:
        return None  # (the controller runs no tests)

    def live_sink(self, server: MemcachedServer) -> Callable[[LiveSnapshot], None] | None:
        return None

    def receive(self, report: pytest.TestReport) -> list[CallOutcome]:
        wires = getattr(report, REPORT_ATTRIBUTE, None)
        if not wires:
            return []
        from pytest_memaslap.plugin.messages import ShardReport, WireError

        outcomes = []
        for wire in wires:
            try:
                shard = ShardReport.from_wire(wire)
            except WireError as exc:  # (a worker on another release): its test fails, saying so
                report.outcome = "failed"
                report.longrepr = str(exc)
                continue
            outcome = self._add(shard)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def collect_interrupted(self) -> None:
        """Ctrl-C: each worker sends what its interrupted calls measured as it ends; wait (bounded) and judge them."""
        from pytest_memaslap.plugin.messages import ShardReport, WireError

        deadline = time.monotonic() + INTERRUPTED_WAIT_S
        waiting = list(self.workers)
        while waiting and time.monotonic() < deadline:
            waiting = [node for node in waiting if getattr(node, "workeroutput", None) is None]
            if waiting:
                time.sleep(0.05)
        for node in self.workers:
            for wire in (getattr(node, "workeroutput", None) or {}).get(INTERRUPTED_KEY, ()):
                try:
                    self._add(ShardReport.from_wire(wire))
                except WireError:
                    continue  # (a worker on another release: its part is missing, and the summary says so)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop(last_look=True)  # (every test has ended: the workers' last periods are in)
        if self.live is not None:
            self.live.stop(last_look=True)  # (every test has ended: the workers' last totals are in)

    def call_off(self, server: MemcachedServer, why: str) -> None:
        """A worker went down: tell the shards waiting at a barrier to stop now, not at --slap-sync-timeout."""
        client = server.control()
        try:
            client.set(call_off_key(self.token), why.encode()[:1000], expire=CALL_OFF_TTL_S)
        except Exception:  # noqa: BLE001 - best effort: without it, the shards still stop at their timeout
            pass
        finally:
            client.close()

    def summary_notes(self, config: pytest.Config) -> list[str]:
        if config.getoption("dist", "no") != "each" and len(self.outcomes) > 1:
            return [
                "slap tests were spread over xdist workers and may have run at the same time against one "
                "server; use --slap-shards=N (or --dist each) to run each test as N shards instead"
            ]
        return []


class Worker(Mode):
    """An xdist worker: runs tests (whole, or as one shard of each) and sends its shard reports on."""

    reports = False
    parallel = True

    def __init__(self, workerinput: dict[str, Any], output: dict[str, Any]) -> None:
        super().__init__(str(workerinput.get(TOKEN_KEY) or new_token()))
        self.output = output  # xdist's workeroutput: sent to the controller when the worker ends
        if workerinput.get(SHARDED_KEY):
            self.shard_index = int(str(workerinput["workerid"]).lstrip("gw") or 0)
            self.shard_count = int(workerinput["workercount"])
        self.server_address = workerinput.get(SERVER_KEY)
        self.server_error = workerinput.get(SERVER_ERROR_KEY)
        self.versus_address = workerinput.get(VERSUS_KEY)
        self.worker_id = str(workerinput.get("workerid", ""))
        self.publishes_live = bool(workerinput.get(LIVE_KEY))

    def refuse_server(self, config: ServerConfig, default: ServerConfig, external: bool) -> str | None:
        if self.server_error:
            return self.server_error
        if not external and config != default:
            return (
                "@pytest.mark.memcached(...) asks for a server of its own, which pytest-xdist runs do not "
                "support yet: all workers share the server the controller started; set its configuration "
                "with --memcached-threads, --memcached-memory and --memcached-args instead"
            )
        return None

    def progress_sink(self, config: pytest.Config, server: MemcachedServer) -> Emit | None:
        from pytest_memaslap.output.progress import ProgressPublisher, progress_key

        key = progress_key(self.token, self.worker_id)
        return ProgressPublisher(server.host, server.port, key, server.tls, server.sasl)

    def live_sink(self, server: MemcachedServer) -> Callable[[LiveSnapshot], None] | None:
        from pytest_memaslap.output.progress import ProgressPublisher, live_key

        if not self.publishes_live:
            return None
        key = live_key(self.token, self.worker_id)
        return ProgressPublisher(server.host, server.port, key, server.tls, server.sasl)

    def hand_in(self, reports: list[ShardReport], interrupted: bool = False) -> list[CallOutcome]:
        if interrupted:  # no test report will carry them: they go with the worker's last words
            self.output.setdefault(INTERRUPTED_KEY, []).extend(report.to_wire() for report in reports)
        return []  # a shard cannot judge alone: the controller judges the merged result

    def attach(self, report: pytest.TestReport, reports: list[ShardReport]) -> None:
        setattr(report, REPORT_ATTRIBUTE, [shard.to_wire() for shard in reports])


def mode_for(config: pytest.Config) -> Mode:
    """This process's mode, decided once: xdist worker, xdist controller, or a single process."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:
        return Worker(workerinput, getattr(config, "workeroutput", {}))
    if config.pluginmanager.hasplugin("xdist") and config.getoption("dist", "no") != "no":
        return Controller(new_token())
    return SingleProcess(new_token())


def terminal_writer(config: pytest.Config, after_dots: bool = False) -> Callable[[str], None] | None:
    """Writes a live line to the terminal, past output capture; None when quiet (-q) or there is no terminal.

    ``after_dots``: the xdist controller runs no tests (nothing is captured),
    and its progress dots do not end their line.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or config.get_verbosity() < 0:
        return None

    def write_line(line: str) -> None:
        if after_dots:
            if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
                reporter.write("\n")
            reporter.write_line(line)
        elif capture is None:
            reporter.write_line(line)
        else:
            with capture.global_and_fixture_disabled():  # live, not in the test's captured output
                reporter.write_line(line)

    return write_line
