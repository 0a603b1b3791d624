"""Acting on runs: signals, control-file edits, deletion and log paths.

No curses here: the screens in :mod:`ttop.ui.levers` call these functions and
show the messages they return. Every function takes real paths and real PIDs
and re-checks the world right before acting:

* a process is only signalled if its create time, read *now*, matches the one
  seen in the snapshot (PIDs are reused); where the kernel supports it the
  signal goes through a pidfd opened *before* that check, so a process that
  exits and whose PID is reused in between is never hit;
* every path taken from a progress file (``logs``, ``run_dir``) goes through
  :func:`ttop.progress.resolve_inside`: what resolves (symlinks followed)
  outside the progress folder is refused, never read and never deleted;
* a control file is written atomically with the next ``seq``, cumulatively
  while earlier edits are still unacknowledged, so two quick edits are both
  applied, in order.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import signal
import socket
import stat
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import psutil

from . import progress as P
from .collect.procs import CREATE_TIME_TOLERANCE, same_process  # noqa: F401  (the collector's rule)

#: The signals offered by the signal menu, in menu order.
SIGNAL_NAMES = ("SIGTERM", "SIGINT", "SIGKILL", "SIGHUP", "SIGSTOP", "SIGCONT", "SIGUSR1", "SIGUSR2")

#: What the signal menu says about each signal's default action.
SIGNAL_HELP = {
    "SIGTERM": "ask to terminate (can be handled)",
    "SIGINT": "interrupt, like Ctrl+C (KeyboardInterrupt in Python)",
    "SIGKILL": "kill at once (cannot be handled)",
    "SIGHUP": "hang-up (terminates unless handled)",
    "SIGSTOP": "pause the process (cannot be handled)",
    "SIGCONT": "resume a paused process",
    "SIGUSR1": "user signal 1 (terminates unless handled)",
    "SIGUSR2": "user signal 2 (terminates unless handled)",
}

#: Said before a signal is sent to a single thread (Linux semantics).
THREAD_SIGNAL_NOTE = (
    "Linux delivers a thread-directed signal (tgkill) to that thread: a C-level "
    "handler runs in it, but Python runs its handlers in the main thread, and a "
    "default action (terminate, stop, core dump) applies to the whole process."
)


def signal_number(name: str) -> int:
    """``"SIGTERM"`` -> ``signal.SIGTERM`` (ValueError for an unknown name)."""
    sig = getattr(signal, name, None)
    if not name.startswith("SIG") or not isinstance(sig, int):
        raise ValueError("unknown signal %r" % name)
    return int(sig)


def signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


# ---------------------------------------------------------------------------
# processes


def same_create_time(a: Optional[float], b: Optional[float]) -> bool:
    """Same process? The collector's rule (:data:`CREATE_TIME_TOLERANCE`)."""
    return a is not None and b is not None and same_process(float(a), float(b))


def process_alive(pid: Optional[int], create_time: Optional[float]) -> Optional[bool]:
    """True if process ``pid`` exists now with that create time, False if it
    does not (gone, or the PID now belongs to another process), None if it
    cannot be told (no PID, or no create time to compare with while the PID
    exists)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    try:
        ct = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return None
    if create_time is None:
        return None
    return same_create_time(ct, create_time)


def process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no libc?
        return None


_SYS_TGKILL = {"x86_64": 234, "aarch64": 131, "i386": 270, "i686": 270, "armv7l": 268, "ppc64le": 250, "s390x": 241, "riscv64": 131}


def tgkill(tgid: int, tid: int, sig: int) -> None:
    """Send ``sig`` to thread ``tid`` of process ``tgid`` (Linux ``tgkill``).
    Raises OSError (ProcessLookupError, PermissionError, ...) like os.kill."""
    libc = _libc()
    fn = getattr(libc, "tgkill", None) if libc is not None else None
    if fn is not None:
        fn.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        fn.restype = ctypes.c_int
        rc = fn(tgid, tid, sig)
    else:  # glibc < 2.30: the raw system call
        nr = _SYS_TGKILL.get(os.uname().machine)
        if libc is None or nr is None:
            raise OSError(errno.ENOSYS, "tgkill is not available on this system")
        libc.syscall.restype = ctypes.c_long
        rc = libc.syscall(ctypes.c_long(nr), ctypes.c_int(tgid), ctypes.c_int(tid), ctypes.c_int(sig))
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def _open_pidfd(pid: int) -> Optional[int]:
    opener = getattr(os, "pidfd_open", None)
    if opener is None or not hasattr(signal, "pidfd_send_signal"):
        return None
    try:
        return opener(pid)
    except ProcessLookupError:
        raise
    except OSError:  # ENOSYS, blocked by seccomp, ...: fall back to kill()
        return None


def send_signal(pid: int, create_time: Optional[float], sig: int, tid: Optional[int] = None) -> Tuple[bool, str]:
    """Send ``sig`` to process ``pid`` (or to its thread ``tid``), but only if
    the process still has the create time seen in the snapshot.

    Returns ``(ok, message)``; the message is one line fit for the footer:
    "sent SIGTERM to PID 1234 (python3)", "process changed, not sent: ...",
    "process 1234 has exited, not sent", "permission denied sending SIGKILL to
    1234".
    """
    name = signal_name(sig)
    what = "PID %d" % pid if tid is None else "thread %d of PID %d" % (tid, pid)
    if create_time is None:
        return False, "not sent: no create time recorded for PID %d, cannot tell it is the same process" % pid
    pidfd = None
    try:
        try:
            pidfd = _open_pidfd(pid)
            proc = psutil.Process(pid)
            ct = proc.create_time()
        except (psutil.NoSuchProcess, ProcessLookupError):
            return False, "process %d has exited, not sent" % pid
        except psutil.AccessDenied:
            return False, "permission denied reading process %d, not sent" % pid
        if not same_create_time(ct, create_time):
            return False, "process changed, not sent: PID %d now belongs to another process" % pid
        try:
            pname = proc.name()
        except psutil.Error:
            pname = "?"
        try:
            if tid is not None:
                if not os.path.exists("/proc/%d/task/%d" % (pid, tid)):
                    return False, "thread %d of process %d has exited, not sent" % (tid, pid)
                tgkill(pid, tid, sig)
            elif pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            if tid is not None:
                return False, "thread %d of process %d has exited, not sent" % (tid, pid)
            return False, "process %d has exited, not sent" % pid
        except PermissionError:
            return False, "permission denied sending %s to %d" % (name, pid)
        except OSError as e:
            if e.errno == errno.ESRCH:
                return False, "%s has exited, not sent" % what
            if e.errno == errno.EPERM:
                return False, "permission denied sending %s to %d" % (name, pid)
            return False, "%s not sent to %s: %s" % (name, what, e.strerror or e)
        return True, "sent %s to %s (%s)" % (name, what, pname)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def run_main_process(run: Any) -> Tuple[Optional[int], Optional[float]]:
    """A run snapshot's main PID and the create time to check it against."""
    pid = getattr(run, "pid", None)
    ct = getattr(run, "pid_create_time", None)
    data = getattr(run, "data", {}) or {}
    if pid is None:
        pid = data.get("pid")
    if ct is None:
        ct = data.get("pid_create_time")
    if isinstance(pid, bool) or not isinstance(pid, int):
        pid = None
    if isinstance(ct, bool) or not isinstance(ct, (int, float)):
        ct = None
    return pid, (float(ct) if ct is not None else None)


def where_else(run: Any) -> str:
    """Where a non-local run runs, for messages: "on host X", or, for a file
    written on this host from another PID namespace (a container sharing the
    host's name), "in another PID namespace"."""
    host = getattr(run, "host", None)
    if host and host == socket.gethostname():
        return "in another PID namespace (a container?)"
    return "on host %s" % (host or "?")


def signal_runs(runs: Sequence[Any], sig: int) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Signal the main process of each run (each re-checked individually).
    Returns ``(sent_keys, [(key, reason), ...])``."""
    sent: List[str] = []
    refused: List[Tuple[str, str]] = []
    for run in runs:
        pid, ct = run_main_process(run)
        if pid is None:
            refused.append((run.key, "no PID in its progress file"))
            continue
        if not getattr(run, "local", True):
            refused.append((run.key, "runs %s, not here" % where_else(run)))
            continue
        ok, msg = send_signal(pid, ct, sig)
        if ok:
            sent.append(run.key)
        else:
            refused.append((run.key, msg))
    return sent, refused


def summarize_signal_runs(sig: int, sent: Sequence[str], refused: Sequence[Tuple[str, str]]) -> str:
    name = signal_name(sig)
    parts = ["%s sent to %d run%s" % (name, len(sent), "" if len(sent) == 1 else "s")]
    if refused:
        parts.append(
            "not sent to %d: %s" % (len(refused), "; ".join("%s: %s" % (k, r) for k, r in refused))
        )
    return "; ".join(parts)


# ---------------------------------------------------------------------------
# log paths


def log_files(folder: str, run: Any) -> Dict[str, Tuple[Optional[str], str, Optional[str]]]:
    """Where a run's output capture is: ``{"stdout"|"stderr": (real_path or
    None, path as written, refusal reason or None)}``.

    Paths come from ``logs`` in the progress file (default
    ``<key>.stdout.log`` / ``<key>.stderr.log``); one that does not resolve
    inside the folder (absolute, ``..``, symlink to outside) is refused with a
    reason naming it, and never opened.
    """
    data = getattr(run, "data", {}) or {}
    logs = data.get("logs")
    defaults = P.log_paths(run.key)
    out: Dict[str, Tuple[Optional[str], str, Optional[str]]] = {}
    for stream in ("stdout", "stderr"):
        if isinstance(logs, Mapping) and stream in logs:
            rel = logs.get(stream)
        else:
            rel = defaults[stream]
        if rel is None:
            out[stream] = (None, "", "the run has no %s log" % stream)
            continue
        shown = rel if isinstance(rel, str) else repr(rel)
        real = P.resolve_inside(folder, rel)
        if real is None:
            out[stream] = (None, shown, "refused: %s log %s is not inside the progress folder" % (stream, P._short_str(repr(shown), 120)))
        else:
            out[stream] = (real, shown, None)
    return out


# ---------------------------------------------------------------------------
# control edits


def read_control(folder: str, key: str) -> Tuple[Optional[int], Dict[str, Any], Optional[str]]:
    """The run's control file as ``(seq, variables, error)``: seq None when
    there is none (or it is unreadable: then ``error`` says why)."""
    seq, variables, error, _mtime = _read_control(folder, key)
    return seq, variables, error


def _read_control(folder: str, key: str) -> Tuple[Optional[int], Dict[str, Any], Optional[str], Optional[float]]:
    path = P.control_path(folder, key)
    try:
        mtime = os.stat(path).st_mtime
        raw = P.read_capped(path, P.MAX_CONTROL_BYTES)
    except FileNotFoundError:
        return None, {}, None, None
    except (OSError, P.ProgressError) as e:
        return None, {}, "control file unreadable: %s" % (getattr(e, "strerror", None) or e), None
    try:
        seq, variables = P.parse_control(raw)
    except P.ProgressError as e:
        return None, {}, "control file unreadable: %s" % e, mtime
    return seq, dict(variables), None, mtime


def current_control(folder: str, key: str, data: Mapping[str, Any]) -> Tuple[Optional[int], Dict[str, Any]]:
    """The run's control file as ``(seq, variables)`` if it is readable and
    belongs to this run, else ``(None, {})``. A control file older than the
    run's start (left by an earlier run of the same name) does not count."""
    seq, variables, _err, mtime = _read_control(folder, key)
    if seq is None:
        return None, {}
    started = data.get("started_at")
    if isinstance(started, (int, float)) and not isinstance(started, bool) and mtime is not None:
        if mtime < started - 1.0:
            return None, {}
    return seq, variables


def unacknowledged(folder: str, key: str, data: Mapping[str, Any]) -> Tuple[Optional[int], Dict[str, Any]]:
    """The edits in the control file the run has not acknowledged yet:
    ``(seq, variables)``, or ``(None, {})`` (see :func:`current_control`)."""
    seq, variables = current_control(folder, key, data)
    if seq is None or seq <= acked_seq(data):
        return None, {}
    return seq, variables


def acked_seq(data: Mapping[str, Any]) -> int:
    v = data.get("control_seq")
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def variable_type(data: Mapping[str, Any], name: str) -> Optional[str]:
    """A tracked variable's control type: ``variable_types[name]`` else the
    type of its current value."""
    types = data.get("variable_types")
    if isinstance(types, Mapping):
        t = types.get(name)
        if t in P.VARIABLE_TYPES:
            return t
    variables = data.get("variables")
    if isinstance(variables, Mapping) and name in variables:
        return P.type_name(variables[name])
    return None


def write_edit(folder: str, key: str, data: Mapping[str, Any], name: str, value: Any) -> Tuple[int, Dict[str, Any]]:
    """Write one edit to the run's control file; returns ``(seq, variables
    written)``.

    Next seq = max(seq of the existing control file, the run's
    ``control_seq``) + 1. While the existing file is not yet acknowledged
    (its seq > ``control_seq``, and it is not older than the run) its
    variables are kept and the new edit merged in, so quick successive edits
    are all applied, in order. Raises OSError if the file cannot be written.
    """
    acked = acked_seq(data)
    seq, _old, _err = read_control(folder, key)
    variables: Dict[str, Any] = {}
    variables.update(unacknowledged(folder, key, data)[1])
    variables.pop(name, None)
    variables[name] = value
    new_seq = max(seq or 0, acked) + 1
    P.write_control(folder, key, new_seq, variables)
    return new_seq, variables


def edit_state(data: Mapping[str, Any], seq: int, name: str) -> Tuple[str, str]:
    """The state of edit ``seq`` of variable ``name`` given the run's latest
    progress data: ``("pending", "")``, ``("applied", "")`` or
    ``("refused", control_error)``. When a later edit was already acknowledged
    with an error, the error is blamed on this variable only if it names it."""
    acked = acked_seq(data)
    if acked < seq:
        return "pending", ""
    err = data.get("control_error")
    if isinstance(err, str) and err.strip():
        err = err.strip()
        if _mentions(err, name):
            return "refused", err
        if acked == seq and not _mentions_any(err, data):
            return "refused", err
    return "applied", ""


def _mentions(text: str, name: str) -> bool:
    return re.search(r"(?<![\w])%s(?![\w])" % re.escape(name), text) is not None


def _mentions_any(text: str, data: Mapping[str, Any]) -> bool:
    variables = data.get("variables")
    if not isinstance(variables, Mapping):
        return False
    return any(_mentions(text, str(n)) for n in variables)


# ---------------------------------------------------------------------------
# deletion


class DeletePlan:
    """What deleting a run's files would remove, and why it may not."""

    def __init__(self) -> None:
        self.files: List[str] = []  # real paths of files (or links) to unlink
        self.dirs: List[str] = []  # real paths of folders to remove whole
        self.skipped: List[str] = []  # reasons: paths left alone
        self.refusal: Optional[str] = None  # the whole delete is refused

    @property
    def paths(self) -> List[str]:
        return self.files + self.dirs


def _live_reason(run: Any) -> Optional[str]:
    pid, ct = run_main_process(run)
    if not getattr(run, "local", True):
        if getattr(run, "status", None) == P.RUNNING and not getattr(run, "stale", False):
            return "run %s reports RUNNING %s; its process cannot be checked from here" % (
                run.key, where_else(run))
        return None
    alive = process_alive(pid, ct)
    if alive:
        return "run %s is live: process %d (%s) still runs" % (run.key, pid, process_name(pid) or "?")
    if alive is None and pid is not None and psutil.pid_exists(pid) and (
        getattr(run, "reported_status", None) == P.RUNNING or (run.data or {}).get("status") == P.RUNNING
    ):
        return "run %s reports RUNNING and process %d exists; without a create time it may be the run" % (run.key, pid)
    return None


def _entry_in_folder(root: str, name: str) -> Optional[str]:
    """``root/name`` if that directory entry exists (a symlink counts as the
    entry itself, never its target)."""
    path = os.path.join(root, name)
    try:
        os.lstat(path)
    except OSError:
        return None
    return path


def plan_delete(folder: str, run: Any) -> DeletePlan:
    """Work out which files deleting ``run`` removes (nothing is touched).

    The progress file, the control file and the default logs are the folder's
    own entries (a symlink among them is unlinked, its target untouched);
    ``logs`` entries and ``run_dir`` from the file only when they resolve
    inside the folder (``run_dir`` must be a folder, not the progress folder
    itself). Refused outright while the run's process is alive (re-checked
    now: PID and create time).
    """
    plan = DeletePlan()
    plan.refusal = _live_reason(run)
    root = os.path.realpath(folder)
    seen = set()

    def add_file(path: Optional[str]) -> None:
        if path is None:
            return
        k = os.path.normpath(path)
        if k in seen:
            return
        seen.add(k)
        plan.files.append(path)

    own = {run.key + P.PROGRESS_SUFFIX, P.CONTROL_PREFIX + run.key + P.PROGRESS_SUFFIX}
    add_file(_entry_in_folder(root, run.key + P.PROGRESS_SUFFIX))
    add_file(_entry_in_folder(root, P.CONTROL_PREFIX + run.key + P.PROGRESS_SUFFIX))
    for rel in P.log_paths(run.key).values():
        add_file(_entry_in_folder(root, rel))
    data = getattr(run, "data", {}) or {}
    logs = data.get("logs")
    if isinstance(logs, Mapping):
        for stream in ("stdout", "stderr"):
            if stream not in logs:
                continue
            rel = logs[stream]
            real = P.resolve_inside(root, rel)
            if real is None:
                plan.skipped.append("%s log %s: not inside the progress folder, left alone" % (stream, P._short_str(repr(rel), 80)))
                continue
            try:
                st = os.lstat(real)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                plan.skipped.append("%s log %s: a folder, left alone" % (stream, P._short_str(repr(rel), 80)))
                continue
            base = os.path.basename(real)
            if os.path.dirname(real) == root and base not in own and (
                P.is_progress_filename(base) or base.startswith(P.CONTROL_PREFIX)
            ):
                plan.skipped.append("%s log %s: another run's file, left alone" % (stream, P._short_str(repr(rel), 80)))
                continue
            add_file(real)
    rd = data.get("run_dir")
    if rd is not None:
        real = P.resolve_inside(root, rd)
        if real is None:
            plan.skipped.append("run_dir %s: not inside the progress folder, left alone" % P._short_str(repr(rd), 80))
        elif not os.path.isdir(real):
            if os.path.lexists(real):
                plan.skipped.append("run_dir %s: not a folder, left alone" % P._short_str(repr(rd), 80))
        else:
            plan.dirs.append(real)
    return plan


def _rmtree(path: str, errors: List[str]) -> None:
    if sys.version_info >= (3, 12):
        def onexc(_fn, p, exc):
            errors.append("%s: %s" % (p, getattr(exc, "strerror", None) or exc))

        shutil.rmtree(path, onexc=onexc)
    else:
        def onerror(_fn, p, exc_info):
            errors.append("%s: %s" % (p, getattr(exc_info[1], "strerror", None) or exc_info[1]))

        shutil.rmtree(path, onerror=onerror)


def delete_run_files(folder: str, run: Any) -> Tuple[List[str], List[str]]:
    """Delete a run's files (see :func:`plan_delete`). Returns ``(deleted
    paths, refusals with reasons)``. Liveness is re-checked right now; a live
    run loses nothing."""
    plan = plan_delete(folder, run)
    if plan.refusal:
        return [], [plan.refusal]
    deleted: List[str] = []
    refused: List[str] = list(plan.skipped)
    root = os.path.realpath(folder)
    for path in plan.files:
        try:  # unlink never follows a symlink: only the folder's entry goes
            os.unlink(path)
            deleted.append(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            refused.append("%s: %s" % (path, e.strerror or e))
    for d in plan.dirs:
        # re-resolve right before removing: the folder must still be itself
        # (not swapped for a symlink) and inside the progress folder
        if os.path.islink(d) or os.path.realpath(d) != d or not d.startswith(root + os.sep):
            refused.append("%s: changed since planned, left alone" % d)
            continue
        errors: List[str] = []
        _rmtree(d, errors)  # rmtree never follows symlinks inside d
        if errors:
            refused.extend(errors[:5])
        if not os.path.lexists(d):
            deleted.append(d)
    return deleted, refused
