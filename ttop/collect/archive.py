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

import hashlib
import marshal
import os
import stat
import sys
import threading
import zlib
from collections import OrderedDict
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from ..progress import parse_progress

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


def unpack(blob: bytes) -> Dict[str, Any]:
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
        self._z = pack(parsed, raw)
        self._keep(parsed)  # the parse at hand is the first one used

    @classmethod
    def from_blob(cls, blob: bytes) -> "ArchivedData":
        """From :attr:`blob` (decoded when first used)."""
        obj = cls.__new__(cls)
        obj._z = blob
        return obj

    @property
    def blob(self) -> bytes:
        return self._z

    def _keep(self, data: Dict[str, Any]) -> None:
        with _PARSED_LOCK:
            _PARSED[id(self)] = (self, data)  # holding self keeps id(self) unique
            while len(_PARSED) > PARSED_CACHE:
                _PARSED.popitem(last=False)

    def _full(self) -> Dict[str, Any]:
        key = id(self)
        with _PARSED_LOCK:
            hit = _PARSED.get(key)
            if hit is not None:
                _PARSED.move_to_end(key)
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


_PARSED: "OrderedDict[int, Tuple[ArchivedData, Dict[str, Any]]]" = OrderedDict()
_PARSED_LOCK = threading.Lock()


# ---------------------------------------------------------------------------
# the index kept across starts

#: (st_ino, st_size, st_mtime_ns, owner uid, dropped keys, ArchivedData bytes)
Entry = Tuple[int, int, int, int, Tuple[str, ...], bytes]
_MAGIC = b"ttop-archive-index 1\n"
#: An index whose entries changed is written again at most this often.
SAVE_SECONDS = 60.0


def index_wanted() -> bool:
    """False when ``TTOP_ARCHIVE_INDEX=0`` switches the index off."""
    return os.environ.get("TTOP_ARCHIVE_INDEX", "").strip() not in ("0", "off", "no", "false")


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ttop")


class ArchiveIndex:
    """The persisted index of one folder's ended files (see the module
    docstring). :meth:`load` returns the entries of the last :meth:`save`
    for the same folder (path, device and inode), or {} when there is none
    or it cannot be trusted (not the user's own file, written by another
    version, damaged)."""

    def __init__(self, folder: str, dev: int, ino: int, directory: Optional[str] = None) -> None:
        self.folder = folder
        self.key = (folder, dev, ino, sys.version_info[:2], marshal.version)
        digest = hashlib.sha256(repr(self.key).encode("utf-8", "surrogateescape")).hexdigest()[:24]
        self.dir = directory or cache_dir()
        self.path = os.path.join(self.dir, "archive-%s.idx" % digest)
        #: when the loaded index was written (wall clock); files modified
        #: after that moment minus a tick are read again
        self.written_at = 0.0

    def load(self) -> Dict[str, Entry]:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022
                    or st.st_size > 1 << 31):
                return {}  # only a file this user wrote and no one else could
            chunks = []
            left = st.st_size
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError:
            return {}
        finally:
            os.close(fd)
        raw = b"".join(chunks)
        if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + 4:
            return {}
        body = raw[len(_MAGIC) + 4:]
        if zlib.crc32(body) != int.from_bytes(raw[len(_MAGIC):len(_MAGIC) + 4], "big"):
            return {}
        try:
            key, written_at, entries = marshal.loads(body)
        except (ValueError, EOFError, TypeError):
            return {}
        if key != self.key or not isinstance(entries, dict) or not isinstance(written_at, float):
            return {}
        self.written_at = written_at
        return entries

    def save(self, entries: Mapping[str, Entry], written_at: float) -> bool:
        """Write ``entries`` (atomically; the folder made private). False
        when the cache folder cannot be written (then there is no index)."""
        tmp = "%s.%d.tmp" % (self.path, os.getpid())
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            body = marshal.dumps((self.key, float(written_at), dict(entries)))
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(tmp, flags, 0o600)
            try:
                os.write(fd, _MAGIC + zlib.crc32(body).to_bytes(4, "big"))
                view = memoryview(body)
                while view:
                    n = os.write(fd, view[:1 << 24])
                    view = view[n:]
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            return True
        except (OSError, ValueError):
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False


def entry_usable(e: Any) -> bool:
    return (isinstance(e, tuple) and len(e) == 6 and isinstance(e[5], bytes)
            and all(isinstance(v, int) for v in e[:4]) and isinstance(e[4], tuple))
