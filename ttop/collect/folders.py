"""Several progress folders watched at once (``ttop DIR1 DIR2 ...``).

Each folder has its own :class:`~ttop.collect.scan.FolderScanner`;
:class:`MultiScanner` merges their results into one
:class:`~ttop.collect.scan.ScanResult`. A file's ``name`` and ``key`` are
prefixed with its folder's *tag* (``TAG/NAME``: a slash never occurs in a
file name, so two runs of the same name in different folders stay two runs),
its ``path`` stays the real one. Levers act in the folder of the run's
``path`` (:attr:`~ttop.collect.snapshot.RunSnapshot.folder`).

A folder that is missing or unreadable is reported (:attr:`MultiScanner.errors`,
one line each) while the others go on; the merged result has a
``folder_error`` only when no folder can be read.
"""
from __future__ import annotations

import glob
import os
import stat
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..record import replace
from .scan import FileResult, FolderScanner, ScanResult

GLOB_CHARS = "*?["


def folder_tags(folders: Sequence[str]) -> List[str]:
    """Short, unique labels of absolute ``folders``: what tells them apart
    once the path components all share at the start and at the end are
    dropped (``/scratch/a/progress``, ``/scratch/b/progress``: ``a``, ``b``);
    the whole path (slashes as ``_``) where that leaves nothing or is not
    unique, with ``#N`` where even that is not (:func:`_unique`)."""
    parts = [[p for p in f.split(os.sep) if p] for f in folders]
    if len(parts) < 2:
        return [os.path.basename(f.rstrip(os.sep)) or f for f in folders]
    shortest = min(len(p) for p in parts)
    head = 0
    while head < shortest and len({p[head] for p in parts}) == 1:
        head += 1
    tail = 0
    while tail < shortest - head and len({p[-1 - tail] for p in parts}) == 1:
        tail += 1
    # a tag is one key component: no slash in it (and unique once the
    # slashes are gone: a/b and a_b would both be a_b)
    tags = [os.sep.join(p[head:len(p) - tail]).replace(os.sep, "_") for p in parts]
    if any(not t for t in tags) or len(set(tags)) != len(tags):
        tags = [f.replace(os.sep, "_") for f in folders]
    return _unique(tags)


def _unique(tags: List[str]) -> List[str]:
    """``tags`` with each one that more than one folder has (``/x/a_b`` and
    ``/x/a/b`` are both ``_x_a_b``) made unique by its position: ``#2``."""
    taken = set(tags)
    out = []
    for i, t in enumerate(tags):
        if tags.count(t) > 1:
            n = "%s#%d" % (t, i + 1)
            while n in taken:
                n += "#"
            taken.add(n)
            t = n
        out.append(t)
    return out


def foreign_link(path: str) -> Optional[str]:
    """Why a folder a glob matched is not watched, or None: a symbolic link
    on its path made by another user (not root, not the folder's owner)
    to a folder that user cannot read themselves. Whoever can write
    ``/scratch`` names what ``/scratch/*/progress`` matches; a link there
    to a folder only root or a third user can read must not bring its runs
    to the screen, the ``--serve`` page or the CSV files (as for a link
    under a progress file's name, docs/security.md)."""
    from .owners import may_read, user_name

    try:
        st = os.stat(path)
    except OSError:
        return None  # said later, by the caller's check
    for lst in _path_links(path):
        if lst is None:
            return None
        if lst.st_uid not in (0, st.st_uid) and not may_read(lst.st_uid, path, st):
            return "%s: symbolic link by %s to a folder %s cannot read: not watched" % (
                path, user_name(lst.st_uid), user_name(lst.st_uid))
    return None


def _path_links(path: str) -> Iterator[Optional[os.stat_result]]:
    """The ``lstat`` of each symbolic link among ``path``'s components, in
    order; None, and the end, at a component that cannot be read."""
    cur = os.sep
    for comp in path.split(os.sep):
        if not comp:
            continue
        cur = os.path.join(cur, comp)
        try:
            lst = os.lstat(cur)
        except OSError:
            yield None
            return
        if stat.S_ISLNK(lst.st_mode):
            yield lst


def _strangers_link(path: str, st: os.stat_result) -> bool:
    """Whether ``path`` goes through a symbolic link made by someone other
    than root, ttop's user and the folder's owner (``st``)."""
    return any(lst is None or lst.st_uid not in (0, os.geteuid(), st.st_uid) for lst in _path_links(path))


def expand_folders(args: Sequence[str], notes: Optional[List[str]] = None) -> Tuple[List[str], List[str]]:
    """The folders named by ``args`` (globs expanded here when the shell did
    not, e.g. quoted: only folders they match), absolute, without
    duplicates, in the order given; and one line per argument that names no
    folder (a glob matching none). A folder named twice under two spellings
    (a symbolic link, ``..``) is the same device and inode: it is kept once,
    under its first spelling (one not through another user's symbolic link,
    if there is one: they could point it elsewhere later), and a line saying
    so is appended to ``notes``."""
    out: List[str] = []
    problems: List[str] = []
    seen = set()
    first: Dict[Tuple[int, int], str] = {}
    for arg in args:
        if any(c in arg for c in GLOB_CHARS) and not os.path.exists(arg):
            matches = [m for m in sorted(glob.glob(arg)) if os.path.isdir(m)]
            if not matches:
                problems.append("no folder matches %s" % arg)
                continue
            for m in list(matches):
                why = foreign_link(os.path.abspath(m))
                if why is not None:
                    matches.remove(m)
                    problems.append(why)
        else:
            matches = [arg]
        for m in matches:
            a = os.path.abspath(m)
            if a in seen:
                continue
            seen.add(a)
            try:
                st = os.stat(a)
            except OSError:
                st = None  # missing or unreadable: said later, by the caller's check
            if st is not None:
                same = first.setdefault((st.st_dev, st.st_ino), a)
                if same != a:
                    if _strangers_link(same, st) and not _strangers_link(a, st):
                        # another user's link must not name it: they could point it elsewhere later
                        out[out.index(same)] = first[(st.st_dev, st.st_ino)] = a
                        a, same = same, a
                    if notes is not None:
                        notes.append("%s is the same folder as %s; watching it once" % (a, same))
                    continue
            out.append(a)
    return out, problems


class MultiScanner:
    """Scans several folders as one; see the module docstring. ``kwargs``
    go to each :class:`~ttop.collect.scan.FolderScanner`."""

    def __init__(self, folders: Sequence[str], **kwargs) -> None:
        self.folders = [os.path.abspath(f) for f in folders]
        self.tags = folder_tags(self.folders)
        self.scanners = [FolderScanner(f, **kwargs) for f in self.folders]
        #: ``(folder, reason)`` for each folder unreadable in the last scan
        self.errors: List[Tuple[str, str]] = []
        # tagged copies of active files, reused while the scanner hands back
        # the same FileResult (the collector's per-file caches key on them)
        self._tagged: Dict[str, Tuple[FileResult, FileResult]] = {}

    @property
    def notifying(self) -> bool:
        return all(s.notifying for s in self.scanners)

    @property
    def total_reads(self) -> int:
        return sum(s.total_reads for s in self.scanners)

    def close(self) -> None:
        for s in self.scanners:
            s.close()

    def _tag(self, prefix: str, fr: FileResult, cache: Optional[Dict[str, Tuple[FileResult, FileResult]]]) -> FileResult:
        name = prefix + fr.name
        if cache is not None:
            old = self._tagged.get(name)
            if old is not None and old[0] is fr:
                cache[name] = old
                return old[1]
        tagged = replace(fr, name=name, key=prefix + fr.key)
        if cache is not None:
            cache[name] = (fr, tagged)
        return tagged

    def scan(self, budget: Optional[float] = None) -> ScanResult:
        out = ScanResult([])
        errors: List[Tuple[str, str]] = []
        cache: Dict[str, Tuple[FileResult, FileResult]] = {}
        deadline = None if budget is None else time.monotonic() + budget
        for folder, tag, scanner in zip(self.folders, self.tags, self.scanners):
            b = None if deadline is None or budget is None else max(deadline - time.monotonic(), budget / len(self.scanners))
            r = scanner.scan(b)
            prefix = tag + "/"
            if r.folder_error:
                errors.append((folder, r.folder_error))
            out.files.extend(self._tag(prefix, fr, cache) for fr in r.files)
            out.ended.extend(self._tag(prefix, fr, None) for fr in r.ended)
            out.gone.extend(prefix + n for n in r.gone)
            out.reads += r.reads
            out.indexed += r.indexed
            out.pending += r.pending
            out.total += r.total
        self._tagged = cache
        self.errors = errors
        if len(errors) == len(self.scanners):
            out.folder_error = "; ".join(reason for _, reason in errors)
        return out
