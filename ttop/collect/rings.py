"""A short per-run memory of resource use, kept while ttop runs.

The progress file holds only a run's latest resources. :class:`ResourceRings`
remembers the last :data:`RING_SIZE` samples of each run (CPU %, RAM, GPU
memory, GPU utilisation) from the snapshots it is fed, so the run detail
screen can chart them. It holds only runs present in the latest snapshot, and
at most :data:`RING_SIZE` samples each: its memory is bounded by the number of
runs. It reads nothing itself.
"""
from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Deque, Dict, List, NamedTuple, Optional, Set

#: Samples kept per run (one per collector cycle: 20 minutes at -i 2).
RING_SIZE = 600

if TYPE_CHECKING:
    class ResourceSample(NamedTuple):
        t: float  # when the snapshot was taken (Unix time)
        cpu_percent: Optional[float]
        rss_bytes: Optional[float]
        gpu_memory_bytes: Optional[float]
        gpu_util: Optional[float]  # mean utilisation of the GPUs the run's processes use
else:  # the same, without importing typing at the monitor's start
    ResourceSample = collections.namedtuple("ResourceSample", "t cpu_percent rss_bytes gpu_memory_bytes gpu_util")


def _gpu_util(run: Any, snapshot: Any) -> Optional[float]:
    idx: Set[int] = set()
    for p in run.processes:
        idx.update(p.gpu_indices)
    if not idx:
        return None
    vals = [g.utilization for g in (getattr(snapshot, "gpus", ()) or ())
            if g.index in idx and isinstance(g.utilization, (int, float))]
    return sum(vals) / len(vals) if vals else None


class ResourceRings:
    def __init__(self, size: int = RING_SIZE) -> None:
        self.size = size
        self._rings: Dict[str, Deque[ResourceSample]] = {}
        self._seq: Optional[int] = None

    def feed(self, snapshot: Any) -> None:
        """Add one sample per run of ``snapshot`` (once per snapshot)."""
        if snapshot is None or getattr(snapshot, "seq", None) == self._seq:
            return
        self._seq = getattr(snapshot, "seq", None)
        t = float(getattr(snapshot, "taken_at", 0.0) or 0.0)
        keep: Dict[str, Deque[ResourceSample]] = {}
        for run in getattr(snapshot, "runs", ()) or ():
            ring = self._rings.get(run.key)
            if ring is None:
                ring = collections.deque(maxlen=self.size)
            res = run.resources
            if res is not None and getattr(res, "source", "none") != "none":
                ring.append(ResourceSample(t, res.cpu_percent, res.rss_bytes, res.gpu_memory_bytes,
                                           _gpu_util(run, snapshot)))
            keep[run.key] = ring
        self._rings = keep

    def samples(self, key: str) -> List[ResourceSample]:
        ring = self._rings.get(key)
        return list(ring) if ring is not None else []
