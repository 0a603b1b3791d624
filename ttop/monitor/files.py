"""Where a run's files go: the progress folder and the run name."""
from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..jsonvalues import utf8
from ..progress import MAX_PROGRESS_BYTES, PROGRESS_SUFFIX, dumps, write_bytes_atomic

#: A text value longer than this is cut when the file would be too large.
LONG_TEXT = 1024


def _cut_texts(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return value if len(value) <= LONG_TEXT else value[:LONG_TEXT] + "\u2026"
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {k: _cut_texts(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut_texts(v, depth + 1) for v in value]
    return value


def fit_progress(data: Dict[str, Any], limit: int = MAX_PROGRESS_BYTES) -> Tuple[bytes, List[str]]:
    """The progress file's bytes, at most ``limit`` (what readers accept: a
    larger file is skipped, and the run would vanish from ttop), and what
    had to be left out to get there: first the short ``history`` (the
    history file has it all), then every text longer than
    :data:`LONG_TEXT` characters is cut, then metrics beyond the first ones
    that fit are left out."""
    raw = utf8(dumps(data))
    if len(raw) <= limit:
        return raw, []
    left: List[str] = []
    doc = dict(data)
    if doc.get("history"):
        doc["history"] = None
        left.append("the metrics' recent history")
        raw = utf8(dumps(doc))
    if len(raw) > limit:
        doc = _cut_texts(dumps_safe(doc))
        left.append("text beyond %d characters" % LONG_TEXT)
        raw = utf8(dumps(doc))
    metrics = doc.get("metrics")
    if len(raw) > limit and isinstance(metrics, dict):
        items = list(metrics.items())
        n = len(items)
        while len(raw) > limit and n > 0:
            n //= 2
            doc["metrics"] = dict(items[:n])
            raw = utf8(dumps(doc))
        left.append("%d of %d metrics" % (len(items) - n, len(items)))
    if len(raw) > limit:  # last resort: what is left is the run's state
        for k in ("metrics", "variables", "variable_types", "links", "logs", "error", "times"):
            doc[k] = None
        left.append("metrics, variables and links")
        raw = utf8(dumps(doc))
    return raw, left


def dumps_safe(doc: Dict[str, Any]) -> Dict[str, Any]:
    """``doc`` as plain JSON values (raw JSON fragments parsed back)."""
    import json

    return json.loads(dumps(doc))


def default_run_name() -> str:
    """``<script>-<yyyymmdd-HHMMSS>-<pid>``."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script.endswith(".py"):
        script = script[:-3]
    if not script or script in ("-c", "-m", "-"):
        script = "python"
    return "%s-%s-%d" % (script, time.strftime("%Y%m%d-%H%M%S"), os.getpid())


def resolve_target(
    output_file: Optional[str], folder: Optional[str], run_name: Optional[str]
) -> Tuple[str, Optional[str]]:
    """``(folder, run_name)`` from the monitor's arguments (``output_file``
    or ``folder``/``run_name``); raise ValueError for bad ones. The folder
    is made absolute here, once: a script that changes its working
    directory later must not move the run's files. The run name is not
    sanitised here."""
    if output_file is not None and (folder is not None or run_name is not None):
        raise ValueError("give either output_file or folder/run_name, not both")
    if output_file is not None:
        output_file = os.fspath(output_file)
        if not isinstance(output_file, str) or not output_file.strip():
            raise ValueError("output_file must be a non-empty path")
        folder, base = os.path.split(output_file)
        if base.endswith(PROGRESS_SUFFIX):
            base = base[: -len(PROGRESS_SUFFIX)]
        run_name = base or None
        folder = folder or "."
    if folder is None:
        folder = "progress"
    folder = os.fspath(folder)
    if not folder or "\x00" in folder:
        raise ValueError("invalid progress folder %r" % (folder,))
    return os.path.abspath(folder), run_name


def check_folder(folder: str) -> None:
    """Create the folder if needed and prove it is writable by writing (and
    removing) a probe file; raise a clear OSError otherwise."""
    if not os.path.isdir(folder):
        parent = os.path.dirname(os.path.abspath(folder))
        if not os.path.isdir(parent):
            raise FileNotFoundError(
                errno.ENOENT, "ttop: cannot create the progress folder, its parent %s does not exist" % parent, folder
            )
        try:
            os.mkdir(folder)
        except FileExistsError:  # another process (a rank, a thread) may have made it meanwhile
            pass
        except OSError as e:
            raise type(e)(e.errno, "ttop: cannot create the progress folder (%s)" % e.strerror, folder) from None
        if not os.path.isdir(folder):  # a file (or a link to none) is there
            raise NotADirectoryError(errno.ENOTDIR, "ttop: progress folder is not a directory", folder)
    try:
        fd, probe = tempfile.mkstemp(prefix=".ttop-probe-", suffix=".tmp", dir=folder)
        try:
            os.write(fd, b"{}")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise type(e)(e.errno, "ttop: progress folder is not writable (%s)" % e.strerror, folder) from None


class ProgressWriter:
    """Writes the progress file atomically and never raises: the first
    failure is reported (one line), and the recovery, not every retry. A
    removed folder is re-created."""

    def __init__(self, path: str, folder: str, interval: float, report: Callable[[str], None]) -> None:
        self.path = path
        self.folder = folder
        self.interval = interval
        self.report = report
        self.failing = False
        #: what :func:`fit_progress` left out of the last write (reported when it changes)
        self.left_out: List[str] = []

    def write(self, data: Dict[str, Any], final: bool = False) -> bool:
        try:
            raw, left = fit_progress(data)
            kinds = [x.split(" ")[-1] for x in left]  # the counts may change from write to write
            if kinds != self.left_out:
                self.left_out = kinds
                if left:
                    self.report("ttop: %s would be larger than the %d bytes readers accept; left out: %s" % (
                        self.path, MAX_PROGRESS_BYTES, ", ".join(left)))
            try:
                write_bytes_atomic(self.path, raw)
            except FileNotFoundError:
                if os.path.isdir(self.folder):
                    raise
                os.mkdir(self.folder)  # the folder was removed under us
                write_bytes_atomic(self.path, raw)
                self.report("ttop: progress folder %s was removed; re-created it" % self.folder)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EDQUOT) or not self._in_place(data):
                    raise
                if not self.failing:  # written, but say the disk is full
                    self.failing = True
                    self.report("ttop: cannot write %s: %s; written in place meanwhile" % (self.path, e))
                return True
        except Exception as e:
            if not self.failing:
                self.failing = True
                how = "" if final else "; training continues, retrying every %gs" % self.interval
                self.report("ttop: cannot write %s: %s%s" % (self.path, e, how))
            return False
        if self.failing:
            self.failing = False
            self.report("ttop: %s written again" % self.path)
        return True


    def _in_place(self, data: Dict[str, Any]) -> bool:
        """On a full disk (no blocks for a temp file): rewrite the progress
        file in the blocks it holds, so that a run failing for want of space
        still says FAILED and why (else its file says RUNNING, and ttop
        shows it KILLED). Only this writer's own regular file, and only
        what fits in its blocks (:func:`fit_progress` leaves out the short
        history first). Not atomic: a reader may catch it half written, and
        then keeps the last good contents for a cycle."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            room = max(st.st_size, st.st_blocks * 512)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
                return False
            raw = fit_progress(data, room)[0]
            if len(raw) > room:
                return False
            done = 0
            while done < len(raw):
                done += os.pwrite(fd, memoryview(raw)[done:], done)
            os.ftruncate(fd, len(raw))
            return True
        except OSError:
            return False
        finally:
            os.close(fd)


def check_settings(epoch_base: Any, name_conflict: Any, interval: Any, resource_interval: Any, history_size: Any) -> None:
    """ValueError for a TrainingMonitor setting out of range, at the call."""
    if epoch_base not in (0, 1) or isinstance(epoch_base, bool):
        raise ValueError("epoch_base must be 0 or 1, not %r" % (epoch_base,))
    if name_conflict not in ("error", "suffix"):
        raise ValueError('name_conflict must be "error" or "suffix", not %r' % (name_conflict,))
    if not (isinstance(interval, (int, float)) and not isinstance(interval, bool) and 0.001 <= interval < 3600):
        raise ValueError("interval must be a number of seconds from 0.001 up to (not including) 3600, not %r" % (interval,))
    if not (isinstance(resource_interval, (int, float)) and resource_interval > 0):
        raise ValueError("resource_interval must be a positive number, not %r" % (resource_interval,))
    if not (isinstance(history_size, int) and not isinstance(history_size, bool) and history_size >= 0):
        raise ValueError("history_size must be an int >= 0, not %r" % (history_size,))
