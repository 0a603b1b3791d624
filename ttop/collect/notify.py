"""Change notification of a folder: Linux inotify through ctypes (the
standard library only, and four calls of a stable kernel interface)."""
from __future__ import annotations

import codecs
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional, Set, Tuple

# statfs f_type of local file systems (linux/magic.h): ext2/3/4, xfs, btrfs,
# tmpfs, overlayfs, zfs, f2fs, ramfs, reiserfs, jfs, bcachefs
_LOCAL_FS = frozenset((0xEF53, 0x58465342, 0x9123683E, 0x01021994, 0x794C7630, 0x2FC12FC1, 0xF2F52010,
                       0x858458F6, 0x52654973, 0x3153464A, 0xCA451A4E))

_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_UNMOUNT = 0x2000
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x1000000
# no IN_MODIFY: one event per write() would flood the queue with a fleet's
# writers (an atomic writer's temporary file); a file written in place is
# reported when it is closed (IN_CLOSE_WRITE), a replacing rename by
# IN_MOVED_TO, and a live file is stat'ed every cycle anyway
_WATCH_MASK = (_IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
               | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR)
_LOST = _IN_Q_OVERFLOW | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_IGNORED
#: struct inotify_event's mask and len (wd and cookie skipped): a
#: struct.Struct made by the first read of events (struct is not imported
#: before the first screen)
_EVENT: Any = None

_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # (os.fsdecode's)
_libc: Any = None


def _event_struct() -> Any:
    global _EVENT
    import struct

    _EVENT = struct.Struct("4xI4xI")
    return _EVENT


def notify_wanted() -> bool:
    """False when ``TTOP_NOTIFY=0`` switches change notification off."""
    return os.environ.get("TTOP_NOTIFY", "").strip() not in ("0", "off", "no", "false")


def _ident(path: str) -> Tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class FolderWatch:
    """An inotify watch on one folder. :meth:`changes` returns the names
    written, created, replaced or removed since the last call, or None when
    events were lost (queue overflow, the folder itself moved or removed):
    then the caller lists the folder again, and the watch is re-made."""

    def __init__(self, folder: str) -> None:
        global _libc
        self.fd = -1
        self.lost = False
        import ctypes

        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        fd = _libc.inotify_init1(os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        if fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        try:
            before = _ident(folder)
        except OSError:
            os.close(fd)
            raise
        if _libc.inotify_add_watch(fd, os.fsencode(folder), _WATCH_MASK) < 0:
            e = ctypes.get_errno()
            os.close(fd)
            raise OSError(e, os.strerror(e))
        self.fd = fd
        self.folder = folder
        #: the folder watched, (device, inode): the path may come to name
        #: another one (a symbolic link pointed elsewhere), of which the
        #: watch says nothing
        self.ident = before
        self.lost = False
        self.local = _fs_type(folder) in _LOCAL_FS
        #: the hidden ``*.json`` names (the status files of ranks, see
        #: ttop.collect.ranks) among the last :meth:`changes`
        self.hidden: Set[str] = set()

    def changes(self) -> Optional[Set[str]]:
        """Names changed since the last call (hidden ones, such as the
        temporary files of atomic writes, left out: no progress file is
        hidden; the hidden ``*.json`` ones go to :attr:`hidden`), or None
        when events were lost."""
        got: Set[bytes] = set()  # each name as its events carry it (NUL-padded), once
        add = got.add
        masks = 0
        unpack = (_EVENT or _event_struct()).unpack_from
        try:
            lost = _ident(self.folder) != self.ident
        except OSError:  # gone: its own events say so, or the scan does
            lost = False
        while self.fd >= 0:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                lost = True
                break
            # the least per event: a writer's temporary file alone brings
            # three (created, closed, renamed away) at each write
            off, last = 0, len(buf) - 16
            while off <= last:
                mask, size = unpack(buf, off)
                off += 16
                if size:
                    add(buf[off:off + size])
                    off += size
                else:  # (what says events were lost is about the folder or the queue: carries no name)
                    masks |= mask
        if masks & _LOST:
            lost = True
        if lost:
            self.lost = True
            self.hidden = set()
            return None
        raws = {raw for raw in got if raw[0] != 46}  # not ".": a hidden name is no progress file
        hidden: Any = ()
        if len(raws) < len(got):
            seen = got - raws
            # (NUL-terminated: "json\0" at a name's end; a temp file ends .tmp)
            if b"json\0" in b"".join(seen):  # (within one name: each ends with a NUL, the next starts with ".")
                hidden = [raw for raw in seen if raw.find(b"json\0") > 0]
        self.hidden = _decode(hidden) if hidden else set()
        names = _decode(raws)
        names.discard("")
        return names

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            # closing an inotify descriptor waits for the kernel's RCU grace
            # period (~10 ms): nobody needs to wait for that
            import threading  # not before the first screen

            try:
                threading.Thread(target=_close_quietly, args=(fd,), daemon=True).start()
            except RuntimeError:  # interpreter shutting down
                _close_quietly(fd)

    def __del__(self) -> None:
        # no thread from a finaliser (it may run at interpreter exit)
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            _close_quietly(fd)


def _decode(raws: Any) -> Set[str]:
    """The names of NUL-padded raw names (``os.fsdecode`` of each without
    its padding), decoded in one piece: a name holds neither "/" nor a NUL,
    and the file-system encoding (UTF-8 with surrogate escapes, or a
    single-byte one) decodes each name alone as it does between two "/"."""
    if not raws:
        return set()
    if not _ONE_PIECE:  # pragma: no cover - another encoding: name by name, as os.fsdecode
        return {raw.rstrip(b"\0").decode(_FS_ENCODING, _FS_ERRORS) for raw in raws}
    return set(b"/".join(raws).replace(b"\0", b"").decode(_FS_ENCODING, _FS_ERRORS).split("/"))


#: UTF-8 finds where each character starts by itself, and in a single-byte
#: encoding each byte is one: decoded in one piece, each name is as alone
_ONE_PIECE = codecs.lookup(_FS_ENCODING).name in ("utf-8", "ascii", "iso8859-1", "latin-1")


def _fs_type(folder: str) -> Optional[int]:
    """``statfs().f_type`` (the first field, a C long on Linux), or None."""
    import ctypes

    buf = ctypes.create_string_buffer(256)
    try:
        if _libc.statfs(os.fsencode(folder), buf) != 0:
            return None
    except AttributeError:
        return None
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
