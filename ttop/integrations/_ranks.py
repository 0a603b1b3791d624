"""Multi-rank jobs (torchrun, accelerate, DeepSpeed, SLURM) as one run.

Rank 0 writes the run's progress file. Every other rank runs a
:class:`RankFollower`: it polls the run's control file, so an lr edit made
in ttop is applied on every rank, and keeps a small status file
``.<run>.rank<k>.json`` next to the run's (hidden: the collector does not
read it as a run) with its PID, host, status, error and the edit it last
applied, and a sample of its own process tree's resources (ttop shows the
ranks as rows of the run and sums their CPU and RAM into it). When the run
fails, rank 0 names the first rank that failed, so a rank's real error is
not replaced by the follow-on errors of the others ("Connection closed by
peer", or the SIGTERM the launcher sends them).

An edit is acknowledged in the rank's file (``control_seq``) only once the
rank has applied it: an lr edit waits for the training thread, and an
optimizer that refuses it (``LRControl.apply``) makes ``control_error`` say
so, which ttop shows as the edit refused on that rank.
"""
from __future__ import annotations

import glob
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..monitor.control import ControlPoller, apply_edit
from ..monitor.remote import answer_request, check_request
from ..progress import (
    CANCELED,
    FAILED,
    RUNNING,
    control_path,
    pid_namespace,
    progress_path,
    sanitize_run_name,
    type_name,
    write_json_atomic,
)

RANK_FORMAT = "ttop.rank/1"


def rank_file(folder: str, run_name: str, rank: int) -> str:
    return os.path.join(folder, ".%s.rank%d.json" % (run_name, rank))


def job_run_name(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """A run name every rank of one job computes alike (the default name has
    the PID in it): ``<script>-<torchrun run id>``, ``<script>-slurm<job>``
    or ``<script>-<MASTER_ADDR>-<MASTER_PORT>``; None outside a launcher."""
    env = os.environ if environ is None else environ
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script.endswith(".py"):
        script = script[:-3]
    script = script if script and script not in ("-c", "-m", "-") else "python"
    run_id = env.get("TORCHELASTIC_RUN_ID", "")
    if run_id and run_id != "none":
        return sanitize_run_name("%s-%s" % (script, run_id))
    job = env.get("SLURM_JOB_ID")
    if job:
        step = env.get("SLURM_STEP_ID")
        return sanitize_run_name("%s-slurm%s%s" % (script, job, "." + step if step else ""))
    addr, port = env.get("MASTER_ADDR"), env.get("MASTER_PORT")
    if addr and port:
        return sanitize_run_name("%s-%s-%s" % (script, addr, port))
    return None


#: A rank file that ended this long before the run started is an earlier
#: run's of the same name (left behind), not this job's. (The slack covers
#: a rank failing while rank 0 was still setting up, and clock skew.)
EARLIER_RUN_SECONDS = 60.0


def first_failure(folder: str, run_name: str, before: float, after: Optional[float] = None) -> Optional[Tuple[int, str]]:
    """``(rank, error)`` of the rank that failed first (before ``before``),
    from the ranks' status files; None if none failed. With ``after`` (when
    this run started), a file that ended more than
    :data:`EARLIER_RUN_SECONDS` before it is an earlier run's and is ignored."""
    best: Optional[Tuple[float, int, str]] = None
    for path in glob.glob(os.path.join(glob.escape(folder), ".%s.rank*.json" % glob.escape(run_name))):
        d = _own_rank_file(path)
        if not isinstance(d, dict) or d.get("status") != FAILED:
            continue
        ended, rank, error = d.get("ended_at"), d.get("rank"), d.get("error")
        if not isinstance(ended, (int, float)) or not isinstance(rank, int) or ended > before:
            continue
        if after is not None and ended < after - EARLIER_RUN_SECONDS:
            continue
        if best is None or ended < best[0]:
            best = (float(ended), rank, str(error or "failed"))
    return None if best is None else (best[1], best[2])


#: A rank file larger than this is not read (the collector's limit too).
MAX_RANK_BYTES = 256 * 1024


def _own_rank_file(path: str) -> Any:
    """The JSON value of the rank file at ``path``, or None. The folder may
    be shared: the name is opened without following a link and without
    blocking (a FIFO there would hang the failing run's exit), and only a
    regular file of this process's user, of at most :data:`MAX_RANK_BYTES`,
    is read; a stranger's file must not name the run's error."""
    import json
    import stat

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOCTTY", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > MAX_RANK_BYTES:
            return None
        raw = os.read(fd, MAX_RANK_BYTES + 1)
        return json.loads(raw.decode("utf-8")) if len(raw) <= MAX_RANK_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


class RankFollower:
    """A rank other than 0: follows the run's control file and writes its
    own status file. Started from the training thread."""

    def __init__(
        self,
        folder: str,
        run_name: str,
        rank: int,
        world_size: int,
        interval: float,
        on_change: Callable[[str, Any, Any], Any],
        held: Optional[Callable[[], bool]] = None,
        resources: bool = True,
    ) -> None:
        self.folder, self.run_name, self.rank, self.world_size = folder, run_name, rank, world_size
        self.path = rank_file(folder, run_name, rank)
        self.interval = interval
        self.on_change = on_change
        self.variables: Dict[str, Any] = {}
        self._types: Dict[str, str] = {}
        self._poller = ControlPoller(control_path(folder, run_name), job_file=progress_path(folder, run_name))
        self._signals = _Signals(self._poller)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.status = RUNNING
        self.error: Optional[str] = None
        self.ended_at: Optional[float] = None
        self.control_seq = 0
        self.control_error: Optional[str] = None
        #: ``held()`` True after an edit: it waits for the training thread,
        #: which acknowledges it with :meth:`confirm`
        self._held_fn = held
        self._held: Optional[Tuple[int, Optional[str]]] = None
        self._seen_seq = 0
        self.started_at = time.time()
        self._prev_hook: Any = None
        self._pid = os.getpid()
        self._pid_ns = pid_namespace()
        self._want_resources = resources
        self._sampler: Any = None
        self._create_time: Optional[float] = None
        self._resources: Optional[Dict[str, Any]] = None
        self._write_reported = False

    def track(self, values: Mapping[str, Any]) -> None:
        with self._lock:
            for name, value in values.items():
                t = type_name(value)
                if t is not None:
                    self._types[name] = t
                self.variables[name] = value

    def start(self) -> None:
        if not os.path.isdir(self.folder):
            os.makedirs(self.folder, exist_ok=True)
        self._poller.skip_existing()  # left by an earlier run of the same name, as rank 0 does
        self._create_time = _create_time(self._pid)
        self._write()
        self._poller.started(self.path)
        self._thread = threading.Thread(target=self._run, name="ttop-rank", daemon=True)
        self._thread.start()
        if threading.current_thread() is threading.main_thread():
            self._prev_hook = sys.excepthook
            sys.excepthook = self._excepthook

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()
            self._sample()
            self._write()

    def _sample(self) -> None:
        """This rank's process tree (the follower's thread, as the monitor's
        writer thread does for rank 0)."""
        if not self._want_resources:
            return
        try:
            if self._sampler is None:
                from ..monitor.resources import ResourceSampler

                self._sampler = ResourceSampler(self._pid)
                self._create_time = self._sampler.create_time
            self._resources = self._sampler.sample()
            self._create_time = self._sampler.refresh_create_time()
        except Exception:  # psutil missing, or the process table unreadable: no figures
            self._want_resources = False

    def poll(self) -> None:
        got = self._poller.poll()
        if got is None:
            return
        seq, values, reason = got
        if reason is not None or seq is None or values is None:
            self.control_error = reason
            return
        self._signal()
        if seq <= self._seen_seq:
            return
        with self._lock:
            changed, refused = apply_edit(values, self.variables, self._types)
            self._seen_seq = seq
            self._held = (seq, ("refused " + "; ".join(refused)) if refused else None)
        errors: List[str] = []
        for name, old, new in changed:
            try:
                self.on_change(name, old, new)
            except (Exception, SystemExit) as e:  # sys.exit() there would end this thread, not the script
                errors.append("%s: %s" % (type(e).__name__, e))
        with self._lock:
            held = self._held
            if held is not None and held[0] == seq and errors:
                held = self._held = (seq, "; ".join(([held[1]] if held[1] else []) + errors))
            if held is not None and held[0] == seq and not (self._held_fn is not None and self._held_fn()):
                # nothing waits for the training thread: acknowledged now
                self._held = None
                self.control_seq, self.control_error = held

    def _signal(self) -> None:
        """A request to signal the run's process tree (target ``tree``) is
        for every rank: this one acknowledges it in its own file
        (``signal_ack``) and delivers it to its own tree, as rank 0 does for
        its. Requests for the main process, and refused ones, are rank 0's."""
        request = check_request(self._poller.signal, self._signals.signal_seq)
        if request is None:
            return
        self._signals.signal_seq = request[0]
        if request[1] is None or request[1][1] != "tree":
            return
        self._signals.pending_signal = request
        answer_request(self._signals, self._pid, time.time, self._write)

    def confirm(self, refused: Any = ()) -> None:
        """The training thread applied the held edit: acknowledge it, with
        ``refused`` (``"name: why"`` each) as the rank's ``control_error``."""
        with self._lock:
            held, self._held = self._held, None
            if held is None:
                if not refused:
                    return
                held = (self.control_seq, None)
            seq, error = held
            parts = ([error] if error else []) + (["refused " + "; ".join(refused)] if refused else [])
            self.control_seq, self.control_error = seq, "; ".join(parts) or None
        self._write()

    def _write(self) -> None:
        held = self._held  # an edit read, waiting for the training thread
        data = {
            "format": RANK_FORMAT,
            "run_name": self.run_name,
            "rank": self.rank,
            "world_size": self.world_size,
            "pid": self._pid,
            "pid_create_time": self._create_time,
            "pid_namespace": self._pid_ns,
            "host": os.uname().nodename if hasattr(os, "uname") else None,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "ended_at": self.ended_at,
            "control_seq": self.control_seq,
            "control_error": self.control_error,
            "control_pending": held[0] if held is not None else None,
            "variables": dict(self.variables),
            "resources": self._resources,
            "signal_ack": self._signals.signal_ack,
        }
        try:
            write_json_atomic(self.path, data)
        except Exception as e:  # never into the training loop; said once (ttop shows no row for this rank)
            if not self._write_reported:
                self._write_reported = True
                from ..monitor.control import report

                report("ttop: rank %d cannot write its status file %s (%s): ttop will not show this rank" % (
                    self.rank, self.path, getattr(e, "strerror", None) or e))

    def end(self, status: str, error: Optional[str] = None) -> None:
        if self.status != RUNNING or os.getpid() != self._pid:  # (a forked child: not this rank's end)
            return
        self.status, self.error, self.ended_at = status, error, time.time()
        self._stop.set()
        self._write()
        if self._prev_hook is not None and sys.excepthook == self._excepthook:
            sys.excepthook = self._prev_hook

    def _excepthook(self, et: Any, ev: Any, tb: Any) -> None:
        prev = self._prev_hook or sys.__excepthook__
        if os.getpid() != self._pid:  # a forked child's exception: not this rank's
            prev(et, ev, tb)
            return
        try:
            from ..monitor.hooks import error_text

            if issubclass(et, KeyboardInterrupt):
                self.end(CANCELED, "KeyboardInterrupt")
            else:
                if ev is not None and ev.__traceback__ is None:
                    ev = ev.with_traceback(tb)
                self.end(FAILED, error_text(ev))
        except Exception:
            pass
        prev(et, ev, tb)


class _Signals:
    """What :func:`ttop.monitor.remote.answer_request` reads and sets."""

    def __init__(self, poller: ControlPoller) -> None:
        self.poller = poller
        self.signal_seq = 0
        self.pending_signal: Any = None
        self.signal_ack: Optional[Dict[str, Any]] = None
        self.stop_guard: Any = None


def _create_time(pid: int) -> Optional[float]:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def install_rank0_hooks(fail_first: Callable[[], bool]) -> Callable[[], None]:
    """On rank 0 of a multi-rank job (main thread): an uncaught exception or
    SIGTERM first asks ``fail_first()`` to record another rank's earlier
    failure as the run's error, then goes on to the hooks installed before
    (the monitor's). Returns a function that removes them."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    prev_hook = sys.excepthook
    prev_term = signal.getsignal(signal.SIGTERM)

    def hook(et: Any, ev: Any, tb: Any) -> None:
        try:
            fail_first()
        except Exception:
            pass
        prev_hook(et, ev, tb)

    def on_term(signum: int, frame: Any) -> None:
        try:
            fail_first()
        except Exception:
            pass
        if callable(prev_term):
            prev_term(signum, frame)
        else:
            signal.signal(signal.SIGTERM, prev_term if prev_term is not None else signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    sys.excepthook = hook
    installed_term = False
    if prev_term is not signal.SIG_IGN and prev_term is not None:
        try:
            signal.signal(signal.SIGTERM, on_term)
            installed_term = True
        except (ValueError, OSError):  # pragma: no cover
            pass

    def remove() -> None:
        if sys.excepthook is hook:
            sys.excepthook = prev_hook
        if installed_term and signal.getsignal(signal.SIGTERM) is on_term:
            signal.signal(signal.SIGTERM, prev_term)

    return remove


__all__ = ["RankFollower", "first_failure", "install_rank0_hooks", "job_run_name", "rank_file"]
