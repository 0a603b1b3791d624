"""Run names in use: a name whose progress file belongs to a live run is
not taken over by a second run."""
from __future__ import annotations

import json
import os
import stat
from typing import Any, Callable, Optional, Tuple

from .. import fsafe
from ..progress import MAX_PROGRESS_BYTES, RUNNING, sanitize_run_name

#: Two create times closer than this are the same process (psutil counts in
#: clock ticks of 10 ms; a reused PID's process starts at least one later).
CREATE_TIME_TOLERANCE = 0.05
#: ``name_conflict="suffix"`` tries ``name-2`` ... ``name-<this>``.
MAX_SUFFIX = 1000
#: The longest a run's start waits for other starts in its folder (see
#: :func:`claiming`): a folder another user keeps locked delays a start by
#: this much, never more.
CLAIM_WAIT = 5.0


def claiming(folder: str) -> Any:
    """An exclusive ``flock`` on the folder while a run checks that its name
    is free and writes its first progress file: runs of one name started at
    the same moment (a job array) each saw the name free and took it, both
    writing one file. Without the lock (a file system without ``flock`` on
    folders, or one held past :data:`CLAIM_WAIT`) the start goes on unlocked
    (:func:`ttop.fsafe.folder_lock`)."""
    return fsafe.folder_lock(folder, CLAIM_WAIT)


class RunNameInUseError(RuntimeError):
    """The run name is in use by a live run (``pid``) on this host."""

    def __init__(self, run_name: str, pid: Optional[int], path: str, owner: Optional[int] = None) -> None:
        self.run_name = run_name
        self.pid = pid
        self.path = path
        #: the uid owning the progress file when it is another user's
        self.owner = owner
        if owner is not None:
            held = "taken: %s belongs to %s, another user (their run's record, which this run may not replace)" % (
                path, _user(owner))
        elif pid == os.getpid():  # not another process to look for (a notebook's kernel)
            held = ("in use by another TrainingMonitor of this process (PID %d, %s) that has not ended "
                    "(set_finished(), set_failed() or set_canceled() ends it; a notebook cell interrupted "
                    "outside a `with` block leaves its run going)" % (pid, path))
        else:
            held = "in use by a live run (PID %d on this host, %s)" % (pid or 0, path)
        super().__init__(
            "ttop: run name %r is %s; give another run_name, "
            "or pass name_conflict=\"suffix\" to pick a free one (%s-2, ...)" % (run_name, held, run_name)
        )


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return "uid %d" % uid


def _read_progress(path: str) -> Optional[dict]:
    """The JSON object at ``path`` (not following a symlink, not blocking
    on a FIFO), or None if there is none that can be read."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            raw = f.read(MAX_PROGRESS_BYTES + 1)
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def foreign_owner(path: str) -> Optional[int]:
    """The uid owning the entry at ``path`` when it is another user's than
    this process's (effective uid), else None (none there, or ours)."""
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return None
    return uid if uid != os.geteuid() else None


def _alive(pid: int, create_time: Optional[float]) -> bool:
    """Is ``pid`` a running process that started at ``create_time`` (when
    known)?"""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        p = psutil.Process(pid)
        if p.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        if create_time is not None and abs(p.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return False  # the PID was reused
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # cannot tell: count it as alive
    return True


def live_run_pid(path: str, host: Optional[str], namespace: Optional[str], own_pid: int) -> Optional[int]:
    """The PID of the live run writing ``path``, or None.

    A run is live when its file says RUNNING, names this host and PID
    namespace, and its PID (with its create time, when the file has one) is
    a running process. Runs of this process (``own_pid``) are left to the
    caller, who knows its own monitors."""
    data = _read_progress(path)
    if data is None or data.get("status") != RUNNING:
        return None
    if data.get("host") != host or data.get("pid_namespace") != namespace:
        return None
    pid = data.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == own_pid:
        return None
    ct = data.get("pid_create_time")
    ct = float(ct) if isinstance(ct, (int, float)) and not isinstance(ct, bool) else None
    return pid if _alive(pid, ct) else None


def suffixed(name: str, i: int) -> str:
    """``name-i``, shortening ``name`` when the sanitised result would
    otherwise lose the suffix (names are capped in length)."""
    suffix = "-%d" % i
    base = name
    while True:
        cand = sanitize_run_name(base + suffix)
        if cand.endswith(suffix) or not base:
            return cand
        base = base[:-1]


#: What holds a name: ``(live PID or None, uid of another user owning the file or None)``.
Holder = Tuple[Optional[int], Optional[int]]


def name_holder(path: str, host: Optional[str], namespace: Optional[str], own_pid: int) -> Optional[Holder]:
    """What holds the run name of ``path``, or None when it is free: a
    progress file of another user (it is their run's record, and in a
    sticky folder it cannot be replaced), whatever it says; else a live
    run (:func:`live_run_pid`)."""
    owner = foreign_owner(path)
    if owner is not None:
        return None, owner
    pid = live_run_pid(path, host, namespace, own_pid)
    return None if pid is None else (pid, None)


def pick_free_name(name: str, in_use: Callable[[str], Optional[Holder]]) -> Optional[str]:
    """The first of ``name-2``, ``name-3``, ... that nothing holds
    (``in_use(name)``: see :func:`name_holder`)."""
    for i in range(2, MAX_SUFFIX + 1):
        cand = suffixed(name, i)
        if in_use(cand) is None:
            return cand
    return None


def claim_name(name: str, path: str, in_use: Callable[[str], Optional[Holder]], suffix: bool) -> str:
    """``name`` if nothing holds it; else, with ``suffix``, the first free
    ``name-N``; else raise :class:`RunNameInUseError`."""
    held = in_use(name)
    if held is None:
        return name
    if suffix:
        free = pick_free_name(name, in_use)
        if free is not None:
            return free
    raise RunNameInUseError(name, held[0], path, held[1])
