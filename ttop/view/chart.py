"""Metric charts as lines of ``(text, role)`` segments.

``render_chart(series, width, height, ...)`` is pure: the same series and size
always give the same lines, each exactly ``width`` cells, ``height`` lines.

Layout (top to bottom)::

    loss  last 0.3124  min 0.1021  max 2.301        <- title: name, latest, min, max
      2.301|⠈⠢⡀                                      <- plot rows, y labels on the left
           |   ⠈⠑⠢⢄⣀
     0.1021|        ⠉⠉⠒⠒⠤⠤⣀⣀
           +0--------!-----------------1000          <- x axis: first / last x, markers

* Braille (2 x 4 dots per cell) by default; ``ascii=True`` draws at cell
  resolution with a marker character (``*``, or one per series).
* Several series overlay: each gets a role from :data:`SERIES_ROLES` (a colour
  in the UI) and, where there is no colour (``color=False``) or with
  ``ascii=True``, its own marker from :data:`MARKERS`, drawn at cell
  resolution so the series stay apart without colour.
* Every column of the plot covers a range of x; it draws the minimum and
  maximum of the points in that range, so a spike between two columns is never
  hidden. A column whose points hold a NaN or an infinity gets ``!`` on the x
  axis (role ``error``) and the title says ``NaN/inf``.
* A constant series is drawn in the middle; a single point at the left edge.
* ``log=True``: values are drawn on a log10 scale. Values <= 0 cannot be: they
  are clipped to the bottom and their columns get ``v`` on the axis; when no
  value is > 0 the chart stays linear and the title says ``(lin)``.
* ``zoom``: the last N points (None: the whole series); ``pan``: how many
  points the window is moved back from the end.
* ``x_by``: ``"step"`` (the series' x values, or the point index) or
  ``"time"`` (its wall-clock times, labelled relative to the first one).

A series may carry, for downsampled history, per-point ``lo`` / ``hi`` (the
bucket's min and max) and ``flagged`` (sorted indices of buckets that held a
NaN or an infinity).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from . import fmt
from . import roles as R
from .chartbins import Blocks, Col, bins
from .text import Line, Segment, fit, width

_FLOAT_MAX = 1.7976931348623157e308

#: Zoom levels: the whole series, then the last N points.
ZOOMS: Tuple[Optional[int], ...] = (None, 500, 200, 100, 50)

#: Roles of overlaid series, in order (the UI gives each a colour).
SERIES_ROLES: Tuple[str, ...] = R.SERIES
#: Markers of overlaid series where there is no colour (and with ``ascii``).
MARKERS = "*+ox#@%&"

_BRAILLE_BASE = 0x2800
_BRAILLE = [" "] + [chr(_BRAILLE_BASE + b) for b in range(1, 256)]
# dot bits by (dot column, dot row) inside a cell
_DOT = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
# _SPAN[dot column][first dot row][last dot row]: the bits of those dots of a cell
_SPAN = tuple(tuple(tuple(sum(d[a:b + 1]) for b in range(4)) for a in range(4)) for d in _DOT)


@dataclass(frozen=True)
class Series:
    """One curve. ``y`` holds floats (NaN / inf allowed; None is NaN).
    ``x``: step numbers (ascending; None: the point index); ``t``: wall-clock
    times (ascending; None: unknown). ``lo`` / ``hi``: per-point min / max of
    a downsampled bucket. ``flagged``: sorted indices of points whose bucket
    held a NaN or an infinity."""

    name: str
    y: Sequence[float]
    x: Optional[Sequence[float]] = None
    t: Optional[Sequence[float]] = None
    lo: Optional[Sequence[float]] = None
    hi: Optional[Sequence[float]] = None
    flagged: Sequence[int] = ()
    blocks: Optional[Blocks] = None


def zoom_label(zoom: Optional[int]) -> str:
    return "all" if zoom is None else "last %d" % zoom


def window(n: int, zoom: Optional[int], pan: int) -> Tuple[int, int]:
    """The slice ``[start, end)`` of ``n`` points shown at ``zoom`` after
    moving ``pan`` points back from the end (clamped)."""
    if zoom is None or zoom >= n:
        return 0, n
    pan = max(0, min(int(pan), n - zoom))
    end = n - pan
    return end - zoom, end


def max_pan(n: int, zoom: Optional[int]) -> int:
    return 0 if zoom is None or zoom >= n else n - zoom


def value_text(v: Optional[float]) -> str:
    """A value as the chart labels it: 4 significant digits, NaN / inf
    spelled out, ``-`` for unknown."""
    return fmt.metric(v)


def last_value(s: Series) -> Optional[float]:
    """The series' latest value (NaN / inf included); None when empty."""
    if not s.y:
        return None
    v = s.y[-1]
    return float("nan") if v is None else v


def _xs_of(s: Series, x_by: str) -> Optional[Sequence[float]]:
    if x_by == "time" and s.t is not None:
        return s.t
    return s.x


def _x_at(xs: Optional[Sequence[float]], i: int) -> float:
    return float(i) if xs is None else float(xs[i])


def _x_label(v: float, x_by: str, t0: Optional[float]) -> str:
    if x_by == "time":
        return "+" + fmt.duration(v - (t0 if t0 is not None else v))
    return fmt.count(v)


def _blank(w: int) -> Line:
    return ((" " * w, R.NORMAL),)


def _merge(segs: List[Segment]) -> Line:
    out: List[Segment] = []
    for text, role in segs:
        if not text:
            continue
        if out and out[-1][1] == role:
            out[-1] = (out[-1][0] + text, role)
        else:
            out.append((text, role))
    return tuple(out)


def legend(names: Sequence[str], width_: int, color: bool = True, ascii: bool = False) -> Line:
    """``* run-a  + run-b`` (a marker and name per series, in its role)."""
    segs: List[Segment] = []
    used = 0
    for i, name in enumerate(names):
        mark = MARKERS[i % len(MARKERS)] if (ascii or not color) else ("#" if ascii else "\u25cf")
        piece = "%s %s" % (mark, name)
        if segs:
            piece = "  " + piece
        if used + width(piece) > width_:
            break
        segs.append((piece, SERIES_ROLES[i % len(SERIES_ROLES)]))
        used += width(piece)
    segs.append((" " * (width_ - used), R.NORMAL))
    return _merge(segs)


def render_chart(series: Sequence[Series], width_: int, height: int, *, zoom: Optional[int] = None,
                 pan: int = 0, log: bool = False, x_by: str = "step", ascii: bool = False,
                 color: bool = True, title: Optional[str] = None) -> List[Line]:
    """Draw ``series`` (one, or several overlaid) in ``width_`` x ``height``
    cells; see the module docstring."""
    if width_ <= 0 or height <= 0:
        return []
    series = [s for s in series]
    name = title if title is not None else (series[0].name if len(series) == 1 else "")
    if height < 3 or width_ < 12:
        # too small to draw: the title and the latest value
        one = name
        if len(series) == 1:
            one = "%s %s" % (name, value_text(last_value(series[0])))
        return [((fit(one, width_, "<", "..." if ascii else "\u2026"), R.LABEL),)] + [_blank(width_)] * (height - 1)

    ell = "..." if ascii else "\u2026"
    if x_by == "time" and not all(s.t is not None for s in series):
        x_by = "step"  # no wall-clock times to place the points by
    plot_rows = height - 2
    # --- windows and x range -------------------------------------------------
    wins = []
    xmin = math.inf
    xmax = -math.inf
    t0: Optional[float] = None
    for s in series:
        xs = _xs_of(s, x_by)
        n = len(s.y)
        a, b = window(n, zoom, pan)
        wins.append((s, xs, a, b))
        if b > a:
            xmin = min(xmin, _x_at(xs, a))
            xmax = max(xmax, _x_at(xs, b - 1))
        if x_by == "time" and s.t:
            t0 = s.t[0] if t0 is None else min(t0, s.t[0])
    empty = xmin == math.inf

    # --- y labels need the y range, which needs the columns; the columns need
    # the plot width, which depends on the label width: fix the label width.
    lab_w = 8 if width_ >= 30 else 6
    plot_w = max(1, width_ - lab_w - 1)
    cell_res = ascii or (len(series) > 1 and not color)
    dots_x = plot_w if cell_res else plot_w * 2
    dots_y = plot_rows if cell_res else plot_rows * 4

    cols_per_series: List[List[Optional[Col]]] = []
    for s, xs, a, b in wins:
        cols_per_series.append(bins(s.y, s.lo, s.hi, s.flagged, s.blocks, a, b, xs, xmin, xmax, dots_x, log)
                               if not empty else [None] * dots_x)

    lo = math.inf
    hi = -math.inf
    any_bad = False
    pos_lo = math.inf
    for cols in cols_per_series:
        for c in cols:
            if c is None:
                continue
            any_bad = any_bad or c.bad
            if c.lo == c.lo:
                lo = min(lo, c.lo)
                hi = max(hi, c.hi)
                if c.lo > 0:
                    pos_lo = min(pos_lo, c.lo)
                elif c.hi > 0:
                    pos_lo = min(pos_lo, c.hi)
    has_data = lo != math.inf
    use_log = log and has_data and hi > 0
    if use_log:
        if pos_lo == math.inf:
            pos_lo = hi
        y0, y1 = math.log10(pos_lo), math.log10(hi)
    elif has_data:
        y0, y1 = lo, hi
    else:
        y0, y1 = 0.0, 1.0
    flat = y1 - y0 <= 0
    if flat:
        pad = abs(y0) * 0.1
        if not pad > 0:  # 0, or a tenth of 5e-324 (0 too: nothing to divide by)
            pad = 1.0
        y0, y1 = max(y0 - pad, -_FLOAT_MAX), min(y1 + pad, _FLOAT_MAX)

    # --- draw ------------------------------------------------------------------
    # grid of cells: (bits or marker, role)
    bits = [[0] * plot_w for _ in range(plot_rows)]
    roles: List[List[Optional[str]]] = [[None] * plot_w for _ in range(plot_rows)]
    marks: List[List[str]] = [[" "] * plot_w for _ in range(plot_rows)]
    axis_marks: List[str] = ["" for _ in range(plot_w)]
    # values near both ends of the float range (a file's 1e308 and -1e308):
    # y1 - y0 overflows, so rows are worked out from halves of the values
    k = 1.0 if y1 - y0 < math.inf else 0.5
    base = y0 * k
    span_y = y1 * k - base
    top = dots_y - 1
    log10 = math.log10
    for si, cols in enumerate(cols_per_series):
        role = SERIES_ROLES[si % len(SERIES_ROLES)] if len(series) > 1 else R.CHART
        marker = MARKERS[si % len(MARKERS)]
        prev_top = prev_bot = -1  # the previous column's own rows (-1: none to join)
        for dx, c in enumerate(cols):
            if c is None:
                continue
            cx = dx if cell_res else dx >> 1
            if c.bad:
                axis_marks[cx] = "!"
            vlo = c.lo
            if vlo != vlo:  # nothing finite here
                prev_top = -1
                continue
            vhi = c.hi
            if use_log:
                if vlo <= 0 and axis_marks[cx] != "!":
                    axis_marks[cx] = "v"
                vhi = log10(vhi) if vhi > 0 else y0
                vlo = log10(vlo) if vlo > 0 else y0
            # rows of the dots (0 at the top)
            r_top = int(round((1.0 - (vhi * k - base) / span_y) * top))
            r_top = 0 if r_top < 0 else (top if r_top > top else r_top)
            r_bot = int(round((1.0 - (vlo * k - base) / span_y) * top))
            r_bot = 0 if r_bot < 0 else (top if r_bot > top else r_bot)
            own_top, own_bot = r_top, r_bot
            if prev_top >= 0:  # join to the previous column's range
                if r_top > prev_bot:
                    r_top = prev_bot + 1
                elif r_bot < prev_top:
                    r_bot = prev_top - 1
            prev_top, prev_bot = own_top, own_bot
            if cell_res:
                for r in range(r_top, r_bot + 1):
                    marks[r][cx] = marker
                    roles[r][cx] = role
            else:
                masks = _SPAN[dx & 1]
                cy0, cy1 = r_top >> 2, r_bot >> 2
                if cy0 == cy1:
                    bits[cy0][cx] |= masks[r_top & 3][r_bot & 3]
                    roles[cy0][cx] = role
                else:
                    bits[cy0][cx] |= masks[r_top & 3][3]
                    roles[cy0][cx] = role
                    full = masks[0][3]
                    for cy in range(cy0 + 1, cy1):
                        bits[cy][cx] |= full
                        roles[cy][cx] = role
                    bits[cy1][cx] |= masks[0][r_bot & 3]
                    roles[cy1][cx] = role

    lines: List[Line] = []
    # title
    tsegs: List[Segment] = []
    tsegs.append((name, R.LABEL))
    if len(series) == 1:
        lv = last_value(series[0])
        tsegs.append(("  last ", R.DIM))
        tsegs.append((value_text(lv), R.ERROR if lv is not None and not math.isfinite(lv) else R.NORMAL))
    if any_bad:
        tsegs.append(("  NaN/inf", R.ERROR))
    if has_data:
        tsegs.append(("  min ", R.DIM))
        tsegs.append((value_text(lo), R.NORMAL))
        tsegs.append(("  max ", R.DIM))
        tsegs.append((value_text(hi), R.NORMAL))
    if log and not use_log and has_data:
        tsegs.append(("  (lin)", R.DIM))
    elif use_log:
        tsegs.append(("  (log)", R.DIM))
    lines.append(_fit_line(tsegs, width_, ell))

    # plot rows with y labels on the first, middle and last row
    label_rows = {0: hi if has_data else None, plot_rows - 1: (lo if not use_log else 10 ** y0) if has_data else None}
    if flat and has_data:
        label_rows = {plot_rows // 2: lo}
    elif plot_rows >= 5 and has_data:
        mid_v = (y0 + y1) / 2
        label_rows[plot_rows // 2] = 10 ** mid_v if use_log else mid_v
    if not has_data:
        label_rows = {}
    vbar = "|" if ascii else "\u2502"
    for r in range(plot_rows):
        lv = label_rows.get(r)
        lab = fit(value_text(lv), lab_w, ">", ell) if lv is not None else " " * lab_w
        segs: List[Segment] = [(lab, R.DIM), (vbar, R.DIM)]
        if not has_data and r == plot_rows // 2:
            segs.append((fit("no data" if empty else "no finite value", plot_w, "<", ell), R.DIM))
            lines.append(_merge(segs))
            continue
        if len(series) == 1:  # one role for the whole row
            row_text = "".join(marks[r]) if cell_res else "".join([_BRAILLE[b] for b in bits[r]])
            segs.append((row_text, R.CHART))
            lines.append(_merge(segs))
            continue
        buf: List[str] = []
        cur_role: Optional[str] = None
        for cx in range(plot_w):
            cell_role = roles[r][cx]
            if cell_res:
                ch = marks[r][cx]
            else:
                b = bits[r][cx]
                ch = chr(_BRAILLE_BASE + b) if b else " "
            rr = cell_role or R.NORMAL
            if rr != cur_role and buf:
                segs.append(("".join(buf), cur_role or R.NORMAL))
                buf = []
            cur_role = rr
            buf.append(ch)
        if buf:
            segs.append(("".join(buf), cur_role or R.NORMAL))
        lines.append(_merge(segs))

    # x axis
    corner = "+" if ascii else "\u2514"
    dash = "-" if ascii else "\u2500"
    axis = [dash] * plot_w
    if not empty:
        left = _x_label(xmin, x_by, t0)
        right = _x_label(xmax, x_by, t0) if xmax != xmin else ""
        if width(left) + width(right) + 2 <= plot_w:
            for i, ch in enumerate(left):
                axis[i] = ch
            if right:
                for i, ch in enumerate(right):
                    axis[plot_w - len(right) + i] = ch
    asegs: List[Segment] = [(" " * lab_w, R.DIM), (corner, R.DIM)]
    for cx in range(plot_w):
        m = axis_marks[cx]
        if m:
            asegs.append((m, R.ERROR if m == "!" else R.NOTICE))
        else:
            asegs.append((axis[cx], R.DIM))
    lines.append(_merge(asegs))
    return lines


def _fit_line(segs: List[Segment], w: int, ell: str) -> Line:
    out: List[Segment] = []
    used = 0
    for text, role in segs:
        tw = width(text)
        if used + tw > w:
            out.append((fit(text, w - used, "<", ell), role))
            used = w
            break
        out.append((text, role))
        used += tw
    if used < w:
        out.append((" " * (w - used), R.NORMAL))
    return _merge(out)
