"""``--once``'s rows of ended runs, kept across starts.

A run that ended and whose process is gone never changes while its file does
not: ``--once`` keeps what it printed for it (its cells in every column,
:func:`ttop.view.oncetable.kept_keys`, the line they made in the last
layout, and what the header and the choice of columns read of it) in the
user's own cache folder, an index of the same kind and checks as the
archive index (:class:`~ttop.collect.archive.ArchiveIndex`; file
``once-<digest>.idx``, or ``once-ascii-`` for ASCII output). The next
``--once`` of that folder lists it, and each file whose ``lstat`` shows the
very file kept (a regular file; inode, size, modification time in ns and
owner) is neither read nor judged again: its kept row stands in
(:class:`~ttop.view.oncetable.KeptRun`). Every other file is collected as
usual, and the runs among them that ended for good are kept for next time.

The kept rows are only used by the same version of ttop (the same source
files), on the same host name, with the same ``--health`` thresholds and
prices; a damaged, foreign or otherwise unusable file is ignored (the runs
are then collected as usual), as is switching it off with
``TTOP_ARCHIVE_INDEX=0``.
"""
from __future__ import annotations

import bisect
import itertools
import marshal
import os
import stat
import time
import zlib
from typing import Any, Dict, List, Optional, Set, Tuple

from .._version import __version__
from ..collect.archive import ArchiveIndex, index_wanted
from ..collect.host import hostname
from ..progress import END_STATUSES, run_key
from ..record import replace
from ..view.metrics import _metrics_of
from ..view.oncetable import Cell, KeptRun, RowCells, RunCells, kept_keys

#: The layout of the kept rows (change it with what they hold).
FORMAT = 1
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
#: (inode, size, mtime_ns, uid)
Signature = Tuple[int, int, int, int]


class CacheUnusable(Exception):
    """A kept row turned out unusable while printing (nothing was printed
    yet): print again without the kept rows."""


def code_stamp() -> Tuple[Any, ...]:
    """The version and the source files (names, sizes, modification times)
    that make a row: any change to them makes the kept rows unusable."""
    base = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out: List[Any] = [__version__]
    for sub in ("", "view", "collect", "sinks"):
        try:
            with os.scandir(os.path.join(base, sub)) as it:
                files = sorted((e.name, e.stat()) for e in it if e.name.endswith(".py"))
        except OSError:
            continue
        out.extend((sub, name, st.st_size, st.st_mtime_ns) for name, st in files)
    return tuple(out)


_STR: Set[type] = {str}
_OPT_STR: Set[type] = {str, type(None)}
_OPT_NUM: Set[type] = {int, float, type(None)}
#: per field of the facts (see KeptRun), the types it may have
_FIELDS: Tuple[Set[type], ...] = (_STR, _STR, _STR, _OPT_STR, {bool}, _OPT_STR, _OPT_NUM, _OPT_NUM, {tuple}, {tuple},
                                  {int}, {tuple, type(None)})


def _entries_ok(entries: Dict[Any, Any]) -> bool:
    """Every loaded entry ``name: (inode, size, mtime_ns, uid, facts,
    offset, length)`` of the right shape (checked column by column)."""
    if not entries:
        return True
    values = list(entries.values())
    if ({type(k) for k in entries} != _STR or {type(e) for e in values} != {tuple}
            or set(map(len, values)) != {7}):
        return False
    cols = list(zip(*values))
    if any(set(map(type, cols[i])) != {int} for i in (0, 1, 2, 3, 5, 6)):
        return False
    return _facts_ok(list(cols[4]))


def _facts_ok(facts: List[Any]) -> bool:
    """Every one of ``facts`` (see :class:`~ttop.view.oncetable.KeptRun`)
    of the right shape, checked field by field over all of them at once."""
    chain = itertools.chain.from_iterable
    if not facts:
        return True
    if {type(f) for f in facts} != {tuple} or set(map(len, facts)) != {12}:
        return False
    cols = list(zip(*facts))
    if any(not set(map(type, col)) <= ok for col, ok in zip(cols, _FIELDS)):
        return False
    if not set(cols[2]) <= set(END_STATUSES) or not set(map(type, chain(cols[8]))) <= _STR:
        return False
    if set(map(len, cols[9])) != {3} or not set(map(type, chain(cols[9]))) <= {int}:
        return False
    segs = list(chain(line for line in cols[11] if line is not None))
    return (not segs or (set(map(type, segs)) == {tuple} and set(map(len, segs)) == {2}
                         and set(map(type, chain(segs))) == _STR))


def _cells(blob: Any, crc: int) -> Dict[str, Cell]:
    try:
        if zlib.crc32(blob) != crc:
            raise ValueError("damaged")
        cells = marshal.loads(blob)
    except Exception:
        raise CacheUnusable("damaged cells") from None
    if type(cells) is not dict or not all(
            type(k) is str and type(v) is tuple and len(v) == 2 and type(v[0]) is str
            and (v[1] is None or type(v[1]) is str) for k, v in cells.items()):
        raise CacheUnusable("damaged cells")
    return cells


class OnceCache:
    """The kept rows of one folder for one ``--once`` (see the module
    docstring): :meth:`skip` for the collector, :meth:`merge` of its
    snapshot with the kept runs, :meth:`cells_of` for the table, then
    :meth:`save`."""

    def __init__(self, folder: str, ascii: bool, settings: Any = None) -> None:
        self.folder = os.path.abspath(folder)
        self.ascii = ascii
        self.index: Optional[ArchiveIndex] = None
        #: name -> (inode, size, mtime_ns, uid, facts, offset, length), as loaded
        self._kept: Dict[str, Tuple[Any, ...]] = {}
        self._layout: Any = None
        self._skipped: Set[str] = set()
        self._rows: Dict[str, RowCells] = {}  # the kept rows shown, by file name
        self._settle: Dict[str, Tuple[str, Signature]] = {}  # run key -> (file name, signature): to keep
        self._new: Dict[str, Tuple[Signature, Any, RunCells]] = {}
        self._listed = False
        try:
            dfd = os.open(self.folder, _DIR_FLAGS)
        except OSError:
            return  # the collector says why
        try:
            st = os.fstat(dfd)
        finally:
            os.close(dfd)
        # the settings (records of thresholds and prices) as their repr: the
        # key is saved with marshal, which takes none of them
        self.index = ArchiveIndex(self.folder, st.st_dev, st.st_ino, kind="once-ascii" if ascii else "once",
                                  extra=(FORMAT, code_stamp(), hostname(), repr(settings)))
        loaded = self.index.load()
        if _entries_ok(loaded):  # else none is used
            self._kept = loaded
        self._layout = self.index.meta

    def forget(self) -> None:
        """Use none of the kept rows (one turned out unusable): the next
        collection reads every file, and :meth:`save` then keeps its rows
        in place of the unusable ones."""
        self._kept = {}
        self._skipped = set()
        self._rows = {}
        self._settle = {}
        self._new = {}
        self._listed = False

    @classmethod
    def wanted(cls, folders: Any) -> bool:
        """Kept rows for one folder, unless ``TTOP_ARCHIVE_INDEX=0``."""
        return len(folders) == 1 and index_wanted()

    def skip(self, dfd: int, names: Set[str]) -> Set[str]:
        """Of the folder's ``names``, those whose kept row stands (``lstat``
        relative to the folder's descriptor ``dfd``): the collector leaves
        them out."""
        self._listed = True
        out = set()
        kept = self._kept
        lstat = os.lstat
        isreg = stat.S_ISREG
        for name in names & kept.keys():
            try:
                st = lstat(name, dir_fd=dfd)
            except OSError:
                continue
            e = kept[name]
            if (st.st_ino == e[0] and st.st_size == e[1] and st.st_mtime_ns == e[2] and st.st_uid == e[3]
                    and isreg(st.st_mode)):
                out.add(name)
        self._skipped |= out
        return out

    def merge(self, snapshot: Any, collector: Any) -> Any:
        """``snapshot`` with a :class:`KeptRun` for each file left out, in
        file-name order; notes which of its runs to keep."""
        for name, sig, run in collector.settled():
            if (sig is not None and run.owner_uid is not None and not run.ranks and run.status in END_STATUSES
                    and not run.stale and run.file_error is None):
                self._settle[run.key] = (name, (sig[0], sig[1], sig[2], run.owner_uid))
        if not self._skipped:
            return snapshot
        kept = self._kept
        layout = self._layout
        load = self._load
        names = sorted(self._skipped)
        runs: List[Any] = []
        for name in names:
            e = kept[name]
            runs.append(KeptRun(run_key(name), name, e[4], layout, e, load))
        self._rows = dict(zip(names, runs))
        # the collector's runs in their places (file-name order, as the collector's own)
        for run in sorted(snapshot.runs, key=lambda r: os.path.basename(r.path), reverse=True):
            i = bisect.bisect_left(names, os.path.basename(run.path))
            runs.insert(i, run)
        return replace(snapshot, runs=tuple(runs))

    def _load(self, e: Any) -> Dict[str, Cell]:
        blob = self.index.blob(e) if self.index is not None else None
        if blob is None:
            raise CacheUnusable("cells unavailable")
        return _cells(blob, e[4][10])

    def cells_of(self, run: Any) -> RowCells:
        """A run row's cells for the table (see :func:`~ttop.view.oncetable.table_lines`)."""
        if type(run) is KeptRun:
            return run
        rc = RunCells(run, self.ascii)
        settle = self._settle.get(run.key)
        if settle is not None:  # its other cells are worked out when it is kept, after printing
            self._new[settle[0]] = (settle[1], run, rc)
        return rc

    def save(self) -> bool:
        """Keep the rows for the next ``--once`` when any changed (new or
        gone runs, another layout). False: nothing written."""
        if self.index is None or not self._listed:
            return False
        layout = None
        for rc in list(self._rows.values()) + [n[2] for n in self._new.values()]:
            layout = rc.line_key
            break
        same = (not self._new and len(self._skipped) == len(self._kept)
                and all(rc.line_key == self._layout and rc.line is not None for rc in self._rows.values()))
        if same:
            return False
        entries: Dict[str, Tuple[Any, ...]] = {}
        for name, rc in self._rows.items():
            e = self._kept[name]
            blob = self.index.blob(e)
            if blob is not None:
                entries[name] = e[:4] + (e[4][:11] + (rc.line if rc.line_key == layout else None,), blob)
        new = {}
        for name, (sig, run, rc) in self._new.items():
            rc.fill(kept_keys(run))
            names = tuple(n for n in _metrics_of(run) if isinstance(n, str) and n)
            packed = marshal.dumps(rc.cells)
            f = (rc.name, rc.role, run.status, run.host, bool(run.local), run.health, run.cost, run.cost_projected,
                 names, tuple(rc.widths), zlib.crc32(packed), rc.line if rc.line_key == layout else None)
            new[name] = sig + (f, packed)
        if _facts_ok([e[4] for e in new.values()]):  # (else a bug: nothing new is kept)
            entries.update(new)
        return self.index.save(entries, time.time(), meta=layout)
