"""Human formatting of durations, sizes, percents and rates.

Every function takes the raw value (or None, or garbage from a hand-written
file) and returns a short string; ``-`` stands for "unknown". Nothing here
raises: NaN, infinities, negative and huge values all format to something that
fits a column.
"""
from __future__ import annotations

import math

from ..progress import number_or_none

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

NA = "-"


def _num(value: Any) -> Optional[float]:
    """A finite-or-not float, or None for anything that is not a number
    (booleans included; the "NaN"/"Infinity" strings of progress files are
    understood)."""
    if type(value) is float:  # the usual value: no conversion
        return value
    return None if isinstance(value, bool) else number_or_none(value)


def _special(x: float) -> Optional[str]:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


#: Seconds in 1,000 days: shorter durations print as days and hours at most.
_DAYS_999 = 86400000.0


def duration(value: Any) -> str:
    """Seconds as ``45s``, ``12m05s``, ``1h02m``, ``3d04h``; ``-`` if unknown.

    Negative durations (clock skew) show as ``0s``; more than 999 days shows
    as ``>999d``.
    """
    if type(value) is float and 0.0 <= value < _DAYS_999:  # the usual value (NaN fails the test)
        s = int(value)
    else:
        x = _num(value)
        if x is None:
            return NA
        sp = _special(x)
        if sp is not None:
            return NA if sp == "NaN" else ("inf" if x > 0 else "0s")
        if x < 0:
            x = 0.0
        s = int(x)
    if s < 60:
        return "%ds" % s
    m, s = divmod(s, 60)
    if m < 60:
        return "%dm%02ds" % (m, s)
    h, m = divmod(m, 60)
    if h < 24:
        return "%dh%02dm" % (h, m)
    d, h = divmod(h, 24)
    if d > 999:
        return ">999d"
    return "%dd%02dh" % (d, h)


def _numeric(f: Callable[..., str]) -> Callable[..., str]:
    """Wrap a formatter of finite numbers: it is called with the value as a
    float; unknown values (None, garbage) give ``-`` and NaN/inf their
    :func:`_special` text, so each formatter handles only real numbers."""

    def wrapper(value: Any, *args: Any, **kw: Any) -> str:
        t = type(value)
        if t is float:
            if value - value == 0.0:  # finite: the usual value
                return f(value, *args, **kw)
        elif t is int and -1e300 < value < 1e300:
            return f(float(value), *args, **kw)
        x = _num(value)
        if x is None:
            return NA
        sp = _special(x)
        if sp is not None:
            return sp
        return f(x, *args, **kw)

    # what functools.wraps copies, without importing functools (and
    # collections) before the first screen
    wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = f.__name__, f.__qualname__, f.__doc__
    wrapper.__module__, wrapper.__wrapped__ = f.__module__, f  # type: ignore[attr-defined]
    return wrapper


_UNITS = "BKMGTPE"


@_numeric
def size(x: float) -> str:
    """Bytes in binary units: ``512B``, ``812K``, ``3.2G``, ``15G``; ``-`` if
    unknown. Beyond the largest unit it stays short: ``>9999E``."""
    if x < 0:
        return NA
    i = 0
    while x >= 1000 and i < len(_UNITS) - 1:
        x /= 1024.0
        i += 1
    if i == 0:
        return "%dB" % int(x)
    if x < 9.95:
        return "%.1f%s" % (x, _UNITS[i])
    if x >= 9999.5:  # beyond the largest unit (a file's garbage figure): not 300 digits
        return ">9999%s" % _UNITS[i]
    return "%d%s" % (int(round(x)), _UNITS[i])


@_numeric
def percent(x: float, decimals: int = 0) -> str:
    """``37%``; ``-`` if unknown. Huge values stay short (``>9999%``)."""
    if x > 9999:
        return ">9999%"
    if decimals:
        return "%.*f%%" % (decimals, x)
    return "%d%%" % int(round(x))


@_numeric
def rate(x: float) -> str:
    """Batches per second: ``12.3/s``, ``0.52/s``, ``3.1/min``, ``1.2k/s``."""
    if x < 0:
        return NA
    if x == 0:
        return "0/s"
    if x >= 1e6:
        return ">1M/s"
    if x >= 1000:
        return "%.1fk/s" % (x / 1000.0)
    if x >= 100:
        return "%d/s" % int(round(x))
    if x >= 10:
        return "%.1f/s" % x
    if x >= 0.1:
        return "%.2f/s" % x
    per_min = x * 60.0
    if per_min >= 0.1:
        return "%.1f/min" % per_min
    return "%.1f/h" % (x * 3600.0)


@_numeric
def count(x: float) -> str:
    """An integer counter, ``-`` if unknown; huge ones abbreviated."""
    n = int(x)
    if abs(n) < _SHORT_COUNT:
        return str(n)
    return "%.1e" % n


#: count() shows integers below this in full.
_SHORT_COUNT = 10 ** 7


def fraction(done: Any, total: Any) -> str:
    """``120/500``, ``120`` without a total, ``-`` without either."""
    if type(done) is int and type(total) is int and -_SHORT_COUNT < done < _SHORT_COUNT \
            and -_SHORT_COUNT < total < _SHORT_COUNT:  # the usual counters, as count() shows them
        return "%d/%d" % (done, total)
    d = count(done)
    t = count(total)
    if d == NA and t == NA:
        return NA
    if t == NA:
        return d
    return "%s/%s" % (d, t)


def metric(value: Any) -> str:
    """A metric value: numbers to 4 significant digits, strings as they are."""
    if isinstance(value, str) and _num(value) is None:
        return value
    return _metric_number(value)


@_numeric
def _metric_number(x: float) -> str:
    if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
        return "%.3g" % x
    return "%.4g" % x
