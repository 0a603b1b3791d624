"""ASCII-only output (``--ascii``, a non-UTF-8 locale or stream)."""
from __future__ import annotations

from .text import char_width


def to_ascii(text: str) -> str:
    """Replace every non-ASCII character by as many ``?`` as the cells it
    takes (a wide character by ``??``, a combining mark by nothing), so the
    layout measured with :func:`ttop.view.text.width` stays exact."""
    if text.isascii():
        return text
    return "".join(ch if ch.isascii() else "?" * char_width(ch) for ch in text)
