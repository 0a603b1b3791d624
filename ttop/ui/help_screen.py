"""The help screen (``h`` / ``?``): every key, from :mod:`ttop.view.help`."""
from __future__ import annotations

from typing import List

from ..view import roles as R
from ..view.help import help_lines
from ..view.text import Line
from .screen import AppContext, Screen


class HelpScreen(Screen):
    """Up/Down/PgUp/PgDn scroll; any other key closes (Ctrl+C still quits)."""

    def __init__(self, ascii: bool = False) -> None:
        self.ascii = ascii
        self.scroll = 0
        self._height = 10

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        lines = help_lines(width, self.ascii)
        self._height = height
        self.scroll = max(0, min(self.scroll, len(lines) - height))
        out = lines[self.scroll:self.scroll + height]
        while len(out) < height:
            out.append(((" " * width, R.NORMAL),))
        return out

    def on_key(self, key: str, ctx: AppContext) -> bool:
        if key == "CTRL_C":
            return False
        if key in ("UP", "DOWN", "PGUP", "PGDN", "HOME", "END"):
            step = {"UP": -1, "DOWN": 1, "PGUP": -self._height, "PGDN": self._height,
                    "HOME": -10 ** 6, "END": 10 ** 6}[key]
            self.scroll = max(0, self.scroll + step)
            return True
        ctx.pop()
        return True
