"""Per-host summary of a snapshot: the fleet view of a shared folder.

A pure function of a :class:`~ttop.collect.snapshot.Snapshot`: runs are
grouped by the host that wrote them, and for each host ttop tells how many
runs it has, what they use, when it last gave a sign of life (timed on ttop's
own clock, see ``heartbeat_age``) and how far its clock is off.

Clock skew is estimated per run as ``updated_at - mtime``: the writer stamps
``updated_at`` from its own clock just before the file is replaced, and the
file system stamps ``mtime`` from this machine's (or the file server's)
clock. The host's figure is the median over its runs; a positive value means
the host's clock runs ahead. It is an estimate to within the write latency
(milliseconds locally, more over NFS).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..progress import RUNNING, number_or_none
from .snapshot import host_shares


@dataclass(frozen=True)
class HostSummary:
    host: str
    local: bool  # this machine (its runs' processes are looked up here)
    runs: int
    running: int  # effective status RUNNING
    stale: int  # RUNNING runs whose heartbeat stopped
    cpu_percent: Optional[float]  # sum over RUNNING runs measured now, % of one core
    rss_bytes: Optional[int]
    gpu_memory_bytes: Optional[int]
    heartbeat_age: Optional[float]  # youngest heartbeat of its runs, seconds on ttop's clock
    clock_skew: Optional[float]  # seconds the host's clock is ahead of this machine's (median over runs)
    silent: bool  # it has RUNNING runs and every one of them went stale


def _sum(values: List[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def host_summaries(snapshot: Any) -> List[HostSummary]:
    """One :class:`HostSummary` per host, sorted by host name (this machine
    first); a host that only runs other hosts' runs' ranks too. Host names
    are told apart without regard to case (as DNS does, and the ``host:``
    filter): ``node-1`` and ``NODE-1`` are one host, named by the first
    spelling in sort order."""
    groups: Dict[str, List[Any]] = {}
    spelled: Dict[str, str] = {}

    def key(host: str) -> str:
        k = host.lower()
        if host < spelled.get(k, "\U0010ffff"):
            spelled[k] = host
        return k

    # a stale run's resources are its last sample unless its processes
    # are seen alive here: a silent host's last figures are not what it
    # uses now, and do not add to its sums
    shares: Dict[str, List[Any]] = {}
    here: Dict[str, bool] = {}
    for run in getattr(snapshot, "runs", ()) or ():
        groups.setdefault(key(run.host or ""), []).append(run)
        if run.status == RUNNING and not (run.stale and run.alive is not True):
            for host, local, res in host_shares(run):
                host = key(host)
                shares.setdefault(host, []).append(res)
                here[host] = here.get(host, False) or local
    for host in shares:
        if host:  # a host that only runs ranks of other hosts' runs (not a rank of unknown host)
            groups.setdefault(host, [])
    out: List[HostSummary] = []
    for host, runs in groups.items():
        running = [r for r in runs if r.status == RUNNING]
        stale = [r for r in running if r.stale]
        # a RUNNING run's file was last written with its updated_at; an
        # ended run's may be a copy (cp, a restored archive: an old
        # updated_at, a new time). This machine's clock is the one it is
        # compared with: no skew, whatever files name it
        local = any(r.local for r in runs) or here.get(host, False)
        skews = []
        for r in running:
            updated = number_or_none(r.data.get("updated_at"))
            if updated is not None and r.mtime:
                skews.append(updated - r.mtime)
        ages = [r.heartbeat_age for r in runs if r.heartbeat_age is not None]
        now = shares.get(host, [])
        cpu = _sum([res.cpu_percent for res in now])
        rss = _sum([res.rss_bytes for res in now])
        gpu = _sum([res.gpu_memory_bytes for res in now])
        out.append(HostSummary(
            host=spelled[host],
            local=local,
            runs=len(runs),
            running=len(running),
            stale=len(stale),
            cpu_percent=cpu,
            rss_bytes=None if rss is None else int(rss),
            gpu_memory_bytes=None if gpu is None else int(gpu),
            heartbeat_age=min(ages) if ages else None,
            clock_skew=0.0 if local else statistics.median(skews) if skews else None,
            silent=bool(running) and len(stale) == len(running),
        ))
    out.sort(key=lambda h: (not h.local, h.host))
    return out
