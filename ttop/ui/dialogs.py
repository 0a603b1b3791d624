"""Small dialogs drawn centred over the current screen: a message, a
confirmation (``y`` confirms, any other key cancels) and a menu.

They never call curses: each renders a boxed list of :data:`Line` and the app
centres it (``modal = True``). Callbacks receive the :class:`AppContext`.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from ..view import roles as R
from ..view.text import Line, clean, clip, fit
from ..view.text import width as text_width
from .screen import AppContext, Screen

_BOX = {"tl": "\u250c", "tr": "\u2510", "bl": "\u2514", "br": "\u2518", "h": "\u2500", "v": "\u2502"}
_ASCII_BOX = {"tl": "+", "tr": "+", "bl": "+", "br": "+", "h": "-", "v": "|"}


def wrap_text(text: str, cells: int) -> List[str]:
    """Greedy word wrap of clean text to ``cells`` cells (long words cut)."""
    text = clean(text)
    if cells <= 1:
        return [text[:1]] if text else [""]
    out: List[str] = []
    line = ""
    for word in text.split(" "):
        cand = word if not line else line + " " + word
        if text_width(cand) <= cells:
            line = cand
            continue
        if line:
            out.append(line)
        while text_width(word) > cells:
            piece = clip(word, cells, ellipsis="")
            out.append(piece)
            word = word[len(piece):]
        line = word
    out.append(line)
    return out


def boxed(title: str, body: Sequence[Tuple[str, str]], width: int, height: int, ascii: bool = False,
          footer: str = "", min_inner: int = 30, max_inner: int = 76, keep_tail: int = 0,
          focus: Optional[int] = None) -> List[Line]:
    """A box around ``body`` (pairs of (text, role), wrapped to fit) with a
    title on the top border and ``footer`` on the bottom border.

    When the body does not fit the height, rows of the first entries give
    way to an ellipsis, but the last ``keep_tail`` entries (a prompt, the
    choices of a menu) stay; if even those do not fit, the rows shown are
    those around entry ``focus`` (else the last ones)."""
    b = _ASCII_BOX if ascii else _BOX
    max_inner = max(10, min(max_inner, width - 4))
    natural = max([text_width(clean(t)) for t, _ in body] + [text_width(clean(title)) + 2, text_width(footer) + 2, min_inner])
    inner = min(max_inner, natural)
    numbered: List[Tuple[str, str, int]] = []
    for i, (text, role) in enumerate(body):
        for piece in wrap_text(text, inner):
            numbered.append((piece, role, i))
    rows: List[Tuple[str, str]] = [(t, r) for t, r, _ in numbered]
    room = max(1, height - 2)
    if len(rows) > room:
        ell = ("\u2026" if not ascii else "...", R.DIM)
        first_kept = len(body) - max(0, keep_tail)
        head = [(t, r) for t, r, i in numbered if i < first_kept]
        tail = [(t, r) for t, r, i in numbered if i >= first_kept]
        if not tail:
            rows = head[: room - 1] + [ell]
        elif len(tail) < room:
            rows = head[: room - 1 - len(tail)] + [ell] + tail
        else:
            at = [k for k, (_t, _r, i) in enumerate(numbered) if i >= first_kept and i == focus]
            start = len(tail) - room
            if at:
                lo, hi = at[0] - len(head), at[-1] - len(head)
                start = max(0, min(lo, len(tail) - room))
                if hi >= start + room:
                    start = hi - room + 1
            rows = tail[start:start + room]
    def border(left: str, label: str, right: str) -> Line:
        label = clip(clean(label), inner - 2, "")
        mid = (b["h"] + " " + label + " ") if label else ""
        fill = inner + 2 - text_width(mid)
        return ((left + mid + b["h"] * fill + right, R.TITLE),)

    lines: List[Line] = [border(b["tl"], title, b["tr"])]
    for text, role in rows:
        lines.append(((b["v"] + " ", R.TITLE), (fit(text, inner), role), (" " + b["v"], R.TITLE)))
    lines.append(border(b["bl"], footer, b["br"]))
    return lines


class MessageDialog(Screen):
    """A message; any key closes it (Ctrl+C still quits)."""

    modal = True

    def __init__(self, title: str, lines: Sequence[str], error: bool = False) -> None:
        self.title = title
        self.lines = list(lines)
        self.error = error

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        role = R.ERROR if self.error else R.NORMAL
        return boxed(self.title, [(t, role) for t in self.lines], width, height,
                     ctx.ascii, footer="any key closes")

    def on_key(self, key: str, ctx: AppContext) -> bool:
        if key == "CTRL_C":
            return False
        ctx.pop()
        return True


class ConfirmDialog(Screen):
    """``y`` confirms (the dialog closes, then ``on_yes(ctx)`` runs); any other
    key cancels. Ctrl+C cancels and is passed on (quit)."""

    modal = True

    def __init__(self, title: str, lines: Sequence[Tuple[str, str]], on_yes: Callable[[AppContext], None],
                 prompt: str = "y: yes, any other key: no", cancel_message: Optional[str] = "cancelled") -> None:
        self.title = title
        self.lines = list(lines)
        self.on_yes = on_yes
        self.prompt = prompt
        self.cancel_message = cancel_message

    #: the prompt where the box cannot show what ``y`` would do
    TOO_SMALL = "enlarge to confirm"

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        body = self.lines + [("", R.NORMAL), (self.prompt, R.KEY)]
        lines = boxed(self.title, body, width, height, ctx.ascii, keep_tail=1)
        # what y does (the first line: the PID, run and user a signal goes
        # to) must be on the screen whole: where a small terminal cuts it,
        # y is not taken (notes after it may give way)
        shown = "".join("".join(ln[1][0].split()) for ln in lines[1:-1] if len(ln) == 3)
        self.cut = bool(self.lines) and "".join(clean(self.lines[0][0]).split()) not in shown
        if self.cut:
            body[-1] = (self.TOO_SMALL, R.KEY)
            lines = boxed(self.title, body, width, height, ctx.ascii, keep_tail=1)
        return lines

    cut = False  # (set by each render)

    def on_key(self, key: str, ctx: AppContext) -> bool:
        if key in ("y", "Y") and self.cut:
            ctx.pop()
            ctx.notify("%s: not confirmed, the terminal was too small to show what it does" % self.title, error=True)
            return True
        if key in ("y", "Y"):
            ctx.pop()
            self.on_yes(ctx)
            return True
        ctx.pop()
        if self.cancel_message:
            ctx.notify(self.cancel_message)
        return key != "CTRL_C"


class MenuDialog(Screen):
    """A list of choices: Up/Down and Enter, or the number shown; Esc (or q)
    cancels. ``on_choose(index, ctx)`` runs after the menu closed."""

    modal = True

    def __init__(self, title: str, items: Sequence[Tuple[str, str]], on_choose: Callable[[int, AppContext], None],
                 notes: Sequence[str] = ()) -> None:
        self.title = title
        self.items = list(items)
        self.on_choose = on_choose
        self.notes = list(notes)
        self.index = 0

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        label_w = max([text_width(clean(a)) for a, _ in self.items] + [0])
        body: List[Tuple[str, str]] = [(n, R.DIM) for n in self.notes]
        if body:
            body.append(("", R.NORMAL))
        focus = len(body) + self.index
        for i, (label, hint) in enumerate(self.items):
            text = "%d %s  %s" % (i + 1, fit(clean(label), label_w), clean(hint))
            body.append((text, R.with_mod(R.NORMAL, R.SEL) if i == self.index else R.NORMAL))
        return boxed(self.title, body, width, height, ctx.ascii,
                     footer="%s Enter or 1-%d; Esc cancels" % ("Up/Down" if ctx.ascii else "\u2191\u2193",
                                                                len(self.items)),
                     keep_tail=len(self.items), focus=focus)

    def on_key(self, key: str, ctx: AppContext) -> bool:
        n = len(self.items)
        if key == "UP":
            self.index = (self.index - 1) % n
        elif key == "DOWN":
            self.index = (self.index + 1) % n
        elif key in ("HOME", "PGUP"):
            self.index = 0
        elif key in ("END", "PGDN"):
            self.index = n - 1
        elif key == "ENTER":
            ctx.pop()
            self.on_choose(self.index, ctx)
        elif len(key) == 1 and key.isdigit() and 1 <= int(key) <= n:
            self.index = int(key) - 1
            ctx.pop()
            self.on_choose(self.index, ctx)
        elif key in ("ESC", "q"):
            ctx.pop()
            ctx.notify("cancelled")
        elif key == "CTRL_C":
            ctx.pop()
            return False
        return True
