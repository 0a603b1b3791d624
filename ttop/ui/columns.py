"""The column chooser (``m``): every column of the main table, built-in and
metric, with a tick for the shown ones, in table order, like htop's
"Columns" setup.

Up / Down (PgUp / PgDn, Home / End) move the cursor; Space shows or hides
the column under it; ``-`` / ``[`` move it up (left in the table), ``+`` /
``=`` / ``]`` down (right); ``d`` goes back to the default columns; Enter
applies the list and saves it in the config file (:mod:`ttop.config`); Esc
or ``q`` leaves without a change. The list is what the table had when the
chooser opened (:func:`ttop.view.columns.chooser_items`).
"""
from __future__ import annotations

import os
from typing import Any, Callable, List, Sequence, Tuple

from ..view import columns as C
from ..view import roles as R
from ..view.text import Line, Segment, clean, fit
from .screen import AppContext, Screen

TITLE_W = 16
KEY_W = 18
HINT = (("Space", "show/hide"), ("-/+", "move"), ("d", "defaults"), ("Enter", "apply"), ("Esc", "cancel"))
#: The hint on a narrow terminal (fits 40 cells).
SHORT_HINT = (("Space", "show"), ("-+", "move"), ("Enter", "ok"), ("Esc", "back"))


def _hint_width(hint: Tuple[Tuple[str, str], ...]) -> int:
    return sum(len(k) + len(w) + 3 for k, w in hint) - 2


class ColumnChooser(Screen):
    """Full-screen list of ``(key, shown)`` items; ``on_apply(choice, ctx)``
    gets the new choice on Enter."""

    def __init__(self, items: Sequence[Tuple[str, bool]], reported: Sequence[str],
                 defaults: Sequence[Tuple[str, bool]], on_apply: Callable[[C.Choice, AppContext], None],
                 ascii: bool = False) -> None:
        self.items: List[Tuple[str, bool]] = list(items)
        self.reported = set(reported)
        self.defaults = list(defaults)
        self.on_apply = on_apply
        self.ascii = ascii
        self.cursor = 0
        self.top = 0
        self._page = 10

    # -- drawing -------------------------------------------------------------

    def _note(self, key: str) -> str:
        if C.is_metric(key):
            return "metric" if key[len(C.METRIC):] in self.reported else "metric (no shown run reports it)"
        return C.NOTES.get(key, "")

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        ell = "..." if self.ascii else "\u2026"
        width = max(1, width)
        shown = sum(1 for _, s in self.items if s)
        title = "Columns: %d of %d shown (Run Name always first)" % (shown, len(self.items))
        lines: List[Line] = [((fit(title, width, "<", ell), R.TITLE),)]
        if height <= 1:
            return lines[:max(0, height)]
        footer = height >= 3
        body_h = max(1, height - 1 - (1 if footer else 0))
        self._page = body_h
        n = len(self.items)
        self.cursor = max(0, min(self.cursor, n - 1))
        if self.cursor < self.top:
            self.top = self.cursor
        elif self.cursor >= self.top + body_h:
            self.top = self.cursor - body_h + 1
        self.top = max(0, min(self.top, max(0, n - body_h)))
        for i in range(self.top, min(n, self.top + body_h)):
            key, on = self.items[i]
            role = R.NORMAL if on else R.DIM
            mark = "[x] " if on else "[ ] "
            text = " " + mark + fit(clean(C.title(key)), TITLE_W, "<", ell) + " " + fit(
                clean(key), KEY_W, "<", ell) + " " + clean(self._note(key))
            if i == self.cursor:
                role = R.with_mod(role, R.SEL)
            lines.append(((fit(text, width, "<", ell), role),))
        while len(lines) < 1 + body_h:
            lines.append(((" " * width, R.NORMAL),))
        if footer:
            segs: List[Segment] = []
            used = 0
            for k, what in (HINT if _hint_width(HINT) <= width else SHORT_HINT):
                gap = "  " if used else ""
                w = len(gap) + len(k) + len(what) + 1
                if used + w > width:
                    break
                if gap:
                    segs.append((gap, R.NORMAL))
                segs.extend([(k, R.KEY), (" " + what, R.NORMAL)])
                used += w
            segs.append((" " * max(0, width - used), R.NORMAL))
            lines.append(tuple(segs))
        return lines

    # -- keys ------------------------------------------------------------------

    def on_key(self, key: str, ctx: AppContext) -> bool:
        n = len(self.items)
        if key == "CTRL_C":
            return False
        if key in ("ESC", "q"):
            ctx.pop()
        elif key == "ENTER":
            ctx.pop()
            self.on_apply(tuple(self.items), ctx)
        elif key in ("UP", "DOWN", "PGUP", "PGDN", "HOME", "END") and n:
            page = max(1, self._page)
            self.cursor = max(0, min(n - 1, {"UP": self.cursor - 1, "DOWN": self.cursor + 1,
                                            "PGUP": self.cursor - page, "PGDN": self.cursor + page,
                                            "HOME": 0, "END": n - 1}[key]))
        elif key == " " and n:
            k, on = self.items[self.cursor]
            self.items[self.cursor] = (k, not on)
        elif key in ("-", "[") and n:
            self.items, self.cursor = C.move(self.items, self.cursor, -1)
        elif key in ("+", "=", "]") and n:
            self.items, self.cursor = C.move(self.items, self.cursor, 1)
        elif key == "d":
            self.items = list(self.defaults)
            self.cursor = min(self.cursor, max(0, len(self.items) - 1))
        return True


def open_chooser(snapshot: Any, state: Any, runs: Sequence[Any],
                 on_apply: Callable[[C.Choice, AppContext], None]) -> ColumnChooser:
    """The chooser for the table as ``state`` shows ``runs`` now."""
    from ..view.metrics import default_metrics
    from ..view.table import columns_for

    choice = state.columns or C.DEFAULT
    reported = default_metrics(runs, C.MAX_ITEMS)
    shown_metrics = [c.key[len(C.METRIC):] for c in columns_for(snapshot, state, runs) if C.is_metric(c.key)]
    auto = [m for m in shown_metrics if m not in set(C.named_metrics(choice))]
    items = C.chooser_items(choice, auto, reported)
    defaults = C.chooser_items(C.DEFAULT, C.auto_metrics(C.DEFAULT, reported), reported)
    return ColumnChooser(items, reported, defaults, on_apply, ascii=state.ascii)


def save_choice(choice: C.Choice, ctx: AppContext) -> None:
    """Keep ``choice`` in the config file; a footer message says where, or
    why it could not be saved (the table uses it all the same)."""
    from .. import config

    path = config.config_path()
    try:
        _, kept = config.save({"columns": C.to_items(choice)}, path)
    except (OSError, ValueError) as e:
        ctx.notify("columns applied, not saved to %s: %s" % (path, getattr(e, "strerror", None) or e), error=True)
        return
    if kept is not None:
        ctx.notify("columns saved to %s; the unusable file there is kept as %s" % (path, os.path.basename(kept)), error=True)
    else:
        ctx.notify("columns saved to %s" % path)
