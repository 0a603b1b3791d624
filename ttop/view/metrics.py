"""Metrics of a run as the table shows them: which ones get a column, the
latest value, and its trend.

* :func:`default_metrics`: up to ``n`` metric names the given runs report,
  loss-like names (containing ``loss``) first, then the names most runs
  report, then by name.
* :func:`trend`: ``"up"``, ``"down"`` or ``"flat"``: the latest value against
  the mean of the window before it in the progress file's ``history`` (up to
  :data:`TREND_WINDOW` points); a change within :data:`FLAT_TOLERANCE` of that
  mean, or within half the window's spread, is flat. None with fewer than 3
  earlier points or a latest value that is not a finite number.
* :func:`metric_text`: the value with 4 significant digits and the trend mark
  (``↑ ↓ →``, or ``^ v =`` in ASCII).
"""
from __future__ import annotations

# (as os.py does: collections.abc would import the collections package, and
# its classes, before the first screen)
import _collections_abc as abc
import math
from itertools import chain

from ..progress import number_or_none
from . import fmt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

TREND_WINDOW = 10
_FLOATS = {float}
FLAT_TOLERANCE = 0.01
MARKS = {"up": "\u2191", "down": "\u2193", "flat": "\u2192"}
ASCII_MARKS = {"up": "^", "down": "v", "flat": "="}


def _metrics_of(run: Any) -> Mapping[str, Any]:
    m = run.data.get("metrics")
    # type() first: typing's isinstance is slow and 10,000 rows ask 3 times each
    return m if type(m) is dict or isinstance(m, abc.Mapping) else {}


def _history_of(run: Any, name: str, last: int = 0) -> Sequence[Any]:
    """The run's ``history`` of ``name``; with ``last``: at least its last
    ``last`` points (a live run's history kept as text gives only those,
    parsing no more: see ``ttop.collect.lazyjson``)."""
    h = run.data.get("history")
    if last and type(h) is not dict:
        tail = getattr(h, "tail", None)
        if tail is not None:
            got = tail(name, last)
            if got is not None:
                return got
    s = h.get(name) if type(h) is dict or isinstance(h, abc.Mapping) else None
    return s if isinstance(s, list) else ()


def is_loss(name: str) -> bool:
    return "loss" in name.lower()


def default_metrics(runs: Iterable[Any], n: int = 3) -> List[str]:
    """Up to ``n`` metric names reported by ``runs``, loss-like ones first."""
    return rank_names((_metrics_of(run) for run in runs), n)


def rank_names(reported: Iterable[Iterable[Any]], n: int = 3) -> List[str]:
    """:func:`default_metrics` from each run's metric names."""
    seen: Dict[Any, int] = {}
    for name in chain.from_iterable(reported):
        seen[name] = seen.get(name, 0) + 1
    for name in [k for k in seen if not isinstance(k, str) or not k]:
        del seen[name]
    order = sorted(seen, key=lambda k: (not is_loss(k), -seen[k], k))
    return order[:n]


def value(run: Any, name: str) -> Optional[float]:
    """The latest value as a float (NaN / inf included), None when the run
    does not report it as a number."""
    v = _metrics_of(run).get(name)
    if isinstance(v, bool):
        return None
    return number_or_none(v)


def trend(run: Any, name: str) -> Optional[str]:
    return _trend(run, name, _metrics_of(run).get(name))


def _trend(run: Any, name: str, raw: Any) -> Optional[str]:
    """:func:`trend` of the run's latest value ``raw`` of ``name``."""
    if type(raw) is float:  # the usual value: no conversion
        x: Optional[float] = raw
    else:
        x = None if isinstance(raw, bool) else number_or_none(raw)
    if x is None or x - x != 0.0:  # not a number, or not finite
        return None
    hist = _history_of(run, name, TREND_WINDOW + 1)
    # the history's last point is usually the latest value itself
    earlier = hist[-(TREND_WINDOW + 1):]
    if earlier:
        p = earlier[-1]
        last = p if type(p) is float else (number_or_none(p) if not isinstance(p, bool) else None)
        if last is not None and last == x:
            earlier = earlier[:-1]
    window = earlier[-TREND_WINDOW:]
    total = sum(window) if set(map(type, window)) == _FLOATS else math.nan
    if total - total == 0.0:  # floats only, all finite (any NaN or infinity makes the sum one): the usual history
        pts = window
    else:
        pts = []
        for p in window:
            if type(p) is not float:
                p = None if isinstance(p, bool) else number_or_none(p)
                if p is None:
                    continue
            if p - p == 0.0:  # finite
                pts.append(p)
    if len(pts) < 3:
        return None
    mean = (total if pts is window else sum(pts)) / len(pts)
    s = sorted(pts)  # (one call: max() and min() parse their arguments the slow way)
    spread = (s[-1] - s[0]) / 2.0
    tol = FLAT_TOLERANCE * abs(mean)  # max(that, spread * 0.5, 1e-12):
    if spread * 0.5 > tol:
        tol = spread * 0.5
    if tol < 1e-12:
        tol = 1e-12
    if x > mean + tol:
        return "up"
    if x < mean - tol:
        return "down"
    return "flat"


def metric_text(run: Any, name: str, ascii: bool = False) -> str:
    raw = _metrics_of(run).get(name)
    if raw is None:
        return fmt.NA
    if type(raw) is float:
        return _float_text(run, name, raw, ascii)
    text = fmt.metric(raw)
    t = _trend(run, name, raw)
    if t is not None:
        text += (ASCII_MARKS if ascii else MARKS)[t]
    return text


def _float_text(run: Any, name: str, raw: float, ascii: bool) -> str:
    """:func:`metric_text` of a float value."""
    if raw - raw != 0.0:  # NaN or infinite: no trend
        return fmt.metric(raw)
    # fmt.metric's own format, in two calls less
    text = ("%.3g" if raw != 0 and (raw >= 1e6 or raw <= -1e6 or -1e-3 < raw < 1e-3) else "%.4g") % raw
    t = _trend(run, name, raw)
    if t is not None:
        text += (ASCII_MARKS if ascii else MARKS)[t]
    return text


def metric_cell(name: str, ascii: bool = False) -> Callable[[Any], str]:
    """``lambda run: metric_text(run, name, ascii)``, with the usual case
    (metrics a dict, the value a float) in one call less."""
    def cell(run: Any) -> str:
        m = run.data.get("metrics")
        if type(m) is dict:
            raw = m.get(name)
            if type(raw) is float:
                return _float_text(run, name, raw, ascii)
        return metric_text(run, name, ascii)

    return cell


def error_role(name: str, role: str) -> Callable[[Any], Optional[str]]:
    """``lambda run: role if non_finite(run, name) else None``, with the
    usual case (metrics a dict, the value a float) in one call less."""
    def cell_role(run: Any) -> Optional[str]:
        m = run.data.get("metrics")
        if type(m) is dict:
            x = m.get(name)
            if type(x) is float:
                return role if x - x != 0.0 else None
        return role if non_finite(run, name) else None

    return cell_role


def non_finite(run: Any, name: str) -> bool:
    x = _metrics_of(run).get(name)
    if type(x) is float:  # the usual value: no conversion
        return x - x != 0.0
    x = value(run, name)
    return x is not None and not math.isfinite(x)
