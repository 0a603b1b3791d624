"""Signals requested through the control file: how ttop signals a run it
cannot reach directly (a run on another host, or in another PID namespace).

The control file is only read when it is owned by the run's own user or
root (:class:`~ttop.monitor.control.ControlPoller`), so a request carries the
same authority as a signal that user could send. The writer acknowledges a
request in the progress file *before* delivering it (``signal_ack``): after a
SIGSTOP or SIGKILL it could not write anything any more.
"""
from __future__ import annotations

import os
import signal as _signal
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..progress import ProgressError, parse_signal_request


def check_request(value: Any, last_seq: int) -> Optional[Tuple[int, Optional[Tuple[str, str]], Optional[str]]]:
    """A control file's ``signal`` value against the last acknowledged seq:
    None when there is nothing new; else ``(seq, (name, target), None)`` to
    deliver, or ``(seq, None, reason)`` to refuse."""
    if value is None:
        return None
    try:
        seq, name, target = parse_signal_request(value)
    except ProgressError as e:
        raw_seq = value.get("seq") if isinstance(value, dict) else None
        if isinstance(raw_seq, int) and not isinstance(raw_seq, bool) and raw_seq > last_seq:
            return raw_seq, None, str(e)
        return None
    if seq <= last_seq:
        return None
    if getattr(_signal, name, None) is None:
        return seq, None, "%s does not exist on this system" % name
    return seq, (name, target), None


def tree_pids(pid: int) -> List[int]:
    """``pid``'s descendants, deepest first (psutil; empty without it)."""
    try:
        import psutil

        kids = psutil.Process(pid).children(recursive=True)
    except Exception:
        return []
    return [k.pid for k in reversed(kids)]


#: The requests whose default action ends the process (SIGKILL aside).
ENDING = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2")

GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_stopguard.py")


def start_stop_guard(pid: int, control_path: str, uid: int, seq: int, target: str,
                     run: str = "", since: Optional[float] = None) -> Tuple[Any, Optional[str]]:
    """Start the stop guard (see ``_stopguard.py``) that delivers the next
    request while ``pid`` is stopped; returns ``(the guard's Popen, None)``
    or ``(None, why it could not start)``."""
    import subprocess
    import sys

    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", GUARD, str(pid), control_path, str(uid), str(seq), target, run,
                                 repr(since or 0.0)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                close_fds=True, start_new_session=True)
    except OSError as e:
        return None, str(e)
    return proc, None


def guard_delivered(control: Any) -> Optional[int]:
    """The seq of the request the stop guard started for ``control``
    delivered (it says so on its stdout before sending), or None; forgets a
    guard that answered or ended. Never blocks."""
    proc = getattr(control, "stop_guard", None)
    if proc is None:
        return None
    data = b""
    try:
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        data = os.read(fd, 4096)
    except (OSError, ValueError, AttributeError):  # BlockingIOError: nothing said yet
        pass
    if data or proc.poll() is not None:
        control.stop_guard = None
        try:
            proc.stdout.close()
            proc.poll()
        except Exception:
            pass
    try:  # the last one answered (a second SIGSTOP may come first)
        return int(data.split()[-1])
    except (ValueError, IndexError):
        return None


def deliver(name: str, target: str, pid: int, spare: Tuple[int, ...] = ()) -> Tuple[bool, str]:
    """Send ``name`` to ``pid`` (``target`` "main") or to its descendants and
    then to it ("tree"), the descendants in ``spare`` left out (the stop
    guard: a child of the run, which a SIGSTOP must not stop). Returns
    ``(ok, what happened)``."""
    sig = getattr(_signal, name)
    sent: List[int] = []
    failed: List[str] = []
    pids = ([p for p in tree_pids(pid) if p not in spare] if target == "tree" else []) + [pid]
    for p in pids:
        try:
            os.kill(p, sig)
            sent.append(p)
        except OSError as e:
            failed.append("%d: %s" % (p, e.strerror or e))
    if not sent:
        return False, "%s not sent: %s" % (name, "; ".join(failed))
    what = "pid %d" % pid if target == "main" else "%d processes of pid %d's tree" % (len(sent), pid)
    return True, "sent %s to %s" % (name, what) + ("; failed for %s" % "; ".join(failed) if failed else "")


def ack(seq: int, name: Any, target: Any, ok: bool, result: str, at: float) -> Dict[str, Any]:
    return {"seq": seq, "name": name if isinstance(name, str) else None,
            "target": target if isinstance(target, str) else None, "ok": ok, "result": result, "at": at}


def answer_request(control: Any, pid: int, wall: Callable[[], float], write_now: Callable[[], Any]) -> None:
    """Handle ``control.pending_signal`` (a :class:`~ttop.monitor.control.VariableControl`):
    acknowledge it in the progress file (``write_now``), then deliver it to
    ``pid`` or its tree, and keep the outcome as the next ``signal_ack``."""
    request = control.pending_signal
    control.pending_signal = None
    if request is None:
        return
    seq, what, refusal = request
    by_guard = guard_delivered(control) == seq
    raw = control.poller.signal if isinstance(control.poller.signal, dict) else {}
    if what is not None and what[0] == "SIGSTOP" and pid == 1:
        what, refusal = None, "PID 1 of its PID namespace (a container without an init) cannot be stopped"
    if what is None:
        control.signal_ack = ack(seq, raw.get("name"), raw.get("target"), False, "refused: %s" % refusal, wall())
        write_now()
        return
    name, target = what
    if by_guard:  # delivered while this process was stopped: acknowledged, not sent twice
        control.signal_ack = ack(seq, name, target, True, "sent %s to %s (by the stop guard%s)" % (
            name, "pid %d" % pid if target == "main" else "pid %d's tree" % pid,
            "" if name in ("SIGSTOP", "SIGCONT") else ", with SIGCONT"), wall())
        write_now()
        return
    sending = "sending %s to the %s" % (name, "main process" if target == "main" else "process tree")
    if name == "SIGSTOP":  # a stopped writer reads no more requests: a guard process will
        control.stop_guard, why = start_stop_guard(pid, control.poller.path, control.poller.uid, seq, target,
                                                   getattr(control.poller, "run", ""), getattr(control.poller, "since", None))
        sending += "; the next request (e.g. SIGCONT) is delivered by a stop guard" if why is None else (
            "; no stop guard (%s): only a SIGCONT sent from that host resumes it" % why)
    control.signal_ack = ack(seq, name, target, True, sending, wall())
    write_now()
    if name == "SIGKILL" and pid == 1:  # the kernel ignores it for a namespace's init: end as it asks
        os._exit(128 + _signal.SIGKILL)
    guard = getattr(control, "stop_guard", None)
    ok, result = deliver(name, target, pid, spare=(guard.pid,) if guard is not None else ())
    if pid == 1 and ok and name in ENDING and _signal.getsignal(getattr(_signal, name)) == _signal.SIG_DFL:
        # left to its default action, which the kernel does not take for a namespace's init: end as it asks
        os._exit(128 + getattr(_signal, name))
    control.signal_ack = ack(seq, name, target, ok, result, wall())
