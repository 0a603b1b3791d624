"""Where a run's files go: the progress folder and the run name."""
from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..progress import PROGRESS_SUFFIX, write_json_atomic


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
    or ``folder``/``run_name``); raise ValueError for bad ones. The run name
    is not sanitised here."""
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
    return folder, run_name


def check_folder(folder: str) -> None:
    """Create the folder if needed and prove it is writable by writing (and
    removing) a probe file; raise a clear OSError otherwise."""
    if not os.path.isdir(folder):
        if os.path.exists(folder):
            raise NotADirectoryError(errno.ENOTDIR, "ttop: progress folder is not a directory", folder)
        parent = os.path.dirname(os.path.abspath(folder))
        if not os.path.isdir(parent):
            raise FileNotFoundError(
                errno.ENOENT, "ttop: cannot create the progress folder, its parent %s does not exist" % parent, folder
            )
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except OSError as e:
            raise type(e)(e.errno, "ttop: cannot create the progress folder (%s)" % e.strerror, folder) from None
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

    def write(self, data: Dict[str, Any], final: bool = False) -> bool:
        try:
            try:
                write_json_atomic(self.path, data)
            except FileNotFoundError:
                if os.path.isdir(self.folder):
                    raise
                os.mkdir(self.folder)  # the folder was removed under us
                write_json_atomic(self.path, data)
                self.report("ttop: progress folder %s was removed; re-created it" % self.folder)
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
