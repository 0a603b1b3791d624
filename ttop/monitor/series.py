"""The metric history written in the progress file's ``history``."""
from __future__ import annotations

import collections
import json
from typing import Any, Deque, Dict, List, Optional

from ..progress import RawJSON, json_safe, number_or_none

#: History is kept for at most this many metric names (the first ones seen).
MAX_HISTORY_METRICS = 64


class MetricHistory:
    """Up to ``size`` points per metric: one per :meth:`sample` in which a
    metric or the batch counter changed. Values that are not finite numbers
    are kept as None."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._series: Dict[str, Deque[Optional[float]]] = {}
        #: each value's JSON text, kept so that a write encodes only new points
        self._texts: Dict[str, Deque[str]] = {}
        #: each series' texts joined (an array's inside), kept so that a new
        #: point does not join the unchanged ones again
        self._arrays: Dict[str, str] = {}
        self._keys: Dict[str, str] = {}  # each name's JSON text
        self._json: Optional[RawJSON] = None
        self._last_metrics: Optional[Dict[str, Any]] = None
        self._last_n = -1

    def sample(self, metrics: Dict[str, Any], n: int) -> None:
        """Append the latest ``metrics`` (a copy the caller no longer
        changes) unless nothing moved since the last sample."""
        if self.size <= 0:
            return
        try:
            same = bool(metrics == self._last_metrics)
        except Exception:  # values whose == raises (numpy arrays, ...): count as changed
            same = False
        if same and n == self._last_n:
            return
        self._last_metrics = metrics
        self._last_n = n
        hist = self._series
        for name, value in metrics.items():
            series = hist.get(name)
            if series is None:
                if len(hist) >= MAX_HISTORY_METRICS:
                    continue
                series = hist[name] = collections.deque(maxlen=self.size)
                self._texts[name] = collections.deque(maxlen=self.size)
                self._arrays[name] = ""
                self._keys[name] = json.dumps(str(name), ensure_ascii=False)
            if type(value) is float:
                x: Optional[float] = value
            else:
                try:
                    x = number_or_none(json_safe(value))
                except Exception:
                    x = None
            ok = x is not None and x - x == 0
            series.append(x if ok else None)
            text = repr(x) if ok else "null"
            texts = self._texts[name]
            array = self._arrays[name]
            if len(texts) == self.size:  # the append drops the oldest point
                array = array[len(texts[0]) + 1:]
            texts.append(text)
            self._arrays[name] = array + "," + text if array else text
        self._json = None

    def as_dict(self) -> Dict[str, List[Optional[float]]]:
        return {k: list(v) for k, v in self._series.items()}

    def as_json(self) -> RawJSON:
        """:meth:`as_dict` as JSON text (what :func:`ttop.progress.dumps`
        would write for it), put together again only after a sample, from
        each series' kept text."""
        if self._json is None:
            keys = self._keys
            self._json = RawJSON("{%s}" % ",".join("%s:[%s]" % (keys[k], a) for k, a in self._arrays.items()))
        return self._json
