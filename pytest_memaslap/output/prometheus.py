"""Live metrics for Prometheus: the running slap() calls' totals, served as OpenMetrics while the tests run.

Needs ``prometheus_client`` (the ``prometheus`` extra). The exporter keeps,
per test and shard, the latest running totals and the ones a second before.
A scrape serves both, labelled ``test``, ``shard`` and ``command``:

- the totals since the measured phase began, as counters and a histogram
  (``slap_ops_total``, ``slap_latency_seconds``...): what PromQL's ``rate()``
  and ``histogram_quantile()`` read, and nothing is lost between scrapes;
- the last second alone, as gauges and a gauge histogram
  (``slap_last_second_ops``, ``slap_last_second_latency_seconds``...).

The answer is built in the exporter's HTTP thread from the snapshots handed
in; the load's event loop only hands them in. A call's series stay until the
session ends, at the values of its last whole second.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_memaslap.stats.live import LIVE_EDGES_NS, CommandTotals, LiveSnapshot

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    Base = Collector
else:
    Base = object

INSTALL_HINT = "pip install 'pytest-memaslap[prometheus]'"
LABELS = ("test", "shard", "command")
STOP_TIMEOUT_S = 2.0
_EDGE_NAMES = (*(format(edge / 1e9, "g") for edge in LIVE_EDGES_NS), "+Inf")

# (name, help, CommandTotals field): the counters, and the gauges of the last second
COUNTS = (
    ("ops", "answered requests", "ops"),
    ("errors", "error replies and requests never answered", "errors"),
    ("hits", "gets that found their key, stores that stored, deletes that deleted", "hits"),
    ("misses", "gets that found no value, stores that stored nothing, deletes of absent keys", "misses"),
    ("sent_bytes", "bytes of requests sent", "bytes_sent"),
    ("received_bytes", "bytes of replies received", "bytes_received"),
)


class ExporterError(Exception):
    """The exporter cannot start: the extra is missing, or its address cannot be listened on."""


class LiveMetrics(Base):
    """The latest totals of every (test, shard), as Prometheus metric families (a ``prometheus_client`` collector)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shards: dict[tuple[str, int], tuple[LiveSnapshot | None, LiveSnapshot]] = {}  # (earlier, latest)

    def update(self, snapshot: LiveSnapshot) -> None:
        """Take a shard's newer totals (an older or repeated snapshot changes nothing)."""
        key = (snapshot.test, snapshot.shard)
        with self._lock:
            earlier, latest = self._shards.get(key, (None, None))
            if latest is not None and snapshot.second <= latest.second:
                return
            self._shards[key] = (latest, snapshot)

    def take_records(self, records: dict[str, Any]) -> None:
        """The xdist controller's feed: the workers' live snapshots as its poller read them from the server."""
        for raw in records.values():
            try:
                self.update(LiveSnapshot.from_json(raw))
            except (ValueError, KeyError, TypeError):
                continue  # (a record from another release: its series are missing, the run is not harmed)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeHistogramMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        with self._lock:
            shards = list(self._shards.values())
        counters = {name: CounterMetricFamily(f"slap_{name}", doc, labels=LABELS) for name, doc, _ in COUNTS}
        gauges = {
            name: GaugeMetricFamily(f"slap_last_second_{name}", f"{doc}, in the last second", labels=LABELS)
            for name, doc, _ in COUNTS
        }
        latency = HistogramMetricFamily(
            "slap_latency_seconds", "latency of answered requests, since the measured phase began", labels=LABELS
        )
        last_latency = GaugeHistogramMetricFamily(
            "slap_last_second_latency_seconds", "latency of the requests answered in the last second", labels=LABELS
        )
        seconds = GaugeMetricFamily(
            "slap_measured_seconds", "seconds of the measured phase done", labels=("test", "shard")
        )
        for earlier, latest in shards:
            shard = str(latest.shard)
            seconds.add_metric((latest.test, shard), latest.second)
            before = earlier.commands if earlier is not None and earlier.second == latest.second - 1 else {}
            for command, totals in latest.commands.items():
                labels = (latest.test, shard, command)
                last = totals.minus(before.get(command, CommandTotals()))
                for name, _, attribute in COUNTS:
                    counters[name].add_metric(labels, getattr(totals, attribute))
                    gauges[name].add_metric(labels, getattr(last, attribute))
                latency.add_metric(labels, _buckets(totals), totals.latency_sum_ns / 1e9)
                last_latency.add_metric(labels, _buckets(last), last.latency_sum_ns / 1e9)
        yield from counters.values()
        yield latency
        yield from gauges.values()
        yield last_latency
        yield seconds


def _buckets(totals: CommandTotals) -> list[tuple[str, float]]:
    return list(zip(_EDGE_NAMES, map(float, totals.at_edges), strict=True))


class Exporter:
    """An HTTP endpoint serving ``metrics`` at ``/metrics``, in a thread of its own, until ``close()``."""

    def __init__(self, host: str, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise ExporterError(f"--slap-prometheus needs prometheus_client: {INSTALL_HINT}") from None
        self.metrics = LiveMetrics()
        registry = CollectorRegistry(auto_describe=True)
        registry.register(self.metrics)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ExporterError(f"--slap-prometheus={_join(host, port)}: cannot listen there ({exc})") from None
        self.port = int(self._server.server_address[1])
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{_join(self.host, self.port)}/metrics"

    def close(self) -> None:
        """Stop serving and close the socket (bounded: a scrape in progress gets ``STOP_TIMEOUT_S``)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(STOP_TIMEOUT_S)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
