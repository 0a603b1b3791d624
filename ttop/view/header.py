"""The header: the host's CPU and RAM, one line per GPU / TPU (utilisation and
memory as bars), a short reason when devices cannot be read, and the budgets
in use (the runs' summed usage as a share of ``--max-cpus/--max-ram/--max-gpu``).
"""
from __future__ import annotations

import math

from ..collect.snapshot import host_shares
from . import fmt
from . import health as H
from . import roles as R
from .state import ViewState
from .text import Line, Segment, clean, clip, pad_line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional


def bar(frac: Optional[float], cells: int, ascii: bool = False) -> List[Segment]:
    """A bar of ``cells`` cells filled to ``frac`` (0..1; None/NaN: empty)."""
    if cells <= 0:
        return []
    if frac is None or not isinstance(frac, (int, float)) or math.isnan(frac):
        frac = 0.0
    frac = max(0.0, min(1.0, float(frac)))
    n = int(round(frac * cells))
    fill, empty = ("#", ".") if ascii else ("\u2588", "\u2591")
    role = R.BAR_LOW if frac < 0.6 else (R.BAR_MID if frac < 0.9 else R.BAR_HIGH)
    out: List[Segment] = []
    if n:
        out.append((fill * n, role))
    if cells - n:
        out.append((empty * (cells - n), R.BAR_EMPTY))
    return out


def _frac(used: Any, total: Any) -> Optional[float]:
    try:
        if used is None or not total:
            return None
        return float(used) / float(total)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _meter(label: str, frac: Optional[float], text: str, cells: int, ascii: bool) -> List[Segment]:
    segs: List[Segment] = [(label, R.LABEL), ("[", R.HEADER)]
    segs += bar(frac, cells, ascii)
    segs += [("] ", R.HEADER), (text, R.HEADER)]
    return segs


def _bar_cells(width: int) -> int:
    return max(4, min(20, (width - 50) // 3))


def _pad(segs: List[Segment], width: int) -> Line:
    return pad_line(segs, width, R.HEADER)


def host_line(snapshot: Any, state: ViewState, width: int) -> Line:
    h = snapshot.host if snapshot is not None else None
    cells = _bar_cells(width)
    segs: List[Segment] = []
    name = clean(h.hostname) if h is not None and h.hostname else "?"
    segs.append((clip(name, 20, "..." if state.ascii else "\u2026") + "  ", R.LABEL))
    segs += H.header_segments(snapshot, state.alerts, state.ascii)  # runs needing attention first
    if h is not None:
        cpu = h.cpu_percent
        segs += _meter("CPU ", None if cpu is None else cpu / 100.0, "%s of %d" % (fmt.percent(cpu), h.cpu_count), cells, state.ascii)
        segs.append(("  ", R.HEADER))
        segs += _meter("RAM ", _frac(h.mem_used, h.mem_total),
                       "%s/%s" % (fmt.size(h.mem_used), fmt.size(h.mem_total)), cells, state.ascii)
        if h.load_avg:
            segs.append(("  load %.2f" % h.load_avg[0], R.HEADER))
    else:
        segs.append(("waiting for the first snapshot", R.DIM))
    return _pad(segs, width)


def gpu_line(g: Any, width: int, ascii: bool) -> Line:
    cells = _bar_cells(width)
    name = clean(g.name) if g.name else ""
    segs: List[Segment] = [("GPU%d " % g.index, R.LABEL), (clip(name, 18, "..." if ascii else "\u2026"), R.HEADER), (" ", R.HEADER)]
    u = g.utilization
    segs += _meter("util ", None if u is None else u / 100.0, fmt.percent(u), cells, ascii)
    segs.append(("  ", R.HEADER))
    segs += _meter("mem ", _frac(g.memory_used, g.memory_total), "%s/%s" % (fmt.size(g.memory_used), fmt.size(g.memory_total)), cells, ascii)
    if g.temperature is not None:
        segs.append(("  %dC" % g.temperature, R.HEADER))
    if g.power_mw is not None:
        segs.append(("  %dW" % (g.power_mw // 1000), R.HEADER))
    return _pad(segs, width)


def tpu_line(t: Any, width: int, ascii: bool) -> Line:
    cells = _bar_cells(width)
    segs: List[Segment] = [("TPU%d " % t.index, R.LABEL)]
    d = t.duty_cycle
    segs += _meter("duty ", None if d is None else d / 100.0, fmt.percent(d), cells, ascii)
    segs.append(("  ", R.HEADER))
    segs += _meter("mem ", _frac(t.memory_used, t.memory_total), "%s/%s" % (fmt.size(t.memory_used), fmt.size(t.memory_total)), cells, ascii)
    return _pad(segs, width)


def budget_line(snapshot: Any, width: int) -> Optional[Line]:
    b = snapshot.budgets if snapshot is not None else None
    if b is None:
        return None
    cpu = ram = gpu = 0.0
    for r in snapshot.runs:
        if r.status != "RUNNING":
            continue
        for _host, local, res in host_shares(r):
            if not local:
                continue  # budgets are this machine's: runs (and ranks) on other hosts do not use them
            cpu += res.cpu_percent if _finite(res.cpu_percent) else 0.0
            ram += res.rss_bytes if _finite(res.rss_bytes) else 0
            gpu += res.gpu_memory_bytes if _finite(res.gpu_memory_bytes) else 0
    segs: List[Segment] = [("Budget  ", R.LABEL)]
    cores = cpu / 100.0
    # a file's own sample can say anything (1e308 %): capped like the table's CPU cell
    shown = "%.1f" % cores if cores < 1e5 else ">99999"
    segs.append(("CPU %s/%g cores (%s)" % (shown, b.cpus, fmt.percent(100.0 * cores / b.cpus if b.cpus else None)), R.HEADER))
    segs.append(("  RAM %s/%s (%s)" % (fmt.size(ram), fmt.size(b.ram_bytes), fmt.percent(100.0 * ram / b.ram_bytes if b.ram_bytes else None)), R.HEADER))
    if b.gpu_bytes:
        segs.append(("  GPU %s/%s (%s)" % (fmt.size(gpu), fmt.size(b.gpu_bytes), fmt.percent(100.0 * gpu / b.gpu_bytes)), R.HEADER))
    segs += H.cost_segments(snapshot)
    return _pad(segs, width)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def header_lines(snapshot: Any, state: ViewState, width: int, max_lines: int) -> List[Line]:
    """At most ``max_lines`` header lines (host first; devices that do not fit
    are summarised as ``+N more``)."""
    if max_lines <= 0:
        return []
    lines: List[Line] = [host_line(snapshot, state, width)]
    if snapshot is None:
        return lines
    extra: List[Line] = []
    bl = budget_line(snapshot, width)
    dev: List[Line] = [gpu_line(g, width, state.ascii) for g in snapshot.gpus]
    dev += [tpu_line(t, width, state.ascii) for t in snapshot.tpus]
    errs = []
    if snapshot.gpu_error and not snapshot.gpus:
        errs.append("GPU: " + clean(snapshot.gpu_error))
    if snapshot.tpu_error and not snapshot.tpus:
        errs.append("TPU: " + clean(snapshot.tpu_error))
    room = max_lines - 1 - (1 if bl is not None else 0)
    if len(dev) > room:
        keep = max(0, room - 1)
        hidden = len(dev) - keep
        dev = dev[:keep]
        if room >= 1:
            dev.append(_pad([("+%d more devices (widen or heighten the terminal)" % hidden, R.DIM)], width))
    extra += dev
    if errs and len(extra) < room:
        extra.append(_pad([("  ".join(errs), R.DIM)], width))
    if bl is not None and max_lines >= 2:
        extra.append(bl)
    return (lines + extra)[:max_lines]
