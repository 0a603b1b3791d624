"""The CSV files of one run: ``<run>_matrix.csv`` and ``<run>_overall.csv``.

:class:`RunFiles` owns both files of one run: it appends one matrix row per
sample, rewrites the matrix with a wider header when a new metric appears,
adopts an existing file on restart, and rewrites the summary. :mod:`ttop.sinks.csv`
decides when (see its docstring for the file format and the guarantees).
"""
from __future__ import annotations

import csv
import errno
import io
import math
import os
import re
import stat
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..collect.snapshot import RunSnapshot
from ..progress import RUNNING, number_or_none, write_text_atomic
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
    "health",
    "health_reason",
    "cost",
    "cost_projected",
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
) + tuple("%s_%s" % (r, s) for r in SUMMARY_RESOURCES for s in ("min", "mean", "max")) + (
    "health",
    "health_reason",
    "cost",
    "cost_projected",
)

MATRIX_SUFFIX = "_matrix.csv"
#: At most this many ``metric_`` columns per run (each new one rewrites the
#: file; a run inventing metric names every step would otherwise cost O(n^2)).
MAX_METRIC_COLUMNS = 256
#: While a run is RUNNING its summary is rewritten at most this often (s); at
#: once when its status changes, and when the sink closes.
OVERALL_EVERY = 10.0
OVERALL_SUFFIX = "_overall.csv"


# ---------------------------------------------------------------------------
# cells


def iso_utc(ts: Optional[float]) -> str:
    """Unix seconds as ISO 8601 UTC with milliseconds, or "" for None."""
    global _last_iso
    if ts is None or not math.isfinite(ts):
        return ""
    last = _last_iso  # a tuple, swapped whole: safe across threads
    if last[0] == ts:  # every run's row of one snapshot has the same time
        return last[1]
    try:
        text = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return ""
    _last_iso = (ts, text)
    return text


_last_iso: Tuple[Optional[float], str] = (None, "")


#: A text cell starting with one of these is a formula to a spreadsheet
#: (``=HYPERLINK(...)``, ``+cmd|...``, ``@SUM(...)``, a tab or CR before one).
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    """One CSV cell: "" for None, 1/0 for bools, ``repr`` for floats (``nan``,
    ``inf`` load as floats in pandas), the NaN/Infinity strings of progress
    files as floats, other text made one-line and terminal-safe (:func:`text_cell`)."""
    t = type(value)  # the common exact types first: a row has ~20 cells
    if t is float:
        return repr(value)
    if t is int:
        return str(value)
    if value is None:
        return ""
    if t is str:  # the same few texts row after row (status, phase, health): each made once
        got = _TEXT_CELLS.get(value)
        if got is None:
            num = number_or_none(value)
            got = repr(num) if num is not None else text_cell(value)
            if len(_TEXT_CELLS) >= TEXT_CELLS_KEPT:
                _TEXT_CELLS.clear()
            _TEXT_CELLS[value] = got
        return got
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
    return text_cell(value)


def text_cell(value: Any) -> str:
    """Text made one-line and terminal-safe; text that a spreadsheet would run
    as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) gets a
    leading single quote, so it shows as text."""
    try:
        raw = value if isinstance(value, str) else str(value)
    except RecursionError:  # a list or object from a file, nested about a thousand deep
        raw = "<%s>" % type(value).__name__
    text = clean(raw)
    if raw.startswith(FORMULA_LEADS) or text.startswith(FORMULA_LEADS):
        return "'" + text
    return text


def metric_column(name: Any) -> str:
    """The matrix column of a metric: ``metric_`` + the name made one-line."""
    if type(name) is str:
        col = _METRIC_COLUMNS.get(name)
        if col is None:
            if len(_METRIC_COLUMNS) >= TEXT_CELLS_KEPT:
                _METRIC_COLUMNS.clear()
            col = _METRIC_COLUMNS[name] = METRIC_PREFIX + clean(name)
        return col
    return METRIC_PREFIX + clean(str(name))


#: :func:`cell` of the texts written lately, and :func:`metric_column` of
#: the metric names, by the text (at most TEXT_CELLS_KEPT each)
_TEXT_CELLS: Dict[str, str] = {}
_METRIC_COLUMNS: Dict[str, str] = {}
TEXT_CELLS_KEPT = 4096


def _csv_text(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (of text) as the csv module writes them (``\\n`` line ends).
    A row none of whose cells needs quotes (a comma, a double quote or a
    line break; or a NUL, which some versions quote and others refuse) is
    its cells joined with commas, as the module writes it: a writer made
    for each sample's row cost more than the rest of the sample."""
    out: List[str] = []
    w = None
    for row in rows:
        try:
            line: Optional[str] = ",".join(row)
        except TypeError:  # not all text: the csv module's own rules
            line = None
        if (line is None or len(row) < 2 or line.count(",") != len(row) - 1 or '"' in line or "\n" in line
                or "\r" in line or "\0" in line):
            if w is None:
                buf = io.StringIO()
                w = csv.writer(buf, lineterminator="\n")
            buf.seek(0)
            buf.truncate()
            w.writerow(row)
            out.append(buf.getvalue())
        else:
            out.append(line + "\n")
    return "".join(out)


def _money(value: Any) -> Optional[float]:
    """A cost rounded to 4 decimals (None stays None)."""
    return None if value is None else round(float(value), 4)


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


#: Sums of a summary are kept scaled down by this power of two (exactly: the
#: mean comes out the same), so that samples near the float range's top
#: (a report of 1e308 bytes) add up to a finite sum rather than inf.
_SUM_SCALE = 2.0 ** -64


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
        self.total += f * _SUM_SCALE
        self.lo = min(self.lo, f)
        self.hi = max(self.hi, f)

    def cells(self) -> List[str]:
        if not self.n:
            return ["", "", ""]
        return [_fmt(self.lo), _fmt(self.total / self.n / _SUM_SCALE), _fmt(self.hi)]


def _fmt(f: float) -> str:
    if not math.isfinite(f):
        return repr(f)
    if f == int(f) and abs(f) < 2**63:
        return str(int(f))
    return repr(round(f, 6))


# ---------------------------------------------------------------------------
# one run's files


#: a link or a FIFO planted at a CSV path is refused, never followed or waited on
_SAFE = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class Foreign(OSError):
    """A file under one of ttop's CSV names that another user owns: not
    ttop's to read, adopt or append to (in a folder others can write, its
    size and rows are theirs to choose: a sparse 20 GB file read whole
    would take 20 GB of ttop's memory)."""


def _check_ours(st: os.stat_result, path: str) -> None:
    if st.st_uid != os.geteuid():
        from ..collect.owners import user_name

        raise Foreign(errno.EPERM, "owned by %s, not by ttop's user %s" % (
            user_name(st.st_uid), user_name(os.geteuid())), path)


def _read_regular(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | _SAFE)
    try:
        st = os.fstat(fd)  # (before fdopen, which says "Is a directory: 4" of a folder)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        _check_ours(st, path)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read()


def kept_key(overall_path: str) -> Optional[str]:
    """The ``key`` cell of an existing ``<run>_overall.csv`` of ttop's user
    (the run whose files these are), or None when there is none to read."""
    try:
        raw = _read_regular(overall_path)
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8", "replace"), newline="")))
    except (OSError, csv.Error):
        return None
    if len(rows) < 2 or "key" not in rows[0]:
        return None
    i = rows[0].index("key")
    return rows[1][i] if i < len(rows[1]) else None


class RunFiles:
    """The matrix and summary files of run ``key`` in ``csv_dir`` (named from
    ``stem``), and the running summary of the rows written so far. At most
    ``max_metrics`` ``metric_`` columns; beyond that :attr:`overflow` is set."""

    def __init__(self, key: str, stem: str, csv_dir: str, max_metrics: int = MAX_METRIC_COLUMNS) -> None:
        self.key = key
        self.max_metrics = max_metrics
        self.matrix_path = os.path.join(csv_dir, stem + MATRIX_SUFFIX)
        self.overall_path = os.path.join(csv_dir, stem + OVERALL_SUFFIX)
        self.columns: List[str] = list(MATRIX_COLUMNS)
        self.known = set(self.columns)
        #: each metric name's column, and the name each column is of: names
        #: alike once made one-line ("a\tb", "a b") get "#2", "#3", ...
        self._col_of: Dict[Any, str] = {}
        self._name_of: Dict[str, Any] = {}
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
        #: the run these files are of (its start and process: see CsvSink); None: not known yet
        self.identity: Any = None
        self._load()

    # existing file (restart): adopt its header, continue its summary
    def _load(self) -> None:
        try:
            raw = _read_regular(self.matrix_path)
        except FileNotFoundError:
            return
        except Foreign as e:  # another user's file under our name: kept aside unread, start afresh
            self._set_aside("%s is %s" % (self.matrix_path, e.strerror))
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
            self._set_aside("%s was not a ttop matrix file" % self.matrix_path)
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
            values = {c: row[i] for c, i in idx.items() if i < len(row)}
            self._account(values.get)
            st = values.get("status")
            self.last_status = st or None

    def _set_aside(self, why: str) -> None:
        aside = "%s.unrecognised-%d" % (self.matrix_path, int(time.time()))
        os.replace(self.matrix_path, aside)
        self.notes.append("%s: kept as %s" % (why, aside))
        self.needs_rewrite = False

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
            raw = _read_regular(self.matrix_path)
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
        rows: List[Sequence[str]] = [self.columns, *old_rows]
        if extra_row is not None:
            rows.append(extra_row)
        write_text_atomic(self.matrix_path, _csv_text(rows))
        self.needs_rewrite = False

    def _append(self, row: List[str]) -> None:
        line = _csv_text([row]).encode("utf-8")
        fd = os.open(self.matrix_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _SAFE, 0o666)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", self.matrix_path)
            _check_ours(st, self.matrix_path)  # put there since it was read: not appended to
            # another name for a file of ttop's user renamed there (~/.bashrc): not appended to
            linked = st.st_nlink != 1
            if not linked:
                self._write_row(fd, st.st_size, line)
        finally:
            os.close(fd)
        if linked:  # written whole instead: a file of its own under the name
            self._rewrite(row)

    def _write_row(self, fd: int, size: int, line: bytes) -> None:
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

    def _drop_if_empty(self, fd: int) -> None:
        """A first row that could not be written (disk full) leaves no empty
        file behind: pandas cannot load one."""
        try:
            if os.fstat(fd).st_size == 0:
                os.unlink(self.matrix_path)
        except OSError:
            pass

    def add_sample(self, run: RunSnapshot, taken_at: float) -> None:
        data = run.data
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
            "health": run.health,
            "health_reason": run.health_reason,
            "cost": _money(run.cost),
            "cost_projected": _money(run.cost_projected),
        }
        metrics = data.get("metrics")
        if isinstance(metrics, Mapping):
            for name, value in metrics.items():
                col = self._col_of.get(name)
                if col is None:
                    col = self._free_column(name)
                    if col not in self.known:
                        if len(self.columns) - len(MATRIX_COLUMNS) >= self.max_metrics:
                            self.overflow = True  # reported once by the sink
                            continue
                        self.columns.append(col)
                        self.known.add(col)
                        self.needs_rewrite = True
                    self._col_of[name] = col
                    self._name_of[col] = name
                values[col] = value
        row = [cell(values.get(c)) for c in self.columns]
        if self.needs_rewrite:
            self._rewrite(row)
        else:
            self._append(row)
        # the row is on disk: account for it
        self._account(values.get)
        self.last_status = run.status
        self.remember(run)

    def _free_column(self, name: Any) -> str:
        """The column for metric ``name``: its one-line name, or that with
        ``#2``, ``#3``, ... when another name of this run has it."""
        base = col = metric_column(name)
        n = 1
        while self._name_of.get(col, name) != name:
            n += 1
            col = "%s#%d" % (base, n)
        return col

    def remember(self, run: RunSnapshot) -> None:
        data = run.data
        self.run_name = run.run_name
        self.status = run.status
        self.inferred = bool(run.status_inferred)
        self.reason = run.status_reason or ""
        self.started_at = _num(data.get("started_at"))
        self.ended_at = _num(data.get("ended_at"))
        self.health = (run.health, run.health_reason)
        self.cost = (_money(run.cost), _money(run.cost_projected))

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
        health = getattr(self, "health", (None, None))
        cost = getattr(self, "cost", (None, None))
        row.extend([cell(health[0]), cell(health[1]), cell(cost[0]), cell(cost[1])])
        write_text_atomic(self.overall_path, _csv_text([OVERALL_COLUMNS, row]))
        self.dirty = False
        self.overall_status = self.status


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
