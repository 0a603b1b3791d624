"""Atomic file writes: a hidden temp file in the same folder, then a rename,
so a reader sees the old file or the new one, never a mix. Re-exported by
:mod:`ttop.progress`, which adds the text and JSON variants."""
from __future__ import annotations

import os
from _thread import allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

#: Striped locks: two threads of one process never write the same temp file.
_TEMP_LOCKS = tuple(allocate_lock() for _ in range(16))  # threading.Lock, without importing threading


def _new_locks_in_child() -> None:  # another thread may have held one at the fork: never released there
    global _TEMP_LOCKS
    _TEMP_LOCKS = tuple(allocate_lock() for _ in range(16))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_in_child)


def temp_name(name: str, pid: Optional[int] = None) -> str:
    """The hidden temp file an atomic write of ``name`` goes through:
    ``.<name>.<pid>.tmp`` (hidden, so readers of the folder skip it; the PID
    tells whether a leftover's writer is still alive)."""
    return ".%s.%d.tmp" % (name, os.getpid() if pid is None else pid)


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder
    (:func:`temp_name`) then :func:`os.replace`. A reader sees the old file or
    the new one, never a mix.

    The temp file is created with ``O_EXCL`` (never through a planted link; a
    leftover of a killed writer with this PID is removed first, another
    user's file there gets a random name instead) and mode ``0o666`` less the
    umask, as :func:`open` would, so a monitor running as another user can
    read it. Raises OSError on failure (the temp file is removed)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, temp_name(name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    with _TEMP_LOCKS[hash(tmp) % len(_TEMP_LOCKS)]:
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            try:
                os.unlink(tmp)
            except OSError:  # not ours to remove (a sticky folder): never let it block every write
                tmp = os.path.join(folder, temp_name(os.urandom(6).hex() + name))
            fd = os.open(tmp, flags, 0o666)
        try:
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    if n <= 0:
                        raise OSError("short write to %s" % tmp)
                    view = view[n:]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
