"""Terminal width for layout, from ``COLUMNS`` or the terminal, bounded.

A table is laid out in memory at the width asked for: ``COLUMNS=100000000``
would cost gigabytes, so no width above :data:`MAX_WIDTH` is used.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Optional

#: Widest table ever laid out (a larger ``COLUMNS`` or terminal gets this).
MAX_WIDTH = 4096
#: Table width for --once when stdout is not a terminal and COLUMNS is unset.
ONCE_DEFAULT_WIDTH = 100


def env_size(name: str = "COLUMNS") -> Optional[int]:
    """A positive ``COLUMNS`` (or ``LINES``) from the environment, at most
    :data:`MAX_WIDTH`; None when unset or not a positive number."""
    value = os.environ.get(name, "")
    if not (value.isascii() and value.isdigit()):
        return None
    n = int(value) if len(value) <= 12 else MAX_WIDTH  # int() of thousands of digits raises
    return min(n, MAX_WIDTH) if n > 0 else None


def terminal_columns() -> int:
    """What ``shutil.get_terminal_size`` says (COLUMNS, the terminal, 80),
    bounded, without importing shutil (and with it bz2 and lzma) on every start."""
    cols = env_size()
    if cols:
        return cols
    stream = sys.__stdout__
    try:
        return min(os.get_terminal_size(stream.fileno()).columns or 80, MAX_WIDTH) if stream is not None else 80
    except (AttributeError, ValueError, OSError):
        return 80


def once_width(stream: IO[str]) -> int:
    """Table width for --once: COLUMNS if set, else the terminal's width, else
    100 when the output is not a terminal; at most :data:`MAX_WIDTH`."""
    cols = env_size()
    if cols:
        return cols
    try:
        if stream.isatty():
            import shutil

            return min(shutil.get_terminal_size((ONCE_DEFAULT_WIDTH, 24)).columns, MAX_WIDTH)
    except (AttributeError, ValueError, OSError):
        pass
    return ONCE_DEFAULT_WIDTH


def drop_huge_size_env() -> None:
    """For curses, which sizes its screens by ``COLUMNS``/``LINES`` when set:
    a value above :data:`MAX_WIDTH` is removed, so the terminal's own size is used."""
    for name in ("COLUMNS", "LINES"):
        value = os.environ.get(name, "")
        if value.isascii() and value.isdigit() and (len(value) > 12 or int(value) > MAX_WIDTH):
            del os.environ[name]
