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
process (when the caller passes the process's RSS, which it reads anyway:
at most every :data:`PSS_REFRESH_SECONDS` while the RSS moves by more than
1/:data:`PSS_RSS_STEP` since the last read, every :data:`PSS_STEADY_SECONDS`
while it holds still; when the caller also says when the process's tree last
moved, :meth:`PssCache.tree_moved`: as often while the tree moves, every
:data:`PSS_QUIET_SECONDS` while it holds still), and within a time budget: reading may take at most
:data:`PSS_SHARE` of the wall time that passed since the previous cycle
(2 %), and never more than :data:`PSS_BURST_SECONDS` in one cycle (at a
2 s interval that cap is what applies). Time not used is kept up to that
burst. A process not sampled yet counts its RSS. The figure is therefore up
to about ``PSS_REFRESH_SECONDS`` old while the process's memory grows or
shrinks, up to ``PSS_STEADY_SECONDS`` while its RSS holds still (only pages
changing hands between the processes of a tree, e.g. copy-on-write copies,
move PSS then), up to ``PSS_QUIET_SECONDS`` while its tree holds still (no
process faulting in pages: copies on write are page faults), more when many processes share the budget (reads take turns, oldest due first); ``ram_measure`` and
``ram_sampled_at`` say which measure and how old.

No psutil here: the writer (:mod:`ttop.monitor.resources`) and the collector
both use it.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, Hashable, Optional, Set, Tuple

#: A process's PSS is read again after this many seconds.
PSS_REFRESH_SECONDS = 10.0
#: ... while the process's RSS stays within 1/PSS_RSS_STEP of its RSS at the
#: last read (given by the caller), after this many seconds.
PSS_STEADY_SECONDS = 60.0
#: An RSS change larger than RSS/PSS_RSS_STEP since the last read makes a
#: PSS read due after PSS_REFRESH_SECONDS.
PSS_RSS_STEP = 32
#: ... while, besides, the process's tree held still (the same processes,
#: none of them faulting in more than 1/PSS_RSS_STEP of the tree's RSS in
#: pages, the tree's RSS within that step; see :meth:`PssCache.tree_moved`),
#: after this many seconds.
PSS_QUIET_SECONDS = 300.0
#: Share of the wall time between cycles that reading PSS may take.
PSS_SHARE = 0.02
#: Most reading time saved up for one cycle.
PSS_BURST_SECONDS = 0.02

_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
try:
    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    _PAGE = 4096


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
                 share: float = PSS_SHARE, burst: float = PSS_BURST_SECONDS,
                 reader: Callable[[int], Optional[int]] = read_pss,
                 timer: Callable[[], float] = time.perf_counter, steady: float = PSS_STEADY_SECONDS,
                 quiet: float = PSS_QUIET_SECONDS) -> None:
        self.clock = clock
        self.refresh = refresh
        self.steady = max(refresh, steady)
        self.quiet = max(self.steady, quiet)
        #: tree -> (its processes, their page faults, their RSS, when it last moved)
        self._trees: Dict[Hashable, Tuple[frozenset, int, int, float]] = {}
        self._trees_used: Set[Hashable] = set()
        self.share = share
        self.burst = burst
        self.reader = reader
        self.timer = timer
        self._vals: Dict[Hashable, Tuple[Optional[int], float, Optional[int]]] = {}  # (pss, read_at, rss then)
        self._used: Set[Hashable] = set()
        #: keys due but not read in the cycle so far / the last cycle (no
        #: budget left, or not their turn) -> when last read (-inf: never)
        self._waiting: Dict[Hashable, float] = {}
        self._waited: Dict[Hashable, float] = {}
        #: the oldest read among the keys the last cycle left waiting: a due
        #: key read more recently than that waits its turn
        self._turn: Optional[float] = None
        self._credit = burst  # seconds of reading allowed now
        self._last: Optional[float] = None
        self.total_reads = 0

    def begin(self) -> None:
        now = self.timer()
        if self._last is not None:
            self._credit = min(self.burst, self._credit + self.share * max(0.0, now - self._last))
        self._last = now
        self._waited, self._waiting = self._waiting, {}
        self._turn = min(self._waited.values()) if self._waited else None

    def tree_moved(self, tree: Hashable, keys: frozenset, faults: int, rss: int) -> float:
        """When (on :attr:`clock`) the process tree ``tree`` last moved:
        its processes (``keys``) changed, they faulted in more than
        1/:data:`PSS_RSS_STEP` of their RSS in pages since, or their RSS
        (``rss``, summed) moved by more than that step. ``faults``: their
        page faults so far, summed. Pages change hands between the
        processes of a tree (copy on write, a process that maps, unmaps or
        ends) only so; for :meth:`get`'s ``moved_at``."""
        self._trees_used.add(tree)
        now = self.clock()
        t = self._trees.get(tree)
        if t is not None and t[0] == keys and (faults - t[1]) * _PAGE * PSS_RSS_STEP <= t[2] \
                and abs(rss - t[2]) * PSS_RSS_STEP <= t[2]:
            return t[3]
        self._trees[tree] = (keys, faults, rss, now)
        return now

    def get(self, key: Hashable, pid: int, rss: Optional[int] = None,
            moved_at: Optional[float] = None) -> Optional[Tuple[int, float]]:
        """``(pss_bytes, read_at)`` (``read_at`` on :attr:`clock`), or None
        when it was never read (or cannot be). ``rss``: the process's RSS
        now, if known (a steady RSS lets the last figure stand longer);
        ``moved_at``: when the process's tree last moved, if known
        (:meth:`tree_moved`; a tree holding still lets it stand longer
        still)."""
        self._used.add(key)
        got = self._vals.get(key)
        now = self.clock()
        if got is None:
            due = True
        else:
            age = now - got[1]
            if age < self.refresh:
                due = False
            elif rss is None or got[2] is None or age >= (self.steady if moved_at is None else self.quiet):
                due = True
            else:
                due = abs(rss - got[2]) * PSS_RSS_STEP > got[2] or (moved_at is not None and got[1] < moved_at)
        if due:
            last = got[1] if got is not None else float("-inf")
            if self._credit <= 1e-6 or (self._turn is not None and last > self._turn):
                # no budget, or an older figure is waiting for its read:
                # oldest due first, so no process is left unread for good
                self._waiting[key] = last
                due = False
            elif key in self._waited:
                self._turn = None  # the oldest's turn came: the order is free again
        if due:
            t0 = self.timer()
            val = self.reader(pid)
            self._credit -= self.timer() - t0
            self.total_reads += 1
            if val is not None or got is None:
                got = (val, now, rss)
                self._vals[key] = got
        if got is None or got[0] is None:
            return None
        return got[0], got[1]

    def end(self) -> None:
        if len(self._vals) != len(self._used):
            self._vals = {k: v for k, v in self._vals.items() if k in self._used}
        self._used = set()
        if len(self._trees) != len(self._trees_used):
            self._trees = {k: v for k, v in self._trees.items() if k in self._trees_used}
        self._trees_used = set()
