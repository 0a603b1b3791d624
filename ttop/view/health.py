"""Health verdicts and cost on screen: the table's Health and Cost cells and
the header's counts and cost total.

Pure: a run's ``health`` / ``health_reason`` (set by the collector, see
``ttop.collect.health``) -> text and a colour role. The symbol tells the
level apart without colour: ``✓`` OK, ``!`` WARN, ``✖`` CRIT (ASCII:
``ok``, ``!``, ``X``).
"""
from __future__ import annotations

from . import fmt
from . import roles as R
from .text import Segment, clean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional

SYMBOLS = {"OK": "\u2713", "WARN": "!", "CRIT": "\u2716"}
ASCII_SYMBOLS = {"OK": "ok", "WARN": "!", "CRIT": "X"}
ROLES = {"OK": R.HEALTH_OK, "WARN": R.HEALTH_WARN, "CRIT": R.HEALTH_CRIT}
RANK = {"OK": 0, "WARN": 1, "CRIT": 2}


def health_text(run: Any, ascii: bool = False) -> str:
    """``✖ loss is NaN``, ``! stalled: ...``, ``✓``; ``-`` without a verdict."""
    level = run.health
    if level not in SYMBOLS:
        return fmt.NA
    sym = (ASCII_SYMBOLS if ascii else SYMBOLS)[level]
    reason = run.health_reason
    return "%s %s" % (sym, clean(reason)) if reason else sym


def health_role(run: Any) -> Optional[str]:
    return ROLES.get(str(run.health))


def health_rank(run: Any) -> Optional[int]:
    """What a sort compares: CRIT 2, WARN 1, OK 0, None without a verdict."""
    return RANK.get(str(run.health))


def health_counts(snapshot: Any) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for r in getattr(snapshot, "runs", ()) or ():
        level = getattr(r, "health", None)
        if level is not None:
            out[level] = out.get(level, 0) + 1
    return out


def header_segments(snapshot: Any, alerts: int = 0, ascii: bool = False) -> List[Segment]:
    """``✖2 !1`` (runs at CRIT / WARN) and ``3 alerts`` for the header; empty
    while every run is OK and nothing was alerted."""
    c = health_counts(snapshot)
    syms = ASCII_SYMBOLS if ascii else SYMBOLS
    segs: List[Segment] = []
    for level in ("CRIT", "WARN"):
        n = c.get(level, 0)
        if n:
            segs.append(("%s%d %s" % (syms[level], n, level), ROLES[level]))
            segs.append(("  ", R.HEADER))
    if alerts:
        segs.append(("%d alert%s" % (alerts, "" if alerts == 1 else "s"), R.NOTICE))
        segs.append(("  ", R.HEADER))
    return segs


def money(x: Any) -> str:
    """``0.42``, ``12.50``, ``1234``, ``1.23e+12`` from a billion on (a
    run reporting a run time of 1e300 s must not make a 300-digit cell);
    ``-`` when unknown."""
    if not isinstance(x, (int, float)) or isinstance(x, bool) or x != x:
        return fmt.NA
    if abs(x) >= 1e9:
        return "%.3g" % x
    return "%.0f" % x if abs(x) >= 1000 else "%.2f" % x


def cost_text(run: Any) -> str:
    """``so far/projected`` (``12.50/40.00``), ``12.50`` without a projection."""
    c = run.cost
    if c is None:
        return fmt.NA
    p = run.cost_projected
    return money(c) if p is None or getattr(run, "status", None) != "RUNNING" else "%s/%s" % (money(c), money(p))


def cost_totals(snapshot: Any) -> Optional[tuple]:
    """(sum so far, sum projected or None) over runs with a cost, or None."""
    total, seen = 0.0, False
    proj: Optional[float] = 0.0
    for r in getattr(snapshot, "runs", ()) or ():
        c = getattr(r, "cost", None)
        if c is None:
            continue
        seen = True
        total += c
        p = getattr(r, "cost_projected", None)
        proj = None if p is None or proj is None else proj + p
    return (total, proj) if seen else None


def cost_segments(snapshot: Any) -> List[Segment]:
    """``  Cost 12.50 -> 40.00`` for the header's budget line (empty without prices)."""
    t = cost_totals(snapshot)
    if t is None:
        return []
    text = "  Cost %s" % money(t[0])
    if t[1] is not None:
        text += " (projected %s)" % money(t[1])
    return [(text, R.HEADER)]
