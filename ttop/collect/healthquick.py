"""The health verdict of the usual live run, told without :func:`~ttop.collect.health.assess`.

A fleet's runs each bring a new sample every cycle (their files change
every second), and nearly all of them are fine: running, their heartbeat
fresh, their counters moving, their metrics finite, no memory limit or GPU
to judge. :func:`quick_ok` says, for such a sample, that :func:`assess`
would find nothing (its verdict :data:`~ttop.collect.health.ALL_OK`), at
the cost of the few checks that show it; for any other sample it says
False and the caller assesses it whole. It never says True where
``assess`` would find something (``tests/test_health_quick.py`` checks the
two against each other)."""
from __future__ import annotations

import math

from .health import RUNNING, _loss_keys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Sequence

    from .health import HealthConfig, Sample


def quick_ok(samples: Sequence[Sample], config: HealthConfig, lows: Any) -> bool:
    """True where ``assess(samples, config, lows)`` is ``ALL_OK`` and the
    newest sample is of a live run with nothing to judge but its heartbeat,
    its counters and its metrics; False: not known (``assess`` tells)."""
    (t, status, alive, stopped, updated_at, hb_limit, progress, batch, _rate, metrics, _cpu, _rss, ram_limit,
     gpu_memory_bytes, gpu_limit, dev_fraction, gpu_utilization) = samples[-1]
    if status != RUNNING or alive is False or lows is None:
        return False  # (alive False: the OOM rule; no lows: assess's own pass)
    if ram_limit or gpu_limit or dev_fraction is not None:
        return False  # the memory rule
    if gpu_memory_bytes and gpu_utilization is not None:
        return False  # the GPU idle and input-bound rules
    if updated_at is not None and t - updated_at > hb_limit and not stopped:
        return False  # heartbeat lost
    if batch is not None and len(samples) > 1:
        before = samples[-2]
        if (before.progress is progress or before.progress == progress) and before.status == RUNNING:
            return False  # the counters unmoved: the stall rule measures how long
    if metrics:
        try:
            total = sum(metrics.values(), 0.0)
        except Exception:  # a string, None, a list, an int beyond the float range: the NaN rule looks
            return False
        if total - total != 0.0:
            return False  # NaN or an infinity
        factor = config.diverge_factor
        warmup = config.diverge_warmup
        if factor > 0 and len(samples) > warmup:
            for name in _loss_keys(config.loss_pattern, metrics):
                v = metrics[name]
                if not (v.__class__ is float or v.__class__ is int) or not math.isfinite(v):
                    continue
                low, n = lows(samples, name)
                if n >= warmup and 0 < low and v > factor * low:
                    return False  # diverging
    return True


__all__ = ["quick_ok"]
