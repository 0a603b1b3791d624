"""Memory that adds up: proportional set size (PSS) on a time budget.

The RSS of a process counts every page it maps, shared or not: a training
script whose data-loader workers were forked from it counts its copy-on-write
pages once per worker, so summing RSS over the tree shows several times the
memory really used. PSS divides each shared page among the processes that map
it, so the PSS of a tree adds up to what it holds.

PSS is read from ``/proc/<pid>/smaps_rollup`` (Linux 4.14+), which costs
~0.1-10 ms per process (the kernel walks the page tables). So it is read only
for trees of more than one process (a single process shares nothing with
itself worth correcting), at most every :data:`PSS_REFRESH_SECONDS` per
process, and for at most :data:`PSS_BUDGET_SECONDS` of reading per cycle. A
process not sampled yet counts its RSS. The figure is therefore up to about
``PSS_REFRESH_SECONDS`` old (more when many processes share the budget);
``ram_measure`` and ``ram_sampled_at`` say which measure and how old.

No psutil here: the writer (:mod:`ttop.monitor.resources`) and the collector
both use it.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, Hashable, Optional, Set, Tuple

#: A process's PSS is read again after this many seconds.
PSS_REFRESH_SECONDS = 10.0
#: Reading time allowed per cycle (at least one read always happens).
PSS_BUDGET_SECONDS = 0.004

_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def read_pss(pid: int) -> Optional[int]:
    """PSS of ``pid`` in bytes, or None (no smaps_rollup, gone, denied)."""
    try:
        fd = os.open("/proc/%d/smaps_rollup" % pid, _FLAGS)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    i = raw.find(b"\nPss:")
    if i < 0:
        return None
    try:
        return int(raw[i + 5:raw.index(b"kB", i)]) * 1024
    except ValueError:
        return None


class PssCache:
    """PSS per process (``key``: anything naming one process, e.g. PID and
    create time), refreshed on the budget described in the module doc.

    Call :meth:`begin` at the start of a cycle and :meth:`end` after it (it
    forgets processes not asked about during the cycle)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, refresh: float = PSS_REFRESH_SECONDS,
                 budget: float = PSS_BUDGET_SECONDS, reader: Callable[[int], Optional[int]] = read_pss) -> None:
        self.clock = clock
        self.refresh = refresh
        self.budget = budget
        self.reader = reader
        self._vals: Dict[Hashable, Tuple[Optional[int], float]] = {}
        self._used: Set[Hashable] = set()
        self._spent = 0.0
        self._reads = 0
        self.total_reads = 0

    def begin(self) -> None:
        self._spent = 0.0
        self._reads = 0

    def get(self, key: Hashable, pid: int) -> Optional[Tuple[int, float]]:
        """``(pss_bytes, read_at)`` (``read_at`` on :attr:`clock`), or None
        when it was never read (or cannot be)."""
        self._used.add(key)
        got = self._vals.get(key)
        now = self.clock()
        if (got is None or now - got[1] >= self.refresh) and (self._reads == 0 or self._spent < self.budget):
            t0 = time.perf_counter()
            val = self.reader(pid)
            self._spent += time.perf_counter() - t0
            self._reads += 1
            self.total_reads += 1
            if val is not None or got is None:
                got = (val, now)
                self._vals[key] = got
        if got is None or got[0] is None:
            return None
        return got[0], got[1]

    def end(self) -> None:
        if len(self._vals) != len(self._used):
            self._vals = {k: v for k, v in self._vals.items() if k in self._used}
        self._used = set()
