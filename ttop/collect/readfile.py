"""Reading a progress file from a folder shared with strangers: never
blocking, never more than a limit, owner taken from the descriptor read."""
from __future__ import annotations

import errno
import gc
import os
import stat

from ..progress import ProgressError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional, Tuple


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
    return _read_fd(_open_followed(path, _FLAGS), limit)[:2]


def read_progress_at(dfd: int, name: str, limit: int) -> Tuple[bytes, os.stat_result, bool]:
    """:func:`read_progress_file` of ``name`` in the folder open as ``dfd``,
    plus whether ``name`` is a symbolic link. Opened without following a
    link first: for the usual regular file, the ``fstat`` of that one
    descriptor says both its type and its owner (no ``lstat`` of the name)."""
    try:
        return _read_fd(os.open(name, _FLAGS | _NOFOLLOW, dir_fd=dfd), limit, False)
    except OSError as e:
        if e.errno != errno.ELOOP or not _NOFOLLOW:
            raise
    return _read_fd(_open_followed(name, _FLAGS, dfd), limit, True)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: never blocking on a FIFO, never making a terminal ttop's controlling one
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
_PATH = getattr(os, "O_PATH", 0)


def _open_followed(name: str, flags: int, dfd: Optional[int] = None) -> int:
    """Open ``name`` following a symbolic link, but only if it leads to a
    regular file: another user can point a link at a device, and opening
    one can act (a watchdog starts, a tape rewinds, a terminal becomes the
    opener's controlling one). The link is followed with ``O_PATH`` (which
    opens nothing), the result checked with ``fstat``, and that very file
    opened through ``/proc/self/fd``."""
    if not _PATH:  # pragma: no cover - not Linux
        return os.open(name, flags, dir_fd=dfd)
    pfd = os.open(name, _PATH | getattr(os, "O_CLOEXEC", 0), dir_fd=dfd)
    try:
        if not stat.S_ISREG(os.fstat(pfd).st_mode):
            raise ProgressError("not a regular file")
        try:
            return os.open("/proc/self/fd/%d" % pfd, flags)
        except FileNotFoundError:
            if os.path.isdir("/proc/self/fd"):
                raise
        return os.open(name, flags, dir_fd=dfd)  # no /proc: as before (checked just now)
    finally:
        os.close(pfd)


def _read_fd(fd: int, limit: int, linked: bool = True) -> Tuple[bytes, os.stat_result, bool]:
    """``(bytes, fstat, linked)`` of the open ``fd`` (closed here)."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ProgressError("not a regular file")
        size = st.st_size
        if size > limit:
            raise ProgressError("file larger than %d bytes" % limit)
        want = size + 1  # one read for the whole file, and the byte that says it ended
        if want <= 1 << 20:  # the usual case, without the loop below (its first round)
            data = os.read(fd, want)
            if len(data) < want:  # a regular file reads short only at its end
                return data, st, linked
            chunks = [data]  # it grew since the fstat: read on
            left = limit + 1 - want
            want = 1 << 20
        else:
            chunks = []
            left = limit + 1
        while left > 0:
            ask = min(left, want, 1 << 20)
            chunk = os.read(fd, ask)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
            if len(chunk) < ask:  # a regular file reads short only at its end
                break
            want = 1 << 20  # it grew since the fstat: read on
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise ProgressError("file larger than %d bytes" % limit)
    return data, st, linked


#: What a file system that stamps whole seconds (Lustre, ext3; FAT: two)
#: may leave unchanged: a file rewritten within that time keeps its stamp.
COARSE_SECONDS = 2.0


def coarse_seconds(mtime_ns: int) -> float:
    """How much longer than a clock tick a file stamped ``mtime_ns`` may
    still be rewritten without its stamp (or its size) changing:
    :data:`COARSE_SECONDS` for a stamp in whole seconds (a file system that
    keeps no fraction), else 0."""
    return 0.0 if mtime_ns % 1000000000 else COARSE_SECONDS


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


class gc_paused:
    """No cyclic garbage collection while a folder is read (``with
    gc_paused():``): parsed files are
    thousands of containers without cycles (freed by their reference counts
    when the next snapshot replaces them), which the collector would scan
    again and again as they are made (a third of the time of reading 10,000;
    a fifth of a cycle that reads 1,000 changed files). At the end, the
    collection that would have run meanwhile runs once, here (its cost stays
    with the cycle that caused it). A plain class, not a
    ``contextlib.contextmanager``: contextlib is not imported before the
    monitor's first screen."""

    __slots__ = ("_paused",)

    def __init__(self, pause: bool = True) -> None:
        self._paused = bool(pause) and gc.isenabled()

    def __enter__(self) -> None:
        if self._paused:
            gc.disable()

    def __exit__(self, *exc: object) -> None:
        if not self._paused:
            return
        # read while still paused: the tuples made here would otherwise set
        # off the automatic collection, and this one would run again after it
        count, threshold = gc.get_count(), gc.get_threshold()
        gc.enable()
        if threshold[0] and count[0] > threshold[0]:
            gc.collect(1 if threshold[1] and count[1] >= threshold[1] else 0)


#: The young generation's collection threshold of the ttop command's own
#: process (:func:`set_process_gc`), in container objects.
PROCESS_GC_YOUNG = 20000


def set_process_gc() -> None:
    """Collect the young generation after :data:`PROCESS_GC_YOUNG` new
    containers instead of Python's default (700, 2,000 from Python 3.13), in
    the ttop command's own process (the monitor, ``--headless``; never a
    library user's: the Collector does not call it).

    A cycle makes some ten containers per changed run (its file's parse, its
    file result, its snapshot, its health sample) that live until the next
    version replaces them, freed by their reference counts: they are no
    garbage. While the runs' sample rings fill (their first ten minutes) each
    cycle keeps some of them, and with 1,000 live runs the young generation
    then passed the default threshold at the end of every cycle: each cycle
    ended with a collection over all it had made, still alive, that found
    nothing (about 2 ms of CPU, its objects' memory read once more). With
    this threshold that collection runs every few cycles, over about as many
    objects. The cost: cyclic garbage (rare here) waits for at most that
    many new containers before it is collected. A threshold of 0 (the
    collector off) or one set higher already is kept."""
    t0, t1, t2 = gc.get_threshold()
    if 0 < t0 < PROCESS_GC_YOUNG:
        gc.set_threshold(PROCESS_GC_YOUNG, t1, t2)
