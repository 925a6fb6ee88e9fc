"""The terminal's tables: the slap summary, a failing test's thresholds, the comparison with a baseline."""

from __future__ import annotations

from collections.abc import Sequence

from tabulate import tabulate

from pytest_memaslap.model.metrics import DEFAULT_PERCENTILES, format_metric, percentile_key, percentile_label
from pytest_memaslap.output.baseline import Comparison
from pytest_memaslap.stats.comparison import Row, inconclusive_note
from pytest_memaslap.stats.outcome import CallOutcome
from pytest_memaslap.stats.rounds import spread_pct
from pytest_memaslap.stats.verdicts import LOAD_GENERATOR_LIMITED


def summary_headers(percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> tuple[str, ...]:
    """The summary's columns: get's latency at each asked percentile and its max, set's at the highest one."""
    gets = tuple(f"get {percentile_label(q)} µs" for q in percentiles)
    top = percentile_label(percentiles[-1])
    return ("test", "shards", "duration s", "ops", "ops/s", *gets, "get max µs", f"set {top} µs") + (
        "hit ratio",
        "errors",
        "MB/s",
        "thresholds",
    )


def summary_names(percentiles: tuple[float, ...] = DEFAULT_PERCENTILES) -> tuple[str, ...]:
    """The name ``--slap-columns`` gives each of ``summary_headers``' columns."""
    return ("test", "shards", "duration", "ops", "ops_per_sec", *("latency" for _ in percentiles), "max", "set") + (
        "hit_ratio",
        "errors",
        "mb_per_sec",
        "thresholds",
    )


def _latency(outcome: CallOutcome, command: str, metric: str) -> str:
    """A command's latency in µs (with rounds, its median over them); "-" for a command the call never sent."""
    if command not in outcome.result.commands:
        return "-"
    return f"{outcome.result.median(f'{command}.{metric}'):,.1f}"


def _throughput(outcome: CallOutcome) -> str:
    """ops/s; with rounds, the median and its spread (max - min in % of the median)."""
    result = outcome.result
    text = f"{result.median('ops_per_sec'):,.0f}"
    target = result.target_rate()
    if target:  # (how late its sends were is a note under the table: open_loop_notes)
        text += f" of {target:,.0f}" + (" staged" if result.workload.stages else "")
    if result.raw.capacity:
        text += " at capacity" + (" (a lower bound: no step failed)" if result.raw.capacity.get("lower_bound") else "")
    if result.rounds:
        spread = spread_pct([r.ops_per_sec for r in result.rounds])
        text += f" ({len(result.rounds)} rounds, spread {'n/a' if spread == float('inf') else f'{spread:.1f}%'})"
    return text


def _server_cpu(outcome: CallOutcome) -> str:
    """The server's CPU (user + system) per request it answered in the measured phase; "-" when not sampled."""
    value = outcome.result.median("server.cpu_us_per_op")
    return "-" if value != value else f"{value:.2f}"


def open_loop_notes(outcomes: list[CallOutcome]) -> list[str]:
    """A line for each open loop: how late its sends left their schedule (the rate's cell has no room)."""
    notes = []
    for outcome in outcomes:
        result = outcome.result
        target = result.target_rate()
        if target and not result.raw.capacity:
            lag = result.send_lag_us()
            notes.append(
                f"{outcome.key}: open loop at {target:,.0f}/s: sends late by {lag['p50']:,.0f} µs at p50, "
                f"{lag['p99']:,.0f} µs at p99"
            )
    return notes


def probe_notes(outcomes: list[CallOutcome]) -> list[str]:
    """A line for each call with a probe: its latencies beside the load's own gets'."""
    notes = []
    for outcome in outcomes:
        probe = outcome.result.probe
        if probe is None:
            continue
        load = outcome.result.commands.get("get") or outcome.result.total
        notes.append(
            f"{outcome.key}: probe: {probe.ops:,} gets at {probe.ops_per_sec:,.0f}/s beside the load: p50 "
            f"{probe.latency_us['p50']:,.1f} µs, p99 {probe.latency_us['p99']:,.1f} µs (the load's {load.name}: "
            f"p50 {load.latency_us['p50']:,.1f} µs, p99 {load.latency_us['p99']:,.1f} µs)"
        )
    return notes


def poll_interval_notes(outcomes: list[CallOutcome]) -> list[str]:
    """A line for each call whose load slept between passes: its latencies include up to that sleep."""
    notes = []
    for outcome in outcomes:
        interval_us = outcome.result.workload.poll_interval * 1e6
        if interval_us > 0:
            notes.append(
                f"{outcome.key}: poll_interval {interval_us:,.0f} µs: the load slept that long between its event "
                f"loop's passes, so each latency includes up to {interval_us:,.0f} µs of that sleep"
            )
    return notes


def validity_notes(outcomes: list[CallOutcome]) -> list[str]:
    """A line for each finished call whose run failed a validity check: what failed, and what it does."""
    from pytest_memaslap.stats.validity import failure_text

    notes = []
    for outcome in outcomes:
        if outcome.error or outcome.interrupted:
            continue
        section = outcome.result.validity()
        if section["passed"] is not False:
            continue
        consequence = "fails the test" if outcome.validity_fails else "reported, not judged (--slap-validity=fail)"
        notes.append(f"{outcome.key}: not a valid run: {failure_text(section)}; {consequence}")
    return notes


def server_notes(outcomes: list[CallOutcome]) -> list[str]:
    """A line for each call whose requests the servers counted otherwise than we sent them."""
    notes = []
    for outcome in outcomes:
        section = outcome.result.server_stats()
        check = section["accounting"] if section else None
        if not check or check["matches"] is not False:
            continue
        others = (
            "this plugin started the server: a request lost in between, or a client of its own"
            if section and section.get("owned")
            else "other clients of this server count too"
        )
        notes.append(
            f"{outcome.key}: the servers counted {check['servers']:,} requests while this call sent "
            f"{check['ours']:,} ({check['servers'] - check['ours']:+,}): {others}"
        )
    return notes


def _errors(errors: int, abandoned: int) -> str:
    """Errors, and how many of them were requests never answered."""
    return f"{errors:,} ({abandoned:,} unanswered)" if abandoned else f"{errors:,}"


def terminal_table(
    outcomes: list[CallOutcome],
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES,
    server_column: bool = False,
    columns: tuple[str, ...] | None = None,
    width: int | None = None,
) -> str:
    """One row per slap() call, units in the headers: ``columns`` (--slap-columns; all of them are kept), or
    the compact default, dropped from as ``output.columns`` says until the table fits ``width``;
    ``server_column``: the server's CPU µs per request too (--slap-server-stats=column)."""
    from pytest_memaslap.output.columns import DEFAULT, fit

    headers = summary_headers(percentiles)
    names = summary_names(percentiles)
    rows = summary_rows(outcomes, percentiles)
    if server_column or (columns and "server_cpu" in columns):
        headers = (*headers[:-1], "server CPU µs/op", headers[-1])
        names = (*names[:-1], "server_cpu", names[-1])
        rows = [(*row[:-1], _server_cpu(outcome), row[-1]) for row, outcome in zip(rows, outcomes, strict=True)]
    shown = set(columns or DEFAULT) | {"test"} | ({"server_cpu"} if server_column else set())
    if not columns and any(outcome.result.shards > 1 for outcome in outcomes):
        shown.add("shards")  # (the default shows shards when a call had several)
    picked = [i for i, name in enumerate(names) if name in shown]
    headers = tuple(headers[i] for i in picked)
    names = tuple(names[i] for i in picked)
    rows = [tuple(row[i] for i in picked) for row in rows]
    kept = tuple(columns or shown & {"shards"}) + (("server_cpu",) if server_column else ())
    fitted_headers, fitted_rows = fit(headers, rows, names, kept, width or 10**6, _render)
    return _render(fitted_headers, fitted_rows)


def _render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return tabulate(
        rows,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=("left",) + ("right",) * (len(headers) - 1),
    )


def summary_rows(
    outcomes: list[CallOutcome], percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
) -> list[tuple[str, ...]]:
    """The summary's cells (as ``summary_headers`` names them), shared by the terminal and the HTML report."""
    rows: list[tuple[str, ...]] = []
    for outcome in outcomes:
        result = outcome.result
        rows.append(
            (
                outcome.key,
                str(result.shards),
                f"{result.duration:.2f}",
                f"{result.ops:,}",
                _throughput(outcome),
                *(_latency(outcome, "get", percentile_key(q)) for q in percentiles),
                _latency(outcome, "get", "max"),
                _latency(outcome, "set", percentile_key(percentiles[-1])),
                f"{result.median('hit_ratio'):.4f}" if "get" in result.commands else "-",
                _errors(result.errors, sum(result.abandoned.values())),
                f"{result.median('mb_per_sec'):.1f}",
                outcome.verdict_text(),
            )
        )
    return rows


def capacity_tables(outcomes: list[CallOutcome]) -> list[str]:
    """Each capacity search: its answer, then its steps in the order they ran (rate, achieved, latencies, verdict)."""
    tables = []
    for outcome in outcomes:
        search = outcome.result.raw.capacity
        if not search:
            continue
        rows = [
            (
                str(number),
                f"{step['rate']:,.0f}",
                f"{step['achieved']:,.0f}",
                f"{step['p50_us']:,.1f}",
                f"{step['p99_us']:,.1f}",
                f"{step['p999_us']:,.1f}",
                f"{step['errors']:,}",
                ("pass" if step["passed"] else ("missed the rate" if step["slo_passed"] else "broke the SLO"))
                + (" (retry)" if step.get("retry") else ""),
            )
            for number, step in enumerate(search["steps"], start=1)
        ]
        at_least = "at least " if search.get("lower_bound") else ""
        title = (
            f"{outcome.key}: capacity {at_least}{search['ops_per_sec']:,.0f} ops/s under {' and '.join(search['slo'])} "
            f"({len(rows)} steps, stopped by {str(search['stopped_by']).replace('_', ' ')})"
        )
        headers = ("step", "rate/s", "achieved/s", "p50 µs", "p99 µs", "p99.9 µs", "errors", "verdict")
        table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, colalign=("right",) * 7)
        tables.append(f"{title}\n{table}")
    return tables


def stage_tables(outcomes: list[CallOutcome]) -> list[str]:
    """Each staged run (``stages=``) and each run with connection steps: per stage or step, what it did."""
    tables = []
    for outcome in outcomes:
        stages = outcome.result.stages()
        if not stages:
            continue
        rows = [
            (
                str(stage["stage"]),
                f"{stage['duration_s']:g}",
                f"{stage['target_from']:,.0f} -> {stage['target_to']:,.0f}",
                f"{stage['target']:,.0f}",
                f"{stage['achieved']:,.0f}",
                f"{stage['p50_us']:,.1f}",
                f"{stage['p99_us']:,.1f}",
                f"{stage['errors']:,}",
            )
            for stage in stages
        ]
        headers = ("stage", "s", "target ramp/s", "target/s", "achieved/s", "p50 µs", "p99 µs", "errors")
        table = tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True, colalign=("right",) * 8)
        tables.append(f"{outcome.key}: stages\n{table}")
    for outcome in outcomes:
        steps = outcome.result.connection_steps()
        if not steps:
            continue
        step_rows = [
            (
                str(step["step"]),
                str(step["connections"]),
                f"{step['ops_per_sec']:,.0f}",
                f"{step['p50_us']:,.1f}",
                f"{step['p99_us']:,.1f}",
                f"{step['p999_us']:,.1f}",
                f"{step['errors']:,}",
            )
            for step in steps
        ]
        step_headers = ("step", "connections", "ops/s", "p50 µs", "p99 µs", "p99.9 µs", "errors")
        step_table = tabulate(
            step_rows, headers=step_headers, tablefmt="simple", disable_numparse=True, colalign=("right",) * 7
        )
        tables.append(f"{outcome.key}: connection steps\n{step_table}")
    return tables


def replay_notes(outcomes: list[CallOutcome]) -> list[str]:
    """A line for each trace replay: what was replayed, and every line left out with why."""
    notes = []
    for outcome in outcomes:
        replay = outcome.result.raw.replay
        if not replay:
            continue
        kind = f"{replay['format']}{', zstd' if replay['compressed'] else ''}"
        passes = f" in {replay['passes']} passes" if replay["passes"] > 1 else ""
        skipped = replay["skipped"]
        left = "; all replayed"
        if skipped:
            reasons = ", ".join(f"{count:,} ({reason})" for reason, count in sorted(skipped.items()))
            left = f"; not replayed: {reasons}"
        notes.append(
            f"{outcome.key}: replayed {replay['path']} ({kind}): {replay['requests']:,} requests from "
            f"{replay['lines']:,} lines{passes}{left}"
        )
    return notes


def inconclusive_notes(outcomes: list[CallOutcome]) -> list[str]:
    """A line for each inconclusive threshold: why, what it does to the test, what would decide it."""
    notes = []
    for outcome in outcomes:
        for verdict in outcome.inconclusive:
            consequence = "fails the test (--slap-inconclusive=fail)" if outcome.strict else "passes with this warning"
            advice = ""
            if verdict.why != LOAD_GENERATOR_LIMITED and verdict.method != "rounds":  # (rounds say how many)
                advice = "; rounds (--slap-rounds, --slap-max-rounds) would narrow it"
            notes.append(
                f"{outcome.key}: threshold {verdict.threshold.expr!r} is inconclusive ({verdict.why}): measured "
                f"{verdict.row()[2]}, 95% interval {verdict.row()[3]}; {consequence}{advice}"
            )
    return notes


def thresholds_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    return tabulate(rows, headers=("threshold", "required", "measured", "95% interval", "verdict"), tablefmt="simple")


COMPARISON_HEADERS = ("test", "metric", "baseline", "current", "change", "95% interval", "rounds", "verdict")


def comparison_cells(rows: tuple[Row, ...], other_machine: bool = False) -> list[tuple[str, ...]]:
    """Each compared metric's cells (as ``COMPARISON_HEADERS`` names them), for the terminal and the HTML report."""
    cells: list[tuple[str, ...]] = []
    for row in rows:
        change = row.change
        interval = "-"
        if change.has_interval:
            interval = f"{change.low_pct:+.1f} .. {change.high_pct:+.1f} %".replace("inf", "∞")
        verdict = row.verdict.word
        if row.gated:
            verdict += f" (allowance {row.allowance:+g}%)"
            if row.verdict.why:
                verdict += f": {row.verdict.why}"
            if row.regression and other_machine:
                verdict += " on another machine"
        cells.append(
            (
                row.test,
                row.metric,
                _number(row.baseline, row.metric),
                _number(row.current, row.metric),
                "n/a" if change.estimate_pct is None else f"{change.estimate_pct:+.1f} %".replace("inf", "∞"),
                interval,
                f"{change.rounds[0]} pairs" if change.paired else f"{change.rounds[0]} / {change.rounds[1]}",
                verdict,
            )
        )
    return cells


def comparison_table(comparison: Comparison) -> str:
    """Baseline against current, metric by metric: the change in % with its 95 % interval, and the verdict."""
    table = tabulate(
        comparison_cells(comparison.rows, bool(comparison.machines_differ)),
        headers=COMPARISON_HEADERS,
        tablefmt="simple",
        disable_numparse=True,
    )
    above = []
    if comparison.machines_differ:
        above.append(
            f"the machines differ ({'; '.join(comparison.machines_differ)}): the changes may be the machines', "
            "not the code's"
            + (
                ""
                if comparison.strict or not comparison.regressions
                else "; regressions do not fail the run (--slap-compare-strict makes them)"
            )
        )
    if comparison.machine_unknown:
        above.append(
            "the baseline's machine is unknown (its file has no machine section: a --slap-json document, not a "
            "--slap-save run); it is judged as if measured here, and the changes may be the machines'"
        )
    notes = [f"only in the baseline: {t}" for t in comparison.only_in_baseline]
    notes += [f"new in this run (no baseline): {t}" for t in comparison.only_in_current]
    undecided = inconclusive_note(comparison.rows, comparison.inconclusive_fails)
    if undecided:
        notes.append(undecided)
    return "\n".join([*above, table, *notes])


def versus_table(outcomes: list[CallOutcome]) -> str:
    """Interleaved A/B: each call's B against A, metric by metric, paired rounds."""
    rows = tuple(row for outcome in outcomes if outcome.versus for row in outcome.versus.rows)
    table = tabulate(
        comparison_cells(rows),
        headers=("test", "metric", "A", "B", "change", "95% interval", "rounds", "verdict"),
        tablefmt="simple",
        disable_numparse=True,
    )
    first = next(outcome.versus for outcome in outcomes if outcome.versus)
    above = f"B ({first.address}, memcached {first.version or 'unknown'}) against A, rounds interleaved in random order"
    undecided = inconclusive_note(rows, any(o.strict for o in outcomes))
    return "\n".join([above, table, *([undecided] if undecided else [])])


def _number(value: float | None, metric: str) -> str:
    """The same units as the thresholds table; '-' when a side has no such number."""
    return "-" if value is None else format_metric(metric.rpartition(".")[2], value)
