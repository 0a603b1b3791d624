"""Process hooks of the writer: ``atexit``, ``fork``, SIGTERM and
``sys.excepthook``.

The process-wide hooks (``atexit``, after-fork) are installed once and act on
every live monitor; the SIGTERM handler and the excepthook belong to one
monitor (:class:`SignalHooks`) and are removed when its run ends.
"""
from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ..progress import CANCELED, FAILED, FINISHED
from .history import DROPPED

if TYPE_CHECKING:  # pragma: no cover
    from .core import TrainingMonitor

#: Longest ``error`` text written (message + traceback tail).
MAX_ERROR_CHARS = 4000
#: The ``error`` of a run whose ``with`` block, inside a generator, was left by GeneratorExit.
CLOSED_GENERATOR = "GeneratorExit: the generator running this run was closed before its end (its consumer stopped)"
#: ... inside an asyncio task, left by CancelledError (a timeout, task.cancel(), Ctrl+C under asyncio.run).
CANCELLED_TASK = "CancelledError: the asyncio task running this run was cancelled"


def stop_reason(et: Any) -> Optional[str]:
    """The CANCELED reason of an exception type that stops a run without
    an error: GeneratorExit (a generator closed by its consumer) and
    asyncio's CancelledError (from Python 3.11 asyncio.run turns Ctrl+C
    into one in the main task); None for any other."""
    if issubclass(et, GeneratorExit):
        return CLOSED_GENERATOR
    aio = sys.modules.get("asyncio")  # (not imported here: no asyncio, no CancelledError of it)
    if aio is not None and issubclass(et, getattr(aio, "CancelledError", ())):
        return CANCELLED_TASK
    return None

_live: "List[TrainingMonitor]" = []
_live_lock = threading.Lock()
_installed = False


def error_text(exc: Optional[BaseException], message: Optional[str] = None) -> str:
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


class NotSent:
    """What a monitor is when pickled: never sent to another process (a
    spawned data-loader worker gets its dataset pickled), with an error
    that says so rather than "cannot pickle '_thread.RLock' object"."""

    __slots__ = ()  # (TrainingMonitor's own slots stay its only storage)

    def __reduce__(self) -> Any:
        raise TypeError(
            "ttop: a TrainingMonitor cannot be sent to another process (pickled, e.g. in a dataset for spawn or "
            "forkserver data-loader workers): its run is written by the process that started it. Keep it out of "
            "what the workers get and report from the main process (a fork()ed worker inherits it, inert)")


def reason_text(reason: Any) -> Optional[str]:
    """A cancel reason as ``error`` holds it: text (an exception as
    :func:`error_text` writes it, anything else as ``str()``), capped as a
    failure's is; None stays None. (An object there was dropped by readers:
    ``error`` is a string or null.)"""
    if reason is None or (isinstance(reason, str) and not reason.strip()):
        return reason
    if isinstance(reason, BaseException):
        return error_text(reason)
    return error_text(None, reason if isinstance(reason, str) else str(reason))


# ----------------------------------------------------------------------
# process-wide: atexit and fork


def _at_exit() -> None:
    with _live_lock:
        monitors = list(_live)
    for m in monitors:
        shutdown(m)


def shutdown(m: "TrainingMonitor") -> None:
    """At exit: stop the writer thread, write what the script gave after
    its last tick (both files, as a tick would) and restore the console.
    The status is left as it is (a plain-API script that never called
    set_finished stays RUNNING, and ttop shows it as KILLED once the PID is
    gone), except after a SIGTERM its own handler took: CANCELED then. A
    status the script gives later (from an ``atexit`` handler it registered
    before the run started: those run after this one) is still written."""
    if os.getpid() != m._pid:
        return
    with m._lock:
        last = m._started and not m._closed
        m._closed = True
    m._wake.set()
    thread = m._thread
    if thread is not None and thread is not threading.current_thread():
        thread.join(2.0)
    if last and (thread is None or not thread.is_alive()):  # never wait on a write the thread is stuck in
        if m._hooks.sigterm:  # the script's own SIGTERM handler let it exit without a final call
            m._closed = False  # (the thread is gone: nothing else writes)
            m._terminal(CANCELED, "received SIGTERM", from_signal=True)
        else:
            _last_tick(m)
            m._closed = False  # (the thread is gone: only a final status writes from here on)
    if m._capture is not None:
        m._capture.stop(timeout=1.0)
        m._capture = None
    m._hooks.restore()


def exit_status(sigterm: bool, et: Any, ev: Any, tb: Any) -> Tuple[str, Optional[str], bool]:
    """The end a ``with TrainingMonitor(...)`` block records: ``(status,
    error, defer_capture)``. A normal exit or ``sys.exit(0)`` is FINISHED,
    Ctrl+C (and a generator or an asyncio task stopped from outside, see
    :func:`stop_reason`) CANCELED, any other exception FAILED with its
    text; after a SIGTERM that the script's own handler took (``sigterm``),
    an exit of any kind but an error is CANCELED ``received SIGTERM``."""
    if sigterm and (et is None or issubclass(et, (SystemExit, KeyboardInterrupt))):
        return CANCELED, "received SIGTERM", False
    if et is None:
        return FINISHED, None, False
    if issubclass(et, KeyboardInterrupt):
        return CANCELED, "KeyboardInterrupt", False
    stopped = stop_reason(et)
    if stopped is not None:
        return CANCELED, stopped, False
    if issubclass(et, SystemExit) and getattr(ev, "code", None) in (None, 0):
        return FINISHED, None, False
    if ev is None:
        ev = et()
    if ev.__traceback__ is None:
        ev = ev.with_traceback(tb)
    return FAILED, error_text(ev), True


def write_final(m: "TrainingMonitor", status: str, error: Optional[str]) -> bool:
    """Close the run and write its final status (False: it was closed
    already), then put the signal handlers back. A SIGTERM that comes
    meanwhile (a second one: ``timeout``, SLURM, Kubernetes or a kill of the
    process group send one more; or one just as the script ends the run)
    waits until the status is in the file, then is delivered; a
    KeyboardInterrupt (Ctrl+C pressed twice) that comes out of it still
    leaves the status written. Either used to end the process before the
    write, and the run said RUNNING (ttop: KILLED)."""
    h = m._hooks
    h.ending = threading.get_ident()
    closed = written = False
    try:
        with m._lock:
            if m._closed:
                return False
            m._closed = closed = True
        _write_closed(m, status, error, first=True)
        written = True
        return True
    except BaseException:
        if closed and not written:  # interrupted before the write: write it all the same
            try:
                _write_closed(m, status, error, first=False)
            except BaseException:
                pass
        raise
    finally:
        h.ending = None
        if closed:
            h.restore()  # (the handlers back first: a SIGTERM that came meanwhile goes where it would have)
        h.deliver_deferred()


def _write_closed(m: "TrainingMonitor", status: str, error: Optional[str], first: bool) -> None:
    """Write the closed run's final file: its end time taken once, its phase
    and epoch closed, updates given from now on dropped (every step is done
    once: this runs again when the first time was interrupted, then without
    flushing the history file)."""
    with m._lock:
        m._status, m._error = status, error
        if m._ended_wall is None or m._ended_mono is None:
            mono = m._mono()
            m._ended_wall, m._ended_mono = m._wall(), mono
        now = m._ended_mono
        m._end_phase_locked(now)  # (batches counted with no phase: a train phase, ended)
        m._state.end_epoch(now)
        data = m._build(now, m._ended_wall, tick=False)
        m._mq = DROPPED  # no writer will take updates given from now on
    if first:
        m._wake.set()
        m._mlog.flush(m._ended_wall)
    data["history_file"] = m._mlog.file_name
    m._write(data, final=True)


def start_failed(m: "TrainingMonitor", exc: BaseException, written: bool) -> None:
    """``start_monitoring`` raised ``exc``. Once the run's first file is
    written (``written``: ``exc`` came while output capture started, a
    process of its own, e.g. a Ctrl+C), that file must not go on saying
    RUNNING: the run ends as a ``with`` block would end it (CANCELED for a
    Ctrl+C); not when the file cannot be written anyway. Otherwise the
    monitor can be started again."""
    if written and not isinstance(exc, OSError):
        try:
            status, error, _ = exit_status(m._hooks.sigterm, type(exc), exc, exc.__traceback__)
            m._terminal(status, error)  # (stops the capture, if it had started)
        except Exception:  # pragma: no cover - the writer reports its own errors
            pass
    m._hooks.restore()
    with m._lock:
        m._started = False
    if m._capture is not None:
        m._capture.stop()
        m._capture = None
    unregister(m)


def _last_tick(m: "TrainingMonitor") -> None:
    """The writer's tick once more, after its thread stopped; never raises."""
    try:
        wall = m._wall()
        with m._lock:
            data = m._build(m._mono(), wall, tick=True)
        m._mlog.flush(wall)
        data["history_file"] = m._mlog.file_name
        m._write(data, final=True)  # (final: past the closed monitor's check)
    except Exception:  # pragma: no cover - the writer reports its own errors
        pass


def _after_fork_in_child() -> None:
    # A forked child (e.g. a data-loader worker) inherits the monitor objects
    # but not their thread: make them inert so the child never writes the
    # parent's files. A lock another thread held at the fork (the writer
    # building the file) stays held in the child, where no thread will ever
    # release it: the child gets new ones (it has only this thread now).
    global _live_lock
    _live_lock = threading.Lock()
    monitors = list(_live)
    _live[:] = []
    for m in monitors:
        m._closed = True
        m._mq = DROPPED  # (this child has no writer to take them)
        m._lock = m._control._lock = threading.RLock()
        m._write_lock = threading.RLock()


def register(monitor: "TrainingMonitor") -> None:
    """Add a started monitor to the ones the atexit and fork hooks act on
    (installing those hooks the first time)."""
    global _installed
    with _live_lock:
        _live.append(monitor)
        if _installed:
            return
        _installed = True
    atexit.register(_at_exit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def start_capture(folder: str, log_files: Dict[str, str]) -> Tuple[Any, Optional[Dict[str, str]]]:
    """Start a run's output capture into its two logs: the capture, and the
    file names its logs use (another user's name taken: hidden ones), or
    None when it could not start."""
    from .capture import OutputCapture

    cap = OutputCapture(os.path.join(folder, log_files["stdout"]), os.path.join(folder, log_files["stderr"]))
    cap.start()
    return cap, ({k: os.path.basename(p) for k, p in zip(("stdout", "stderr"), cap.paths)} if cap.active else None)


def let_go_stopped() -> None:
    """A failed run keeps its output capture, and so its place among the
    live monitors, until exit (for the traceback that follows); once another
    run's capture has stopped it (a sweep that catches a trial's failure and
    goes on), nothing is left for it to do at exit: not kept for that."""
    with _live_lock:
        _live[:] = [m for m in _live if not (m._defer_capture_stop and m._closed and not (
            m._capture is not None and m._capture.active))]


def unregister(monitor: "TrainingMonitor") -> None:
    with _live_lock:
        if monitor in _live:
            _live.remove(monitor)


def live_path(path: str, other_than: "TrainingMonitor") -> bool:
    """Does a running monitor of this process (other than ``other_than``)
    write ``path``?"""
    path = os.path.abspath(path)
    with _live_lock:
        return any(m is not other_than and not m._closed and os.path.abspath(m.path) == path for m in _live)


# ----------------------------------------------------------------------
# per monitor: SIGTERM and the excepthook


def _script_handler(prev: Any) -> bool:
    """Is ``prev`` (the SIGTERM handler found when a monitor installed
    its own) a handler of the script's own, or does it pass the signal on
    to one? Another monitor's handler of this process (two runs at once)
    is followed to the one it found: it is not the script's."""
    for _ in range(64):
        owner = getattr(prev, "__self__", None)
        if not (isinstance(owner, SignalHooks) and getattr(prev, "__func__", None) is SignalHooks.on_sigterm):
            break
        prev = owner._prev_sigterm
    return callable(prev)


class SignalHooks:
    """The SIGTERM handler and the chained ``sys.excepthook`` of one
    monitor: they record CANCELED / FAILED, then let the process go on as it
    would have without them."""

    def __init__(self, monitor: "TrainingMonitor") -> None:
        self.monitor = monitor
        #: a SIGTERM was passed to the script's own handler: the run goes on
        #: as that handler decides, and ends CANCELED unless the script says
        #: otherwise (see :func:`exit_status`)
        self.sigterm = False
        self._prev_sigterm: Any = None
        self._sigterm_installed = False
        self._prev_excepthook: Any = None
        #: the thread writing the run's final status (:func:`write_final`), else None
        self.ending: Optional[int] = None
        self._deferred = False  # a SIGTERM came while it did, in that thread: delivered after
        self._in_handler = False

    def deliver_deferred(self) -> None:
        """Send again the SIGTERM that came while the final status was being
        written (the handlers are back by now: it goes where it would have)."""
        if self._deferred and not self._in_handler and self.ending is None:
            self._deferred = False
            os.kill(os.getpid(), signal.SIGTERM)

    def install(self) -> None:
        """From the main thread only; SIGTERM only if it is not ignored."""
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            prev = signal.getsignal(signal.SIGTERM)
            if prev is not signal.SIG_IGN and prev is not None:
                signal.signal(signal.SIGTERM, self.on_sigterm)
                self._prev_sigterm = prev
                self._sigterm_installed = True
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            pass
        self._prev_excepthook = sys.excepthook
        sys.excepthook = self.excepthook

    def restore(self) -> None:
        if self._sigterm_installed and threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) == self.on_sigterm:
                    signal.signal(signal.SIGTERM, self._prev_sigterm)
                self._sigterm_installed = False
            except (ValueError, OSError):  # pragma: no cover
                pass
        if self._prev_excepthook is not None and sys.excepthook == self.excepthook:
            sys.excepthook = self._prev_excepthook

    def on_sigterm(self, signum: int, frame: Any) -> None:
        m = self.monitor
        prev = self._prev_sigterm
        if self.ending == threading.get_ident() and os.getpid() == m._pid and not self._deferred:
            self._deferred = True  # the code this interrupted writes the final status: after that
            return  # (one more SIGTERM meanwhile is not put off: a write stuck on a hung file system)
        self._in_handler = True
        try:
            if os.getpid() == m._pid:
                if _script_handler(prev):
                    # a handler of the script's own decides what happens next
                    # (finish the epoch, save a checkpoint, or carry on): the run
                    # stays monitored until it ends, and is CANCELED then unless
                    # the script says otherwise
                    self.sigterm = True
                else:
                    try:
                        m._terminal(CANCELED, "received SIGTERM", from_signal=True)
                    except Exception:
                        pass
        finally:
            self._in_handler = self._deferred = False  # (one that came meanwhile: sent on below)
        # keep the default behaviour (or the user's handler): restore it and
        # deliver the signal again
        if prev is None:
            prev = signal.SIG_DFL
        try:
            signal.signal(signal.SIGTERM, prev)
        except (ValueError, OSError):  # pragma: no cover
            pass
        self._sigterm_installed = False
        if prev == signal.SIG_DFL and os.getpid() == 1:
            # PID 1 of a PID namespace (a container without an init): the
            # kernel ignores a signal left to its default action there, so
            # end the process as the signal asked, finally blocks run
            raise SystemExit(128 + signum)
        os.kill(os.getpid(), signal.SIGTERM)

    def excepthook(self, et: Any, ev: Any, tb: Any) -> None:
        m = self.monitor
        prev = self._prev_excepthook or sys.__excepthook__
        try:
            if not m._closed and os.getpid() == m._pid:
                if issubclass(et, KeyboardInterrupt):
                    m._terminal(CANCELED, "KeyboardInterrupt", defer_capture=True)
                else:
                    if ev is not None and ev.__traceback__ is None:
                        ev = ev.with_traceback(tb)
                    m._terminal(FAILED, error_text(ev), defer_capture=True)
        except Exception:
            pass
        prev(et, ev, tb)
