"""Terminal-safe text: sanitising, display width and clipping.

Every string that reaches the screen passes through :func:`clean` (no control
character is ever written raw) and is measured with :func:`width` (wide East
Asian characters take two cells, combining marks none).

A rendered screen is a list of :data:`Line`; a line is a tuple of
:data:`Segment` ``(text, role)`` pairs. Roles are plain strings that the curses
layer maps to attributes (see ``ttop.view.roles``); nothing here knows curses.
"""
from __future__ import annotations

import unicodedata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Sequence, Tuple

    Segment = Tuple[str, str]
    Line = Tuple[Segment, ...]
else:  # type aliases are for the checker: at run time, what they are
    Segment = Line = tuple

_CTRL = r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
_ANSI = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])"


_COMPILED: Dict[str, Any] = {}


def _compiled(pattern: str) -> Any:
    """``pattern`` compiled on first use: plain ASCII text never needs these,
    and compiling them is work at every start (the first screen's text is
    plain; so is importing ``functools`` for a cache)."""
    compiled = _COMPILED.get(pattern)
    if compiled is None:
        import re

        compiled = _COMPILED[pattern] = re.compile(pattern)
    return compiled


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences (CSI, OSC, two-byte escapes)."""
    return _compiled(_ANSI).sub("", text)


def clean(text: object) -> str:
    """One-line, terminal-safe text: ANSI escapes removed, tabs and newlines
    become spaces, other control, zero-width and bidi-override characters
    become ``?``."""
    s = text if isinstance(text, str) else str(text)
    # printable text holds none of what is replaced below (escapes, tabs,
    # newlines, control, zero-width and bidi characters, lone surrogates
    # are all unprintable): a mark such as … needs no pattern compiled
    if s.isprintable():
        return s
    s = strip_ansi(s).replace("\t", " ").replace("\n", " ").replace("\r", " ")
    s = _compiled(_CTRL).sub("?", s)
    # lone surrogates (from surrogateescape decoding) cannot be encoded
    return s.encode("utf-8", "replace").decode("utf-8")


def char_width(ch: str) -> int:
    """Cells ``ch`` takes, as the C library's ``wcwidth`` (which ncurses
    uses) counts them: non-spacing and enclosing marks (Thai and Devanagari
    vowel signs, variation selectors) and format characters take none."""
    if ch.isascii():
        return 1
    if unicodedata.combining(ch):
        return 0
    cat = unicodedata.category(ch)
    if cat in ("Mn", "Me") or (cat == "Cf" and ch != "\u00ad") or "\u1160" <= ch <= "\u11ff":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


#: Characters that take one cell each (by :func:`char_width`): ASCII,
#: Latin / IPA, dashes and quotes, the ellipsis, arrows, box drawing, block
#: elements and braille (the charts' characters).
_ONE_CELL = "[\x00-\x7f\xa0-\u02ff\u2010-\u2027\u2190-\u21ff\u2500-\u259f\u2800-\u28ff]*"
_NON_ASCII = r"[^\x00-\x7f]"
#: the two patterns above, compiled by the first text longer than _SHORT
_one_cell: Any = None
_non_ascii: Any = None
#: non-ASCII texts up to this long are measured by their distinct
#: characters while the patterns are not compiled: the first screen's few
#: marks and bars (an ellipsis, a meter's blocks) then need no ``re``
_SHORT = 32
#: char_width of the other non-ASCII characters met so far (marks such as
#: a check mark, names' letters; capped so arbitrary text cannot grow it)
_WIDTHS: Dict[str, int] = {}
_WIDTHS_MAX = 4096


def _compile_width_patterns() -> None:
    global _one_cell, _non_ascii
    _non_ascii = _compiled(_NON_ASCII)
    _one_cell = _compiled(_ONE_CELL)


def _char_width_cached(ch: str) -> int:
    w = _WIDTHS.get(ch)
    if w is None:
        w = char_width(ch)
        if len(_WIDTHS) < _WIDTHS_MAX:
            _WIDTHS[ch] = w
    return w


def _width_by_chars(text: str) -> int:
    """:func:`width` without the patterns: each distinct non-ASCII
    character measured once and counted."""
    n = len(text)
    for ch in set(text):
        if ch > "\x7f":
            w = _char_width_cached(ch)
            if w != 1:
                n += (w - 1) * text.count(ch)
    return n


def width(text: str) -> int:
    """Display width in terminal cells of already-:func:`clean` text."""
    if text.isascii():
        return len(text)
    if _one_cell is None:
        if len(text) <= _SHORT:
            return _width_by_chars(text)
        _compile_width_patterns()
    if _one_cell.fullmatch(text):
        return len(text)
    # a line with a few other marks in it: only the non-ASCII ones are measured
    n = len(text)
    widths = _WIDTHS
    for ch in _non_ascii.findall(text):
        w = widths.get(ch)
        if w is None:
            w = char_width(ch)
            if len(widths) < _WIDTHS_MAX:
                widths[ch] = w
        n += w - 1
    return n


def clip(text: str, cells: int, ellipsis: str = "\u2026") -> str:
    """Cut ``text`` to at most ``cells`` cells, ending in ``ellipsis`` if cut."""
    if cells <= 0:
        return ""
    if width(text) <= cells:
        return text
    ell_w = width(ellipsis)
    if cells <= ell_w:
        return ellipsis[:cells] if ellipsis.isascii() else ""
    out: List[str] = []
    used = 0
    for ch in text:
        w = char_width(ch)
        if used + w > cells - ell_w:
            break
        out.append(ch)
        used += w
    return "".join(out) + ellipsis


def clip_start(text: str, cells: int, ellipsis: str = "\u2026") -> str:
    """Cut ``text`` to at most ``cells`` cells keeping its end, starting with
    ``ellipsis`` if cut: the end of what is being typed stays in view."""
    if width(text) <= cells:
        return text if cells > 0 else ""
    return clip(text[::-1], cells, ellipsis[::-1])[::-1]


def fit(text: str, cells: int, align: str = "<", ellipsis: str = "\u2026") -> str:
    """Clip and pad ``text`` to exactly ``cells`` cells (align ``<`` or ``>``)."""
    n = len(text) if text.isascii() else width(text)
    if n <= cells:  # the usual cell: it fits as it is (measured once)
        if cells <= 0:
            return ""
        pad = cells - n
        return text + " " * pad if align == "<" else " " * pad + text
    t = clip(text, cells, ellipsis)
    pad = cells - width(t)
    if pad <= 0:
        return t
    return t + " " * pad if align == "<" else " " * pad + t


def line_width(line: Line) -> int:
    return sum(width(t) for t, _ in line)


def pad_line(segs: Sequence[Segment], cells: int, role: str) -> Line:
    """``crop_line(segs, 0, cells)`` padded with a segment of ``role`` to
    ``cells`` cells; a line that fits (the usual header and footer line)
    measured once, not cropped."""
    widths = [width(t) for t, _ in segs]
    used = sum(widths)
    if used < cells and (not widths or widths[0] > 0):  # crop_line would keep every segment as it is
        return tuple(segs) + ((" " * (cells - used), role),)
    line = crop_line(tuple(segs), 0, cells)
    used = line_width(line)
    if used < cells:
        line = line + ((" " * (cells - used), role),)
    return line


def crop_line(line: Line, start: int, cells: int) -> Line:
    """The part of ``line`` from cell ``start`` spanning at most ``cells`` cells
    (a wide character cut in half becomes a space)."""
    out: List[Segment] = []
    pos = 0
    end = start + cells
    for text, role in line:
        if pos >= end:
            break
        w = width(text)
        if pos + w <= start:
            pos += w
            continue
        if pos >= start and pos + w <= end:
            out.append((text, role))
            pos += w
            continue
        if text.isascii():  # one cell a character (clean text): cut by slicing
            part = text[max(start - pos, 0):end - pos]
            if part:
                out.append((part, role))
            pos += w
            continue
        buf: List[str] = []
        for ch in text:
            cw = char_width(ch)
            if pos >= end and cw:  # the rest is beyond the crop (a log line can be 16 KiB)
                break
            if pos >= start and pos + cw <= end:
                buf.append(ch)
            elif pos < end and pos + cw > start:
                buf.append(" " * max(0, min(pos + cw, end) - max(pos, start)))
            pos += cw
        if buf:
            out.append(("".join(buf), role))
    return tuple(out)
