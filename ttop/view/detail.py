"""The run detail screen and the comparison screen, as lines (pure).

``render_detail(model, state, width, height)`` draws:

* a header: for one run its name, status, phase, epoch / batch, rate, time
  left (ETA), then host, PID, owner and links, and the error an ended run
  failed with; for several runs (comparison)
  a title and the colour / marker legend;
* a grid of charts (:mod:`ttop.view.chart`): one per metric (for several runs:
  one per metric with the runs overlaid), then the resource charts (CPU %,
  RAM, GPU memory and utilisation while ttop has been watching). Up / Down
  scroll the grid when it does not fit;
* for one run, when the terminal is tall enough, the tracked variables with
  their edit state and the last lines of stdout / stderr;
* a footer with the chart settings and the keys.

The model (:class:`DetailModel`) is assembled by the UI from the snapshot,
the history reader, the resource rings, the control file and the logs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Sequence, Tuple

from . import fmt
from . import health as H
from . import roles as R
from .chart import ZOOMS, Series, legend, render_chart, zoom_label
from .footer import end_error
from .metrics import is_loss
from .table import Row, _get, batch_text, epoch_text, row_role, status_text
from .text import Line, Segment, clean, crop_line, width

#: Charts narrower / lower than this are not drawn side by side.
CHART_MIN_W = 36
CHART_MIN_H = 6
#: The resource charts: (key in the model, title).
RESOURCE_CHARTS = (("cpu", "CPU %"), ("ram", "RAM MiB"), ("gpu_mem", "GPU mem MiB"), ("gpu_util", "GPU util %"))


@dataclass(frozen=True)
class DetailState:
    x_by: str = "step"  # or "time"
    log: bool = False
    zoom: int = 0  # index into chart.ZOOMS
    pan: int = 0  # points back from the end
    scroll: int = 0  # grid rows scrolled

    def with_(self, **kw: Any) -> "DetailState":
        return replace(self, **kw)


@dataclass
class DetailModel:
    runs: List[Any]  # RunSnapshot, one or more (missing runs left out)
    #: run key -> metric name -> series
    metrics: Dict[str, Dict[str, Series]] = field(default_factory=dict)
    #: run key -> resource key (see RESOURCE_CHARTS) -> series
    resources: Dict[str, Dict[str, Series]] = field(default_factory=dict)
    #: (name, value text, state text, state role) of the tracked variables
    variables: List[Tuple[str, str, str, str]] = field(default_factory=list)
    #: last output lines: (stream, text)
    output: List[Tuple[str, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # e.g. why the history file cannot be read
    missing: List[str] = field(default_factory=list)  # keys of runs no longer in the folder
    color: bool = True
    ascii: bool = False


def _blank(w: int) -> Line:
    return ((" " * w, R.NORMAL),)


def _pad(segs: List[Segment], w: int, role: str = R.NORMAL) -> Line:
    line = crop_line(tuple(segs), 0, w)
    used = sum(width(t) for t, _ in line)
    if used < w:
        line = line + ((" " * (w - used), role),)
    return line


def metric_order(names: Sequence[str]) -> List[str]:
    """Loss-like names first, then by name."""
    return sorted(set(names), key=lambda n: (not is_loss(n), n))


def _header_single(run: Any, w: int, notes: Sequence[str], ascii: bool) -> List[Line]:
    d = run.data
    role = row_role(Row("run", ("run", run.key), run))
    live = run.status == "RUNNING" and not run.stale
    phase = d.get("phase") if isinstance(d.get("phase"), str) else None
    eta = _get(d, "times", "run", "remaining")
    segs: List[Segment] = [(clean(run.run_name), R.LABEL), ("  ", R.NORMAL), (status_text(run), role)]
    if phase:
        segs += [("  ", R.NORMAL), (clean(phase), role)]
    if getattr(run, "health", None) is not None:  # the verdict and its reason
        segs += [("  ", R.NORMAL), (H.health_text(run, ascii), H.health_role(run) or R.NORMAL)]
    if getattr(run, "cost", None) is not None:
        segs += [("  cost ", R.DIM), (H.cost_text(run), R.NORMAL)]
    segs += [("  epoch ", R.DIM), (epoch_text(run), R.NORMAL), ("  batch ", R.DIM), (batch_text(run), R.NORMAL),
             ("  rate ", R.DIM), (fmt.rate(d.get("rate")) if live else fmt.NA, R.NORMAL),
             ("  ETA ", R.DIM), (fmt.duration(eta) if live else fmt.NA, R.NORMAL)]
    l1 = _pad(segs, w)
    segs = [("host ", R.DIM), (clean(run.host) if run.host else fmt.NA, R.NORMAL),
            ("  PID ", R.DIM), (fmt.count(run.pid), R.NORMAL)]
    owner = getattr(run, "owner", None)
    if owner:
        segs += [("  owner ", R.DIM), (clean(owner), R.NORMAL)]
    links = d.get("links")
    if isinstance(links, dict):
        for k, v in links.items():
            if isinstance(v, str) and v:
                segs += [("  %s " % clean(k), R.DIM), (clean(v), R.NOTICE)]
    for n in notes:
        segs += [("  " + clean(n), R.ERROR)]
    head = [l1, _pad(segs, w)]
    err = end_error(run)
    if err:  # why it ended: the traceback's tail is in the output below (with capture) or in --json
        head.append(_pad([("error ", R.DIM), (err, R.ERROR if run.status == "FAILED" else R.NORMAL)], w))
    return head


def _header_compare(model: DetailModel, w: int) -> List[Line]:
    n = len(model.runs)
    title = "compare %d runs" % n
    if model.missing:
        title += " (%d gone: %s)" % (len(model.missing), ", ".join(clean(k) for k in model.missing))
    l1 = _pad([(title, R.LABEL)], w)
    l2 = legend([clean(r.run_name) for r in model.runs], w, color=model.color, ascii=model.ascii)
    return [l1, l2]


def chart_list(model: DetailModel) -> List[Tuple[str, List[Series]]]:
    """Every chart of the screen: (title, series), metrics first."""
    out: List[Tuple[str, List[Series]]] = []
    names: List[str] = []
    for r in model.runs:
        names.extend(model.metrics.get(r.key, {}).keys())
    single = len(model.runs) == 1
    for name in metric_order(names):
        ser = []
        for r in model.runs:
            s = model.metrics.get(r.key, {}).get(name)
            if s is None:
                s = Series(clean(r.run_name), [])
            elif not single:
                s = replace(s, name=clean(r.run_name))
            ser.append(s)
        out.append((clean(name), ser))
    for key, title in RESOURCE_CHARTS:
        ser = []
        any_data = False
        for r in model.runs:
            s = model.resources.get(r.key, {}).get(key)
            if s is not None and any(v == v for v in s.y):
                any_data = True
            ser.append(replace(s, name=clean(r.run_name)) if s is not None else Series(clean(r.run_name), []))
        if any_data:
            out.append((title, ser))
    return out


def grid_shape(n: int, w: int, h: int) -> Tuple[int, int, int, int]:
    """(columns, rows per page, chart width, chart height) of the grid of
    ``n`` charts in ``w`` x ``h`` cells."""
    cols = max(1, min(3, w // (CHART_MIN_W + 1) if w >= 2 * CHART_MIN_W + 1 else 1))
    cols = max(1, min(cols, n))
    rows = max(1, h // CHART_MIN_H)
    need_rows = max(1, -(-n // cols))
    rows = min(rows, need_rows)
    cw = (w - (cols - 1)) // cols
    ch = h // rows
    return cols, rows, cw, ch


def _panel(model: DetailModel, w: int, h: int) -> List[Line]:
    """Variables (left) and the last output lines (right), ``h`` lines."""
    left_w = max(20, (w * 2) // 5)
    right_w = w - left_w - 1
    left: List[Line] = [_pad([("Variables", R.TITLE)], left_w, R.TITLE)]
    if not model.variables:
        left.append(_pad([("(none tracked)", R.DIM)], left_w))
    for name, value, state, role in model.variables[: h - 1]:
        segs: List[Segment] = [(clean(name), R.LABEL), (" = ", R.DIM), (clean(value), R.NORMAL)]
        if state:
            segs += [("  " + clean(state), role)]
        left.append(_pad(segs, left_w))
    right: List[Line] = [_pad([("Output (o opens the viewer)", R.TITLE)], right_w, R.TITLE)]
    out = model.output[-(h - 1):] if h > 1 else []
    if not out:
        right.append(_pad([("(no output)", R.DIM)], right_w))
    for stream, text in out:
        right.append(_pad([("%s " % ("E" if stream == "stderr" else " "), R.ERROR if stream == "stderr" else R.DIM),
                           (clean(text), R.NORMAL)], right_w))
    lines = []
    for i in range(h):
        a = left[i] if i < len(left) else _blank(left_w)
        b = right[i] if i < len(right) else _blank(right_w)
        lines.append(a + ((" ", R.NORMAL),) + b)
    return lines


def footer(state: DetailState, w: int, page: str, compare: bool, ascii: bool = False) -> Line:
    segs: List[Segment] = [
        ("x ", R.KEY), ("by %s" % state.x_by, R.NORMAL), ("  l ", R.KEY), ("log" if state.log else "lin", R.NORMAL),
        ("  +/- ", R.KEY), ("zoom %s" % zoom_label(ZOOMS[state.zoom]), R.NORMAL),
        ("  <- -> " if ascii else "  \u2190\u2192 ", R.KEY), ("pan" + (" -%d" % state.pan if state.pan else ""), R.NORMAL),
    ]
    if page:
        segs += [("  Up/Dn " if ascii else "  \u2191\u2193 ", R.KEY), (page, R.NORMAL)]
    if not compare:
        segs += [("  e ", R.KEY), ("edit", R.NORMAL), ("  o ", R.KEY), ("output", R.NORMAL)]
    segs += [("  Esc ", R.KEY), ("back", R.NORMAL)]
    return _pad(segs, w, R.FOOTER)


@dataclass(frozen=True)
class DetailFrame:
    lines: List[Line]
    page_rows: int  # grid rows per page
    total_rows: int  # grid rows in all
    max_pan: int


def render_detail(model: DetailModel, state: DetailState, w: int, h: int) -> DetailFrame:
    from .screen import too_small, too_small_lines

    if too_small(w, h):
        return DetailFrame(too_small_lines(w, h), 1, 1, 0)
    compare = len(model.runs) + len(model.missing) > 1
    if not model.runs:
        gone = [_pad([("the run%s left the folder" % ("s" if compare else ""), R.ERROR)], w)]
        gone += [_blank(w)] * (h - 2) + [footer(state, w, "", compare, model.ascii)]
        return DetailFrame(gone, 1, 1, 0)
    head = _header_compare(model, w) if compare else _header_single(model.runs[0], w, model.notes, model.ascii)
    if h < 14:
        head = head[:1]
    body_h = h - len(head) - 1
    panel_h = 0
    if not compare and h >= 20:
        panel_h = min(10, max(5, body_h // 4))
    charts_h = body_h - panel_h
    charts = chart_list(model)
    lines: List[Line] = list(head)
    page = ""
    max_pan = 0
    cols = rows = 1
    total_rows = 1
    if not charts:
        lines.append(_pad([("no metrics or resources reported yet", R.DIM)], w))
        lines += [_blank(w)] * (charts_h - 1)
    else:
        cols, rows, cw, ch = grid_shape(len(charts), w, charts_h)
        total_rows = -(-len(charts) // cols)
        scroll = max(0, min(state.scroll, total_rows - rows))
        first = scroll * cols
        shown = charts[first:first + rows * cols]
        if total_rows > rows:
            page = "charts %d-%d/%d" % (first + 1, first + len(shown), len(charts))
        zoom = ZOOMS[state.zoom]
        for gr in range(rows):
            row_charts = shown[gr * cols:(gr + 1) * cols]
            rendered = []
            for title, ser in row_charts:
                x_by = "time" if title in dict((t, k) for k, t in RESOURCE_CHARTS) else state.x_by
                n = max([len(s.y) for s in ser] + [0])
                if zoom is not None and n > zoom:
                    max_pan = max(max_pan, n - zoom)
                rendered.append(render_chart(ser, cw, ch, zoom=zoom, pan=state.pan, log=state.log, x_by=x_by,
                                             ascii=model.ascii, color=model.color, title=title))
            for i in range(ch):
                segs: List[Segment] = []
                for ci in range(cols):
                    if ci:
                        segs.append((" ", R.NORMAL))
                    if ci < len(rendered) and i < len(rendered[ci]):
                        segs.extend(rendered[ci][i])
                    else:
                        segs.append((" " * cw, R.NORMAL))
                lines.append(_pad(segs, w))
        while len(lines) < len(head) + charts_h:
            lines.append(_blank(w))
    if panel_h:
        lines.extend(_panel(model, w, panel_h))
    lines = lines[: h - 1]
    while len(lines) < h - 1:
        lines.append(_blank(w))
    lines.append(footer(state, w, page, compare, model.ascii))
    return DetailFrame(lines, rows, total_rows, max_pan)
