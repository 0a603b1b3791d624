"""ttop: a terminal monitor for long-running jobs, above all ML training.

``from ttop import TrainingMonitor`` is the only thing a training script needs.
Importing :mod:`ttop` is cheap: ``TrainingMonitor`` and everything it needs are
loaded on first use, and curses, pynvml and psutil are never imported here.
"""
from ._version import __version__

__all__ = ["TrainingMonitor", "__version__"]


def __getattr__(name):  # PEP 562: lazy attribute, keeps `import ttop` cheap
    if name == "TrainingMonitor":
        from .monitor import TrainingMonitor

        return TrainingMonitor
    raise AttributeError(f"module 'ttop' has no attribute {name!r}")
