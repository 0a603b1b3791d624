"""``--once``'s table, made from each row's cells.

The same lines :func:`~ttop.view.table.render_table` draws for every row with
nothing selected (a test compares them), made in two steps: each row's
:class:`RowCells` (its name, role and the text and role of each cell, by
column key), then the lines of the layout those cells need.

An ended run's cells never change. ``--once`` keeps them across starts with
the line they made (:mod:`ttop.sinks.oncecache`) and puts a :class:`KeptRun`
in the snapshot in the run's place: it answers what the header, the footer
and the choice of columns ask of a run, and its cells are the kept ones (the
kept line is used as is while the layout is the same).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from . import fmt
from . import roles as R
from .columns import named_metrics
from .metrics import _metrics_of, rank_names
from .ranks import rank_cell, rank_name, rank_role
from .state import ViewState
from .table import (
    _BY_KEY,
    COLUMNS,
    COST_COLUMN,
    GROW_MAX,
    GROWING,
    MAX_URL,
    METRIC_PREFIX,
    NAME_ROWS,
    Column,
    Row,
    _ell,
    _layout,
    _name_text,
    columns_for,
    compose_row,
    health_column,
    metric_column,
    name_width_of,
    row_role,
    title_line,
)
from .text import Line, clean, width

#: A cell ``(text, role)``; role None: the row's (status-coloured columns) or the normal one.
Cell = Tuple[str, Optional[str]]
#: The cell of a key a run has none for (its cells leave these out).
NO_CELL: Cell = (fmt.NA, None)
#: The columns whose cells an ended run keeps (with one per metric it reports).
KEPT_KEYS: Tuple[str, ...] = tuple(c.key for c in COLUMNS) + ("health", "cost")


class RowCells:
    """One row's name, roles and cells (:meth:`cell`); ``line`` /
    ``line_key``: its line and the layout it was made for (see
    :func:`table_lines`)."""

    __slots__ = ("name", "name_role", "role", "stale", "_cells", "_widths", "line", "line_key")

    def __init__(self, name: str, name_role: str, role: str, cells: Optional[Dict[str, Cell]],
                 widths: Optional[Tuple[int, int, int]] = None, stale: bool = False) -> None:
        self.name = name
        self.name_role = name_role
        self.role = role
        self.stale = stale
        self._cells = cells
        self._widths = widths
        self.line: Optional[Line] = None
        self.line_key: Any = None

    @property
    def cells(self) -> Dict[str, Cell]:
        """Every cell worked out (or kept), by column key."""
        assert self._cells is not None
        return self._cells

    def cell(self, key: str) -> Cell:
        return self.cells.get(key, NO_CELL)

    @property
    def widths(self) -> Tuple[int, int, int]:
        """Widths of the Epoch, Batch and Wandb URL cells."""
        if self._widths is None:
            self._widths = (width(self.cell("epoch")[0]), width(self.cell("batch")[0]), width(self.cell("wandb")[0]))
        return self._widths


_COLUMNS: Dict[Tuple[str, bool], Column] = {}


def column(key: str, ascii: bool = False) -> Column:
    """The column of ``key`` (a built-in one, ``health``, ``cost`` or ``m:NAME``)."""
    col = _COLUMNS.get((key, ascii))
    if col is None:
        if key.startswith(METRIC_PREFIX):
            col = metric_column(key[len(METRIC_PREFIX):], ascii)
        elif key == "health":
            col = health_column(ascii)
        elif key == "cost":
            col = COST_COLUMN
        else:
            col = _BY_KEY[key]
        if len(_COLUMNS) < 4096:
            _COLUMNS[(key, ascii)] = col
    return col


def kept_keys(run: Any) -> List[str]:
    """Every column key whose cell an ended run keeps: the built-in
    columns, Health, Cost, and a metric column per metric it reports."""
    return list(KEPT_KEYS) + [METRIC_PREFIX + n for n in _metrics_of(run) if isinstance(n, str) and n]


class RunCells(RowCells):
    """A run row whose cells are worked out from the run as they are asked
    for (:meth:`fill` works out several); a cell with the text ``-`` and no
    role of its own is not stored (:data:`NO_CELL`)."""

    __slots__ = ("run", "ascii", "_done")

    def __init__(self, run: Any, ascii: bool = False) -> None:
        row = Row("run", ("run", run.key), run)
        super().__init__(_name_text(row), R.NORMAL, row_role(row), {}, stale=bool(run.stale))
        self.run = run
        self.ascii = ascii
        self._done: set = set()

    def cell(self, key: str) -> Cell:
        if key not in self._done:
            self.fill((key,))
        return self.cells.get(key, NO_CELL)

    def fill(self, keys: Iterable[str]) -> "RunCells":
        run, ascii, cells, done = self.run, self.ascii, self.cells, self._done
        na = fmt.NA
        for key in keys:
            if key in done:
                continue
            done.add(key)
            col = _COLUMNS.get((key, ascii)) or column(key, ascii)
            text = col.run(run)  # cell_text of a run row
            if not (text.isascii() and text.isprintable()):
                text = clean(text)
            role = (col.cell_role(run) or None) if col.cell_role is not None else None
            if text != na or role is not None:
                cells[key] = (text, role)
        return self


def run_cells(run: Any, keys: Iterable[str] = (), ascii: bool = False) -> RunCells:
    """A run row's cells, those of ``keys`` worked out now (see :class:`RunCells`)."""
    return RunCells(run, ascii).fill(keys)


def rank_cells(row: Row, keys: Sequence[str]) -> RowCells:
    """A rank row's cells (every one in the rank's role)."""
    base = rank_role(row.rank)
    cells: Dict[str, Cell] = {k: (clean(rank_cell(k, row.rank)), base) for k in keys}
    return RowCells(rank_name(row.rank), base, base, cells)


class KeptRun(RowCells):
    """An ended run as an earlier ``--once`` kept it: what the header, the
    footer and the choice of columns read of a run, and its row's cells
    (it is its own :class:`RowCells`). Never RUNNING, never stale, no ranks,
    no resources. ``facts``: ``(name, role, status, host, local, health,
    cost, projected cost, metric names, widths, checksum of the cells,
    line or None)``; ``line`` is for the layout ``line_key``;
    ``load(entry)`` gives the cells."""

    __slots__ = ("key", "file", "status", "host", "local", "health", "cost", "cost_projected", "metric_names",
                 "entry", "_loader")
    status_inferred = False
    ranks: Tuple[Any, ...] = ()
    resources = None
    processes: Tuple[Any, ...] = ()

    def __init__(self, key: str, file: str, facts: Tuple[Any, ...], line_key: Any, entry: Any,
                 load: Callable[[Any], Dict[str, Cell]]) -> None:
        (self.name, self.role, self.status, self.host, self.local, self.health, self.cost, self.cost_projected,
         self.metric_names, self._widths, _crc, self.line) = facts
        self.key = key
        self.file = file
        self.name_role = R.NORMAL
        self.stale = False
        self._cells = None
        self._loader = load
        self.entry = entry
        self.line_key = line_key if self.line is not None else None

    @property
    def cells(self) -> Dict[str, Cell]:
        if self._cells is None:
            self._cells = self._loader(self.entry)
        return self._cells

    @property
    def reported_status(self) -> str:
        return self.status


def once_metrics(runs: Iterable[Any], n: int) -> List[str]:
    """:func:`~ttop.view.metrics.default_metrics` of runs among which are
    :class:`KeptRun`s."""
    return rank_names((r.metric_names if type(r) is KeptRun else _metrics_of(r) for r in runs), n)


def once_state(snapshot: Any, ascii: bool, columns: Any) -> ViewState:
    """``--once``'s view state: the metric columns chosen from every run
    (kept ones too) as :func:`~ttop.view.table.columns_for` would."""
    from . import columns as C

    choice = columns or C.DEFAULT
    ranked = once_metrics(snapshot.runs, 3 + len(named_metrics(choice)))
    return ViewState(ascii=ascii, columns=columns, metrics=tuple(ranked))


def table_lines(snapshot: Any, state: ViewState, width_: int,
                cells_of: Callable[[Any], RowCells]) -> Tuple[Line, List[RowCells], Any, Iterator[Line]]:
    """``--once``'s table: (title line, each row's cells, the layout's key,
    the rows' lines). ``cells_of(run)``: a run row's cells. The lines are
    made as they are taken; each row's ``line`` is then its line for the
    layout. A kept row's cells are loaded before this returns, where its
    line is not for this layout (one that cannot be had fails here, before
    anything is printed)."""
    ell = _ell(state.ascii)
    cols = columns_for(snapshot, state)
    keys = [c.key for c in cols]
    # visible_rows(ranks=True) with no filter and no sort: each run, its ranks under it
    assert state.sort_key is None and state.status_filter is None and not state.effective_name_filter()
    made: List[RowCells] = []
    url_w = 9
    wandb = "wandb" in keys
    for run in snapshot.runs:
        rc = cells_of(run)
        made.append(rc)
        if wandb:
            url_w = max(url_w, min(MAX_URL, rc.widths[2]))
        for rk in run.ranks:
            made.append(rank_cells(Row("rank", ("rank", run.key, rk.rank), run, rank=rk), keys))
    nw = min(name_width_of([width(rc.name) for rc in made[:NAME_ROWS]], width_), max(1, width_))
    grown: Dict[str, int] = {}
    for col in cols:
        if col.key in GROWING:
            i = 0 if col.key == "epoch" else 1
            need = max([rc.widths[i] for rc in made] + [col.width])
            grown[col.key] = min(need, GROW_MAX)
    layout = _layout(cols, 0, width_ - nw, url_w, grown)
    layout_key = (width_, nw, ell, tuple((c.key, w) for c, w in layout))
    for rc in made:
        if rc.line_key != layout_key and type(rc) is KeptRun:
            rc.cells  # noqa: B018 (loaded now, or fails now)
    return title_line(state, layout, 0, nw, width_), made, layout_key, _lines(made, layout, layout_key, nw, width_, ell)


def _lines(made: List[RowCells], layout: Sequence[Tuple[Column, int]], layout_key: Any, nw: int, width_: int,
           ell: str) -> Iterator[Line]:
    normal = R.NORMAL
    for rc in made:
        if rc.line_key == layout_key and rc.line is not None:
            yield rc.line
            continue
        cell = rc.cell
        base = rc.role
        parts = []
        for col, _w in layout:
            text, role = cell(col.key)
            parts.append((text, role or (base if col.status_colored else normal)))
        rc.line = compose_row(rc.name, rc.name_role, parts, layout, nw, width_, ell, rc.stale)
        rc.line_key = layout_key
        yield rc.line
