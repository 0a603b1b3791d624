"""Health verdicts: which run needs attention now, and why.

:func:`assess` is a pure function of a run's recent :class:`Sample` series
(oldest first, one per collector cycle) and a :class:`HealthConfig`. It reads
no clock: every duration is measured between the samples' own ``t`` values
(ttop's clock when the sample was taken), so the rules are tested with
synthetic series.

The verdict is ``OK``, ``WARN`` or ``CRIT`` with a short reason (the worst
finding; the others are kept in :attr:`Verdict.findings`), or ``None`` for a
run that has ended without anything to say. The rules, in the order they are
reported when two have the same level:

========================  =====  ===================================================
rule                      level  fires when
========================  =====  ===================================================
``nan``                   CRIT   a metric of the newest sample is NaN or +-inf (also
                                 as the strings "NaN", "Infinity", "-Infinity")
``oom``                   CRIT   the run's process vanished (``alive`` turned False)
                                 while RAM or GPU memory was at ``oom_fraction`` of
                                 its limit: "likely OOM-killed"
``heartbeat``             CRIT   RUNNING, its process not stopped, and no heartbeat
                                 for longer than the run's heartbeat limit
``stalled``               WARN   RUNNING (heartbeat fresh, or its process stopped)
                                 and the batch counters unmoved for
                                 ``max(stall_seconds, stall_batches x median batch
                                 time)``
``diverging``             WARN   a loss-like metric above ``diverge_factor`` x its
                                 running minimum, after ``diverge_warmup`` samples
``memory``                WARN   RAM or GPU memory at ``memory_fraction`` or more of
                                 its budget or device
``gpu_idle``              WARN   RUNNING, holds GPU memory, GPU utilisation under
                                 ``gpu_idle_percent`` for ``gpu_idle_seconds``
``input_bound``           WARN   RUNNING, main process at ``input_cpu_percent`` or
                                 more of one core while its GPU is under
                                 ``input_gpu_percent``, for ``input_seconds``
========================  =====  ===================================================

A rule only judges what the series shows: a duration rule fires once the
condition has held across samples spanning its threshold, and clears as soon
as the newest sample no longer meets it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple

OK = "OK"
WARN = "WARN"
CRIT = "CRIT"
#: Verdict levels, least to most severe.
LEVELS = (OK, WARN, CRIT)
_RANK = {None: -1, OK: 0, WARN: 1, CRIT: 2}

RUNNING = "RUNNING"


class Sample(NamedTuple):
    """What one collector cycle saw of one run (immutable).

    ``t`` is ttop's clock when the cycle ran; ``updated_at`` the run's last
    heartbeat on the same clock (the collector times it from when the file's
    ``updated_at`` changed, so a writer's clock skew does not matter).
    ``progress`` is any hashable value that changes whenever the run makes
    progress (the collector uses ``(phase, epoch, batch, train_batch,
    val_batch)``); ``batch`` is None while no batch counter exists (e.g. a
    loading phase), and then the stall rule does not apply.
    Limits: ``ram_limit`` / ``gpu_limit`` in bytes (the budget, or the
    machine's RAM / the memory of the run's GPUs); ``device_memory_fraction``
    the fullest of the run's GPUs (0..1). ``gpu_utilization`` is the run's
    GPU utilisation in % (None: unknown).
    """

    t: float
    status: str
    alive: Optional[bool] = None
    stopped: bool = False  # its main process is stopped (SIGSTOP, traced)
    updated_at: Optional[float] = None
    heartbeat_limit: float = 10.0
    progress: Any = None
    batch: Optional[int] = None
    rate: Optional[float] = None  # batches/s, as the run reports it
    metrics: Mapping[str, Any] = {}
    cpu_percent: Optional[float] = None  # main process, % of one core
    rss_bytes: Optional[int] = None
    ram_limit: Optional[int] = None
    gpu_memory_bytes: Optional[int] = None
    gpu_limit: Optional[int] = None
    device_memory_fraction: Optional[float] = None
    gpu_utilization: Optional[float] = None


#: Largest value of a threshold, as of every number option of the command line.
MAX_THRESHOLD = 1e9


@dataclass(frozen=True)
class HealthConfig:
    """Thresholds of the rules (see the module docstring). Change them with
    ``ttop --health NAME=VALUE`` or :meth:`with_overrides`."""

    stall_seconds: float = 60.0
    stall_batches: float = 10.0
    diverge_factor: float = 3.0
    diverge_warmup: int = 20
    loss_pattern: str = "loss|perplexity|ppl"
    memory_fraction: float = 0.90
    oom_fraction: float = 0.90
    gpu_idle_percent: float = 5.0
    gpu_idle_seconds: float = 120.0
    input_cpu_percent: float = 90.0
    input_gpu_percent: float = 30.0
    input_seconds: float = 30.0

    def with_overrides(self, overrides: Mapping[str, str]) -> "HealthConfig":
        """A copy with ``{name: text}`` applied; ValueError with one line
        naming the problem for an unknown name or a bad value."""
        types = {f.name: f.type for f in fields(self)}
        changes: Dict[str, Any] = {}
        for name, text in overrides.items():
            key = name.strip().replace("-", "_")
            if key not in types:
                raise ValueError("unknown health threshold %r (known: %s)" % (name, ", ".join(sorted(types))))
            if key == "loss_pattern":
                try:
                    re.compile(text)
                except re.error as e:
                    raise ValueError("loss_pattern %r is not a regular expression: %s" % (text, e)) from None
                changes[key] = text
                continue
            try:
                value = float(text)
            except ValueError:
                raise ValueError("health threshold %s must be a number, got %r" % (key, text)) from None
            if not math.isfinite(value) or value < 0:
                raise ValueError("health threshold %s must be a number >= 0, got %r" % (key, text))
            if value > MAX_THRESHOLD:  # (twice 1e308 s, a rule's window, is infinite)
                raise ValueError("health threshold %s must be a number from 0 to %g, got %r" % (key, MAX_THRESHOLD, text))
            changes[key] = int(value) if key == "diverge_warmup" else value
        return replace(self, **changes)


DEFAULT_CONFIG = HealthConfig()


class Finding(NamedTuple):
    rule: str
    level: str
    reason: str


class Verdict(NamedTuple):
    level: Optional[str]  # OK / WARN / CRIT; None: an ended run, nothing to say
    reason: str = ""
    findings: Tuple[Finding, ...] = ()


NOT_JUDGED = Verdict(None, "")
ALL_OK = Verdict(OK, "")

_loss_res: Dict[str, Any] = {}
_loss_name_cache: Dict[str, Dict[str, bool]] = {}


def _loss_names(pattern: str) -> Dict[str, bool]:
    """name -> loss-like? for one pattern (memo, bounded)."""
    d = _loss_name_cache.get(pattern)
    if d is None or len(d) > 4096:
        d = _loss_name_cache[pattern] = {}
    return d


_loss_key_cache: Dict[str, Dict[Tuple[Any, ...], Tuple[Any, ...]]] = {}


def _loss_keys(pattern: str, metrics: Mapping[str, Any]) -> Tuple[Any, ...]:
    """The loss-like names among ``metrics``' keys, sorted (memo per pattern
    and tuple of keys, bounded: a run's next sample has the same keys)."""
    memo = _loss_key_cache.get(pattern)
    if memo is None or len(memo) > 1024:
        memo = _loss_key_cache[pattern] = {}
    keys = tuple(metrics)
    got = memo.get(keys)
    if got is None:
        loss_like = _loss_names(pattern)
        names = []
        for name in sorted(metrics):
            is_loss = loss_like.get(name)
            if is_loss is None:
                is_loss = loss_like[name] = _loss_re(pattern).search(name) is not None
            if is_loss:
                names.append(name)
        got = memo[keys] = tuple(names)
    return got


def _loss_re(pattern: str) -> Any:
    r = _loss_res.get(pattern)
    if r is None:
        r = _loss_res[pattern] = re.compile(pattern, re.IGNORECASE)
    return r


def fmt_duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return "%d s" % s
    if s < 7200:
        return "%d min" % (s // 60)
    return "%d h" % (s // 3600)


def _pct(x: float) -> str:
    return "%d%%" % int(x * 100 + 0.5)


#: How writers spell non-finite numbers in JSON (TrainingMonitor writes the
#: first three).
NON_FINITE_TEXT = frozenset(("NaN", "Infinity", "-Infinity", "nan", "inf", "-inf"))


_INF = (math.inf, -math.inf)


def _bad_number(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    return isinstance(v, str) and v in NON_FINITE_TEXT


def _streak(samples: Sequence[Sample], cond) -> Optional[float]:
    """How long ``cond`` has held, measured from the oldest sample of the
    unbroken run of samples meeting it that ends with the newest one; None
    when the newest does not meet it."""
    n = len(samples)
    i = n - 1
    while i >= 0 and cond(samples[i]):
        i -= 1
    if i == n - 1:
        return None
    return samples[-1].t - samples[i + 1].t


def _median(values: Iterable[float]) -> Optional[float]:
    v = sorted(values)
    if not v:
        return None
    m = len(v) // 2
    return v[m] if len(v) % 2 else (v[m - 1] + v[m]) / 2.0


#: The median batch time is taken over at most this many recent samples.
RATE_WINDOW = 64


def stall_threshold(samples: Sequence[Sample], config: HealthConfig = DEFAULT_CONFIG) -> float:
    """``max(stall_seconds, stall_batches x median batch time)``; the batch
    time is ``1 / rate`` of the last :data:`RATE_WINDOW` samples that report
    a rate."""
    times = []
    for j in range(len(samples) - 1, -1, -1):
        r = samples[j].rate
        if r is not None and r > 0:
            times.append(1.0 / r)
            if len(times) >= RATE_WINDOW:
                break
    med = _median(times)
    return max(config.stall_seconds, config.stall_batches * med) if med is not None else config.stall_seconds


def _memory_fraction(s: Sample) -> Tuple[Optional[float], str]:
    """The fullest of RAM (of its limit), GPU memory (of its limit), and the
    run's fullest GPU; with a label."""
    best: Optional[float] = None
    label = ""
    if s.rss_bytes is not None and s.ram_limit:
        best, label = s.rss_bytes / s.ram_limit, "RAM"
    if s.gpu_memory_bytes is not None and s.gpu_limit:
        f = s.gpu_memory_bytes / s.gpu_limit
        if best is None or f > best:
            best, label = f, "GPU memory"
    if s.device_memory_fraction is not None and s.gpu_memory_bytes:
        f = s.device_memory_fraction
        if best is None or f > best:
            best, label = f, "GPU memory"
    return best, label


def assess(samples: Sequence[Sample], config: HealthConfig = DEFAULT_CONFIG, lows: Any = None) -> Verdict:
    """The verdict for a run from its recent samples (oldest first; any
    indexable sequence, e.g. a deque). ``lows(samples, name)``: a metric's
    ``(minimum, count)`` of finite values over all samples but the newest,
    kept by the caller (default: a pass over ``samples``)."""
    if not samples:
        return NOT_JUDGED
    cur = samples[-1]
    # its fields at once (one unpacking, not an attribute lookup each)
    (t, status, alive, stopped, updated_at, hb_limit, progress, batch, _rate, metrics, cpu_percent, _rss, ram_limit,
     gpu_memory_bytes, gpu_limit, dev_fraction, gpu_utilization) = cur
    found = []
    running = status == RUNNING

    # NaN / inf in any metric
    if metrics:
        try:  # numbers only, all finite (the usual case): their sum is finite too, and nothing below fires
            total = sum(metrics.values(), 0.0)
            finite = total - total == 0.0
        except Exception:  # a string (perhaps "NaN"), None, a list, an int beyond the float range: see below
            finite = False
        bad = None
        for k, v in () if finite else metrics.items():
            c = v.__class__
            if (v - v != 0.0 if c is float else v in NON_FINITE_TEXT if c is str else v in _INF) and (
                    bad is None or k < bad):  # (a float minus itself is 0.0 unless NaN or infinite)
                bad = k
        if bad is not None:
            found.append(Finding("nan", CRIT, "%s is %s" % (bad, metrics[bad])))

    # vanished close to a memory limit
    if alive is False:
        for j in range(len(samples) - 2, -1, -1):
            prev = samples[j]
            if prev.alive is True:
                frac, label = _memory_fraction(prev)
                if frac is not None and frac >= config.oom_fraction:
                    found.append(Finding("oom", CRIT, "likely OOM-killed (%s at %s)" % (label, _pct(frac))))
                break

    if running and alive is not False:
        age = None if updated_at is None else t - updated_at
        hb_lost = False
        if age is not None and age > hb_limit and not stopped:
            hb_lost = True
            found.append(Finding("heartbeat", CRIT, "heartbeat lost (no update for %s)" % fmt_duration(age)))

        # stalled: the counters unmoved, while the heartbeat is fresh (or the process is stopped)
        if not hb_lost and batch is not None:
            key = progress
            before = samples[-2] if len(samples) > 1 else None
            if before is not None and (before.progress is key or before.progress == key) and before.status == RUNNING:
                idle = _streak(samples, lambda s: s.progress == key and s.status == RUNNING)
            else:  # moved since the sample before (the usual case): no streak to judge
                idle = None
            # the threshold is at least stall_seconds: not worked out for a run that moves
            if idle is not None and idle >= config.stall_seconds:
                limit = stall_threshold(samples, config)
                if idle >= limit:
                    what = "process stopped, " if stopped else ""
                    found.append(Finding("stalled", WARN, "stalled: %sbatch %s unmoved for %s"
                                         % (what, batch, fmt_duration(idle))))

    # diverging: a loss-like metric far above its running minimum
    if metrics and config.diverge_factor > 0 and len(samples) > config.diverge_warmup:
        for name in _loss_keys(config.loss_pattern, metrics):  # (the others are not judged here)
            v = metrics[name]
            if not (v.__class__ is float or v.__class__ is int) or not math.isfinite(v):
                continue
            if lows is not None:  # kept as the ring moves (collect/lows.py): the same figures
                low, n = lows(samples, name)
            else:
                low = math.inf
                n = 0
                for j in range(len(samples) - 1):
                    sm = samples[j].metrics
                    m = sm.get(name) if sm else None
                    if (m.__class__ is float or m.__class__ is int) and m == m and m not in _INF:
                        n += 1
                        if m < low:
                            low = m
            if n >= config.diverge_warmup and 0 < low and v > config.diverge_factor * low:
                found.append(Finding("diverging", WARN, "%s diverging (%.3g, %.1fx its minimum)" % (name, v, v / low)))
                break

    # memory pressure (no limit known, as for another host's run: none)
    if ram_limit or gpu_limit or dev_fraction is not None:
        frac, label = _memory_fraction(cur)
    else:
        frac = None
    if frac is not None and frac >= config.memory_fraction and alive is not False:
        found.append(Finding("memory", WARN, "%s at %s" % (label, _pct(frac))))

    if running and alive is not False and gpu_memory_bytes and gpu_utilization is not None:
        # GPU idle while holding memory
        if gpu_utilization < config.gpu_idle_percent:
            lim = config.gpu_idle_percent
            held = _streak(samples, lambda s: bool(s.gpu_memory_bytes) and s.gpu_utilization is not None
                           and s.gpu_utilization < lim and s.status == RUNNING)
            if held is not None and held >= config.gpu_idle_seconds:
                found.append(Finding("gpu_idle", WARN, "GPU idle for %s (%d%%), holding memory"
                                     % (fmt_duration(held), gpu_utilization)))
        # input-bound hint
        cpu_min, gpu_max = config.input_cpu_percent, config.input_gpu_percent
        if cpu_percent is not None and cpu_percent >= cpu_min and gpu_utilization < gpu_max:
            held = _streak(samples, lambda s: bool(s.gpu_memory_bytes) and s.gpu_utilization is not None
                           and s.cpu_percent is not None and s.cpu_percent >= cpu_min
                           and s.gpu_utilization < gpu_max)
            if held is not None and held >= config.input_seconds:
                found.append(Finding("input_bound", WARN, "input-bound? main process at %d%% CPU, GPU at %d%%"
                                     % (cpu_percent, gpu_utilization)))

    if not found:
        return ALL_OK if running else NOT_JUDGED
    worst = max(found, key=lambda f: _RANK[f.level])  # first of the worst level
    return Verdict(worst.level, worst.reason, tuple(found))


#: Seconds between refreshes of a reason that counts time ("... for 75 s")
#: while nothing else changes (see :func:`stable_until`).
REASON_REFRESH = 5.0
_TIMED = frozenset(("heartbeat", "stalled", "gpu_idle", "input_bound"))


def stable_until(samples: Sequence[Sample], verdict: Verdict, config: HealthConfig = DEFAULT_CONFIG,
                 refresh: float = REASON_REFRESH) -> float:
    """For a series whose next samples repeat the newest one except for
    their time: the earliest time at which :func:`assess` could find other
    rules than ``verdict`` (the verdict for ``samples``) did; a reason that
    counts time is refreshed every ``refresh`` seconds. ``inf`` when nothing
    depends on time (an ended run). Lets the collector skip re-judging runs
    whose inputs did not change."""
    if not samples:
        return math.inf
    cur = samples[-1]
    if cur.status != RUNNING or cur.alive is False:
        return math.inf  # NaN, OOM, diverging, memory: no time in them
    fired = {f.rule for f in verdict.findings}
    nxt = cur.t + refresh if fired & _TIMED else math.inf
    if cur.updated_at is not None and not cur.stopped and "heartbeat" not in fired:
        nxt = min(nxt, cur.updated_at + cur.heartbeat_limit)
    if cur.batch is not None and "stalled" not in fired and "heartbeat" not in fired:
        key = cur.progress
        idle = _streak(samples, lambda s: s.progress == key and s.status == RUNNING)
        if idle is not None:
            nxt = min(nxt, cur.t - idle + stall_threshold(samples, config))
    lim = config.gpu_idle_percent
    if "gpu_idle" not in fired and cur.gpu_memory_bytes and cur.gpu_utilization is not None and cur.gpu_utilization < lim:
        held = _streak(samples, lambda s: bool(s.gpu_memory_bytes) and s.gpu_utilization is not None
                       and s.gpu_utilization < lim and s.status == RUNNING)
        if held is not None:
            nxt = min(nxt, cur.t - held + config.gpu_idle_seconds)
    cpu_min, gpu_max = config.input_cpu_percent, config.input_gpu_percent
    if ("input_bound" not in fired and cur.gpu_memory_bytes and cur.gpu_utilization is not None
            and cur.cpu_percent is not None and cur.cpu_percent >= cpu_min and cur.gpu_utilization < gpu_max):
        held = _streak(samples, lambda s: bool(s.gpu_memory_bytes) and s.gpu_utilization is not None
                       and s.cpu_percent is not None and s.cpu_percent >= cpu_min and s.gpu_utilization < gpu_max)
        if held is not None:
            nxt = min(nxt, cur.t - held + config.input_seconds)
    return nxt


def worse(a: Optional[str], b: Optional[str]) -> bool:
    """Is level ``a`` more severe than ``b``?"""
    return _RANK[a] > _RANK[b]
