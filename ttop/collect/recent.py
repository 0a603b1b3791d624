"""Each run's recent samples, kept by the collector, and its health verdict.

:class:`RecentSamples` holds one bounded ring of :class:`~ttop.collect.health.Sample`
per run (oldest first), appended once per collector cycle, and sets each
published :class:`~ttop.collect.snapshot.RunSnapshot`'s ``health``,
``health_reason`` and ``gpu_utilization`` (and, with prices, ``cost`` and
``cost_projected``: :mod:`ttop.collect.cost`) before the snapshot is published.
The same rings serve anything that wants a run's recent series (resource
charts, heartbeat freshness): :meth:`RecentSamples.samples`.

Cost and memory stay small with many runs:

* a sample equal to the one before it except for its time replaces the
  newest of a repeated pair (every rule measures a streak from its first
  sample, so nothing is lost): a silent remote run keeps two samples;
* an ended run whose file, status and liveness did not change since the last
  cycle keeps its verdict and gets no new sample (an ended status does not
  change back while the file stays the same);
* a running run whose inputs did not change is re-judged only when a rule
  could change its mind (:func:`~ttop.collect.health.stable_until`: a
  threshold about to be crossed, or a reason counting time to refresh);
* a ring holds at most ``horizon / interval`` samples (default horizon
  :data:`HORIZON` seconds), so durations longer than the horizon are not seen.
"""
from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .cost import Prices, run_cost
from .health import ALL_OK, DEFAULT_CONFIG, NOT_JUDGED, HealthConfig, Sample, Verdict, assess, stable_until
from .healthquick import quick_ok
from .lows import RingLows
from .runs import set_facts

RUNNING = "RUNNING"
#: Seconds of samples kept per run (at least; see :func:`ring_length`).
HORIZON = 600.0
#: Bounds of a ring's length, samples.
MIN_SAMPLES = 8
MAX_SAMPLES = 2048
_STOPPED = frozenset(("stopped", "tracing-stop"))


def ring_length(interval: float, config: HealthConfig = DEFAULT_CONFIG, horizon: Optional[float] = None) -> int:
    """Samples kept per run: enough for ``horizon`` seconds (default: the
    longer of :data:`HORIZON` and twice the longest rule window)."""
    if horizon is None:
        horizon = max(HORIZON, 2 * config.stall_seconds, 2 * config.gpu_idle_seconds, 2 * config.input_seconds)
    n = int(math.ceil(horizon / max(interval, 1e-3))) + 2
    return max(MIN_SAMPLES, min(MAX_SAMPLES, n))


_SAMPLE_FIELDS = ("t", "status", "alive", "stopped", "updated_at", "heartbeat_limit", "progress", "batch", "rate",
                  "metrics", "cpu_percent", "rss_bytes", "ram_limit", "gpu_memory_bytes", "gpu_limit",
                  "device_memory_fraction", "gpu_utilization")
assert Sample._fields == _SAMPLE_FIELDS  # RecentSamples._sample makes them in this order


class _FileFacts:
    """What the samples take from a progress file, worked out once per
    version (:func:`~ttop.collect.runs.set_facts`): a run's own, where the
    caller of :meth:`RecentSamples.update` gives none."""

    __slots__ = ("data", "progress", "batch", "rate", "metrics", "updated_at", "hb_limit")
    progress: Any
    batch: Optional[int]
    rate: Optional[float]
    metrics: Any
    updated_at: Optional[float]

    def __init__(self, data: Mapping[str, Any], hb_limit: float) -> None:
        self.renew(data, hb_limit)

    def renew(self, data: Mapping[str, Any], hb_limit: float) -> None:
        """Take the file's next version (in place: one object per run)."""
        self.data = data
        set_facts(self, data)
        self.hb_limit = hb_limit


class _Track:
    __slots__ = ("ring", "data", "facts", "status", "alive", "resources", "processes", "verdict", "gpu_util", "repeat",
                 "gpus", "recheck", "lows")

    def __init__(self, maxlen: int) -> None:
        self.ring: Deque[Sample] = deque(maxlen=maxlen)
        self.data: Any = None  # the file version of the newest sample
        self.facts: Optional[_FileFacts] = None  # its own facts (none given)
        self.status: Optional[str] = None
        self.alive: Optional[bool] = None
        self.resources: Any = None
        self.processes: Any = None
        self.verdict: Verdict = NOT_JUDGED
        self.gpu_util: Optional[float] = None
        self.repeat = False  # ring[-1] equals ring[-2] except for its time
        self.gpus = 0  # most GPUs seen held at once (priced by --price-gpu-hour)
        #: unchanged inputs: the verdict stands until then (health.stable_until; None: not worked out yet)
        self.recheck: Optional[float] = None
        self.lows = RingLows()  # the ring's running minima (diverging)


class RecentSamples:
    """Per-run sample rings and verdicts (see the module docstring).

    ``interval``: the collector's interval (sizes the rings). ``config``:
    the rules' thresholds. ``heartbeat_limit(data)`` gives a run's heartbeat
    limit in seconds."""

    def __init__(
        self,
        interval: float,
        config: Optional[HealthConfig] = None,
        *,
        heartbeat_limit: Any = None,
        horizon: Optional[float] = None,
        prices: Optional[Prices] = None,
    ) -> None:
        self.config = config if config is not None else DEFAULT_CONFIG
        #: prices of run time (None: no cost is computed)
        self.prices = prices if prices is not None and prices.any else None
        self.maxlen = ring_length(interval, self.config, horizon)
        self._hb = heartbeat_limit if heartbeat_limit is not None else (lambda data: 10.0)
        self._tracks: Dict[str, _Track] = {}
        # key -> (data, level, reason, cost, projected)
        self._settled: Dict[str, Tuple[Any, Optional[str], Optional[str], Optional[float], Optional[float]]] = {}
        self._lock = threading.Lock()  # readers copy a ring while the collector appends

    def samples(self, key: str) -> Tuple[Sample, ...]:
        """The run's recent samples, oldest first (empty if unknown)."""
        t = self._tracks.get(key)
        if t is None:
            return ()
        with self._lock:
            return tuple(t.ring)

    def verdict(self, key: str) -> Verdict:
        t = self._tracks.get(key)
        return t.verdict if t is not None else NOT_JUDGED

    def update(
        self,
        runs: Sequence[Any],
        now: float,
        budgets: Any = None,
        gpu_budget: Optional[int] = None,
        gpus: Sequence[Any] = (),
        gpu_sample: Any = None,
        facts: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """Append this cycle's sample of every run and set its verdict on
        the (not yet published) RunSnapshot (in its ``__dict__``, where a
        record keeps its fields: no call of ``object.__setattr__``). ``budgets``: the resolved
        budgets (RAM limit of local runs); ``gpu_budget``: bytes given by
        the user (None: the memory of the run's GPUs); ``gpu_sample``: the
        GPU source's sample, or None when its PIDs cannot be trusted.
        ``facts``: by run key, what the caller worked out of each run's
        file version already (a run not in it works out its own): with
        ``data`` (used where it is ``run.data``), ``hb_limit`` (the
        ``heartbeat_limit`` of it) and the attributes
        :func:`~ttop.collect.runs.set_facts` sets (the collector's
        per-version ``_Static``: not worked out twice)."""
        tracks = self._tracks
        if len(tracks) > len(runs):
            keep = {r.key for r in runs}
            for k in [k for k in tracks if k not in keep]:
                del tracks[k]
        ram_limit = getattr(budgets, "ram_bytes", None) or None
        gpu_index = {g.index: g for g in gpus} if gpus else {}
        config = self.config
        settled = self._settled
        if len(settled) > len(runs):
            keep = {r.key for r in runs}
            for k in [k for k in settled if k not in keep]:
                del settled[k]
        for run in runs:
            key = run.key
            status = run.status
            done = settled.get(key)
            if done is not None and done[0] is run.data and status != RUNNING:
                # ended, and its file unchanged: an ended status cannot change back, nor its verdict
                d = run.__dict__
                if done[1] is not None:
                    d["health"] = done[1]
                    d["health_reason"] = done[2]
                if done[3] is not None:
                    d["cost"] = done[3]
                    d["cost_projected"] = done[4]
                continue
            tr = tracks.get(key)
            if tr is None:
                tr = tracks[key] = _Track(self.maxlen)
            same = (tr.data is run.data and tr.status == status and tr.alive == run.alive
                    and tr.resources is run.resources and tr.processes is run.processes)
            if same and status != RUNNING:
                verdict = tr.verdict  # ended and unchanged for two cycles: settled
                cost = self._cost(run, tr, now)
                settled[key] = (run.data, verdict.level, verdict.reason or None) + cost
            elif same and now < (tr.recheck if tr.recheck is not None else self._recheck(tr)):
                verdict = tr.verdict  # only the time moved, and no rule can change before tr.recheck
            else:
                if same:  # only the time moved (e.g. a silent remote run)
                    last = tr.ring[-1]
                    s = tuple.__new__(Sample, (now,) + last[1:])
                else:
                    f = None if facts is None else facts.get(key)
                    if f is None or f.data is not run.data:  # none given: the run's own
                        f = tr.facts
                        if f is None:
                            f = tr.facts = _FileFacts(run.data, self._hb(run.data))
                        elif f.data is not run.data:  # the file's next version: renewed in place
                            f.renew(run.data, self._hb(run.data))
                    # this cycle's sample (inline: 1,000 runs a cycle)
                    res = run.resources
                    procs = run.processes
                    main = procs[0] if procs else None
                    alive = run.alive
                    gpu_mem = res.gpu_memory_bytes
                    if gpu_mem:
                        gpu_limit, dev_frac, util, ngpu = _gpu_part(procs, alive is True, gpu_budget, gpu_index,
                                                                    gpu_sample)
                        if ngpu > tr.gpus:
                            tr.gpus = ngpu
                    else:
                        gpu_limit = dev_frac = util = None
                    age = run.heartbeat_age
                    # Sample's fields in order (_SAMPLE_FIELDS), without the keyword call
                    s = tuple.__new__(Sample, (
                        now,
                        status,
                        alive,
                        main is not None and main.status in _STOPPED,  # stopped
                        # updated_at: the heartbeat as the collector times it: on ttop's clock,
                        # from when updated_at last changed (a writer's clock skew cannot fool it)
                        now - age if age is not None else f.updated_at,
                        f.hb_limit,
                        f.progress,
                        f.batch,
                        f.rate,
                        f.metrics,
                        main.cpu_percent if main is not None else None,
                        res.rss_bytes,
                        ram_limit if alive is True else None,
                        gpu_mem,
                        gpu_limit,
                        dev_frac,  # device_memory_fraction
                        util,  # gpu_utilization
                    ))
                    tr.gpu_util = util
                    tr.data = run.data
                    tr.status, tr.alive, tr.resources, tr.processes = status, alive, res, procs
                self._append(tr, s)
                ring = tr.ring
                # the usual live run (nothing to judge but its heartbeat, counters and metrics) told quickly
                verdict = tr.verdict = ALL_OK if quick_ok(ring, config, tr.lows) else assess(ring, config, tr.lows)
                tr.recheck = None  # worked out if the next cycle brings nothing new
            level, reason, _found = verdict  # (one unpacking, not a named field each)
            if level is not None or tr.gpu_util is not None:
                d = run.__dict__
                d["health"] = level
                d["health_reason"] = reason or None
                d["gpu_utilization"] = tr.gpu_util
            if self.prices is not None:
                so_far, projected = self._cost(run, tr, now)
                d = run.__dict__
                d["cost"] = so_far
                d["cost_projected"] = projected

    def shift(self, step: float) -> None:
        """The wall clock was set by ``step`` seconds: the samples' times
        (taken on it) move with it, so the rules' windows keep their length."""
        with self._lock:
            for tr in self._tracks.values():
                moved = [s._replace(t=s.t + step, updated_at=None if s.updated_at is None else s.updated_at + step)
                         for s in tr.ring]
                tr.ring.clear()
                tr.ring.extend(moved)
                if tr.recheck is not None:
                    tr.recheck += step

    def _recheck(self, tr: _Track) -> float:
        tr.recheck = stable_until(tr.ring, tr.verdict, self.config)
        return tr.recheck

    def _cost(self, run: Any, tr: _Track, now: float) -> Tuple[Optional[float], Optional[float]]:
        if self.prices is None:
            return None, None
        return run_cost(run.data, run.status, run.heartbeat_age, now, run.host, tr.gpus, self.prices,
                        bool(getattr(run, "stale", False)))

    def _append(self, tr: _Track, s: Sample) -> None:
        ring = tr.ring
        with self._lock:
            last = ring[-1] if ring else None
            # (the heartbeat first: it differs in a changed file's sample, and
            # compares as the tuples would, identity first)
            try:
                same = last is not None and (last[4] is s[4] or last[4] == s[4]) and last[1:] == s[1:]
            except RecursionError:  # a metric nested about a thousand deep (orjson reads 1,024): told apart
                same = False
            if same and tr.repeat:
                ring[-1] = s
                return
            # (_push, inline: once per run and cycle)
            dropped = ring[0] if len(ring) == ring.maxlen else None
            ring.append(s)
            tr.lows.appended(ring, dropped)
            tr.repeat = same


def _gpu_part(procs: Sequence[Any], local: bool, gpu_budget: Optional[int], gpu_index: Mapping[int, Any],
              gpu_sample: Any) -> Tuple[Optional[int], Optional[float], Optional[float], int]:
    """A sample's GPU part for a run holding GPU memory: ``(gpu_limit,
    device_memory_fraction, gpu_utilization, GPUs held)``."""
    if not local:
        return None, None, None, 1  # another host's run: at least one GPU
    pids = {p.pid for p in procs}
    devices: List[int] = []
    if gpu_sample is not None:
        devices = [d for d, on in gpu_sample.device_pids.items() if not pids.isdisjoint(on)]
    if not devices:
        devices = sorted({i for p in procs for i in p.gpu_indices})
    devs = [gpu_index[d] for d in devices if d in gpu_index]
    gpu_limit: Optional[int]
    if gpu_budget:
        gpu_limit = gpu_budget
    else:
        totals = [g.memory_total for g in devs if g.memory_total]
        gpu_limit = sum(totals) if totals else None
    fracs = [g.memory_used / g.memory_total for g in devs if g.memory_total and g.memory_used is not None]
    dev_frac = max(fracs) if fracs else None
    util = _run_util(pids, devices, gpu_sample, gpu_index) if gpu_sample is not None else None
    return gpu_limit, dev_frac, util, max(1, len(devices))


def _run_util(pids: Iterable[int], devices: Sequence[int], gpu_sample: Any, gpu_index: Mapping[int, Any]) -> Optional[float]:
    """The run's GPU utilisation: per device the sum of its processes' SM %
    (NVML's per-process figures), or the device's utilisation when the run
    is alone on it; the busiest device counts. None when unknown."""
    pids = set(pids)
    best: Optional[float] = None
    for d in devices:
        on = gpu_sample.device_pids.get(d, ())
        per = gpu_sample.device_pid_util.get(d)
        if per is not None:
            u: Optional[float] = float(min(100, sum(per.get(p, 0) for p in on if p in pids)))
        elif on and all(p in pids for p in on):
            g = gpu_index.get(d)
            u = float(g.utilization) if g is not None and g.utilization is not None else None
        else:
            u = None
        if u is not None and (best is None or u > best):
            best = u
    return best
