"""Ended runs kept compactly, in memory and across starts.

:class:`ArchivedData`: a parsed progress file held as its compressed
``marshal`` bytes and decoded again on use (decoding is several times cheaper
than parsing the JSON again).

:class:`ArchiveIndex`: the ended files of a folder as last seen, kept in the
user's own cache folder (``$XDG_CACHE_HOME/ttop/``, never the progress
folder) so that a new ttop knows them without reading them: per file name
its inode, size, modification time (ns), owner, dropped keys and
:class:`ArchivedData` bytes. An entry is only used for a file whose ``lstat``
(a regular file, not a link) still shows that inode, size, time and owner;
anything else is read as usual.
"""
from __future__ import annotations

import marshal
import os
import stat
import sys
import zlib

# (as os.py does: collections.abc would import the collections package, and
# its classes, before the first screen)
from _collections_abc import Mapping
from _thread import allocate_lock

from ..progress import parse_progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, Optional, Tuple, Union

    #: packed bytes: a bytes object, or a view into a loaded index
    Blob = Union[bytes, memoryview]
    #: (st_ino, st_size, st_mtime_ns, owner uid, dropped keys, ArchivedData bytes)
    Entry = Tuple[int, int, int, int, Tuple[str, ...], Any]

#: Parsed archived files kept in memory (the rest are parsed again on use).
PARSED_CACHE = 1024

_MARSHAL = b"M"  # zlib(marshal(parsed))
_JSON = b"J"  # zlib(raw JSON): what marshal cannot hold


def pack(parsed: Dict[str, Any], raw: bytes = b"") -> bytes:
    """The compact bytes of a parsed progress file (see :class:`ArchivedData`)."""
    try:
        return _MARSHAL + zlib.compress(marshal.dumps(parsed), 1)
    except ValueError:  # pragma: no cover - JSON values are all marshallable
        return _JSON + zlib.compress(raw, 1)


def unpack(blob: Blob) -> Dict[str, Any]:
    body = zlib.decompress(blob[1:])
    if blob[:1] == _MARSHAL:
        data = marshal.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not a progress file")
        return data
    return parse_progress(body)[0]


class ArchivedData(Mapping):
    """A parsed progress file kept as its compressed bytes (:func:`pack`);
    decoded again on use (the last :data:`PARSED_CACHE` decodes are kept).
    Read-only, like all snapshot data. Equal to the dict it stands for."""

    __slots__ = ("_z",)

    def __init__(self, raw: bytes, parsed: Optional[Dict[str, Any]] = None) -> None:
        if parsed is None:
            parsed = parse_progress(raw)[0]
        self._z: Blob = pack(parsed, raw)
        self._keep(parsed)  # the parse at hand is the first one used

    @classmethod
    def from_blob(cls, blob: Blob) -> "ArchivedData":
        """From :attr:`blob` (decoded when first used)."""
        obj = cls.__new__(cls)
        obj._z = blob
        return obj

    @property
    def blob(self) -> Blob:
        return self._z

    def _keep(self, data: Dict[str, Any]) -> None:
        with _PARSED_LOCK:
            _PARSED[id(self)] = (self, data)  # holding self keeps id(self) unique
            while len(_PARSED) > PARSED_CACHE:
                del _PARSED[next(iter(_PARSED))]  # the least recently used

    def _full(self) -> Dict[str, Any]:
        key = id(self)
        with _PARSED_LOCK:
            hit = _PARSED.pop(key, None)
            if hit is not None:
                _PARSED[key] = hit  # now the most recently used
                return hit[1]
        data = unpack(self._z)
        self._keep(data)
        return data

    def __getitem__(self, key: str) -> Any:
        return self._full()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._full().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._full()

    def __iter__(self) -> Iterator[str]:
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())

    def __repr__(self) -> str:
        return "ArchivedData(%r)" % (self._full(),)


#: the parsed data of the archived runs last looked at, least recently used
#: first (a dict keeps its insertion order; an OrderedDict would import the
#: collections package before the first screen, where archived runs are shown)
_PARSED: "Dict[int, Tuple[ArchivedData, Dict[str, Any]]]" = {}
_PARSED_LOCK = allocate_lock()  # threading.Lock, without importing threading


# ---------------------------------------------------------------------------
# the index kept across starts

_MAGIC = b"ttop-archive-index 2\n"
_LENGTHS = 12  # crc32 of the head, length of the head
#: An index whose entries changed is written again at most this often.
SAVE_SECONDS = 60.0
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


def index_wanted() -> bool:
    """False when ``TTOP_ARCHIVE_INDEX=0`` switches the index off."""
    return os.environ.get("TTOP_ARCHIVE_INDEX", "").strip() not in ("0", "off", "no", "false")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ttop")


def _read(fd: int, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class ArchiveIndex:
    """The persisted index of one folder's ended files (see the module
    docstring). :meth:`load` returns the entries of the last :meth:`save`
    for the same folder (path, device and inode), or {} when there is none
    or it cannot be trusted (not the user's own file in the user's own
    folder, written by another version, damaged).

    The file is a small head (each name's file signature, owner, dropped
    keys and where its bytes are; checksummed) followed by the entries'
    bytes (each a zlib stream, checksummed by zlib), read only when the
    first entry is used: listing a folder against the index reads the head
    only.

    ``kind`` names another index of the same shape (``<kind>-<digest>.idx``;
    e.g. ``--once``'s rows, :mod:`ttop.sinks.oncecache`), whose ``extra``
    (any marshallable value: versions, settings) must equal the saved one
    for the file to be used; such an index may also carry a value of its
    own beside the entries (:attr:`meta`)."""

    def __init__(self, folder: str, dev: int, ino: int, directory: Optional[str] = None, kind: str = "archive",
                 extra: Any = None) -> None:
        self.folder = folder
        name_key = (folder, dev, ino, sys.version_info[:2], marshal.version)
        self.key: Tuple[Any, ...] = name_key if extra is None else name_key + (kind, extra)
        # a name, not a check (the key inside the file is compared): two
        # zlib checksums, as hashlib would load OpenSSL before the first screen
        raw = repr(name_key).encode("utf-8", "surrogateescape")
        digest = "%08x%08x" % (zlib.crc32(raw), zlib.adler32(raw))
        self.dir = directory or cache_dir()
        self.name = "%s-%s.idx" % (kind, digest)
        self.path = os.path.join(self.dir, self.name)
        self._magic = _MAGIC if kind == "archive" else b"ttop-%s-index 1\n" % kind.encode("ascii", "replace")
        #: when the loaded index was written (wall clock); files modified
        #: after that moment minus a tick are read again
        self.written_at = 0.0
        #: the value saved beside the entries (None: none)
        self.meta: Any = None
        self._file: Optional[Tuple[int, int, int, int]] = None  # (ino, size, mtime_ns, where the bytes start)
        self._blobs: Optional[memoryview] = None

    def _open(self) -> Optional[Tuple[int, os.stat_result]]:
        dfd = _open_dir(self.dir)
        if dfd is None:
            return None
        try:
            fd = os.open(self.name, _READ_FLAGS, dir_fd=dfd)
        except OSError:
            return None
        finally:
            os.close(dfd)
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            return None
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022
                or st.st_size > 1 << 32):
            os.close(fd)
            return None  # only a file this user wrote and no one else could
        return fd, st

    def load(self) -> Dict[str, Tuple[Any, ...]]:
        """``{name: (ino, size, mtime_ns, uid, dropped, offset, length)}``;
        :meth:`blob` gives an entry's bytes."""
        got = self._open()
        if got is None:
            return {}
        fd, st = got
        magic = self._magic
        try:
            top = _read(fd, len(magic) + _LENGTHS)
            if not top.startswith(magic) or len(top) < len(magic) + _LENGTHS:
                return {}
            crc = int.from_bytes(top[len(magic):len(magic) + 4], "big")
            n = int.from_bytes(top[len(magic) + 4:], "big")
            if n > st.st_size:
                return {}
            head = _read(fd, n)
        except OSError:
            return {}
        finally:
            os.close(fd)
        if len(head) != n or zlib.crc32(head) != crc:
            return {}
        try:
            loaded = marshal.loads(head)
        except (ValueError, EOFError, TypeError):
            return {}
        if not isinstance(loaded, tuple) or len(loaded) not in (3, 4):
            return {}
        key, written_at, entries = loaded[:3]
        if key != self.key or not isinstance(entries, dict) or not isinstance(written_at, float):
            return {}
        self.written_at = written_at
        self.meta = loaded[3] if len(loaded) == 4 else None
        self._file = (st.st_ino, st.st_size, st.st_mtime_ns, len(top) + n)
        return entries

    def blob(self, e: Tuple[Any, ...]) -> Optional[memoryview]:
        """The bytes of a loaded entry (None: unavailable, e.g. the index
        file was replaced since it was loaded)."""
        if self._blobs is None:
            self._blobs = memoryview(b"")
            f = self._file
            got = self._open() if f is not None else None
            if got is None or f is None:
                return None
            fd, st = got
            try:
                if (st.st_ino, st.st_size, st.st_mtime_ns) == f[:3]:
                    os.lseek(fd, f[3], os.SEEK_SET)
                    self._blobs = memoryview(_read(fd, st.st_size - f[3]))
            except OSError:
                pass
            finally:
                os.close(fd)
        off, n = e[5], e[6]
        if not isinstance(off, int) or not isinstance(n, int) or off < 0 or n < 2 or off + n > len(self._blobs):
            return None
        return self._blobs[off:off + n]

    def save(self, entries: Mapping[str, Entry], written_at: float, meta: Any = None) -> bool:
        """Write ``entries`` (atomically; the folder made private) and, for
        an index of another ``kind``, ``meta``. False when the cache folder
        cannot be written (then there is no index)."""
        tmp = "%s.%d.tmp" % (self.name, os.getpid())
        dfd = None
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            dfd = _open_dir(self.dir)
            if dfd is None:
                return False  # not the user's own folder, or others may write in it
            head_entries = {}
            blobs = []
            off = 0
            for name, e in entries.items():
                n = len(e[5])
                head_entries[name] = (e[0], e[1], e[2], e[3], e[4], off, n)
                blobs.append(e[5])
                off += n
            if meta is None:
                head = marshal.dumps((self.key, float(written_at), head_entries))
            else:
                head = marshal.dumps((self.key, float(written_at), head_entries, meta))
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(tmp, flags, 0o600, dir_fd=dfd)
            try:
                for part in (self._magic + zlib.crc32(head).to_bytes(4, "big") + len(head).to_bytes(8, "big"), head,
                             b"".join(blobs)):
                    view = memoryview(part)
                    while view:
                        k = os.write(fd, view[:1 << 24])
                        view = view[k:]
            finally:
                os.close(fd)
            os.replace(tmp, self.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            return True
        except (OSError, ValueError):
            if dfd is not None:
                try:
                    os.unlink(tmp, dir_fd=dfd)
                except OSError:
                    pass
            return False
        finally:
            if dfd is not None:
                os.close(dfd)


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_dir(path: str) -> Optional[int]:
    """The cache folder, opened without following a link, when it is the
    user's own and no one else may write in it; else None."""
    try:
        dfd = os.open(path, _DIR_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(dfd)
    except OSError:
        os.close(dfd)
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(dfd)
        return None
    return dfd


def entry_usable(e: Any) -> bool:
    """A loaded entry of the right shape (its bytes are checked on use)."""
    return (isinstance(e, tuple) and len(e) == 7 and all(isinstance(v, int) for v in e[:4])
            and isinstance(e[4], tuple))
