"""One protocol's request builders and reply parsers as a value: ``CODECS[workload.protocol]``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from types import ModuleType

from pytest_memaslap.protocol import ascii, binary, meta


@dataclass(frozen=True)
class Codec:
    """A protocol's request builders and reply parsers (the ``ascii``, ``meta`` or ``binary`` module)."""

    PARSERS: Mapping[str, Callable[..., tuple[int, int]]]
    get_request: Callable[[bytes], bytes]
    set_request: Callable[[bytes, memoryview | bytes, bytes], bytes]
    set_ttl_request: Callable[[bytes, memoryview | bytes, bytes, bytes], bytes]
    store_request: Callable[[bytes, bytes, memoryview | bytes, bytes], bytes]
    touch_request: Callable[[bytes], bytes]
    arith_request: Callable[[bytes, bytes], bytes]
    delete_request: Callable[[bytes], bytes]
    gets_request: Callable[[bytes], bytes]
    multi_get_request: Callable[[list[bytes]], bytes]
    expected_hit: Callable[[bytes, bytes, int], tuple[bytes, int]]
    parse_multi_get: Callable[..., tuple[int, int]]
    parse_get: Callable[..., tuple[int, int]]
    VALUE_OFFSET: int | None

    @classmethod
    def of(cls, module: ModuleType) -> Codec:
        return cls(**{f.name: getattr(module, f.name) for f in fields(cls)})


CODECS = {"ascii": Codec.of(ascii), "meta": Codec.of(meta), "binary": Codec.of(binary)}  # protocol= -> its codec
