"""The HTML report's charts, as plotly figures: throughput and p99 by second, latency by percentile, the
server's side, a capacity search's curve, and a comparison's rounds.

Axes read in whole units (µs under 10 ms, ms above), log axes label their
decades only, and a figure's title becomes a caption above its chart (see
``html._chart``), clear of plotly's toolbar.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_memaslap.model.metrics import format_metric, is_latency
from pytest_memaslap.stats.comparison import Row

TAIL_TICKS = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)


def rounds_figure(rows: tuple[Row, ...], before: str, after: str) -> Any:
    """Each compared metric's rounds, both sides as dots (in % of the first side's centre), with the change's
    95 % interval as a bar around the second side's centre: the noise a verdict was judged against."""
    from plotly import graph_objects as go

    figure = go.Figure()
    shown = [row for row in rows if row.baseline and row.change.estimate_pct is not None]
    for side, values_of, colour in ((before, "baseline_values", "#636efa"), (after, "current_values", "#ef553b")):
        xs, ys, texts = [], [], []
        for row in shown:
            centre = row.baseline or 1.0
            for value in getattr(row, values_of):
                xs.append(row.metric)
                ys.append((value / centre - 1.0) * 100.0)
                texts.append(format_metric(row.metric.rpartition(".")[2], value))
        figure.add_trace(
            go.Box(
                x=xs,
                y=ys,
                name=f"{side}: each round",
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                fillcolor="rgba(0,0,0,0)",
                line={"color": "rgba(0,0,0,0)"},
                marker={"color": colour, "size": 7},
                text=texts,
                hovertemplate="%{x}: %{text} (%{y:+.1f} %)<extra>" + side + "</extra>",
            )
        )
    judged = [row for row in shown if row.change.has_interval and math.isfinite(row.change.estimate_pct or 0.0)]
    figure.add_trace(
        go.Scatter(
            x=[row.metric for row in judged],
            y=[row.change.estimate_pct for row in judged],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(row.change.high_pct or 0.0) - (row.change.estimate_pct or 0.0) for row in judged],
                "arrayminus": [(row.change.estimate_pct or 0.0) - (row.change.low_pct or 0.0) for row in judged],
            },
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "#222"},
            name=f"change of {after} and its 95 % interval",
            text=[row.verdict.word for row in judged],
            hovertemplate="%{x}: %{y:+.1f} % (%{text})<extra></extra>",
        )
    )
    for row in shown:  # each gated metric's allowance, as a short dashed line at its column
        if row.allowance is not None:
            figure.add_trace(
                go.Scatter(
                    x=[row.metric, row.metric],
                    y=[row.allowance, row.allowance],
                    mode="markers",
                    marker={"symbol": "line-ew-open", "size": 40, "color": "#b00020"},
                    name=f"allowance {row.allowance:+g} %",
                    hoverinfo="skip",
                )
            )
    figure.update_layout(
        title=f"Rounds of {before} and {after}, in % of {before}",
        boxmode="group",
        yaxis={"title": {"text": f"% of {before}'s centre"}, "zeroline": True, "ticksuffix": " %"},
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN},
    )
    return figure


def throughput_figure(result: dict[str, Any]) -> Any:
    """Ops completed in each second of the measured phase, with that second's p99 on a second axis."""
    from plotly import graph_objects as go

    timeline = result["timeline"]
    seconds = [point["second"] + 1 for point in timeline]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=seconds, y=[p["ops"] for p in timeline], name="ops in the second", opacity=0.75))
    unit, scale = _latency_unit(max((p["p99_us"] for p in timeline), default=0.0))
    figure.add_trace(
        go.Scatter(
            x=seconds, y=[p["p99_us"] / scale for p in timeline], name=f"p99 ({unit})", yaxis="y2", mode="lines+markers"
        )
    )
    if any(p.get("target") is not None for p in timeline):  # an open loop: what was asked for, beside the bars
        figure.add_trace(
            go.Scatter(
                x=seconds, y=[p.get("target") for p in timeline], name="target", mode="lines", line={"dash": "dash"}
            )
        )
    if any(p["errors"] for p in timeline):
        figure.add_trace(go.Scatter(x=seconds, y=[p["errors"] for p in timeline], name="errors", mode="lines"))
    figure.update_layout(
        title=f"Throughput over time ({result['ops_per_sec']:,.0f} ops/s overall)",
        xaxis={
            "title": {"text": "second of the measured phase (the last may be partial)"},
            "dtick": max(1, len(seconds) // 12),
        },
        yaxis={"title": {"text": "ops"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": f"p99 ({unit})"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
        | WHOLE_UNITS,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN, "r": 60},
    )
    return figure


def server_figure(server: dict[str, Any]) -> Any:
    """What each server did second by second (--slap-server-stats): its CPU per request, the requests it
    answered, and its evictions, on the measured phase's clock (beside the throughput chart)."""
    from plotly import graph_objects as go

    figure = go.Figure()
    for entry in server["servers"]:
        points = entry["timeline"]
        seconds = [point["t_s"] for point in points]
        name = entry["server"]
        cpu = [point["cpu_us_per_op"] for point in points]
        figure.add_trace(go.Scatter(x=seconds, y=cpu, name=f"{name} CPU µs/request", mode="lines+markers"))
        figure.add_trace(
            go.Scatter(x=seconds, y=[p["ops_per_sec"] for p in points], name=f"{name} requests/s", yaxis="y2")
        )
        if any(point["evictions"] for point in points):
            evictions = [point["evictions"] for point in points]
            figure.add_trace(go.Scatter(x=seconds, y=evictions, name=f"{name} evictions", yaxis="y2", mode="lines"))
    figure.update_layout(
        title="The server's side (CPU per request, requests, evictions)",
        xaxis={"title": {"text": "seconds from the measured phase's start (its samples, a second apart)"}},
        yaxis={"title": {"text": "CPU µs per request"}, "rangemode": "tozero"},
        yaxis2={"title": {"text": "per second"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
        | WHOLE_UNITS,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN, "r": 60},
    )
    return figure


def capacity_figure(capacity: dict[str, Any]) -> Any:
    """A capacity search's latency-vs-throughput curve: p50, p99, p99.9 by achieved rate, the SLO and the knee."""
    from plotly import graph_objects as go

    from pytest_memaslap.model.thresholds import Threshold

    steps = sorted(capacity["steps"], key=lambda step: step["achieved"])
    figure = go.Figure()
    colours = {"p50": "#636efa", "p99": "#ef553b", "p99.9": "#00cc96"}
    for key, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        for passed in (True, False):  # the curve through the steps that passed; the failed ones as crosses
            chosen = [step for step in steps if step["passed"] == passed]
            figure.add_trace(
                go.Scatter(
                    x=[step["achieved"] for step in chosen],
                    y=[step[key] for step in chosen],
                    name=name if passed else f"{name}, failed step",
                    legendgroup=name,
                    showlegend=passed,
                    mode="lines+markers" if passed else "markers",
                    marker={"symbol": "circle" if passed else "x", "size": 9, "color": colours[name]},
                    line={"color": colours[name]},
                    text=[f"rate {step['rate']:,.0f}/s: {'pass' if passed else 'fail'}" for step in chosen],
                    hovertemplate="%{text}<br>achieved %{x:,.0f}/s: %{y:.1f} µs<extra>" + name + "</extra>",
                )
            )
    values = [step[key] for step in steps for key in ("p50_us", "p99_us", "p999_us") if step[key] > 0]
    for expr in capacity["slo"]:
        rule = Threshold.parse(expr)
        if is_latency(rule.metric) and steps:  # (a trace, not a shape: shapes on a log axis take log units)
            span = [0.0, max(step["achieved"] for step in steps)]
            figure.add_trace(
                go.Scatter(x=span, y=[rule.required] * 2, name=f"SLO: {expr}", mode="lines", line={"dash": "dash"})
            )
            values.append(rule.required)
    if capacity["ops_per_sec"]:
        figure.add_vline(
            x=capacity["ops_per_sec"], line_dash="dot", annotation_text=f"capacity {capacity['ops_per_sec']:,.0f}/s"
        )
    figure.update_layout(
        title="Latency by throughput (capacity search; ×: a failed step)",
        xaxis={"title": {"text": "achieved ops/s"}},
        # (a log axis's range is in decades; it spans the SLO lines too, which autorange would leave out)
        yaxis={"title": {"text": "latency (µs)"}, "range": _decades(values)} | LOG_DECADES,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN},
    )
    return figure


TOP_MARGIN = 36  # room above the plot for plotly's toolbar (the title is a caption above: html._chart)
# a second axis's ticks are its own (not aligned with the first's, which gave 0.0578 / 0.1155), in whole units
WHOLE_UNITS = {"tickmode": "auto", "tickformat": ",.0f", "showgrid": False}
# a log axis labels its decades only (1, 10, 100, 1,000 µs); minor ticks mark 2..9 without crowding labels
LOG_DECADES = {"type": "log", "dtick": 1, "tickformat": ",.0f", "minor": {"ticks": "outside", "showgrid": True}}


def _latency_unit(largest_us: float) -> tuple[str, float]:
    """µs for latencies under 10 ms (whole µs read well), ms above; the divisor from µs."""
    return ("µs", 1.0) if largest_us < 10_000 else ("ms", 1000.0)


def _decades(values: list[float]) -> list[float] | None:
    """A log axis's range (in powers of ten) with a little room around ``values``."""
    if not values:
        return None
    return [math.log10(min(values)) - 0.2, math.log10(max(values)) + 0.2]


def percentile_figure(result: dict[str, Any]) -> Any:
    """Latency against percentile on a log 1/(1-p) axis, so the tail (99.9 %, 99.99 %) gets room."""
    from plotly import graph_objects as go

    figure = go.Figure()
    curves = [("total", result.get("spectrum_us", []))]
    curves += [(name, cmd.get("spectrum_us", [])) for name, cmd in result["commands"].items()]
    for name, spectrum in curves:
        points = [(q, us) for q, us in spectrum if q < 100.0]
        figure.add_trace(
            go.Scatter(
                x=[100.0 / (100.0 - q) for q, _ in points],
                y=[us for _, us in points],
                name=name,
                mode="lines+markers",
                text=[f"p{q:g}" for q, _ in points],
                hovertemplate="%{text}: %{y:.1f} µs<extra>" + name + "</extra>",
            )
        )
    figure.update_layout(
        title="Latency by percentile",
        xaxis={
            "type": "log",
            "title": {"text": "percentile"},
            "tickvals": [100.0 / (100.0 - q) for q in TAIL_TICKS],
            "ticktext": [f"{q:g}%" for q in TAIL_TICKS],
        },
        yaxis={"title": {"text": "latency (µs)"}} | LOG_DECADES,
        legend={"orientation": "h", "y": -0.25},
        margin={"t": TOP_MARGIN},
    )
    return figure
