"""The terminal side of the monitor's loop: key names from curses' codes
and characters, the locale check, the checks on the descriptor the
monitor reads keys from, and Ctrl+Z (:func:`suspend`)."""
from __future__ import annotations

import codecs
import curses
import os
import select
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

_CTRL_KEYS = {
    "\n": "ENTER", "\r": "ENTER", "\x1b": "ESC", "\x7f": "BACKSPACE", "\x08": "BACKSPACE",
    "\t": "TAB", "\x03": "CTRL_C", "\x0c": "CTRL_L", "\x15": "CTRL_U",
}


def _curses_keys() -> dict:
    names = {
        "KEY_UP": "UP", "KEY_DOWN": "DOWN", "KEY_LEFT": "LEFT", "KEY_RIGHT": "RIGHT",
        "KEY_PPAGE": "PGUP", "KEY_NPAGE": "PGDN", "KEY_HOME": "HOME", "KEY_END": "END",
        "KEY_FIND": "HOME", "KEY_SELECT": "END", "KEY_A1": "HOME", "KEY_C1": "END",
        "KEY_A3": "PGUP", "KEY_C3": "PGDN", "KEY_ENTER": "ENTER", "KEY_BACKSPACE": "BACKSPACE",
        "KEY_DC": "DELETE", "KEY_BTAB": "BTAB", "KEY_F1": "F1", "KEY_RESIZE": "RESIZE",
    }
    out = {}
    for attr, name in names.items():
        code = getattr(curses, attr, None)
        if code is not None:
            out[code] = name
    return out


def normalise_key(ch: Any, keymap: dict) -> Optional[str]:
    """A ``get_wch()`` result as a key name of :mod:`ttop.ui.screen`, or None."""
    if isinstance(ch, int):
        return keymap.get(ch)
    if not isinstance(ch, str) or not ch:
        return None
    if ch in _CTRL_KEYS:
        return _CTRL_KEYS[ch]
    if ch.isprintable():
        return ch
    return None


def preferred_encoding() -> str:
    """``locale.getpreferredencoding(False)``, without importing
    :mod:`locale` (its tables are most of a millisecond before the first
    screen) where the interpreter has ``_locale.getencoding`` (3.11+)."""
    if sys.flags.utf8_mode:
        return "utf-8"
    import _locale

    get = getattr(_locale, "getencoding", None)
    if get is None:  # pragma: no cover - before Python 3.11
        import locale

        return locale.getpreferredencoding(False)
    return str(get())


def set_user_locale() -> None:
    """``locale.setlocale(locale.LC_ALL, "")`` (the user's locale, for
    curses), without importing :mod:`locale`; an unknown locale is left as
    it is."""
    import _locale

    c: Any = _locale
    try:
        c.setlocale(c.LC_ALL, "")
    except c.Error:
        pass


def utf8_locale() -> bool:
    """Whether curses draws UTF-8: the C library's codeset (after
    :func:`set_user_locale`), which curses encodes with. Python's UTF-8 mode,
    on by itself under ``LC_ALL=C`` (PEP 540), does not reach curses, which
    then drew bars, marks and arrows as blanks."""
    import _locale

    try:
        enc = _locale.nl_langinfo(_locale.CODESET) or preferred_encoding() or ""
    except (AttributeError, ValueError):  # pragma: no cover - no nl_langinfo
        enc = preferred_encoding() or ""
    try:
        return codecs.lookup(enc).name == "utf-8"
    except LookupError:
        return False


class _NoTerminal(Exception):
    pass


def _readable(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _stdin_fd() -> int:
    """The terminal's descriptor: the interpreter's own stdin (run_ui has
    checked it is a terminal)."""
    stream = sys.__stdin__
    return stream.fileno() if stream is not None else 0


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def keys_not_flow_control() -> None:
    """Ctrl+S and Ctrl+Q reach the monitor as keys (ignored there) instead
    of stopping and restarting the terminal's output (IXON, which cbreak
    mode keeps): after a stray Ctrl+S the screen froze and the next write
    blocked, so even q did nothing until Ctrl+Q. The shell's own modes,
    restored by ``endwin``, keep IXON."""
    try:
        import termios

        fd = 1 if _isatty(1) else _stdin_fd()  # the terminal curses drives (its output)
        attrs = termios.tcgetattr(fd)
        if attrs[0] & termios.IXON:
            attrs[0] &= ~termios.IXON
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        curses.def_prog_mode()  # the modes curses returns to after a suspend or a shell-out
    except (ImportError, AttributeError, ValueError, OSError, curses.error):
        pass


def suspend() -> None:
    """Ctrl+Z: give the terminal back to the shell, stop until ``fg`` (or
    SIGCONT), then take it again; the caller draws the whole screen.

    The monitor catches SIGTSTP itself (before ``initscr``, so ncurses
    leaves it alone) and calls this from its loop: ncurses' own handler is
    switched to SIG_IGN for the whole of every ``doupdate``, so a Ctrl+Z
    typed while a frame was being written was dropped by the kernel."""
    if TYPE_CHECKING:
        import signal
    else:
        import _signal as signal  # the C module under signal (not imported before the first screen)
    try:
        curses.def_prog_mode()  # the modes to return to
        curses.endwin()
    except curses.error:
        pass
    handler = signal.signal(signal.SIGTSTP, signal.SIG_DFL)
    try:
        os.kill(os.getpid(), signal.SIGTSTP)  # returns once continued
    finally:
        signal.signal(signal.SIGTSTP, handler)
    try:
        curses.flushinp()
        curses.def_shell_mode()  # the shell's modes now, restored at exit
    except curses.error:
        pass
