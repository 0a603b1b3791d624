"""Signalling a run's processes and threads, re-checked right before sending.

A process is only signalled if its create time, read *now*, matches the one
seen in the snapshot (PIDs are reused); where the kernel supports it the signal
goes through a pidfd opened *before* that check, so a process that exits and
whose PID is reused in between is never hit. A single thread is signalled with
``tgkill``.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
from typing import List, Optional, Sequence, Tuple

import psutil

from ..collect.procs import same_process
from ..collect.snapshot import RunSnapshot

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



def same_create_time(a: Optional[float], b: Optional[float]) -> bool:
    """Same process? The collector's rule
    (:data:`ttop.collect.procs.CREATE_TIME_TOLERANCE`)."""
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


def run_main_process(run: RunSnapshot) -> Tuple[Optional[int], Optional[float]]:
    """A run snapshot's main PID and the create time to check it against."""
    pid: object = run.pid
    ct: object = run.pid_create_time
    if pid is None:
        pid = run.data.get("pid")
    if ct is None:
        ct = run.data.get("pid_create_time")
    if isinstance(pid, bool) or not isinstance(pid, int):
        pid = None
    if isinstance(ct, bool) or not isinstance(ct, (int, float)):
        ct = None
    return pid, (float(ct) if ct is not None else None)


def where_else(run: RunSnapshot) -> str:
    """Where a non-local run runs, for messages: "on host X", or, for a file
    written on this host from another PID namespace (a container sharing the
    host's name), "in another PID namespace"."""
    host = run.host
    if host and host == socket.gethostname():
        return "in another PID namespace (a container?)"
    return "on host %s" % (host or "?")


def signal_runs(runs: Sequence[RunSnapshot], sig: int) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Signal the main process of each run (each re-checked individually).
    Returns ``(sent_keys, [(key, reason), ...])``."""
    sent: List[str] = []
    refused: List[Tuple[str, str]] = []
    for run in runs:
        pid, ct = run_main_process(run)
        if pid is None:
            refused.append((run.key, "no PID in its progress file"))
            continue
        if not run.local:
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
