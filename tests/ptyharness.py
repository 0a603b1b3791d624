"""Drive a real curses program in a real pseudo-terminal and read its screen.

Used by the UI tests and by ``bench/bench_ui.py``; other screens' tests (the
variable editor, output viewer, dialogs) use it the same way::

    from ptyharness import TtopTerm, KEYS

    term = TtopTerm([sys.executable, "-m", "ttop", folder, "-i", "0.5"], cols=120, rows=30)
    try:
        term.wait_for("Run Name")            # text, or a predicate on the TtopTerm
        term.send(KEYS["DOWN"])              # raw bytes / str, or a key name:
        term.press("DOWN", "t", "ENTER")     # names from KEYS, or literal text
        term.wait_for(lambda t: "[P]" in t.text)
        assert term.row_of("run-1") is not None
        assert term.cell(0, term.row_of("run-1")).reverse   # pyte Char attributes
        term.resize(40, 10)
    finally:
        status = term.close()                # exit status (None if it had to be killed)

How it works: the child runs in a pty of the given size (``ptyprocess``) with
``TERM=linux`` (pyte 0.8.2 understands every sequence ncurses sends for it),
``ESCDELAY=25`` and no ``LINES``/``COLUMNS`` (so resizes reach ncurses). A
reader thread feeds every byte into a ``pyte.Screen`` through
``pyte.ByteStream`` and keeps a copy of the raw output (``raw``: to check the
terminal-restore sequences after exit). All waits poll with a timeout
(default 60 s: generous for a slow, loaded machine, and a wait ends as soon
as its condition holds) and raise ``AssertionError`` with the screen dump on failure.

``output(start)`` is the raw output from a byte on, ``replay(end)`` a new
pyte screen fed its first ``end`` bytes (what the terminal showed at that
point of the stream), ``cells()`` every cell's pyte Char at one moment.

``TtopTerm.ttop(folder, *args, **kw)`` starts ``python -m ttop FOLDER -i 0.5
ARGS`` (a fast interval for tests). The fixture ``ttop_term`` (registered for every
test module by ``conftest.py``) yields that factory and always closes every
terminal it made.

Keys: ``KEYS`` holds what a TERM=linux terminal sends (ncurses there reads
``\x1b[A`` for Up, ``\x1b[1~`` for Home, ...). Another TERM may expect other
bytes (vt100: ``\x1bOB`` for Down); send raw bytes then.

Pitfalls: a frame may reach pyte in more than one read, so wait for the
exact thing you assert on (``wait_for``) rather than asserting right after
waiting for something else; cell attributes (``cell(x, y).reverse``,
``.fg == "red"``, ``.bold``) are how the selection and colours are checked.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Union

import pyte
import pytest
from ptyprocess import PtyProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Key names -> bytes a TERM=linux terminal sends.
KEYS: Dict[str, bytes] = {
    "UP": b"\x1b[A",
    "DOWN": b"\x1b[B",
    "RIGHT": b"\x1b[C",
    "LEFT": b"\x1b[D",
    "HOME": b"\x1b[1~",
    "END": b"\x1b[4~",
    "INSERT": b"\x1b[2~",
    "DELETE": b"\x1b[3~",
    "PGUP": b"\x1b[5~",
    "PGDN": b"\x1b[6~",
    "F1": b"\x1b[[A",
    "ENTER": b"\r",
    "ESC": b"\x1b",
    "BACKSPACE": b"\x7f",
    "TAB": b"\t",
    "BTAB": b"\x1b[Z",
    "CTRL_C": b"\x03",
    "CTRL_L": b"\x0c",
}

Wanted = Union[str, Callable[["TtopTerm"], object]]


class TtopTerm:
    """A program running in a pty, its output rendered by pyte."""

    def __init__(self, argv: Sequence[str], cols: int = 120, rows: int = 30,
                 env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None) -> None:
        e = dict(os.environ)
        for k in ("LINES", "COLUMNS", "NO_COLOR", "TTOP_DEBUG"):
            e.pop(k, None)
        e.update({"TERM": "linux", "ESCDELAY": "25", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                  "PYTHONPATH": ROOT + os.pathsep + e.get("PYTHONPATH", "")})
        if env:
            e.update(env)
        self.cols, self.rows = cols, rows
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.updates = 0  # chunks of output fed so far
        self.feed_errors: List[str] = []
        self.proc = PtyProcess.spawn(list(argv), env=e, cwd=cwd or ROOT, dimensions=(rows, cols))
        self._eof = False
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()
        self._status: Optional[int] = None
        self._closed = False

    # -- reading -------------------------------------------------------------

    def _read(self) -> None:
        fd = self.proc.fd
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            with self._changed:
                if not data:
                    self._eof = True
                    self._changed.notify_all()
                    return
                self.raw += data
                try:
                    self.stream.feed(data)
                except Exception as e:  # pragma: no cover - pyte hiccup on odd bytes
                    # the rest of this chunk is not on the screen: say so in dumps
                    self.feed_errors.append("%r in %r" % (e, bytes(data[-200:])))
                self.updates += 1
                self._changed.notify_all()

    @property
    def display(self) -> List[str]:
        with self._lock:
            return list(self.screen.display)

    @property
    def text(self) -> str:
        return "\n".join(self.display)

    def dump(self) -> str:
        text = "\n".join("%2d|%s|" % (i, line) for i, line in enumerate(self.display))
        if self.feed_errors:
            text += "\npyte could not take: " + "; ".join(self.feed_errors)
        if self._eof:
            text += "\n(output ended; its last bytes: %r)" % bytes(self.raw[-300:])
        return text

    def line(self, y: int) -> str:
        """Row y as text (cheaper than ``display[y]``: one row only)."""
        with self._lock:
            row = self.screen.buffer[y]
            return "".join(row[x].data for x in range(self.screen.columns))

    def row_of(self, needle: str) -> Optional[int]:
        """The first screen row containing ``needle``, or None."""
        for i, line in enumerate(self.display):
            if needle in line:
                return i
        return None

    def output(self, start: int = 0) -> bytes:
        """The raw output from byte ``start`` on."""
        with self._lock:
            return bytes(self.raw[start:])

    def replay(self, end: int) -> pyte.Screen:
        """A new pyte screen fed the first ``end`` bytes of the output: what
        the terminal showed at that point of the stream (at the current
        size, so only for a test that does not resize)."""
        with self._lock:
            data = bytes(self.raw[:end])
            cols, rows = self.cols, self.rows
        screen = pyte.Screen(cols, rows)
        try:
            pyte.ByteStream(screen).feed(data)
        except Exception:  # pragma: no cover - as in _read
            pass
        return screen

    def cells(self, screen: Optional[pyte.Screen] = None) -> List[list]:
        """Every cell (pyte's Char: character, colours, bold, reverse, ...)
        of the live screen, read at one moment, or of ``screen``."""
        if screen is not None:
            return [[screen.buffer[y][x] for x in range(screen.columns)] for y in range(screen.lines)]
        with self._lock:
            return [[self.screen.buffer[y][x] for x in range(self.screen.columns)] for y in range(self.screen.lines)]

    def cell(self, x: int, y: int):
        """pyte's Char at column x, row y: ``.data .fg .bg .bold .reverse
        .underscore``."""
        with self._lock:
            return self.screen.buffer[y][x]

    def row_cells(self, y: int):
        with self._lock:
            return [self.screen.buffer[y][x] for x in range(self.screen.columns)]

    def is_reverse_row(self, y: int, start: int = 0, n: int = 8) -> bool:
        """True if the first ``n`` cells from ``start`` of row y are reversed."""
        with self._lock:
            row = self.screen.buffer[y]
            end = min(start + n, self.screen.columns)
            return end > start and all(row[x].reverse for x in range(start, end))

    def selected_row(self, first_col: int = 0, n: int = 4) -> Optional[int]:
        """The first row whose cells ``first_col .. first_col+n`` are all
        reversed (the main table's selection), or None."""
        for y in range(self.rows):
            if self.is_reverse_row(y, first_col, n):
                return y
        return None

    @property
    def cursor(self):
        with self._lock:
            return (self.screen.cursor.x, self.screen.cursor.y)

    # -- waiting ---------------------------------------------------------------

    def wait_for(self, wanted: Wanted, timeout: float = 60.0, msg: str = "") -> object:
        """Wait until ``wanted`` (text on the screen, or ``predicate(self)``
        truthy) holds; return the predicate's value (or the row of the text)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self._check(wanted)
            if value is not None and value is not False:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s\nwaited %.1fs for %r; exit=%r; screen:\n%s" % (
                    msg, timeout, wanted if isinstance(wanted, str) else getattr(wanted, "__name__", wanted),
                    self.proc.exitstatus if not self.proc.isalive() else None, self.dump()))
            with self._changed:
                self._changed.wait(min(left, 0.05))

    def _check(self, wanted: Wanted) -> object:
        if isinstance(wanted, str):
            return self.row_of(wanted)
        try:
            return wanted(self)
        except (IndexError, ValueError, KeyError):
            return None

    def wait_gone(self, text: str, timeout: float = 60.0) -> None:
        self.wait_for(lambda t: t.row_of(text) is None, timeout, "still on screen: %r" % text)

    def wait_quiet(self, quiet: float = 0.3, timeout: float = 60.0) -> None:
        """Wait until no output arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last = self.updates
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if self.updates != last:
                last = self.updates
                since = time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
        raise AssertionError("output never went quiet; screen:\n" + self.dump())

    def wait_exit(self, timeout: float = 60.0) -> Optional[int]:
        """Wait for the child to exit; return its exit status (128+N when
        killed by signal N)."""
        deadline = time.monotonic() + timeout
        while self.proc.isalive():
            if time.monotonic() > deadline:
                raise AssertionError("process still running after %.1fs; screen:\n%s" % (timeout, self.dump()))
            time.sleep(0.02)
        # let the reader swallow the last bytes (it stops at the end of the
        # output, which a loaded machine may take a while to get to)
        with self._changed:
            end = time.monotonic() + 30.0
            while not self._eof and time.monotonic() < end:
                self._changed.wait(0.05)
        return self.exit_status()

    def exit_status(self) -> Optional[int]:
        if self.proc.isalive():
            return None
        if self.proc.exitstatus is not None:
            return self.proc.exitstatus
        if self.proc.signalstatus is not None:
            return 128 + self.proc.signalstatus
        return None

    # -- writing -----------------------------------------------------------------

    def send(self, data: Union[str, bytes]) -> None:
        """Write raw bytes (str is UTF-8 encoded) or one key name from KEYS."""
        if isinstance(data, str):
            data = KEYS.get(data, data.encode("utf-8"))
        self.proc.write(data)

    def press(self, *keys: str, gap: float = 0.0) -> None:
        """Send key names (``"DOWN"``) or literal text, one after another.
        A lone ESC is followed by a short pause so it is not read as the
        start of an escape sequence with what follows."""
        for k in keys:
            self.send(k)
            if k == "ESC":
                time.sleep(0.1)
            elif gap:
                time.sleep(gap)

    def resize(self, cols: int, rows: int) -> None:
        with self._lock:
            self.screen.resize(rows, cols)
            self.cols, self.rows = cols, rows
        self.proc.setwinsize(rows, cols)

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.isalive():
            self.proc.kill(sig)

    def close(self, timeout: float = 5.0) -> Optional[int]:
        """Stop the child if still running (SIGTERM, then SIGKILL), reap it,
        close the pty; return the exit status."""
        if self._closed:
            return self._status
        self._closed = True
        if self.proc.isalive():
            try:
                self.proc.kill(signal.SIGTERM)
            except OSError:
                pass
            deadline = time.monotonic() + timeout
            while self.proc.isalive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.proc.isalive():
                try:
                    self.proc.kill(signal.SIGKILL)
                except OSError:
                    pass
        try:
            self.proc.wait()
        except Exception:
            pass
        self._status = self.exit_status()
        try:
            self.proc.close(force=True)
        except Exception:
            pass
        self._reader.join(timeout=2)
        return self._status

    # -- conveniences ---------------------------------------------------------

    @classmethod
    def ttop(cls, folder: str, *args: str, interval: str = "0.5", cols: int = 120, rows: int = 30,
             env: Optional[Dict[str, str]] = None) -> "TtopTerm":
        argv = [sys.executable, "-m", "ttop", str(folder), "-i", interval] + list(args)
        return cls(argv, cols=cols, rows=rows, env=env)

    def __enter__(self) -> "TtopTerm":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def ttop_term():
    """Factory fixture: ``ttop_term(folder, *args, cols=, rows=, env=)`` starts
    ``python -m ttop FOLDER -i 0.5 ARGS`` in a pty; every terminal is closed
    (and its process reaped) at teardown."""
    terms: List[TtopTerm] = []

    def make(folder, *args, **kw) -> TtopTerm:
        t = TtopTerm.ttop(str(folder), *args, **kw)
        terms.append(t)
        return t

    yield make
    for t in terms:
        t.close()
