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
import io
import math
import os
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..progress import RUNNING, number_or_none, sanitize_run_name
from ..view.text import clean

#: Fixed columns of ``<run>_matrix.csv``; ``metric_<name>`` columns follow.
MATRIX_COLUMNS = (
    "time",
    "timestamp",
    "status",
    "status_inferred",
    "phase",
    "epoch",
    "batch",
    "total_batches",
    "rate",
    "cpu_percent",
    "rss_bytes",
    "gpu_memory_bytes",
    "num_procs",
    "num_threads",
)
METRIC_PREFIX = "metric_"
#: Resources summarised in ``<run>_overall.csv`` (``<name>_min/_mean/_max``).
SUMMARY_RESOURCES = ("cpu_percent", "rss_bytes", "gpu_memory_bytes", "num_procs", "num_threads")
#: Columns of ``<run>_overall.csv``.
OVERALL_COLUMNS = (
    "run_name",
    "key",
    "start",
    "end",
    "start_timestamp",
    "end_timestamp",
    "duration",
    "status",
    "status_inferred",
    "status_reason",
    "samples",
) + tuple("%s_%s" % (r, s) for r in SUMMARY_RESOURCES for s in ("min", "mean", "max"))

MATRIX_SUFFIX = "_matrix.csv"
#: At most this many ``metric_`` columns per run (each new one rewrites the
#: file; a run inventing metric names every step would otherwise cost O(n^2)).
MAX_METRIC_COLUMNS = 256
#: While a run is RUNNING its summary is rewritten at most this often (s); at
#: once when its status changes, and when the sink closes.
OVERALL_EVERY = 10.0
#: Permissions of the CSV files (readable by the people who analyse them).
FILE_MODE = 0o644
OVERALL_SUFFIX = "_overall.csv"


# ---------------------------------------------------------------------------
# cells


def iso_utc(ts: Optional[float]) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds, or "" for None."""
    if ts is None or not math.isfinite(ts):
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return ""


def cell(value: Any) -> str:
    """One CSV cell: "" for None, 1/0 for bools, ``repr`` for floats (``nan``,
    ``inf`` load as floats in pandas), the NaN/Infinity strings of progress
    files as floats, other text made one-line and terminal-safe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        num = number_or_none(value)
        if num is not None:
            return repr(num)
        return clean(value)
    return clean(value)


def metric_column(name: Any) -> str:
    """The matrix column of a metric: ``metric_`` + the name made one-line."""
    return METRIC_PREFIX + clean(str(name))


def _csv_text(rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerows(rows)
    return buf.getvalue()


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        f = float(value)
    else:
        try:
            f = float(value)
        except (TypeError, ValueError):
            return None
    return f if math.isfinite(f) else None


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a hidden temp file in the same folder
    (``.<name>.<pid>.tmp``, created with ``O_EXCL`` so it never follows a
    planted link; a stale one left by a killed ttop is removed first) and
    :func:`os.replace`. Cheaper than :func:`tempfile.mkstemp`, which matters
    at one summary per run per write."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, ".%s.%d.tmp" % (name, os.getpid()))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, FILE_MODE)
    except FileExistsError:
        os.unlink(tmp)
        fd = os.open(tmp, flags, FILE_MODE)
    try:
        try:
            data = text.encode("utf-8")
            if os.write(fd, data) != len(data):
                raise OSError("short write to %s" % tmp)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class _Agg:
    __slots__ = ("n", "total", "lo", "hi")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def add(self, value: Any) -> None:
        f = _num(value)
        if f is None:
            return
        self.n += 1
        self.total += f
        self.lo = min(self.lo, f)
        self.hi = max(self.hi, f)

    def cells(self) -> List[str]:
        if not self.n:
            return ["", "", ""]
        return [_fmt(self.lo), _fmt(self.total / self.n), _fmt(self.hi)]


def _fmt(f: float) -> str:
    if f == int(f) and abs(f) < 2**63:
        return str(int(f))
    return repr(round(f, 6))


# ---------------------------------------------------------------------------
# one run's files


class _RunFiles:
    def __init__(self, key: str, stem: str, csv_dir: str) -> None:
        self.key = key
        self.matrix_path = os.path.join(csv_dir, stem + MATRIX_SUFFIX)
        self.overall_path = os.path.join(csv_dir, stem + OVERALL_SUFFIX)
        self.columns: List[str] = list(MATRIX_COLUMNS)
        self.known = set(self.columns)
        self.aggs = {r: _Agg() for r in SUMMARY_RESOURCES}
        self.samples = 0
        self.first_ts: Optional[float] = None
        self.last_ts: Optional[float] = None
        self.last_status: Optional[str] = None
        self.last_updated_at: Any = None  # the file's updated_at at the last RUNNING row
        self.final_written = False
        self.needs_rewrite = False  # existing file must be rewritten (torn tail, missing columns)
        self.run_name = key
        self.status = ""
        self.inferred = False
        self.reason = ""
        self.started_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self.overall_at: Optional[float] = None  # sink clock of the last summary write
        self.overall_status: Optional[str] = None
        self.dirty = False  # samples not yet in the summary file
        self.overflow = False  # metrics beyond MAX_METRIC_COLUMNS were left out
        self.overflow_reported = False
        self.notes: List[str] = []  # things the sink should report once
        self._load()

    # existing file (restart): adopt its header, continue its summary
    def _load(self) -> None:
        try:
            with open(self.matrix_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return
        if not raw:
            return
        if not raw.endswith(b"\n"):
            # a torn tail (not written by ttop's single-write appends): drop it
            cut = raw.rfind(b"\n")
            raw = raw[: cut + 1] if cut >= 0 else b""
            self.needs_rewrite = True
        text = raw.decode("utf-8", "replace")
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error:
            rows = []
        header = rows[0] if rows else []
        if not set(("time", "timestamp", "status")) <= set(header):
            # not a matrix file of ours: keep it under another name, start afresh
            aside = "%s.unrecognised-%d" % (self.matrix_path, int(time.time()))
            os.replace(self.matrix_path, aside)
            self.notes.append("%s was not a ttop matrix file: kept as %s" % (self.matrix_path, aside))
            self.needs_rewrite = False
            return
        cols = list(MATRIX_COLUMNS) + [c for c in header if c not in MATRIX_COLUMNS]
        if header != cols:
            self.needs_rewrite = True
        self.columns = cols
        self.known = set(cols)
        idx = {c: i for i, c in enumerate(header)}
        for row in rows[1:]:
            if not row:
                continue
            self._account(lambda c: row[idx[c]] if c in idx and idx[c] < len(row) else None)
            st = row[idx["status"]] if "status" in idx and idx["status"] < len(row) else None
            self.last_status = st or None

    def _account(self, get: Callable[[str], Any]) -> None:
        self.samples += 1
        ts = _num(get("timestamp"))
        if ts is not None:
            if self.first_ts is None:
                self.first_ts = ts
            self.last_ts = ts
        for r in SUMMARY_RESOURCES:
            self.aggs[r].add(get(r))

    def _rewrite(self, extra_row: Optional[List[str]]) -> None:
        """Rewrite the matrix file with the current header (atomically)."""
        old_rows: List[List[str]] = []
        try:
            with open(self.matrix_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b""
        if raw and not raw.endswith(b"\n"):
            raw = raw[: raw.rfind(b"\n") + 1]
        if raw:
            parsed = list(csv.reader(io.StringIO(raw.decode("utf-8", "replace"), newline="")))
            if parsed:
                header = parsed[0]
                pos = [header.index(c) if c in header else -1 for c in self.columns]
                for row in parsed[1:]:
                    if row:
                        old_rows.append([row[i] if 0 <= i < len(row) else "" for i in pos])
        rows: List[Sequence[str]] = [self.columns] + old_rows
        if extra_row is not None:
            rows.append(extra_row)
        write_text_atomic(self.matrix_path, _csv_text(rows))
        self.needs_rewrite = False

    def _append(self, row: List[str]) -> None:
        line = _csv_text([row]).encode("utf-8")
        fd = os.open(self.matrix_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            data = line if size else _csv_text([self.columns]).encode("utf-8") + line
            try:
                n = os.write(fd, data)
            except OSError:
                if not size:
                    self._drop_if_empty(fd)
                raise
            if n != len(data):
                os.ftruncate(fd, size)
                if not size:
                    self._drop_if_empty(fd)
                raise OSError("short write (%d of %d bytes); row dropped" % (n, len(data)))
        finally:
            os.close(fd)

    def _drop_if_empty(self, fd: int) -> None:
        """A first row that could not be written (disk full) leaves no empty
        file behind: pandas cannot load one."""
        try:
            if os.fstat(fd).st_size == 0:
                os.unlink(self.matrix_path)
        except OSError:
            pass

    def add_sample(self, run: Any, taken_at: float) -> None:
        data: Mapping[str, Any] = run.data if isinstance(run.data, Mapping) else {}
        res = run.resources
        values: Dict[str, Any] = {
            "time": iso_utc(taken_at),
            "timestamp": "%.3f" % taken_at,
            "status": run.status,
            "status_inferred": bool(run.status_inferred),
            "phase": data.get("phase"),
            "epoch": data.get("epoch"),
            "batch": data.get("batch"),
            "total_batches": data.get("total_batches"),
            "rate": data.get("rate"),
            "cpu_percent": None if res.cpu_percent is None else round(float(res.cpu_percent), 2),
            "rss_bytes": res.rss_bytes,
            "gpu_memory_bytes": res.gpu_memory_bytes,
            "num_procs": res.num_procs,
            "num_threads": res.num_threads,
        }
        metrics = data.get("metrics")
        if isinstance(metrics, Mapping):
            for name, value in metrics.items():
                col = metric_column(name)
                if col not in self.known:
                    if len(self.columns) - len(MATRIX_COLUMNS) >= MAX_METRIC_COLUMNS:
                        self.overflow = True  # reported once by the sink
                        continue
                    self.columns.append(col)
                    self.known.add(col)
                    self.needs_rewrite = True
                values[col] = value
        row = [cell(values.get(c)) for c in self.columns]
        if self.needs_rewrite:
            self._rewrite(row)
        else:
            self._append(row)
        # the row is on disk: account for it
        self._account(lambda c: values.get(c))
        self.last_status = run.status
        self._remember(run)

    def _remember(self, run: Any) -> None:
        data: Mapping[str, Any] = run.data if isinstance(run.data, Mapping) else {}
        self.run_name = run.run_name
        self.status = run.status
        self.inferred = bool(run.status_inferred)
        self.reason = run.status_reason or ""
        self.started_at = _num(data.get("started_at"))
        self.ended_at = _num(data.get("ended_at"))

    def write_overall(self) -> None:
        start = self.started_at if self.started_at is not None else self.first_ts
        if self.status and self.status != RUNNING:
            end = self.ended_at if self.ended_at is not None else self.last_ts
        else:
            end = self.last_ts
        duration = (end - start) if (start is not None and end is not None) else None
        row = [
            cell(self.run_name),
            cell(self.key),
            iso_utc(start),
            iso_utc(end),
            "" if start is None else "%.3f" % start,
            "" if end is None else "%.3f" % end,
            "" if duration is None else "%.3f" % max(0.0, duration),
            cell(self.status),
            cell(self.inferred),
            cell(self.reason),
            str(self.samples),
        ]
        for r in SUMMARY_RESOURCES:
            row.extend(self.aggs[r].cells())
        write_text_atomic(self.overall_path, _csv_text([OVERALL_COLUMNS, row]))
        self.dirty = False
        self.overall_status = self.status


# ---------------------------------------------------------------------------
# the sink

_TEMP = re.compile(r"^\..+(?:%s|%s)\.(\d+)\.tmp$" % (re.escape(MATRIX_SUFFIX), re.escape(OVERALL_SUFFIX)))


def remove_stale_temps(csv_dir: str) -> int:
    """Delete temp files that a killed ttop left in ``csv_dir`` (ours are
    ``.<file>.<pid>.tmp``; only those whose process is gone are touched).
    Returns how many were removed."""
    removed = 0
    try:
        names = os.listdir(csv_dir)
    except OSError:
        return 0
    for name in names:
        m = _TEMP.match(name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue  # its writer is alive (another ttop on this folder)
            except ProcessLookupError:
                pass
            except (PermissionError, OverflowError):
                continue
        try:
            os.unlink(os.path.join(csv_dir, name))
            removed += 1
        except OSError:
            pass
    return removed


class CsvSink:
    """Writes CSV statistics for every run of published snapshots.

    ``CsvSink(csv_dir, interval)`` creates ``csv_dir`` (raises OSError with the
    reason if it cannot). :meth:`maybe_write` writes when ``interval`` seconds
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
        os.makedirs(self.csv_dir, exist_ok=True)
        if not os.access(self.csv_dir, os.W_OK | os.X_OK):
            raise PermissionError("cannot write to %s" % self.csv_dir)
        remove_stale_temps(self.csv_dir)
        self.interval = float(interval)
        self.overall_every = float(overall_every)
        self.on_error = on_error
        self.last_error: Optional[str] = None
        #: True once :meth:`listener` has been handed out (the UI then does not
        #: call :meth:`maybe_write` itself)
        self.wired = False
        self.rows_written = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._files: Dict[str, _RunFiles] = {}
        self._stems: Dict[str, str] = {}  # stem -> key
        self._last_write: Optional[float] = None
        self._last_seq: Optional[int] = None
        self._closed = False

    # -- scheduling

    def _due(self, now: float) -> bool:
        if self._last_write is None:
            return True
        slack = min(0.5, 0.25 * self.interval)
        return now - self._last_write >= self.interval - slack

    def maybe_write(self, snapshot: Any) -> bool:
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

    def write(self, snapshot: Any) -> None:
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
        self.wired = True

        def _on_publish() -> None:
            try:
                self.maybe_write(collector.latest)
            except Exception as e:  # never break the collector thread
                self._error("CSV sink failed: %s" % e)

        return _on_publish

    # -- writing

    def _stem(self, key: str) -> str:
        stem = sanitize_run_name(key)
        owner = self._stems.get(stem)
        if owner is not None and owner != key:
            stem = "%s~%s" % (stem, hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:8])
        self._stems[stem] = key
        return stem

    def _files_for(self, key: str) -> _RunFiles:
        rf = self._files.get(key)
        if rf is None:
            stem = self._stem(key)
            rf = _RunFiles(key, stem, self.csv_dir)
            for p in (rf.matrix_path, rf.overall_path):
                if os.path.dirname(p) != self.csv_dir:  # pragma: no cover - sanitize guarantees it
                    raise OSError("refusing to write outside %s: %r" % (self.csv_dir, p))
            self._files[key] = rf
            for note in rf.notes:
                self._error(note)
        return rf

    def _write(self, snapshot: Any, now: float) -> None:
        taken_at = float(snapshot.taken_at)
        for run in snapshot.runs:
            try:
                rf = self._files_for(run.key)
                if run.status == RUNNING:
                    rf.final_written = False
                    updated = run.data.get("updated_at") if isinstance(run.data, Mapping) else None
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
                    rf._remember(run)
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
                self.rows_written += 1
                if rf.overall_at is None or rf.status != rf.overall_status or now - rf.overall_at >= self.overall_every:
                    rf.overall_at = now
                    rf.write_overall()
            except (OSError, ValueError, csv.Error) as e:
                self._error("cannot write CSV for run %s: %s" % (clean(run.key), e))

    def _error(self, message: str) -> None:
        self.last_error = message
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:
                pass

    def close(self) -> None:
        """Rewrite every run's overall file once more and stop writing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for rf in self._files.values():
                if not rf.samples or not (rf.dirty or not os.path.exists(rf.overall_path)):
                    continue
                try:
                    rf.write_overall()
                except OSError as e:
                    self._error("cannot write %s: %s" % (rf.overall_path, e))

    def paths(self) -> List[Tuple[str, str]]:
        """``(matrix_path, overall_path)`` of every run written so far."""
        with self._lock:
            return [(rf.matrix_path, rf.overall_path) for rf in self._files.values()]
