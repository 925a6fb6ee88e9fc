"""pytest-memaslap: memcached load tests as ordinary pytest tests.

The public names below are imported on first use, not with the package: the
pytest plugin (``pytest_memaslap.plugin.hooks``) is loaded in every session of
a project that has it installed, and must not pull in asyncio, uvloop and the
engine for suites that never run a load.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "CommandResult": "pytest_memaslap.stats.result",
    "MemcachedServer": "pytest_memaslap.memcached.server",
    "ServerError": "pytest_memaslap.memcached.server",
    "ShardPlan": "pytest_memaslap.engine",
    "SlapResult": "pytest_memaslap.stats.result",
    "SlapRunError": "pytest_memaslap.engine.errors",
    "Target": "pytest_memaslap.memcached.endpoint",
    "ThresholdError": "pytest_memaslap.model.thresholds",
    "Workload": "pytest_memaslap.model.workload",
    "WorkloadError": "pytest_memaslap.model.workload",
    "run_shard": "pytest_memaslap.engine",
}

__all__ = [
    "CommandResult",
    "MemcachedServer",
    "ServerError",
    "ShardPlan",
    "SlapResult",
    "SlapRunError",
    "Target",
    "ThresholdError",
    "Workload",
    "WorkloadError",
    "__version__",
    "run_shard",
]

if TYPE_CHECKING:
    from pytest_memaslap.engine import ShardPlan, run_shard
    from pytest_memaslap.engine.errors import SlapRunError
    from pytest_memaslap.memcached.endpoint import Target
    from pytest_memaslap.memcached.server import MemcachedServer, ServerError
    from pytest_memaslap.model.thresholds import ThresholdError
    from pytest_memaslap.model.workload import Workload, WorkloadError
    from pytest_memaslap.stats.result import CommandResult, SlapResult


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_memaslap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
