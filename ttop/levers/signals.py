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

from ..collect.collector import user_name
from ..collect.procs import hidden_process, read_real_uid, same_process
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



def valid_pid(pid: object) -> bool:
    """A number the kernel could give a process: a positive int within
    ``pid_t`` (a progress file may say ``pid: -1``, which ``kill`` would
    send to every process, or a number too large for a system call)."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31


def same_create_time(a: Optional[float], b: Optional[float]) -> bool:
    """Same process? The collector's rule
    (:data:`ttop.collect.procs.CREATE_TIME_TOLERANCE`)."""
    return a is not None and b is not None and same_process(float(a), float(b))


def process_alive(pid: Optional[int], create_time: Optional[float]) -> Optional[bool]:
    """True if process ``pid`` runs now with that create time, False if it
    does not (gone, exited and not yet reaped: a zombie, or the PID now
    belongs to another process), None if it cannot be told (no PID, or no
    create time to compare with while a live process has the PID)."""
    if pid is None or not valid_pid(pid):
        return None
    try:
        proc = psutil.Process(pid)
        ct = proc.create_time()
        exited = proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return None if hidden_process(pid) else False  # another user's, hidden by /proc's hidepid
    except psutil.Error:
        return None
    if exited:  # whichever process it was, it has exited (the collector shows the run KILLED)
        return False
    if create_time is None:
        return None
    return same_create_time(ct, create_time)


def process_name(pid: int) -> str:
    if not valid_pid(pid):
        return ""
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


def process_user(pid: int) -> str:
    """The login name of ``pid``'s real uid, read now ("an unknown user" if
    it cannot be read)."""
    return user_name(read_real_uid(pid))


def send_signal(pid: int, create_time: Optional[float], sig: int, tid: Optional[int] = None,
                owner_uid: Optional[int] = None) -> Tuple[bool, str]:
    """Send ``sig`` to process ``pid`` (or to its thread ``tid``), but only if
    the process still has the create time seen in the snapshot and, with
    ``owner_uid`` (the run's owner), still runs as that user (real uid, read
    after the pidfd was opened).

    Returns ``(ok, message)``; the message is one line fit for the footer:
    "sent SIGTERM to PID 1234 (python3)", "process changed, not sent: ...",
    "process 1234 has exited, not sent", "permission denied sending SIGKILL to
    1234".
    """
    name = signal_name(sig)
    what = "PID %d" % pid if tid is None else "thread %d of PID %d" % (tid, pid)
    if not valid_pid(pid) or (tid is not None and not valid_pid(tid)):
        return False, "not sent: %s is not a process id" % (pid if tid is None else "%d/%d" % (pid, tid))
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
        uid = read_real_uid(pid)
        if owner_uid is not None and uid != owner_uid:
            return False, "not sent: PID %d runs as %s, not as the run's owner %s" % (
                pid, user_name(uid), user_name(owner_uid))
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
        return True, "sent %s to %s (%s, user %s)" % (name, what, pname, user_name(uid))
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


def signal_refusal(run: RunSnapshot) -> Optional[str]:
    """Why a run's main process may not be signalled from here, or None:
    no PID, another host, no create time to check the PID against, or a
    process that is not attributed to the run (another user's, or held by
    another run: docs/security.md)."""
    pid, ct = run_main_process(run)
    if pid is None:
        return "no PID in its progress file"
    if not valid_pid(pid):
        return "pid %d in its progress file is not a process id" % pid
    if not run.local:
        return "runs %s, not here" % where_else(run)
    if ct is None:  # send_signal refuses it: never listed as a run it signals
        return "no create time for PID %d in its progress file: cannot tell it is the same process" % pid
    note = getattr(run, "ownership_note", None)
    if note and not run.processes:
        if note.startswith("shared: "):
            note = note[len("shared: "):]
        return note
    return None


def plan_signal_runs(runs: Sequence[RunSnapshot]) -> Tuple[List[RunSnapshot], List[Tuple[str, str]]]:
    """``(runs that would be signalled, [(key, why skipped), ...])``, for
    the confirmation of a signal to many runs."""
    ok: List[RunSnapshot] = []
    skipped: List[Tuple[str, str]] = []
    for run in runs:
        why = signal_refusal(run)
        if why is None:
            ok.append(run)
        else:
            skipped.append((run.key, why))
    return ok, skipped


def signal_runs(runs: Sequence[RunSnapshot], sig: int) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Signal the main process of each run (each re-checked individually:
    create time and owner). Returns ``(sent_keys, [(key, reason), ...])``."""
    sent: List[str] = []
    refused: List[Tuple[str, str]] = []
    for run in runs:
        why = signal_refusal(run)
        if why is not None:
            refused.append((run.key, why))
            continue
        pid, ct = run_main_process(run)
        assert pid is not None
        ok, msg = send_signal(pid, ct, sig, owner_uid=getattr(run, "owner_uid", None))
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
