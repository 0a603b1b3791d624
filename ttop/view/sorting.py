"""Sorting the main table's runs by a column (``<`` / ``>``, ``I``): what a
sort compares, the order, and the title's mark."""
from __future__ import annotations

import math

from . import fmt
from .state import ViewState
from .text import clean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Sequence


def sort_value(col: Optional[Any], run: Any) -> Any:
    """What a sort compares for ``run`` in ``col`` (None: the name): a float
    for numbers and durations, lower-case text otherwise; None when unknown
    (NaN and infinities included), which sorts last either way."""
    if col is None:
        return clean(run.run_name).lower()
    if col.value is None:
        t = clean(col.run(run))
        return None if t == fmt.NA or not t else t.lower()
    v = col.value(run)
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        x = fmt._num(v)
        if x is None:
            return v.lower()
        v = x
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond the float range
        return None
    return x if math.isfinite(x) else None


def sort_runs(runs: Sequence[Any], key: str, reverse: bool, cols: Sequence[Any]) -> List[Any]:
    """``runs`` ordered by column ``key`` (``"name"`` or a column key):
    numbers descending and text ascending by default, ``reverse`` inverts;
    unknown values last either way; ties keep their order."""
    col = None
    if key != "name":
        col = next((c for c in cols if c.key == key), None)
        if col is None:
            return list(runs)
    vals = [(sort_value(col, r), i, r) for i, r in enumerate(runs)]
    known = [v for v in vals if v[0] is not None]
    unknown = [v[2] for v in vals if v[0] is None]
    nums = [v for v in known if isinstance(v[0], float)]
    texts = [v for v in known if not isinstance(v[0], float)]
    nums.sort(key=lambda v: (-v[0], v[1]) if not reverse else (v[0], v[1]))
    texts.sort(key=lambda v: v[0], reverse=reverse)
    return [v[2] for v in nums] + [v[2] for v in texts] + unknown


def sort_mark(state: ViewState) -> str:
    """``▼`` descending numbers / ``▲`` ascending (``v`` / ``^`` in ASCII)."""
    if state.sort_key is None:
        return ""
    desc = state.sort_reverse if state.sort_key in TEXT_SORTS else not state.sort_reverse
    if state.ascii:
        return "v" if desc else "^"
    return "\u25bc" if desc else "\u25b2"


#: Columns whose values are text (ascending by default).
TEXT_SORTS = ("name", "host", "status", "phase", "wandb")
