"""The mark's arguments: how each value is read and checked, and what the reference says of it.

Each argument of ``@pytest.mark.slap(...)`` (and of ``slap(**overrides)``)
has one entry in ``ARGUMENTS``: its parser, the kind and the values it
accepts, an example that parses, and its meaning. ``Workload.from_args``
validates with the parsers; ``docs/generate_reference.py`` writes the mark
reference from the same entries, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_memaslap.model import presets
from pytest_memaslap.model.parsers import (
    ARRIVALS,
    COMMANDS,
    MAX_STAGES,
    PROTOCOLS,
    TRANSPORTS,
    parse_bool,
    parse_choice,
    parse_commands,
    parse_connection_steps_field,
    parse_duration,
    parse_key_pattern,
    parse_optional_count,
    parse_optional_duration,
    parse_poll_interval,
    parse_positive_count,
    parse_positive_duration,
    parse_positive_float,
    parse_preset,
    parse_probe_rate,
    parse_proportion,
    parse_rate,
    parse_seed,
    parse_size_spec,
    parse_stages,
    parse_timeout,
    parse_trace_path,
    parse_whole_seconds,
)


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{value}`" for value in values)


@dataclass(frozen=True)
class Argument:
    """One mark argument: how its value is read and checked, and what the reference says of it."""

    parse: Callable[[Any], Any]
    kind: str  # the kind of value, in the reference's words: count, duration, proportion, choice, ...
    accepts: str  # the values allowed (Markdown)
    example: Any  # a value the parser takes (a test parses every one)
    meaning: str  # what it does (Markdown; links are relative to docs/)
    default: str | None = None  # the default as the reference writes it, where the field's own would mislead


ARGUMENTS: dict[str, Argument] = {
    "duration": Argument(
        parse_optional_duration("duration"),
        "duration",
        'seconds, or `"500ms"`, `"10s"`, `"2m"`, `"1h"`; `None` with `ops`',
        "30s",
        "measured duration; with `ops` too, whichever comes first",
    ),
    "ops": Argument(
        parse_optional_count("ops"),
        "count",
        'at least 1: `10_000`, `"1M"`',
        "1M",
        "stop after this many measured requests",
    ),
    "warmup": Argument(
        lambda v: parse_duration(v, "warmup"),
        "duration",
        "0 or more",
        "2s",
        "a period before the measured phase; its numbers are kept apart",
    ),
    "connections": Argument(
        lambda v: parse_positive_count(v, "connections"),
        "count, or (first, step, last)",
        "1 to 10,000 per shard; `(first, step, last)` adds connections step by step",
        32,
        "TCP connections (see [Load shapes](writing-tests.md#load-shapes-stages-and-connection-steps))",
    ),
    "window": Argument(
        lambda v: parse_positive_count(v, "window"),
        "count",
        "1 to 10,000",
        16,
        "requests in flight per connection: 1 is memaslap's closed loop, more pipelines",
    ),
    "commands": Argument(
        parse_commands,
        "mapping",
        f"command to proportion, summing to 1; commands: {_listed(COMMANDS)}",
        {"get": 0.9, "set": 0.1},
        "the command mix (see [the commands](writing-tests.md#the-slap-mark-the-workload))",
        default='`{"get": 0.9, "set": 0.1}`',
    ),
    "keys": Argument(lambda v: parse_positive_count(v, "keys"), "count", "at least 1", "1M", "keyspace size"),
    "key_size": Argument(
        lambda v: parse_size_spec(v, "key_size"),
        "size",
        "bytes: `N`, `(min, max)` or memaslap-style `[(min, max, proportion), ...]`; at most 250",
        (16, 64),
        "key sizes; each key gets one size from the distribution",
        default="`64`",
    ),
    "value_size": Argument(
        lambda v: parse_size_spec(v, "value_size"),
        "size",
        "bytes, the same three shapes",
        [(100, 200, 0.5), (3000, 4000, 0.5)],
        "value sizes; each key gets one (as memaslap's items do); checked against the server's `item_size_max` "
        "before the run",
        default="`1024`",
    ),
    "key_pattern": Argument(
        parse_key_pattern,
        "choice",
        "`uniform`, `sequential`, `zipf:THETA` (0 < THETA < 1; `zipf` is 0.99), `gaussian:SIGMA` (a fraction of "
        "the keyspace; `gaussian` is 1/6), `latest:INSERTS` (0 < INSERTS < 1; `latest` is 0.05)",
        "zipf:0.99",
        "which keys requests go to: every key alike, a walk of the keyspace, popularity ~ 1/rank^THETA (YCSB), "
        "around the middle (memtier_benchmark's G), or YCSB's read-latest (a Zipfian over recency, the newest key "
        "moving on in INSERTS of the draws); with shards, each shard applies it to its own slice",
    ),
    "seed": Argument(
        parse_seed, "integer", "0 or more", 7, "every random stream derives from it: same seed, same requests"
    ),
    "preload": Argument(parse_bool("preload"), "bool", "`True`, `False`", False, "set every key once before the run"),
    "protocol": Argument(
        parse_choice("protocol", PROTOCOLS),
        "choice",
        _listed(PROTOCOLS),
        "meta",
        "the classic text protocol, the meta commands (`mg`/`ms`/`md`/`ma`) or binary (see "
        "[Protocols](writing-tests.md#protocols))",
    ),
    "timeout": Argument(
        parse_timeout,
        "duration",
        "longer than 0",
        "2s",
        "connect timeout, how long a server may leave requests unanswered before the run fails, and how long "
        "`reconnect` keeps trying",
    ),
    "reconnect": Argument(
        parse_bool("reconnect"),
        "bool",
        "`True`, `False`",
        True,
        "memaslap's `-R`: a dropped connection is reopened (backoff 10 ms to 0.5 s) and the run goes on; its "
        "requests in flight count as errors",
    ),
    "rate": Argument(
        parse_rate,
        "rate",
        'requests per second, at most 10M: `40000`, `"40k"`, `"40k/s"`; `None` is a closed loop',
        "40k/s",
        "open loop: requests per second over all connections and shards (see "
        "[Open loop](writing-tests.md#open-loop-rate))",
    ),
    "stages": Argument(
        parse_stages,
        "list",
        f'1 to {MAX_STAGES} pairs `(duration, rate at its end)`: `[("10s", "1k"), ("20s", "50k")]`',
        [("1s", "1k"), ("2s", "5k")],
        "an open loop whose rate ramps from `rate` (or 0); sets the duration",
    ),
    "connection_steps": Argument(
        parse_connection_steps_field,
        "pair",
        "`(first, added per step)`; written as `connections=(first, step, last)`",
        [2, 2],
        "a closed loop that adds connections, as memtier_benchmark's client steps",
    ),
    "step_duration": Argument(
        parse_positive_duration("step_duration"),
        "duration",
        "longer than 0",
        "5s",
        "seconds per connection step; the steps set the duration",
    ),
    "arrivals": Argument(
        parse_choice("arrivals", ARRIVALS),
        "choice",
        _listed(ARRIVALS),
        "uniform",
        "how an open loop spaces its requests: exponential gaps (as real clients arrive), even gaps, or Facebook "
        "ETC's generalized Pareto gaps rescaled to the rate",
    ),
    "division": Argument(
        lambda v: parse_positive_count(v, "division"),
        "count",
        "1 to 100",
        10,
        "keys per get (memaslap's `-d`): more than 1 sends multi-gets",
    ),
    "verify": Argument(
        parse_proportion("verify"),
        "proportion",
        "0 to 1",
        0.01,
        "share of gets whose value is checked byte for byte (memaslap's `-v`)",
    ),
    "expire": Argument(
        parse_proportion("expire"),
        "proportion",
        "0 to 1",
        0.05,
        "share of sets with a TTL (memaslap's `-e`); gets of keys whose TTL ran out are checked to miss",
    ),
    "expire_after": Argument(
        parse_whole_seconds("expire_after"), "duration", "whole seconds, 1 s to 30 days", "5s", "that TTL"
    ),
    "overwrite": Argument(
        parse_proportion("overwrite"),
        "proportion",
        "0 to 1",
        0.9,
        "share of sets that go to keys of the keyspace (memaslap's `-o`); the others write new keys, never read "
        "back, so memory fills as with new objects",
    ),
    "transport": Argument(
        parse_choice("transport", TRANSPORTS),
        "choice",
        _listed(TRANSPORTS),
        "udp",
        "`udp`: the measured gets go over UDP (memaslap's `-U`; the preload stays on TCP)",
    ),
    "trace": Argument(
        parse_trace_path,
        "path",
        "a Twitter cache-trace or KVReplay CSV, plain or zstd, relative to the test file",
        "traces/sample.csv",
        "a cache trace to replay instead of the mix (see [Real workloads](workloads.md))",
    ),
    "speed": Argument(
        parse_positive_float("speed"),
        "number",
        "above 0",
        2,
        "a timed trace plays this many times faster than recorded",
    ),
    "loop": Argument(
        parse_bool("loop"), "bool", "`True`, `False`", True, "a trace starts again when it ends, until `duration`/`ops`"
    ),
    "amplify": Argument(
        lambda v: parse_positive_count(v, "amplify"),
        "count",
        "1 to 1,000",
        4,
        "every trace key becomes this many distinct keys, each sent the key's requests",
    ),
    "preset": Argument(
        parse_preset,
        "choice",
        _listed(tuple(presets.PRESETS)),
        "ycsb-b",
        "a published workload whose arguments the others override (see [Real workloads](workloads.md#presets-preset))",
    ),
    "probe_rate": Argument(
        parse_probe_rate,
        "rate",
        "requests per second, at most 10k",
        200,
        "a measurement probe: gets at this Poisson rate from a process of its own, their latencies apart (see "
        "[the probe](measurement.md#a-measurement-probe-probe_rate))",
    ),
    "poll_interval": Argument(
        parse_poll_interval,
        "duration",
        '0 to 1 ms: `"50us"`',
        "50us",
        "the shard's event loop sleeps this long between passes instead of waking for each reply: replies "
        "gather between reads, and a server on the same machine no longer spends its CPU waking the load. "
        "Pipelined on loopback (8 × 16) it drew 1.31× memtier_benchmark's throughput at the same workload "
        "(1.01× without) at half its CPU per request; at window 1 it costs throughput. A reply waits up to the "
        "interval to be read, and its latency includes that wait, as the summary notes (see "
        "[the pipelined gap](speed.md#the-pipelined-gap-with-memtier_benchmark))",
    ),
}

# taken out of the mark by the plugin before the others are parsed (its sections become three of them)
CONFIG_ARGUMENT = Argument(
    str,
    "path",
    "a memaslap `-F` configuration file, relative to the test file",
    "memaslap.cfg",
    "its key, value and cmd sections become `key_size`, `value_size` and `commands`; the mark's own arguments win "
    "(see [memaslap configuration files](writing-tests.md#memaslap-configuration-files))",
)
