"""The plugin's options and ini keys as a table, and what start-up reads of them: light on purpose.

pytest loads this with the plugin in every session, slap tests or not; the
settings those options make (``options.Settings``) and all they validate
against are loaded only when a session uses the plugin (a slap test is
collected, or an option of the plugin is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    metavar: str | None = None
    kind: str = "string"  # "string" or "bool"
    see: tuple[str, str] | None = None  # (title, docs page#anchor): where the reference links for more

    @property
    def ini(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS = (
    Option(
        "--memcached",
        "use the memcached at HOST:PORT instead of starting one; HOST:PORT,HOST:PORT spreads keys over several "
        "as pymemcache's HashClient does",
        "HOST:PORT[,...]",
        see=("Several servers", "writing-tests.md#several-servers"),
    ),
    Option(
        "--memcached-proxy-stats",
        "the --memcached server is a twemproxy: its stats port (nutcracker -s); each call samples it and the "
        "backends it names by address, beside the run (start it with -i 1000 for per-second figures)",
        "HOST:PORT",
        see=("The server's side", "measurement.md#the-servers-side"),
    ),
    Option(
        "--memcached-tls",
        "speak TLS to the --memcached server(s) (memcached started with -Z)",
        kind="bool",
        see=("TLS", "writing-tests.md#tls"),
    ),
    Option("--memcached-tls-ca", "CA certificates that sign the server's certificate (default: the system's)", "PATH"),
    Option("--memcached-tls-cert", "client certificate, for servers that ask for one (ssl_verify_mode)", "PATH"),
    Option("--memcached-tls-key", "the client certificate's private key, if not in the certificate file", "PATH"),
    Option(
        "--memcached-sasl-user",
        "log in to the --memcached server(s) with SASL PLAIN as USER (memcached started with -S; binary protocol)",
        "USER",
        see=("SASL", "writing-tests.md#sasl"),
    ),
    Option(
        "--memcached-sasl-password",
        "the SASL password (better: the MEMCACHED_SASL_PASSWORD environment variable, which ps does not show)",
        "PASSWORD",
    ),
    Option("--memcached-bin", "memcached binary to start (default: memcached on PATH)", "PATH"),
    Option("--memcached-threads", "worker threads of the memcached the plugin starts (default 4)", "N"),
    Option("--memcached-memory", "memory limit in MB of the memcached the plugin starts (default 1024)", "MB"),
    Option(
        "--memcached-udp",
        "the memcached the plugin starts listens on UDP too (for transport='udp'; off by default)",
        kind="bool",
        see=("UDP", "writing-tests.md#udp"),
    ),
    Option("--memcached-args", "extra arguments for the memcached the plugin starts, e.g. '-o modern'", "ARGS"),
    Option("--slap-duration", "measured duration of every slap test, overriding marks (e.g. 30, 30s, 2m)", "SECONDS"),
    Option("--slap-connections", "connections of every slap test, overriding marks", "N"),
    Option("--slap-window", "requests in flight per connection of every slap test, overriding marks", "N"),
    Option("--slap-seed", "RNG seed of every slap test, overriding marks", "N"),
    Option(
        "--slap-protocol",
        "protocol of every slap test, overriding marks: ascii, meta or binary",
        "NAME",
        see=("Protocols", "writing-tests.md#protocols"),
    ),
    Option(
        "--slap-rounds",
        "run every slap() call N times (with --slap-versus*: N pairs, default 5); thresholds and comparisons "
        "are judged on the rounds' 95% intervals (default 1)",
        "N",
        see=("Gating merges", "gating.md#gating-merges-verdicts-with-uncertainty"),
    ),
    Option(
        "--slap-max-rounds",
        "let a slap() call add rounds, one at a time up to N in all, while a threshold or an A/B verdict is "
        "inconclusive (not with shards)",
        "N",
        see=("Gating merges", "gating.md#gating-merges-verdicts-with-uncertainty"),
    ),
    Option(
        "--slap-server-stats",
        "the servers' stats sampled once a second during every slap() call (JSON 'server', server.* thresholds): "
        "on (the default), off, or column (on, and the server's CPU µs per request as a summary column)",
        "on|off|column",
        see=("The server's side", "measurement.md#the-servers-side"),
    ),
    Option(
        "--slap-validity",
        "what a failed validity check (rate kept, arrivals as asked, a steady run) does: report (the default: "
        "a note under the summary) or fail (the test fails)",
        "report|fail",
        see=("Validity", "measurement.md#runs-that-check-their-own-validity-validity"),
    ),
    Option(
        "--slap-inconclusive",
        "what an inconclusive verdict (its interval straddles the limit or allowance) does: pass (with a "
        "warning; the default) or fail",
        "pass|fail",
        see=("How a verdict is made", "gating.md#how-a-verdict-is-made"),
    ),
    Option(
        "--slap-versus",
        "interleaved A/B: every slap() call also runs on the memcached at HOST:PORT (B), rounds alternating in "
        "random order, and reports B against the usual server (A) with 95% intervals",
        "HOST:PORT",
        see=("Gating merges", "gating.md#gating-merges-verdicts-with-uncertainty"),
    ),
    Option(
        "--slap-versus-bin",
        "interleaved A/B against a second memcached binary the plugin starts with the same options as the first "
        "(--memcached-bin names the first)",
        "PATH",
        see=("Gating merges", "gating.md#gating-merges-verdicts-with-uncertainty"),
    ),
    Option(
        "--slap-config",
        "a memaslap -F configuration file: its key, value and cmd distributions for every slap test",
        "PATH",
        see=("memaslap configuration files", "writing-tests.md#memaslap-configuration-files"),
    ),
    Option(
        "--slap-capacity-step",
        "seconds per step of every slap_capacity search, overriding marks (--slap-duration does not apply to them)",
        "SECONDS",
        see=("Capacity under an SLO", "writing-tests.md#capacity-under-an-slo-slap_capacity"),
    ),
    Option("--slap-json", "write the results of all slap tests as JSON to PATH", "PATH", see=("The JSON", "json.md")),
    Option(
        "--slap-stat-freq",
        "print progress every N seconds of a run (0: off; default 5 for runs of 10 s or more, else off)",
        "SECONDS",
        see=("Live progress", "gating.md#live-progress"),
    ),
    Option(
        "--slap-percentiles",
        "latency percentiles the summary shows and the JSON adds, e.g. 50,99,99.9 (default 50,99)",
        "LIST",
        see=("The JSON", "json.md"),
    ),
    Option(
        "--slap-columns",
        "the summary's columns, e.g. ops_per_sec,latency,errors,thresholds (or all): shards, duration, ops, "
        "ops_per_sec, latency, max, set, hit_ratio, errors, mb_per_sec, server_cpu, thresholds (default: "
        "ops_per_sec, latency, set, errors, thresholds, fitted to the terminal's width)",
        "LIST",
        see=("The summary's columns", "writing-tests.md#the-summarys-columns"),
    ),
    Option(
        "--slap-html",
        "write an HTML report with charts to PATH, and plotly.js once beside it (plotly-VERSION.min.js, shared by "
        "every report in that folder; nothing is fetched); needs the report extra",
        "PATH",
        see=("The HTML report", "gating.md#the-html-report-slap-htmlpath"),
    ),
    Option(
        "--slap-html-inline",
        "with --slap-html: put plotly.js inside the report instead of beside it (one file of about 5 MB)",
        kind="bool",
        see=("The HTML report", "gating.md#the-html-report-slap-htmlpath"),
    ),
    Option(
        "--slap-hdr",
        "write each slap() call's latencies as an HdrHistogram interval log (.hlog) into DIR",
        "DIR",
        see=("The JSON", "json.md"),
    ),
    Option(
        "--slap-prometheus",
        "serve live metrics of the running tests for Prometheus at [HOST:]PORT/metrics (HOST defaults to "
        "127.0.0.1; PORT 0 picks a free one); needs the prometheus extra",
        "[HOST:]PORT",
        see=("Live metrics", "gating.md#live-metrics-for-prometheus"),
    ),
    Option("--slap-save", "save this run's results as NAME in the results folder (--slap-storage)", "NAME"),
    Option(
        "--slap-autosave",
        "save this run as the next numbered run in the results folder (0001_<commit>_<date>.json, ...)",
        kind="bool",
    ),
    Option("--slap-storage", "folder of saved runs (default .slap)", "DIR"),
    Option(
        "--slap-compare",
        "compare this run with a saved one: NAME in the results folder, a file, latest or NNNN (autosaved runs)",
        "NAME|PATH|latest|NNNN",
        see=("Gating merges", "gating.md#gating-merges-verdicts-with-uncertainty"),
    ),
    Option(
        "--slap-compare-fail",
        "fail the session when a metric regresses past its allowance (its 95% interval of the change clear of 0, "
        "its estimate past the allowance), e.g. 'ops_per_sec:-5%,get.p99:+10%'; for --slap-compare and "
        "--slap-versus*",
        "SPEC",
        see=("Gating merges", "gating.md#gating-merges-verdicts-with-uncertainty"),
    ),
    Option(
        "--slap-compare-strict",
        "with --slap-compare-fail: fail on regressions even when the baseline was measured on another machine",
        kind="bool",
    ),
    Option("--slap-no-thresholds", "measure and report, but do not fail tests on slap_thresholds", kind="bool"),
    Option(
        "--slap-shards",
        "run every slap test as N synchronized shards, one per pytest-xdist worker (sets -n N --dist each)",
        "N",
        see=("Shards and several machines", "shards.md"),
    ),
    Option("--slap-sync-timeout", "how long shards wait for each other at a phase barrier (default 60 s)", "SECONDS"),
    Option(
        "--slap-cleanup",
        "delete each slap() call's keys when it ends, on servers the plugin did not start",
        kind="bool",
        see=("Faults and safety", "faults.md"),
    ),
    Option(
        "--slap-allow-flush",
        "allow flush_all on a server given with --memcached (never done otherwise)",
        kind="bool",
        see=("Faults and safety", "faults.md"),
    ),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("memaslap", "memcached load testing (pytest-memaslap)")
    for option in OPTIONS:
        cli_help = option.help.replace("%", "%%")  # argparse formats help strings with %
        if option.kind == "bool":
            group.addoption(option.flag, action="store_true", default=None, dest=option.dest, help=cli_help)
            parser.addini(option.ini, option.help, type="bool", default=False)
        else:
            group.addoption(option.flag, default=None, dest=option.dest, metavar=option.metavar, help=cli_help)
            parser.addini(option.ini, option.help, default="")


def read_option(config: pytest.Config, option: Option) -> Any:
    """An option's value: the command line's, else the ini key's; None when neither gives one."""
    value = config.getoption(option.dest)
    if value is None:
        value = config.getini(option.ini)
    if option.kind != "bool" and value == "":
        return None
    return value


def shards_option(config: pytest.Config) -> int | None:
    """``--slap-shards`` / ``slap_shards``, validated; None when not given."""
    value = config.getoption("slap_shards") or config.getini("slap_shards")
    if not value:
        return None
    from pytest_memaslap.plugin.options import whole_number  # (validation loads the model: only when given)

    return whole_number("slap_shards", value)


def any_given(config: pytest.Config) -> bool:
    """Whether the command line or the ini file gives any option of the plugin."""
    return any(read_option(config, option) not in (None, False) for option in OPTIONS)
