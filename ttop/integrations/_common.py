"""What the framework callbacks share: the import check, the rank, the
monitor's life cycle, learning-rate variables and edits.

Nothing here imports a framework.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..monitor import TrainingMonitor
from ..monitor.files import check_folder, resolve_target
from ..monitor.hooks import error_text, stop_reason
from ..progress import CANCELED, FAILED, FINISHED, sanitize_run_name
from ._ranks import RankFollower, first_failure, install_rank0_hooks, job_run_name


def require(modules: Tuple[str, ...], user: str, install: str) -> Any:
    """Import the first of ``modules`` that imports, or raise a one-line
    ImportError saying what to install."""
    first: Optional[ImportError] = None
    for name in modules:
        try:
            return importlib.import_module(name)
        except ImportError as e:
            first = first or e
    raise ImportError("%s needs %s: pip install %s (%s)" % (user, " or ".join(modules), install, first)) from None


def _env_int(environ: Mapping[str, str], *names: str) -> Optional[int]:
    for name in names:
        raw = environ.get(name)
        if raw is None or not raw.strip():
            continue
        try:
            n = int(raw)
        except ValueError:
            continue
        if n >= 0:  # -1: not distributed (a script's --local_rank default, exported)
            return n
    return None


def rank_from_env(environ: Optional[Mapping[str, str]] = None) -> Tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` of this process from the launcher's
    environment: ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (torchrun,
    accelerate, DeepSpeed), else ``SLURM_PROCID``/``SLURM_LOCALID``/
    ``SLURM_NTASKS``; ``(0, 0, 1)`` for a plain process."""
    env = os.environ if environ is None else environ
    rank = _env_int(env, "RANK", "SLURM_PROCID")
    local = _env_int(env, "LOCAL_RANK", "SLURM_LOCALID")
    world = _env_int(env, "WORLD_SIZE", "SLURM_NTASKS")
    if rank is None:
        rank = local if local is not None else 0
    if local is None:
        local = rank
    if world is None or world < 1:
        world = max(rank + 1, 1)
    return rank, local, world


def check_monitor_args(output_file: Any, kwargs: Mapping[str, Any]) -> None:
    """Raise now, rather than when training starts, for what TrainingMonitor
    would refuse: an argument it does not take (TypeError), a bad target
    (ValueError), a folder it cannot create or write (a clear OSError)."""
    try:
        inspect.signature(TrainingMonitor).bind(output_file, **kwargs)
    except TypeError as e:
        raise TypeError("TtopCallback: %s (it takes the TrainingMonitor arguments)" % e) from None
    check_folder(resolve_target(output_file, kwargs.get("folder"), kwargs.get("run_name"))[0])


#: The largest count the monitor takes (``set_total_batches``, ``total_epochs``).
_MAX_COUNT = 2 ** 53


def _count(n: Optional[int]) -> Optional[int]:
    """A framework's count as the monitor takes it: beyond :data:`_MAX_COUNT`
    (``epochs=sys.maxsize``: until early stopping ends it) it is unknown,
    never an error raised in the framework's hook."""
    return n if n is None or n <= _MAX_COUNT else None


def _has_resume(m: TrainingMonitor) -> bool:
    try:
        return "resume" in inspect.signature(m.start_phase).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


class LRControl:
    """The learning rate(s) of one framework's optimizer(s), read and edited
    from the training thread. Subclasses implement :meth:`read` and
    :meth:`apply`."""

    def read(self) -> Dict[str, float]:
        raise NotImplementedError

    def apply(self, name: str, value: float) -> Optional[str]:
        """Apply an edit; return None, or why it was not applied."""
        raise NotImplementedError


#: the bridges of this process that have a monitor (see :meth:`Bridge._supersede`)
_BRIDGES: "weakref.WeakSet[Bridge]" = weakref.WeakSet()
_BRIDGES_LOCK = threading.Lock()

#: the status text of a run whose training ended unreported, taken over by a new one
SUPERSEDED = "ended without a final status (an exception the framework does not report); training started again in this process"


class Bridge:
    """One callback's monitor, created when training starts on the ranks
    that report (rank 0 by default), and the learning-rate edits.

    The hot hooks (per batch) check :attr:`monitor` and :attr:`pending` and
    call :meth:`TrainingMonitor.start_batch`; everything else (metrics, the
    learning rates shown) is refreshed at most every half write interval.
    """

    def __init__(
        self,
        output_file: Any,
        monitor_kwargs: Dict[str, Any],
        *,
        rank_zero_only: bool,
        track_lr: bool,
        default_handle_signals: bool,
    ) -> None:
        check_monitor_args(output_file, monitor_kwargs)
        kwargs = dict(monitor_kwargs)
        kwargs.setdefault("handle_signals", default_handle_signals)
        self.output_file = output_file
        self.kwargs = kwargs
        self.rank_zero_only = bool(rank_zero_only)
        self.track_lr = bool(track_lr)
        self.monitor: Optional[TrainingMonitor] = None
        self.lr: Optional[LRControl] = None
        #: set by the writer thread when an lr edit waits for the training thread
        self.pending = False
        self._edits: Dict[str, Any] = {}
        self._edits_lock = threading.Lock()
        self._user_on_change: Optional[Callable[[str, Any, Any], Any]] = kwargs.pop("on_variable_change", None)
        self._period = float(kwargs.get("interval", 1.0)) / 2.0
        self._next_refresh = 0.0
        self.in_epoch = False
        #: the phase this callback started last (None between phases)
        self.phase: Optional[str] = None
        self._lr_names: frozenset = frozenset()
        #: other ranks of a multi-rank job: follows the run's control file
        self.follower: Optional[RankFollower] = None
        self._world = 1
        self._remove_hooks: Optional[Callable[[], None]] = None
        self._opened_at: Optional[float] = None  # when this rank's monitor started (wall clock)
        self._thread: Optional[int] = None  # the thread whose training opened the monitor

    # what another process gets: Lightning's ddp_spawn (any spawn launcher)
    # pickles the trainer, callbacks included, into each rank it starts
    _RUN_STATE: Dict[str, Any] = {"monitor": None, "lr": None, "pending": False, "_edits": None, "_next_refresh": 0.0,
                  "in_epoch": False, "phase": None, "_lr_names": frozenset(), "follower": None, "_world": 1,
                  "_remove_hooks": None, "_opened_at": None, "_thread": None}

    def __getstate__(self) -> Dict[str, Any]:
        """The callback's settings without this process's run (a monitor,
        a follower, locks): the process that gets it opens runs of its own."""
        state = dict(self.__dict__, **self._RUN_STATE)
        del state["_edits_lock"]
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._edits = {}
        self._edits_lock = threading.Lock()

    # ------------------------------------------------------------------
    # life cycle

    @property
    def active(self) -> bool:
        """True while this process reports (rank 0) or follows (other ranks)."""
        return self.monitor is not None or self.follower is not None

    def open(self, rank: int, total_epochs: Optional[int] = None, world_size: int = 1) -> Optional[TrainingMonitor]:
        """Create and start the monitor (once per training run) unless this
        rank does not report; in a job of several ranks the others follow
        the run (see :mod:`ttop.integrations._ranks`). Returns the monitor,
        or None."""
        if self.monitor is not None and self.monitor.status == "RUNNING":
            return self.monitor
        self._close_ranks()
        self.monitor = None
        self.follower = None
        self.in_epoch = False
        self.phase = None
        self._world = 1
        kwargs = dict(self.kwargs)
        if world_size > 1 and self.output_file is None and kwargs.get("run_name") is None:
            name = job_run_name()  # the same on every rank, unlike the default (it has the PID)
            if name is not None:
                kwargs["run_name"] = name
        if self.rank_zero_only and rank != 0:
            if world_size > 1:
                self._follow(rank, world_size, kwargs)
            return None
        if _count(total_epochs) is not None and "total_epochs" not in kwargs:
            kwargs["total_epochs"] = total_epochs
        try:
            m = TrainingMonitor(self.output_file, on_variable_change=self._on_change, **kwargs)
            self._supersede(m.path)
            self._opened_at = time.time()
            m.start_monitoring()
        except OSError as e:  # the folder was fine when the callback was made: train on, unmonitored
            sys.stderr.write("ttop: this run is not monitored: %s; training continues\n" % e)
            return None
        self.monitor = m
        self._thread = threading.get_ident()
        with _BRIDGES_LOCK:
            _BRIDGES.add(self)
        if world_size > 1 and self.rank_zero_only:
            self._world = world_size
            if kwargs.get("handle_signals"):
                self._remove_hooks = install_rank0_hooks(self.fail_first)
        return m

    def _supersede(self, path: str) -> None:
        """End the run another callback of this process left RUNNING at
        ``path`` when its training ran in this thread: that training is
        over (a thread runs one at a time), ended by an exception its
        framework has no hook for (HF, Keras: a notebook's interrupted or
        failed cell), and a new one of the same name starts (the cell run
        again). Its monitor would otherwise hold the name, and the new
        training would be refused. A run of another thread is left alone."""
        path = os.path.abspath(path)
        with _BRIDGES_LOCK:
            others = [b for b in _BRIDGES if b is not self]
        me = threading.get_ident()
        for b in others:
            m = b.monitor
            if (m is not None and m.status == "RUNNING" and b._thread == me
                    and os.path.abspath(m.path) == path):
                b._close_ranks()
                m.set_canceled(SUPERSEDED)

    def _follow(self, rank: int, world_size: int, kwargs: Dict[str, Any]) -> None:
        folder, run_name = resolve_target(self.output_file, kwargs.get("folder"), kwargs.get("run_name"))
        if run_name is None:
            sys.stderr.write("ttop: rank %d does not follow the run: give the callback a run_name\n" % rank)
            return
        f = RankFollower(folder, sanitize_run_name(run_name), rank, world_size, self._period * 2, self._on_change,
                         held=lambda: self.pending)
        try:
            f.start()
        except OSError as e:
            sys.stderr.write("ttop: rank %d does not follow the run: %s\n" % (rank, e))
            return
        self.follower = f

    def fail_first(self) -> bool:
        """Rank 0: if another rank failed before, end the run as FAILED
        with that rank's error; True if so."""
        m = self.monitor
        if m is None or m.status != "RUNNING" or self._world <= 1:
            return False
        first = first_failure(m.folder, m.run_name, time.time(), self._opened_at)
        if first is None:
            return False
        m.set_failed("rank %d failed first: %s" % first)
        return True

    def _close_ranks(self) -> None:
        remove, self._remove_hooks = self._remove_hooks, None
        if remove is not None:
            remove()

    def set_lr(self, lr: Optional[LRControl]) -> None:
        """Track the learning rates of ``lr`` as variables."""
        m, f = self.monitor, self.follower
        if (m is None and f is None) or lr is None or not self.track_lr:
            return
        try:
            values = lr.read()
        except Exception as e:  # an optimizer we cannot read: show no lr, train on
            sys.stderr.write("ttop: learning rates not tracked: %s\n" % e)
            return
        self.lr = lr
        self._lr_names = frozenset(values)
        if values and m is not None:
            m.track_variables(values)
        elif values and f is not None:
            f.track(values)

    def _on_change(self, name: str, old: Any, new: Any) -> None:
        # the monitor's writer thread: hand the edit to the training thread
        if name in self._lr_names:
            with self._edits_lock:
                self._edits[name] = new
            self.pending = True
        if self._user_on_change is not None:
            self._user_on_change(name, old, new)

    def apply_pending(self) -> None:
        """Apply waiting lr edits (training thread, between batches)."""
        self.pending = False
        with self._edits_lock:
            edits, self._edits = self._edits, {}
        lr = self.lr
        refused: List[str] = []
        for name, value in edits.items():
            try:
                why = lr.apply(name, float(value)) if lr is not None else "no optimizer"
            except Exception as e:
                why = "%s: %s" % (type(e).__name__, e)
            if why is not None:
                sys.stderr.write("ttop: edit of %s not applied to the optimizer: %s\n" % (name, why))
                refused.append("%s: %s" % (name, why))
        f = self.follower
        if f is not None:
            f.confirm(refused)  # the rank acknowledges the edit now, refused or not
        elif refused and self.monitor is not None:
            _refuse(self.monitor, refused)
        self.refresh_lr()

    def refresh_lr(self) -> None:
        """Show the learning rates the optimizer uses now (the scheduler
        moves them)."""
        lr, m, f = self.lr, self.monitor, self.follower
        if lr is None or (m is None and f is None):
            return
        try:
            values = lr.read()
        except Exception:
            return
        (m.variables if m is not None else f.variables).update(values)  # type: ignore[union-attr]

    def due(self) -> bool:
        """True at most every half write interval (for refreshes)."""
        now = time.monotonic()
        if now < self._next_refresh:
            return False
        self._next_refresh = now + self._period
        return True

    # ------------------------------------------------------------------
    # epochs and phases

    def start_epoch(self, epoch: int, total_epochs: Optional[int] = None) -> None:
        m = self.monitor
        if m is None:
            return
        m.start_epoch(epoch, total_epochs=total_epochs)
        self.in_epoch = True

    def end_epoch(self) -> None:
        m = self.monitor
        if m is None:
            return
        m.end_phase()
        m.end_epoch()
        self.in_epoch = False
        self.phase = None

    def start_phase(self, name: str, total: Optional[int]) -> None:
        m = self.monitor
        if m is not None:
            m.start_phase(name, total_batches=_count(total))
            self.phase = name

    def resume_train(self, total: Optional[int]) -> None:
        """Back to the train phase after a mid-epoch validation: its batch
        counter and elapsed time go on from where they were."""
        m = self.monitor
        if m is None:
            return
        start_phase: Any = m.start_phase
        if _has_resume(m):
            start_phase("train", total_batches=_count(total), resume=True)
        else:  # a monitor without resume: a fresh train phase
            m.start_phase("train", total_batches=_count(total))
        self.phase = "train"

    def end_phase(self) -> None:
        m = self.monitor
        if m is not None:
            m.end_phase()
        self.phase = None


    # ------------------------------------------------------------------
    # final status

    def finish(self) -> None:
        f = self.follower
        if f is not None:
            f.end(FINISHED)
        m = self.monitor
        if m is not None and m.status == "RUNNING":
            m.set_finished()
        self._close_ranks()

    def fail(self, exc: BaseException, canceled_reason: Optional[str] = None) -> None:
        """FAILED with the exception's message and traceback tail, or
        CANCELED for an interrupt. On rank 0 of a multi-rank job, another
        rank's earlier failure is the run's error."""
        if canceled_reason is None:  # (a generator's consumer stopped early, an asyncio task cancelled)
            canceled_reason = stop_reason(type(exc))
        f = self.follower
        if f is not None:
            if canceled_reason is not None or isinstance(exc, KeyboardInterrupt):
                f.end(CANCELED, canceled_reason or "KeyboardInterrupt")
            else:
                f.end(FAILED, error_text(exc))
        m = self.monitor
        if m is None or m.status != "RUNNING":
            return
        if self.fail_first():
            self._close_ranks()
            return
        self._close_ranks()
        if canceled_reason is not None:
            m.set_canceled(canceled_reason)
        elif isinstance(exc, KeyboardInterrupt):
            m.set_canceled("KeyboardInterrupt")
        elif isinstance(exc, SystemExit) and getattr(exc, "code", None) in (None, 0):
            m.set_finished()
        else:
            m.set_failed(exc)


def _refuse(m: TrainingMonitor, refused: Any) -> None:
    """Rank 0 (or a single process): the monitor acknowledged the edit when
    it read it; the optimizer refused it since, so its ``control_error``
    says so (the editor then shows the edit refused, not applied)."""
    ctl: Any = getattr(m, "_control", None)
    if ctl is not None:
        ctl.refuse("refused " + "; ".join(refused))


class BridgeCallback:
    """What every framework callback offers around its :class:`Bridge`: the
    current monitor, and ``with callback: trainer.train()`` for scripts whose
    framework has no exception hook (an exception leaving the block ends the
    run as FAILED, CANCELED for Ctrl+C, with its message; it propagates)."""

    _bridge: "Bridge"

    @property
    def monitor(self) -> Any:
        """The :class:`ttop.TrainingMonitor` of the current training run."""
        return self._bridge.monitor

    def __enter__(self) -> Any:
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if ev is not None:
            if ev.__traceback__ is None:
                ev = ev.with_traceback(tb)
            self._bridge.fail(ev)
