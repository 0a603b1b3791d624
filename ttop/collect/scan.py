"""Folder scan of progress files with a stat cache.

Each cycle lists the folder once (``os.scandir``) and stats every progress
file (:func:`ttop.progress.is_progress_filename`: control files, temp files of
atomic writes and logs are never read). A file whose signature (inode, size,
mtime in ns) is unchanged since it was last read is neither re-read nor
re-parsed: its previous result (good data or the reason it was bad) is reused.

One exception keeps the cache honest: a file whose mtime was within
:data:`RACY_SECONDS` of the moment it was read may have been rewritten in the
same timestamp tick without changing size; it is read once more on the next
cycle (git's "racily clean" rule). After that it is trusted.

Per file the scan yields a :class:`FileResult`: either good data or an error
reason; for a file that turned bad the last good data (and its mtime) is kept
so the run stays on screen, marked stale by the collector.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..progress import (
    MAX_PROGRESS_BYTES,
    PROGRESS_SUFFIX,
    ProgressError,
    is_progress_filename,
    parse_progress,
    run_key,
)

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)

#: A file modified this close to the moment it was read is read again once.
RACY_SECONDS = 0.05

Signature = Tuple[int, int, int]  # (st_ino, st_size, st_mtime_ns)


def read_progress_bytes(path: str, limit: int) -> bytes:
    """Read at most ``limit`` bytes of a regular file without ever blocking.

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` so that a FIFO or
    device swapped in under a progress file's name cannot hang the collector.
    Raises :class:`ProgressError` (file larger than ``limit``, not a regular
    file) or OSError.
    """
    return read_progress_file(path, limit)[0]


def read_progress_file(path: str, limit: int) -> Tuple[bytes, os.stat_result]:
    """:func:`read_progress_bytes`, plus the ``fstat`` of the descriptor the
    bytes were read from (its owner is the run's owner: the name may be
    replaced between a ``stat`` and an ``open``, the descriptor cannot)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ProgressError("not a regular file")
        if st.st_size > limit:
            raise ProgressError("file larger than %d bytes" % limit)
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise ProgressError("file larger than %d bytes" % limit)
    return data, st


def os_error_reason(e: OSError) -> str:
    """A short, stable reason for an OSError ("permission denied", ...)."""
    if e.errno == errno.EACCES or e.errno == errno.EPERM:
        return "permission denied"
    if e.errno == errno.ENOENT:
        return "vanished while reading"
    if e.errno == errno.EISDIR:
        return "is a directory"
    text = e.strerror or str(e)
    return "cannot read: %s" % text.lower()


@dataclass
class FileResult:
    """What the scan knows about one progress file this cycle (read-only once
    returned: an unchanged file gives the same object again)."""

    name: str
    key: str
    path: str
    mtime: float
    data: Optional[Dict[str, Any]] = None  # current good data (None if error)
    dropped: Tuple[str, ...] = ()
    error: Optional[str] = None  # why the current contents are unusable
    # last good contents, kept when the file turned bad:
    last_data: Optional[Dict[str, Any]] = None
    last_dropped: Tuple[str, ...] = ()
    last_mtime: float = 0.0
    #: owner of the file the data was read from (fstat of that descriptor;
    #: for a symbolic link owned by someone else, the link's owner); None
    #: where unknown (a custom reader)
    uid: Optional[int] = None


class _Cached:
    __slots__ = ("sig", "trusted", "result")

    def __init__(self, sig: Signature, trusted: bool, result: FileResult) -> None:
        self.sig = sig
        self.trusted = trusted  # False: modified in the tick it was read; read once more
        self.result = result  # reused as is while the file is unchanged


@dataclass
class ScanResult:
    files: List[FileResult]  # sorted by name
    folder_error: Optional[str] = None
    reads: int = 0  # files read (and parsed) this cycle


def _owner(name: str, dfd: int, fst: os.stat_result) -> int:
    """The run's owner: the owner of the file read, unless the name is a
    symbolic link made by another user (then the link's maker: pointing at
    someone's file does not make a run theirs)."""
    try:
        lst = os.lstat(name, dir_fd=dfd)
    except OSError:
        return fst.st_uid
    if stat.S_ISLNK(lst.st_mode) and lst.st_uid != fst.st_uid and lst.st_uid != 0:
        return lst.st_uid
    return fst.st_uid


class FolderScanner:
    """Scans one folder; keeps a stat cache and the last good data per file.

    ``reader(path, limit) -> bytes`` is the function used to read a file (the
    tests count calls to it to prove the cache works).
    """

    def __init__(
        self,
        folder: str,
        max_bytes: int = MAX_PROGRESS_BYTES,
        reader: Callable[[str, int], bytes] = read_progress_bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = os.path.abspath(folder)
        self.max_bytes = max_bytes
        self.reader = reader
        self.clock = clock
        self._cache: Dict[str, _Cached] = {}
        self._last_good: Dict[str, Tuple[Dict[str, Any], Tuple[str, ...], float]] = {}
        self.total_reads = 0

    def scan(self) -> ScanResult:
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
            return self._scan(dfd)
        finally:
            os.close(dfd)

    def _scan(self, dfd: int) -> ScanResult:
        try:
            names = os.listdir(dfd)
        except OSError as e:
            return self._folder_gone("cannot read folder %s: %s" % (self.folder, os_error_reason(e)))
        cache = self._cache
        out: List[FileResult] = []
        reads = 0
        folder = self.folder + os.sep
        names = [n for n in names if n[-5:] == PROGRESS_SUFFIX and is_progress_filename(n)]
        names.sort()
        seen = set(names)
        get = cache.get
        append = out.append
        stat_ = os.stat
        for name in names:
            try:
                st = stat_(name, dir_fd=dfd)  # follows symlinks
            except FileNotFoundError:
                try:
                    os.lstat(name, dir_fd=dfd)
                except OSError:
                    seen.discard(name)  # removed since the listing: normal
                    continue
                out.append(self._result(name, folder + name, 0.0, None, (), "broken symbolic link"))
                cache.pop(name, None)
                continue
            except OSError as e:
                out.append(self._result(name, folder + name, 0.0, None, (), os_error_reason(e)))
                cache.pop(name, None)
                continue
            sig = (st.st_ino, st.st_size, st.st_mtime_ns)
            c = get(name)
            if c is not None and c.trusted and c.sig == sig:
                append(c.result)  # unchanged since it was read: not read again
                continue
            path = folder + name
            mtime = st.st_mtime
            uid = None
            if stat.S_ISDIR(st.st_mode):
                out.append(self._result(name, path, mtime, None, (), "is a directory"))
                cache.pop(name, None)
                continue
            if not stat.S_ISREG(st.st_mode):
                out.append(self._result(name, path, mtime, None, (), "not a regular file"))
                cache.pop(name, None)
                continue
            read_at = self.clock()
            if st.st_size > self.max_bytes:
                data, dropped, error = None, (), "file larger than %d bytes" % self.max_bytes
            else:
                reads += 1
                try:
                    data, dropped, error, fst = self._read(path)
                except FileNotFoundError:
                    seen.discard(name)  # removed between stat and open: normal
                    continue
                if fst is not None:  # what was read, not what was stat'ed before
                    sig = (fst.st_ino, fst.st_size, fst.st_mtime_ns)
                    mtime = fst.st_mtime
                    uid = _owner(name, dfd, fst)
            result = self._result(name, path, mtime, data, dropped, error)
            result.uid = uid
            cache[name] = _Cached(sig, mtime + RACY_SECONDS < read_at, result)
            out.append(result)
        for gone in cache.keys() - seen:
            del cache[gone]
        for gone in self._last_good.keys() - seen:
            del self._last_good[gone]
        self.total_reads += reads
        return ScanResult(out, None, reads)

    def _folder_gone(self, reason: str) -> ScanResult:
        self._cache.clear()
        self._last_good.clear()
        return ScanResult([], reason, 0)

    def _read(self, path: str):
        fst = None
        try:
            if self.reader is read_progress_bytes:
                raw, fst = read_progress_file(path, self.max_bytes)
            else:
                raw = self.reader(path, self.max_bytes)
        except ProgressError as e:
            return None, (), str(e), None
        except FileNotFoundError:
            raise
        except OSError as e:
            return None, (), os_error_reason(e), None
        try:
            data, dropped = parse_progress(raw)
        except ProgressError as e:
            return None, (), str(e), fst
        except Exception as e:  # parse_progress should not raise anything else
            return None, (), "cannot parse: %s" % type(e).__name__, fst
        return data, tuple(dropped), None, fst

    def _result(self, name, path, mtime, data, dropped, error) -> FileResult:
        r = FileResult(name=name, key=run_key(name), path=path, mtime=mtime, data=data, dropped=dropped, error=error)
        if data is not None:
            self._last_good[name] = (data, dropped, mtime)
        else:
            last = self._last_good.get(name)
            if last is not None:
                r.last_data, r.last_dropped, r.last_mtime = last
        return r
