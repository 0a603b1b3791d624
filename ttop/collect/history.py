"""The reader side of the metric history file (format: :mod:`ttop.histfile`).

:class:`HistoryReader` is used by the run detail screen only, never by the
collector's cycle. Each :meth:`~HistoryReader.poll` reads only the bytes the
file gained since the previous one; a file replaced by a compaction (another
inode) or truncated is read again from the start. A last line without its
newline (torn by a crash, or still being written) waits until it is complete;
a line that cannot be parsed is skipped and counted. Memory stays bounded by
the same model the writer keeps.

The path comes from the progress file's ``history_file``: it must resolve
inside the progress folder (no absolute paths, no ``..``, no symlink out of
it), and is opened below the folder's descriptor without following any
symlink on the way, and only if it is a regular file.
"""
from __future__ import annotations

import gc
import json
import os
from typing import Dict, List, Optional

from .. import histfile as H
from ..fsafe import Refused, describe, open_beneath
from ..progress import resolve_inside
from . import fastjson
from .owners import user_name

#: Most bytes read per poll (the rest is read by the next polls).
READ_MAX = 16 * 1024 * 1024
#: Reads larger than this are parsed with the cyclic GC paused.
GC_PAUSE_BYTES = 64 * 1024
#: A line longer than this is skipped as bad (the writer's lines, of at most
#: ``MAX_METRICS`` metrics, are far shorter): a file without newlines must
#: not make the reader hold it whole.
LINE_MAX = 4 * 1024 * 1024


class HistoryError(Exception):
    pass


class HistoryReader:
    """``owner``: the run owner's uid; a file owned by anyone else is refused
    (a run's file naming another user's history must not show it as its own)."""

    def __init__(self, folder: str, relpath: str, owner: Optional[int] = None) -> None:
        self.folder = folder
        self.relpath = relpath
        self.owner = owner
        self.model = H.HistoryModel()
        self.bad_lines = 0
        self._ino: Optional[int] = None
        self._offset = 0
        self._partial = b""
        self._skipping = False  # inside a line longer than LINE_MAX: dropped up to its newline
        self._cache: Dict[str, H.Columns] = {}
        self._versions: Dict[str, int] = {}

    def _reset(self) -> None:
        self.model = H.HistoryModel()
        self._offset = 0
        self._partial = b""
        self._skipping = False
        self._cache = {}
        self._versions = {}

    def poll(self) -> Dict[str, H.Columns]:
        """Read what the file gained; return the series of every metric.
        Raises :class:`HistoryError` with a one-line reason for a file that
        cannot be used (the last series are kept)."""
        real = resolve_inside(self.folder, self.relpath)
        if real is None:
            raise HistoryError("%r is not inside the progress folder" % (self.relpath,))
        try:
            # below the folder's descriptor, no link followed on the way: a
            # folder of the path swapped for a link since the check above
            # (to /dev, say) is refused, and nothing but a regular file is read
            fd = open_beneath(self.folder, self.relpath)
        except FileNotFoundError:
            return self.series()  # not written yet
        except Refused:
            raise HistoryError("%s is not a regular file" % self.relpath) from None
        except OSError as e:
            raise HistoryError("cannot open %s: %s" % (self.relpath, describe(e))) from None
        try:
            st = os.fstat(fd)
            if self.owner is not None and st.st_uid != self.owner:
                raise HistoryError("%s is owned by %s, not by the run's owner %s" % (
                    self.relpath, user_name(st.st_uid), user_name(self.owner)))
            if st.st_ino != self._ino or st.st_size < self._offset:
                self._reset()
                self._ino = st.st_ino
            if st.st_size > self._offset:
                os.lseek(fd, self._offset, os.SEEK_SET)
                want = min(st.st_size - self._offset, READ_MAX)
                chunks: List[bytes] = []
                got = 0
                while got < want:
                    b = os.read(fd, want - got)
                    if not b:
                        break
                    chunks.append(b)
                    got += len(b)
                self._offset += got
                self._feed(b"".join(chunks))
        finally:
            os.close(fd)
        return self.series()

    def _feed(self, data: bytes) -> None:
        # Parsing a large file makes ~10^5 lists and tuples that all stay
        # alive: the cyclic GC would walk them again and again while they
        # are made (a third of the time). None of them can be in a cycle.
        paused = gc.isenabled() and len(data) > GC_PAUSE_BYTES
        if paused:
            gc.disable()
        try:
            self._feed_lines(data)
        finally:
            if paused:
                gc.enable()

    def _feed_lines(self, data: bytes) -> None:
        if self._skipping:
            nl = data.find(b"\n")
            if nl < 0:
                return
            self._skipping = False
            data = data[nl + 1:]
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            if len(data) > LINE_MAX:
                self._partial = b""
                self._skipping = True
                self.bad_lines += 1
            return
        self._partial = data[cut + 1:]
        if len(self._partial) > LINE_MAX:
            self._partial = b""
            self._skipping = True
            self.bad_lines += 1
        objs = []
        fast, not_parsed = fastjson.parse, fastjson.NOT_PARSED  # (orjson where the collector turned it on)
        for raw in data[:cut].split(b"\n"):
            if not raw.strip():
                continue
            obj = fast(raw)
            if obj is not not_parsed:
                objs.append(obj)
                continue
            try:
                objs.append(json.loads(raw))
            except (ValueError, RecursionError):  # RecursionError: nested too deeply
                self.bad_lines += 1
        self.bad_lines += self.model.add_lines(objs)

    def series(self) -> Dict[str, H.Columns]:
        out: Dict[str, H.Columns] = {}
        for name, m in self.model.metrics.items():
            if not len(m):
                continue
            if self._versions.get(name) != m.version or name not in self._cache:
                self._cache[name] = H.columns(_charted(m.entries()))
                self._versions[name] = m.version
            out[name] = self._cache[name]
        return out


def _charted(entries: List[H.Entry]) -> List[H.Entry]:
    """``entries`` but those whose step or time is an int beyond the float
    range (JSON has no digit limit: a line of another user's file may give
    one), which no chart can place (and ``float()`` of which raises)."""
    try:
        for col in (1, 2):
            if entries:
                float(max(e[col] for e in entries))
                float(min(e[col] for e in entries))
        return entries
    except OverflowError:
        return [e for e in entries if _float_ok(e[1]) and _float_ok(e[2])]


def _float_ok(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
    except OverflowError:
        return False
    return True
