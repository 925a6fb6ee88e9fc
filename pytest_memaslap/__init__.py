"""pytest-memaslap: memcached load tests as ordinary pytest tests."""

from __future__ import annotations

__version__ = "0.1.0"

from .engine import ShardPlan, SlapRunError, Target, run_shard  # noqa: E402
from .result import CommandResult, SlapResult  # noqa: E402
from .server import MemcachedServer, ServerError  # noqa: E402
from .thresholds import ThresholdError  # noqa: E402
from .workload import Workload, WorkloadError  # noqa: E402

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
