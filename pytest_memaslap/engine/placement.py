"""Which server a key lives on, when there are several: the placement pymemcache's HashClient uses.

HashClient hashes ``"HOST:PORT-KEY"`` with murmur3 for every server and takes
the highest score (rendezvous hashing). We call pymemcache's own hasher, so
a user's application and the load agree on every key's server by
construction, not by reimplementation.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymemcache.client.rendezvous import RendezvousHash


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
