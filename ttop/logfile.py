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
* a line longer than :data:`MAX_LINE` bytes is shown as several lines of at
  most that many bytes, never cut inside a UTF-8 character (so a file with no
  newline at all still pages in small steps). A line holding ``\r`` updates
  (a tqdm bar: ~340 redraws of one epoch make a 27 KB line) is cut only in
  its **last state**, the text after its last ``\r``: its first piece holds
  every earlier state and shows the start of the last one, so the bar is
  shown as a terminal leaves it, whole when it fits, never as stale pieces
  (:func:`line_cuts`). Lines are read whole up to 64 * MAX_LINE bytes
  (beyond that, pieces and paging up through one giant line are
  approximate: a line of ``\r`` updates longer than that is shown in pieces
  of up to that size, each as the state it had at its end).

:class:`LogPager` keeps one stream's view state: top offset, follow mode (like
``tail -f``), and notices a file that was truncated or replaced (rotation):
it then starts again from the top of the new file.

**No path is trusted twice** (the folder is shared with other users, who can
swap a log's name for a symbolic link to a file they cannot read while root
has the viewer open). A :class:`LogFile` reads through one descriptor,
opened relative to the folder's descriptor with ``O_NOFOLLOW`` on every
component (:func:`ttop.fsafe.open_beneath`: a symbolic link is refused, a
FIFO cannot hang it, only a regular file is read). Each :meth:`LogFile.refresh`
opens the name again the same way: the same file (device and inode) keeps
being read through the descriptor it had; a replaced or rotated file is
checked like the first one before a byte of it is shown; a name that now
fails the checks shows nothing but the reason.
"""
from __future__ import annotations

import errno
import os
import time
from typing import List, Optional, Tuple

from . import fsafe
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


def last_state(raw: bytes) -> bytes:
    """What a terminal leaves of a line with ``\\r`` updates: the text after
    the last ``\\r`` that has text after it (a trailing ``\\r`` of a CRLF
    line end does not count)."""
    if raw.endswith(b"\r"):
        raw = raw.rstrip(b"\r")
    if b"\r" in raw:
        parts = [p for p in raw.split(b"\r") if p]
        raw = parts[-1] if parts else b""
    return raw


_ONE_PIECE = [0]


def line_cuts(line: bytes, max_line: int) -> List[int]:
    """Where a physical line (without its ``\\n``) is cut into display
    pieces: offsets of each piece's start, the first always 0. Pieces are at
    most ``max_line`` bytes of the line's last state (after its last
    ``\\r``; the first piece also holds everything before it) and are never
    cut inside a UTF-8 character. A cut depends only on the bytes before it,
    so a reader going backward from any cut finds the same ones (they read
    the whole line: a cut depends on the line's last ``\\r`` and on the bytes
    around it)."""
    if len(line) <= max_line:
        return _ONE_PIECE
    body_end = len(line)
    while body_end > 0 and line[body_end - 1] == 13:  # a trailing \r is a line end, not an update
        body_end -= 1
    cr = line.rfind(b"\r", 0, body_end)
    pos = cr + 1 if cr >= 0 else 0
    cuts = [0]
    n = len(line)
    while n - pos > max_line:
        cut = pos + max_line
        back = cut
        while back > pos and back > cut - 3 and (line[back] & 0xC0) == 0x80:
            back -= 1  # inside a character: cut before it
        if back > pos and (line[back] & 0xC0) != 0x80:
            cut = back
        cuts.append(cut)
        pos = cut
    return cuts


def display_text(raw: bytes) -> str:
    """One raw log line (no ``\\n``) as terminal-safe text."""
    raw = last_state(raw)
    text = raw.decode("utf-8", "replace")
    if "\x1b" in text:
        text = strip_ansi(text)
    if "\t" in text:
        text = text.expandtabs(8)
    return clean(text)


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return "uid %d" % uid


class _Reader:
    """``seek``/``read`` over a descriptor the :class:`LogFile` keeps (pread:
    no shared offset; leaving the ``with`` block does not close it)."""

    __slots__ = ("fd", "pos")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pos = 0

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def seek(self, pos: int) -> None:
        self.pos = pos

    def read(self, n: int) -> bytes:
        data = fsafe.pread_all(self.fd, n, self.pos)
        self.pos += len(data)
        return data


class LogFile:
    """Random access to the lines of one file by byte offset, read through a
    descriptor checked as the module doc says.

    ``path``: the file; with ``folder``, ``path`` (absolute inside it, or
    relative to it) is opened below the folder's descriptor, no component
    followed if it is a symbolic link. Without ``folder`` only the last
    component is protected (the caller trusts the folder holding it).
    ``owner``: a uid; a file owned by anyone else is not shown (a hard link
    to a file the run's owner could not read is a regular file too)."""

    def __init__(self, path: str, max_line: int = MAX_LINE, chunk: int = CHUNK, search_chunk: int = SEARCH_CHUNK,
                 folder: Optional[str] = None, owner: Optional[int] = None):
        self.path = path
        self.owner = owner
        if folder is not None:
            rel = path
            if os.path.isabs(path):
                rel = os.path.relpath(path, os.path.abspath(folder))
                if rel.startswith(".."):
                    rel = os.path.relpath(path, os.path.realpath(folder))
            self._where: Tuple[str, str] = (folder, rel)
        else:
            self._where = (os.path.dirname(os.path.abspath(path)), os.path.basename(path))
        self.max_line = max_line
        self.chunk = chunk
        self.search_chunk = search_chunk
        self.back_limit = max(max_line, 64 * max_line)
        self.size = 0
        self.ident: Optional[Tuple[int, int]] = None
        self.error: Optional[str] = None
        self._fd: Optional[int] = None

    def refresh(self) -> str:
        """Open the name again (checked) and re-read the size. Returns
        ``"same"``, ``"grew"``, ``"reset"`` (truncated or replaced: the new
        file passed the checks) or ``"missing"``."""
        folder, rel = self._where
        try:
            fd = fsafe.open_beneath(folder, rel)
        except OSError as e:
            self.error = "no such file (yet)" if e.errno == errno.ENOENT and not isinstance(e, fsafe.Refused) \
                else "not shown: %s" % fsafe.describe(e)
            was = self.ident
            self._drop()
            self.size, self.ident = 0, None
            return "reset" if was is not None else "missing"
        try:
            st = os.fstat(fd)
        except OSError as e:  # pragma: no cover - fstat of an open fd
            os.close(fd)
            self.error = e.strerror or str(e)
            self._drop()
            self.size, self.ident = 0, None
            return "missing"
        if self.owner is not None and st.st_uid != self.owner:
            os.close(fd)
            self.error = "not shown: owned by %s, not by the run's owner %s" % (_user(st.st_uid), _user(self.owner))
            was = self.ident
            self._drop()
            self.size, self.ident = 0, None
            return "reset" if was is not None else "missing"
        self.error = None
        ident = (st.st_dev, st.st_ino)
        old_size, old_ident = self.size, self.ident
        if ident == old_ident and self._fd is not None:
            os.close(fd)  # the same file: keep reading through the descriptor it had
        else:
            self._drop()
            self._fd = fd
        self.size, self.ident = st.st_size, ident
        if old_ident is not None and (ident != old_ident or st.st_size < old_size):
            return "reset"
        if st.st_size > old_size:
            return "grew"
        return "same"

    def _drop(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass

    def close(self) -> None:
        """Close the descriptor (a later :meth:`refresh` opens it again)."""
        self._drop()
        self.size, self.ident = 0, None

    def __del__(self) -> None:
        try:
            self._drop()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def _open(self) -> _Reader:
        if self._fd is None:
            raise OSError(errno.EBADF, self.error or "not opened: call refresh() first")
        return _Reader(self._fd)

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
                nl = buf.find(b"\n")
                if nl < 0 and len(buf) < self.back_limit and pos + len(buf) < end:
                    more = f.read(min(self.chunk, end - (pos + len(buf))))
                    if more:
                        buf += more
                        continue
                if nl >= 0:
                    line, line_end, whole = buf[:nl], nl + 1, True
                elif not buf:
                    break
                elif len(buf) >= self.back_limit:  # a giant line: its end is not in reach
                    line, line_end, whole = buf, len(buf), False
                else:  # the end of the file
                    line, line_end, whole = buf, len(buf), True
                cuts = line_cuts(line, self.max_line)
                if not whole and len(cuts) == 1:
                    # a giant line of \r updates whose last state in reach is
                    # short (a long tqdm epoch captured from a pipe): a piece
                    # up to its last \r, shown as the state it had there,
                    # else nothing would ever be taken off the buffer
                    cr = line.rfind(b"\r")
                    cuts = [0, cr + 1 if cr >= 0 else self.max_line]
                shown = cuts if whole else cuts[:-1]  # a giant line's last piece may grow: taken up again
                for i, c in enumerate(shown):
                    if len(out) >= n:
                        break
                    stop = cuts[i + 1] if i + 1 < len(cuts) else len(line)
                    out.append((pos + c, pos + (line_end if i + 1 == len(cuts) else stop), line[c:stop]))
                if not whole:
                    buf = buf[cuts[-1]:]
                    pos += cuts[-1]
                    continue
                buf = buf[line_end:]
                pos += line_end
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
                if idx >= 0 or lo == 0:
                    phys = buf_start + idx + 1 if idx >= 0 else 0
                    line = buf[phys - buf_start:cur_end - buf_start]
                    if line.endswith(b"\n"):
                        line = line[:-1]
                    elif cur_end < self.size:
                        # cur_end is inside the line: its cuts depend on the whole
                        # line (its last \r, the bytes at each cut), read to its end
                        line += self._rest_of_line(f, cur_end, phys + self.back_limit)
                    cuts = line_cuts(line, self.max_line)
                    start = phys if len(cuts) == 1 else phys + max(c for c in cuts if phys + c < cur_end)
                else:  # no line start within back_limit: approximate
                    phys = cur_end - self.max_line
                    start = phys + ((cur_end - phys - 1) // self.max_line) * self.max_line
                starts.append(start)
                cur_end = start
                buf = buf[: max(0, cur_end - buf_start)]
        starts.reverse()
        return starts

    def _rest_of_line(self, f: "_Reader", frm: int, limit: int) -> bytes:
        """The bytes from ``frm`` to the next newline (excluded), read up to
        ``limit`` (a file offset) at most."""
        out = b""
        pos = frm
        while pos < min(limit, self.size):
            f.seek(pos)
            got = f.read(min(self.chunk, min(limit, self.size) - pos))
            if not got:
                break
            nl = got.find(b"\n")
            if nl >= 0:
                return out + got[:nl]
            out += got
            pos += len(got)
        return out

    def line_start(self, offset: int) -> int:
        """Start of the line containing byte ``offset``."""
        if offset <= 0:
            return 0
        offset = min(offset, self.size)
        s = self.starts_before(offset + 1, 1)
        return s[0] if s else 0

    # -- search

    def find(self, needle: bytes, start: int, end: int, ignore_case: bool,
             deadline: Optional[float] = None) -> Tuple[Optional[int], int]:
        """First match of ``needle`` in ``[start, end)``, reading
        ``search_chunk`` bytes at a time. Returns ``(offset or None,
        reached)``: ``reached`` is where the search stopped (``end`` when it
        covered the range; less when ``deadline``, a ``time.monotonic()``
        value, passed first: search again from there to go on). With
        ``ignore_case`` the needle must be lower case."""
        if not needle or start >= end:
            return None, end
        overlap = len(needle) - 1
        try:
            f = self._open()
        except OSError:
            return None, end
        with f:
            pos = start
            while pos < end:
                f.seek(pos)
                data = f.read(min(self.search_chunk + overlap, end - pos))
                if not data:
                    return None, end
                i = (data.lower() if ignore_case else data).find(needle)
                if i >= 0:
                    return pos + i, end
                if len(data) <= overlap:
                    return None, end
                pos += len(data) - overlap
                if deadline is not None and pos < end and time.monotonic() > deadline:
                    return None, pos
        return None, end

    def rfind(self, needle: bytes, start: int, end: int, ignore_case: bool,
              deadline: Optional[float] = None) -> Tuple[Optional[int], int]:
        """Last match of ``needle`` in ``[start, end)``. Returns ``(offset or
        None, reached)`` where ``reached`` is ``start`` when the range was
        covered, else the end of what is left to search."""
        if not needle or start >= end:
            return None, start
        overlap = len(needle) - 1
        try:
            f = self._open()
        except OSError:
            return None, start
        with f:
            hi = end
            while hi > start:
                lo = max(start, hi - self.search_chunk)
                f.seek(lo)
                data = f.read(min(hi + overlap, end) - lo)
                idx = (data.lower() if ignore_case else data).rfind(needle)
                if idx >= 0:
                    return lo + idx, start
                hi = lo
                if deadline is not None and hi > start and time.monotonic() > deadline:
                    return None, hi
        return None, start


def _smartcase(query: str) -> bool:
    """Case-insensitive unless the query has an upper-case letter."""
    return query == query.lower()


class LogPager:
    """View state of one log: top line offset, follow mode, horizontal
    column. ``height`` is passed in by the caller each time (it changes on
    resize)."""

    def __init__(self, path: Optional[str], folder: Optional[str] = None, owner: Optional[int] = None):
        self.file: Optional[LogFile] = LogFile(path, folder=folder, owner=owner) if path else None
        self.top = 0
        self.follow = True
        self.col = 0
        self.resets = 0  # how often the file was truncated/replaced
        #: fraction of the file covered by a search that ran out of time
        self.searching: Optional[float] = None
        self._resume: Optional[tuple] = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

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

    def search(self, query: str, forward: bool = True, budget: Optional[float] = None) -> Tuple[bool, bool]:
        """Move to the next (previous) line matching ``query`` after (before)
        the top line, wrapping around the file once. Returns ``(found,
        wrapped)``. Streams through the file; nothing is loaded whole.

        Smart case: case-insensitive unless the query has an upper-case
        letter. With ``budget`` (seconds), a search that has not finished in
        that time stops with ``(False, False)`` and sets :attr:`searching` to
        the fraction of the file covered; the same search called again goes
        on from there."""
        self.searching = None
        if self.file is None or not query:
            self._resume = None
            return False, False
        ic = _smartcase(query)
        needle = query.encode("utf-8")
        if ic:
            needle = needle.lower()
        f = self.file
        size = f.size
        ident = (query, forward, self.top)
        state = self._resume if self._resume is not None and self._resume[0] == ident else None
        if state is None:
            top = self.top
            if forward:
                first = f.lines_from(top, 1)
                after = first[0][1] if first else top
                segments = [(after, size), (0, min(size, after))]
            else:
                segments = [(0, top), (top, size)]
            state = (ident, segments, 0, segments[0][0] if forward else segments[0][1], 0)
        _ident, segments, seg, cursor, done = state
        deadline = time.monotonic() + budget if budget is not None else None
        total = sum(e - s for s, e in segments) or 1
        while seg < len(segments):
            lo, hi = segments[seg]
            if forward:
                hit, reached = f.find(needle, cursor, hi, ic, deadline)
                covered = reached - cursor
            else:
                hit, reached = f.rfind(needle, lo, cursor, ic, deadline)
                covered = cursor - reached
            if hit is not None:
                self._resume = None
                self.follow = False
                self.top = f.line_start(hit)
                return True, seg == 1
            done += covered
            if (forward and reached < hi) or (not forward and reached > lo):
                self._resume = (ident, segments, seg, reached, done)
                self.searching = min(1.0, done / total)
                return False, False
            seg += 1
            if seg < len(segments):
                cursor = segments[seg][0] if forward else segments[seg][1]
        self._resume = None
        return False, False
