"""``memaslap-py``: memaslap's command line and report, on this project's engine.

For people who know memaslap: the same options (``-s -T -c -n -x -t -F -w -X
-v -d -S -R -P -b``), the same report layout (periodic statistics with
``-S``, per-command statistics with a Log2 distribution, the final ``Run time
... Ops ... TPS ... Net_rate`` line). ``-T N`` runs N shard processes that
start together (the same barrier the pytest shards use). Options this engine
does not offer are refused with the reason, never ignored.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import queue
import sys
from collections.abc import Sequence
from typing import Any

from pytest_memaslap import hotpath
from pytest_memaslap.cli.server_report import server_report
from pytest_memaslap.engine import LOOP_NAME, SlapInterrupted, SlapRunError, run_shard
from pytest_memaslap.memcached.endpoint import Target
from pytest_memaslap.memcached.proxy import ProxyStatsError, read_proxy_stats
from pytest_memaslap.memcached.sampler import StatsSampler
from pytest_memaslap.memcached.sasl import (
    SASL_PASSWORD_ENV,
    SaslCredentials,
    SaslError,
    credentials_from,
    workload_problem,
)
from pytest_memaslap.memcached.server import (
    MemcachedServer,
    ServerError,
    item_size_limit,
    memory_limit,
    parse_address,
    parse_addresses,
    version_of,
)
from pytest_memaslap.model.keyspace import new_token
from pytest_memaslap.model.memaslap_file import load_config
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.workload import Workload, WorkloadError, parse_count, parse_duration
from pytest_memaslap.output.progress import (
    Period,
    PreloadPrinter,
    ProgressPoller,
    ProgressPrinter,
    ProgressPublisher,
    progress_key,
)
from pytest_memaslap.stats.histogram import Histogram, bucket_value
from pytest_memaslap.stats.results import ShardResult, merge_results

REFUSED = {
    "facebook": "-a/--facebook: needs multi-gets over UDP, which memcached answers with END alone",
    "rep_write": "-p/--rep_write: writes only to the first N servers, for servers that replicate each other "
    "(repcached); memcached does not, so gets on the other servers would miss. -s A,B spreads the keys over "
    "several servers as pymemcache's HashClient places them",
}
DEFAULT_OPS = 1_000_000  # memaslap's execute number when neither -t nor -x is given
SHARD_GRACE_S = 60.0  # beyond the run's own duration, how long the parent waits for a shard process
MIB = 1024 * 1024


class UsageError(Exception):
    """A command-line value is unusable; the message names it and what is allowed."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memaslap-py",
        description="memaslap's load and report on the pytest-memaslap engine (asyncio/uvloop).",
    )
    add = parser.add_argument
    add("-s", "--servers", required=True, help="the memcached server, HOST:PORT")
    add("-T", "--threads", default="1", help="shard processes, started together (default 1)")
    add("-c", "--concurrency", default="16", help="concurrent connections over all shards (default 16)")
    add("-n", "--conn_sock", default="1", help="TCP sockets per concurrency (default 1)")
    add("-x", "--execute_number", help=f"operations to run (default {DEFAULT_OPS:,} when -t is not given)")
    add("-t", "--time", help="how long to run: 30s, 2m, 1h, 1d")
    add("-F", "--cfg_cmd", help="memaslap configuration file: key, value and cmd distributions")
    add("-w", "--win_size", default="10k", help="keys per concurrency: the keyspace is concurrency x win_size")
    add("-X", "--fixed_size", help="fixed value length in bytes")
    add("-v", "--verify", default="0", help="proportion of gets whose value is verified, e.g. 0.01")
    add("-d", "--division", default="1", help="keys per multi-get (default 1: single gets)")
    add("-S", "--stat_freq", help="print statistics of the last period every 5s, 1m, ...")
    add("-R", "--reconnect", action="store_true", help="reopen connections the server drops and go on")
    add("-P", "--tps", help="open loop at this many operations per second, e.g. 40k")
    add("-b", "--verbose", action="store_true", help="list keys whose values failed verification")
    add("--window", default="1", help="requests in flight per connection (ours; memaslap has 1)")
    add("-e", "--exp_verify", default="0", help="proportion of sets with a 2 s TTL; gets after it are checked to miss")
    add("-o", "--overwrite", default="1", help="proportion of sets to existing keys; the rest write new keys")
    for name, short in (("rep_write", "-p"),):
        add(short, f"--{name}", help="refused (see docs/memaslap-py.md)")
    add("-B", "--binary", action="store_true", help="speak the binary protocol (default: ASCII)")
    add(
        "--sasl-user",
        help=f"log in with SASL PLAIN as this user (memcached -S; needs -B); the password comes from "
        f"{SASL_PASSWORD_ENV} (or --sasl-password, which ps shows)",
    )
    add("--sasl-password", help=f"the SASL password (prefer {SASL_PASSWORD_ENV})")
    add("-U", "--udp", action="store_true", help="gets over UDP (the server's UDP port = its TCP port); gets only")
    add("--preset", help="start from a published workload: facebook-etc, ycsb-a, ycsb-b, ycsb-c, ycsb-d, ycsb-f")
    add("--trace", help="replay a cache trace instead of the mix: Twitter's or KVReplay's CSV, plain or zstd")
    add("--speed", default="1", help="--trace: play its recorded clock this many times faster (default 1)")
    add("--loop", action="store_true", help="--trace: start it again when it ends (until -t or -x)")
    add("--amplify", default="1", help="--trace: make every trace key this many distinct keys (default 1)")
    for name, short in (("facebook", "-a"),):
        add(short, f"--{name}", action="store_true", help="refused (see docs/memaslap-py.md)")
    add(
        "--server-stats",
        default="on",
        choices=("on", "off"),
        help="sample every server's stats once a second beside the run and report what it did (default on)",
    )
    add(
        "--proxy-stats",
        metavar="HOST:PORT",
        help="-s is a twemproxy: its stats port (nutcracker -s); sampled with the backends it names by address",
    )
    return parser


def _duration(text: str, flag: str = "-t/--time") -> float:
    return parse_duration(text, flag)


def workload_from(args: argparse.Namespace) -> tuple[Workload, int]:
    """The workload the options describe, and the number of shard processes."""
    for name, reason in REFUSED.items():
        if getattr(args, name):
            raise UsageError(reason)
    try:
        threads = parse_count(args.threads, "-T/--threads")
        connections = parse_count(args.concurrency, "-c/--concurrency") * parse_count(args.conn_sock, "-n/--conn_sock")
        window_keys = parse_count(args.win_size, "-w/--win_size")
        fields: dict[str, Any] = dict(load_config(args.cfg_cmd)) if args.cfg_cmd else {}
        if args.preset:  # (the options given with it, and -F's distributions, still win)
            fields = {"preset": args.preset, **fields}
        if args.fixed_size:
            fields["value_size"] = parse_count(args.fixed_size, "-X/--fixed_size")
        fields.update(
            connections=connections,
            keys=connections * window_keys,
            window=parse_count(args.window, "--window"),
            verify=float(args.verify),
            expire=float(args.exp_verify),
            overwrite=float(args.overwrite),
            division=parse_count(args.division, "-d/--division"),
            reconnect=bool(args.reconnect),
            protocol="binary" if args.binary else "ascii",
            transport="udp" if args.udp else "tcp",
            rate=args.tps,
            duration=_duration(args.time) if args.time else None,
            ops=args.execute_number if args.execute_number else (None if args.time or args.trace else DEFAULT_OPS),
        )
        if args.trace:
            fields.update(trace=args.trace, speed=float(args.speed), loop=args.loop)
            fields.update(amplify=parse_count(args.amplify, "--amplify"))
        elif args.loop or args.speed != "1" or args.amplify != "1":
            raise UsageError("--speed, --loop, --amplify: apply to a trace replay; give --trace PATH as well")
        # memaslap's gets ask only for keys it has set, so they hit; here the keyspace is set first
        fields["preload"] = True
        workload = Workload.from_args(fields)
    except (WorkloadError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if threads < 1 or threads > connections:
        raise UsageError(f"-T/--threads={threads}: from 1 to the number of connections ({connections})")
    return workload, threads


def sasl_from(args: argparse.Namespace, workload: Workload) -> SaslCredentials | None:
    """--sasl-user and its password (option or environment), for a workload a SASL server can take."""
    try:
        credentials = credentials_from(args.sasl_user, args.sasl_password, "--sasl-user", "--sasl-password")
    except SaslError as exc:
        raise UsageError(str(exc)) from None
    problem = workload_problem(workload.protocol, workload.transport) if credentials is not None else None
    if problem:
        raise UsageError(problem.replace("protocol='ascii'", "ASCII (no -B)").replace("transport='udp'", "-U"))
    return credentials


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        try:
            servers = parse_addresses(args.servers)
        except ServerError as exc:
            raise UsageError(str(exc).replace("--memcached", "-s/--servers")) from None
        workload, threads = workload_from(args)
        sasl = sasl_from(args, workload)
        targets = [Target(host, port, sasl=sasl) for host, port in servers]
        every = int(_duration(args.stat_freq, "-S/--stat_freq")) if args.stat_freq else 0
        proxy = proxy_stats_from(args)
        check_servers(targets)
        check_item_size(workload, targets, proxy)
    except UsageError as exc:
        parser.exit(2, f"memaslap-py: error: {exc}\n")
    print(header(args.servers, threads, workload, args))
    report = Report(every)
    sampler = StatsSampler(servers, sasl=sasl, proxy=proxy) if args.server_stats == "on" else None
    if sampler is not None:
        sampler.start()
    try:
        raw = run(workload, targets, threads, report)
    except SlapRunError as exc:
        print(f"memaslap-py: run failed: {exc}", file=sys.stderr)
        if exc.partial is not None and exc.partial.requests_sent:  # (what was done until then)
            print(final_report(exc.partial, workload, args.verbose))
        return 1
    except KeyboardInterrupt:
        print("memaslap-py: interrupted", file=sys.stderr)
        return 130
    finally:
        if sampler is not None:
            sampler.stop()
    print(final_report(raw, workload, args.verbose))
    if sampler is not None:
        section = sampler.section((raw.started_at, raw.started_at + raw.measured.elapsed_s))
        why_not = "multi-gets count keys" if workload.division > 1 else None
        if every and threads > 1:
            why_not = "the shards' progress records go to the first server too"
        print(server_report(section, raw.requests_sent, why_not))
    return 0


def proxy_stats_from(args: argparse.Namespace) -> tuple[str, int] | None:
    """--proxy-stats: the twemproxy's stats port, checked to answer now (None when not given)."""
    if not args.proxy_stats:
        return None
    if args.server_stats == "off":
        raise UsageError("--proxy-stats needs --server-stats=on: the proxy is sampled with the servers")
    try:
        address = parse_address(args.proxy_stats)
        read_proxy_stats(*address, 5.0)
    except ServerError:
        raise UsageError(f"--proxy-stats={args.proxy_stats!r}: expected HOST:PORT, e.g. 127.0.0.1:22222") from None
    except ProxyStatsError as exc:
        raise UsageError(
            f"--proxy-stats={args.proxy_stats}: no twemproxy stats there ({exc}); "
            "give the port nutcracker's -s names (22222 by default)"
        ) from None
    return address


def check_servers(targets: list[Target]) -> None:
    """A server that answers ``version`` with something else is refused at once, as the plugin refuses it.

    (One that does not answer at all, or wants a SASL login, is left to the run, which says what went wrong.)
    """
    for target in targets:
        if target.sasl is not None:
            continue  # (a SASL server answers only after a login, which the run reports on)
        try:
            version_of(target.host, target.port, 5.0, target.tls)
        except ServerError as exc:
            raise UsageError(f"-s/--servers: {exc}") from None
        except OSError:
            continue


def check_item_size(workload: Workload, targets: list[Target], proxy: tuple[str, int] | None = None) -> None:
    """Refuse values the servers would reject as too large, before any load (as the plugin does). Behind a
    twemproxy (``proxy``: its stats port) the backends it names are asked: it has no ``stats settings``."""
    if proxy is not None:
        server = MemcachedServer(targets[0].host, targets[0].port, owned=False, proxy_stats=proxy)
        targets = [Target(host, port) for host, port, _, _ in server.settings_sources()]
    limits = [item_size_limit(t.host, t.port, 5.0, t.tls, t.sasl) for t in targets]
    known = [limit for limit in limits if limit is not None]  # (a proxy does not say: the run goes unchecked)
    problem = workload.oversized_items(min(known) if known else None)
    if problem:
        raise UsageError(
            f"value size (-X/--fixed_size or -F): {problem}; use a smaller -X, or start memcached with a larger -I"
        )
    memories = [memory_limit(t.host, t.port, 5.0, t.tls, t.sasl) for t in targets]
    total = None if not memories or any(m is None for m in memories) else sum(m or 0 for m in memories)
    problem = workload.too_large_to_preload(total)
    if problem:
        raise UsageError(f"the fill before gets: {problem}; use a smaller -X, fewer connections or a larger -m")


# -- running -------------------------------------------------------------------


def run(workload: Workload, targets: list[Target], threads: int, report: Report) -> ShardResult:
    """One shard in this process, or ``threads`` shard processes merged into one result.

    Several servers: keys spread over them as pymemcache's HashClient spreads them; the first
    also holds the shards' barrier and progress records.
    """
    target = targets[0]
    token = new_token()
    prefix = f"m{token}:"
    if threads == 1:
        printer = ProgressPrinter(report.period, "", workload.duration, report.every) if report.every else None
        try:
            return run_shard(workload, targets, prefix, ShardPlan(), on_second=printer, on_preload=_preload_lines(""))
        except SlapInterrupted:
            raise KeyboardInterrupt from None
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[int, str, Any]] = context.Queue()
    processes = [
        context.Process(
            target=_shard_process,
            args=(
                workload.to_dict(),
                targets,
                prefix,
                i,
                threads,
                token,
                report.every,
                results,
            ),
            name=f"memaslap-py shard {i}",
        )
        for i in range(threads)
    ]
    poller = ProgressPoller(target.host, target.port, report.period, sasl=target.sasl) if report.every else None
    for process in processes:
        process.start()
    if poller is not None:
        for i in range(threads):
            poller.watch(progress_key(token, f"t{i}"))
    try:
        return _collect(processes, results, workload)
    finally:
        if poller is not None:
            poller.stop(last_look=True)  # (the last period, which the shards published as they ended)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def _collect(
    processes: list[Any], results: multiprocessing.Queue[tuple[int, str, Any]], workload: Workload
) -> ShardResult:
    deadline_s = (workload.duration or 0) + workload.timeout + SHARD_GRACE_S
    raws: dict[int, ShardResult] = {}
    failure = ""
    waited = 0.0
    while len(raws) < len(processes) and waited < deadline_s + (0 if workload.duration else 3600):
        try:
            index, kind, payload = results.get(timeout=1.0)
        except queue.Empty:
            waited += 1.0
            dead = [i for i, p in enumerate(processes) if not p.is_alive() and i not in raws]
            if dead and results.empty():
                failure = failure or f"shard process {', '.join(map(str, dead))} ended without a result"
                break
            continue
        if kind == "error":
            failure = failure or f"shard {index}: {payload['message']}"
            payload = payload["partial"]
        if payload is not None:
            raws[index] = payload
    if len(raws) < len(processes) and not failure:
        failure = f"shard process(es) {sorted(set(range(len(processes))) - set(raws))} gave no result in time"
    merged = merge_results(raws.values()) if raws else None
    if failure:
        raise SlapRunError(failure, merged)
    assert merged is not None
    return merged


def _shard_process(
    workload: dict[str, Any],
    targets: list[Target],
    prefix: str,
    index: int,
    count: int,
    token: str,
    every: int,
    results: multiprocessing.Queue[tuple[int, str, Any]],
) -> None:
    """One shard, in a process of its own: its result (or its failure) goes back on ``results``."""
    load = Workload.from_args(workload)
    first = targets[0]
    printer = publisher = None
    if every:
        publisher = ProgressPublisher(first.host, first.port, progress_key(token, f"t{index}"), sasl=first.sasl)
        printer = ProgressPrinter(publisher, "", load.duration, every, count)
    try:
        on_preload = _preload_lines(f" (shard {index})")
        raw = run_shard(load, targets, prefix, ShardPlan(index, count), on_second=printer, on_preload=on_preload)
        results.put((index, "ok", raw))  # (pickled by the queue, as it is)
    except SlapRunError as exc:
        results.put((index, "error", {"message": str(exc), "partial": exc.partial}))
    except SlapInterrupted as exc:
        results.put((index, "error", {"message": "interrupted", "partial": exc.partial}))
    finally:
        if publisher is not None:
            publisher.flush()  # (the last period, before this process ends)


def _preload_lines(label: str) -> PreloadPrinter:
    """A long preload's progress, on stderr every few seconds (each shard process writes its own)."""
    return PreloadPrinter(lambda period: print(period.line(), file=sys.stderr, flush=True), "preload" + label)


# -- the report ----------------------------------------------------------------


def header(servers: str, threads: int, workload: Workload, args: argparse.Namespace) -> str:
    proportions = dict(workload.commands)
    lines = [
        f"servers : {servers}",
        f"threads count: {threads}",
        f"concurrency: {workload.connections}",
        f"run time: {args.time}" if workload.duration else f"execute number: {workload.ops}",
        f"windows size: {args.win_size}",
        f"engine: hot path {hotpath.describe()}, event loop {LOOP_NAME}",
    ]
    lines += [f"{name} proportion: {name}_prop={proportions[name]:.2f}" for name in proportions]
    if workload.rate:
        lines.append(f"expected tps: {workload.rate:,.0f} ({workload.arrivals} arrivals, open loop)")
    return "\n".join(lines)


class Report:
    """Periodic statistics (-S): a Period line and a Global line, as memaslap's dynamic statistics."""

    COLUMNS = "Type  Time(s)  Ops  TPS(ops/s)  Errors  Min(us)  Max(us)  Avg(us)  Std_dev  Geo_dist"

    def __init__(self, every: int) -> None:
        self.every = every
        self.total = Histogram()
        self.ops = 0
        self.errors = 0

    def period(self, period: Period) -> None:
        latency = period.sums.histogram()
        self.total.merge(latency)
        self.ops += period.ops
        self.errors += period.errors
        rows = [
            ("Period", period.seconds, period.ops, period.errors, latency),
            ("Global", period.done, self.ops, self.errors, self.total),
        ]
        lines = ["Total Statistics", self.COLUMNS]
        for name, seconds, ops, errors, latency in rows:
            lines.append(
                f"{name:<7}{seconds:>5}  {ops:>10}  {ops / max(seconds, 1):>10.0f}  {errors:>6}  "
                + _latency_columns(latency)
            )
        print("\n".join(lines), flush=True)


def _latency_columns(latency: Histogram) -> str:
    low, high, mean, std, geo = _latency_figures(latency)
    return f"{low:>7.0f}  {high:>7.0f}  {mean:>7.0f}  {std:>8.2f}  {geo:>8.2f}"


def _latency_figures(latency: Histogram) -> tuple[float, float, float, float, float]:
    """Min, max, mean, standard deviation and geometric mean, in µs."""
    if not latency.total:
        return 0.0, 0.0, 0.0, 0.0, 0.0
    low = next(bucket_value(i) for i, c in enumerate(latency.counts) if c) / 1000
    logs = sum(c * math.log(max(bucket_value(i) / 1000, 1e-3)) for i, c in enumerate(latency.counts) if c)
    return low, latency.max() / 1000, latency.mean() / 1000, latency.stdev() / 1000, math.exp(logs / latency.total)


def log2_rows(latency: Histogram) -> list[str]:
    """memaslap's Log2 Dist: counts by floor(log2(µs)), four exponents a row, from the first row with any."""
    bins: dict[int, int] = {}
    for index, count in enumerate(latency.counts):
        if count:
            us = bucket_value(index) / 1000
            exponent = int(math.log2(us)) if us >= 1 else 0
            bins[exponent] = bins.get(exponent, 0) + count
    if not bins:
        return []
    rows = []
    for start in range(min(bins) // 4 * 4, max(bins) + 1, 4):
        counts = "".join(f"{bins.get(start + k, 0):>9}" for k in range(4) if start + k <= max(bins))
        rows.append(f"{start:>6}:{counts}")
    return rows


def final_report(raw: ShardResult, workload: Workload, verbose: bool) -> str:
    measured = raw.measured
    rule = "-" * 80
    lines = [rule]
    total = Histogram()
    for name, stats in measured.commands.items():
        if workload.trace is not None and not stats.ops and not stats.errors:
            continue  # (a replay names every command a trace may hold; these it did not)
        total.merge(stats.latency)
        lines += _statistics_block(f"{name.capitalize()} Statistics", stats.latency)
    lines += _statistics_block("Total Statistics", total)
    commands = measured.commands
    get = commands.get("get")
    written = sum(c.bytes_sent for c in commands.values())
    read = sum(c.bytes_received for c in commands.values())
    lines += [
        f"cmd_get: {(get.ops if get else 0) * workload.division}",
        f"cmd_set: {commands['set'].ops if 'set' in commands else 0}",
        f"get_misses: {get.misses if get else 0}",
        f"verify_checked: {raw.verify['checked']}",
        f"verify_failed: {raw.verify['mismatches']}",
        f"expired_checked: {raw.verify.get('expired_checked', 0)}",
        f"expired_get: {raw.verify.get('expired_returned', 0)}",
        f"errors: {sum(c.errors for c in commands.values())}",
        f"written_bytes: {written}",
        f"read_bytes: {read}",
    ]
    if verbose and raw.verify["keys"]:
        lines.append("verify failed for keys: " + ", ".join(raw.verify["keys"]))
    if raw.reconnects:
        lines.append(f"reconnects: {raw.reconnects} (gap {raw.reconnect_gap_s:.3f} s)")
    if raw.replay:
        skipped = ", ".join(f"{count} ({reason})" for reason, count in sorted(raw.replay["skipped"].items()))
        lines.append(
            f"replayed: {raw.replay['requests']} requests from {raw.replay['lines']} lines of {raw.replay['path']}"
            + (f"; not replayed: {skipped}" if skipped else "")
        )
    seconds = measured.elapsed_s or 1e-9
    ops = total.total
    if workload.rate:
        lines.append(f"expected tps: {workload.rate:,.0f}, max send lag: {raw.send_lag_max_s * 1000:.3f} ms")
    lines.append("")
    lines.append(
        f"Run time: {measured.elapsed_s:.1f}s Ops: {ops} TPS: {ops / seconds:.0f} "
        f"Net_rate: {(written + read) / MIB / seconds:.1f}M/s"
    )
    lines.append(rule)
    return "\n".join(lines)


def _statistics_block(title: str, latency: Histogram) -> list[str]:
    low, high, mean, std, geo = _latency_figures(latency)
    return [
        f"{title} ({latency.total} events)",
        f"  Min: {low:>9.0f}",
        f"  Max: {high:>9.0f}",
        f"  Avg: {mean:>9.0f}",
        f"  Geo: {geo:>9.2f}",
        f"  Std: {std:>9.2f}",
        "  Log2 Dist:",
        *log2_rows(latency),
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
