"""The curses application: owns the terminal, the screen stack and the loop.

``run_ui(collector, *, ascii=False) -> int``

* Reads only ``collector.latest``; never waits on the collector. A collector
  listener writes one byte to a self-pipe; the loop ``select()``s on stdin and
  that pipe, so an idle monitor sleeps in the kernel (no polling).
* Paints by diffing rendered lines against the previous frame: only changed
  rows are written, then one ``noutrefresh`` + ``doupdate``; nothing is sent
  to the terminal when nothing changed.
* The terminal is always restored: normal exit, ``q``, Ctrl+C (SIGINT, exit
  status 0), SIGTERM / SIGHUP (exit status 128 + signal number), and any
  exception (one line on stderr, the traceback too with ``TTOP_DEBUG=1``,
  exit status 1).
* Ctrl+Z (SIGTSTP, caught before ``initscr``) gives the terminal back and
  stops at the top of the loop; ``fg`` draws the whole screen again.
* Resizes (SIGWINCH) are handled by the loop itself: the new size is read from
  the terminal, ``resizeterm`` is called and the whole screen redrawn.
* ``ascii=True`` (or a locale whose encoding is not UTF-8) draws ``...`` and
  ``#``/``.`` bars instead of Unicode; ``NO_COLOR`` or a terminal without
  colours uses bold/underline/reverse/dim only.

A CSV sink, when asked for, is a collector listener of its own (wired by
``ttop.cli``); the UI knows nothing of it.
"""
from __future__ import annotations

import curses  # ImportError(name="_curses") here tells the CLI the monitor cannot run
import errno
import os
import select
import sys
import time
from _thread import allocate_lock

from ..view import roles as R
from ..view.text import Line, crop_line, line_width
from .keys import _curses_keys, _isatty, _NoTerminal, _readable, _stdin_fd, keys_not_flow_control, normalise_key, set_user_locale, suspend, utf8_locale  # noqa: F401 (normalise_key, utf8_locale re-exported)
from .paint import paint_lines
from .screen import AppContext, Screen

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    # the C module under signal: signal builds enums the first screen does
    # not need (the handlers given and returned stay ints)
    import _signal as signal
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

MESSAGE_SECONDS = 6.0
#: Longest a new snapshot waits while keys keep coming.
SNAPSHOT_DEFER = 0.5
#: The interpreter's thread switch interval while the monitor runs (s).
SWITCH_INTERVAL = 0.001
#: No new snapshot for this many collector intervals (at least LATE_MIN s):
#: the footer says the figures shown are old (a call that hangs: NVML on a
#: lost GPU, a read of a hung network folder or of /proc)
LATE_INTERVALS = 3
LATE_MIN = 10.0
LATE_MESSAGE = "no new data "
#: Bells a minute for the runs of one owner (as the alert command's limit).
BELL_PER_MINUTE = 10


class App(AppContext):
    """The running application (implements :class:`AppContext`)."""

    def __init__(self, collector: Any, ascii: bool = False) -> None:
        self.collector = collector
        self.folder = getattr(collector, "folder", "")
        self.snapshot = getattr(collector, "latest", None)
        self.ascii = ascii
        self.stack: List[Screen] = []
        #: recent resource samples per run, for the detail screen's charts
        #: where the collector keeps none (health checks off): a
        #: ResourceRings made by the first snapshot fed, after that
        #: snapshot's paint (the first screen does not import it)
        self.rings: Optional[Any] = None
        self._rings_after_paint = True
        self._quit = False
        #: transitions alerted so far (header count); bell: ring on each
        self.alert_count = 0
        self.bell = False
        self._bell_pending = False
        self._bells: Any = None  # a PerKeyLimit per run owner (uid), made by the first alert
        self._message: Optional[Tuple[str, bool, float]] = None
        self._prev: List[Optional[Line]] = []
        self._dirty = True
        #: Ctrl+L asked for the whole terminal to be drawn again
        self._redraw = False
        self._resized = False
        self._signal: Optional[int] = None
        self._suspend = False  # Ctrl+Z typed: stop at the top of the loop
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self._closed = False
        self._pipe_lock = allocate_lock()  # threading.Lock
        #: the screen's size at the last paint (the collector thread
        #: prepares frames for it), and the snapshot being prepared
        self._size: Optional[Tuple[int, int]] = None
        self._preparing: Any = None
        self._snapshot_at = time.monotonic()  # when the latest snapshot came

    # -- AppContext ----------------------------------------------------------

    def push(self, screen: Screen) -> None:
        self.stack.append(screen)
        self._dirty = True

    def pop(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()
        self._dirty = True

    def notify(self, message: str, error: bool = False) -> None:
        self._message = (str(message), bool(error), time.monotonic() + MESSAGE_SECONDS)
        self._dirty = True

    def current_message(self) -> Optional[Tuple[str, bool]]:
        m = self._message
        if m is None:
            return None
        if time.monotonic() >= m[2]:
            self._message = None
            return None
        return m[0], m[1]

    def alert(self, event: Any) -> None:
        """An event from :class:`ttop.sinks.alerts.Alerts` (collector
        thread): a footer message, the header count, the bell if asked."""
        self.alert_count += 1
        bad = event.get("status") in ("FAILED", "KILLED") or event.get("health") == "CRIT"
        self.notify(str(event.get("message") or "alert"), error=bad)
        if self.bell and self._may_ring(event.get("run")):
            self._bell_pending = True

    def _may_ring(self, key: Any) -> bool:
        """At most :data:`BELL_PER_MINUTE` rings a minute for the runs of
        each owner: another user's runs flipping between two verdicts (an
        event each cycle) must not ring on and on, nor use up yours."""
        runs = getattr(getattr(self.collector, "latest", None), "runs", ())
        owner = next((getattr(r, "owner_uid", None) for r in runs if r.key == key), None)
        if self._bells is None:
            from ..ratelimit import PerKeyLimit

            self._bells = PerKeyLimit(BELL_PER_MINUTE, 60.0)
        return self._bells.take(owner, time.monotonic())

    def refresh_now(self) -> None:
        try:
            self.collector.refresh_now()
        except Exception as e:  # the UI stays up whatever the collector does
            self.notify("refresh failed: %s" % e, error=True)

    def quit(self) -> None:
        self._quit = True

    # -- wake-ups --------------------------------------------------------------

    def wake(self) -> None:
        """Called from the collector thread after each publish: works out
        what the screen on top needs from the new snapshot (its rows,
        columns, unchanged lines: :meth:`Screen.prepare`) there, then wakes
        the loop, so the UI thread only draws and a key is not kept waiting
        behind a walk over every run."""
        snap = getattr(self.collector, "latest", None)
        size = self._size
        if snap is not None and size is not None and self.stack:
            self._preparing = snap
            try:
                top = self.stack[-1]
                below = top if not top.modal else next((x for x in reversed(self.stack) if not x.modal), top)
                below.prepare(self, snap, size[0], size[1])
            except Exception:  # the UI thread draws it itself then, and reports
                pass
            finally:
                self._preparing = None
        with self._pipe_lock:
            self._poke()

    def _poke(self) -> None:
        if self._closed:
            return
        try:
            os.write(self._wfd, b"x")
        except OSError:
            pass  # pipe full: a wake-up is already pending

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGWINCH:
            self._resized = True
        elif signum == signal.SIGTSTP:
            self._suspend = True
        elif signum == signal.SIGINT:
            self._quit = True
        else:
            self._signal = signum
            self._quit = True
        # no lock here: the handler runs in the main thread, and the pipe is
        # only closed after the handlers are restored
        self._poke()

    def _drain_pipe(self) -> None:
        try:
            while os.read(self._rfd, 4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        with self._pipe_lock:
            self._closed = True
            for fd in (self._rfd, self._wfd):
                try:
                    os.close(fd)
                except OSError:
                    pass

    # -- drawing -----------------------------------------------------------------

    def render(self, width: int, height: int) -> List[Line]:
        top = self.stack[-1]
        if not top.modal:
            return top.render(self, width, height)
        below = next((s for s in reversed(self.stack) if not s.modal), self.stack[0])
        base = below.render(self, width, height)
        dlg = top.render(self, width, height)
        dh = min(len(dlg), height)
        dw = min(width, max([line_width(l) for l in dlg] + [0]))
        y0 = max(0, (height - dh) // 2)
        x0 = max(0, (width - dw) // 2)
        out = list(base)
        for i in range(dh):
            y = y0 + i
            if y >= len(out):
                break
            row = out[y]
            mid = crop_line(dlg[i], 0, dw)
            pad = dw - line_width(mid)
            if pad > 0:
                mid = mid + ((" " * pad, R.NORMAL),)
            out[y] = crop_line(row, 0, x0) + mid + crop_line(row, x0 + dw, width - x0 - dw)
        return out

    def paint(self, stdscr: Any, palette: Any) -> None:
        height, width = stdscr.getmaxyx()
        self._size = (width, height)
        lines = self.render(width, height)
        if self._redraw:
            # curses would otherwise send only what differs from what it
            # believes the terminal shows: clear the terminal and draw it all
            self._redraw = False
            self._prev = []
            stdscr.clearok(True)
        if len(self._prev) != height:
            self._prev = [None] * height
        if paint_lines(stdscr, palette, self._prev, lines, width, height, self.ascii):
            stdscr.noutrefresh()
            curses.doupdate()

    def _apply_resize(self, stdscr: Any) -> None:
        self._resized = False
        try:
            size = os.get_terminal_size(_stdin_fd())
            cols, rows = size.columns, size.lines
        except (OSError, ValueError, AttributeError):
            rows, cols = stdscr.getmaxyx()
        try:
            curses.resizeterm(max(1, rows), max(1, cols))
        except curses.error:
            pass
        try:
            curses.update_lines_cols()
        except AttributeError:
            pass
        stdscr.clear()
        self._prev = []
        self._dirty = True

    # -- loop ----------------------------------------------------------------------

    def _feed_rings(self, snap: Any) -> None:
        """Add ``snap``'s samples to the rings (once per snapshot)."""
        if snap is None or getattr(self.collector, "recent", None) is not None:
            return
        if self.rings is None:
            from ..collect.rings import ResourceRings

            self.rings = ResourceRings()
        self.rings.feed(snap)

    def _take_snapshot(self) -> None:
        snap = getattr(self.collector, "latest", None)
        if snap is self._preparing:
            return  # being prepared: the wake-up follows
        if snap is not None and snap is not self.snapshot:
            self.snapshot = snap
            self._snapshot_at = time.monotonic()
            if self._message is not None and self._message[0].startswith(LATE_MESSAGE):
                self._message = None  # (it came)
            if not self._rings_after_paint:
                self._feed_rings(snap)
            for s in list(self.stack):
                try:
                    s.on_snapshot(self)
                except Exception as e:
                    self.notify("%s: %s" % (type(e).__name__, e), error=True)
            self._dirty = True

    def _late(self) -> Optional[float]:
        """Seconds until the latest snapshot is late (None: it is, or there
        is none yet). Once late, the footer says so, and keeps saying it
        until a snapshot comes: the figures on screen are not live."""
        if self.snapshot is None:
            return None
        interval = getattr(self.collector, "interval", None) or 2.0
        left = self._snapshot_at + max(LATE_INTERVALS * interval, LATE_MIN) - time.monotonic()
        if left > 0:
            return left + 0.05
        if self.current_message() is None:
            error = getattr(self.collector, "last_error", None)
            self.notify(LATE_MESSAGE + "for %ds: ttop's collector is %s; what is shown is from %s" % (
                time.monotonic() - self._snapshot_at,
                "failing (%s: %s)" % (type(error).__name__, error) if error is not None
                else "waiting on a call (a GPU, a folder or /proc that does not answer?)",
                time.strftime("%H:%M:%S", time.localtime(self.snapshot.taken_at))), error=True)
        return None

    def handle_key(self, key: str) -> None:
        self._dirty = True
        if key == "CTRL_L":
            self._redraw = True
            return
        top = self.stack[-1]
        handled = top.on_key(key, self)
        if handled:
            return
        if key == "CTRL_C":
            self.quit()
        elif key == "q" and len(self.stack) <= 1:
            self.quit()
        elif key in ("q", "ESC") and len(self.stack) > 1:
            self.pop()

    def loop(self, stdscr: Any, palette: Any, after_first_paint: Optional[Any] = None) -> None:
        """Paint, wait for a key or a new snapshot, repeat until quit.
        ``after_first_paint()`` is called once the first screen is out (the
        collector thread starts there: its first cycle does not compete with
        the first paint)."""
        keymap = _curses_keys()
        stdin_fd = _stdin_fd()
        deferred = 0.0  # since when a new snapshot waits behind keys
        while not self._quit:
            if self._suspend:
                self._suspend = False
                suspend()
                self._resized = True  # the size may have changed meanwhile: redraw it all
                self._snapshot_at = time.monotonic()  # (the collector was stopped too)
            if self._resized:
                self._apply_resize(stdscr)
            # keys first: a key typed while a snapshot came is answered
            # before the new snapshot's rows are worked out (not for long)
            if _readable(stdin_fd) and (not deferred or time.monotonic() - deferred < SNAPSHOT_DEFER):
                deferred = deferred or time.monotonic()
            else:
                deferred = 0.0
                self._take_snapshot()
            late_in = self._late()  # (before the paint: it may say the snapshot is late)
            if self._dirty:
                self._dirty = False
                self.paint(stdscr, palette)
            if after_first_paint is not None:
                start, after_first_paint = after_first_paint, None
                start()
            if self._rings_after_paint:
                # the first screen does not wait for the rings; later
                # snapshots feed them before their paint (_take_snapshot)
                self._rings_after_paint = False
                self._feed_rings(self.snapshot)
            if self._bell_pending:
                self._bell_pending = False
                try:
                    curses.beep()
                except curses.error:
                    pass
            timeout = late_in
            if self._message is not None:
                timeout = max(0.05, self._message[2] - time.monotonic() + 0.05)
            try:
                ready, _, _ = select.select([stdin_fd, self._rfd], [], [], timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                ready = []
            except OSError as e:
                if e.errno == errno.EINTR:
                    ready = []
                else:
                    raise
            if self._message is not None and self.current_message() is None:
                self._dirty = True
            if self._rfd in ready:
                self._drain_pipe()
            if stdin_fd in ready:
                got_any = False
                while not self._quit and not self._suspend:
                    try:
                        ch = stdscr.get_wch()
                    except curses.error:
                        break
                    except KeyboardInterrupt:  # pragma: no cover - SIGINT handled below
                        self._quit = True
                        break
                    got_any = True
                    key = normalise_key(ch, keymap)
                    if key == "RESIZE":
                        self._resized = True
                        continue
                    if key is not None:
                        self.handle_key(key)
                    if self._resized:
                        self._apply_resize(stdscr)
                    if self._dirty and not self._quit and not (self.stack[-1].typing() and _readable(stdin_fd)):
                        # paint between keys so a burst of keys stays visible
                        # (the snapshot drawn so far: its rows are worked out),
                        # but not between keys typed into a prompt: a paste is
                        # drawn once taken whole
                        self._dirty = False
                        self.paint(stdscr, palette)
                if not got_any:
                    # readable but no key: end of input or a hung-up terminal
                    # (never spin on it); a stray byte is dropped
                    try:
                        if os.read(stdin_fd, 1) == b"":
                            self._quit = True
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._quit = True


def _leave_initial_state(stdscr: Any) -> None:
    """Suspend and resume the screen once, before anything is drawn.
    ncurses (6.4 at least) flushes its output after every cursor movement
    until the first resume from ``endwin``: a frame that changes 200 cells
    in 200 places went out in 200 ``write`` calls to the terminal; after
    this, in one."""
    curses.endwin()
    stdscr.refresh()


def run_ui(collector: Any, *, ascii: bool = False, alerts: Any = None, bell: bool = False,
           columns: Any = None, check_metrics: Tuple[str, ...] = (), notice: Optional[str] = None) -> int:
    """Run the curses monitor until the user quits; return the exit status.

    0: quit with ``q`` or Ctrl+C; 128+N: ended by signal N (SIGTERM: 143,
    SIGHUP: 129); 1: an unexpected error (the terminal is restored first and
    one line is printed on stderr; ``TTOP_DEBUG=1`` adds the traceback).
    """
    from .colors import Palette, no_color_requested
    from .main_screen import MainScreen

    for stream in (sys.__stdin__, sys.__stdout__):
        if stream is None or not _isatty(stream.fileno()):
            sys.stderr.write("ttop: the monitor needs a terminal on stdin and stdout; "
                             "use --once or --headless otherwise\n")
            return 2
    set_user_locale()
    if not utf8_locale():
        ascii = True
    os.environ.setdefault("ESCDELAY", "25")

    # a key wakes the UI thread while the collector thread may be mid-cycle:
    # the UI waits for the interpreter lock at most this long (default 5 ms;
    # under load a key then took 32 ms median / 90 ms p95 to show with 1,000
    # runs at -i 0.2, 7 / 14 ms with 1 ms: bench/bench_keys.py)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    app = App(collector, ascii=ascii)
    main = MainScreen(ascii=ascii, columns=columns, check_metrics=check_metrics)
    app.push(main)
    if notice:  # e.g. an unusable config file
        app.notify(notice, error=True)
    if getattr(collector, "sample_threads", None) is True:
        collector.sample_threads = main.wants_threads  # thread rows only for expanded runs
    app.bell = bell
    if alerts is not None:  # ttop.sinks.alerts.Alerts: footer message, count, bell
        alerts.on_event.append(app.alert)
        alerts.on_error.append(lambda message: app.notify(message, error=True))

    listener = app.wake
    collector.add_listener(listener)
    # the collector thread starts after the first paint, which shows the
    # runs from the files alone (Collector.first_look: no psutil, NVML or
    # process lookups before it)
    started_here = not getattr(collector, "running", False)

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH, signal.SIGTSTP)
    old = {}
    for s in handled:
        if s == signal.SIGTSTP and signal.getsignal(s) != signal.SIG_DFL:
            continue  # ignored (no job control) or someone else's: as ncurses did
        try:
            old[s] = signal.signal(s, app._on_signal)
        except (ValueError, OSError):  # not the main thread
            pass

    stdscr = None
    status = 0
    error: Optional[BaseException] = None
    tb = ""
    try:
        try:
            curses.setupterm()
            if not curses.tigetstr("cup"):  # TERM=dumb: curses would only stream blanks
                raise curses.error("it cannot move the cursor")
            stdscr = curses.initscr()
        except curses.error as e:
            raise _NoTerminal("cannot drive this terminal (TERM=%s): %s; use --once or --headless"
                              % (os.environ.get("TERM", ""), e)) from None
        try:
            _leave_initial_state(stdscr)
            curses.noecho()
            curses.cbreak()
            keys_not_flow_control()
            stdscr.keypad(True)
            stdscr.nodelay(True)
            # moving down a long table shifts every row: let curses scroll the
            # terminal's lines instead of writing each again
            stdscr.idlok(True)
            try:
                curses.set_escdelay(25)
            except (AttributeError, curses.error):
                pass
            try:
                curses.curs_set(0)
            except curses.error:
                pass
            palette = Palette(use_color=not no_color_requested())
            first_look = getattr(collector, "first_look", None)
            if started_here and first_look is not None and getattr(collector, "latest", None) is None:
                try:
                    first_look()
                except Exception:  # pragma: no cover - the thread's first cycle says what is wrong
                    pass
            app.loop(stdscr, palette, after_first_paint=collector.start if started_here else None)
        finally:
            try:
                stdscr.keypad(False)
                curses.echo()
                curses.nocbreak()
            except curses.error:
                pass
            try:
                curses.endwin()
            except curses.error:  # the terminal is gone (hang-up)
                pass
    except Exception as e:  # restore first, then report
        import traceback

        error = e
        tb = traceback.format_exc()
    finally:
        sys.setswitchinterval(switch)
        for s, h in old.items():
            try:
                signal.signal(s, h)
            except (ValueError, OSError, TypeError):
                pass
        remove = getattr(collector, "remove_listener", None)
        if remove is not None:
            remove(listener)
        app.close()
        if started_here:
            try:
                collector.stop(timeout=2)
            except Exception:
                pass
    if isinstance(error, _NoTerminal):
        sys.stderr.write("ttop: %s\n" % error)
        return 1
    if error is not None:
        sys.stderr.write("ttop: error: %s: %s%s\n" % (
            type(error).__name__, error, "" if os.environ.get("TTOP_DEBUG") else " (TTOP_DEBUG=1 shows the traceback)"))
        if os.environ.get("TTOP_DEBUG"):
            sys.stderr.write(tb)
        sys.stderr.flush()
        return 1
    if app._signal is not None:
        return 128 + int(app._signal)
    return status
