"""Rank rows of a multi-rank job (``[R1]`` under its run when expanded with
``t``, and under every such run in ``--once``): pure text from a
:class:`~ttop.collect.snapshot.RankSnapshot`."""
from __future__ import annotations

from . import fmt
from . import roles as R
from .text import clean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def rank_state(rank: Any) -> str:
    """``RUNNING``/``FAILED``/... as the rank's file says; ``gone`` for a
    RUNNING rank whose process is not there; ``stale`` for one whose file
    stopped changing; ``not own`` for a process that is not the run
    owner's."""
    if rank.ownership_note:
        return "not own"
    if rank.alive is False and rank.status == "RUNNING":
        return "gone"
    if rank.stale:
        return "stale"
    return clean(rank.status)


def rank_name(rank: Any) -> str:
    """``  [R1] rank 1/2`` (``@host`` for a rank on another host)."""
    world = "/%d" % rank.world_size if rank.world_size else ""
    where = "" if rank.local else " @%s" % clean(rank.host or "?")
    return "  [R%d] rank %d%s%s" % (rank.rank, rank.rank, world, where)


def rank_cell(key: str, rank: Any) -> str:
    """The text of column ``key`` on a rank row ("" for run-only columns)."""
    res = rank.resources
    if key == "host":
        return clean(rank.host or "")
    if key == "status":
        return rank_state(rank)
    if key == "cpu":
        return fmt.percent(res.cpu_percent)
    if key == "ram":
        return fmt.size(res.rss_bytes)
    if key == "gpu":
        return fmt.size(res.gpu_memory_bytes)
    if key == "procs":
        return fmt.count(res.num_procs)
    if key == "threads":
        return fmt.count(res.num_threads)
    if key == "pid":
        return fmt.count(rank.pid)
    return ""


def rank_role(rank: Any) -> str:
    if rank.status in ("FAILED", "KILLED") or (rank.alive is False and rank.status == "RUNNING"):
        return R.FAILED
    return R.PROC


def rank_unsignalable(rank: Any) -> str:
    """Why ``k`` cannot signal a rank's process from here."""
    if not rank.local:
        return "rank %d runs on %s: ttop cannot signal it from this host" % (
            rank.rank, clean(rank.host or "another host"))
    if rank.ownership_note:
        return "rank %d: %s" % (rank.rank, clean(rank.ownership_note))
    return "rank %d has no live process here" % rank.rank
