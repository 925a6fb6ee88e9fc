"""A shard's measured-phase request sources: one per connection, each over its own server's keys.

Built once per phase, before any request leaves (not the hot path): the
keys are split by server when there are several, every get's request line
and expected hit are built once and shared, and each connection draws from
its own RNG, so a seed gives the same requests on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_memaslap.engine.hot.requests import GetLines, OpSource, get_lines
from pytest_memaslap.engine.hot.slow import ExpiryBook, VerifyLog
from pytest_memaslap.model.keyspace import ValueSource
from pytest_memaslap.model.shard_plan import ShardPlan
from pytest_memaslap.model.workload import Workload
from pytest_memaslap.protocol.codecs import Codec


@dataclass(frozen=True)
class SourcePlan:
    """What every source of a shard shares: the workload, the shard's place, and its run-wide books."""

    workload: Workload
    plan: ShardPlan
    codec: Codec
    prefix: str
    verify_log: VerifyLog
    expiry: ExpiryBook


def build_sources(
    shared: SourcePlan,
    keys: list[bytes],
    key_base: int,
    values: ValueSource,
    server_ranges: Sequence[range],
    counters: list[bytes] | None,
    followups: Sequence[list[tuple[int, bytes]]],
) -> list[OpSource]:
    """One source per connection (``followups``, one list per connection); connection i talks to server i % n."""
    workload, plan = shared.workload, shared.plan
    lines = get_lines(keys, key_base, values, shared.codec) if "get" in workload.measured_commands() else None
    servers = len(server_ranges)
    per_server = [_server_slice(r, servers, keys, lines, counters) for r in server_ranges]
    connections = len(followups)
    sources = []
    for i in range(connections):
        start, server_keys, server_lines, server_counters = per_server[i % servers]
        writer = (i // servers, len(range(i % servers, connections, servers)))
        sources.append(
            OpSource(
                workload,
                server_keys,
                key_base + start,
                values,
                plan.rng(workload, f"conn{i}"),
                server_lines,
                server_counters,
                shared.verify_log,
                shared.expiry,
                writer,
                f"{shared.prefix[:-1]}.n{plan.index}.{i}:",  # this connection's new keys (overwrite < 1)
                followups[i],
            )
        )
    return sources


def _server_slice(
    keys_range: range, servers: int, keys: list[bytes], lines: GetLines | None, counters: list[bytes] | None
) -> tuple[int, list[bytes], GetLines | None, list[bytes] | None]:
    """One server's keys, get lines and counters (the whole lists, uncopied, for a single server)."""
    if servers == 1:
        return 0, keys, lines, counters
    a, b = keys_range.start, keys_range.stop
    return a, keys[a:b], lines[a:b] if lines is not None else None, counters[a:b] if counters is not None else None
