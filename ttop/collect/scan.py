"""Folder scan of progress files: a stat cache, change notification, and
an archive of ended runs that is not re-read.

Per file the scan yields a :class:`FileResult`: either good data or an error
reason; for a file that turned bad the last good data (and its mtime) is kept
so the run stays on screen, marked stale by the collector. Only progress files
(:func:`ttop.progress.is_progress_filename`) are ever read: control files,
temp files of atomic writes and logs are not.

**Active and ended files.** A file whose good contents say the run ended
(``FINISHED``, ``FAILED``, ``CANCELED``, ``KILLED``) is *ended*: it is handed
to the collector once (:attr:`ScanResult.ended`) and then neither stat'ed nor
read every cycle. Every other file (running, unreadable, just written) is
*active*: stat'ed every cycle and re-read when its signature (inode, size,
mtime in ns) changes. An ended file whose data is kept for long
(``compact=True``) keeps only its bytes, compressed, parsed again on demand
(:class:`ArchivedData`): a folder of 50,000 ended runs then holds tens of MB,
not GB.

**Noticing changes.** Where the kernel offers it (Linux inotify, through
ctypes on libc) the folder is watched: a file written, replaced, created or
removed on this machine is looked at on the next cycle, ended or not. A
slower sweep covers what notification misses (files written by another
machine on a network folder, notification unavailable or switched off with
``TTOP_NOTIFY=0``): every :data:`SWEEP_SECONDS` the folder is listed again and
each ended file stat'ed once, spread over the cycles. Without notification
the folder is listed every cycle (new files show at once); changed ended
files within a sweep.

**Racy files.** A file whose mtime was within :data:`RACY_SECONDS` (a stamp in
whole seconds: 2 s more) of the moment it was read may have been rewritten in
the same timestamp tick without changing size; it is read again on the next
cycles (git's "racily clean" rule). After that it is trusted.

**First read.** ``scan(budget=seconds)`` reads files newest first and stops
after the budget (never before :data:`MIN_READS` files): the collector's
thread publishes what it has, live runs first, while the rest of a large
folder is still being read (:attr:`ScanResult.pending`).

**The archive index** (:class:`~ttop.collect.archive.ArchiveIndex`, in the
user's cache folder; off with ``index=False`` or ``TTOP_ARCHIVE_INDEX=0``)
lets a new scanner skip reading ended files it saw before: the first listing
queues the names the index knows after the others without a ``stat``, and
the first budgeted scan stops at them, so the files the index does not know
(the live runs) are published first (an indexed name that change
notification reports written is looked at at once); an indexed file is then
taken from the index after an ``lstat`` shows it is still that regular file
(inode, size, mtime, owner), and read as usual otherwise. The index is written when the whole folder has
been seen and its ended files changed, at most every
:data:`~ttop.collect.archive.SAVE_SECONDS`, and on :meth:`FolderScanner.close`
(not by a scan that left names to ``skip``: it would lose their entries).
"""
from __future__ import annotations

import bisect
import os
import stat
import time
from _operator import attrgetter  # (the C module under operator: its Python half is not imported at start)

from ..progress import (
    CONTROL_PREFIX,
    END_STATUSES,
    MAX_PROGRESS_BYTES,
    PROGRESS_SUFFIX,
    ProgressError,
    is_progress_filename,
    run_key,
)
from .archive import (
    PARSED_CACHE,
    SAVE_SECONDS,
    ArchivedData,
    ArchiveIndex,
    entry_usable,
    index_wanted,
    pack,
    unpack,
)
from .fileresult import FileResult, ScanResult, new_result
from .notify import FolderWatch, notify_wanted
from .owners import link_owner, may_read, user_name
from .readfile import coarse_seconds, os_error_reason, read_progress_at, read_progress_bytes, read_progress_file
from .scanread import parse_file, read_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

    from .archive import Entry

    Signature = Tuple[int, int, int]  # (st_ino, st_size, st_mtime_ns)

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)

#: A file modified this close to the moment it was read is read again once.
RACY_SECONDS = 0.05
_RACY_COARSE = RACY_SECONDS + coarse_seconds(0)  # a stamp in whole seconds
#: Every ended file is stat'ed at least this often (spread over the cycles).
SWEEP_SECONDS = 120.0
#: With change notification on a network or FUSE file system (where writes
#: from other machines raise no event) the folder is listed again this often;
#: without notification every cycle.
LIST_SECONDS = 10.0
#: With change notification on a local file system every change raises an
#: event; the sweep stays, much slower, as a safety net.
LOCAL_SWEEP_SECONDS = 600.0
#: The first look at a folder (a budgeted scan) reads only the files written
#: within this many seconds: the live runs; the rest follow in later scans.
RECENT_SECONDS = 60.0
#: A budgeted scan reads at least this many pending files ...
MIN_READS = 100
#: ... and at most this many per second of budget (files known from the
#: archive index cost little to read, but each is a run for the collector).
READS_PER_SECOND = 2000

__all__ = ["PARSED_CACHE", "ArchivedData", "FileResult", "FolderScanner", "ScanResult", "os_error_reason",
           "read_progress_bytes", "read_progress_file"]


# ---------------------------------------------------------------------------
# the scan


class _Cached:
    __slots__ = ("sig", "trusted", "result")

    def __init__(self, sig: Signature, trusted: bool, result: Optional[FileResult]) -> None:
        self.sig = sig
        self.trusted = trusted  # False: modified in the tick it was read; read once more
        self.result = result  # reused as is while the file is unchanged; None: ended (archived)


class FolderScanner:
    """Scans one folder; see the module docstring.

    ``reader(path, limit) -> bytes`` is the function used to read a file (the
    tests count calls to it to prove the cache works). ``notify``: None uses
    change notification where it works (unless ``TTOP_NOTIFY=0``), False
    never. ``compact``: keep ended files' data as :class:`ArchivedData`.
    ``monotonic``: the clock of sweeps.
    """

    def __init__(
        self,
        folder: str,
        max_bytes: int = MAX_PROGRESS_BYTES,
        reader: Callable[[str, int], bytes] = read_progress_bytes,
        clock: Callable[[], float] = time.time,
        *,
        notify: Optional[bool] = None,
        compact: bool = True,
        sweep_seconds: float = SWEEP_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        index: Optional[bool] = None,
        skip: Optional[Callable[[int, Set[str]], Set[str]]] = None,
    ) -> None:
        self.folder = os.path.abspath(folder)
        self._prefix = self.folder + os.sep  # a file's path: this and its name
        self.max_bytes = max_bytes
        self.reader = reader
        self.clock = clock
        self.compact = compact
        self.sweep_seconds = float(sweep_seconds)
        self.monotonic = monotonic
        self._want_notify = notify_wanted() if notify is None else bool(notify)
        self._watch: Optional[FolderWatch] = None
        self._cache: Dict[str, _Cached] = {}
        #: a file's last good contents: its active FileResult (no tuple made per
        #: read), or ``(data, dropped, mtime)`` for an ended one (the data kept compact)
        self._last_good: Dict[str, Any] = {}
        self._names: Set[str] = set()  # progress files in the folder, as last known
        self._others: Set[str] = set()  # other names in it (logs, control files, ...)
        self._active: Set[str] = set()  # read, not ended: stat'ed every cycle
        self._ended: Set[str] = set()  # read, ended: stat'ed by the sweep
        self._pending: List[str] = []  # listed, not read yet: newest last
        self._listed_at: Optional[float] = None
        self._sweep: List[str] = []
        self._sweep_credit = 0.0
        self._sweep_rate = 0.0  # ended files to stat per second
        self._swept_at: Optional[float] = None
        self.total_reads = 0
        self._scans = 0  # calls of scan (ScanResult.hidden)
        self._want_index = index_wanted() if index is None else bool(index)
        self._index: Optional[ArchiveIndex] = None
        self._idx: Dict[str, Tuple[Any, ...]] = {}  # loaded from the index, not looked at yet
        self._entries: Dict[str, Entry] = {}  # ended files as they will be saved
        self._dirty = False
        self._saved_at: Optional[float] = None
        self.total_indexed = 0
        self._recent: Optional[int] = None  # of the first listing's files, those written lately
        #: ``skip(dir_fd, names)``: of newly listed names, those the caller has (not scanned; ttop.collect.known)
        self._skip = skip
        self.skipped: Set[str] = set()

    @property
    def notifying(self) -> bool:
        return self._watch is not None and not self._watch.lost

    def close(self) -> None:
        """Stop watching the folder (a later scan watches it again); save
        the archive index if it changed."""
        if self._index is not None and self._dirty and not self._pending:
            self._save()
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def scan(self, budget: Optional[float] = None) -> ScanResult:
        """One cycle. ``budget``: seconds of reading new files after which
        the rest waits for the next call (None: read them all)."""
        self._scans += 1
        try:
            # names are looked up relative to the folder's fd: one path
            # component per stat instead of the whole absolute path
            dfd = os.open(self.folder, _DIR_FLAGS)
        except FileNotFoundError:
            return self._folder_gone("folder does not exist: %s" % self.folder)
        except NotADirectoryError:
            return self._folder_gone("not a folder: %s" % self.folder)
        except OSError as e:
            return self._folder_gone("cannot read folder %s: %s" % (self.folder, os_error_reason(e)))
        try:
            if self._index is None and self._want_index:
                self._load_index(dfd)
            return self._scan(dfd, budget)
        finally:
            os.close(dfd)

    def _load_index(self, dfd: int) -> None:
        st = os.fstat(dfd)
        self._index = ArchiveIndex(self.folder, st.st_dev, st.st_ino)
        self._idx = self._index.load()

    def _save(self) -> None:
        assert self._index is not None
        if self.skipped:
            return
        self._dirty = False
        self._saved_at = self.monotonic()
        self._index.save(self._entries, self.clock())

    def _watch_changes(self) -> Optional[Set[str]]:
        """Names changed since the last cycle; None: list the folder."""
        w = self._watch
        if w is not None and w.lost:
            w.close()
            self._watch = w = None
        if w is None:
            if not self._want_notify or self._listed_at is None:
                return None  # watched from the second scan on: one scan needs no watch
            try:
                self._watch = FolderWatch(self.folder)
            except (OSError, AttributeError, ImportError):  # no inotify (or ctypes) here, or out of watches
                self._want_notify = False
            return None  # made now: what happened before it is seen by listing
        return w.changes()

    def _scan(self, dfd: int, budget: Optional[float]) -> ScanResult:
        now = self.monotonic()
        changed = self._watch_changes()
        out = ScanResult([])
        gone = out.gone
        w = self._watch
        if changed is not None and w is not None and w.local:  # (changes on a network folder raise no event)
            out.hidden = (self._scans, w.hidden)
        every = self.sweep_seconds if w is not None and w.local else min(LIST_SECONDS, self.sweep_seconds)
        first = self._listed_at is None
        listed = changed is None or self._listed_at is None or now - self._listed_at >= every
        visit: Set[str] = set(self._active)
        if listed:
            try:
                listing = set(os.listdir(dfd))
            except OSError as e:
                return self._folder_gone("cannot read folder %s: %s" % (self.folder, os_error_reason(e)))
            self._listed_at = now
            for name in self._names - listing:
                self._forget(name, gone)
            # set operations in C; only names not seen before are looked at
            new = listing - self._names - self._others
            self._names &= listing
            self._others &= listing
            if new:
                # _progress_name inline: 50,000 calls cost more than the test
                other = {n for n in new if n[-5:] != ".json" or n[0] == "." or n[:8] == "control_" or len(n) <= 5}
                if other:
                    new -= other
                    self._others |= other
                if self._skip is not None:
                    self.skipped |= self._skip(dfd, new)
                    new -= self.skipped
                self._names |= new
            if new:
                self._add_pending(dfd, new, budget is not None)
        if changed:
            # names read before (progress files all): to visit, in C
            known = changed & self._cache.keys()
            visit |= known
            for name in changed - known if len(known) < len(changed) else ():
                if name[-5:] != PROGRESS_SUFFIX or not _progress_name(name):
                    continue
                if name in self._cache or name in self._idx:  # (indexed: written since, look now)
                    visit.add(name)
                elif name not in self._names:
                    self._names.add(name)
                    self._add_pending(dfd, (name,), False)
        visit.update(self._sweep_slice(now))
        active: List[FileResult] = []
        told = changed or ()
        for name in visit:
            self._visit(dfd, name, active, out, name in told)
        # new files, newest first, within the budget
        pending = self._pending
        if pending:
            t0 = time.perf_counter()
            n_read = 0
            most = max(MIN_READS, int((budget or 0.0) * READS_PER_SECOND))
            stop_at = self._idx if first and budget is not None else None
            recent = self._recent if first and budget is not None else None
            while pending:
                if budget is not None and n_read >= MIN_READS and (
                        n_read >= most or time.perf_counter() - t0 >= budget):
                    break
                if recent is not None and n_read >= recent:
                    break  # a first look publishes the files written lately (the live runs) at once
                if stop_at and pending[-1] in stop_at:
                    break  # a first look publishes the files the index does not know (the live runs) at once
                name = pending.pop()
                n_read += 1
                if name in self._names and name not in self._cache:
                    self._visit(dfd, name, active, out)
        active.sort(key=_by_name)
        out.files = active
        out.pending = len(pending)
        out.total = len(self._names)
        out.notify = self.notifying
        self.total_reads += out.reads
        self.total_indexed += out.indexed
        if not pending:
            self._idx = {}
            if self._dirty and self._index is not None and (
                    self._saved_at is None or now - self._saved_at >= SAVE_SECONDS):
                self._save()
        return out

    def _add_pending(self, dfd: int, names, by_date: bool) -> None:
        """Queue new names; ``by_date``: newest modification last (read first)."""
        if by_date and len(names) > 1:
            dated = []
            # names the index knows: no stat, after the others (checked when taken)
            indexed = self._idx.keys() & names
            if indexed:
                names = set(names) - indexed
                self._pending.extend(sorted(indexed))  # by name: the same order each start
            for name in names:
                try:
                    dated.append((os.stat(name, dir_fd=dfd).st_mtime_ns, name))
                except OSError:
                    dated.append((0, name))  # the visit says why
            dated.sort()
            self._pending.extend(name for _, name in dated)
            # a first look reads only what may be live: files written lately
            cutoff = int((self.clock() - RECENT_SECONDS) * 1e9)
            self._recent = len(dated) - bisect.bisect_left(dated, (cutoff, ""))
        else:
            self._pending.extend(names)

    def _sweep_slice(self, now: float) -> List[str]:
        """The ended files to stat this cycle: all of them once per sweep."""
        if not self._ended:
            self._sweep = []
            self._swept_at = now
            return []
        if self._swept_at is None:
            self._swept_at = now
            return []
        dt = max(0.0, now - self._swept_at)
        self._swept_at = now
        if not self._sweep:
            self._sweep = list(self._ended)
            w = self._watch
            period = max(self.sweep_seconds, LOCAL_SWEEP_SECONDS) if w is not None and w.local else self.sweep_seconds
            self._sweep_rate = len(self._sweep) / max(period, 1e-3)
        self._sweep_credit += dt * self._sweep_rate
        k = int(self._sweep_credit)
        if k <= 0:
            return []
        self._sweep_credit -= k
        part = self._sweep[-k:]
        del self._sweep[-k:]
        return [n for n in part if n in self._ended]

    def _forget(self, name: str, gone: List[str]) -> None:
        if self._entries.pop(name, None) is not None:
            self._dirty = True
        self._cache.pop(name, None)
        self._last_good.pop(name, None)
        self._names.discard(name)
        self._active.discard(name)
        if name in self._ended:
            self._ended.discard(name)
            gone.append(name)

    def _set_active(self, name: str, gone: List[str]) -> None:
        if self._entries.pop(name, None) is not None:
            self._dirty = True
        if name in self._ended:
            self._ended.discard(name)
            gone.append(name)
        self._active.add(name)

    def _visit(self, dfd: int, name: str, active: List[FileResult], out: ScanResult, told: bool = False) -> None:
        """Stat ``name``; read it if it changed; file it as active or ended.
        ``told``: change notification reported it written (read without a stat)."""
        cache = self._cache
        folder = self._prefix
        gone = out.gone
        if self._idx:
            e = self._idx.pop(name, None)
            if e is not None and name not in cache and self._indexed(dfd, name, e, out):
                return
        pre = None
        if told and self.reader is read_progress_bytes:
            # reported written: opened and read at once (the fstat of that
            # descriptor is the stat); anything unusual takes the stat below
            read_at = self.clock()
            try:
                pre = read_progress_at(dfd, name, self.max_bytes)
            except (OSError, ProgressError):
                pass
        if pre is not None:
            st = pre[1]
        else:
            try:
                st = os.stat(name, dir_fd=dfd)  # follows symlinks
            except FileNotFoundError:
                try:
                    os.lstat(name, dir_fd=dfd)
                except OSError:
                    self._forget(name, gone)  # removed since the listing: normal
                    return
                self._error(name, folder, 0.0, "broken symbolic link", active, gone)
                return
            except OSError as e:
                self._error(name, folder, 0.0, os_error_reason(e), active, gone)
                return
        self._names.add(name)
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        c = cache.get(name)
        if c is not None and c.trusted and c.sig == sig:
            if c.result is not None:
                active.append(c.result)  # unchanged since it was read: not read again
            return
        prev = c.result if c is not None else None  # the file's last version: its path and key again
        path = prev.path if prev is not None else folder + name
        mtime = st.st_mtime
        if pre is None:
            if stat.S_ISDIR(st.st_mode):
                self._error(name, folder, mtime, "is a directory", active, gone)
                return
            if not stat.S_ISREG(st.st_mode):
                self._error(name, folder, mtime, "not a regular file", active, gone)
                return
            read_at = self.clock()
        raw = b""
        uid = shape = None
        data: Optional[Dict[str, Any]] = None
        dropped: Tuple[str, ...] = ()
        error: Optional[str] = None
        if pre is None and st.st_size > self.max_bytes:
            error = "file larger than %d bytes" % self.max_bytes
        else:
            out.reads += 1
            live = name in self._active
            last = prev  # (its history and shape: what the next one's parse may reuse)
            try:
                data, dropped, error, fst, linked, raw, shape = (
                    parse_file(pre[0], pre[1], pre[2], live, last) if pre is not None
                    else read_file(self.reader, path, dfd, name, self.max_bytes, live, last))
            except FileNotFoundError:
                self._forget(name, gone)  # removed between stat and open: normal
                return
            if fst is not None:
                if fst is not st:  # what was read, not what was stat'ed before (a told file's are one)
                    sig = (fst.st_ino, fst.st_size, fst.st_mtime_ns)
                    mtime = fst.st_mtime
                try:
                    uid = link_owner(name, dfd, fst) if linked else fst.st_uid
                except FileNotFoundError:
                    self._forget(name, gone)  # removed since the read: its link's maker is not known
                    return
                if uid != fst.st_uid and not may_read(uid, path, fst):
                    # another user's link to a file they cannot read: neither its contents nor (quoting them) why it is no progress file
                    data, dropped, raw, shape = None, (), b"", None
                    error = "symbolic link by %s to a file %s cannot read: not read" % (user_name(uid), user_name(uid))
        trusted = mtime + (RACY_SECONDS if sig[2] % 1000000000 else _RACY_COARSE) < read_at  # (coarse_seconds)
        if trusted and data is not None and data["status"] in END_STATUSES and not linked:  # (a link stays active: no event under its name)
            keep: Mapping[str, Any] = ArchivedData(raw, data) if self.compact and raw else data
            if self._index is not None and uid is not None and raw:
                blob = keep.blob if isinstance(keep, ArchivedData) else pack(data, raw)
                self._entries[name] = (sig[0], sig[1], sig[2], uid, tuple(dropped), blob)
                self._dirty = True
            result = self._result(name, path, mtime, keep, dropped, None)
            self._last_good[name] = (keep, result.dropped, mtime)
            result.data = data  # the parse at hand, for the collector to look at once
            result.archived = keep
            result.uid = uid
            cache[name] = _Cached(sig, True, None)
            self._active.discard(name)
            self._ended.add(name)
            out.ended.append(result)
            return
        result = new_result(name, prev.key if prev is not None else run_key(name), path, mtime, data, dropped, error,
                            self._last_good)
        result.uid, result.shape = uid, shape
        if c is not None:  # its entry renewed in place
            c.sig, c.trusted, c.result = sig, trusted, result
        else:
            cache[name] = _Cached(sig, trusted, result)
        if name not in self._active:  # (an active name is neither ended nor in the index's entries)
            self._set_active(name, gone)
        active.append(result)

    def _indexed(self, dfd: int, name: str, e: Tuple[Any, ...], out: ScanResult) -> bool:
        """File ``name`` as ended from its index entry if ``lstat`` shows
        the very file that was indexed; False: read it as usual."""
        if not entry_usable(e) or self._index is None:
            return False
        try:
            st = os.lstat(name, dir_fd=dfd)
        except OSError:
            return False
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if (not stat.S_ISREG(st.st_mode) or sig != e[:3] or st.st_uid != e[3]
                or st.st_mtime + RACY_SECONDS + coarse_seconds(st.st_mtime_ns) >= self._index.written_at):
            return False
        blob = self._index.blob(e)
        if blob is None:
            return False
        try:
            data = unpack(blob)
        except Exception:  # a damaged entry: the file itself is read
            return False
        if data.get("status") not in END_STATUSES:
            return False
        arch = ArchivedData.from_blob(blob)
        arch._keep(data)
        keep: Mapping[str, Any] = arch if self.compact else data
        self._names.add(name)
        result = self._result(name, self.folder + os.sep + name, st.st_mtime, keep, e[4], None)
        self._last_good[name] = (keep, e[4], st.st_mtime)
        result.data = data
        result.archived = keep
        result.uid = st.st_uid
        self._cache[name] = _Cached(sig, True, None)
        self._active.discard(name)
        self._ended.add(name)
        self._entries[name] = (e[0], e[1], e[2], e[3], e[4], blob)
        out.ended.append(result)
        out.indexed += 1
        return True

    def _error(self, name: str, folder: str, mtime: float, reason: str, active: List[FileResult],
               gone: List[str]) -> None:
        active.append(self._result(name, folder + name, mtime, None, (), reason))
        self._cache.pop(name, None)
        self._names.add(name)
        self._set_active(name, gone)

    def _folder_gone(self, reason: str) -> ScanResult:
        gone = sorted(self._ended)
        self._cache.clear()
        self._last_good.clear()
        self._names = set()
        self._others = set()
        self._active = set()
        self._ended = set()
        self._pending = []
        self._sweep = []
        self._listed_at = None
        self._entries = {}
        self._idx = {}
        self._index = None  # the folder may come back as another one
        self.close()  # watched again once it is back
        return ScanResult([], reason, 0, gone=gone)

    def _result(self, name, path, mtime, data, dropped, error, key=None) -> FileResult:
        return new_result(name, key or run_key(name), path, mtime, data, dropped, error, self._last_good)


def _progress_name(name: str) -> bool:
    # is_progress_filename for a name known to end in .json, ~4x faster
    return name[0] != "." and not name.startswith("control_") and len(name) > 5


assert PROGRESS_SUFFIX == ".json" and CONTROL_PREFIX == "control_"  # as inlined in _scan
assert all(_progress_name(n) == is_progress_filename(n) for n in (".a.json", "control_a.json", "a.json", ".json"))


_by_name = attrgetter("name")  # a FileResult's name: the sort key in C
