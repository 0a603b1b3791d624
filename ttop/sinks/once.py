"""``ttop --once``: the main screen's header and full table, printed once.

Same pure renderer as the curses monitor (:mod:`ttop.view`; the table made
row by row from each run's cells, :mod:`ttop.view.oncetable`): every run, no
height limit, no selection. ANSI colours only when ``color`` is true; ASCII
only (``...`` and ``#``/``.`` bars) when the stream cannot encode Unicode or
``ascii=True``.
"""
from __future__ import annotations

import codecs
from typing import IO, Any, Callable, Dict, Iterable, Optional

from ..view import roles as R
from ..view.asciify import to_ascii
from ..view.footer import counts_segments, snapshot_notice
from ..view.header import header_lines
from ..view.oncetable import KeptRun, RowCells, RunCells, once_state, table_lines
from ..view.text import Line, clean, clip, crop_line, line_width

# role -> SGR parameters (8 colours; no colour for roles absent here)
SGR: Dict[str, str] = {
    R.DIM: "2", R.TITLE: "30;46", R.LABEL: "1;36", R.BAR_LOW: "32", R.BAR_MID: "33",
    R.BAR_HIGH: "1;31", R.BAR_EMPTY: "2", R.KEY: "1;36", R.NOTICE: "33", R.ERROR: "1;31",
    R.PAUSED: "1;30;43", R.PROC: "36", R.THREAD: "34", R.FILTER: "1;35",
    R.LOADING: "1;34", R.TRAIN: "32", R.VALIDATION: "36", R.RUNNING: "1;32", R.FINISHED: "1",
    R.FAILED: "1;31", R.CANCELED: "33", R.KILLED: "1;35", R.KILLED_INFERRED: "4;35",
    R.CHART: "32", R.TREND_UP: "33", R.TREND_DOWN: "32", R.MARK: "1;33",
    R.HEALTH_OK: "32", R.HEALTH_WARN: "1;33", R.HEALTH_CRIT: "1;37;41",
    R.SERIES[0]: "32", R.SERIES[1]: "35", R.SERIES[2]: "36", R.SERIES[3]: "33",
    R.SERIES[4]: "1;34", R.SERIES[5]: "31",
}


def _sgr(role: str) -> str:
    base, mods = R.split(role)
    codes = [SGR[base]] if base in SGR else []
    if "dim" in mods:
        codes.append("2")
    if "sel" in mods:
        codes.append("7")
    return ";".join(codes)


def line_text(line: Line, color: bool) -> str:
    if not color:
        return "".join([t for t, _ in line]).rstrip()
    out = []
    for text, role in line:
        code = _sgr(role)
        out.append("\x1b[%sm%s\x1b[0m" % (code, text) if code else text)
    return "".join(out)


def wants_ascii(stream: Any) -> bool:
    enc = getattr(stream, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(enc).name not in ("utf-8", "utf-16", "utf-32", "gb18030")
    except LookupError:
        return True


CellsOf = Callable[[Any], RowCells]


def render_once(snapshot: Any, width: int, ascii: bool = False, columns: Any = None,
                cells_of: Optional[CellsOf] = None) -> Iterable[Line]:
    """The lines ``--once`` prints: header, table title, every run, a summary.
    ``columns``: the column choice (:mod:`ttop.view.columns`), None for the default.
    ``cells_of(run)``: a run row's cells (default: worked out from the run
    as they are needed; a :class:`~ttop.view.oncetable.KeptRun` brings its
    own); a kept row that cannot be had fails before the first line."""
    width = max(40, int(width))
    state = once_state(snapshot, ascii, columns)
    if cells_of is None:
        def cells_of(run: Any) -> RowCells:
            return run if type(run) is KeptRun else RunCells(run, ascii)
    # a multi-rank job's ranks as rows
    title, _, _, rows = table_lines(snapshot, state, width, cells_of)
    for line in header_lines(snapshot, state, width, 1 + len(snapshot.gpus) + len(snapshot.tpus) + 2):
        yield line
    yield title
    for line in rows:
        yield line
    summary = counts_segments(snapshot)
    stale = sum(1 for r in snapshot.runs if r.stale)
    if stale:  # (as the monitor's footer says it)
        summary.append(("  %d stale" % stale, R.DIM))
    if any(r.status_inferred for r in snapshot.runs):
        summary.append(("  * inferred: process gone", R.KILLED_INFERRED))
    msg, err = snapshot_notice(snapshot)
    room = width - line_width(tuple(summary)) - 2
    if msg and room >= 12:
        summary.append(("  " + clip(clean(msg), room, "..." if ascii else "\u2026"), R.ERROR if err else R.NOTICE))
    yield crop_line(tuple(summary), 0, width)


def print_once(snapshot: Any, stream: IO[str], *, width: int, color: bool, ascii: Optional[bool] = None,
               columns: Any = None, cells_of: Optional[CellsOf] = None) -> None:
    """Print the snapshot as the monitor's header and table to ``stream``."""
    if ascii is None:
        ascii = wants_ascii(stream)
    for line in render_once(snapshot, width, ascii, columns, cells_of):
        text = line_text(line, color)
        if ascii and not text.isascii():
            text = to_ascii(text)
        stream.write(text + "\n")
