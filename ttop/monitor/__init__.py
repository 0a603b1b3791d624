"""The writer side of ttop: :class:`TrainingMonitor`, imported by training
scripts (``from ttop import TrainingMonitor``).

Importing this package is cheap: psutil and pynvml are imported only inside
the monitor's background thread, curses never.
"""
from __future__ import annotations

from .core import TrainingMonitor
from .names import RunNameInUseError

__all__ = ["RunNameInUseError", "TrainingMonitor"]
