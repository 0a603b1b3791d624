"""``with monitor.phase("validation", total_batches=40): ...``: a phase as a
context manager (ended on exit unless another phase started meanwhile)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .core import TrainingMonitor


class PhaseContext:
    def __init__(self, monitor: "TrainingMonitor", name: str, total: Optional[int]) -> None:
        self.monitor, self.name, self.total = monitor, name, total

    def __enter__(self) -> "TrainingMonitor":
        self.monitor.start_phase(self.name, total_batches=self.total)
        cur = self.monitor._state.cur
        self._gen = cur.gen if cur is not None else -1
        return self.monitor

    def __exit__(self, *exc: Any) -> None:
        cur = self.monitor._state.cur
        if cur is not None and cur.gen == self._gen:
            self.monitor.end_phase()
