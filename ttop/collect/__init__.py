"""The collector: folder scan, process trees, GPU (NVML) and TPU (libtpuinfo),
published as immutable :mod:`snapshots <ttop.collect.snapshot>`.

Public API (see ``collector.py``)::

    c = Collector(folder, interval=2.0, budgets=None)   # budgets: Budgets or None (machine totals)
    snap = c.collect()        # one synchronous cycle -> Snapshot (used by --once and tests)
    c.start()                 # background thread publishing every `interval` s
    c.latest                  # newest Snapshot or None; never blocks
    c.add_listener(fn)        # fn() called (from the collector thread) after each publish
    c.refresh_now()           # wake the thread for a cycle now
    c.stop(timeout=5)         # stop and join
"""
from __future__ import annotations

from .snapshot import (
    Budgets,
    GpuDevice,
    HostInfo,
    ProcInfo,
    RankSnapshot,
    RunResources,
    RunSnapshot,
    SkippedFile,
    Snapshot,
    ThreadInfo,
    TpuChip,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Budgets",
    "Collector",
    "GpuDevice",
    "HostInfo",
    "ProcInfo",
    "RankSnapshot",
    "RunResources",
    "RunSnapshot",
    "SkippedFile",
    "Snapshot",
    "ThreadInfo",
    "TpuChip",
]


def __getattr__(name: str) -> Any:
    if name == "Collector":
        from .collector import Collector

        return Collector
    raise AttributeError(name)
