"""Deleting an ended run's files: the progress file, its control file, its logs,
its metric history file and its ``run_dir``, never anything outside the progress folder and never while
the run's process is alive."""
from __future__ import annotations

import os
import stat
from typing import AbstractSet, List, Mapping, Optional, Sequence, Tuple

import psutil

from .. import fsafe
from .. import progress as P
from ..collect.owners import user_name
from ..collect.snapshot import RunSnapshot
from ..histfile import SUFFIX as HISTORY_SUFFIX
from .signals import process_alive, process_name, run_main_process, valid_pid, where_else


class DeletePlan:
    """What deleting a run's files would remove, and why it may not."""

    def __init__(self) -> None:
        self.files: List[str] = []  # paths of files (or links) to unlink, for display
        self.dirs: List[str] = []  # paths of folders to remove whole, for display
        self.skipped: List[str] = []  # reasons: paths left alone
        self.refusal: Optional[str] = None  # the whole delete is refused
        # the same, as names relative to the progress folder: what is acted on,
        # through descriptors (ttop.fsafe), never the paths above
        self.rel_files: List[str] = []
        self.rel_dirs: List[str] = []

    @property
    def paths(self) -> List[str]:
        return self.files + self.dirs


def _live_reason(run: RunSnapshot) -> Optional[str]:
    pid, ct = run_main_process(run)
    if not run.local:
        if run.status == P.RUNNING and not run.stale:
            return "run %s reports RUNNING %s; its process cannot be checked from here" % (
                run.key, where_else(run))
        if run.status == P.RUNNING and _paused_by_request(run):
            return "run %s %s was paused by a SIGSTOP request (its heartbeat stopped with it); " \
                   "resume or end it first (k); if it died paused, remove its files by hand" % (run.key, where_else(run))
        return None
    alive = process_alive(pid, ct)
    if pid is None or not valid_pid(pid):  # no process could have it (-1, beyond pid_t)
        return None
    if alive:
        return "run %s is live: process %d (%s) still runs" % (run.key, pid, process_name(pid) or "?")
    if alive is None and psutil.pid_exists(pid) and (
        run.reported_status == P.RUNNING or run.data.get("status") == P.RUNNING
    ):
        return "run %s reports RUNNING and process %d exists; without a create time it may be the run" % (run.key, pid)
    return None


def _paused_by_request(run: RunSnapshot) -> bool:
    """A run stopped through its control file: its last acknowledged request
    a SIGSTOP that was sent. Its heartbeat stopped with it, yet it lives (its
    stop guard resumes it at the next request)."""
    ack = run.data.get("signal_ack")
    return isinstance(ack, Mapping) and ack.get("name") == "SIGSTOP" and ack.get("ok") is True


def _owners(run: RunSnapshot, control: bool = False) -> Optional[AbstractSet[int]]:
    """Whose entries deleting ``run`` may remove: its owner's (None: owner
    unknown, no check). Its control file may also be ttop's own user's (the
    variable editor wrote it)."""
    if run.owner_uid is None:
        return None
    return frozenset((run.owner_uid, os.geteuid())) if control else frozenset((run.owner_uid,))


def _entry_in_folder(root: str, name: str) -> Optional[str]:
    """``name`` if that entry of the folder exists (a symlink counts as the
    entry itself, never its target)."""
    try:
        os.lstat(os.path.join(root, name))
    except OSError:
        return None
    return name


def _inside_rel(root: str, rel: object, keep_last: bool) -> Optional[str]:
    """``rel`` (from a progress file) as a normalised name relative to the
    folder, or None when it does not stay inside. Folders on the way are
    resolved (a link inside pointing inside is fine); with ``keep_last`` the
    last component is kept as written, so a link there is removed as a
    link, never its target."""
    real = P.resolve_inside(root, rel)
    if real is None:
        return None
    assert isinstance(rel, str)
    if not keep_last:
        return os.path.relpath(real, root)
    try:
        parent = os.path.realpath(os.path.dirname(os.path.join(root, rel)))
    except OSError:  # a link swapped for a folder while being resolved
        return None
    if parent != root and not parent.startswith(root + os.sep):
        return None
    base = os.path.basename(os.path.normpath(os.path.join(root, rel)))
    return os.path.normpath(os.path.join(os.path.relpath(parent, root), base))


def _history_rel(root: str, data: Mapping) -> Optional[str]:
    """The metric history file the progress file names (``history_file``),
    when it is a history file's name (``*.history.jsonl``) directly in the
    folder; else None."""
    rel = data.get("history_file")
    if not isinstance(rel, str) or not rel.endswith(HISTORY_SUFFIX) or os.sep in rel or "\0" in rel:
        return None
    name = _inside_rel(root, rel, keep_last=True)
    return name if name is not None and os.path.dirname(name) == "" else None


def _rank_files(root: str, stem: str) -> List[str]:
    """The rank files ``.<stem>.rank<k>.json`` of the folder (left behind,
    they would show as ranks of the next run of that name), sorted by rank."""
    head, tail = ".%s.rank" % stem, P.PROGRESS_SUFFIX
    try:
        names = os.listdir(root)
    except OSError:
        return []
    found = [n for n in names if n.startswith(head) and n.endswith(tail) and n[len(head):-len(tail)].isdigit()
             and n[len(head):-len(tail)].isascii()]
    return sorted(found, key=lambda n: int(n[len(head):-len(tail)]))


def _contains(outer: str, inner: str) -> bool:
    """Is the relative name ``inner`` ``outer`` itself or below it?"""
    return inner == outer or inner.startswith(outer + os.sep)


class _Claims:
    """What the other runs of the folder name: their files (by relative
    name) and their run folders, each with the run's key and whether it is
    live."""

    def __init__(self, root: str, me: str, others: Sequence[RunSnapshot]) -> None:
        self.files: List[Tuple[str, str, bool]] = []
        self.dirs: List[Tuple[str, str, bool]] = []
        for o in others:
            if o.key == me:
                continue
            live = o.alive is True or (o.status == P.RUNNING and not o.stale)
            stem = o.stem
            for name in (stem + P.PROGRESS_SUFFIX, P.CONTROL_PREFIX + stem + P.PROGRESS_SUFFIX, P.control_name(stem, o.data),
                         stem + HISTORY_SUFFIX, *P.log_paths(stem).values()):
                self.files.append((name, o.key, live))
            hist = _history_rel(root, o.data)
            if hist is not None:
                self.files.append((hist, o.key, live))
            logs = o.data.get("logs")
            if isinstance(logs, Mapping):
                for stream in ("stdout", "stderr"):
                    r = _inside_rel(root, logs.get(stream), keep_last=False)
                    if r is not None:
                        self.files.append((r, o.key, live))
            rd = o.data.get("run_dir")
            if rd is not None:
                r = _inside_rel(root, rd, keep_last=False)
                if r is not None:
                    self.dirs.append((r, o.key, live))

    def file_user(self, rel: str, real: Optional[str] = None) -> Optional[Tuple[str, bool]]:
        """Another run naming the file ``rel`` (or ``real``, where it leads),
        or whose run folder holds it."""
        for name, key, live in self.files:
            if name == rel or (real is not None and name == real):
                return key, live
        for d, key, live in self.dirs:
            if _contains(d, rel) or (real is not None and _contains(d, real)):
                return key, live
        return None

    def dir_user(self, rel: str) -> Optional[Tuple[str, bool]]:
        """Another run whose files or run folder lie in the folder ``rel``,
        or whose run folder holds it."""
        for d, key, live in self.dirs:
            if _contains(rel, d) or _contains(d, rel):
                return key, live
        for name, key, live in self.files:
            if _contains(rel, name):
                return key, live
        return None


def _shared(what: str, user: Tuple[str, bool]) -> str:
    key, live = user
    return "%s: shared with %srun %s, not touched" % (what, "live " if live else "", key)


def plan_delete(folder: str, run: RunSnapshot, others: Sequence[RunSnapshot] = ()) -> DeletePlan:
    """Work out which files deleting ``run`` removes (nothing is touched).

    The progress file, the control file, the default logs and the metric
    history file (``<key>.history.jsonl``) are the folder's
    own entries (a symlink among them is unlinked, its target untouched);
    ``logs`` entries, ``history_file`` (a ``*.history.jsonl`` name in the
    folder: the writer's other name when another user's file held the usual
    one) and ``run_dir`` from the file only when they resolve
    inside the folder (``run_dir`` must be a folder, not the progress folder
    itself). Refused outright while the run's process is alive (re-checked
    now: PID and create time).

    ``others``: the other runs of the folder (the snapshot's). A path one of
    them names too (its logs, its run folder, a file in it, a folder holding
    its files) is listed as "shared with run X, not touched" and left alone.
    """
    plan = DeletePlan()
    plan.refusal = _live_reason(run)
    root = os.path.realpath(folder)
    claims = _Claims(root, run.key, others)
    seen = set()

    def add_file(rel: Optional[str], real: Optional[str] = None, what: Optional[str] = None) -> None:
        if rel is None or rel in seen:
            return
        seen.add(rel)
        user = claims.file_user(rel, real)
        if user is not None:
            plan.skipped.append(_shared(what or rel, user))
            return
        plan.rel_files.append(rel)
        plan.files.append(os.path.join(root, rel))

    def not_owned(rel: str, what: str, control: bool = False) -> bool:
        """Is the entry another user's than the run's owner? (listed as left
        alone: ttop may act for a user who can remove what the run's author
        cannot, e.g. root in a sticky folder)."""
        owners = _owners(run, control)
        try:
            uid = os.lstat(os.path.join(root, rel)).st_uid
        except OSError:
            return False
        if owners is None or uid in owners:
            return False
        plan.skipped.append("%s: owned by %s, not by the run's owner %s: left alone" % (
            what, user_name(uid), user_name(run.owner_uid)))
        return True

    stem = run.stem  # the file's name in its folder (the key also has the folder's tag when several are watched)
    own = {stem + P.PROGRESS_SUFFIX, P.CONTROL_PREFIX + stem + P.PROGRESS_SUFFIX}
    add_file(_entry_in_folder(root, stem + P.PROGRESS_SUFFIX))
    for cname in dict.fromkeys((P.CONTROL_PREFIX + stem + P.PROGRESS_SUFFIX, P.control_name(stem, run.data))):  # (and its writer's own)
        control = _entry_in_folder(root, cname)
        if control is not None and not not_owned(control, control, control=True):
            add_file(control)
    for rel in [*P.log_paths(stem).values(), stem + HISTORY_SUFFIX]:  # logs, metric history
        entry = _entry_in_folder(root, rel)
        if entry is not None and not not_owned(entry, entry):
            add_file(entry)
    for entry in _rank_files(root, stem):  # a multi-rank job's hidden rank files (ttop.integrations._ranks)
        if not not_owned(entry, entry):
            add_file(entry)
    hist = _history_rel(root, run.data)  # another name, when another user's file held the usual one
    if hist is not None and os.path.lexists(os.path.join(root, hist)) and not not_owned(hist, hist):
        add_file(hist)
    data = run.data
    logs = data.get("logs")
    if isinstance(logs, Mapping):
        for stream in ("stdout", "stderr"):
            if stream not in logs:
                continue
            rel = logs[stream]
            shown = "%s log %s" % (stream, P._short_repr(rel, 80))
            name = _inside_rel(root, rel, keep_last=True)
            if name is None:
                plan.skipped.append("%s: not inside the progress folder, left alone" % shown)
                continue
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                plan.skipped.append("%s: a folder, left alone" % shown)
                continue
            base = os.path.basename(name)
            if os.path.dirname(name) == "" and base not in own and (
                P.is_progress_filename(base) or base.startswith(P.CONTROL_PREFIX)
            ):
                plan.skipped.append("%s: another run's file, left alone" % shown)
                continue
            if not not_owned(name, shown):
                add_file(name, _inside_rel(root, rel, keep_last=False), shown)
    rd = data.get("run_dir")
    if rd is not None:
        shown = "run_dir %s" % P._short_repr(rd, 80)
        name = _inside_rel(root, rd, keep_last=False)
        if name is None:
            plan.skipped.append("%s: not inside the progress folder, left alone" % shown)
        elif not os.path.isdir(os.path.join(root, name)):
            if os.path.lexists(os.path.join(root, name)):
                plan.skipped.append("%s: not a folder, left alone" % shown)
        else:
            user = claims.dir_user(name)
            if user is not None:
                plan.skipped.append(_shared(shown, user))
            elif not not_owned(name, shown):
                plan.rel_dirs.append(name)
                plan.dirs.append(os.path.join(root, name))
    return plan


def _written_since(dfd: int, run: RunSnapshot) -> bool:
    """Is the run's progress file not the one its snapshot was read from
    (written since: a new run of that name took it, and the liveness check
    of the old run's PID says nothing of the new one)?"""
    if not run.mtime or run.file_error is not None:  # no time known; or an unreadable file's last good one
        return False
    try:
        st = os.stat(run.stem + P.PROGRESS_SUFFIX, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return False  # gone: nothing of a new run to lose
    return st.st_mtime != run.mtime


def delete_run_files(folder: str, run: RunSnapshot, others: Sequence[RunSnapshot] = ()) -> Tuple[List[str], List[str]]:
    """Delete a run's files (see :func:`plan_delete`). Returns ``(deleted
    paths, refusals with reasons)``. Liveness is re-checked right now; a live
    run loses nothing.

    Everything is removed through descriptors (:mod:`ttop.fsafe`): the
    folder is opened once, each folder on the way below it is opened without
    following symbolic links, and the entry itself is unlinked (a link as a
    link) or its tree removed by a descriptor walk. A name that was swapped
    for a link after the plan is refused, never followed out of the folder."""
    plan = plan_delete(folder, run, others)
    if plan.refusal:
        return [], [plan.refusal]
    deleted: List[str] = []
    refused: List[str] = list(plan.skipped)
    try:
        dfd = fsafe.open_dir(folder)
    except OSError as e:
        return [], ["cannot open the progress folder: %s" % fsafe.describe(e)]
    if _written_since(dfd, run):
        os.close(dfd)
        return [], ["run %s: its progress file was written again since it was read (a new run of that name?); "
                    "nothing deleted" % run.key]
    def unlink(rel: str, shown: str) -> None:
        try:
            fsafe.unlink_beneath(dfd, rel, _owners(run, rel in controls))
            deleted.append(shown)
        except FileNotFoundError:
            pass
        except OSError as e:
            refused.append("%s: %s, left alone" % (shown, fsafe.describe(e)))

    # the progress file goes last: a delete cut short (ttop killed while a
    # big run folder goes) leaves the run listed, to be deleted again, not
    # its logs and checkpoints with no run in ttop to delete them from
    progress = run.stem + P.PROGRESS_SUFFIX
    try:
        controls = (P.CONTROL_PREFIX + run.stem + P.PROGRESS_SUFFIX, P.control_name(run.stem, run.data))
        for rel, shown in zip(plan.rel_files, plan.files):
            if rel != progress:
                unlink(rel, shown)
        for rel, shown in zip(plan.rel_dirs, plan.dirs):
            errors: List[str] = []
            try:
                fsafe.rmtree_beneath(dfd, rel, errors, _owners(run))
            except FileNotFoundError:
                continue
            except OSError as e:
                refused.append("%s: %s, left alone" % (shown, fsafe.describe(e)))
                continue
            if errors:
                refused.extend(errors[:5])
            else:
                deleted.append(shown)
        for rel, shown in zip(plan.rel_files, plan.files):
            if rel == progress:
                if _written_since(dfd, run):  # a new run took the name while the rest went (a big run folder)
                    refused.append("%s: written again since it was read (a new run of that name?), left alone" % shown)
                else:
                    unlink(rel, shown)
    finally:
        os.close(dfd)
    return deleted, refused
