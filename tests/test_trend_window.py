"""The trend arrow's window summed at once when it holds finite floats only,
against the points taken one by one, for random histories (NaN, infinities,
ints, booleans, strings, huge values)."""
from __future__ import annotations

import math
import random

from ttop.progress import number_or_none
from ttop.view import metrics as M

POINTS = (0.5, 1.0, 1.5, 2.0, 1e308, -1e308, math.nan, math.inf, -math.inf, 3, True, "2.5", "NaN", None, 0.0)


class _Run:
    def __init__(self, data):
        self.data = data


def _reference(raw, hist):
    x = None if isinstance(raw, bool) else number_or_none(raw)
    if x is None or not math.isfinite(x):
        return None
    earlier = hist[-(M.TREND_WINDOW + 1):]
    if earlier:
        p = earlier[-1]
        last = p if type(p) is float else (number_or_none(p) if not isinstance(p, bool) else None)
        if last is not None and last == x:
            earlier = earlier[:-1]
    pts = []
    for p in earlier[-M.TREND_WINDOW:]:
        if type(p) is not float:
            p = None if isinstance(p, bool) else number_or_none(p)
            if p is None:
                continue
        if p - p == 0.0:
            pts.append(p)
    if len(pts) < 3:
        return None
    mean = sum(pts) / len(pts)
    spread = (max(pts) - min(pts)) / 2.0
    tol = max(M.FLAT_TOLERANCE * abs(mean), spread * 0.5, 1e-12)
    return "up" if x > mean + tol else ("down" if x < mean - tol else "flat")


def test_trend_of_random_histories():
    rng = random.Random(3)
    for _ in range(5000):
        mostly_floats = rng.random() < 0.6
        hist = [rng.choice(POINTS[:4]) if mostly_floats and rng.random() < 0.9 else rng.choice(POINTS)
                for _ in range(rng.randrange(0, 16))]
        raw = rng.choice((1.0, 1.7, 0.2, 1e308, math.nan, 2, "x", True))
        run = _Run({"metrics": {"m": raw}, "history": {"m": hist}})
        assert M.trend(run, "m") == _reference(raw, hist), (raw, hist)
