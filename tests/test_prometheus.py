"""--slap-prometheus: live metrics served while tests run, scraped by a real Prometheus and read back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import output_within, reaped, start_pytest

from pytest_memaslap.memcached.server import free_port
from pytest_memaslap.stats.histogram import Histogram, bucket_index
from pytest_memaslap.stats.live import LIVE_EDGES_NS, CommandTotals, LiveSnapshot

try:
    import prometheus_client  # noqa: F401 - the prometheus extra (in dev): the exporter's own client
except ImportError:
    if os.environ.get("CI"):
        raise  # (CI installs the dev extra: a missing client there is a broken setup, not a platform)
    pytestmark = pytest.mark.skip(reason="needs the prometheus extra: pip install 'pytest-memaslap[prometheus]'")

LIVE_TEST = """
import pytest

@pytest.mark.slap(duration="{duration}", connections=4, commands={{"get": 0.9, "set": 0.1}}, keys=2000)
def test_live(slap):
    slap()
"""


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Our endpoint's samples, as a Prometheus server reads them (OpenMetrics), parsed by prometheus_client."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    request = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_for(what: str, probe, process: subprocess.Popen[bytes], timeout: float = 30.0):
    """Call ``probe`` until it returns something true; fail (bounded) if the run ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = probe()
        except OSError:
            found = None
        if found:
            return found
        if process.poll() is not None:
            printed = process.communicate(timeout=10)[0].decode(errors="replace")
            raise AssertionError(f"the run ended before {what}; it printed:\n{printed}")
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout:g} s")


def test_the_live_totals_are_the_recorders_own(memcached_server, hot_path):
    """What the exporter serves equals what the run reports: the same counters, the histogram cut at the edges."""
    from pytest_memaslap.engine import run_shard
    from pytest_memaslap.memcached.endpoint import Target
    from pytest_memaslap.model.workload import Workload

    snapshots: list[LiveSnapshot] = []

    def keep(done, second, totals):
        snapshots.append(LiveSnapshot("t", 0, 1, done, totals()))

    workload = Workload.from_args(
        {"duration": "2.2s", "connections": 2, "keys": 500, "commands": {"get": 0.8, "set": 0.1, "delete": 0.1}}
    )
    raw = run_shard(workload, Target(memcached_server.host, memcached_server.port), f"live{hot_path}:", on_second=keep)
    assert [s.second for s in snapshots] == [1, 2]
    measured = raw.phases["measured"].commands
    last = snapshots[-1].commands
    assert set(last) == set(measured)
    for name, totals in last.items():
        final = measured[name]
        assert 0 < totals.ops <= final.ops  # (the run's last part-second comes after the last whole one)
        assert totals.errors <= final.errors and totals.misses <= final.misses
        assert totals.hits + totals.misses + totals.errors == totals.ops  # (a clean run abandons nothing)
        assert totals.at_edges[-1] == totals.ops and list(totals.at_edges) == sorted(totals.at_edges)
        assert 0 < totals.latency_sum_ns / totals.ops < 1e9  # a mean latency, in ns
    assert _totals_of(measured["get"].latency)[-1] == measured["get"].ops


def _totals_of(histogram: Histogram) -> list[int]:
    """The counts at each edge, the slow way: the reference for the hot path's cut."""
    counts = histogram.counts
    return [sum(counts[: bucket_index(edge) + 1]) for edge in LIVE_EDGES_NS] + [sum(counts)]


def test_the_cut_at_the_edges_is_exact_on_both_cores():
    """Both cores cut a histogram alike, and as the slow reference does, sum included."""
    import array
    import random

    from pytest_memaslap.engine.hot import core
    from pytest_memaslap.engine.hot.connection import CompiledConnection
    from pytest_memaslap.stats.histogram import BUCKET_COUNT, bucket_value
    from pytest_memaslap.stats.live import LIVE_CUTS

    rng = random.Random(7)
    cores = [core.edge_counts] + ([CompiledConnection.edge_counts] if CompiledConnection is not None else [])
    for trial in range(60):
        latencies = array.array("Q", bytes(8 * BUCKET_COUNT))
        for _ in range(rng.choice((0, 1, 3, 500))):
            latencies[bucket_index(int(rng.lognormvariate(rng.uniform(2, 22), 1.5)))] += rng.randint(1, 9)
        reference = _totals_of(Histogram(latencies.tolist()))
        doubled = sum(int(2 * bucket_value(i)) * count for i, count in enumerate(latencies))
        for edge_counts in cores:
            assert edge_counts(latencies, LIVE_CUTS) == (reference, doubled // 2), trial


def test_last_second_is_the_difference_of_two_seconds():
    from pytest_memaslap.output.prometheus import LiveMetrics

    def snapshot(second: int, ops: int) -> LiveSnapshot:
        edges = (0,) * len(LIVE_EDGES_NS) + (ops,)
        return LiveSnapshot("t", 0, 1, second, {"get": CommandTotals(ops, 0, ops, 0, ops * 10, 0, edges, ops * 1000)})

    metrics = LiveMetrics()
    metrics.update(snapshot(1, 100))
    metrics.update(snapshot(2, 250))
    metrics.update(snapshot(1, 999))  # (an older record, read late: ignored)
    samples = {(s.name, s.labels.get("le")): s.value for family in metrics.collect() for s in family.samples}
    assert samples[("slap_ops_total", None)] == 250
    assert samples[("slap_last_second_ops", None)] == 150
    assert samples[("slap_last_second_sent_bytes", None)] == 1500
    assert samples[("slap_last_second_latency_seconds_bucket", "+Inf")] == 150
    assert samples[("slap_latency_seconds_sum", None)] == pytest.approx(250e-6)
    assert samples[("slap_measured_seconds", None)] == 2


def test_bad_addresses_and_a_missing_client_get_one_clear_error(pytester, monkeypatch):
    pytester.makepyfile(test_live=LIVE_TEST.format(duration="1s"))
    result = pytester.runpytest("--slap-prometheus=localhost")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--slap-prometheus=localhost: expected [[]HOST:[]]PORT with PORT from 0 to 65535*"])
    with socket_taken() as port:
        result = pytester.runpytest(f"--slap-prometheus=127.0.0.1:{port}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*--slap-prometheus=127.0.0.1:{port}: cannot listen there (*"])
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    result = pytester.runpytest("--slap-prometheus=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    needs = "ERROR: --slap-prometheus needs prometheus_client: pip install 'pytest-memaslap[prometheus]'"
    assert needs in result.stderr.lines


@contextmanager
def socket_taken() -> Iterator[int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_shards_on_xdist_workers_are_served_by_the_controller(pytester):
    """With -n 2, each shard's totals reach the controller's one endpoint, labelled with the shard."""
    pytester.makepyfile(test_live=LIVE_TEST.format(duration="5s"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with reaped(start_pytest(pytester.path, "--slap-shards=2", f"--slap-prometheus={port}", "-q")) as process:

        def both_shards():
            samples = scrape(url)
            shards = {dict(labels)["shard"] for name, labels in samples if name == "slap_ops_total"}
            return samples if shards == {"0", "1"} else None

        samples = wait_for("both shards' series", both_shards, process)
        out = output_within(process, 60).decode()
    assert process.returncode == 0, out
    get = (("command", "get"), ("shard", "1"), ("test", "test_live.py::test_live"))
    assert samples[("slap_ops_total", get)] > 0
    assert samples[("slap_latency_seconds_bucket", (*get[:1], ("le", "+Inf"), *get[1:]))] > 0
    assert samples[("slap_latency_seconds_sum", get)] > 0


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """Debian's Prometheus, scraping one target every second; yields (its API's base URL, the target's port)."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed; .ci/setup installs Debian's prometheus package")
        pytest.skip("needs Debian's prometheus package")
    target, listen = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: slap\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
    )
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{listen}",
    ]
    with open(tmp_path / "prometheus.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    with reaped(process):
        base = f"http://127.0.0.1:{listen}"
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start:\n{(tmp_path / 'prometheus.log').read_text()}")
            time.sleep(0.2)
        yield base, target
        process.terminate()
        process.wait(timeout=10)


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_a_real_prometheus_scrapes_the_run_and_answers_queries(pytester, prometheus_server):
    base, port = prometheus_server
    pytester.makepyfile(test_live=LIVE_TEST.format(duration="8s"))
    with reaped(start_pytest(pytester.path, f"--slap-prometheus=127.0.0.1:{port}", "-q")) as process:
        rate = 'rate(slap_ops_total{command="get"}[3s])'
        series = wait_for("get's rate in Prometheus", lambda: query(base, rate), process)
        p99 = wait_for(
            "get's p99 in Prometheus",
            lambda: query(base, 'histogram_quantile(0.99, slap_last_second_latency_seconds_bucket{command="get"})'),
            process,
        )
        out = output_within(process, 60).decode()
    assert process.returncode == 0, out
    assert series[0]["metric"]["test"] == "test_live.py::test_live"
    assert series[0]["metric"]["shard"] == "0"
    assert float(series[0]["value"][1]) > 0  # answered gets per second, as PromQL computes them
    assert 0 < float(p99[0]["value"][1]) < 10  # seconds: a latency, not a count
