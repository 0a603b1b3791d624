"""Deleting an ended run's files: the progress file, its control file, its logs,
its metric history file and its ``run_dir``, never anything outside the progress folder and never while
the run's process is alive."""
from __future__ import annotations

import os
import shutil
import stat
import sys
from typing import List, Mapping, Optional, Tuple

import psutil

from .. import progress as P
from ..collect.snapshot import RunSnapshot
from .signals import process_alive, process_name, run_main_process, where_else


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


def _live_reason(run: RunSnapshot) -> Optional[str]:
    pid, ct = run_main_process(run)
    if not run.local:
        if run.status == P.RUNNING and not run.stale:
            return "run %s reports RUNNING %s; its process cannot be checked from here" % (
                run.key, where_else(run))
        return None
    alive = process_alive(pid, ct)
    if pid is None:
        return None
    if alive:
        return "run %s is live: process %d (%s) still runs" % (run.key, pid, process_name(pid) or "?")
    if alive is None and psutil.pid_exists(pid) and (
        run.reported_status == P.RUNNING or run.data.get("status") == P.RUNNING
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


def plan_delete(folder: str, run: RunSnapshot) -> DeletePlan:
    """Work out which files deleting ``run`` removes (nothing is touched).

    The progress file, the control file, the default logs and the metric
    history file (``<key>.history.jsonl``) are the folder's
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
    add_file(_entry_in_folder(root, run.key + ".history.jsonl"))  # the metric history file
    data = run.data
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


def delete_run_files(folder: str, run: RunSnapshot) -> Tuple[List[str], List[str]]:
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
