"""A run's processes summed into its resources: :func:`tree_pss` (shared
pages counted once, on the budget of :mod:`ttop.pss`) and :func:`totals`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from .snapshot import ProcInfo, RunResources

if TYPE_CHECKING:
    from .procs import ProcessTable


def tree_pss(table: "ProcessTable", procs: List[ProcInfo], tree: Any = None
             ) -> Optional[Dict[int, Tuple[int, float]]]:
    """``{pid: (pss_bytes, read_at)}`` for a tree of more than one process
    (None for a single process: its RSS is what it holds). ``read_at`` is on
    the table's clock. Read on the budget of :mod:`ttop.pss`. ``tree``: what
    names this set of processes from cycle to cycle (default: its first
    process; another set led by the same process needs another name)."""
    live = [p for p in procs if p.rss_bytes is not None]  # zombies and unreadable ones left out
    if len(procs) < 2 or len(live) < 2:
        return None
    cache = table.pss
    # the tree's page faults (the table's stat rows, read this cycle): a tree
    # that held still lets its figures stand longer (ttop.pss); one pass
    # over the processes for the faults, the RSS and the keys
    moved_at = None
    rows = table.rows
    keys = [(p.pid, p.create_time) for p in live]
    faults = rss = 0
    for p in live:
        row = rows.get(p.pid)
        f = row[7] if row is not None else None
        if f is None:
            break
        faults += f
        rss += p.rss_bytes or 0
    else:
        moved_at = cache.tree_moved((procs[0].pid, procs[0].create_time) if tree is None else tree,
                                    frozenset(keys), faults, rss)
    get = cache.get
    out: Dict[int, Tuple[int, float]] = {}
    for p, key in zip(live, keys):
        got = get(key, p.pid, p.rss_bytes, moved_at)
        if got is not None:
            out[p.pid] = got
    return out


def totals(procs: List[ProcInfo], sampled_at: float, pss: Optional[Dict[int, Tuple[int, float]]] = None,
           clock_now: Optional[float] = None) -> RunResources:
    """Sum a run's processes into :class:`RunResources` (``source="local"``).
    A total is None only when no process has that figure.

    ``rss_bytes`` counts shared pages once: with ``pss`` (see
    :func:`tree_pss`) each process counts its PSS where it was read and its
    RSS otherwise; ``ram_measure`` says which ("pss", "pss+rss", "rss") and
    ``ram_sampled_at`` (wall clock) when the oldest PSS figure used was read
    (``clock_now``: the PSS clock's reading at ``sampled_at``)."""

    # one pass over the processes for every sum (a total stays None while
    # no process has its figure)
    cpu = rss = gpu = tpu = nthreads = None
    ram = have = with_rss = 0
    oldest = None
    for p in procs:
        v = p.cpu_percent
        if v is not None:
            cpu = v if cpu is None else cpu + v
        v = p.rss_bytes
        if v is not None:
            rss = v if rss is None else rss + v
            with_rss += 1
        v = p.gpu_memory_bytes
        if v is not None:
            gpu = v if gpu is None else gpu + v
        v = p.tpu_memory_bytes
        if v is not None:
            tpu = v if tpu is None else tpu + v
        v = p.num_threads
        if v is not None:
            nthreads = v if nthreads is None else nthreads + v
        if pss:
            got = pss.get(p.pid)
            if got is not None:
                ram += got[0]
                have += 1
                oldest = got[1] if oldest is None or got[1] < oldest else oldest
            elif p.rss_bytes is not None:
                ram += p.rss_bytes
    measure = "rss"
    ram_at = sampled_at
    rss_total: Optional[int] = rss
    if pss:
        rss_total = ram
        measure = "pss" if have == with_rss else "pss+rss"
        if oldest is not None and clock_now is not None:
            ram_at = sampled_at - max(0.0, clock_now - oldest)
    # positional, in the order of RunResources' fields (a call by keyword costs more)
    return RunResources(cpu, rss_total, gpu, tpu, len(procs), nthreads, sampled_at, "local",
                        measure if rss_total is not None else None, ram_at if rss_total is not None else None)
