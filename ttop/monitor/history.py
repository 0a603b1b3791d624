"""The writer side of the metric history file (format: :mod:`ttop.histfile`).

The training loop's ``update_metrics(loss=x)`` only extends a flat list (the
monitor's ``_mq``) by the pair ``n, kwargs``: one C call, atomic under the
GIL, that keeps no tuple alive (a tuple per update would be a container for
the garbage collector to track, and splitting a list of tuples costs the
writer far more than two slices of a flat one). Phase changes append the
pair ``-1, k`` (a marker: the batches to add to the step count). Everything else happens
in the monitor's writer thread, which swaps the list for an empty one at each
tick (updates made before the monitor starts wait there until it does):

* :meth:`MetricLog.drain` (called while the progress file is built) folds the
  queue into the latest values (the progress file's ``metrics``) and into the
  pending points of each metric, numbering each point with the run's global
  batch count (``step``);
* :meth:`MetricLog.flush` (called after the progress file is written) turns
  a tick's points into entries (points, or at most
  :data:`~ttop.histfile.TICK_POINTS` buckets that keep min, max and a NaN /
  inf flag), appends one line to ``<run>.history.jsonl``, and compacts the file
  (atomically, through a temp file and a rename) once
  :data:`~ttop.histfile.COMPACT_BYTES` were appended since the last
  compaction. It never raises: a write error is kept in :attr:`MetricLog.error`
  and the whole file is written again next tick.
"""
from __future__ import annotations

import math
import os
import stat
import threading
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import histfile as H
from ..jsonvalues import _valid_unicode
from ..progress import json_safe, number_or_none, write_text_atomic
from .names import _user

#: The progress file's ``metrics`` keep at most this many names (the first
#: ones given): a name per step or per sample would otherwise make every
#: write copy, compare and encode every name given so far.
MAX_NAMES = 10000

_FLOATS = {float}
_NUMBERS = {float, int, bool}


def _float(v: Any) -> Optional[float]:
    t = type(v)
    if t is float:
        return v
    try:
        return number_or_none(v if t is int else json_safe(v))  # an int beyond floats: +-inf
    except Exception:
        return None


def _as_floats(steps: Sequence[float], vals: List[Any]) -> Tuple[Sequence[float], List[float]]:
    """A metric's values as floats (numpy / torch scalars, ints, bools
    converted), those that are no number left out with their steps."""
    if set(map(type, vals)) == _FLOATS:
        return steps, vals
    fl: List[Any] = [v if type(v) is float else _float(v) for v in vals]
    if None in fl:
        keep = [i for i, v in enumerate(fl) if v is not None]
        return [steps[i] for i in keep], [fl[i] for i in keep]
    return steps, fl


def _plain_buckets(steps: Sequence[float], vals: List[Any], t: float) -> Optional[List[H.Entry]]:
    """A tick's buckets of ``vals`` taken as they are, without a look at
    each value's type, when they are all floats, ints or bools (each
    compared as the float it converts to; the few picked as a bucket's
    min, max or last are converted); None when one of them may be anything
    else (they are then converted one by one)."""
    if type(vals[0]) not in _NUMBERS or type(vals[-1]) not in _NUMBERS:
        return None  # e.g. torch tensors: no sum of them (a kernel launch each on a GPU)
    try:
        cols = _constant_columns(steps, vals)
        if cols is not None:
            s0, s1, lo, hi, last = cols
            return _entries(s0, s1, lo, hi, last, t)
        total = sum(vals)  # an exact float only when every value is a float, an int or a bool
        if type(total) is not float:
            return None
        if total - total != 0:  # a NaN or an infinity: bucket_of's finite minima and maxima
            ents = H.buckets(steps, vals, H.TICK_POINTS, t, total)
            picked = set(type(x) for e in ents for x in (e[3], e[4], e[5]))
            if picked == _FLOATS:
                return ents
            if not picked <= _NUMBERS:
                return None
            return [(e[0], e[1], e[2], float(e[3]), float(e[4]), float(e[5]), e[6]) for e in ents]
        s0, s1, lo, hi, last = H.finite_columns(steps, vals, H.TICK_POINTS)
    except Exception:  # a str, None, an int beyond floats, an object that does not compare
        return None
    return _entries(s0, s1, lo, hi, last, t)


def _constant_columns(steps: Sequence[Any], vals: List[Any]) -> Optional[Tuple[List[Any], ...]]:
    """:func:`ttop.histfile.finite_columns` of a tick that gave one finite
    float throughout (a learning rate, a constant: one ``count``, no sum and
    no sort): each bucket's minimum and maximum are its first value (of
    equal values, the first), its last value its last; None for any other
    tick."""
    v = vals[0]
    if type(v) is not float or v != vals[-1] or v - v != 0 or vals.count(v) != len(vals):
        return None  # (the last value first: a metric that moves is told without a count)
    starts, ends = H.cuts(len(vals), H.TICK_POINTS)
    lasts = list(map((-1).__add__, ends))
    firsts = list(map(vals.__getitem__, starts))
    return (list(map(steps.__getitem__, starts)), list(map(steps.__getitem__, lasts)), firsts, firsts,
            list(map(vals.__getitem__, lasts)))


def _entries(s0: Sequence[Any], s1: Sequence[Any], lo: List[Any], hi: List[Any], last: List[Any],
             t: float) -> Optional[List[H.Entry]]:
    """A tick's bucket entries from finite columns, the values picked
    converted to floats (None when one of them is no float, int or bool)."""
    picked = set(map(type, lo))
    picked.update(map(type, hi))
    picked.update(map(type, last))
    if picked != _FLOATS:
        if not picked <= _NUMBERS:
            return None
        lo, hi, last = list(map(float, lo)), list(map(float, hi)), list(map(float, last))
    return list(zip(s0, s1, repeat(t), lo, hi, last, repeat(False)))


class _Dropped(list):
    """The update queue of a monitor that no longer writes (its run ended,
    or a forked child inherited it): what is put there is dropped, not kept
    for a writer that will never come (a million updates held some 230 MB).
    Only such monitors pay for the Python-level ``extend``."""

    __slots__ = ()

    def extend(self, items: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass


#: One for every such monitor: it never holds anything.
DROPPED: List[Any] = _Dropped()


class _Shifted:
    """The steps of a drain's updates after a phase ended: ``base + n`` for
    each batch count ``n``, made only where read (a tick's buckets read two
    steps of each, not a new int for every update)."""

    __slots__ = ("ns", "base")

    def __init__(self, ns: List[int], base: int) -> None:
        self.ns = ns
        self.base = base

    def __len__(self) -> int:
        return len(self.ns)

    def __getitem__(self, i: Any) -> Any:
        if type(i) is slice:
            return list(map(self.base.__add__, self.ns[i]))
        return self.base + self.ns[i]

    def __iter__(self) -> Iterator[int]:
        return map(self.base.__add__, self.ns)


class _Swapped(OSError):
    """The history's name now holds another file: a hard link to another of
    the user's files, or another user's file (renamed there in a folder
    without the sticky bit). Not appended to: the history is written whole
    again, which puts a file of its own under the name."""


class MetricLog:
    def __init__(self, folder: str, run_name: str, report: Callable[[str], None]) -> None:
        #: updates (batch counter, values) and phase markers (-1, batches)
        self.queue: List[Tuple[int, Any]] = []
        self._prev: Optional[List[Any]] = None
        self._prev_done = 0
        self.folder = folder
        self.report = report
        self.set_run_name(run_name)
        self._base = 0  # batches of ended phases
        #: per metric: (chunks of steps, chunks of float values) since the last flush
        self._pending: Dict[str, Tuple[List[Sequence[float]], List[List[Any]]]] = {}
        self.model = H.HistoryModel()
        self._appended = 0  # bytes appended since the last compaction
        self.error: Optional[str] = None  # why the last write failed
        self._created = False
        self._rewrite = False
        self._lock = threading.Lock()  # the pending points (drain / flush)
        self._io_lock = threading.Lock()  # one file write at a time
        self._too_many = False  # more than MAX_NAMES names were given (said once)

    @property
    def file_name(self) -> Optional[str]:
        """The file's name (relative to the folder) once it exists, else None."""
        return self.name if self._created else None

    def set_run_name(self, run_name: str) -> None:
        self.name = H.history_name(run_name)
        self.path = os.path.join(self.folder, self.name)

    # -- in the writer thread, with the run's lock held ---------------------------

    def drain(self, latest: Dict[str, Any], items: Optional[List[Any]] = None) -> None:
        """Fold queued updates into ``latest`` and the pending points.

        ``items``: the flat list ``[n, values, n, values, ...]`` the caller
        just swapped out of the hot path (``q, monitor._mq = monitor._mq,
        []``); without it, :attr:`queue` (a list of ``(n, values)`` tuples)
        is swapped here. An update appended to a list just after it was
        swapped out (the loop had already loaded it) is folded at the next
        drain."""
        if items is None:
            queued, self.queue = self.queue, []
            items = [x for pair in queued for x in pair]
        with self._lock:
            prev, done = self._prev, self._prev_done
            if prev is not None and len(prev) > done:
                late = prev[done:]  # late arrivals in the previous list
                self._drain(late[0::2], late[1::2], latest)
            self._drain(items[0::2], items[1::2], latest)
            self._prev, self._prev_done = items, len(items)

    def _drain(self, ns: List[int], kws: List[Any], latest: Dict[str, Any]) -> None:
        if not ns:
            return
        # markers are exactly -1 (a batch count never is); without one, the common case, the
        # lists are folded as they are, not copied
        cuts = [i for i, n in enumerate(ns) if n < 0] if -1 in ns else []
        start = 0
        for c in cuts + [len(ns)]:
            if c > start:
                part_ns, part_kws = (ns, kws) if c - start == len(ns) else (ns[start:c], kws[start:c])
                try:
                    self._fold(part_ns, part_kws, latest)
                except Exception:  # never let odd values stop the writer: keep the latest ones
                    for kw in part_kws:
                        for name, v in kw.items():
                            if self._keep(str(name), latest):
                                latest[str(name)] = v
            if c < len(ns):
                self._base += kws[c]  # a phase ended: the marker carries the batches to add
            start = c + 1

    def _fold(self, ns: List[int], kws: List[Any], latest: Dict[str, Any]) -> None:
        """Fold updates of one phase (C-level list operations, no per-value
        Python work beyond a type check). The common case, every update
        with the same names, is checked without comparing key sets: each of
        the first update's names is in every update, and the updates hold
        as many names in all as that many copies of the first."""
        base = self._base
        steps: Any = ns if base == 0 else _Shifted(ns, base)
        k0 = kws[0]
        cols: Optional[Dict[Any, List[Any]]] = None
        if sum(map(len, kws)) == len(k0) * len(kws):
            try:
                cols = {name: list(map(itemgetter(name), kws)) for name in k0}
            except KeyError:  # one update lacks a name another one has
                cols = None
        if cols is not None:
            if not all(type(name) is str for name in cols):  # (1 and "1": one metric, the later one's values)
                cols = {str(name): vals for name, vals in cols.items()}
            for name, vals in cols.items():
                self._points(name, steps, vals, latest)
            return
        # names in the order they were first given (a set's order changes with
        # the hash seed: the progress file's metrics, and what is kept of them
        # when they do not all fit, would change from run to run)
        if base:
            steps = list(steps)
        if not all(type(name) is str for kw in kws for name in kw):
            kws = [{str(name): v for name, v in kw.items()} for kw in kws]
        # one pass over the updates, not one per name: thousands of names in a
        # tick (a name per step or per sample) made that quadratic, for minutes
        # under the run's lock, where SIGTERM and the end of the run wait
        cols2: Dict[str, Tuple[List[Any], List[Any]]] = {}
        for s, kw in zip(steps, kws):
            for name, v in kw.items():
                c = cols2.get(name)
                if c is None:
                    c = cols2[name] = ([], [])
                c[0].append(s)
                c[1].append(v)
        for name, (ss, vs) in cols2.items():
            self._points(name, ss, vs, latest)

    def _points(self, name: Any, steps: Sequence[float], vals: List[Any], latest: Dict[str, Any]) -> None:
        """Queue one metric's points of this drain as a chunk (the steps are
        shared by every metric of the drain, not copied)."""
        if type(name) is not str:
            name = str(name)  # the progress file's key for it: 1 and "1" are one metric, not two equal keys
        if name not in latest and not self._keep(name, latest):
            return
        latest[name] = vals[-1]
        pending = self._pending
        p = pending.get(name)
        if p is None:
            if name not in self.model.metrics and len(self.model.metrics) + len(pending) >= H.MAX_METRICS:
                return
            p = pending[name] = ([], [])
        p[0].append(steps)  # values as given: converted by flush
        p[1].append(vals)

    def _keep(self, name: str, latest: Dict[str, Any]) -> bool:
        """Is there room for one more name in ``latest``? Said once when not."""
        if name in latest or len(latest) < MAX_NAMES:
            return True
        if not self._too_many:
            self._too_many = True
            self.report("ttop: more than %d metric names (the first left out: %r; a name per step or per sample?): "
                        "only the first %d are written" % (MAX_NAMES, name, MAX_NAMES))
        return False

    # -- in the writer thread, after the progress file is written --------------------

    def flush(self, wall: float) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        with self._io_lock:
            self._flush(pending, wall)

    def _flush(self, pending: Dict[str, Tuple[List[Sequence[float]], List[List[Any]]]], wall: float) -> None:
        if not pending and (self._created or not self.model.metrics):
            return  # nothing new (no file at all before the first metric)
        per_metric: Dict[str, List[H.Entry]] = {}
        for name, (step_chunks, value_chunks) in pending.items():
            if not name.isascii():  # a lone surrogate (os.fsdecode of a non-UTF-8 name): U+FFFD, as in the progress file
                name = _valid_unicode(name)
            if len(value_chunks) == 1:
                steps, values = step_chunks[0], value_chunks[0]
            else:
                steps, values = list(chain.from_iterable(step_chunks)), list(chain.from_iterable(value_chunks))
            ents = _plain_buckets(steps, values, wall) if len(values) > H.TICK_POINTS else None
            if ents is None:
                steps, values = _as_floats(steps, values)
                if not values:
                    continue
                if len(values) <= H.TICK_POINTS:
                    ents = [(s, s, wall, v if v - v == 0 else math.nan, v if v - v == 0 else math.nan, v,
                             not v - v == 0) for s, v in zip(steps, values)]
                else:
                    ents = H.buckets(steps, values, H.TICK_POINTS, wall)
            per_metric[name] = ents
        for name, ents in per_metric.items():
            m = self.model.metric(name)
            if m is not None:
                m.add(ents)
        try:
            if not self._created or self._rewrite or self._appended >= H.COMPACT_BYTES:
                self._compact()
            elif per_metric:
                line = H.tick_line(wall, per_metric).encode("utf-8")
                try:
                    self._append(line)
                except (FileNotFoundError, _Swapped):  # removed, or another file put in its place: write it whole
                    self._compact()
            self.error = None
        except OSError as e:
            # retried every tick, silently: the progress file's writer already
            # reports a folder that cannot be written
            self._rewrite = True  # write it whole next time
            self.error = str(e)

    def _leave_squatted_name(self) -> bool:
        """Another user's file holds the history's name (a sticky folder:
        it cannot be replaced; or a folder, which nothing replaces): take a hidden name nobody can guess instead
        (the progress file's ``history_file`` tells readers) and say so
        once. False when the name is not another user's."""
        try:
            uid = os.lstat(self.path).st_uid
        except OSError:
            return False
        if uid == os.geteuid():
            return False
        old = self.path
        self.name = ".%s.%s%s" % (self.name[:-len(H.SUFFIX)], os.urandom(6).hex(), H.SUFFIX)
        self.path = os.path.join(self.folder, self.name)
        self.report("ttop: %s belongs to %s, another user, and cannot be replaced; the metric history "
                    "is written to %s instead" % (old, _user(uid), self.name))
        return True

    def _append(self, line: bytes) -> None:
        # O_NONBLOCK and the S_ISREG check: a FIFO put in its place must not hang the writer
        flags = (os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_NONBLOCK", 0))
        fd = os.open(self.path, flags)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError("%s is not a regular file" % self.path)
            if st.st_nlink != 1 or st.st_uid != os.geteuid():  # swapped in by another user of the folder
                raise _Swapped(self.path)
            view = memoryview(line)
            while view:
                k = os.write(fd, view)
                if k <= 0:
                    raise OSError("short write to %s" % self.path)
                view = view[k:]
        finally:
            os.close(fd)
        self._appended += len(line)

    def _compact(self) -> None:
        try:
            write_text_atomic(self.path, "".join(self.model.dump_lines({"file": self.name})))
        except (PermissionError, IsADirectoryError):  # (a folder: no file is renamed over it, even by root)
            if not self._leave_squatted_name():
                raise
            write_text_atomic(self.path, "".join(self.model.dump_lines({"file": self.name})))
        self._created = True
        self._rewrite = False
        self._appended = 0
