"""The main table: column specs, the flat row list after filters, and the
pure renderer.

``visible_rows(snapshot, state)`` is the list of rows the user can move
through: one per run that passes the filters, followed by its ``[P]`` process
and ``[T]`` thread rows when the run is expanded. ``render_table`` draws only
the rows that fit (``top`` .. ``top + height``), with the name column frozen on
the left while the others scroll by ``state.col_offset`` columns.
"""
from __future__ import annotations

from ..record import FrozenRecord
from . import columns as C
from . import fmt
from . import health as H
from . import metrics as M
from . import roles as R
from .cells import (  # noqa: F401 (re-exported)
    PENDING,
    _batch_v,
    _get,
    _host,
    _int,
    _live,
    _live_v,
    _phase,
    _projection,
    _projection_v,
    _res,
    _res_v,
    _time,
    _time_v,
    _wandb,
    batch_text,
    epoch_text,
    pending,
    status_text,
    wandb_url,
)
from .compose import NAME_TITLE, _merge, compose_row, row_plan, run_line, title_line  # noqa: F401 (re-exported)
from .kept import Kept
from .ranks import rank_cell, rank_name, rank_role
from .sorting import TEXT_SORTS, sort_mark, sort_runs, sort_value  # noqa: F401 (re-exported)
from .state import RowId, ViewState
from .text import Line, clean, width

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# ---------------------------------------------------------------------------
# rows


class Row(FrozenRecord):
    kind: str  # "run", "rank", "proc", "thread"
    id: RowId
    run: Any  # RunSnapshot
    proc: Any  # ProcInfo for proc/thread rows
    thread: Any  # ThreadInfo for thread rows
    rank: Any  # RankSnapshot for rank rows

    def __init__(self, kind: str, id: RowId, run: Any, proc: Any = None, thread: Any = None,
                 rank: Any = None) -> None:
        self.__dict__.update(kind=kind, id=id, run=run, proc=proc, thread=thread, rank=rank)


#: A name filter starting with this matches the host instead (``host:gpu-01``;
#: ``host:=gpu-1``: exactly that host, as shown).
HOST_FILTER = "host:"


def _name_matches(run: Any, needle: str) -> bool:
    if not needle:
        return True
    n = needle.lower()
    if n.startswith(HOST_FILTER):
        want = n[len(HOST_FILTER):]
        # a multi-rank job is on each host that runs one of its ranks too
        hosts = [clean(h or "").lower() for h in [run.host, *(rk.host for rk in getattr(run, "ranks", ()) or ())]]
        if want.startswith("="):  # host:=NAME, the hosts screen's pick: that host only
            return want[1:] in hosts
        return any(want in host for host in hosts)
    return n in clean(run.run_name).lower() or n in clean(run.key).lower()


def filtered_runs(snapshot: Any, state: ViewState) -> List[Any]:
    if snapshot is None:
        return []
    sf = state.status_filter
    nf = state.effective_name_filter()
    return [r for r in snapshot.runs if (sf is None or r.status == sf) and _name_matches(r, nf)]


def visible_rows(snapshot: Any, state: ViewState, ranks: bool = False) -> List[Row]:
    """Runs after the status and name filters, in the chosen sort order, each
    followed by its process and thread rows when expanded (a multi-rank
    job: a rank row each, with its processes under it). ``ranks``: rank
    rows under every multi-rank run, expanded or not (``--once``)."""
    rows: List[Row] = []
    expanded = state.expanded
    runs = filtered_runs(snapshot, state)
    if state.sort_key is not None:
        runs = sort_runs(runs, state.sort_key, state.sort_reverse, columns_for(snapshot, state, runs))
    for run in runs:
        rows.append(Row("run", ("run", run.key), run))
        open_ = run.key in expanded
        if run.ranks and (open_ or ranks):
            for rk in run.ranks:
                rows.append(Row("rank", ("rank", run.key, rk.rank), run, rank=rk))
                if open_:
                    _proc_rows(rows, run, rk.processes)
        elif open_:
            _proc_rows(rows, run, run.processes)
    return rows


def _proc_rows(rows: List[Row], run: Any, procs: Sequence[Any]) -> None:
    for p in procs:
        rows.append(Row("proc", ("proc", run.key, p.pid), run, p))
        for t in p.threads:
            rows.append(Row("thread", ("thread", run.key, p.pid, t.tid), run, p, t))


def selected_index(rows: Sequence[Row], state: ViewState) -> int:
    """Index of the selected row; if it is not visible, its run's row; else
    the row now at the index where the selection was last drawn
    (``state.sel_index``, clamped). -1 when there are no rows."""
    if not rows:
        return -1
    sel = state.selected
    if sel is not None:
        for i, row in enumerate(rows):
            if row.id == sel:
                return i
        if sel[0] != "run" and len(sel) > 1:
            for i, row in enumerate(rows):
                if row.id == ("run", sel[1]):
                    return i
    return max(0, min(state.sel_index, len(rows) - 1))


# ---------------------------------------------------------------------------
# columns


class Column(FrozenRecord):
    key: str
    title: str
    width: int
    align: str  # "<" or ">"
    run: Callable[[Any], str]
    proc: Optional[Callable[[Any], str]]  # value on a [P] row
    thread: Optional[Callable[[Any, Any], str]]  # value on a [T] row (proc, thread)
    status_colored: bool
    #: the raw value a sort compares (a number, or text); None: the cell text
    value: Optional[Callable[[Any], Any]]
    #: a role for one run's cell (e.g. NaN highlighted), None for the default
    cell_role: Optional[Callable[[Any], Optional[str]]]

    def __init__(self, key: str, title: str, width: int, align: str, run: Callable[[Any], str],
                 proc: Optional[Callable[[Any], str]] = None, thread: Optional[Callable[[Any, Any], str]] = None,
                 status_colored: bool = False, value: Optional[Callable[[Any], Any]] = None,
                 cell_role: Optional[Callable[[Any], Optional[str]]] = None) -> None:
        self.__dict__.update(key=key, title=title, width=width, align=align, run=run, proc=proc, thread=thread,
                             status_colored=status_colored, value=value, cell_role=cell_role)


def _p(attr: str, f: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda p: f(getattr(p, attr, None))


def _tv(section: str, key: str, live: str = "") -> Callable[[Any], Any]:
    g = _time_v(section, key)
    return _live_v(g) if live == "live" else (_projection_v(g) if live == "proj" else g)


COLUMNS: Tuple[Column, ...] = (
    Column("host", "Host", 12, "<", _host),
    Column("status", "Status", 9, "<", lambda r: status_text(r), proc=lambda p: clean(p.status) if p.status else fmt.NA, status_colored=True),
    Column("phase", "Phase", 10, "<", _phase, status_colored=True),
    Column("epoch", "Epoch", 7, ">", epoch_text, value=lambda r: _int(r.data.get("epoch"))),
    Column("batch", "Batch", 11, ">", batch_text, value=_batch_v),
    Column("rate", "Rate", 8, ">", _live(lambda r: fmt.rate(r.data.get("rate"))), value=_live_v(lambda r: r.data.get("rate"))),
    Column("run_elapsed", "Run El", 7, ">", _time("run", "elapsed"), value=_tv("run", "elapsed")),
    Column("run_remaining", "Run Rem", 7, ">", _time("run", "remaining", "live"), value=_tv("run", "remaining", "live")),
    Column("run_total", "Run Tot", 7, ">", _time("run", "total", "proj"), value=_tv("run", "total", "proj")),
    Column("epoch_elapsed", "Ep El", 7, ">", _time("epoch", "elapsed"), value=_tv("epoch", "elapsed")),
    Column("epoch_remaining", "Ep Rem", 7, ">", _time("epoch", "remaining", "live"), value=_tv("epoch", "remaining", "live")),
    Column("epoch_total", "Ep Tot", 7, ">", _time("epoch", "total", "proj"), value=_tv("epoch", "total", "proj")),
    Column("train_elapsed", "Tr El", 7, ">", _time("train", "elapsed"), value=_tv("train", "elapsed")),
    Column("train_remaining", "Tr Rem", 7, ">", _time("train", "remaining", "live"), value=_tv("train", "remaining", "live")),
    Column("train_total", "Tr Tot", 7, ">", _time("train", "total", "proj"), value=_tv("train", "total", "proj")),
    Column("val_time", "Val Time", 8, ">", _time("validation", "last"), value=_tv("validation", "last")),
    Column("val_elapsed", "Val El", 7, ">", _time("validation", "elapsed"), value=_tv("validation", "elapsed")),
    Column("val_remaining", "Val Rem", 7, ">", _time("validation", "remaining", "live"), value=_tv("validation", "remaining", "live")),
    Column("val_total", "Val Tot", 7, ">", _time("validation", "total", "proj"), value=_tv("validation", "total", "proj")),
    Column("cpu", "CPU", 6, ">", _res("cpu_percent", fmt.percent), proc=_p("cpu_percent", fmt.percent),
           thread=lambda p, t: fmt.percent(t.cpu_percent), value=_res_v("cpu_percent")),
    Column("ram", "RAM", 6, ">", _res("rss_bytes", fmt.size), proc=_p("rss_bytes", fmt.size), value=_res_v("rss_bytes")),
    Column("gpu", "GPU", 6, ">", _res("gpu_memory_bytes", fmt.size), proc=_p("gpu_memory_bytes", fmt.size),
           value=_res_v("gpu_memory_bytes")),
    Column("procs", "Procs", 5, ">", _res("num_procs", fmt.count), value=_res_v("num_procs")),
    Column("threads", "Threads", 7, ">", _res("num_threads", fmt.count), proc=_p("num_threads", fmt.count),
           value=_res_v("num_threads")),
    Column("pid", "PID", 8, ">", lambda r: fmt.count(r.pid), proc=lambda p: str(p.pid), thread=lambda p, t: str(t.tid),
           value=lambda r: r.pid),
    Column("wandb", "Wandb URL", 9, "<", _wandb),
)

_BY_KEY = {c.key: c for c in COLUMNS}
METRIC_PREFIX = "m:"
METRIC_WIDTH = 10


def metric_column(name: str, ascii: bool = False) -> Column:
    """The column of metric ``name`` (key ``m:<name>``): latest value and
    trend mark; NaN / inf in the error role."""
    return Column(
        METRIC_PREFIX + name, clean(name), METRIC_WIDTH, ">",
        M.metric_cell(name, ascii),
        value=lambda r: M.value(r, name),
        cell_role=M.error_role(name, R.ERROR),
    )


HEALTH_WIDTH = 18


def health_column(ascii: bool = False) -> Column:
    """The Health column (after Status): symbol and reason, coloured by level;
    sorting puts CRIT first."""
    return Column("health", "Health", HEALTH_WIDTH, "<", lambda r: PENDING if pending(r) else H.health_text(r, ascii),
                  value=H.health_rank, cell_role=H.health_role)


#: Cost so far / projected total (after Threads, only when prices are given).
COST_COLUMN = Column("cost", "Cost", 13, ">", H.cost_text, value=lambda r: getattr(r, "cost", None))


def sort_keys(snapshot: Any, state: ViewState) -> List[str]:
    """The columns ``<`` / ``>`` move the sort through, left to right."""
    return ["name"] + [c.key for c in columns_for(snapshot, state)]


NAME_MIN = 10
NAME_MAX = 32
MAX_URL = 300
#: Columns that widen (up to GROW_MAX cells) rather than cut a counter short.
GROWING = ("epoch", "batch")
GROW_MAX = 25


def _multi_host(snapshot: Any) -> bool:
    hosts = {r.host for r in snapshot.runs} if snapshot is not None else set()
    return len(hosts) > 1


#: columns_for's last answer: (snapshot, state key, columns); a frame asks
#: for the same columns more than once, and each answer reads every run.
_last_columns: Tuple[Any, Any, Tuple[Column, ...]] = (None, None, ())


def columns_for(snapshot: Any, state: Optional[ViewState] = None, runs: Optional[Sequence[Any]] = None) -> List[Column]:
    """:func:`_columns_for`, remembered for the same snapshot and view (when
    ``runs`` is not given: the runs are then the snapshot's after the filters)."""
    global _last_columns
    if runs is not None or state is None:
        return _columns_for(snapshot, state, runs)
    key = (state.columns, state.metrics, state.ascii, state.status_filter, state.effective_name_filter())
    last = _last_columns
    if last[0] is snapshot and last[1] == key:
        return list(last[2])
    out = _columns_for(snapshot, state, None)
    _last_columns = (snapshot, key, tuple(out))
    return out


def _columns_for(snapshot: Any, state: Optional[ViewState] = None, runs: Optional[Sequence[Any]] = None) -> List[Column]:
    """The scrollable columns of the choice (``state.columns``, else
    :data:`~ttop.view.columns.DEFAULT`; see :mod:`ttop.view.columns`): Host
    only when runs come from several hosts, Health when any run has a
    verdict, Cost when runs are priced; the automatic metric columns are up
    to 3 metrics the shown runs report, loss-like names first
    (``state.metrics`` overrides that ranking)."""
    ascii = state.ascii if state is not None else False
    choice = (state.columns if state is not None else None) or C.DEFAULT
    auto: Sequence[str] = ()
    if _has_auto(choice):
        if state is not None and state.metrics is not None:
            ranked = list(state.metrics)
        else:
            if runs is None:
                runs = filtered_runs(snapshot, state) if state is not None else (snapshot.runs if snapshot is not None else ())
            ranked = M.default_metrics(runs, 3 + len(C.named_metrics(choice)))
        auto = tuple(C.auto_metrics(choice, ranked))
    runs_all = snapshot.runs if snapshot is not None else ()
    out: List[Column] = []
    for key, made in _made_columns(choice, auto, ascii):
        if made is not None:  # a metric's
            out.append(made)
        elif key == "health":
            # Health only when the collector judged a run (live runs always
            # are; on the first screen, before their processes were looked
            # up, they will be)
            if any(getattr(r, "health", None) is not None for r in runs_all) or any(pending(r) for r in runs_all):
                out.append(_made_health(ascii))
        elif key == "cost":
            if any(getattr(r, "cost", None) is not None for r in runs_all):
                out.append(COST_COLUMN)
        elif key == "host":
            if _multi_host(snapshot):
                out.append(_BY_KEY["host"])
        elif key in _BY_KEY:
            out.append(_BY_KEY[key])
    return out


#: What _columns_for made of a choice of columns, by the choice (and the
#: metrics shown for AUTO): each snapshot's table asks again.
_MADE: Dict[Any, Any] = {}


def _has_auto(choice: Any) -> bool:
    try:
        got = _MADE.get(choice)
    except TypeError:  # a choice that is not hashable
        return any(k == C.AUTO and shown for k, shown in choice)
    if got is None:
        got = _MADE[choice] = any(k == C.AUTO and shown for k, shown in choice)
    return got


def _made_columns(choice: Any, auto: Sequence[str], ascii: bool) -> Sequence[Tuple[str, Optional[Column]]]:
    """The shown keys (:func:`~ttop.view.columns.shown_keys`), each with its
    metric column (None for the others)."""
    key: Any = (choice, auto, ascii)
    try:
        got = _MADE.get(key)
    except TypeError:
        got = key = None
    if got is None:
        got = tuple((k, metric_column(k[len(C.METRIC):], ascii) if C.is_metric(k) else None)
                    for k in C.shown_keys(choice, auto))
        if key is not None:
            if len(_MADE) > 64:
                _MADE.clear()
            _MADE[key] = got
    return got


def _made_health(ascii: bool) -> Column:
    col = _MADE.get(("health", ascii))
    if col is None:
        col = _MADE[("health", ascii)] = health_column(ascii)
    return col


def _name_text(row: Row) -> str:
    if row.kind == "run":
        # several folders watched: the key is TAG/NAME, the name shows its folder's tag
        tag = getattr(row.run, "key", "").rpartition("/")[0]
        return clean(tag + "/" + row.run.run_name) if tag else clean(row.run.run_name)
    if row.kind == "rank":
        return rank_name(row.rank)
    if row.kind == "proc":
        p = row.proc
        indent = "  " * (1 + max(0, min(int(p.depth), 4)) + (1 if row.run.ranks else 0))
        return "%s[P] %d %s" % (indent, p.pid, clean(p.name) or "?")
    p = row.proc
    indent = "  " * (2 + max(0, min(int(p.depth), 4)) + (1 if row.run.ranks else 0))
    tname = clean(getattr(row.thread, "name", "") or "")
    return "%s[T] %d %s" % (indent, row.thread.tid, tname) if tname else "%s[T] %d" % (indent, row.thread.tid)


#: Rows whose names set the width of the name column.
NAME_ROWS = 2000


def name_width(rows: Sequence[Row], total_width: int) -> int:
    """The frozen name column: as wide as the longest visible name, between
    NAME_MIN and min(NAME_MAX, a third of the screen)."""
    return name_width_of([width(_name_text(r)) for r in rows[:NAME_ROWS]], total_width)


def name_width_of(widths: List[int], total_width: int) -> int:
    """:func:`name_width` from the widths of the first :data:`NAME_ROWS` names."""
    cap = max(NAME_MIN, min(NAME_MAX, total_width // 3))
    longest = max(widths + [len(NAME_TITLE)])
    return max(NAME_MIN, min(cap, longest))


def cell_text(col: Column, row: Row) -> str:
    if row.kind == "run":
        return col.run(row.run)
    if row.kind == "rank":
        return rank_cell(col.key, row.rank)
    if row.kind == "proc":
        return col.proc(row.proc) if col.proc else ""
    return col.thread(row.proc, row.thread) if col.thread else ""


def _layout(cols: Sequence[Column], offset: int, avail: int, url_width: int,
            widths: Optional[Mapping[str, int]] = None) -> List[Tuple[Column, int]]:
    """Which scrollable columns fit, and their widths (the last one may be
    clipped). ``widths`` overrides a column's width (one grown to fit its
    values)."""
    out: List[Tuple[Column, int]] = []
    used = 0
    for col in cols[offset:]:
        w = url_width if col.key == "wandb" else (widths or {}).get(col.key, col.width)
        need = w + 1  # one space before each column
        if used + need <= avail:
            out.append((col, w))
            used += need
            continue
        rest = avail - used - 1
        if rest >= 4:
            out.append((col, rest))
        break
    return out


def max_offset(snapshot: Any, state: Optional[ViewState] = None) -> int:
    return max(0, len(columns_for(snapshot, state)) - 1)


def row_role(row: Row) -> str:
    if row.kind == "rank":
        return rank_role(row.rank)
    if row.kind == "proc":
        return R.PROC
    if row.kind == "thread":
        return R.THREAD
    run = row.run
    phase = run.data.get("phase") if isinstance(run.data.get("phase"), str) else None
    return R.status_role(run.status, phase, run.status_inferred)


class TableFrame(FrozenRecord):
    lines: List[Line]
    rows: List[Row]
    selected: int  # index into rows, -1 if none
    top: int  # first row drawn
    columns: List[str]  # keys of the scrollable columns drawn

    def __init__(self, lines: List[Line], rows: List[Row], selected: int, top: int, columns: List[str]) -> None:
        self.__dict__.update(lines=lines, rows=rows, selected=selected, top=top, columns=columns)


def _ell(ascii: bool) -> str:
    return "..." if ascii else "\u2026"


#: Drawn run rows, by (run object, layout, selected, marked): an unchanged
#: run (every ended one) is not formatted again when only the selection
#: moved or a new snapshot came.
LINES_KEPT = 4096
_LINES = Kept(LINES_KEPT)


#: The text of a run's Epoch / Batch cell, by (run object, column): the
#: same run on another page of the table is not formatted again.
_GROWN = Kept(LINES_KEPT)


def _grow_text(col: Column, row: Row) -> str:
    if row.kind != "run":
        return clean(cell_text(col, row))
    key = (id(row.run), col.key)
    t = _GROWN.get(key, row.run)
    if t is None:
        t = clean(cell_text(col, row))
        _GROWN.put(key, row.run, t)
    return t


def render_table(snapshot: Any, state: ViewState, width_: int, height: int,
                 select: bool = True, rows: Optional[List[Row]] = None, cols: Optional[List[Column]] = None,
                 name_w: Optional[int] = None, memo: Optional[Dict[Any, Any]] = None) -> TableFrame:
    """Title line + at most ``height - 1`` rows, each exactly ``width_`` cells.

    ``top`` is adjusted (minimally) so the selected row is visible. With
    ``select=False`` (the ``--once`` printer) nothing is highlighted and
    ``height`` may be large enough for every row. ``rows``, ``cols`` and
    ``name_w``: :func:`visible_rows`, :func:`columns_for` and
    :func:`name_width` already worked out for this snapshot and state;
    ``memo``: a dict kept with them (the grown column widths per page).
    """
    ell = _ell(state.ascii)
    _LINES.turn(snapshot)
    _GROWN.turn(snapshot)
    if rows is None:
        rows = visible_rows(snapshot, state)
    if cols is None:
        cols = columns_for(snapshot, state)
    offset = max(0, min(state.col_offset, len(cols) - 1))
    nw = min(name_width(rows, width_) if name_w is None else name_w, max(1, width_))
    body_h = max(0, height - 1)
    sel = selected_index(rows, state) if select else -1

    top = max(0, min(state.top, max(0, len(rows) - body_h)))
    if sel >= 0 and body_h > 0:
        if sel < top:
            top = sel
        elif sel >= top + body_h:
            top = sel - body_h + 1
    shown = rows[top:top + body_h]

    # counters never lose digits: Epoch and Batch grow to fit the rows shown
    grown: Dict[str, int] = {}
    texts: Dict[str, List[str]] = {}  # the growing columns' cells, made once (--once shows every row)
    page = ("grown", top, body_h, offset)
    if memo is not None and page in memo:
        grown = memo[page]
    else:  # memo: a page of the UI's table, each run's cells kept (_GROWN)
        for col in cols[offset:]:
            if col.key in GROWING:
                texts[col.key] = cells = [_grow_text(col, r) if memo is not None else clean(cell_text(col, r))
                                          for r in shown]
                grown[col.key] = min(max([width(t) for t in cells] + [col.width]), GROW_MAX)
        if memo is not None:
            memo[page] = grown
    layout = _layout(cols, offset, width_ - nw, 9, grown)
    if any(c.key == "wandb" for c, _w in layout):  # as wide as the longest link shown (wider, it fits no better)
        url_w = 9
        for r in shown:
            if r.kind == "run":
                url_w = max(url_w, min(MAX_URL, width(_wandb(r.run))))
        layout = _layout(cols, offset, width_ - nw, url_w, grown)
    layout_key = (width_, nw, ell, tuple((c.key, w) for c, w in layout))

    lines: List[Line] = [title_line(state, layout, offset, nw, width_)]
    getters = [(col.run, col.status_colored, col.cell_role, texts.get(col.key)) for col, _w in layout]
    plan = row_plan(getters, layout, ell)

    for i, row in enumerate(shown):
        idx = top + i
        is_sel = idx == sel
        key = None
        if row.kind == "run":
            key = (id(row.run), layout_key, is_sel, row.run.key in state.marked)
            hit = _LINES.get(key, row.run)
            if hit is not None:
                lines.append(hit)
                continue
        base = row_role(row)
        name_role = base if row.kind != "run" else R.NORMAL
        name = _name_text(row)
        if row.kind == "run" and row.run.key in state.marked:
            name_role, name = R.MARK, "*" + name
        if row.kind == "run":
            line = run_line(row.run, base, name, name_role, plan, i, nw, width_, ell, row.run.stale, is_sel)
        else:
            parts = [(made[i] if made is not None else clean(cell_text(col, row)), base)
                     for (col, _w), (_g, _c, _r, made) in zip(layout, getters)]
            line = compose_row(name, name_role, parts, layout, nw, width_, ell, False, is_sel)
        if key is not None:
            _LINES.put(key, row.run, line)
        lines.append(line)
    return TableFrame(lines, list(rows), sel, top, [c.key for c, _ in layout])


def cell_role(col: Column, run: Any, base: str) -> str:
    """The role of ``run``'s cell in ``col`` (``base``: the row's role)."""
    role = base if col.status_colored else R.NORMAL
    if col.cell_role is not None:
        role = col.cell_role(run) or role
    return role
