"""CSV statistics: ``<csv_dir>/<run>_matrix.csv`` and ``<run>_overall.csv``.

:class:`CsvSink` consumes published snapshots. It is called from a collector
listener (``collector.add_listener(sink.listener(collector))``), so the same
object serves ``--headless`` and the curses UI with ``--csv-interval``, with no
thread of its own.

``<run>_matrix.csv``: one row per sample while the run is RUNNING, plus one
row when it is first seen ended (so the final status is recorded). A RUNNING
run whose heartbeat stopped (``stale``) and whose process is not seen alive
here (e.g. it died on another host) gets no further rows until its file
changes again. Columns:
:data:`MATRIX_COLUMNS`, then one ``metric_<name>`` column per metric the run has
ever reported, in order of first appearance.

New metrics mid-run: when a run reports a metric the file has no column for,
the file is rewritten with the wider header (old rows get empty cells) into a
temp file in the same folder, then :func:`os.replace` puts it in place. A
reader, or a crash, sees the old file or the new one, never a mix; the header
always matches every row, so ``csv`` and pandas load every file whole. (A
long/"tidy" layout would avoid the rewrite but makes the common use, a pandas
frame with one column per metric, a pivot away; new metrics are rare, so the
one-off rewrite costs little.)

Crash safety: every row is appended with a single :func:`os.write` of one
complete line on a file opened ``O_APPEND``. Killing ttop (even ``kill -9``)
loses at most the row being written, never leaves half a row. A short write
(disk full) is truncated back. Rows are not fsync'ed: a power cut may lose the
last seconds the OS had not flushed.

``<run>_overall.csv``: a header and one row summarising the run (start, end,
duration, final status, min/mean/max of each resource over the samples,
sample count), rewritten atomically (temp + ``os.replace``): at the run's
first row, whenever its status changes, at most every :data:`OVERALL_EVERY`
seconds in between, and when the sink closes. (Rewriting it at every sample
cost more than everything else the sink does together.)
When ttop restarts with an existing matrix file it appends to it and the
summary continues from the rows already there.

File names come from the run key (the progress file name without ``.json``),
passed through :func:`ttop.progress.sanitize_run_name`: every file stays inside
``csv_dir``.
"""
from __future__ import annotations

import csv
import hashlib
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..collect.snapshot import Snapshot
from ..progress import RUNNING, sanitize_run_name
from ..ratelimit import PerKeyLimit
from ..view.text import clean
from .csvfiles import (
    MATRIX_COLUMNS,
    MATRIX_SUFFIX,
    MAX_METRIC_COLUMNS,
    OVERALL_COLUMNS,
    OVERALL_EVERY,
    OVERALL_SUFFIX,
    SUMMARY_RESOURCES,
    RunFiles,
    cell,
    iso_utc,
    kept_key,
    metric_column,
    remove_stale_temps,
)

__all__ = [
    "CsvSink",
    "MATRIX_COLUMNS",
    "MAX_METRIC_COLUMNS",
    "OVERALL_COLUMNS",
    "OVERALL_EVERY",
    "SUMMARY_RESOURCES",
    "cell",
    "iso_utc",
    "metric_column",
    "remove_stale_temps",
]


#: New starts of one run name a CSV sink gives files of their own in an hour
#: (the rest go on in the files it has).
MAX_RESTARTS = 10


def _identity(run: Any) -> Tuple[Any, Any, Any]:
    """What tells two runs under one name apart: their start and process."""
    data = run.data
    return data.get("started_at"), data.get("pid"), data.get("pid_create_time")


def _same_run(a: Tuple[Any, ...], b: Tuple[Any, ...]) -> bool:
    """Two identities of one run: nothing known of both differs (a writer
    may give its process's create time only from its second write on)."""
    return all(x is None or y is None or x == y for x, y in zip(a, b))


def check_folder_links(path: str) -> None:
    """Raise OSError unless each symbolic link on the way to ``path``
    (absolute) is ttop's user's or root's in a folder no one else may change,
    as for ``--events``: one another user put in a shared folder would have
    ttop write CSV files, and clear what look like its temp files, wherever
    the link names."""
    from .alerts import _check_links

    at = os.sep
    for part in path.split(os.sep):
        if part:
            at = os.path.join(at, part)
            if os.path.islink(at):
                at = _check_links(at)


class CsvSink:
    """Writes CSV statistics for every run of published snapshots.

    ``CsvSink(csv_dir, interval)`` creates ``csv_dir`` (raises OSError with the
    reason if it cannot), and creates it again if it is removed while writing. :meth:`maybe_write` writes when ``interval`` seconds
    have passed since its last rows; :meth:`close` writes the final summaries.
    Errors while writing never propagate to the caller (the collector thread):
    they go to ``on_error(message)`` and :attr:`last_error`, and writing goes on
    for the other runs and the next samples. Thread-safe.
    """

    def __init__(
        self,
        csv_dir: str,
        interval: float,
        *,
        on_error: Optional[Callable[[str], None]] = None,
        clock: Callable[[], float] = time.monotonic,
        overall_every: float = OVERALL_EVERY,
    ) -> None:
        if not (interval > 0):
            raise ValueError("interval must be > 0")
        self.csv_dir = os.path.abspath(csv_dir)
        check_folder_links(self.csv_dir)
        os.makedirs(self.csv_dir, exist_ok=True)
        if not os.access(self.csv_dir, os.W_OK | os.X_OK):
            raise PermissionError("cannot write to %s" % self.csv_dir)
        remove_stale_temps(self.csv_dir)
        self.interval = float(interval)
        self.overall_every = float(overall_every)
        self.on_error = on_error
        self.last_error: Optional[str] = None
        self._clock = clock
        self._lock = threading.Lock()
        self._files: Dict[str, RunFiles] = {}
        self._stems: Dict[str, str] = {}  # stem -> key
        self._restarts = PerKeyLimit(MAX_RESTARTS, 3600.0)  # a run's files set aside, per run key
        self._restart_said: Dict[str, float] = {}
        self._last_write: Optional[float] = None
        self._last_seq: Optional[int] = None
        self._closed = False

    # -- scheduling

    def _due(self, now: float) -> bool:
        if self._last_write is None:
            return True
        slack = min(0.5, 0.25 * self.interval)
        return now - self._last_write >= self.interval - slack

    def maybe_write(self, snapshot: Optional[Snapshot]) -> bool:
        """Write rows for ``snapshot`` if ``interval`` has elapsed since the last
        rows and it is not the snapshot written last. Returns True if it wrote."""
        if snapshot is None:
            return False
        with self._lock:
            if self._closed or snapshot.seq == self._last_seq:
                return False
            now = self._clock()
            if not self._due(now):
                return False
            self._last_write = now
            self._last_seq = snapshot.seq
            self._write(snapshot, now)
            return True

    def write(self, snapshot: Snapshot) -> None:
        """Write rows for ``snapshot`` now (whatever the interval)."""
        with self._lock:
            if self._closed:
                return
            self._last_write = now = self._clock()
            self._last_seq = snapshot.seq
            self._write(snapshot, now)

    def listener(self, collector: Any) -> Callable[[], None]:
        """A function for ``collector.add_listener``: writes ``collector.latest``
        when due. Never raises."""

        def _on_publish() -> None:
            try:
                self.maybe_write(collector.latest)
            except Exception as e:  # never break the collector thread
                self._error("CSV sink failed: %s" % e)

        return _on_publish

    # -- writing

    def _stem(self, key: str) -> str:
        """The file name stem of run ``key``: its name made safe, or that
        with ``~`` and a digest of the key where the name is another run's,
        in this session or, by the key its summary file names, an earlier
        one (keys " a" and "a" are both "a": which came first must not
        decide after a restart whose files a run adopts)."""
        stem = sanitize_run_name(key)
        owner = self._stems.get(stem)
        if owner is None:
            kept = kept_key(os.path.join(self.csv_dir, stem + OVERALL_SUFFIX))
            taken = kept is not None and kept != cell(key)
        else:
            taken = owner != key
        if taken:
            stem = "%s~%s" % (stem, hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:8])
        self._stems[stem] = key
        return stem

    def _files_for(self, key: str) -> RunFiles:
        rf = self._files.get(key)
        if rf is None:
            stem = self._stem(key)
            rf = RunFiles(key, stem, self.csv_dir, MAX_METRIC_COLUMNS)
            for p in (rf.matrix_path, rf.overall_path):
                if os.path.dirname(p) != self.csv_dir:  # pragma: no cover - sanitize guarantees it
                    raise OSError("refusing to write outside %s: %r" % (self.csv_dir, p))
            self._files[key] = rf
            for note in rf.notes:
                self._error(note)
        return rf

    def _ensure_folder(self) -> bool:
        """Re-create ``csv_dir`` if it was removed; its runs start afresh (new
        files, new summaries). False if it is not there and cannot be made,
        or a symbolic link on the way fails :func:`check_folder_links`."""
        try:
            check_folder_links(self.csv_dir)
        except OSError as e:
            self._error("CSV folder %s not written: %s" % (self.csv_dir, e.strerror or e))
            return False
        if os.path.isdir(self.csv_dir):
            return True
        try:
            os.makedirs(self.csv_dir, exist_ok=True)
        except OSError as e:
            self._error("CSV folder %s is gone and cannot be re-created: %s" % (self.csv_dir, e.strerror or e))
            return False
        self._files.clear()
        self._stems.clear()
        self._error("CSV folder %s was removed; re-created it" % self.csv_dir)
        return True

    def _write(self, snapshot: Snapshot, now: float) -> None:
        if not self._ensure_folder():
            return
        taken_at = float(snapshot.taken_at)
        for run in snapshot.runs:
            try:
                rf = self._files_for(run.key)
                ident = _identity(run)
                if rf.samples and rf.identity is not None and not _same_run(ident, rf.identity) and self._may_split(run.key, now):
                    rf = self._set_aside(run.key, rf)  # a new run under the same name
                rf.identity = ident
                if run.status == RUNNING:
                    rf.final_written = False
                    updated = run.data.get("updated_at")
                    if run.stale and run.alive is not True and rf.samples and updated == rf.last_updated_at:
                        # silent and not seen alive here (e.g. dead on another
                        # host): no copies of its last row. A live local
                        # process that stopped reporting keeps its rows: its
                        # CPU and memory still tell what it is doing.
                        continue
                    rf.last_updated_at = updated
                elif rf.final_written:
                    continue
                elif rf.last_status == run.status and rf.samples:
                    # ended, and its file already ends with this status (restart)
                    rf.final_written = True
                    rf.remember(run)
                    if not os.path.exists(rf.overall_path):
                        rf.write_overall()
                    continue
                else:
                    rf.final_written = True
                rf.add_sample(run, taken_at)
                rf.dirty = True
                if rf.overflow and not rf.overflow_reported:
                    rf.overflow_reported = True
                    self._error("run %s has more than %d metrics: the rest get no CSV column" % (clean(run.key), MAX_METRIC_COLUMNS))
                if rf.overall_at is None or rf.status != rf.overall_status or now - rf.overall_at >= self.overall_every:
                    rf.overall_at = now
                    rf.write_overall()
            except (OSError, ValueError, csv.Error) as e:
                self._error("cannot write CSV for run %s: %s" % (clean(run.key), e))

    def _may_split(self, key: str, now: float) -> bool:
        """Whether a new start of run ``key`` gets files of its own: at most
        :data:`MAX_RESTARTS` times an hour. A file whose start changes at
        every write (a broken writer, or another user's file in a shared
        folder) would otherwise leave two new files every cycle; past that
        its rows go on in the files it has, and one line says so."""
        if self._restarts.take(key, now):
            return True
        said = self._restart_said.get(key)
        if said is None or now - said >= 3600.0:
            self._restart_said[key] = now
            self._error("run %s started again %d times within an hour: its rows go on in %s" % (
                clean(key), MAX_RESTARTS, os.path.basename(self._files[key].matrix_path)))
        return False

    def _set_aside(self, key: str, rf: RunFiles) -> RunFiles:
        """A new run took ``key``'s name (another start, another process):
        the earlier run's files, their summary made final, are kept under a
        name telling its start (``<stem>.<yyyymmddTHHMMSS>_matrix.csv``), and
        the new run gets files of its own, so neither's rows nor summary mix
        with the other's."""
        if rf.dirty:
            rf.write_overall()
        start = rf.started_at if rf.started_at is not None else rf.first_ts
        try:
            tag = time.strftime("%Y%m%dT%H%M%S", time.gmtime(start)) if start is not None else "earlier"
        except (OverflowError, ValueError, OSError):  # a start no date can be made of (a file's 1e20)
            tag = "earlier"
        kept = []
        for path, suffix in ((rf.matrix_path, MATRIX_SUFFIX), (rf.overall_path, OVERALL_SUFFIX)):
            aside = "%s.%s%s" % (path[: -len(suffix)], tag, suffix)
            n = 1
            while os.path.lexists(aside):
                n += 1
                aside = "%s.%s-%d%s" % (path[: -len(suffix)], tag, n, suffix)
            try:
                os.rename(path, aside)
                kept.append(os.path.basename(aside))
            except FileNotFoundError:
                pass
        del self._files[key]
        self._error("run %s started again under the same name: the earlier run's CSV files are kept as %s" % (
            clean(key), " and ".join(kept) or "nothing (none were written)"))
        return self._files_for(key)

    def _error(self, message: str) -> None:
        self.last_error = message
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:
                pass

    def close(self) -> bool:
        """Rewrite every run's overall file once more and stop writing.
        Returns False if a summary could not be written (reported through
        ``on_error``), True otherwise."""
        with self._lock:
            if self._closed:
                return True
            self._closed = True
            if not self._ensure_folder():  # (said why)
                return False
            ok = True
            for rf in self._files.values():
                if not rf.samples or not (rf.dirty or not os.path.exists(rf.overall_path)):
                    continue
                try:
                    rf.write_overall()
                except OSError as e:
                    ok = False
                    self._error("cannot write %s: %s" % (rf.overall_path, e))
            return ok

    def paths(self) -> List[Tuple[str, str]]:
        """``(matrix_path, overall_path)`` of every run written so far."""
        with self._lock:
            return [(rf.matrix_path, rf.overall_path) for rf in self._files.values()]
