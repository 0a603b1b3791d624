"""Role -> curses attribute.

Eight colours are enough. With ``NO_COLOR`` set (any value, see no-color.org)
or a terminal without colours, only bold / underline / reverse / dim are used,
so every status stays distinguishable by text and weight alone.
"""
from __future__ import annotations

import curses
import os

from ..view import roles as R

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Mapping, Optional, Tuple

# role -> (foreground, background or -1, extra attributes)
_COLOR_SPEC: Dict[str, Tuple[int, int, int]] = {
    R.NORMAL: (-1, -1, 0),
    R.DIM: (-1, -1, curses.A_DIM),
    R.TITLE: (curses.COLOR_BLACK, curses.COLOR_CYAN, 0),
    R.HEADER: (-1, -1, 0),
    R.LABEL: (curses.COLOR_CYAN, -1, curses.A_BOLD),
    R.BAR_LOW: (curses.COLOR_GREEN, -1, 0),
    R.BAR_MID: (curses.COLOR_YELLOW, -1, 0),
    R.BAR_HIGH: (curses.COLOR_RED, -1, curses.A_BOLD),
    R.BAR_EMPTY: (-1, -1, curses.A_DIM),
    R.FOOTER: (-1, -1, 0),
    R.KEY: (curses.COLOR_CYAN, -1, curses.A_BOLD),
    R.NOTICE: (curses.COLOR_YELLOW, -1, 0),
    R.ERROR: (curses.COLOR_RED, -1, curses.A_BOLD),
    R.PAUSED: (curses.COLOR_BLACK, curses.COLOR_YELLOW, curses.A_BOLD),
    R.PROC: (curses.COLOR_CYAN, -1, 0),
    R.THREAD: (curses.COLOR_BLUE, -1, 0),
    R.FILTER: (curses.COLOR_MAGENTA, -1, curses.A_BOLD),
    R.CHART: (curses.COLOR_GREEN, -1, 0),
    R.TREND_UP: (curses.COLOR_YELLOW, -1, 0),
    R.TREND_DOWN: (curses.COLOR_GREEN, -1, 0),
    R.MARK: (curses.COLOR_YELLOW, -1, curses.A_BOLD),
    R.HEALTH_OK: (curses.COLOR_GREEN, -1, 0),
    R.HEALTH_WARN: (curses.COLOR_YELLOW, -1, curses.A_BOLD),
    R.HEALTH_CRIT: (curses.COLOR_WHITE, curses.COLOR_RED, curses.A_BOLD),
    R.SERIES[0]: (curses.COLOR_GREEN, -1, 0),
    R.SERIES[1]: (curses.COLOR_MAGENTA, -1, 0),
    R.SERIES[2]: (curses.COLOR_CYAN, -1, 0),
    R.SERIES[3]: (curses.COLOR_YELLOW, -1, 0),
    R.SERIES[4]: (curses.COLOR_BLUE, -1, curses.A_BOLD),
    R.SERIES[5]: (curses.COLOR_RED, -1, 0),
    R.LOADING: (curses.COLOR_BLUE, -1, curses.A_BOLD),
    R.TRAIN: (curses.COLOR_GREEN, -1, 0),
    R.VALIDATION: (curses.COLOR_CYAN, -1, 0),
    R.RUNNING: (curses.COLOR_GREEN, -1, curses.A_BOLD),
    R.FINISHED: (-1, -1, curses.A_BOLD),
    R.FAILED: (curses.COLOR_RED, -1, curses.A_BOLD),
    R.CANCELED: (curses.COLOR_YELLOW, -1, 0),
    R.KILLED: (curses.COLOR_MAGENTA, -1, curses.A_BOLD),
    R.KILLED_INFERRED: (curses.COLOR_MAGENTA, -1, curses.A_UNDERLINE),
}

# monochrome: weight and decoration only
_MONO_SPEC: Dict[str, int] = {
    R.NORMAL: 0,
    R.DIM: curses.A_DIM,
    R.TITLE: curses.A_REVERSE,
    R.HEADER: 0,
    R.LABEL: curses.A_BOLD,
    R.BAR_LOW: 0,
    R.BAR_MID: curses.A_BOLD,
    R.BAR_HIGH: curses.A_BOLD,
    R.BAR_EMPTY: curses.A_DIM,
    R.FOOTER: 0,
    R.KEY: curses.A_BOLD,
    R.NOTICE: curses.A_BOLD,
    R.ERROR: curses.A_BOLD | curses.A_UNDERLINE,
    R.PAUSED: curses.A_REVERSE | curses.A_BOLD,
    R.PROC: 0,
    R.THREAD: curses.A_DIM,
    R.FILTER: curses.A_UNDERLINE,
    R.CHART: 0,
    R.TREND_UP: 0,
    R.TREND_DOWN: 0,
    R.MARK: curses.A_BOLD,
    R.HEALTH_OK: 0,
    R.HEALTH_WARN: curses.A_BOLD,
    R.HEALTH_CRIT: curses.A_BOLD | curses.A_REVERSE,
    R.LOADING: curses.A_DIM,
    R.TRAIN: 0,
    R.VALIDATION: curses.A_UNDERLINE,
    R.RUNNING: 0,
    R.FINISHED: curses.A_BOLD,
    R.FAILED: curses.A_BOLD | curses.A_UNDERLINE,
    R.CANCELED: curses.A_UNDERLINE,
    R.KILLED: curses.A_BOLD,
    R.KILLED_INFERRED: curses.A_BOLD | curses.A_UNDERLINE,
}


def no_color_requested(env: Optional[Mapping[str, str]] = None) -> bool:
    return bool((os.environ if env is None else env).get("NO_COLOR"))


class Palette:
    """Resolves role strings (with ``+sel`` / ``+dim`` modifiers) to curses
    attributes; call after ``initscr``."""

    def __init__(self, use_color: bool) -> None:
        self.color = False
        self._base: Dict[str, int] = {}
        self._cache: Dict[str, int] = {}
        if use_color:
            try:
                self.color = curses.has_colors()
                if self.color:
                    curses.start_color()
                    try:
                        curses.use_default_colors()
                        default_bg = -1
                    except curses.error:
                        default_bg = curses.COLOR_BLACK
            except curses.error:
                self.color = False
        if self.color:
            pairs: Dict[Tuple[int, int], int] = {}
            for role, (fg, bg, extra) in _COLOR_SPEC.items():
                if fg == -1 and bg == -1:
                    self._base[role] = extra
                    continue
                if default_bg == -1:
                    key = (fg, bg)
                else:
                    key = (fg if fg != -1 else curses.COLOR_WHITE, bg if bg != -1 else curses.COLOR_BLACK)
                if key not in pairs:
                    n = len(pairs) + 1
                    try:
                        if n >= curses.COLOR_PAIRS:
                            raise curses.error("no colour pairs left")
                        curses.init_pair(n, key[0], key[1])
                    except (curses.error, AttributeError):
                        self._base[role] = extra
                        continue
                    pairs[key] = n
                self._base[role] = curses.color_pair(pairs[key]) | extra
        else:
            self._base = dict(_MONO_SPEC)

    def attr(self, role: str) -> int:
        a = self._cache.get(role)
        if a is not None:
            return a
        base, mods = R.split(role)
        a = self._base.get(base, 0)
        if "dim" in mods:
            a |= curses.A_DIM
        if "sel" in mods:
            a |= curses.A_REVERSE
            if not self.color:
                a |= curses.A_BOLD
        self._cache[role] = a
        return a
