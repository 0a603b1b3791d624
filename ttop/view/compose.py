"""A table row's segments from its cells: each cell fitted to its column's
width, a stale or selected row's roles marked, neighbouring cells of the
same role joined (fewer curses calls)."""
from __future__ import annotations

from . import roles as R
from .sorting import sort_mark
from .text import Line, Segment, clean, clip, fit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Sequence, Tuple

#: The name column's title.
NAME_TITLE = "Run Name"

#: Most fitted cells kept.
FITTED_KEPT = 4096

#: ``" " + fit(text, width, align, ellipsis)`` of the cells drawn lately:
#: most of a live run's cells read as they did in the last frame.
_FITTED: Dict[Tuple[str, int, str, str], str] = {}


def compose_row(name: str, name_role: str, cells: Sequence[Segment], layout: Sequence[Tuple[Any, int]], nw: int,
                width_: int, ell: str, stale: bool = False, sel: bool = False) -> Line:
    """One table row: the name and each cell ``(text, role)`` of ``layout``
    fitted to their widths, padded to ``width_``; a stale row's and the
    selected row's roles marked so. Neighbouring cells of the same role
    are one segment (fewer curses calls)."""
    mod = ""  # R.with_mod for each marking
    if stale:
        mod = "+" + R.STALE
    if sel:
        mod += "+" + R.SEL
    fitted = _FITTED
    if len(fitted) > FITTED_KEPT:
        fitted.clear()
    out: List[Segment] = []
    texts = [fit(name, nw, "<", ell)]
    role = name_role + mod
    used = nw
    for (col, w), (text, r) in zip(layout, cells):
        key = (text, w, col.align, ell)
        f = fitted.get(key)
        if f is None:
            f = fitted[key] = " " + fit(text, w, col.align, ell)
        if mod:
            r += mod
        if r != role:
            out.append(("".join(texts), role))
            texts = []
            role = r
        texts.append(f)
        used += w + 1
    if used < width_:
        r = R.NORMAL + mod
        if r != role:
            out.append(("".join(texts), role))
            texts = []
            role = r
        texts.append(" " * (width_ - used))
    out.append(("".join(texts), role))
    return tuple(out)


def run_cells(run: Any, base: str, getters: Sequence[Tuple[Any, bool, Any, Any]], i: int) -> List[Segment]:
    """The cells ``(text, role)`` of a run's row (``base``: the row's role):
    per column of the layout, ``getters`` holds its run getter, whether the
    run's status colours it, its ``cell_role`` and the texts already made
    for the rows shown (None: made here), of which the row's is ``i``."""
    out: List[Segment] = []
    normal = R.NORMAL
    for get, colored, role_of, made in getters:
        if made is not None:
            text = made[i]
        else:
            text = get(run)
            if type(text) is not str or not text.isprintable():  # clean()'s own test first
                text = clean(text)
        role = base if colored else normal
        if role_of is not None:
            role = role_of(run) or role
        out.append((text, role))
    return out


#: Per column shape ``(width, align, ellipsis)``: its fitted cells
#: (``" " + fit(text, ...)``) by text, for :func:`run_line`.
_FITTED_BY: Dict[Tuple[int, str, str], Dict[str, str]] = {}


class RowPlan(list):
    """:func:`row_plan`'s list, with the cells its columns take, each with
    the space before it (``width``)."""

    __slots__ = ("width",)
    width: int


def row_plan(getters: Sequence[Tuple[Any, bool, Any, Any]], layout: Sequence[Tuple[Any, int]], ell: str) -> RowPlan:
    """What :func:`run_line` needs per column of ``layout``: its getters'
    entry (see :func:`run_cells`), width, alignment and fitted cells."""
    if sum(len(d) for d in _FITTED_BY.values()) > FITTED_KEPT:
        _FITTED_BY.clear()
    plan = RowPlan(g + (w, col.align, _FITTED_BY.setdefault((w, col.align, ell), {}))
                   for g, (col, w) in zip(getters, layout))
    plan.width = sum(w + 1 for _col, w in layout[:len(plan)])
    return plan


def run_line(run: Any, base: str, name: str, name_role: str, plan: RowPlan,
             i: int, nw: int, width_: int, ell: str, stale: bool = False, sel: bool = False) -> Line:
    """``compose_row(name, name_role, run_cells(run, base, getters, i),
    layout, ...)`` in one pass over the columns (a table's rows are mostly
    runs whose every cell is made again each frame); ``plan``:
    :func:`row_plan` of the layout."""
    mod = ""
    if stale:
        mod = "+" + R.STALE
    if sel:
        mod += "+" + R.SEL
    normal = R.NORMAL
    out: List[Segment] = []
    texts = [fit(name, nw, "<", ell)]
    role = name_role + mod
    for get, colored, role_of, made, w, align, fitted in plan:
        text = made[i] if made is not None else get(run)
        try:  # the keys are clean text: a text found there needs no check
            f = fitted.get(text)
        except TypeError:  # not text, nor hashable
            f = None
        if f is None:
            if type(text) is not str or not text.isprintable():  # clean()'s own test first
                text = clean(text)
            f = fitted.get(text)
            if f is None:
                f = fitted[text] = " " + fit(text, w, align, ell)
        r = base if colored else normal
        if role_of is not None:
            r = role_of(run) or r
        if mod:
            r += mod
        if r != role:
            out.append(("".join(texts), role))
            texts = [f]
            role = r
        else:
            texts.append(f)
    used = nw + plan.width
    if used < width_:
        r = normal + mod
        if r != role:
            out.append(("".join(texts), role))
            texts = []
            role = r
        texts.append(" " * (width_ - used))
    out.append(("".join(texts), role))
    return tuple(out)


def title_line(state: Any, layout: Sequence[Tuple[Any, int]], offset: int, nw: int, width_: int) -> Line:
    """The table's title line for ``layout`` (:func:`_layout`)."""
    ell = "..." if state.ascii else "\u2026"
    left_mark = "<" if offset > 0 else ""
    mark = sort_mark(state)
    name_title = NAME_TITLE + (mark if state.sort_key == "name" else "")
    title: List[Segment] = [(fit(name_title, nw - len(left_mark), "<", ell) + left_mark, R.TITLE)]
    for col, w in layout:
        t = col.title
        if col.key == state.sort_key:
            t = clip(t, w - 1, ell) + mark
        title.append((" " + fit(t, w, col.align, ell), R.TITLE))
    used = nw + sum(w + 1 for _, w in layout)
    if used < width_:
        title.append((" " * (width_ - used), R.TITLE))
    return _merge(title)


def _merge(segs: List[Segment]) -> Line:
    """Join neighbouring segments of the same role (fewer curses calls)."""
    out: List[Segment] = []
    for text, role in segs:
        if out and out[-1][1] == role:
            out[-1] = (out[-1][0] + text, role)
        else:
            out.append((text, role))
    return tuple(out)
