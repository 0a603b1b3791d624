"""Putting a frame's lines on the curses screen (:meth:`ttop.ui.app.App.paint`).

``paint_lines(stdscr, palette, prev, lines, width, height, ascii) -> bool``
writes the lines that differ from ``prev`` (the lines last written, ``None``
where unknown; updated in place) and says whether anything was written. A
line that changed goes to the terminal whole (one cursor move to its
start), not as the pieces that changed with a cursor move to each.
Before that, ``shift_lines`` moves a block of lines that moved up or down
by one (the table scrolled under a moving selection) with the terminal's
delete / insert line instead of writing it again.
"""
from __future__ import annotations

import curses
from _operator import and_, eq, ne  # (the C module under operator: its Python half is not imported at start)

from ..view.asciify import to_ascii
from ..view.text import Line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional

#: Fewest lines moved with one delete / insert line (fewer are drawn again).
SHIFT_MIN = 4

_BLANK: Line = ()


def paint_lines(stdscr: Any, palette: Any, prev: List[Optional[Line]], lines: List[Line], width: int, height: int,
                ascii: bool) -> bool:
    """Write the lines of ``lines`` that differ from ``prev`` (``height``
    entries, updated in place); True when something was written or moved."""
    changed = shift_lines(stdscr, prev, lines)
    for y in range(height):
        line = lines[y] if y < len(lines) else _BLANK
        if prev[y] == line:
            continue
        prev[y] = line
        changed = True
        try:
            stdscr.move(y, 0)
            stdscr.clrtoeol()
            # sent whole, left to right: curses would otherwise work out a
            # cursor move to each changed piece (a live row changes in
            # several places each cycle: its batch, rate, metrics and
            # times), ~20k instructions a move, more than the line's bytes
            stdscr.redrawln(y, 1)
        except curses.error:
            continue
        # each segment where the last one ended (curses moves the cursor
        # by the cells it wrote: no width measured here)
        for text, role in line:
            if ascii:
                text = to_ascii(text)
            try:
                stdscr.addstr(text, palette.attr(role))
            except curses.error:
                break  # the bottom-right cell written: the cursor cannot move past it
            cy, cx = stdscr.getyx()
            if cy != y or cx >= width:
                break  # the line is full
    return changed


def shift_lines(stdscr: Any, prev: List[Optional[Line]], lines: List[Line]) -> bool:
    """Where a block of lines moved up or down by one since the last
    frame (the table scrolled under a moving selection), move it with
    the terminal's delete / insert line instead of drawing it again;
    ``prev`` follows. True when something moved."""
    height = len(prev)
    # first, at C speed: is any line the old line of a neighbour, and not its own?
    news = list(map(ne, lines, prev))
    if not (any(map(and_, map(eq, lines, prev[1:]), news)) or any(map(and_, map(eq, lines[1:], prev), news[1:]))):
        return False
    best = (0, 0, 0)  # length, first row, shift
    for k in (1, -1):
        start = -1
        for y in range(height + 1):
            src = y + k
            same = (y < height and 0 <= src < height and y < len(lines) and prev[src] is not None
                    and lines[y] == prev[src] and lines[y] != prev[y])
            if same and start < 0:
                start = y
            elif not same and start >= 0:
                if y - start > best[0]:
                    best = (y - start, start, k)
                start = -1
    n, a, k = best
    if n < SHIFT_MIN:
        return False
    b = a + n  # rows a..b-1 get the lines that were k rows further down
    try:
        if k == 1:
            stdscr.move(a, 0)
            stdscr.deleteln()
            stdscr.move(b, 0)
            stdscr.insertln()
            prev[a:b] = prev[a + 1:b + 1]
            prev[b] = None
        else:
            stdscr.move(a - 1, 0)
            stdscr.insertln()
            stdscr.move(b, 0)
            stdscr.deleteln()
            prev[a:b] = prev[a - 1:b - 1]
            prev[a - 1] = None
            prev[height - 1] = None
    except curses.error:
        prev[:] = [None] * height
    return True
