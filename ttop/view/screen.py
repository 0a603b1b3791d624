"""The whole main screen as lines: header + table + footer.

``render_main(snapshot, state, width, height)`` returns exactly ``height``
lines of exactly ``width`` cells (or one short message line when the terminal
is smaller than :data:`MIN_WIDTH` x :data:`MIN_HEIGHT`). ``main_frame`` returns
the same lines plus what the main screen needs to keep its state (the top row
and the selected index).
"""
from __future__ import annotations

from ..record import FrozenRecord
from . import roles as R
from .footer import hint_line, status_line
from .header import header_lines
from .state import ViewState
from .table import TableFrame, columns_for, name_width, render_table, visible_rows, wandb_url
from .text import Line, crop_line, fit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

MIN_WIDTH = 40
MIN_HEIGHT = 10


def too_small(width: int, height: int) -> bool:
    return width < MIN_WIDTH or height < MIN_HEIGHT


def too_small_lines(width: int, height: int) -> List[Line]:
    msg = "ttop needs at least %dx%d (now %dx%d)" % (MIN_WIDTH, MIN_HEIGHT, width, height)
    if width <= 0 or height <= 0:
        return []
    # wrapped at the spaces, so a narrow terminal still shows the size needed
    rows: List[str] = []
    for word in msg.split(" "):
        if rows and len(rows[-1]) + 1 + len(word) <= width:
            rows[-1] += " " + word
        else:
            rows.append(word)
    blank: Line = ((" " * width, R.NORMAL),)
    out: List[Line] = [((fit(r, width, "<", ""), R.ERROR),) for r in rows[:height]]
    return out + [blank] * (height - len(out))


class Frame(FrozenRecord):
    lines: List[Line]
    table: Optional[TableFrame]
    body_height: int  # rows of the table (for PgUp/PgDn)

    def __init__(self, lines: List[Line], table: Optional[TableFrame], body_height: int) -> None:
        self.__dict__.update(lines=lines, table=table, body_height=body_height)


class _Derived:
    """What a frame needs from every run, worked out once per snapshot and
    view shape (filters, sort, expanded runs, columns): the rows, the
    columns, the counts, and per width the name column and the header."""

    __slots__ = ("snapshot", "shape", "rows", "cols", "shown", "inferred", "stale", "memo", "_nw", "_head")

    def __init__(self, snapshot: Any, shape: ViewState, state: ViewState) -> None:
        self.snapshot, self.shape = snapshot, shape
        self.rows = rows = visible_rows(snapshot, state)
        self.cols = columns_for(snapshot, state)
        self.shown = sum(1 for r in rows if r.kind == "run")
        self.inferred = any(r.kind == "run" and r.run.status_inferred for r in rows)
        self.stale = sum(1 for r in rows if r.kind == "run" and r.run.stale)
        self.memo: Dict[Any, Any] = {}  # render_table's, for this snapshot and shape
        self._nw: Dict[int, int] = {}
        self._head: Dict[Tuple[int, int, int], List[Line]] = {}

    def name_width(self, width: int) -> int:
        w = self._nw.get(width)
        if w is None:
            w = self._nw[width] = name_width(self.rows, width)
        return w

    def header(self, state: ViewState, width: int, max_lines: int) -> List[Line]:
        key = (width, max_lines, state.alerts)
        head = self._head.get(key)
        if head is None:
            if len(self._head) > 8:
                self._head.clear()
            head = self._head[key] = header_lines(self.snapshot, state, width, max_lines)
        return head


#: The last frames' :class:`_Derived` (the newest first): a key that only
#: moves the selection, scrolls or shows a message redraws without walking
#: every run again. Two: the snapshot on screen and the next one, which the
#: UI's collector listener may be preparing meanwhile.
_last: List[_Derived] = []


def _derived(snapshot: Any, state: ViewState) -> _Derived:
    # the state less what only says where the table is and what the footer shows
    shape = state.with_(selected=None, top=0, sel_index=0, col_offset=0, message=None, message_error=False,
                        alerts=0, paused=False, refreshing=False)
    kept = list(_last)  # another thread may replace it meanwhile
    for d in kept:
        if d.snapshot is snapshot and d.shape == shape:
            return d
    d = _Derived(snapshot, shape, state)
    _last[:] = [d] + kept[:1]
    return d


#: The last frame made, with what it was made from: the monitor makes each
#: snapshot's frame ahead (its collector listener), then draws it, and a
#: frame is a function of these alone.
_made: List[Any] = [None, None, 0, 0, None]


def main_frame(snapshot: Any, state: ViewState, width: int, height: int) -> Frame:
    made = _made[:]  # another thread may replace it meanwhile
    if made[0] is snapshot and made[2] == width and made[3] == height and made[1] == state:
        return made[4]
    frame = _main_frame(snapshot, state, width, height)
    _made[:] = [snapshot, state, width, height, frame]
    return frame


def _main_frame(snapshot: Any, state: ViewState, width: int, height: int) -> Frame:
    if too_small(width, height):
        return Frame(too_small_lines(width, height), None, 0)
    d = _derived(snapshot, state)
    rows = d.rows
    # header gets at most a third of the screen beyond its first line
    max_header = 1 + max(0, (height - 8) // 3)
    head = d.header(state, width, max_header)
    footer_h = 2
    table_h = height - len(head) - footer_h
    tf = render_table(snapshot, state, width, table_h, rows=rows, cols=d.cols, name_w=d.name_width(width),
                      memo=d.memo)
    lines: List[Line] = list(head) + list(tf.lines)
    while len(lines) < height - footer_h:
        lines.append(((" " * width, R.NORMAL),))
    total = len(snapshot.runs) if snapshot is not None else 0
    shown, inferred, stale = d.shown, d.inferred, d.stale
    ncols = len(d.cols)
    col_info = ""
    if state.col_offset > 0 or len(tf.columns) < ncols:
        first = min(state.col_offset, ncols - 1) + 1
        col_info = "cols %d-%d/%d" % (first, first + len(tf.columns) - 1, ncols)
    sel_run = tf.rows[tf.selected].run if 0 <= tf.selected < len(tf.rows) else None
    url = wandb_url(sel_run) if sel_run is not None and "wandb" in tf.columns and not state.message else None
    if url:  # the full link, readable and copyable, while its column is in view
        state = state.with_(message="wandb: " + url, message_error=False)
    status = status_line(snapshot, state, width, shown, total, inferred, col_info, sel_run, stale)
    if url and ("wandb: " + url) not in "".join(t for t, _ in status):
        # too long to share the line: the link gets the whole line
        status = crop_line((("wandb: ", R.KEY), (url, R.NOTICE), (" " * width, R.FOOTER)), 0, width)
    lines.append(status)
    lines.append(hint_line(state, width))
    return Frame(lines[:height], tf, max(1, table_h - 1))


def render_main(snapshot: Any, state: ViewState, width: int, height: int) -> List[Line]:
    """(snapshot, view state, width, height) -> lines of (text, role)."""
    return main_frame(snapshot, state, width, height).lines
