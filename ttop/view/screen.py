"""The whole main screen as lines: header + table + footer.

``render_main(snapshot, state, width, height)`` returns exactly ``height``
lines of exactly ``width`` cells (or one short message line when the terminal
is smaller than :data:`MIN_WIDTH` x :data:`MIN_HEIGHT`). ``main_frame`` returns
the same lines plus what the main screen needs to keep its state (the top row
and the selected index).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from . import roles as R
from .footer import hint_line, status_line
from .header import header_lines
from .state import ViewState
from .table import TableFrame, columns_for, render_table, visible_rows, wandb_url
from .text import Line, crop_line, fit

MIN_WIDTH = 40
MIN_HEIGHT = 10


def too_small(width: int, height: int) -> bool:
    return width < MIN_WIDTH or height < MIN_HEIGHT


def too_small_lines(width: int, height: int) -> List[Line]:
    msg = "ttop needs at least %dx%d (now %dx%d)" % (MIN_WIDTH, MIN_HEIGHT, width, height)
    if width <= 0 or height <= 0:
        return []
    blank: Line = ((" " * width, R.NORMAL),)
    return [((fit(msg, width, "<", ""), R.ERROR),)] + [blank] * (height - 1)


@dataclass(frozen=True)
class Frame:
    lines: List[Line]
    table: Optional[TableFrame]
    body_height: int  # rows of the table (for PgUp/PgDn)


def main_frame(snapshot: Any, state: ViewState, width: int, height: int) -> Frame:
    if too_small(width, height):
        return Frame(too_small_lines(width, height), None, 0)
    rows = visible_rows(snapshot, state)
    # header gets at most a third of the screen beyond its first line
    max_header = 1 + max(0, (height - 8) // 3)
    head = header_lines(snapshot, state, width, max_header)
    footer_h = 2
    table_h = height - len(head) - footer_h
    tf = render_table(snapshot, state, width, table_h, rows=rows)
    lines: List[Line] = list(head) + list(tf.lines)
    while len(lines) < height - footer_h:
        lines.append(((" " * width, R.NORMAL),))
    total = len(snapshot.runs) if snapshot is not None else 0
    shown = sum(1 for r in rows if r.kind == "run")
    inferred = any(r.kind == "run" and r.run.status_inferred for r in rows)
    ncols = len(columns_for(snapshot, state))
    col_info = ""
    if state.col_offset > 0 or len(tf.columns) < ncols:
        first = min(state.col_offset, ncols - 1) + 1
        col_info = "cols %d-%d/%d" % (first, first + len(tf.columns) - 1, ncols)
    sel_run = tf.rows[tf.selected].run if 0 <= tf.selected < len(tf.rows) else None
    url = wandb_url(sel_run) if sel_run is not None and "wandb" in tf.columns and not state.message else None
    if url:  # the full link, readable and copyable, while its column is in view
        state = state.with_(message="wandb: " + url, message_error=False)
    stale = sum(1 for r in rows if r.kind == "run" and r.run.stale)
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
