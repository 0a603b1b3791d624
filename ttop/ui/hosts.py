"""The hosts screen (``H``): the fleet view of a shared folder; Enter shows
the selected host's runs (the main table's ``host:`` filter)."""
from __future__ import annotations

from typing import Callable, List

from ..collect.fleet import host_summaries
from ..view.fleet import host_lines
from ..view.text import Line
from .screen import AppContext, Screen


class HostsScreen(Screen):
    def __init__(self, on_pick: Callable[[str], None]) -> None:
        self.on_pick = on_pick
        self.selected = 0
        self._hosts: List = []

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        self._hosts = host_summaries(ctx.snapshot) if ctx.snapshot is not None else []
        self.selected = max(0, min(self.selected, len(self._hosts) - 1))
        return host_lines(self._hosts, width, height, self.selected, ctx.ascii)

    def on_key(self, key: str, ctx: AppContext) -> bool:
        if key == "CTRL_C":
            return False
        if key in ("UP", "DOWN", "HOME", "END", "PGUP", "PGDN"):
            step = {"UP": -1, "DOWN": 1, "PGUP": -10, "PGDN": 10, "HOME": -10 ** 6, "END": 10 ** 6}[key]
            self.selected = max(0, min(len(self._hosts) - 1, self.selected + step))
        elif key == "ENTER" and self._hosts:
            self.on_pick(self._hosts[self.selected].host)
            ctx.pop()
        elif key in ("ESC", "q", "H"):
            ctx.pop()
        return True
