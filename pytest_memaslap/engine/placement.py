"""Which server a key lives on, when there are several (the placement pymemcache's HashClient uses), and a
shard's keyspace built and placed in parts.

HashClient hashes ``"HOST:PORT-KEY"`` with murmur3 for every server and takes
the highest score (rendezvous hashing). We call pymemcache's own hasher, so
a user's application and the load agree on every key's server by
construction, not by reimplementation.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

from pymemcache.client.rendezvous import RendezvousHash

from pytest_memaslap.model.keyspace import key_sizes, make_keys
from pytest_memaslap.model.workload import SizeSpec

KEYS_PER_PART = 50_000  # keys built between two turns of the loop (about 0.1 s)
KEYS_PLACED_PER_PART = 5_000  # keys placed on one of several servers between two turns (about 0.1 s)


def node_name(host: str, port: int) -> str:
    """The name HashClient gives a ``(host, port)`` server."""
    return f"{host}:{port}"


def place(keys: Sequence[bytes], servers: Sequence[tuple[str, int]]) -> list[int]:
    """For each key, the index of its server in ``servers`` (all 0 for one server)."""
    if len(servers) == 1:
        return [0] * len(keys)
    names = [node_name(host, port) for host, port in servers]
    index = {name: i for i, name in enumerate(names)}
    hasher = RendezvousHash(list(names))
    return [index[hasher.get_node(key.decode("ascii"))] for key in keys]


def group_by_place(keys: Sequence[bytes], where: Sequence[int], servers: int) -> tuple[list[bytes], list[range]]:
    """The keys reordered so each server's keys are contiguous, and each server's range in that order.

    ``where`` is each key's server index (``place``), made beforehand: in parts, for a large keyspace.
    """
    ordered: list[bytes] = []
    ranges = []
    for server in range(servers):
        start = len(ordered)
        ordered.extend(key for key, s in zip(keys, where, strict=True) if s == server)
        ranges.append(range(start, len(ordered)))
    return ordered, ranges


async def build_keyspace(
    prefix: str, indices: range, key_size: SizeSpec, rng: random.Random, servers: Sequence[tuple[str, int]]
) -> tuple[list[bytes], list[range]]:
    """A shard's keys grouped by server (``group_by_place``), built in parts with the loop let in between.

    A keyspace of millions takes seconds to build (and more to place on
    several servers); between parts, Ctrl-C and SIGTERM stop it at once.
    """
    sizes = key_sizes(prefix, indices, key_size, rng)
    keys: list[bytes] = []
    for start in range(0, len(indices), KEYS_PER_PART):
        keys += make_keys(prefix, indices[start : start + KEYS_PER_PART], sizes[start : start + KEYS_PER_PART])
        await asyncio.sleep(0)
    where = [0] * len(keys)
    if len(servers) > 1:
        where = []
        for start in range(0, len(keys), KEYS_PLACED_PER_PART):
            where += place(keys[start : start + KEYS_PLACED_PER_PART], servers)
            await asyncio.sleep(0)
    return group_by_place(keys, where, len(servers))
