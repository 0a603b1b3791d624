"""TrainingMonitor: the progress-file writer imported by training scripts.

Hot path (called once per batch, inside other people's loops): ``start_batch``
bumps one integer attribute and ``update_metrics`` extends a list by the
batch count and its values (folded into ``metrics`` and the history file by the background
thread, see ``ttop.monitor.history``); neither takes a lock nor reads the clock. Everything else (times,
rate, history, JSON conversion, the control file, resource sampling, the
atomic write) happens in one background daemon thread that wakes every
``interval`` seconds, or at once when the phase, epoch or status changes.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, TypeVar

from ..progress import (
    CANCELED,
    END_STATUSES,
    FAILED,
    FINISHED,
    PROGRESS_FORMAT,
    RUNNING,
    control_path,
    log_paths,
    pid_namespace,
    progress_path,
    sanitize_run_name,
    write_bytes_atomic,
)
from . import hooks
from .control import VariableControl, report
from .estimates import RunState, count_arg, estimate, update_rate
from .files import ProgressWriter, check_folder, check_settings, default_run_name, fit_progress, resolve_target
from .history import MetricLog
from .names import claim_name, claiming, name_holder
from .phases import PhaseContext
from .remote import answer_request
from .series import MetricHistory

T = TypeVar("T")

#: Least time between two writes triggered by phase/epoch changes.
MIN_WAKE_GAP = 0.05


class TrainingMonitor(hooks.NotSent):
    """Write a run's progress file (``<folder>/<run_name>.json``) for ttop.

    Seed-style use::

        monitor = TrainingMonitor(output_file="progress/tutorial.json")
        monitor.track_variables({"lr": 0.01})
        monitor.start_monitoring()
        monitor.start_phase("train")
        for batch in data:
            monitor.start_batch()
            ...
            monitor.update_metrics(loss=loss)
        monitor.end_phase()
        monitor.set_finished()

    or as a context manager (normal exit -> FINISHED, exception -> FAILED,
    KeyboardInterrupt / SIGTERM -> CANCELED)::

        with TrainingMonitor(run_name="resnet", total_epochs=10) as monitor:
            for epoch in range(1, 11):
                monitor.start_epoch(epoch)
                for batch in monitor.track(loader, phase="train"):
                    ...

    Parameters (all keyword-only except ``output_file``):

    output_file
        ``"folder/name.json"``: folder = its parent, run name = its stem
        (sanitised). Cannot be combined with ``folder`` / ``run_name``.
    folder
        the progress folder (default ``./progress``); created if missing (its
        parent must exist).
    run_name
        default ``<script>-<yyyymmdd-HHMMSS>-<pid>``; sanitised with
        :func:`ttop.progress.sanitize_run_name`, so nothing is ever written
        outside the folder.
    interval
        seconds between writes (the heartbeat), default 1.0.
    capture_output
        tee stdout/stderr into ``<run>.stdout.log`` / ``<run>.stderr.log``
        (fd level, see :mod:`ttop.monitor.capture`).
    history_size
        points kept per metric in ``history`` (one per write while anything
        moves), default 100.
    variables
        initial tracked variables (same as :meth:`track_variables`).
    on_variable_change
        ``callback(name, old, new)`` called from the background thread after
        an edit from ttop was applied.
    total_epochs, links, run_dir
        written to the file as given.
    resource_interval
        seconds between samples of the process tree (default 5.0).
    gpu
        sample GPU memory through NVML when available (default True).
    handle_signals
        install the SIGTERM handler and the ``sys.excepthook`` hook (main
        thread only), default True.
    epoch_base
        what the epoch numbers given to :meth:`start_epoch` count from: 1
        (default) or 0, for frameworks that count epochs from 0; the file
        always shows 1-based epochs.
    name_conflict
        what :meth:`start_monitoring` does when a live run on this host
        already uses the run name: ``"error"`` (default) raises
        :class:`RunNameInUseError` naming its PID; ``"suffix"`` picks the
        first free ``name-2``, ``name-3``, ... (see :attr:`run_name`).
    clock
        where times come from: any object with ``monotonic()`` (durations,
        rate, estimates) and ``time()`` (the wall-clock timestamps written),
        default the :mod:`time` module. Tests pass a fake one.
    """

    # Every attribute has a slot: the loop's calls load self._n / self._mq and look the method up each time,
    # which a 40-name instance dict slows (bench_monitor.py); __dict__ stays for users' own names.
    __slots__ = tuple("""_n _mq _metrics variables folder run_name path _name_conflict epoch_base interval
        resource_interval history_size capture_output on_variable_change links run_dir _gpu _handle_signals _mono
        _wall log_files _pid _host _pid_namespace _lock _write_lock _wake _thread _started _closed _depth _status
        _error _started_wall _started_mono _ended_wall _ended_mono _pid_create_time _resources _state _history
        _mlog _control _writer _capture _defer_capture_stop _hooks __dict__ __weakref__""".split())

    def __init__(
        self,
        output_file: Optional[str] = None,
        *,
        folder: Optional[str] = None,
        run_name: Optional[str] = None,
        interval: float = 1.0,
        capture_output: bool = False,
        history_size: int = 100,
        variables: Optional[Mapping[str, Any]] = None,
        on_variable_change: Optional[Callable[[str, Any, Any], Any]] = None,
        total_epochs: Optional[int] = None,
        links: Optional[Mapping[str, str]] = None,
        run_dir: Optional[str] = None,
        resource_interval: float = 5.0, gpu: bool = True, handle_signals: bool = True,
        clock: Any = time, name_conflict: str = "error", epoch_base: int = 1,
    ) -> None:
        # hot-path state first
        self._n = 0
        self._metrics: Dict[str, Any] = {}
        #: Current values of the tracked variables; edits made in ttop land
        #: here (read it in your loop: ``lr = monitor.variables["lr"]``).
        self.variables: Dict[str, Any] = {}

        folder, run_name = resolve_target(output_file, folder, run_name)
        check_settings(epoch_base, name_conflict, interval, resource_interval, history_size)

        self.folder: str = folder
        self.run_name: str = sanitize_run_name(run_name if run_name is not None else default_run_name())
        self.path: str = progress_path(folder, self.run_name)
        self._name_conflict = name_conflict
        #: What the script's epoch numbers count from (see :meth:`start_epoch`).
        self.epoch_base: int = epoch_base
        self.interval = float(interval)
        self.resource_interval = float(resource_interval)
        self.history_size = history_size
        self.capture_output = bool(capture_output)
        self.on_variable_change = on_variable_change
        self.links = dict(links) if links else None
        self.run_dir = run_dir
        self._gpu = gpu
        self._handle_signals = handle_signals
        self._mono: Callable[[], float] = clock.monotonic
        self._wall: Callable[[], float] = clock.time
        self.log_files: Optional[Dict[str, str]] = log_paths(self.run_name) if capture_output else None

        self._pid = os.getpid()
        self._host = os.uname().nodename if hasattr(os, "uname") else None
        self._pid_namespace = pid_namespace()
        self._lock = threading.RLock()  # run state (phase, epoch, status)
        self._write_lock = threading.RLock()  # one file write at a time
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._started = False
        self._closed = False  # terminal status written, or shut down at exit
        self._depth = 0  # with-blocks entered: only the outermost one's end ends the run
        self._status = RUNNING
        self._error: Optional[str] = None
        self._started_wall: Optional[float] = None
        self._started_mono = 0.0
        self._ended_wall: Optional[float] = None
        self._ended_mono: Optional[float] = None
        self._pid_create_time: Optional[float] = None
        self._resources: Optional[Dict[str, Any]] = None

        self._state = RunState(count_arg(total_epochs, "total_epochs"))
        self._history = MetricHistory(history_size)
        #: the metric history file; update_metrics only appends to its queue
        self._mlog = MetricLog(folder, self.run_name, report)
        self._mq: List[Any] = []  # n, values, n, values, ... (see ttop.monitor.history)
        self._control = VariableControl(control_path(folder, self.run_name), self.variables, self._lock)
        self._writer = ProgressWriter(self.path, folder, self.interval, report)
        self._capture: Any = None
        self._defer_capture_stop = False
        self._hooks = hooks.SignalHooks(self)

        if variables:
            self.track_variables(variables)
        check_folder(self.folder)

    # ------------------------------------------------------------------
    # set-up

    def track_variables(self, variables: Mapping[str, Any]) -> None:
        """Register variables that ttop may show and edit. Values must be
        bool, int, float or str to be editable (numpy/torch scalars are
        converted); other values are shown read-only. Read the live values
        from :attr:`variables`."""
        self._control.relink(self.variables)  # (a dict the script gave: monitor.variables = {...})
        self._control.track(variables)
        self._wake.set()

    def start_monitoring(self) -> "TrainingMonitor":
        """Write the first progress file (raising a clear OSError if that is
        impossible) and start the background thread. Idempotent while the
        run goes on; RuntimeError once it has ended (``with`` on an ended
        monitor too): each run needs a monitor of its own."""
        with self._lock:
            if self._closed:  # before _started: a sweep reusing one monitor must not go unmonitored
                raise RuntimeError(
                    "this TrainingMonitor has already ended (status %s): make a new one for each run" % self._status
                )
            if self._started:
                return self
            self._started = True
            self._started_wall = self._wall()
            self._started_mono = self._mono()
        written = False
        try:
            def first_write() -> None:
                data = self._build(self._mono(), self._wall(), tick=False)
                try:
                    with self._write_lock:
                        write_bytes_atomic(self.path, fit_progress(data)[0])
                except OSError as e:
                    raise type(e)(e.errno, "ttop: cannot write the progress file (%s)" % e.strerror, self.path) from None

            with claiming(self.folder):  # the name checked free and taken in one step
                self._claim_name()
                self._control.skip_existing()
                first_write()
                written = True
                hooks.register(self)  # under the lock: another thread of this process sees the name taken
                self._control.poller.started(self.path)
            if self._handle_signals:  # before capture starts (a process of its own): a SIGTERM then ends the run
                self._hooks.install()
            if self.capture_output:  # outside the lock: a sidecar's start can take seconds
                assert self.log_files is not None
                self._capture, self.log_files = hooks.start_capture(self.folder, self.log_files)
                hooks.let_go_stopped()  # (the capture of a failed run, stopped by this one's)
                first_write()
        except BaseException as e:
            hooks.start_failed(self, e, written)
            raise
        self._thread = threading.Thread(target=self._run, name="ttop-monitor", daemon=True)
        self._thread.start()
        return self

    def _name_in_use(self, name: str) -> Optional[Tuple[Optional[int], Optional[int]]]:
        path = progress_path(self.folder, name)
        if hooks.live_path(path, self):
            return self._pid, None
        return name_holder(path, self._host, self._pid_namespace, self._pid)

    def _claim_name(self) -> None:
        """Refuse (or, with ``name_conflict="suffix"``, change) a run name in
        use by a live run, before any of its files is touched."""
        name = claim_name(self.run_name, self.path, self._name_in_use, self._name_conflict == "suffix")
        if name != self.run_name:
            self.run_name = name
            self.path = self._writer.path = progress_path(self.folder, name)
            self._mlog.set_run_name(name)
            self._control.poller.set_path(control_path(self.folder, name))
            if self.log_files is not None:
                self.log_files = log_paths(name)

    def _ensure_started(self) -> None:
        if not self._started:
            self.start_monitoring()

    # ------------------------------------------------------------------
    # the hot path

    def start_batch(self) -> None:
        """Count one batch of the current phase (call at its start)."""
        self._n += 1

    def update_metrics(self, _metrics: Optional[Mapping[str, Any]] = None, /, **metrics: Any) -> None:
        """Record the latest metric values: ``update_metrics(loss=0.3,
        acc=0.9)`` or ``update_metrics({"val/loss": 0.3})``. Values are
        converted when written (numpy/torch scalars via ``.item()``; NaN and
        infinities as the strings "NaN", "Infinity", "-Infinity")."""
        if _metrics is not None:
            metrics = {**_metrics, **metrics}
        self._mq.extend((self._n, metrics))  # see ttop.monitor.history

    def track(self, iterable: Iterable[T], phase: Optional[str] = "train", total: Optional[int] = None) -> Iterator[T]:
        """``for batch in monitor.track(loader, phase="train")``: starts the
        phase (total from ``len(iterable)`` when available), counts one batch
        per item, ends the phase when the loop ends. ``phase=None`` counts
        into the current phase without starting a new one."""
        if total is None:
            try:  # (a len() beyond 2**53, a sampler that never ends: not a total, unknown)
                total = count_arg(len(iterable), "len()")  # type: ignore[arg-type]
            except Exception:
                total = None
        if phase is not None:
            self.start_phase(phase, total_batches=total)
            gen = self._state.cur.gen if self._state.cur is not None else -1
        else:
            self._ensure_started()
            gen = -1
            cur = self._state.cur
            if total is not None and cur is not None and cur.total is None:
                self.set_total_batches(total)
        return self._iterate(iterable, gen)

    def _iterate(self, iterable: Iterable[T], gen: int) -> Iterator[T]:
        try:
            for obj in iterable:
                self._n += 1
                yield obj
        finally:
            cur = self._state.cur
            if gen >= 0 and cur is not None and cur.gen == gen and not self._closed:
                self.end_phase()

    # ------------------------------------------------------------------
    # phases and epochs (not hot: may lock and wake the writer)

    def start_epoch(self, epoch: Optional[int] = None, total_epochs: Optional[int] = None) -> None:
        """Start an epoch; the previous one, if any, ends here. ``epoch``
        counts from :attr:`epoch_base` (default 1: the number shown; with
        ``epoch_base=0``, ``start_epoch(0)`` shows epoch 1). Default: the
        previous epoch + 1, starting at 1. ``total_epochs`` is a count."""
        epoch = count_arg(epoch, "epoch")
        total_epochs = count_arg(total_epochs, "total_epochs")
        if epoch is not None:
            epoch += 1 - self.epoch_base
        self._ensure_started()
        with self._lock:
            self._state.start_epoch(self._mono(), epoch)
            if total_epochs is not None:
                self._state.total_epochs = total_epochs
        self._wake.set()

    def end_epoch(self) -> None:
        """End the current epoch (optional: the next start_epoch or the final
        status ends it too)."""
        with self._lock:
            self._state.end_epoch(self._mono())
        self._wake.set()

    def start_phase(self, name: str, total_batches: Optional[int] = None, *, resume: bool = False) -> None:
        """Start a phase (``"loading"``, ``"train"``, ``"validation"``, ...)
        with its own batch counter; ends the previous phase. ``train`` /
        ``training`` count as training, ``validation`` / ``val`` / ``eval``
        as validation.

        ``resume=True`` continues the most recent phase of that name (e.g.
        training after a mid-epoch validation): its batch counter, elapsed
        time and rate go on from where it stopped, and ``total_batches=None``
        keeps its total. Without such a phase it starts a new one."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("phase name must be a non-empty string, not %r" % (name,))
        total_batches = count_arg(total_batches, "total_batches")
        self._ensure_started()
        with self._lock:
            old = self._n
            self._state.adopt_loose_batches(old, self._started_mono)  # (batches counted with no phase: train)
            self._n = self._state.start_phase(self._mono(), name, total_batches, old, resume=resume)
            self._mq.extend((-1, old - self._n))  # the history's step goes on from here
        self._wake.set()

    def set_total_batches(self, total_batches: Optional[int]) -> None:
        """Set or change the current phase's total number of batches."""
        total_batches = count_arg(total_batches, "total_batches")
        with self._lock:
            if self._state.cur is not None:
                self._state.cur.total = total_batches
        self._wake.set()

    def end_phase(self) -> None:
        """End the current phase (its counters and times stay in the file)."""
        with self._lock:
            self._end_phase_locked(self._mono())
        self._wake.set()

    def _end_phase_locked(self, now: float) -> None:
        if self._started:  # (before the start there is no run time for them yet: the start takes them)
            self._state.adopt_loose_batches(self._n, self._started_mono)
        self._state.end_phase(now, self._n)
        self._mq.extend((-1, self._n))
        self._n = 0

    def phase(self, name: str, total_batches: Optional[int] = None) -> "PhaseContext":
        """``with monitor.phase("validation", total_batches=40): ...``"""
        return PhaseContext(self, name, total_batches)

    # ------------------------------------------------------------------
    # terminal statuses

    def set_finished(self) -> None:
        """Record FINISHED (written before this returns) and stop."""
        self._terminal(FINISHED, None)

    def set_failed(self, msg: Any = None) -> None:
        """Record FAILED with ``msg`` (a string or an exception; the traceback
        tail of the exception being handled, if any, is appended)."""
        if isinstance(msg, BaseException):
            error = hooks.error_text(msg)
        else:
            current = sys.exc_info()[1]
            error = hooks.error_text(current, None if msg is None else str(msg))
        self._terminal(FAILED, error)

    def set_canceled(self, reason: Any = None) -> None:
        """Record CANCELED (``reason``, as text, goes to ``error``) and stop."""
        self._terminal(CANCELED, hooks.reason_text(reason))

    @property
    def status(self) -> str:
        return self._status

    @property
    def control_file(self) -> str:
        """The control file the run reads (another name than
        ``control_<run>.json`` when another user's file is there)."""
        return self._control.poller.path

    def _terminal(self, status: str, error: Optional[str], from_signal: bool = False, defer_capture: bool = False) -> None:
        if os.getpid() != self._pid:
            return
        if not self._started and not self._closed:
            self.start_monitoring()
        if not hooks.write_final(self, status, error):  # (a SIGTERM or Ctrl+C meanwhile waits for it)
            return
        if self._capture is not None:
            if defer_capture:
                self._defer_capture_stop = True  # keep logging until exit: the traceback follows
            else:
                self._capture.stop(timeout=1.0 if from_signal else 2.0)
                self._capture = None
        if not from_signal:
            thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(5.0)
            if not self._defer_capture_stop:
                hooks.unregister(self)

    # context manager
    def __enter__(self) -> "TrainingMonitor":
        self.start_monitoring()
        self._depth += 1
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        if self._depth <= 0:  # no block entered (an ExitStack.push of the monitor...)
            return
        self._depth -= 1
        if not self._closed and self._depth == 0:
            status, error, defer = hooks.exit_status(self._hooks.sigterm, et, ev, tb)
            self._terminal(status, error, defer_capture=defer)

    # ------------------------------------------------------------------
    # the background thread

    def _run(self) -> None:
        sampler = None
        try:
            from .resources import ResourceSampler

            sampler = ResourceSampler(self._pid, gpu=self._gpu)
            self._pid_create_time = sampler.create_time
        except Exception:  # psutil missing or broken: write without resources
            pass
        next_sample = 0.0
        try:
            while not self._closed:
                now = time.monotonic()
                if sampler is not None and now >= next_sample:
                    try:
                        self._resources = sampler.sample()
                    except Exception:  # keep the last sample
                        pass
                    next_sample = now + self.resource_interval
                self._control.poll(self.on_variable_change, self.variables)
                answer_request(self._control, self._pid, self._wall, self._write_now)
                if sampler is not None:
                    self._pid_create_time = sampler.refresh_create_time()
                if not self._write_now(tick=True):
                    break
                self._mlog.flush(self._wall())
                if self._wake.wait(self.interval):
                    self._wake.clear()
                    time.sleep(MIN_WAKE_GAP)  # coalesce bursts of phase changes
        finally:
            if sampler is not None:
                sampler.close()

    def _write_now(self, tick: bool = False) -> bool:
        """Build and write the file now; False once the monitor has ended."""
        with self._lock:
            if self._closed:
                return False
            data = self._build(self._mono(), self._wall(), tick=tick)
        self._write(data)
        return True

    # ------------------------------------------------------------------
    # building and writing the file

    def _build(self, now: float, wall: float, tick: bool) -> Dict[str, Any]:
        """The file's content; called with ``self._lock`` held (or before
        the thread starts)."""
        ended = self._ended_mono
        terminal = self._status in END_STATUSES
        state = self._state
        if not terminal:
            state.adopt_loose_batches(self._n, self._started_mono)
            if tick:
                update_rate(state.cur, self._n, now)
        q, self._mq = self._mq, []
        self._mlog.drain(self._metrics, q)
        metrics = self._metrics.copy()
        if tick:
            self._history.sample(metrics, self._n)
        cur = state.cur
        started = self._started_mono if self._started else None
        est = estimate(ended if ended is not None else now, state, self._n, started, terminal)
        return {
            "format": PROGRESS_FORMAT,
            "run_name": self.run_name,
            "status": self._status,
            "updated_at": wall,
            "host": self._host,
            "pid": self._pid,
            "pid_create_time": self._pid_create_time,
            "pid_namespace": self._pid_namespace,
            "started_at": self._started_wall,
            "ended_at": self._ended_wall,
            "heartbeat_interval": self.interval,
            "phase": cur.name if cur is not None else None,
            "error": self._error,
            "epoch": state.epoch,
            "total_epochs": state.total_epochs,
            "batch": est["batch"],
            "total_batches": cur.total if cur is not None else None,
            "train_batch": est["train_batch"],
            "train_total_batches": state.train.total if state.train is not None else None,
            "val_batch": est["val_batch"],
            "val_total_batches": state.val.total if state.val is not None else None,
            "rate": est["rate"],
            "times": est["times"],
            "metrics": metrics,
            "history": self._history.as_json(),  # encoded once per new point
            "history_file": self._mlog.file_name,
            **self._control.file_fields(self.variables),
            "logs": dict(self.log_files) if self.log_files else None,
            "run_dir": self.run_dir,
            "resources": dict(self._resources) if self._resources else None,
            "links": dict(self.links) if self.links else None,
        }

    def _write(self, data: Dict[str, Any], final: bool = False) -> bool:
        """Write atomically; never raises (see :class:`ProgressWriter`)."""
        with self._write_lock:
            if self._closed and not final:
                return False
            return self._writer.write(data, final)

    def __repr__(self) -> str:
        return "TrainingMonitor(%r, status=%s)" % (self.path, self._status)
