"""At most ``n`` of something per key in any ``window`` seconds.

What a folder shared with other users needs wherever one of their files can
make ttop act again and again: the alert command and the bell (per run
owner, a minute), a run's new CSV files (per run, an hour). A key's times
older than the window are let go at each call, and a key with none left is
forgotten, so a stranger's stream of new keys keeps nothing.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List


class PerKeyLimit:
    def __init__(self, n: int, window: float) -> None:
        self.n = int(n)
        self.window = float(window)
        self._times: Dict[Any, List[float]] = {}

    def full(self, key: Any, now: float) -> bool:
        """Whether ``key`` has had its ``n`` in the window ending ``now``."""
        for k in list(self._times):
            kept = [t for t in self._times[k] if now - t < self.window]
            if kept:
                self._times[k] = kept
            else:
                del self._times[k]
        return len(self._times.get(key, ())) >= self.n

    def add(self, key: Any, now: float) -> None:
        """Count one for ``key`` at ``now``."""
        self._times.setdefault(key, []).append(now)

    def take(self, key: Any, now: float) -> bool:
        """Count one for ``key`` unless it is :meth:`full`: True when counted."""
        if self.full(key, now):
            return False
        self.add(key, now)
        return True
