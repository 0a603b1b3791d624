"""The contract between the curses application and its screens.

Screens (main table, help, variable editor, output viewer, dialogs) never call
curses. Each one keeps its own state, turns a key into an action, and renders
itself as lines of ``(text, role)`` segments (:mod:`ttop.view.text`). The
application (``ttop.ui.app``) owns the terminal: it reads keys, normalises them
to the names below, hands them to the top screen of a stack, and paints what
the screen renders, only when something changed.

Key names passed to :meth:`Screen.on_key`: a printable character as itself
(``"q"``, ``"/"``, ``"F"``), or one of ``UP DOWN LEFT RIGHT PGUP PGDN HOME END
ENTER ESC BACKSPACE DELETE TAB BTAB CTRL_C CTRL_L CTRL_U F1``
(``CTRL_U`` clears a text field, as in a shell).
"""
from __future__ import annotations

from ..view.text import Line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from ..collect.snapshot import Snapshot


class AppContext:
    """What a screen may ask of the application (implemented by the app).

    ``snapshot``: the latest published snapshot (None only before the first
    one). ``folder``: the progress folder. ``ascii``: draw without Unicode
    symbols. ``alert_count``: health alerts raised so far. ``push``/``pop``: the screen stack. ``notify``: a message for the
    footer; ``current_message``: the one still shown, as ``(text, is_error)``.
    ``refresh_now``: ask the collector for a new cycle. ``quit``: leave the
    program.
    """

    snapshot: Optional["Snapshot"]
    folder: str
    ascii: bool = False
    alert_count: int = 0

    def push(self, screen: "Screen") -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def pop(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def notify(self, message: str, error: bool = False) -> None:  # pragma: no cover
        raise NotImplementedError

    def current_message(self) -> Optional[Tuple[str, bool]]:
        return None

    def refresh_now(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def quit(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Screen:
    """Base class of everything drawn by the app.

    ``render`` must be cheap and side-effect free apart from the screen's own
    view state (scroll positions clamped to the size); it is called after every
    key (but a key typed into a text prompt while more keys wait, see
    :meth:`typing`) and every new snapshot, with the full terminal size. ``on_key`` returns
    True if the key was handled (False lets the app apply global keys such as
    ``q`` / Ctrl+C on the main screen).
    """

    #: Screens that are full-size replace the main table; others (dialogs) are
    #: drawn centred over it.
    modal: bool = False

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        raise NotImplementedError

    def on_key(self, key: str, ctx: AppContext) -> bool:
        return False

    def typing(self) -> bool:
        """True while a text prompt takes the keys (a value, a filter, a
        search): the keys typed into it act on none of what ``render``
        works out, so a burst of them (a paste) is drawn once, when no more
        wait, not once a key."""
        return False

    def on_snapshot(self, ctx: AppContext) -> None:
        """Called when a new snapshot was published (e.g. to re-check state)."""

    def prepare(self, ctx: AppContext, snapshot: Any, width: int, height: int) -> None:
        """Called from the collector thread with each new snapshot, before the
        UI thread draws it: work out what ``render`` will need from it (into
        caches of the pure view), changing nothing the UI thread reads."""


class Target:
    """The thing a signal is aimed at: a run's main process (kind ``run``), an
    expanded ``[P]`` process (``proc``) or a ``[T]`` thread (``thread``).
    ``create_time`` is the one seen in the snapshot: the process is re-checked
    against it right before anything is sent."""

    __slots__ = ("kind", "run_key", "pid", "create_time", "tid", "name")

    def __init__(self, kind: str, run_key: str, pid: int, create_time: Optional[float], tid: Optional[int] = None, name: str = ""):
        self.kind = kind
        self.run_key = run_key
        self.pid = pid
        self.create_time = create_time
        self.tid = tid
        self.name = name

    def __repr__(self) -> str:
        return "Target(%s, %s, pid=%s, tid=%s)" % (self.kind, self.run_key, self.pid, self.tid)
