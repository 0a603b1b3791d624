"""What a run costs: its run time priced per machine-hour and per GPU-hour.

Pure. A run's hourly price is ``machine price (its host's, else the default)
+ GPU price x GPUs it holds``; its cost so far is that price times its run
time so far (the writer's ``times.run.elapsed``, plus the heartbeat's age
while it runs; else ``ended_at`` (or the last ``updated_at``) or now minus
``started_at``), and its projected
total that price times ``elapsed + remaining`` (``times.run.remaining``) while
it runs, or its cost when it has ended. Currency is whatever the prices are
in. Several runs sharing one machine each pay the machine price: give
``--price-gpu-hour`` alone for shared GPU boxes.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

RUNNING = "RUNNING"


@dataclass(frozen=True)
class Prices:
    """Per hour: ``machine`` (each run's machine), ``gpu`` (each GPU a run
    holds), ``hosts``: a machine price per host name, overriding ``machine``."""

    machine: float = 0.0
    gpu: float = 0.0
    hosts: Mapping[str, float] = field(default_factory=dict)

    def hourly(self, host: Optional[str], gpus: int) -> float:
        m = self.hosts.get(host, self.machine) if host is not None else self.machine
        return m + self.gpu * max(0, gpus)

    @property
    def any(self) -> bool:
        return bool(self.machine or self.gpu or any(self.hosts.values()))


def _num(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        return float(v) if math.isfinite(v) and v >= 0 else None
    except OverflowError:
        return None


def run_seconds(data: Mapping[str, Any], status: str, heartbeat_age: Optional[float], now: float,
                stale: bool = False) -> Tuple[Optional[float], Optional[float]]:
    """(elapsed, remaining) run time in seconds; None when unknown.
    ``remaining`` only while the run is RUNNING. A stale run (RUNNING, its
    heartbeat stopped) is counted up to its last heartbeat: nothing says it
    still runs, so its time and cost stop growing, and it has no time left."""
    times = data.get("times")
    run = times.get("run") if isinstance(times, Mapping) else None
    run = run if isinstance(run, Mapping) else {}
    elapsed = _num(run.get("elapsed"))
    running = status == RUNNING
    if elapsed is not None:
        if running and not stale and heartbeat_age is not None and heartbeat_age > 0:
            elapsed += heartbeat_age
    else:
        start = _num(data.get("started_at"))
        # an ended run stopped at ended_at (else at its last heartbeat)
        end = None if running else (_num(data.get("ended_at")) or _num(data.get("updated_at")))
        if start is not None:
            if end is None and stale:
                end = _num(data.get("updated_at"))
            stop = end if end is not None else now
            elapsed = max(0.0, stop - start)
    remaining = _num(run.get("remaining")) if running and not stale else None
    return elapsed, remaining


def run_cost(data: Mapping[str, Any], status: str, heartbeat_age: Optional[float], now: float, host: Optional[str],
             gpus: int, prices: Prices, stale: bool = False) -> Tuple[Optional[float], Optional[float]]:
    """(cost so far, projected total); None when the run time is unknown
    (projected: also while a running run reports no time left, or is stale)."""
    elapsed, remaining = run_seconds(data, status, heartbeat_age, now, stale)
    if elapsed is None:
        return None, None
    rate = prices.hourly(host, gpus) / 3600.0
    so_far = elapsed * rate
    if status != RUNNING:
        return so_far, so_far
    return so_far, (elapsed + remaining) * rate if remaining is not None else None
