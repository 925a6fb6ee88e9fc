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

from pytest_memaslap.memcached.sasl import SaslCredentials, SaslError, credentials_from
from pytest_memaslap.memcached.server import ServerConfig, ServerError, parse_address, parse_addresses
from pytest_memaslap.model.memaslap_file import load_config
from pytest_memaslap.model.metrics import DEFAULT_PERCENTILES, MetricError, parse_percentiles
from pytest_memaslap.model.units import UnitError, parse_count, parse_duration
from pytest_memaslap.model.workload import Workload, WorkloadError
from pytest_memaslap.plugin.optiontable import OPTIONS, read_option

if TYPE_CHECKING:  # (what only some options need loads when they are given: start-up stays light)
    import ssl

    from pytest_memaslap.model.allowances import Allowance


_CLI_WORKLOAD = {
    "slap_duration": "duration",
    "slap_connections": "connections",
    "slap_window": "window",
    "slap_seed": "seed",
    "slap_protocol": "protocol",
}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def whole_number(name: str, value: Any, low: int = 1) -> int:
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


def _html_inline(raw: Mapping[str, Any]) -> bool:
    if raw["slap_html_inline"] and not raw["slap_html"]:
        raise pytest.UsageError("--slap-html-inline: it says how --slap-html writes its report; give --slap-html=PATH")
    return bool(raw["slap_html_inline"])


def _html_path(path: str | None) -> str | None:
    """--slap-html needs plotly and a writable file; say so before any load runs, not after."""
    if path:
        from pytest_memaslap.output.html import ReportExtraMissing, check_available

        try:
            check_available()
        except ReportExtraMissing as exc:
            raise pytest.UsageError(str(exc)) from None
    return _output_file("--slap-html", path)


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
    rounds = whole_number("slap_rounds", raw["slap_rounds"] or (VERSUS_ROUNDS if versus else 1))
    most = whole_number("slap_max_rounds", raw["slap_max_rounds"])
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
    html_inline: bool = False  # --slap-html-inline: plotly.js inside the report, not beside it
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
        raw = {option.ini: read_option(config, option) for option in OPTIONS}
        server = ServerConfig(
            binary=raw["memcached_bin"] or "memcached",
            threads=whole_number("memcached_threads", raw["memcached_threads"] or 4),
            memory_mb=whole_number("memcached_memory", raw["memcached_memory"] or 1024),
            extra_args=tuple(shlex.split(raw["memcached_args"] or "")),
            udp=bool(raw["memcached_udp"]),
        )
        overrides: dict[str, Any] = {}
        for ini, field_name in _CLI_WORKLOAD.items():
            value = raw[ini]
            if value is None:
                continue
            if field_name not in ("duration", "protocol"):
                value = whole_number(ini, value, low=0 if field_name == "seed" else 1)
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
            rounds=whole_number("slap_rounds", raw["slap_rounds"] or (VERSUS_ROUNDS if versus else 1)),
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
            html_inline=_html_inline(raw),
            hdr_dir=_output_dir("--slap-hdr", raw["slap_hdr"]),
            prometheus=_listen_address("--slap-prometheus", raw["slap_prometheus"]),
            stat_freq=_stat_freq(raw["slap_stat_freq"]),
            percentiles=_percentiles(raw["slap_percentiles"]),
            columns=_columns(raw["slap_columns"]),
            **_baseline_settings(raw),
        )


MEMCACHED_MARK_ARGUMENTS = ("threads", "memory", "args", "binary", "udp")


def server_config_from_mark(base: ServerConfig, kwargs: Mapping[str, Any]) -> ServerConfig:
    """``@pytest.mark.memcached(threads=, memory=, args=, binary=)`` over the session's settings."""
    allowed = MEMCACHED_MARK_ARGUMENTS
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
