"""Estimate maths of the progress file: rate, elapsed, remaining and total
times of the phases, the epoch and the run.

Everything here is a function of ``(now, counters)``: nothing reads a clock
or touches a file, so every estimate can be checked with made-up numbers.
:class:`ttop.monitor.TrainingMonitor` keeps the counters, takes ``now`` from
its clock and calls :func:`estimate` at each write.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

TRAIN_PHASES = frozenset({"train", "training"})
VALIDATION_PHASES = frozenset({"validation", "val", "valid", "validate", "eval", "evaluation"})

#: Smoothing factor of the rate's exponential moving average (per write).
RATE_SMOOTHING = 0.3
#: Least time between two rate updates (seconds); closer updates are skipped.
MIN_RATE_DT = 0.05

#: (batch, elapsed, remaining, total) of one phase.
PhaseNumbers = Tuple[Optional[int], Optional[float], Optional[float], Optional[float]]
#: (elapsed, remaining, total).
Times = Tuple[Optional[float], Optional[float], Optional[float]]


_MAX_COUNT = 2 ** 53


def count_arg(value: Any, what: str) -> Optional[int]:
    """A count given to the API (a total, an epoch number): None or an int
    from 0 to 2**53; TypeError / ValueError otherwise, at the call rather
    than later in the writer."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("%s must be an int or None, not bool" % what)
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise TypeError("%s must be an int or None, not %r" % (what, value)) from None
    except OverflowError:  # int(inf)
        raise ValueError("%s must be at most 2**53, not %r" % (what, value)) from None
    if isinstance(value, float) and value != out:  # 2.5 epochs: not silently 2
        raise ValueError("%s must be a whole number, not %r" % (what, value))
    if out < 0:
        raise ValueError("%s must be >= 0, not %d" % (what, out))
    if out > _MAX_COUNT:  # the writer divides by it as a float; JSON readers lose precision past 2**53
        raise ValueError("%s must be at most 2**53, not a %d-digit number" % (what, len(str(out))))
    return out


def phase_kind(name: str) -> str:
    """``"train"``, ``"validation"`` or ``"other"`` for a phase name."""
    low = name.strip().lower()
    if low in TRAIN_PHASES:
        return "train"
    if low in VALIDATION_PHASES:
        return "validation"
    return "other"


class Phase:
    """One phase's record: its name, when it (last) started, its total and,
    once ended, its batch count. The rate's moving average lives here too,
    so that each phase has its own."""

    __slots__ = ("name", "kind", "start", "end", "total", "n", "gen", "rate", "rate_t", "rate_n", "ema_dn", "ema_dt")

    def __init__(self, name: str, kind: str, start: float, total: Optional[int], gen: int) -> None:
        self.name = name
        self.kind = kind
        self.start = start
        self.end: Optional[float] = None
        self.total = total
        self.n = 0  # batches, frozen when the phase ends
        self.gen = gen
        self.rate: Optional[float] = None
        self.rate_t = start  # time and count of the last rate update
        self.rate_n = 0
        self.ema_dn: Optional[float] = None
        self.ema_dt: Optional[float] = None


def update_rate(rec: Optional[Phase], n: int, now: float, smoothing: float = RATE_SMOOTHING) -> Optional[float]:
    """Fold the batches counted since the last update into ``rec``'s rate
    (an exponential moving average of batches and of seconds, separately, as
    tqdm does) and return it. ``n`` is the phase's batch count now. An update
    less than :data:`MIN_RATE_DT` after the previous one changes nothing."""
    if rec is None:
        return None
    dt = now - rec.rate_t
    if dt < MIN_RATE_DT:
        return rec.rate
    dn = n - rec.rate_n
    if rec.ema_dt is None or rec.ema_dn is None:
        rec.ema_dn, rec.ema_dt = float(dn), dt
    else:
        a = smoothing
        rec.ema_dn = a * dn + (1 - a) * rec.ema_dn
        rec.ema_dt = a * dt + (1 - a) * rec.ema_dt
    rec.rate_t, rec.rate_n = now, n
    rec.rate = (rec.ema_dn / rec.ema_dt) if n > 0 and rec.ema_dt > 0 else None
    return rec.rate


def phase_numbers(rec: Optional[Phase], cur: Optional[Phase], n: int, now: float) -> PhaseNumbers:
    """(batch, elapsed, remaining, total) of the phase record ``rec``.

    ``cur`` is the current phase and ``n`` its live batch count; any other
    record (or an ended one) reports its frozen count with remaining 0."""
    if rec is None:
        return None, None, None, None
    live = rec is cur and rec.end is None
    count = n if live else rec.n
    end = rec.end if rec.end is not None else now
    elapsed = max(end - rec.start, 0.0)
    if not live:
        return count, elapsed, 0.0, elapsed
    remaining = None
    rate = rec.rate
    if rec.total is not None:
        if count >= rec.total:
            remaining = 0.0
        elif rate is not None and rate > 0:
            remaining = (rec.total - count) / rate
    return count, elapsed, remaining, (elapsed + remaining if remaining is not None else None)


def mean(values: Sequence[float]) -> Optional[float]:
    if isinstance(values, Durations):
        return values.mean()
    return (sum(values) / len(values)) if values else None


class Durations(Sequence[float]):
    """The epochs' durations as the estimates read them (their number, the
    last one, their mean), in constant memory: a run may count millions of
    epochs (one per episode), and a list of them all grew without end and
    was summed over at each write. Only ``[-1]`` can be read."""

    __slots__ = ("n", "total", "last")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0  # added in order, as sum() over a list of them would
        self.last = 0.0

    def append(self, duration: float) -> None:
        self.n += 1
        self.total += duration
        self.last = duration

    def mean(self) -> Optional[float]:
        return self.total / self.n if self.n else None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if i != -1 or not self.n:
            raise IndexError("only the last epoch's duration is kept")
        return self.last


def epoch_times(
    now: float,
    epoch_start: Optional[float],
    durations: Sequence[float],
    cur_kind: Optional[str],
    cur_remaining: Optional[float],
    last_val: Optional[float],
    val_done: bool,
) -> Times:
    """(elapsed, remaining, total) of the current epoch.

    During training: the train phase's remaining plus one validation (the
    last one's duration) if none ran yet this epoch; during validation: its
    remaining; otherwise the mean epoch duration minus the elapsed time.
    Between epochs: the last epoch's duration, remaining 0."""
    if epoch_start is not None:
        elapsed = max(now - epoch_start, 0.0)
        remaining: Optional[float] = None
        if cur_kind == "train" and cur_remaining is not None:
            val_expected = last_val if (last_val is not None and not val_done) else 0.0
            remaining = cur_remaining + val_expected
        elif cur_kind == "validation" and cur_remaining is not None:
            remaining = cur_remaining
        else:
            avg = mean(durations)
            if avg is not None:
                remaining = max(avg - elapsed, 0.0)
        return elapsed, remaining, (elapsed + remaining if remaining is not None else None)
    if durations:
        return durations[-1], 0.0, durations[-1]
    return None, None, None


def run_times(
    now: float,
    started_at: Optional[float],
    terminal: bool,
    epoch: Optional[int],
    total_epochs: Optional[int],
    epoch_running: bool,
    durations: Sequence[float],
    epoch_remaining: Optional[float],
    epoch_total: Optional[float],
    has_phase: bool,
    phase_remaining: Optional[float],
) -> Times:
    """(elapsed, remaining, total) of the whole run.

    With ``total_epochs``: this epoch's remaining + the epochs left x the mean
    epoch duration (this epoch's estimated total while none has ended);
    without epochs: the current phase's remaining; 0 once ended."""
    elapsed = max(now - started_at, 0.0) if started_at is not None else 0.0
    remaining: Optional[float] = None
    if terminal:
        remaining = 0.0
    elif epoch is not None and total_epochs is not None:
        avg = mean(durations)
        if not epoch_running:
            ongoing: Optional[float] = 0.0
            per_epoch = avg
        else:
            ongoing = epoch_remaining
            per_epoch = avg if avg is not None else epoch_total
        left = max(total_epochs - epoch, 0)
        if ongoing is not None and (left == 0 or per_epoch is not None):
            remaining = ongoing + left * (per_epoch or 0.0)
    elif epoch is None and has_phase:
        remaining = phase_remaining
    return elapsed, remaining, (elapsed + remaining if remaining is not None else None)


def _r(x: Optional[float]) -> Optional[float]:
    return None if x is None else round(x, 3)


def _times(t: Times) -> Dict[str, Optional[float]]:
    return {"elapsed": _r(t[0]), "remaining": _r(t[1]), "total": _r(t[2])}


class RunState:
    """The run's phases and epochs, moved on by explicit times.

    The live batch count of the current phase is not kept here (the monitor
    counts it on its hot path); the methods that end a phase take it as
    ``n``. Times are on the monitor's monotonic clock."""

    def __init__(self, total_epochs: Optional[int] = None) -> None:
        self.gen = 0  # bumped at each new phase record
        self.cur: Optional[Phase] = None
        self.train: Optional[Phase] = None  # latest phase of each kind
        self.val: Optional[Phase] = None
        self.phase_end: Optional[float] = None  # when the last phase ended
        self.last: Optional[Phase] = None  # the phase that ended last
        self.last_val: Optional[float] = None  # duration of the last validation
        self.epoch: Optional[int] = None
        self.total_epochs = total_epochs
        self.epoch_start: Optional[float] = None
        self.epoch_durations = Durations()
        self.epoch_val_done = False

    # phases

    def start_phase(self, now: float, name: str, total: Optional[int], n: int, resume: bool = False) -> int:
        """End the current phase (``n`` batches) and start phase ``name``;
        return its batch count: 0 for a new phase.

        ``resume``: continue the most recent phase of that name instead (the
        latest train or validation phase, or the phase that ended last), as
        if it had never stopped: its batch count, its elapsed time (the time
        in between is not counted) and its rate go on; ``total`` None keeps
        its total. With no such phase, or when it is the current one, this
        is the same as without ``resume``, resp. changes nothing."""
        cur = self.cur
        if resume and cur is not None and cur.name == name:
            if total is not None:
                cur.total = total
            return n
        self.end_phase(now, n)
        rec = None
        if resume:
            for cand in (self.last, self.train, self.val):
                if cand is not None and cand.name == name and cand.end is not None:
                    rec = cand
                    break
        if rec is not None:
            assert rec.end is not None
            rec.start = now - max(rec.end - rec.start, 0.0)
            rec.end = None
            rec.rate_t, rec.rate_n = now, rec.n
            if total is not None:
                rec.total = total
        else:
            self.gen += 1
            rec = Phase(name, phase_kind(name), now, total, self.gen)
        self.cur = rec
        if rec.kind == "train":
            self.train = rec
        elif rec.kind == "validation":
            self.val = rec
        return rec.n

    def end_phase(self, now: float, n: int) -> None:
        """End the current phase, if any, freezing its count at ``n``."""
        rec = self.cur
        if rec is None:
            return
        rec.end = now
        rec.n = n
        if rec.kind == "validation":
            self.last_val = now - rec.start
            self.epoch_val_done = True
        self.cur = None
        self.last = rec
        self.phase_end = now

    def adopt_loose_batches(self, n: int, started_at: float) -> None:
        """Batches counted outside any phase (``n`` > 0 with no current
        phase) are shown as a ``train`` phase from the end of the last phase
        (or the start of the run)."""
        if self.cur is None and n > 0:
            self.gen += 1
            rec = Phase("train", "train", self.phase_end or started_at, None, self.gen)
            self.cur = self.train = rec

    # epochs

    def start_epoch(self, now: float, epoch: Optional[int]) -> None:
        """End the current epoch and start ``epoch`` (default: previous + 1,
        starting at 1)."""
        self.end_epoch(now)
        self.epoch = epoch if epoch is not None else (self.epoch or 0) + 1
        self.epoch_start = now
        self.epoch_val_done = False

    def end_epoch(self, now: float) -> None:
        if self.epoch_start is not None:
            self.epoch_durations.append(now - self.epoch_start)
            self.epoch_start = None


def estimate(now: float, c: RunState, n: int, started_at: Optional[float], terminal: bool) -> Dict[str, Any]:
    """The progress file's counters, rate and ``times`` at ``now``:
    ``{"batch", "train_batch", "val_batch", "rate", "times"}`` (times
    rounded to the millisecond, rate to 4 decimals, as written). ``n``: the
    current phase's live batch count; ``started_at``: when the run started
    (None: not yet); ``terminal``: the run has ended."""
    cur = c.cur
    batch, _, ph_rem, _ = phase_numbers(cur, cur, n, now)
    train = phase_numbers(c.train, cur, n, now)
    val = phase_numbers(c.val, cur, n, now)
    epoch = epoch_times(
        now, c.epoch_start, c.epoch_durations, cur.kind if cur is not None else None, ph_rem, c.last_val, c.epoch_val_done
    )
    run = run_times(
        now, started_at, terminal, c.epoch, c.total_epochs, c.epoch_start is not None, c.epoch_durations,
        epoch[1], epoch[2], cur is not None, ph_rem,
    )
    validation: Dict[str, Optional[float]] = _times(val[1:])
    validation["last"] = _r(c.last_val)
    rate = None if terminal or cur is None else cur.rate
    return {
        "batch": batch,
        "train_batch": train[0],
        "val_batch": val[0],
        "rate": None if rate is None else round(rate, 4),
        "times": {
            "run": _times(run),
            "epoch": _times(epoch),
            "train": _times(train[1:]),
            "validation": validation,
        },
    }
