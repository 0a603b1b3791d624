"""TrainingMonitor: the progress-file writer imported by training scripts.

Hot path (called once per batch, inside other people's loops): ``start_batch``
bumps one integer attribute and ``update_metrics`` does one plain ``dict``
update; neither takes a lock nor reads the clock. Everything else (times,
rate, history, JSON conversion, the control file, resource sampling, the
atomic write) happens in one background daemon thread that wakes every
``interval`` seconds, or at once when the phase, epoch or status changes.
"""
from __future__ import annotations

import atexit
import collections
import errno
import math
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, TypeVar

from ..progress import (
    CANCELED,
    END_STATUSES,
    FAILED,
    FINISHED,
    PROGRESS_FORMAT,
    PROGRESS_SUFFIX,
    RUNNING,
    ProgressError,
    coerce_value,
    control_path,
    json_safe,
    log_paths,
    number_or_none,
    pid_namespace,
    progress_path,
    sanitize_run_name,
    type_name,
    write_json_atomic,
)
from .control import ControlPoller

T = TypeVar("T")

TRAIN_PHASES = frozenset({"train", "training"})
VALIDATION_PHASES = frozenset({"validation", "val", "valid", "validate", "eval", "evaluation"})

#: History is kept for at most this many metric names (the first ones seen).
MAX_HISTORY_METRICS = 64
#: Longest ``error`` text written (message + traceback tail).
MAX_ERROR_CHARS = 4000
#: Smoothing factor of the rate's exponential moving average (per write).
RATE_SMOOTHING = 0.3
#: Least time between two writes triggered by phase/epoch changes.
MIN_WAKE_GAP = 0.05

_live: "List[TrainingMonitor]" = []
_live_lock = threading.Lock()
_hooks_installed = False


def _default_run_name() -> str:
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script.endswith(".py"):
        script = script[:-3]
    if not script or script in ("-c", "-m", "-"):
        script = "python"
    return "%s-%s-%d" % (script, time.strftime("%Y%m%d-%H%M%S"), os.getpid())


def _at_exit() -> None:
    with _live_lock:
        monitors = list(_live)
    for m in monitors:
        m._shutdown_at_exit()


def _after_fork_in_child() -> None:
    # A forked child (e.g. a data-loader worker) inherits the monitor objects
    # but not their thread: make them inert so the child never writes the
    # parent's files.
    with _live_lock:
        monitors = list(_live)
        _live[:] = []
    for m in monitors:
        m._closed = True


def _install_process_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _error_text(exc: Optional[BaseException], message: Optional[str] = None) -> str:
    """Message + traceback tail, capped at :data:`MAX_ERROR_CHARS`."""
    parts = []
    if message:
        parts.append(message.rstrip())
    if exc is not None:
        head = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if not message or message.strip() not in head:
            parts.append(head)
        tb = traceback.format_tb(exc.__traceback__) if exc.__traceback__ is not None else []
        if tb:
            tail = "".join(tb[-6:]).rstrip()
            parts.append("Traceback (most recent call last, tail):\n" + tail)
    text = "\n".join(parts) or "failed"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS // 4] + "\n...\n" + text[-(MAX_ERROR_CHARS * 3 // 4) :]
    return text


def _r(x: Optional[float]) -> Optional[float]:
    return None if x is None else round(x, 3)


class _Phase:
    __slots__ = ("name", "kind", "start", "end", "total", "n", "gen")

    def __init__(self, name: str, kind: str, start: float, total: Optional[int], gen: int) -> None:
        self.name = name
        self.kind = kind
        self.start = start
        self.end: Optional[float] = None
        self.total = total
        self.n = 0  # batches, frozen when the phase ends
        self.gen = gen


def _phase_kind(name: str) -> str:
    low = name.strip().lower()
    if low in TRAIN_PHASES:
        return "train"
    if low in VALIDATION_PHASES:
        return "validation"
    return "other"


_MAX_COUNT = 2 ** 53


def _opt_int(value: Any, what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("%s must be an int or None, not bool" % what)
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise TypeError("%s must be an int or None, not %r" % (what, value)) from None
    if out < 0:
        raise ValueError("%s must be >= 0, not %d" % (what, out))
    if out > _MAX_COUNT:  # the writer divides by it as a float; JSON readers lose precision past 2**53
        raise ValueError("%s must be at most 2**53, not a %d-digit number" % (what, len(str(out))))
    return out


class TrainingMonitor:
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
    """

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
        resource_interval: float = 5.0,
        gpu: bool = True,
        handle_signals: bool = True,
    ) -> None:
        # hot-path state first
        self._n = 0
        self._metrics: Dict[str, Any] = {}
        #: Current values of the tracked variables; edits made in ttop land
        #: here (read it in your loop: ``lr = monitor.variables["lr"]``).
        self.variables: Dict[str, Any] = {}

        if output_file is not None and (folder is not None or run_name is not None):
            raise ValueError("give either output_file or folder/run_name, not both")
        if output_file is not None:
            output_file = os.fspath(output_file)
            if not isinstance(output_file, str) or not output_file.strip():
                raise ValueError("output_file must be a non-empty path")
            folder, base = os.path.split(output_file)
            if base.endswith(PROGRESS_SUFFIX):
                base = base[: -len(PROGRESS_SUFFIX)]
            run_name = base or None
            folder = folder or "."
        if folder is None:
            folder = "progress"
        folder = os.fspath(folder)
        if not folder or "\x00" in folder:
            raise ValueError("invalid progress folder %r" % (folder,))
        if not (isinstance(interval, (int, float)) and not isinstance(interval, bool) and 0 < interval < 3600):
            raise ValueError("interval must be a number of seconds in (0, 3600), not %r" % (interval,))
        if not (isinstance(resource_interval, (int, float)) and resource_interval > 0):
            raise ValueError("resource_interval must be a positive number, not %r" % (resource_interval,))
        if not (isinstance(history_size, int) and not isinstance(history_size, bool) and history_size >= 0):
            raise ValueError("history_size must be an int >= 0, not %r" % (history_size,))

        self.folder: str = folder
        self.run_name: str = sanitize_run_name(run_name if run_name is not None else _default_run_name())
        self.path: str = progress_path(folder, self.run_name)
        self.control_file: str = control_path(folder, self.run_name)
        self.interval = float(interval)
        self.resource_interval = float(resource_interval)
        self.history_size = history_size
        self.capture_output = bool(capture_output)
        self.on_variable_change = on_variable_change
        self.links = dict(links) if links else None
        self.run_dir = run_dir
        self._gpu = gpu
        self._handle_signals = handle_signals
        self.log_files: Optional[Dict[str, str]] = log_paths(self.run_name) if capture_output else None

        self._pid = os.getpid()
        self._host = os.uname().nodename if hasattr(os, "uname") else None
        self._pid_namespace = pid_namespace()
        self._lock = threading.RLock()  # run state (phase, epoch, status)
        self._write_lock = threading.RLock()  # one file write at a time
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.thread_native_id: Optional[int] = None
        self._started = False
        self._closed = False  # terminal status written, or shut down at exit
        self._status = RUNNING
        self._error: Optional[str] = None
        self._started_wall: Optional[float] = None
        self._started_mono = 0.0
        self._ended_wall: Optional[float] = None
        self._ended_mono: Optional[float] = None
        self._pid_create_time: Optional[float] = None
        self._resources: Optional[Dict[str, Any]] = None
        self.resource_note: Optional[str] = None

        self._epoch: Optional[int] = None
        self._total_epochs = _opt_int(total_epochs, "total_epochs")
        self._epoch_start: Optional[float] = None
        self._epoch_durations: List[float] = []
        self._epoch_val_done = False
        self._gen = 0
        self._phase_end: Optional[float] = None
        self._cur: Optional[_Phase] = None
        self._train: Optional[_Phase] = None
        self._val: Optional[_Phase] = None
        self._last_val: Optional[float] = None

        self._rate: Optional[float] = None
        self._rate_gen = -1
        self._rate_t = 0.0
        self._rate_n = 0
        self._ema_dn: Optional[float] = None
        self._ema_dt: Optional[float] = None

        self._history: Dict[str, Deque[Optional[float]]] = {}
        self._last_hist_metrics: Optional[Dict[str, Any]] = None
        self._last_hist_n = -1

        self._var_types: Dict[str, str] = {}
        self._control = ControlPoller(self.control_file)
        self._control_seq = 0
        self._control_error: Optional[str] = None
        self._callback_error_reported = False

        self._write_failing = False
        self._capture: Any = None
        self._defer_capture_stop = False
        self._prev_sigterm: Any = None
        self._sigterm_installed = False
        self._prev_excepthook: Any = None

        if variables:
            self.track_variables(variables)
        self._check_folder()

    # ------------------------------------------------------------------
    # set-up and folder checks

    def _check_folder(self) -> None:
        """Create the folder if needed and prove it is writable by writing
        (and removing) a probe file; raise a clear OSError otherwise."""
        folder = self.folder
        if not os.path.isdir(folder):
            if os.path.exists(folder):
                raise NotADirectoryError(errno.ENOTDIR, "ttop: progress folder is not a directory", folder)
            parent = os.path.dirname(os.path.abspath(folder))
            if not os.path.isdir(parent):
                raise FileNotFoundError(
                    errno.ENOENT, "ttop: cannot create the progress folder, its parent %s does not exist" % parent, folder
                )
            try:
                os.mkdir(folder)
            except FileExistsError:
                pass
            except OSError as e:
                raise type(e)(e.errno, "ttop: cannot create the progress folder (%s)" % e.strerror, folder) from None
        try:
            fd, probe = tempfile.mkstemp(prefix=".ttop-probe-", suffix=".tmp", dir=folder)
            try:
                os.write(fd, b"{}")
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as e:
            raise type(e)(e.errno, "ttop: progress folder is not writable (%s)" % e.strerror, folder) from None

    def track_variables(self, variables: Mapping[str, Any]) -> None:
        """Register variables that ttop may show and edit. Values must be
        bool, int, float or str to be editable (numpy/torch scalars are
        converted); other values are shown read-only. Read the live values
        from :attr:`variables`."""
        if not isinstance(variables, Mapping):
            raise TypeError("track_variables expects a dict, not %s" % type(variables).__name__)
        for name, value in variables.items():
            if not isinstance(name, str):
                raise TypeError("variable names must be strings, not %r" % (name,))
            if type_name(value) is None and callable(getattr(value, "item", None)):
                try:
                    value = value.item()
                except Exception:
                    pass
            t = type_name(value)
            with self._lock:
                if t is not None:
                    self._var_types[name] = t
                else:
                    self._var_types.pop(name, None)
                self.variables[name] = value
        self._wake.set()

    def start_monitoring(self) -> "TrainingMonitor":
        """Write the first progress file (raising a clear OSError if that is
        impossible) and start the background thread. Idempotent."""
        with self._lock:
            if self._started:
                return self
            if self._closed:
                raise RuntimeError("this TrainingMonitor has already ended (status %s)" % self._status)
            self._started = True
            self._started_wall = time.time()
            self._started_mono = time.monotonic()
        try:
            if self.capture_output:
                from .capture import OutputCapture

                assert self.log_files is not None
                cap = OutputCapture(
                    os.path.join(self.folder, self.log_files["stdout"]),
                    os.path.join(self.folder, self.log_files["stderr"]),
                )
                cap.start()
                self._capture = cap
            self._control.skip_existing()
            data = self._build(time.monotonic(), time.time(), tick=False)
            try:
                with self._write_lock:
                    write_json_atomic(self.path, data)
            except OSError as e:
                raise type(e)(e.errno, "ttop: cannot write the progress file (%s)" % e.strerror, self.path) from None
        except BaseException:
            with self._lock:
                self._started = False
            if self._capture is not None:
                self._capture.stop()
                self._capture = None
            raise
        self._install_handlers()
        with _live_lock:
            _live.append(self)
        _install_process_hooks()
        self._thread = threading.Thread(target=self._run, name="ttop-monitor", daemon=True)
        self._thread.start()
        return self

    def _ensure_started(self) -> None:
        if not self._started:
            self.start_monitoring()

    # ------------------------------------------------------------------
    # the hot path

    def start_batch(self) -> None:
        """Count one batch of the current phase (call at its start)."""
        self._n += 1

    def update_metrics(self, _metrics: Optional[Mapping[str, Any]] = None, **metrics: Any) -> None:
        """Record the latest metric values: ``update_metrics(loss=0.3,
        acc=0.9)`` or ``update_metrics({"val/loss": 0.3})``. Values are
        converted when written (numpy/torch scalars via ``.item()``; NaN and
        infinities as the strings "NaN", "Infinity", "-Infinity")."""
        if _metrics is not None:
            self._metrics.update(_metrics)
        self._metrics.update(metrics)

    def track(self, iterable: Iterable[T], phase: Optional[str] = "train", total: Optional[int] = None) -> Iterator[T]:
        """``for batch in monitor.track(loader, phase="train")``: starts the
        phase (total from ``len(iterable)`` when available), counts one batch
        per item, ends the phase when the loop ends. ``phase=None`` counts
        into the current phase without starting a new one."""
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except Exception:
                total = None
        if phase is not None:
            self.start_phase(phase, total_batches=total)
            gen = self._gen
        else:
            self._ensure_started()
            gen = -1
            if total is not None and self._cur is not None and self._cur.total is None:
                self.set_total_batches(total)
        return self._iterate(iterable, gen)

    def _iterate(self, iterable: Iterable[T], gen: int) -> Iterator[T]:
        try:
            for obj in iterable:
                self._n += 1
                yield obj
        finally:
            if gen >= 0 and self._cur is not None and self._cur.gen == gen and not self._closed:
                self.end_phase()

    # ------------------------------------------------------------------
    # phases and epochs (not hot: may lock and wake the writer)

    def start_epoch(self, epoch: Optional[int] = None, total_epochs: Optional[int] = None) -> None:
        """Start an epoch. ``epoch`` is the number shown (1-based by
        convention; default: previous + 1, starting at 1). The previous epoch,
        if any, ends here."""
        epoch = _opt_int(epoch, "epoch")
        total_epochs = _opt_int(total_epochs, "total_epochs")
        self._ensure_started()
        with self._lock:
            now = time.monotonic()
            self._end_epoch_locked(now)
            self._epoch = epoch if epoch is not None else (self._epoch or 0) + 1
            if total_epochs is not None:
                self._total_epochs = total_epochs
            self._epoch_start = now
            self._epoch_val_done = False
        self._wake.set()

    def end_epoch(self) -> None:
        """End the current epoch (optional: the next start_epoch or the final
        status ends it too)."""
        with self._lock:
            self._end_epoch_locked(time.monotonic())
        self._wake.set()

    def _end_epoch_locked(self, now: float) -> None:
        if self._epoch_start is not None:
            self._epoch_durations.append(now - self._epoch_start)
            self._epoch_start = None

    def start_phase(self, name: str, total_batches: Optional[int] = None) -> None:
        """Start a phase (``"loading"``, ``"train"``, ``"validation"``, ...)
        with its own batch counter; ends the previous phase. ``train`` /
        ``training`` count as training, ``validation`` / ``val`` / ``eval``
        as validation."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError("phase name must be a non-empty string, not %r" % (name,))
        total_batches = _opt_int(total_batches, "total_batches")
        self._ensure_started()
        with self._lock:
            now = time.monotonic()
            self._end_phase_locked(now)
            self._gen += 1
            rec = _Phase(name, _phase_kind(name), now, total_batches, self._gen)
            self._n = 0
            self._cur = rec
            if rec.kind == "train":
                self._train = rec
            elif rec.kind == "validation":
                self._val = rec
        self._wake.set()

    def set_total_batches(self, total_batches: Optional[int]) -> None:
        """Set or change the current phase's total number of batches."""
        total_batches = _opt_int(total_batches, "total_batches")
        with self._lock:
            if self._cur is not None:
                self._cur.total = total_batches
        self._wake.set()

    def end_phase(self) -> None:
        """End the current phase (its counters and times stay in the file)."""
        with self._lock:
            self._end_phase_locked(time.monotonic())
        self._wake.set()

    def _end_phase_locked(self, now: float) -> None:
        rec = self._cur
        if rec is None:
            return
        rec.end = now
        rec.n = self._n
        if rec.kind == "validation":
            self._last_val = now - rec.start
            self._epoch_val_done = True
        self._cur = None
        self._n = 0
        self._phase_end = now

    def phase(self, name: str, total_batches: Optional[int] = None) -> "_PhaseContext":
        """``with monitor.phase("validation", total_batches=40): ...``"""
        return _PhaseContext(self, name, total_batches)

    # ------------------------------------------------------------------
    # terminal statuses

    def set_finished(self) -> None:
        """Record FINISHED (written before this returns) and stop."""
        self._terminal(FINISHED, None)

    def set_failed(self, msg: Any = None) -> None:
        """Record FAILED with ``msg`` (a string or an exception; the traceback
        tail of the exception being handled, if any, is appended)."""
        if isinstance(msg, BaseException):
            error = _error_text(msg)
        else:
            current = sys.exc_info()[1]
            error = _error_text(current, None if msg is None else str(msg))
        self._terminal(FAILED, error)

    def set_canceled(self, reason: Optional[str] = None) -> None:
        """Record CANCELED (``reason`` goes to ``error``) and stop."""
        self._terminal(CANCELED, reason)

    @property
    def status(self) -> str:
        return self._status

    def _terminal(self, status: str, error: Optional[str], from_signal: bool = False, defer_capture: bool = False) -> None:
        if os.getpid() != self._pid:
            return
        if not self._started and not self._closed:
            self.start_monitoring()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._status = status
            self._error = error
            now = time.monotonic()
            self._ended_wall = time.time()
            self._ended_mono = now
            self._adopt_loose_batches()
            self._end_phase_locked(now)
            self._end_epoch_locked(now)
            data = self._build(now, self._ended_wall, tick=False)
        self._wake.set()
        self._write(data, final=True)
        self._restore_handlers()
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
            with _live_lock:
                if self in _live and not self._defer_capture_stop:
                    _live.remove(self)

    def _shutdown_at_exit(self) -> None:
        """atexit: stop the writer thread and restore the console. The status
        is left as it is (a plain-API script that never called set_finished
        stays RUNNING, and ttop shows it as KILLED once the PID is gone)."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)
        if self._capture is not None:
            self._capture.stop(timeout=1.0)
            self._capture = None
        self._restore_handlers()

    # context manager
    def __enter__(self) -> "TrainingMonitor":
        return self.start_monitoring()

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        if self._closed:
            return False
        if et is None:
            self._terminal(FINISHED, None)
        elif issubclass(et, KeyboardInterrupt):
            self._terminal(CANCELED, "KeyboardInterrupt")
        elif issubclass(et, SystemExit) and getattr(ev, "code", None) in (None, 0):
            self._terminal(FINISHED, None)
        else:
            if ev is None:
                ev = et()
            if ev.__traceback__ is None:
                ev = ev.with_traceback(tb)
            self._terminal(FAILED, _error_text(ev), defer_capture=True)
        return False

    # ------------------------------------------------------------------
    # signals and uncaught exceptions

    def _install_handlers(self) -> None:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return
        try:
            prev = signal.getsignal(signal.SIGTERM)
            if prev is not signal.SIG_IGN and prev is not None:
                signal.signal(signal.SIGTERM, self._on_sigterm)
                self._prev_sigterm = prev
                self._sigterm_installed = True
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            pass
        self._prev_excepthook = sys.excepthook
        sys.excepthook = self._excepthook

    def _restore_handlers(self) -> None:
        if self._sigterm_installed and threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                    signal.signal(signal.SIGTERM, self._prev_sigterm)
                self._sigterm_installed = False
            except (ValueError, OSError):  # pragma: no cover
                pass
        if self._prev_excepthook is not None and sys.excepthook == self._excepthook:
            sys.excepthook = self._prev_excepthook

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        prev = self._prev_sigterm
        if os.getpid() == self._pid:
            try:
                self._terminal(CANCELED, "received SIGTERM", from_signal=True)
            except Exception:
                pass
        # keep the default behaviour (or the user's handler): restore it and
        # deliver the signal again
        try:
            signal.signal(signal.SIGTERM, prev if prev is not None else signal.SIG_DFL)
        except (ValueError, OSError):  # pragma: no cover
            pass
        self._sigterm_installed = False
        os.kill(os.getpid(), signal.SIGTERM)

    def _excepthook(self, et: Any, ev: Any, tb: Any) -> None:
        prev = self._prev_excepthook or sys.__excepthook__
        try:
            if not self._closed and os.getpid() == self._pid:
                if issubclass(et, KeyboardInterrupt):
                    self._terminal(CANCELED, "KeyboardInterrupt", defer_capture=True)
                else:
                    if ev is not None and ev.__traceback__ is None:
                        ev = ev.with_traceback(tb)
                    self._terminal(FAILED, _error_text(ev), defer_capture=True)
        except Exception:
            pass
        prev(et, ev, tb)

    # ------------------------------------------------------------------
    # the background thread

    def _run(self) -> None:
        self.thread_native_id = threading.get_native_id() if hasattr(threading, "get_native_id") else None
        sampler = None
        try:
            from .resources import ResourceSampler

            sampler = ResourceSampler(self._pid, gpu=self._gpu)
            self._pid_create_time = sampler.create_time
        except Exception as e:  # psutil missing or broken: write without resources
            self.resource_note = "resources not sampled: %s" % e
        next_sample = 0.0
        try:
            while not self._closed:
                now = time.monotonic()
                if sampler is not None and now >= next_sample:
                    try:
                        self._resources = sampler.sample()
                        self.resource_note = sampler.note
                    except Exception as e:
                        self.resource_note = "resources not sampled: %s" % e
                    next_sample = now + self.resource_interval
                self._poll_control()
                if sampler is not None:
                    self._pid_create_time = sampler.refresh_create_time()
                with self._lock:
                    if self._closed:
                        break
                    data = self._build(time.monotonic(), time.time(), tick=True)
                self._write(data)
                if self._wake.wait(self.interval):
                    self._wake.clear()
                    time.sleep(MIN_WAKE_GAP)  # coalesce bursts of phase changes
        finally:
            if sampler is not None:
                sampler.close()

    def _poll_control(self) -> None:
        try:
            got = self._control.poll()
        except Exception as e:  # pragma: no cover - poll never raises
            got = (None, None, "control file ignored: %s" % e)
        if got is None:
            return
        seq, values, reason = got
        if reason is not None:
            self._control_error = reason
            return
        assert seq is not None and values is not None
        if seq <= self._control_seq:
            return
        refused = []
        changed = []
        with self._lock:
            for name, raw in values.items():
                if name not in self.variables:
                    refused.append("%s: not a tracked variable" % name)
                    continue
                t = self._var_types.get(name)
                if t is None:
                    refused.append("%s: read-only (a %s)" % (name, type(self.variables[name]).__name__))
                    continue
                try:
                    new = coerce_value(t, raw)
                except ProgressError as e:
                    refused.append("%s: %s" % (name, e))
                    continue
                old = self.variables.get(name)
                self.variables[name] = new
                if not (old == new and type(old) is type(new)):
                    changed.append((name, old, new))
            self._control_seq = seq
            self._control_error = ("refused " + "; ".join(refused)) if refused else None
        callback = self.on_variable_change
        if callback is None:
            return
        for name, old, new in changed:
            try:
                callback(name, old, new)
            except Exception as e:
                msg = "on_variable_change(%r) raised %s: %s" % (name, type(e).__name__, e)
                with self._lock:
                    self._control_error = msg if self._control_error is None else self._control_error + "; " + msg
                if not self._callback_error_reported:
                    self._callback_error_reported = True
                    self._report("ttop: " + msg)

    # ------------------------------------------------------------------
    # building and writing the file

    def _adopt_loose_batches(self) -> None:
        """Batches counted outside any phase (start_batch without
        start_phase) are shown as a ``train`` phase."""
        if self._cur is None and self._n > 0:
            self._gen += 1
            rec = _Phase("train", "train", self._phase_end or self._started_mono, None, self._gen)
            self._cur = self._train = rec

    def _phase_numbers(self, rec: Optional[_Phase], now: float):
        """(batch, elapsed, remaining, total) of a phase record."""
        if rec is None:
            return None, None, None, None
        live = rec is self._cur and rec.end is None
        n = self._n if live else rec.n
        end = rec.end if rec.end is not None else now
        elapsed = max(end - rec.start, 0.0)
        if not live:
            return n, elapsed, 0.0, elapsed
        remaining = None
        rate = self._rate
        if rec.total is not None:
            if n >= rec.total:
                remaining = 0.0
            elif rate is not None and rate > 0:
                remaining = (rec.total - n) / rate
        return n, elapsed, remaining, (elapsed + remaining if remaining is not None else None)

    def _update_rate(self, now: float) -> None:
        rec = self._cur
        if rec is None:
            self._rate = None
            return
        n = self._n
        if self._rate_gen != rec.gen:
            self._rate_gen = rec.gen
            self._rate_t = rec.start
            self._rate_n = 0
            self._ema_dn = self._ema_dt = None
            self._rate = None
        dt = now - self._rate_t
        if dt < 0.05:
            return
        dn = n - self._rate_n
        if self._ema_dt is None or self._ema_dn is None:
            self._ema_dn, self._ema_dt = float(dn), dt
        else:
            a = RATE_SMOOTHING
            self._ema_dn = a * dn + (1 - a) * self._ema_dn
            self._ema_dt = a * dt + (1 - a) * self._ema_dt
        self._rate_t, self._rate_n = now, n
        self._rate = (self._ema_dn / self._ema_dt) if n > 0 and self._ema_dt > 0 else None

    def _sample_history(self, metrics: Dict[str, Any]) -> None:
        if self.history_size <= 0:
            return
        try:
            same = bool(metrics == self._last_hist_metrics)
        except Exception:  # values whose == raises (numpy arrays, ...): count as changed
            same = False
        if same and self._n == self._last_hist_n:
            return
        self._last_hist_metrics = metrics
        self._last_hist_n = self._n
        hist = self._history
        for name, value in metrics.items():
            series = hist.get(name)
            if series is None:
                if len(hist) >= MAX_HISTORY_METRICS:
                    continue
                series = hist[name] = collections.deque(maxlen=self.history_size)
            try:
                x = number_or_none(json_safe(value))
            except Exception:
                x = None
            series.append(x if x is not None and math.isfinite(x) else None)

    def _build(self, now: float, wall: float, tick: bool) -> Dict[str, Any]:
        """The file's content; called with ``self._lock`` held (or before
        the thread starts)."""
        ended = self._ended_mono
        t = ended if ended is not None else now
        terminal = self._status in END_STATUSES
        if not terminal:
            self._adopt_loose_batches()
        if tick and not terminal:
            self._update_rate(now)
        metrics = self._metrics.copy()
        if tick:
            self._sample_history(metrics)

        cur = self._cur
        batch, ph_elapsed, ph_rem, ph_total = self._phase_numbers(cur, t)
        tr_batch, tr_elapsed, tr_rem, tr_total = self._phase_numbers(self._train, t)
        va_batch, va_elapsed, va_rem, va_total = self._phase_numbers(self._val, t)

        # epoch
        ep_elapsed = ep_rem = ep_total = None
        mean_epoch = (sum(self._epoch_durations) / len(self._epoch_durations)) if self._epoch_durations else None
        if self._epoch_start is not None:
            ep_elapsed = max(t - self._epoch_start, 0.0)
            kind = cur.kind if cur is not None else None
            if kind == "train" and ph_rem is not None:
                val_expected = self._last_val if (self._last_val is not None and not self._epoch_val_done) else 0.0
                ep_rem = ph_rem + val_expected
            elif kind == "validation" and ph_rem is not None:
                ep_rem = ph_rem
            elif mean_epoch is not None:
                ep_rem = max(mean_epoch - ep_elapsed, 0.0)
            if ep_rem is not None:
                ep_total = ep_elapsed + ep_rem
        elif self._epoch_durations:
            ep_elapsed = self._epoch_durations[-1]
            ep_rem = 0.0
            ep_total = ep_elapsed

        # run
        run_elapsed = max(t - self._started_mono, 0.0) if self._started else 0.0
        run_rem: Optional[float] = None
        if terminal:
            run_rem = 0.0
        elif self._epoch is not None and self._total_epochs is not None:
            if self._epoch_start is None:
                ongoing_rem = 0.0
                per_epoch = mean_epoch
            else:
                ongoing_rem = ep_rem
                per_epoch = mean_epoch if mean_epoch is not None else ep_total
            left = max(self._total_epochs - self._epoch, 0)
            if ongoing_rem is not None and (left == 0 or per_epoch is not None):
                run_rem = ongoing_rem + left * (per_epoch or 0.0)
        elif self._epoch is None and cur is not None:
            run_rem = ph_rem
        run_total = run_elapsed + run_rem if run_rem is not None else None

        val_times: Dict[str, Any] = {
            "elapsed": _r(va_elapsed),
            "remaining": _r(va_rem),
            "total": _r(va_total),
            "last": _r(self._last_val),
        }
        variables = dict(self.variables)
        var_types = {}
        for name, value in variables.items():
            vt = self._var_types.get(name) or type_name(value)
            if vt is not None:
                var_types[name] = vt
        rate = None if terminal or cur is None else self._rate
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
            "epoch": self._epoch,
            "total_epochs": self._total_epochs,
            "batch": batch,
            "total_batches": cur.total if cur is not None else None,
            "train_batch": tr_batch,
            "train_total_batches": self._train.total if self._train is not None else None,
            "val_batch": va_batch,
            "val_total_batches": self._val.total if self._val is not None else None,
            "rate": None if rate is None else round(rate, 4),
            "times": {
                "run": {"elapsed": _r(run_elapsed), "remaining": _r(run_rem), "total": _r(run_total)},
                "epoch": {"elapsed": _r(ep_elapsed), "remaining": _r(ep_rem), "total": _r(ep_total)},
                "train": {"elapsed": _r(tr_elapsed), "remaining": _r(tr_rem), "total": _r(tr_total)},
                "validation": val_times,
            },
            "metrics": metrics,
            "history": {k: list(v) for k, v in self._history.items()},
            "variables": variables,
            "variable_types": var_types,
            "control_seq": self._control_seq,
            "control_error": self._control_error,
            "logs": dict(self.log_files) if self.log_files else None,
            "run_dir": self.run_dir,
            "resources": dict(self._resources) if self._resources else None,
            "links": dict(self.links) if self.links else None,
        }

    def _report(self, message: str) -> None:
        try:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except Exception:
            pass

    def _write(self, data: Dict[str, Any], final: bool = False) -> bool:
        """Write atomically; never raises. The first failure is reported on
        stderr (and the recovery), not every retry."""
        with self._write_lock:
            if self._closed and not final:
                return False
            try:
                try:
                    write_json_atomic(self.path, data)
                except FileNotFoundError:
                    if os.path.isdir(self.folder):
                        raise
                    os.mkdir(self.folder)  # the folder was removed under us
                    write_json_atomic(self.path, data)
                    self._report("ttop: progress folder %s was removed; re-created it" % self.folder)
            except Exception as e:
                if not self._write_failing:
                    self._write_failing = True
                    how = "" if final else "; training continues, retrying every %gs" % self.interval
                    self._report("ttop: cannot write %s: %s%s" % (self.path, e, how))
                return False
            if self._write_failing:
                self._write_failing = False
                self._report("ttop: %s written again" % self.path)
            return True

    def __repr__(self) -> str:
        return "TrainingMonitor(%r, status=%s)" % (self.path, self._status)


class _PhaseContext:
    def __init__(self, monitor: TrainingMonitor, name: str, total: Optional[int]) -> None:
        self.monitor, self.name, self.total = monitor, name, total

    def __enter__(self) -> TrainingMonitor:
        self.monitor.start_phase(self.name, total_batches=self.total)
        self._gen = self.monitor._gen
        return self.monitor

    def __exit__(self, *exc: Any) -> bool:
        cur = self.monitor._cur
        if cur is not None and cur.gen == self._gen:
            self.monitor.end_phase()
        return False
