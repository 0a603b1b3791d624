"""Reading a log of any size without reading it whole (no curses here).

A position in a log is a **byte offset** where a line starts. Paging reads
only the bytes around the lines shown: forward from an offset (Home, PgDn,
search hits) or backward in chunks from an offset (End, follow mode, PgUp). No
line index of the whole file is built, so opening a 1 GiB log costs the same as
opening a small one; the pager shows the position as a percentage of the file
instead of a line number.

Display rules for one line (what a terminal would have shown, made safe):

* decoded as UTF-8 with ``errors="replace"`` (binary garbage becomes U+FFFD);
* ``\\r`` progress bars: only the text after the last ``\\r`` is kept (a
  trailing ``\\r\\n`` counts as a plain line end);
* ANSI escape sequences (colours, cursor moves, OSC titles) are stripped;
* tabs are expanded to 8 columns; other control characters become ``?``
  (:func:`ttop.view.text.clean`);
* a line longer than :data:`MAX_LINE` bytes is shown as several lines of that
  many bytes (so a file with no newline at all still pages in small steps);
  pieces are cut from the line's start, found up to 64 * MAX_LINE bytes back
  (beyond that, paging up through one giant line is approximate).

:class:`LogPager` keeps one stream's view state: top offset, follow mode (like
``tail -f``), and notices a file that was truncated or replaced (rotation):
it then starts again from the top of the new file.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple

from .view.text import clean, strip_ansi

#: Bytes read per backward/forward step.
CHUNK = 64 * 1024
#: Longest displayed line, in bytes; longer lines are split.
MAX_LINE = 16 * 1024
#: Bytes read per step while searching.
SEARCH_CHUNK = 1024 * 1024

#: A line as read: (start offset, offset of the next line, raw bytes without
#: the line end).
RawLine = Tuple[int, int, bytes]


def display_text(raw: bytes) -> str:
    """One raw log line (no ``\\n``) as terminal-safe text."""
    if raw.endswith(b"\r"):
        raw = raw.rstrip(b"\r")
    if b"\r" in raw:
        parts = [p for p in raw.split(b"\r") if p]
        raw = parts[-1] if parts else b""
    text = raw.decode("utf-8", "replace")
    if "\x1b" in text:
        text = strip_ansi(text)
    if "\t" in text:
        text = text.expandtabs(8)
    return clean(text)


class LogFile:
    """Random access to the lines of one file by byte offset. The file is
    opened for each operation and closed again, so a reader holds no file
    descriptor between renders and sees the file as it is now."""

    def __init__(self, path: str, max_line: int = MAX_LINE, chunk: int = CHUNK, search_chunk: int = SEARCH_CHUNK):
        self.path = path
        self.max_line = max_line
        self.chunk = chunk
        self.search_chunk = search_chunk
        self.back_limit = max(max_line, 64 * max_line)
        self.size = 0
        self.ident: Optional[Tuple[int, int]] = None
        self.error: Optional[str] = None

    def refresh(self) -> str:
        """Re-read the file's size. Returns ``"same"``, ``"grew"``,
        ``"reset"`` (truncated or replaced) or ``"missing"``."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.error = "no such file (yet)"
            was = self.ident
            self.size, self.ident = 0, None
            return "reset" if was is not None else "missing"
        except OSError as e:
            self.error = e.strerror or str(e)
            self.size, self.ident = 0, None
            return "missing"
        self.error = None
        ident = (st.st_dev, st.st_ino)
        old_size, old_ident = self.size, self.ident
        self.size, self.ident = st.st_size, ident
        if old_ident is not None and (ident != old_ident or st.st_size < old_size):
            return "reset"
        if st.st_size > old_size:
            return "grew"
        return "same"

    def _open(self):
        return open(self.path, "rb")

    # -- forward

    def lines_from(self, offset: int, n: int) -> List[RawLine]:
        """Up to ``n`` lines starting at ``offset`` (which should be a line
        start)."""
        out: List[RawLine] = []
        if n <= 0 or offset >= self.size:
            return out
        try:
            f = self._open()
        except OSError as e:
            self.error = e.strerror or str(e)
            return out
        with f:
            f.seek(offset)
            buf = b""
            pos = offset  # file offset of buf[0]
            end = self.size
            while len(out) < n:
                nl = buf.find(b"\n", 0, self.max_line)
                if nl >= 0:
                    out.append((pos, pos + nl + 1, buf[:nl]))
                    buf = buf[nl + 1:]
                    pos += nl + 1
                    continue
                if len(buf) >= self.max_line:
                    out.append((pos, pos + self.max_line, buf[:self.max_line]))
                    buf = buf[self.max_line:]
                    pos += self.max_line
                    continue
                want = min(self.chunk, end - (pos + len(buf)))
                if want <= 0:
                    if buf:
                        out.append((pos, pos + len(buf), buf))
                    break
                more = f.read(want)
                if not more:
                    if buf:
                        out.append((pos, pos + len(buf), buf))
                    break
                buf += more
        return out

    # -- backward

    def starts_before(self, offset: int, n: int) -> List[int]:
        """Start offsets of up to ``n`` lines that end at or before
        ``offset``, nearest last (so ``[-1]`` is the line just before
        ``offset`` and ``[0]`` the ``n``-th before)."""
        offset = min(offset, self.size)
        if n <= 0 or offset <= 0:
            return []
        try:
            f = self._open()
        except OSError as e:
            self.error = e.strerror or str(e)
            return []
        starts: List[int] = []
        with f:
            cur_end = offset  # the line being located ends here (exclusive)
            buf = b""  # the file's bytes [buf_start, cur_end)
            buf_start = cur_end
            while len(starts) < n and cur_end > 0:
                # the byte at cur_end-1 ends this line; its physical start
                # is after the last newline before it (looked for up to
                # back_limit bytes back); lines longer than max_line are cut
                # in pieces from their physical start, as lines_from does
                lo = max(0, cur_end - 1 - self.back_limit)
                hi = cur_end - 1
                while True:
                    idx = buf.rfind(b"\n", max(0, lo - buf_start), max(0, hi - buf_start))
                    if idx >= 0 or buf_start <= lo:
                        break
                    read_from = max(0, buf_start - self.chunk)
                    f.seek(read_from)
                    got = f.read(buf_start - read_from)
                    # a file truncated meanwhile: keep offsets aligned
                    buf = got.ljust(buf_start - read_from, b" ") + buf
                    buf_start = read_from
                if idx >= 0:
                    phys = buf_start + idx + 1
                elif lo == 0:
                    phys = 0
                else:  # no line start within back_limit: approximate
                    phys = cur_end - self.max_line
                start = phys + ((cur_end - phys - 1) // self.max_line) * self.max_line
                starts.append(start)
                cur_end = start
                buf = buf[: max(0, cur_end - buf_start)]
        starts.reverse()
        return starts

    def line_start(self, offset: int) -> int:
        """Start of the line containing byte ``offset``."""
        if offset <= 0:
            return 0
        offset = min(offset, self.size)
        s = self.starts_before(offset + 1, 1)
        return s[0] if s else 0

    # -- search

    def find(self, needle: bytes, start: int, end: int, ignore_case: bool) -> Optional[int]:
        """Offset of the first match of ``needle`` in ``[start, end)``,
        reading :data:`self.search_chunk` bytes at a time."""
        if not needle or start >= end:
            return None
        pat = re.compile(re.escape(needle), re.IGNORECASE) if ignore_case else None
        overlap = len(needle) - 1
        try:
            f = self._open()
        except OSError:
            return None
        with f:
            pos = start
            while pos < end:
                f.seek(pos)
                data = f.read(min(self.search_chunk + overlap, end - pos))
                if not data:
                    return None
                if pat is None:
                    i = data.find(needle)
                else:
                    m = pat.search(data)
                    i = m.start() if m else -1
                if i >= 0:
                    return pos + i
                if len(data) <= overlap:
                    return None
                pos += len(data) - overlap
        return None

    def rfind(self, needle: bytes, start: int, end: int, ignore_case: bool) -> Optional[int]:
        """Offset of the last match of ``needle`` in ``[start, end)``."""
        if not needle or start >= end:
            return None
        overlap = len(needle) - 1
        try:
            f = self._open()
        except OSError:
            return None
        with f:
            hi = end
            while hi > start:
                lo = max(start, hi - self.search_chunk)
                f.seek(lo)
                data = f.read(min(hi + overlap, end) - lo)
                if ignore_case:
                    idx = data.lower().rfind(needle.lower())
                else:
                    idx = data.rfind(needle)
                if idx >= 0:
                    return lo + idx
                hi = lo
        return None


def _smartcase(query: str) -> bool:
    """Case-insensitive unless the query has an upper-case letter."""
    return query == query.lower()


class LogPager:
    """View state of one log: top line offset, follow mode, horizontal
    column. ``height`` is passed in by the caller each time (it changes on
    resize)."""

    def __init__(self, path: Optional[str]):
        self.file: Optional[LogFile] = LogFile(path) if path else None
        self.top = 0
        self.follow = True
        self.col = 0
        self.resets = 0  # how often the file was truncated/replaced

    def refresh(self) -> None:
        if self.file is None:
            return
        change = self.file.refresh()
        if change == "reset":
            self.resets += 1
            self.top = 0
        elif self.top > self.file.size:
            self.top = 0

    @property
    def size(self) -> int:
        return self.file.size if self.file else 0

    def tail_top(self, height: int) -> int:
        if self.file is None:
            return 0
        s = self.file.starts_before(self.file.size, max(1, height))
        return s[0] if s else 0

    def visible(self, height: int) -> List[RawLine]:
        """The lines to show in ``height`` rows (in follow mode: the last
        ones). Does not re-stat the file: call :meth:`refresh` first."""
        if self.file is None or height <= 0:
            return []
        if self.follow:
            self.top = self.tail_top(height)
        return self.file.lines_from(self.top, height)

    def down(self, n: int, height: int) -> None:
        if self.file is None or n <= 0:
            return
        if self.follow:
            return
        lines = self.file.lines_from(self.top, n + 1)
        target = lines[n][0] if len(lines) > n else (lines[-1][0] if lines else self.top)
        self.top = max(self.top, min(target, self.tail_top(height)))

    def up(self, n: int, height: int) -> None:
        if self.file is None or n <= 0:
            return
        if self.follow:
            self.top = self.tail_top(height)
            self.follow = False
        starts = self.file.starts_before(self.top, n)
        if starts:
            self.top = starts[0]

    def home(self) -> None:
        self.follow = False
        self.top = 0

    def end(self) -> None:
        self.follow = True

    def percent(self, height: int) -> Optional[int]:
        """How far down the top line is, 0..100 (None: empty file)."""
        if self.file is None or self.file.size == 0:
            return None
        if self.follow:
            return 100
        return int(100 * self.top / self.file.size)

    def search(self, query: str, forward: bool = True) -> Tuple[bool, bool]:
        """Move to the next (previous) line matching ``query`` after (before)
        the top line, wrapping around the file once. Returns ``(found,
        wrapped)``. Streams through the file; nothing is loaded whole."""
        if self.file is None or not query:
            return False, False
        ic = _smartcase(query)
        needle = query.encode("utf-8")
        if ic:
            needle = needle.lower()
        f = self.file
        size = f.size
        top = self.top
        hit: Optional[int] = None
        wrapped = False
        if forward:
            first = f.lines_from(top, 1)
            after = first[0][1] if first else top
            hit = f.find(needle, after, size, ic)
            if hit is None:
                wrapped = True
                hit = f.find(needle, 0, min(size, after), ic)
        else:
            hit = f.rfind(needle, 0, top, ic)
            if hit is None:
                wrapped = True
                hit = f.rfind(needle, top, size, ic)
        if hit is None:
            return False, False
        self.follow = False
        self.top = f.line_start(hit)
        return True, wrapped
