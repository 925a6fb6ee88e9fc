"""The plugin's settings: command-line options and ini keys, read once into typed objects.

Every option exists twice, as ``--slap-duration`` on the command line and as
``slap_duration`` in ``[tool.pytest.ini_options]``; the command line wins.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pytest

from pytest_memaslap.memcached.sasl import SASL_PASSWORD_ENV, SaslCredentials, SaslError, credentials_from
from pytest_memaslap.memcached.server import ServerConfig, ServerError, parse_address, parse_addresses
from pytest_memaslap.model.memaslap_file import load_config
from pytest_memaslap.model.metrics import DEFAULT_PERCENTILES, MetricError, parse_percentiles
from pytest_memaslap.model.units import UnitError, parse_count, parse_duration
from pytest_memaslap.model.workload import Workload, WorkloadError

if TYPE_CHECKING:  # (what only some options need loads when they are given: start-up stays light)
    import ssl

    from pytest_memaslap.model.allowances import Allowance


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    metavar: str | None = None
    kind: str = "string"  # "string" or "bool"

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
    ),
    Option(
        "--memcached-proxy-stats",
        "the --memcached server is a twemproxy: its stats port (nutcracker -s); each call samples it and the "
        "backends it names by address, beside the run (start it with -i 1000 for per-second figures)",
        "HOST:PORT",
    ),
    Option("--memcached-tls", "speak TLS to the --memcached server(s) (memcached started with -Z)", kind="bool"),
    Option("--memcached-tls-ca", "CA certificates that sign the server's certificate (default: the system's)", "PATH"),
    Option("--memcached-tls-cert", "client certificate, for servers that ask for one (ssl_verify_mode)", "PATH"),
    Option("--memcached-tls-key", "the client certificate's private key, if not in the certificate file", "PATH"),
    Option(
        "--memcached-sasl-user",
        "log in to the --memcached server(s) with SASL PLAIN as USER (memcached started with -S; binary protocol)",
        "USER",
    ),
    Option(
        "--memcached-sasl-password",
        f"the SASL password (better: the {SASL_PASSWORD_ENV} environment variable, which ps does not show)",
        "PASSWORD",
    ),
    Option("--memcached-bin", "memcached binary to start (default: memcached on PATH)", "PATH"),
    Option("--memcached-threads", "worker threads of the memcached the plugin starts (default 4)", "N"),
    Option("--memcached-memory", "memory limit in MB of the memcached the plugin starts (default 1024)", "MB"),
    Option(
        "--memcached-udp",
        "the memcached the plugin starts listens on UDP too (for transport='udp'; off by default)",
        kind="bool",
    ),
    Option("--memcached-args", "extra arguments for the memcached the plugin starts, e.g. '-o modern'", "ARGS"),
    Option("--slap-duration", "measured duration of every slap test, overriding marks (e.g. 30, 30s, 2m)", "SECONDS"),
    Option("--slap-connections", "connections of every slap test, overriding marks", "N"),
    Option("--slap-window", "requests in flight per connection of every slap test, overriding marks", "N"),
    Option("--slap-seed", "RNG seed of every slap test, overriding marks", "N"),
    Option("--slap-protocol", "protocol of every slap test, overriding marks: ascii, meta or binary", "NAME"),
    Option(
        "--slap-rounds",
        "run every slap() call N times (with --slap-versus*: N pairs, default 5); thresholds and comparisons "
        "are judged on the rounds' 95% intervals (default 1)",
        "N",
    ),
    Option(
        "--slap-max-rounds",
        "let a slap() call add rounds, one at a time up to N in all, while a threshold or an A/B verdict is "
        "inconclusive (not with shards)",
        "N",
    ),
    Option(
        "--slap-server-stats",
        "the servers' stats sampled once a second during every slap() call (JSON 'server', server.* thresholds): "
        "on (the default), off, or column (on, and the server's CPU µs per request as a summary column)",
        "on|off|column",
    ),
    Option(
        "--slap-validity",
        "what a failed validity check (rate kept, arrivals as asked, a steady run) does: report (the default: "
        "a note under the summary) or fail (the test fails)",
        "report|fail",
    ),
    Option(
        "--slap-inconclusive",
        "what an inconclusive verdict (its interval straddles the limit or allowance) does: pass (with a "
        "warning; the default) or fail",
        "pass|fail",
    ),
    Option(
        "--slap-versus",
        "interleaved A/B: every slap() call also runs on the memcached at HOST:PORT (B), rounds alternating in "
        "random order, and reports B against the usual server (A) with 95% intervals",
        "HOST:PORT",
    ),
    Option(
        "--slap-versus-bin",
        "interleaved A/B against a second memcached binary the plugin starts with the same options as the first "
        "(--memcached-bin names the first)",
        "PATH",
    ),
    Option(
        "--slap-config",
        "a memaslap -F configuration file: its key, value and cmd distributions for every slap test",
        "PATH",
    ),
    Option(
        "--slap-capacity-step",
        "seconds per step of every slap_capacity search, overriding marks (--slap-duration does not apply to them)",
        "SECONDS",
    ),
    Option("--slap-json", "write the results of all slap tests as JSON to PATH", "PATH"),
    Option(
        "--slap-stat-freq",
        "print progress every N seconds of a run (0: off; default 5 for runs of 10 s or more, else off)",
        "SECONDS",
    ),
    Option(
        "--slap-percentiles",
        "latency percentiles the summary shows and the JSON adds, e.g. 50,99,99.9 (default 50,99)",
        "LIST",
    ),
    Option(
        "--slap-columns",
        "the summary's columns, e.g. ops_per_sec,latency,errors,thresholds (or all): shards, duration, ops, "
        "ops_per_sec, latency, max, set, hit_ratio, errors, mb_per_sec, server_cpu, thresholds (default: "
        "ops_per_sec, latency, set, errors, thresholds, fitted to the terminal's width)",
        "LIST",
    ),
    Option("--slap-html", "write a self-contained HTML report with charts to PATH (needs the report extra)", "PATH"),
    Option(
        "--slap-hdr",
        "write each slap() call's latencies as an HdrHistogram interval log (.hlog) into DIR",
        "DIR",
    ),
    Option(
        "--slap-prometheus",
        "serve live metrics of the running tests for Prometheus at [HOST:]PORT/metrics (HOST defaults to "
        "127.0.0.1; PORT 0 picks a free one); needs the prometheus extra",
        "[HOST:]PORT",
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
    ),
    Option(
        "--slap-compare-fail",
        "fail the session when a metric regresses past its allowance (its 95% interval of the change clear of 0, "
        "its estimate past the allowance), e.g. 'ops_per_sec:-5%,get.p99:+10%'; for --slap-compare and "
        "--slap-versus*",
        "SPEC",
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
    ),
    Option("--slap-sync-timeout", "how long shards wait for each other at a phase barrier (default 60 s)", "SECONDS"),
    Option(
        "--slap-cleanup",
        "delete each slap() call's keys when it ends, on servers the plugin did not start",
        kind="bool",
    ),
    Option(
        "--slap-allow-flush",
        "allow flush_all on a server given with --memcached (never done otherwise)",
        kind="bool",
    ),
)

_CLI_WORKLOAD = {
    "slap_duration": "duration",
    "slap_connections": "connections",
    "slap_window": "window",
    "slap_seed": "seed",
    "slap_protocol": "protocol",
}


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


def _read(config: pytest.Config, option: Option) -> Any:
    value = config.getoption(option.dest)
    if value is None:
        value = config.getini(option.ini)
    if option.kind != "bool" and value == "":
        return None
    return value


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _int(name: str, value: Any, low: int = 1) -> int:
    """A whole number, with the count suffixes every count takes (``--slap-keys=1M``)."""
    try:
        number = parse_count(value, _flag(name))
    except UnitError as exc:
        raise pytest.UsageError(str(exc)) from None
    if number < low:
        raise pytest.UsageError(f"--{name.replace('_', '-')}={value!r}: must be at least {low}")
    return number


def _whole_seconds(name: str, value: Any) -> int:
    """Whole seconds from ``5``, ``"5s"`` or ``"1m"``; 0 is allowed (off)."""
    try:
        seconds = parse_duration(value, _flag(name))
    except UnitError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not seconds.is_integer():
        raise pytest.UsageError(f"{_flag(name)}={value!r}: whole seconds, e.g. 5, '5s' or '1m'")
    return int(seconds)


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = parse_duration(value, _flag(name))
    except UnitError as exc:
        raise pytest.UsageError(str(exc)) from None
    if seconds <= 0:
        raise pytest.UsageError(f"--{name.replace('_', '-')}={value!r}: must be longer than 0 s")
    return seconds


def _stat_freq(value: Any) -> int | None:
    return None if value is None else _whole_seconds("slap_stat_freq", value)


def _percentiles(value: Any) -> tuple[float, ...]:
    if value is None:
        return DEFAULT_PERCENTILES
    try:
        return parse_percentiles(value)
    except MetricError as exc:
        raise pytest.UsageError(str(exc)) from None


def _columns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    from pytest_memaslap.output.columns import ColumnError, parse_columns

    try:
        return parse_columns(str(value))
    except ColumnError as exc:
        raise pytest.UsageError(str(exc)) from None


def _baseline_settings(raw: Mapping[str, Any]) -> dict[str, Any]:
    """--slap-save / --slap-compare / --slap-compare-fail, checked now so a typo fails before any load."""
    storage = raw["slap_storage"] or ".slap"
    autosave = bool(raw["slap_autosave"])
    if not (raw["slap_save"] or autosave or raw["slap_compare"] or raw["slap_compare_fail"]):  # (nothing to load)
        return {"save": None, "autosave": False, "storage": storage, "baseline": None, "allowances": ()}
    from pytest_memaslap.model.allowances import AllowanceError, parse_allowances
    from pytest_memaslap.output.baseline import BaselineError, check_name, load, resolve
    from pytest_memaslap.output.files import directory_problem

    versus = bool(raw["slap_versus"] or raw["slap_versus_bin"])
    try:
        if raw["slap_save"]:
            check_name(raw["slap_save"])
        if raw["slap_save"] or autosave:
            problem = directory_problem(storage, "the results folder")
            if problem:
                which = "--slap-save" if raw["slap_save"] else "--slap-autosave"
                raise BaselineError(f"--slap-storage={storage}: {problem} ({which} writes there)")
        allowances = parse_allowances(raw["slap_compare_fail"] or "")
        if allowances and not raw["slap_compare"] and not versus:
            raise BaselineError(
                "--slap-compare-fail needs something to compare against: --slap-compare=NAME|PATH (a saved run) "
                "or --slap-versus=HOST:PORT / --slap-versus-bin=PATH (interleaved A/B)"
            )
        baseline = load(resolve(raw["slap_compare"], storage)) if raw["slap_compare"] else None
    except (BaselineError, AllowanceError) as exc:
        raise pytest.UsageError(str(exc)) from None
    return {
        "save": raw["slap_save"],
        "autosave": autosave,
        "storage": storage,
        "baseline": baseline,
        "allowances": allowances,
    }


def _tls_context(raw: Mapping[str, Any]) -> ssl.SSLContext | None:
    """--memcached-tls and its files, checked now: a missing file or a bad key fails before any load."""
    files = {name: raw[f"memcached_tls_{name}"] for name in ("ca", "cert", "key")}
    if not raw["memcached_tls"]:
        given = [f"--memcached-tls-{name}" for name, path in files.items() if path]
        if given:
            raise pytest.UsageError(f"{', '.join(given)} needs --memcached-tls")
        return None
    if not raw["memcached"]:
        raise pytest.UsageError(
            "--memcached-tls is for servers given with --memcached: a memcached the plugin starts listens "
            "without TLS (start yours with -Z and its ssl_* options)"
        )
    from pytest_memaslap.memcached.tls import TLSConfig, TLSError

    try:
        return TLSConfig(**files).context()
    except TLSError as exc:
        raise pytest.UsageError(str(exc)) from None


def _proxy_stats(raw: Mapping[str, Any]) -> tuple[str, int] | None:
    """--memcached-proxy-stats: a HOST:PORT, for a proxy given with --memcached (the port is tried at first use)."""
    value = raw["memcached_proxy_stats"]
    if not value:
        return None
    if not raw["memcached"]:
        raise pytest.UsageError(
            "--memcached-proxy-stats is for a twemproxy given with --memcached: a memcached the plugin starts "
            "is sampled with its own stats"
        )
    try:
        return parse_address(value)
    except ServerError:
        raise pytest.UsageError(
            f"--memcached-proxy-stats={value!r}: expected the proxy's stats port as HOST:PORT, e.g. 127.0.0.1:22222"
        ) from None


def _sasl_credentials(raw: Mapping[str, Any]) -> SaslCredentials | None:
    """--memcached-sasl-user and its password (option, ini key or environment), checked now."""
    if raw["memcached_sasl_user"] and not raw["memcached"]:
        raise pytest.UsageError(
            "--memcached-sasl-user is for servers given with --memcached: a memcached the plugin starts "
            "does not require SASL (start yours with -S)"
        )
    try:
        return credentials_from(
            raw["memcached_sasl_user"],
            raw["memcached_sasl_password"],
            "--memcached-sasl-user",
            "--memcached-sasl-password",
        )
    except SaslError as exc:
        raise pytest.UsageError(str(exc)) from None


def _output_file(option: str, path: str | None) -> str | None:
    """An output file's path, tried now: one that cannot be written fails before any load runs."""
    if path:
        from pytest_memaslap.output.files import file_problem

        problem = file_problem(path)
        if problem:
            raise pytest.UsageError(f"{option}={path}: {problem}")
    return path


def _output_dir(option: str, path: str | None) -> str | None:
    """An output folder, tried now (made if missing): one that cannot be written fails before any load runs."""
    if path:
        from pytest_memaslap.output.files import directory_problem

        problem = directory_problem(path)
        if problem:
            raise pytest.UsageError(f"{option}={path}: {problem}")
    return path


def _listen_address(option: str, value: str | None) -> tuple[str, int] | None:
    """``PORT`` (on loopback), ``HOST:PORT`` or ``[IPv6]:PORT``; one clear error for anything else."""
    if not value:
        return None
    text = str(value).strip()
    host, _, port = text.rpartition(":")
    host = host.strip("[]") if host else "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise pytest.UsageError(
            f"{option}={value}: expected [HOST:]PORT with PORT from 0 to 65535, e.g. 9464, 127.0.0.1:9464 or [::1]:9464"
        )
    return host, int(port)


def _html_path(path: str | None) -> str | None:
    """--slap-html needs plotly and a writable file; say so before any load runs, not after."""
    if path:
        from pytest_memaslap.output.html import ReportExtraMissing, check_available

        try:
            check_available()
        except ReportExtraMissing as exc:
            raise pytest.UsageError(str(exc)) from None
    return _output_file("--slap-html", path)


def shards_option(config: pytest.Config) -> int | None:
    """``--slap-shards`` / ``slap_shards``, validated; None when not given."""
    value = config.getoption("slap_shards") or config.getini("slap_shards")
    return _int("slap_shards", value) if value else None


VERSUS_ROUNDS = 5  # pairs of rounds of an interleaved A/B call unless --slap-rounds says otherwise


def _versus(raw: Mapping[str, Any]) -> bool:
    """--slap-versus / --slap-versus-bin, checked now: one of them, a B that is not A, a binary that exists."""
    address, binary = raw["slap_versus"], raw["slap_versus_bin"]
    if address and binary:
        raise pytest.UsageError("--slap-versus and --slap-versus-bin both name B; give one of them")
    if address:
        try:
            b = parse_address(address)
        except ServerError:
            raise pytest.UsageError(
                f"--slap-versus={address!r}: expected one server as HOST:PORT, e.g. 127.0.0.1:11311 or [::1]:11311"
            ) from None
        if raw["memcached"] and b in parse_addresses(raw["memcached"]):
            raise pytest.UsageError(f"--slap-versus={address} is the --memcached server itself: B must be another")
    if binary:
        if raw["memcached"]:
            raise pytest.UsageError(
                "--slap-versus-bin starts B beside a memcached the plugin starts (A); with --memcached=HOST:PORT "
                "give B as --slap-versus=HOST:PORT"
            )
        import shutil

        if shutil.which(binary) is None:
            raise pytest.UsageError(f"--slap-versus-bin={binary}: no such executable")
    return bool(address or binary)


def _max_rounds(raw: Mapping[str, Any], versus: bool) -> int | None:
    if raw["slap_max_rounds"] is None:
        return None
    rounds = _int("slap_rounds", raw["slap_rounds"] or (VERSUS_ROUNDS if versus else 1))
    most = _int("slap_max_rounds", raw["slap_max_rounds"])
    if most < max(rounds, 2):
        raise pytest.UsageError(
            f"--slap-max-rounds={most}: must be at least --slap-rounds ({rounds}) and at least 2 "
            "(an interval needs two rounds)"
        )
    return most


def _server_stats(value: Any) -> str:
    choice = "on" if value is None else str(value).strip().lower()
    if choice not in ("on", "off", "column"):
        raise pytest.UsageError(f"--slap-server-stats={value!r}: expected on, off or column")
    return choice


def _validity_fails(value: Any) -> bool:
    choice = "report" if value is None else str(value).strip().lower()
    if choice not in ("report", "fail"):
        raise pytest.UsageError(f"--slap-validity={value!r}: expected report or fail")
    return choice == "fail"


def _inconclusive_fails(value: Any) -> bool:
    if value is None or str(value).strip().lower() == "pass":
        return False
    if str(value).strip().lower() == "fail":
        return True
    raise pytest.UsageError(f"--slap-inconclusive={value!r}: expected pass or fail")


@dataclass(frozen=True)
class Settings:
    """Everything the options and ini keys say, validated."""

    external: str | None
    server: ServerConfig
    workload_overrides: Mapping[str, Any]
    json_path: str | None
    enforce_thresholds: bool
    allow_flush: bool
    sync_timeout: float = 60.0
    cleanup: bool = False
    stat_freq: int | None = None
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES  # the summary's latency columns (--slap-percentiles)
    columns: tuple[str, ...] | None = None  # --slap-columns: the summary's columns (None: the compact default)
    rounds: int = 1
    html_path: str | None = None
    hdr_dir: str | None = None  # --slap-hdr: HdrHistogram interval logs go here
    save: str | None = None
    autosave: bool = False  # --slap-autosave: also save as the next numbered run
    storage: str = ".slap"
    baseline: dict[str, Any] | None = None  # the run --slap-compare names, loaded and checked
    allowances: tuple[Allowance, ...] = ()
    tls: ssl.SSLContext | None = None  # --memcached-tls: the client context every connection uses
    sasl: SaslCredentials | None = None  # --memcached-sasl-user: every connection logs in (binary protocol only)
    capacity_step: float | None = None  # --slap-capacity-step: seconds per step of capacity searches
    compare_strict: bool = False  # --slap-compare-strict: regressions across machines fail the run too
    prometheus: tuple[str, int] | None = None  # --slap-prometheus: where the live metrics are served
    max_rounds: int | None = None  # --slap-max-rounds: a call adds rounds up to this while a verdict is undecided
    inconclusive_fails: bool = False  # --slap-inconclusive=fail
    server_stats: str = "on"  # --slap-server-stats: on, off, or column (on, and a summary column)
    validity_fails: bool = False  # --slap-validity=fail
    versus: str | None = None  # --slap-versus: B, an external server
    versus_bin: str | None = None  # --slap-versus-bin: B, a second binary the plugin starts
    proxy_stats: tuple[str, int] | None = None  # --memcached-proxy-stats: a twemproxy's stats port

    def tls_context(self) -> ssl.SSLContext | None:
        return self.tls

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        raw = {option.ini: _read(config, option) for option in OPTIONS}
        server = ServerConfig(
            binary=raw["memcached_bin"] or "memcached",
            threads=_int("memcached_threads", raw["memcached_threads"] or 4),
            memory_mb=_int("memcached_memory", raw["memcached_memory"] or 1024),
            extra_args=tuple(shlex.split(raw["memcached_args"] or "")),
            udp=bool(raw["memcached_udp"]),
        )
        overrides: dict[str, Any] = {}
        for ini, field_name in _CLI_WORKLOAD.items():
            value = raw[ini]
            if value is None:
                continue
            if field_name not in ("duration", "protocol"):
                value = _int(ini, value, low=0 if field_name == "seed" else 1)
            overrides[field_name] = value
        try:
            if raw["slap_config"]:
                overrides.update(load_config(raw["slap_config"]))
            Workload.from_args(overrides)
        except WorkloadError as exc:
            raise pytest.UsageError(f"--slap-*: {exc}") from None
        if raw["memcached"]:
            try:
                parse_addresses(raw["memcached"])
            except ServerError as exc:
                raise pytest.UsageError(str(exc)) from None
        versus = _versus(raw)
        return cls(
            external=raw["memcached"],
            server=server,
            workload_overrides=overrides,
            json_path=_output_file("--slap-json", raw["slap_json"]),
            enforce_thresholds=not raw["slap_no_thresholds"],
            compare_strict=bool(raw["slap_compare_strict"]),
            allow_flush=bool(raw["slap_allow_flush"]),
            sync_timeout=_seconds("slap_sync_timeout", raw["slap_sync_timeout"] or 60),
            cleanup=bool(raw["slap_cleanup"]),
            tls=_tls_context(raw),
            sasl=_sasl_credentials(raw),
            rounds=_int("slap_rounds", raw["slap_rounds"] or (VERSUS_ROUNDS if versus else 1)),
            max_rounds=_max_rounds(raw, versus),
            inconclusive_fails=_inconclusive_fails(raw["slap_inconclusive"]),
            server_stats=_server_stats(raw["slap_server_stats"]),
            validity_fails=_validity_fails(raw["slap_validity"]),
            versus=raw["slap_versus"],
            versus_bin=raw["slap_versus_bin"],
            proxy_stats=_proxy_stats(raw),
            capacity_step=_seconds("slap_capacity_step", raw["slap_capacity_step"])
            if raw["slap_capacity_step"]
            else None,
            html_path=_html_path(raw["slap_html"]),
            hdr_dir=_output_dir("--slap-hdr", raw["slap_hdr"]),
            prometheus=_listen_address("--slap-prometheus", raw["slap_prometheus"]),
            stat_freq=_stat_freq(raw["slap_stat_freq"]),
            percentiles=_percentiles(raw["slap_percentiles"]),
            columns=_columns(raw["slap_columns"]),
            **_baseline_settings(raw),
        )


def server_config_from_mark(base: ServerConfig, kwargs: Mapping[str, Any]) -> ServerConfig:
    """``@pytest.mark.memcached(threads=, memory=, args=, binary=)`` over the session's settings."""
    allowed = ("threads", "memory", "args", "binary", "udp")
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise WorkloadError(
            f"memcached mark: unknown argument {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}"
        )
    values: dict[str, Any] = {}
    for name, key in (("threads", "threads"), ("memory", "memory_mb")):
        if name in kwargs:
            value = kwargs[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise WorkloadError(f"memcached mark: {name}={value!r}: expected a whole number of at least 1")
            values[key] = value
    if "args" in kwargs:
        args = kwargs["args"]
        if isinstance(args, str):
            args = shlex.split(args)
        if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
            raise WorkloadError(f"memcached mark: args={kwargs['args']!r}: expected a string or a list of strings")
        values["extra_args"] = base.extra_args + tuple(args)
    if "udp" in kwargs:
        if not isinstance(kwargs["udp"], bool):
            raise WorkloadError(f"memcached mark: udp={kwargs['udp']!r}: expected True or False")
        values["udp"] = kwargs["udp"]
    if "binary" in kwargs:
        if not isinstance(kwargs["binary"], str):
            raise WorkloadError(f"memcached mark: binary={kwargs['binary']!r}: expected a path string")
        values["binary"] = kwargs["binary"]
    return replace(base, **values)
