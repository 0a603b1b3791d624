"""The output viewer (``o``): a run's captured stdout and stderr.

Logs are paged lazily (:mod:`ttop.logfile`): a log of any size opens at once
and no more than a few screens of it are ever in memory. Only files that
resolve inside the progress folder are read (:func:`ttop.levers.logs.log_files`);
anything else is refused on screen, naming the path.

Streams: ``s`` cycles stdout, stderr, both (two panes) and "by arrival". The
capture files carry no timestamps, so ttop cannot know how lines already in
the two files interleaved in time; rather than invent an order:

* "both" shows the two streams in two panes (stdout above, stderr below), each
  following its own tail; Tab moves the focus (the pane that keys scroll);
* "by arrival" interleaves, labelled ``[out]`` / ``[err]``, the lines that
  arrived *while the viewer is open*, in the order ttop saw them (files are
  polled at every refresh; lines that arrived between the same two polls keep
  their order within their stream, stdout's first). The last 10,000 such
  lines are kept.

Keys: Up/Down, PgUp/PgDn, Home/End; ``F`` or End: follow (like ``tail -f``,
on at start, off as soon as you scroll up); ``/`` search forward (Enter),
``n``/``N`` next/previous match (wrapping around the file; a search through a
huge log stops after half a second, says how far it got, and ``n`` goes on); ``w`` toggles
wrapping long lines, otherwise Left/Right scroll horizontally; Esc or q close.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from ..arrival import ArrivalLog
from ..levers.logs import log_files
from ..logfile import LogPager, display_text
from ..view import fmt
from ..view import roles as R
from ..view.text import Line, Segment, char_width, clean, clip_start, crop_line, line_width
from .dialogs import wrap_text
from .screen import AppContext, Screen

STREAMS = ("stdout", "stderr")
MODES = ("stdout", "stderr", "both", "arrival")
HSTEP = 8
#: Seconds one search key may block the screen; a longer search stops and
#: goes on with the next n / N.
SEARCH_BUDGET = 0.5


def _pad(segs, width: int, role: str = R.NORMAL) -> Line:
    line = crop_line(tuple(segs), 0, width)
    w = line_width(line)
    if w < width:
        line = line + ((" " * (width - w), role),)
    return line


def highlight(text: str, query: Optional[str]) -> Line:
    """``text`` as segments with every match of ``query`` (smart case)
    marked."""
    if not query:
        return ((text, R.NORMAL),)
    flags = re.IGNORECASE if query == query.lower() else 0
    segs: List[Segment] = []
    pos = 0
    for m in re.finditer(re.escape(clean(query)), text, flags):
        if m.start() == m.end():
            continue
        if m.start() > pos:
            segs.append((text[pos:m.start()], R.NORMAL))
        segs.append((m.group(0), R.with_mod(R.NOTICE, R.SEL)))
        pos = m.end()
    if pos < len(text):
        segs.append((text[pos:], R.NORMAL))
    return tuple(segs)


def wrap_rows(line: Line, width: int) -> List[Line]:
    """``line`` cut into rows of ``width`` cells, in one pass over its
    characters (a log line can be 16 KiB: cropping it once per row would be
    quadratic). A wide character that would straddle a row's end starts the
    next row (the row ends with a blank), as a terminal wraps it: wrapping
    shows every character. Only one wider than a whole row (``width`` 1)
    is cut into two blanks, as :func:`crop_line` does."""
    if width <= 0 or line_width(line) <= width:
        return [line]
    rows: List[Line] = []
    row: List[Segment] = []
    used = 0
    for text, role in line:
        buf: List[str] = []
        if text.isascii():  # one cell per character: cut by slicing
            pos = 0
            while pos < len(text):
                take = min(width - used, len(text) - pos)
                buf.append(text[pos:pos + take])
                used += take
                pos += take
                if used == width and pos < len(text):
                    row.append(("".join(buf), role))
                    rows.append(tuple(row))
                    row, buf, used = [], [], 0
        else:
            for ch in text:
                cw = char_width(ch)
                if used + cw > width and cw <= width:  # to the next row whole
                    if buf:
                        row.append(("".join(buf), role))
                        buf = []
                    if used < width:
                        row.append((" " * (width - used), R.NORMAL))
                    rows.append(tuple(row))
                    row, used = [], 0
                while used + cw > width:  # wider than a row: cut in half
                    if used < width:  # a wide character cut in half
                        buf.append(" " * (width - used))
                        cw -= width - used
                        ch = " " * cw
                    row.append(("".join(buf), role))
                    rows.append(tuple(row))
                    row, buf, used = [], [], 0
                buf.append(ch)
                used += cw
        if buf:
            row.append(("".join(buf), role))
        if used == width:
            rows.append(tuple(row))
            row, used = [], 0
    if row:
        rows.append(tuple(row))
    return rows


class Pane:
    """One stream: where its file is (or why it is refused) and its pager."""

    def __init__(self, stream: str, real: Optional[str], shown: str, reason: Optional[str],
                 folder: Optional[str] = None, owner: Optional[int] = None) -> None:
        self.stream = stream
        self.shown = shown
        self.reason = reason
        self.pager = LogPager(real, folder=folder, owner=owner)

    @property
    def path(self) -> Optional[str]:
        """The log file being read, None when refused or not there."""
        f = self.pager.file
        return f.path if f is not None else None

    def title(self, width_hint: int, focused: bool, wrap: bool, sep: str = " \u00b7 ") -> str:
        pg = self.pager
        parts = [self.stream]
        if self.shown:
            parts.append(clean(self.shown))
        if self.reason is None and pg.file is not None and pg.file.error is None:
            parts.append(fmt.size(pg.size))
            pct = pg.percent(0)
            parts.append("follow" if pg.follow else ("%d%%" % pct if pct is not None else "top"))
            if not wrap and pg.col:
                parts.append("col %d" % pg.col)
        return sep.join(parts)

    def body(self, width: int, height: int, wrap: bool, query: Optional[str]) -> List[Line]:
        if height <= 0:
            return []
        if self.reason is not None:
            return [_pad([(t, R.ERROR)], width) for t in wrap_text(self.reason, width)][:height]
        pg = self.pager
        pg.refresh()
        f = pg.file
        if f is not None and f.error is not None:
            return [_pad([("%s: %s" % (clean(self.shown), clean(f.error)), R.DIM)], width)]
        raw = pg.visible(height)
        if not raw:
            return [_pad([("(empty so far)", R.DIM)], width)]
        rows: List[Line] = []
        for _s, _e, b in raw:
            line = highlight(display_text(b), query)
            if wrap:
                rows.extend(wrap_rows(line, width))
            else:
                rows.append(crop_line(line, pg.col, width))
        if wrap and len(rows) > height:
            rows = rows[-height:] if pg.follow else rows[:height]
        return [_pad(list(r), width) for r in rows[:height]]


class OutputScreen(Screen):
    modal = False

    def __init__(self, ctx: AppContext, run_key: str) -> None:
        self.key = run_key
        run = ctx.snapshot.run(run_key) if ctx.snapshot is not None else None
        self.run_name = clean(run.run_name) if run is not None else clean(run_key)
        self.panes: Dict[str, Pane] = {}
        if run is not None:
            files = log_files(run.folder, run)
            for stream in STREAMS:
                real, shown, reason = files[stream]
                self.panes[stream] = Pane(stream, real, shown, reason, run.folder, run.owner_uid)
        else:
            for stream in STREAMS:
                self.panes[stream] = Pane(stream, None, "", "run %s is no longer in the folder" % self.run_name)
        self.mode = "stdout"
        out = self.panes["stdout"]
        err = self.panes["stderr"]
        if out.reason is None and err.reason is None:
            out.pager.refresh()
            err.pager.refresh()
            if out.pager.size == 0 and err.pager.size > 0:
                self.mode = "stderr"
        self.focus = self.mode if self.mode != "both" else "stdout"
        self.arrival = ArrivalLog([(st, self.panes[st].path) for st in STREAMS], folder=run.folder if run is not None else ctx.folder,
                                  owner=run.owner_uid if run is not None else None)
        self.arr_top = 0  # absolute number of the first line shown
        self.arr_follow = True
        self.wrap = False
        self.prompt: Optional[str] = None  # the search being typed
        self.query: Optional[str] = None
        self.message: Optional[Tuple[str, bool]] = None
        self._heights: Dict[str, int] = {"stdout": 10, "stderr": 10}
        self._width = 80

    def _visible_streams(self) -> List[str]:
        return list(STREAMS) if self.mode == "both" else [self.mode]

    def on_snapshot(self, ctx: AppContext) -> None:
        self.arrival.poll()

    # -- arrival mode ---------------------------------------------------------

    def _arr_bounds(self, h: int) -> Tuple[int, int]:
        first = self.arrival.total - len(self.arrival.lines)
        last_top = max(first, self.arrival.total - h)
        return first, last_top

    def _arrival_body(self, width: int, height: int) -> List[Line]:
        self.arrival.poll()
        lines = self.arrival.lines
        if not lines:
            return [_pad([("(no new output since the viewer opened)", R.DIM)], width)]
        first, last_top = self._arr_bounds(height)
        if self.arr_follow:
            self.arr_top = last_top
        self.arr_top = max(first, min(self.arr_top, last_top))
        rows: List[Line] = []
        i = self.arr_top - first
        while i < len(lines) and len(rows) < height * (4 if self.wrap else 1):
            stream, text = lines[i]
            if stream == "note":
                line: Line = (("  " + text, R.DIM),)
            else:
                tag = ("[out] ", R.DIM) if stream == "stdout" else ("[err] ", R.NOTICE)
                line = (tag,) + highlight(text, self.query)
            if self.wrap:
                rows.extend(wrap_rows(line, width))
            else:
                rows.append(crop_line(line, self.panes[self.focus].pager.col, width))
            i += 1
        if self.wrap and len(rows) > height:
            rows = rows[-height:] if self.arr_follow else rows[:height]
        return [_pad(list(r), width) for r in rows[:height]]

    def _arrival_key(self, key: str) -> bool:
        h = max(1, self._heights.get("arrival", 10))
        first, last_top = self._arr_bounds(h)
        if self.arr_follow:
            self.arr_top = last_top
        step = {"UP": -1, "DOWN": 1, "PGUP": -(h - 1), "PGDN": h - 1, " ": h - 1}.get(key)
        if step is not None:
            self.arr_top = max(first, min(self.arr_top + step, last_top))
            self.arr_follow = self.arr_follow and step > 0
            if step < 0:
                self.arr_follow = False
            return True
        if key in ("HOME", "g"):
            self.arr_top, self.arr_follow = first, False
            return True
        if key in ("END", "F", "G"):
            self.arr_follow = True
            return True
        return False

    def _arrival_search(self, forward: bool) -> None:
        q = self.query or ""
        flags = 0 if q != q.lower() else re.IGNORECASE
        pat = re.compile(re.escape(q), flags)
        lines = self.arrival.lines
        first = self.arrival.total - len(lines)
        n = len(lines)
        cur = max(0, self.arr_top - first)
        for k in range(1, n + 1):
            i = (cur + k) % n if forward else (cur - k) % n
            if lines[i][0] != "note" and pat.search(lines[i][1]):
                self.arr_top = first + i
                self.arr_follow = False
                if (forward and i <= cur) or (not forward and i >= cur):
                    self.message = ("search wrapped around", False)
                return
        self.message = ("not found: %s" % clean(q), True)

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        self._width = width
        out: List[Line] = []
        ascii = ctx.ascii
        sep = " - " if ascii else " \u00b7 "
        title = ("Output of run %s" + sep + "%s" + sep + "%s") % (
            self.run_name, {"stdout": "stdout", "stderr": "stderr", "both": "stdout + stderr (two panes)",
                               "arrival": "by arrival"}[self.mode],
            "wrap" if self.wrap else ("no wrap, Left/Right scroll" if ascii else "no wrap, \u2190\u2192 scroll"))
        out.append(_pad([(title, R.TITLE)], width, R.TITLE))
        body_h = max(1, height - 3)
        streams = self._visible_streams()
        if self.mode == "arrival":
            n = len(self.arrival.lines)
            head = "stdout + stderr in the order ttop saw lines arrive since this viewer opened (%s)" % (
                "follow" if self.arr_follow else "%d lines" % n)
            out.append(_pad([(head, R.HEADER)], width, R.HEADER))
            self._heights["arrival"] = body_h - 1
            lines = self._arrival_body(width, body_h - 1)
            out.extend(lines)
            out.extend(_pad([], width) for _ in range(body_h - 1 - len(lines)))
        elif len(streams) == 1:
            s = streams[0]
            pane = self.panes[s]
            out.append(_pad([(pane.title(width, True, self.wrap, sep), R.HEADER)], width, R.HEADER))
            self._heights[s] = body_h - 1
            lines = pane.body(width, body_h - 1, self.wrap, self.query)
            out.extend(lines)
            out.extend(_pad([], width) for _ in range(body_h - 1 - len(lines)))
        else:
            top_h = (body_h - 2) // 2
            sizes = {"stdout": top_h, "stderr": body_h - 2 - top_h}
            for s in streams:
                pane = self.panes[s]
                focused = s == self.focus
                mark = "\u25b6 " if focused and not ctx.ascii else ("> " if focused else "  ")
                role = R.with_mod(R.HEADER, R.SEL) if focused else R.HEADER
                out.append(_pad([(mark + pane.title(width, focused, self.wrap, sep), role)], width, role))
                self._heights[s] = sizes[s]
                lines = pane.body(width, sizes[s], self.wrap, self.query)
                out.extend(lines)
                out.extend(_pad([], width) for _ in range(sizes[s] - len(lines)))
        out.append(self._status_line(ctx, width))
        out.append(self._hint_line(width))
        return out[:height]

    def _status_line(self, ctx: AppContext, width: int) -> Line:
        if self.prompt is not None:
            typed = clip_start(clean(self.prompt), width - 2, "..." if ctx.ascii else "\u2026")  # its end in view
            return _pad([("/", R.KEY), (typed + "_", R.FILTER)], width)
        msg = self.message
        if msg is None:
            msg = ctx.current_message()
        if msg:
            return _pad([(clean(msg[0]), R.ERROR if msg[1] else R.NOTICE)], width)
        if self.query:
            return _pad([("search: %s  (n next, N previous)" % clean(self.query), R.DIM)], width)
        return _pad([], width)

    def _hint_line(self, width: int) -> Line:
        if self.prompt is not None:
            hints = [("Enter", "search forward"), ("Esc", "cancel")]
        else:
            hints = [("Esc", "back"), ("s", "stream"), ("F/End", "follow"), ("/", "search"), ("n/N", "next/prev"),
                     ("w", "wrap"), ("Home", "start")]
            if self.mode == "both":
                hints.insert(2, ("Tab", "pane"))
        segs: List[Segment] = []
        for k, label in hints:
            segs.append((k, R.KEY))
            segs.append((" %s  " % label, R.FOOTER))
        return _pad(segs, width, R.FOOTER)

    # -- keys ---------------------------------------------------------------

    def typing(self) -> bool:
        return self.prompt is not None

    def on_key(self, key: str, ctx: AppContext) -> bool:
        if self.prompt is not None:
            return self._prompt_key(key, ctx)
        if key == "CTRL_C":
            return False
        self.message = None
        pane = self.panes[self.focus]
        pg = pane.pager
        h = max(1, self._heights.get(self.focus, 10))
        if key in ("ESC", "q"):
            ctx.pop()
        elif key == "s":
            self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
            if self.mode in STREAMS:
                self.focus = self.mode
        elif self.mode == "arrival" and self._arrival_key(key):
            pass
        elif key in ("TAB", "BTAB"):
            if self.mode == "both":
                self.focus = "stderr" if self.focus == "stdout" else "stdout"
        elif key == "UP":
            pg.refresh()
            pg.up(1, h)
        elif key == "DOWN":
            pg.refresh()
            pg.down(1, h)
        elif key == "PGUP":
            pg.refresh()
            pg.up(max(1, h - 1), h)
        elif key in ("PGDN", " "):
            pg.refresh()
            pg.down(max(1, h - 1), h)
        elif key in ("HOME", "g"):
            pg.home()
        elif key in ("END", "F", "G"):
            pg.end()
        elif key == "w":
            self.wrap = not self.wrap
            for p in self.panes.values():
                p.pager.col = 0
        elif key == "LEFT":
            if not self.wrap:
                pg.col = max(0, pg.col - HSTEP)
        elif key == "RIGHT":
            if not self.wrap:
                pg.col += HSTEP
        elif key == "/":
            self.prompt = ""
        elif key in ("n", "N"):
            if not self.query:
                self.message = ("no search yet: press / to search", True)
            else:
                self._search(key == "n")
        return True

    def _prompt_key(self, key: str, ctx: AppContext) -> bool:
        if key in ("ESC", "CTRL_C"):
            self.prompt = None
            return key != "CTRL_C"
        if key == "ENTER":
            q = self.prompt or ""
            self.prompt = None
            if q:
                self.query = q
                self._search(True)
            return True
        if key == "BACKSPACE":
            self.prompt = (self.prompt or "")[:-1]
        elif key == "CTRL_U":
            self.prompt = ""
        elif len(key) == 1 and key.isprintable() and len(self.prompt or "") < 200:
            self.prompt = (self.prompt or "") + key
        return True

    def _search(self, forward: bool) -> None:
        if self.mode == "arrival":
            self._arrival_search(forward)
            return
        pane = self.panes[self.focus]
        if pane.reason is not None or pane.pager.file is None:
            self.message = ("nothing to search in %s" % pane.stream, True)
            return
        pane.pager.refresh()
        found, wrapped = pane.pager.search(self.query or "", forward, budget=SEARCH_BUDGET)
        if not found and pane.pager.searching is not None:
            self.message = ("searched %d%% of %s, not found yet: press %s to go on" % (
                int(100 * pane.pager.searching), pane.stream, "n" if forward else "N"), False)
        elif not found:
            self.message = ("not found: %s" % clean(self.query or ""), True)
        elif wrapped:
            self.message = ("search wrapped around %s" % ("to the start" if forward else "to the end"), False)
