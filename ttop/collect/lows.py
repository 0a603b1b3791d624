"""Running minimum of a metric over a run's sample ring, kept as the ring
moves, so that judging "diverging" costs O(1) per cycle instead of a pass
over the whole ring (up to 2,048 samples, for each of a fleet's runs).

:class:`RingLows` answers what the pass in :func:`~ttop.collect.health.assess`
finds: for a metric name, ``(low, n)``: the smallest finite number and how
many samples have one, over every sample of the ring but the newest. The
ring's owner calls :meth:`RingLows.appended` after each append (with the
sample that fell out of a full ring, if any); replacing the newest sample
changes nothing here."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

_INF = (math.inf, -math.inf)


def _value(sample: Any, name: str) -> Optional[float]:
    sm = sample.metrics
    m = sm.get(name) if sm else None
    if (m.__class__ is float or m.__class__ is int) and m == m and m not in _INF:
        return m
    return None


class RingLows:
    """Per metric name: ``[low, n]`` over the ring less its newest sample."""

    __slots__ = ("_lows",)

    def __init__(self) -> None:
        self._lows: Dict[str, List[Any]] = {}

    def appended(self, ring: Sequence[Any], dropped: Any = None) -> None:
        """``ring`` has a new newest sample; ``dropped``: the oldest one it
        let go to make room (None: none)."""
        if not self._lows:
            return
        stale = []
        # the previous newest, now in the body: its metrics, and those of the sample that left
        joined = ring[-2].metrics if len(ring) >= 2 else None
        left = dropped.metrics if dropped is not None else None
        for name, acc in self._lows.items():
            if left:  # (_value, inline: a fleet's runs each append once per cycle)
                m = left.get(name)
                if (m.__class__ is float or m.__class__ is int) and m == m and m not in _INF:
                    acc[1] -= 1
                    if m <= acc[0]:
                        stale.append(name)  # the low itself left: worked out again when asked
                        continue
            if joined:
                m = joined.get(name)
                if (m.__class__ is float or m.__class__ is int) and m == m and m not in _INF:
                    acc[1] += 1
                    if m < acc[0]:
                        acc[0] = m
        for name in stale:
            del self._lows[name]

    def __call__(self, samples: Sequence[Any], name: str) -> Tuple[float, int]:
        acc = self._lows.get(name)
        if acc is None:
            low = math.inf
            n = 0
            for j in range(len(samples) - 1):
                m = _value(samples[j], name)
                if m is not None:
                    n += 1
                    if m < low:
                        low = m
            acc = self._lows[name] = [low, n]
        return acc[0], acc[1]
