"""Per-column statistics of a chart's series (pure; used by
:mod:`ttop.view.chart`).

Every column of a plot covers a range of x; it draws the minimum and maximum
of the points in that range (a spike is never hidden) and is marked when one
of them is a NaN or an infinity.

A long series is summarised once in :class:`Blocks`, the finite min / max of
each run of :attr:`Blocks.size` points, extended as the series grows. With
many points per column, column bounds are moved to block boundaries (an
error of less than 1/8 of a column) and each column is the min / max of its
blocks: a render costs about (columns x blocks per column), whatever the
number of points. A series that does not bring its own index
(``Series.blocks``) and has at least :data:`AUTO_BLOCKS` points gets one
here, kept for the :data:`AUTO_KEEP` series drawn last and extended when the
same list has grown (series are append-only: points already drawn do not
change).
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Tuple

INF = math.inf
#: Series of at least this many points get a block index even without one.
AUTO_BLOCKS = 8192
#: How many such indexes are kept (the charts of one screen, and some).
AUTO_KEEP = 32


class Col:
    """One column: finite ``lo`` / ``hi`` (NaN: none), the ``last`` and
    ``first`` values (for joining columns across empty ones), ``bad``: a NaN /
    inf in it."""

    __slots__ = ("lo", "hi", "last", "bad", "first")

    def __init__(self, lo: float, hi: float, last: float, bad: bool, first: float = math.nan) -> None:
        self.lo = lo
        self.hi = hi
        self.last = last
        self.bad = bad
        self.first = first


def finite(v: object) -> bool:
    try:
        return v - v == 0  # type: ignore[operator]  # False for NaN / inf, TypeError for None
    except TypeError:
        return False


def fin(v: object) -> float:
    try:
        return v if v - v == 0 else math.nan  # type: ignore[operator,return-value]
    except TypeError:
        return math.nan


def _all_finite(*spans: Sequence[Any]) -> bool:
    try:
        t = 0.0
        for sp in spans:
            t += sum(sp)
        return t - t == 0
    except TypeError:  # a None in there
        return False


class Blocks:
    """Min and max of each run of :attr:`size` points of a long series.
    Built once with :func:`blocks_of` and extended with :meth:`extend` as the
    series grows; only complete blocks are summarised. ``lo`` / ``hi`` hold
    the finite min / max of each block (``inf`` / ``-inf`` when it has none,
    so that plain ``min`` / ``max`` over blocks are right); ``bad`` the sorted
    indices of blocks holding a NaN or an infinity."""

    __slots__ = ("size", "lo", "hi", "bad", "n")

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.lo: List[float] = []
        self.hi: List[float] = []
        self.bad: List[int] = []
        self.n = 0  # points summarised

    def extend(self, y: Sequence[float], lo: Optional[Sequence[float]] = None,
               hi: Optional[Sequence[float]] = None) -> "Blocks":
        """Summarise the complete blocks of ``y`` not yet summarised."""
        b = self.size
        total = (len(y) // b) * b
        i0 = self.n
        if i0 >= total:
            return self
        ls = (y if lo is None else lo)[i0:total]
        hs = ls if hi is None and lo is None else (y if hi is None else hi)[i0:total]
        span = range(0, total - i0, b)
        if _all_finite(ls) and (hs is ls or _all_finite(hs)):  # the common case: C-level min / max
            self.lo.extend([min(ls[i:i + b]) for i in span])
            self.hi.extend([max(hs[i:i + b]) for i in span])
        else:  # the same for the blocks whose values are all finite, the long way for the others
            first = len(self.lo)
            try:
                sums = [sum(ls[i:i + b]) for i in span]
                if hs is not ls:
                    sums = [a + c for a, c in zip(sums, [sum(hs[i:i + b]) for i in span])]
                odd = [k for k, t in enumerate(sums) if not t - t == 0]
            except TypeError:  # a None in there: every block the long way
                odd = list(range(len(span)))
            los = [min(ls[i:i + b]) for i in span] if len(odd) < len(span) else [INF] * len(span)
            his = [max(hs[i:i + b]) for i in span] if len(odd) < len(span) else [-INF] * len(span)
            for k in odd:
                i = span[k]
                c = column_stats(ls, None if hs is ls else hs, (), i, i + b, lohi=hs is not ls)
                assert c is not None
                if c.bad:
                    self.bad.append(first + k)
                los[k] = c.lo if c.lo == c.lo else INF
                his[k] = c.hi if c.hi == c.hi else -INF
            self.lo.extend(los)
            self.hi.extend(his)
        self.n = total
        return self


def blocks_of(y: Sequence[float], lo: Optional[Sequence[float]] = None,
              hi: Optional[Sequence[float]] = None, size: int = 32) -> Blocks:
    return Blocks(size).extend(y, lo, hi)


_auto: "OrderedDict[Tuple[int, int, int], Tuple[Any, Any, Any, Blocks]]" = OrderedDict()


def blocks_for(y: Sequence[float], lo: Optional[Sequence[float]], hi: Optional[Sequence[float]],
               own: Optional[Blocks]) -> Optional[Blocks]:
    """The series' own block index, else one kept here for a long series
    (None for a short one)."""
    if own is not None:
        return own
    if len(y) < AUTO_BLOCKS:
        return None
    key = (id(y), id(lo), id(hi))
    hit = _auto.get(key)
    # the entry holds the lists themselves, so their ids cannot be reused
    if hit is not None and hit[0] is y and hit[1] is lo and hit[2] is hi and hit[3].n <= len(y):
        _auto.move_to_end(key)
        return hit[3].extend(y, lo, hi)
    bl = blocks_of(y, lo, hi)
    _auto[key] = (y, lo, hi, bl)
    while len(_auto) > AUTO_KEEP:
        _auto.popitem(last=False)
    return bl


def column_stats(ys: Sequence[float], his: Optional[Sequence[float]], flagged: Sequence[int], i0: int, i1: int,
                 los: Optional[Sequence[float]] = None, lohi: bool = False) -> Optional[Col]:
    """Stats of points ``[i0, i1)``: ``ys`` the values (or the per-point
    minima when ``lohi``), ``los`` / ``his`` per-point min / max of
    downsampled buckets, ``flagged`` sorted indices of buckets that held a
    NaN / inf."""
    if i1 <= i0:
        return None
    seg = ys[i0:i1]
    if lohi:
        lseg = seg
        hseg = seg if his is None else his[i0:i1]
    else:
        lseg = seg if los is None else los[i0:i1]
        hseg = seg if his is None else his[i0:i1]
    bad = False
    if flagged:
        k = bisect_left(flagged, i0)
        bad = k < len(flagged) and flagged[k] < i1
    if _all_finite(lseg) and (hseg is lseg or _all_finite(hseg)):
        lo, hi = min(lseg), max(hseg)
    else:
        fl = [v for v in lseg if finite(v)]
        fh = fl if hseg is lseg else [v for v in hseg if finite(v)]
        if len(fl) != len(lseg) or len(fh) != len(hseg):
            bad = True
        lo = min(fl) if fl else math.nan
        hi = max(fh) if fh else math.nan
    return Col(lo, hi, fin(seg[-1]), bad, fin(seg[0]))


def bounds_of(start: int, end: int, xs: Optional[Sequence[float]], x0: float, x1: float, ncols: int) -> List[int]:
    """Index bounds (``ncols + 1`` of them) of the points of ``[start, end)``
    whose x falls in each of ``ncols`` equal columns of ``[x0, x1]``."""
    span = x1 - x0
    if span <= 0:
        return [start] + [end] * ncols
    out = [start]
    if span * ncols == math.inf:  # x values near the ends of the float range: x0 + span * c overflows
        def at(c: int) -> float:
            return x0 * (1 - c / ncols) + x1 * (c / ncols)
    else:
        def at(c: int) -> float:
            return x0 + span * c / ncols
    if xs is None:
        for c in range(1, ncols):
            b = int(math.ceil(at(c) - 1e-9))
            out.append(max(start, min(end, b)))
    else:
        int_x = type(xs[start]) is int
        lo = start
        for c in range(1, ncols):
            xv = at(c)
            if int_x:  # ints compare faster with an int
                xv = math.ceil(xv - 1e-9)
            lo = bisect_left(xs, xv, lo, end)  # bounds only grow: search from the last one
            out.append(lo)
    out.append(end)
    return out


def bins(y: Sequence[float], lo: Optional[Sequence[float]], hi: Optional[Sequence[float]], flagged: Sequence[int],
         own: Optional[Blocks], start: int, end: int, xs: Optional[Sequence[float]], x0: float, x1: float,
         ncols: int, log: bool = False) -> List[Optional[Col]]:
    """Per plot column, the stats of the points of ``y[start:end]`` whose x
    falls in it (None: no point)."""
    out: List[Optional[Col]] = [None] * ncols
    if end <= start or ncols <= 0:
        return out
    bounds = bounds_of(start, end, xs, x0, x1, ncols)
    bl = blocks_for(y, lo, hi, own) if end - start >= 8 * 32 * ncols else None
    if bl is not None and end - start >= 8 * bl.size * ncols and len(bl.lo) * bl.size > start:
        return _block_bins(y, lo, hi, flagged, bl, bounds, ncols)
    for c in range(ncols):
        out[c] = column_stats(y, hi, flagged, bounds[c], bounds[c + 1], los=lo)
    interpolate(out, log)
    return out


def _block_bins(y: Sequence[float], lo: Optional[Sequence[float]], hi: Optional[Sequence[float]],
                flagged: Sequence[int], bl: Blocks, bounds: List[int], ncols: int) -> List[Optional[Col]]:
    """Many points per column: columns start on block boundaries so that each
    is whole blocks (min / max of the blocks' min / max) plus, at the ends of
    the window, raw points."""
    b = bl.size
    nb = len(bl.lo)
    start, end = bounds[0], bounds[-1]
    bounds = [start] + [max(start, min(end, (x + b // 2) // b * b)) for x in bounds[1:-1]] + [end]
    js = [min(-(-i // b), nb) for i in bounds]  # first whole block at or after each bound
    je = [min(i // b, nb) for i in bounds]  # blocks before each bound
    blo, bhi = bl.lo, bl.hi
    los = [min(blo[js[c]:je[c + 1]]) if je[c + 1] > js[c] else INF for c in range(ncols)]
    his = [max(bhi[js[c]:je[c + 1]]) if je[c + 1] > js[c] else -INF for c in range(ncols)]
    bad = [False] * ncols
    # block starts of the columns, to place bad blocks and flagged points
    for j in bl.bad:
        c = bisect_right(js, j) - 1
        if 0 <= c < ncols and j < je[c + 1]:
            bad[c] = True
    for i in flagged:
        c = bisect_right(bounds, i) - 1
        if 0 <= c < ncols and i < bounds[c + 1]:
            bad[c] = True
    out: List[Optional[Col]] = []
    nan = math.nan
    for c in range(ncols):
        i0, i1 = bounds[c], bounds[c + 1]
        if i1 <= i0:
            out.append(None)
            continue
        cl, ch, cb = los[c], his[c], bad[c]
        whole0, whole1 = js[c] * b, je[c + 1] * b
        if whole1 <= whole0:  # no whole block: raw points only
            whole0 = whole1 = i1
        if i0 < whole0 or whole1 < i1:  # raw points at the edges of the window
            for r0, r1 in ((i0, whole0), (whole1, i1)):
                if r1 > r0:
                    part = column_stats(y, hi, flagged, r0, r1, los=lo)
                    assert part is not None
                    cb = cb or part.bad
                    if part.lo == part.lo:
                        cl = min(cl, part.lo)
                        ch = max(ch, part.hi)
        if cl == INF:
            cl = ch = nan
        # no column is empty here, so nothing is interpolated: first / last unused
        out.append(Col(cl, ch, nan, cb, nan))
    return out


def interpolate(cols: List[Optional[Col]], log: bool = False) -> None:
    """Fewer points than columns: the empty columns between two points get
    the straight line between them (nothing is drawn across a NaN)."""
    prev = -1
    for c, col in enumerate(cols):
        if col is None:
            continue
        if prev >= 0 and c - prev > 1:
            a, b = cols[prev].last, col.first  # type: ignore[union-attr]
            if a == a and b == b and (not log or (a > 0 and b > 0)):
                gap = c - prev
                # near the ends of the float range (1e308 and -1e308, 5e-324
                # and 1e308 on a log scale) b - a or b / a overflows: weighted
                # sums then, which never do
                wide = abs(b / a) == math.inf if log else abs(b - a) * gap == math.inf
                for k in range(1, gap):
                    if not wide:
                        v = a * (b / a) ** (k / gap) if log else a + (b - a) * k / gap
                    elif log:
                        v = 10.0 ** (math.log10(a) * (1 - k / gap) + math.log10(b) * (k / gap))
                    else:
                        v = a * (1 - k / gap) + b * (k / gap)
                    cols[prev + k] = Col(v, v, v, False, v)
        prev = c
