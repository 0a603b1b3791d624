"""The on-disk contracts: progress files (``ttop.progress/1``) and control files
(``ttop.control/1``).

Shared by the writer (:mod:`ttop.monitor`, in training scripts) and the
readers (collector, UI, sinks): only the standard library, nothing of the UI.

Folder layout (one folder, many runs)::

    <folder>/<run>.json              progress file, written by TrainingMonitor
    <folder>/control_<run>.json      control file, written by ttop (or the name
                                     the progress file gives as ``control_file``)
    <folder>/<run>.stdout.log        optional output capture (see ``logs``)
    <folder>/<run>.stderr.log
    <folder>/.<anything>             temp files of atomic writes: never read

Progress file keys (all times Unix seconds, wall clock; durations in seconds).
Readers ignore unknown keys and tolerate missing optional ones.

required
    ``format`` ("ttop.progress/1"), ``run_name`` (str), ``status`` (one of
    :data:`STATUSES`), ``updated_at`` (number: heartbeat)
identity
    ``host`` (str), ``pid`` (int), ``pid_create_time`` (number, psutil's
    ``create_time()``), ``started_at``, ``ended_at`` (number or null),
    ``heartbeat_interval`` (number: the writer refreshes ``updated_at`` at
    least this often while alive), ``pid_namespace`` (str: the writer's PID
    namespace, e.g. ``"pid:[4026531836]"``; a reader in another one cannot
    look ``pid`` up)
state
    ``phase`` (str or null; ``train``, ``validation``, ``loading`` have
    colours), ``error`` (str or null: message + traceback tail on FAILED)
counters (int or null)
    ``epoch``, ``total_epochs``, ``batch``, ``total_batches`` (of the current
    phase), ``train_batch``, ``train_total_batches``, ``val_batch``,
    ``val_total_batches``; ``rate`` (number: batches/s of the current phase,
    smoothed)
times
    ``{"run"|"epoch"|"train"|"validation": {"elapsed", "remaining", "total"}}``
    each a number or null; ``times.validation.last`` is the duration of the
    last completed validation phase (the "Val Time" column)
metrics
    ``metrics`` {name: number|str|null}; ``history`` {name: [number|null, ...]}
    (bounded, oldest first). Non-finite floats are written as the strings
    ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` so the file stays strict JSON.
    ``history_file`` (str or null): the run's metric history file for the
    whole run, relative to the folder (format in :mod:`ttop.histfile`).
variables
    ``variables`` {name: bool|int|float|str}, ``variable_types`` {name:
    "bool"|"int"|"float"|"str"}, ``control_seq`` (int: last control edit
    applied), ``control_error`` (str or null: why the last edit was refused),
    ``control_file`` (str or null: the control file read when not the usual
    one, see :func:`control_name`)
files
    ``logs`` {"stdout": path, "stderr": path} relative to the folder;
    ``run_dir`` (optional str: a run folder, relative to the progress folder)
resources
    ``{"cpu_percent", "rss_bytes", "gpu_memory_bytes", "num_procs",
    "num_threads", "sampled_at"}``: the writer's own sample of its process tree
links
    ``{"wandb": "https://..."}``
signals
    ``signal_ack`` ``{"seq", "name", "target", "ok", "result", "at"}``: the
    writer's answer to the last ``signal`` request of the control file
    (``ok`` false: refused, ``result`` says why)

Control file: ``{"format": "ttop.control/1", "seq": N, "variables": {...}}``,
optionally with ``"signal": {"name": "SIGTERM", "target": "main"|"tree",
"seq": K}``: a request to the run's own writer to signal its main process or
its whole tree (how ttop signals a run on another host). ``K`` has its own
sequence; the writer acts on a ``K`` above the last one it acknowledged.
"""
from __future__ import annotations

import math
import os
import stat

from .atomic import temp_name, write_bytes_atomic  # noqa: F401 - part of this module's API
from .jsonvalues import RawJSON, dumps, json_safe  # noqa: F401 - part of this module's API
from .jsonvalues import loads as _json_loads
from .jsonvalues import short_repr as _short_repr  # noqa: F401 - for the levers
from .jsonvalues import short_str as _short_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, Dict, Optional, Tuple

    from .progresscheck import _SHAPES, check_progress, check_progress_shape, parse_progress  # noqa: F401  (see __getattr__)

PROGRESS_FORMAT = "ttop.progress/1"
CONTROL_FORMAT = "ttop.control/1"
PROGRESS_FORMAT_PREFIX = "ttop.progress/"
CONTROL_PREFIX = "control_"
PROGRESS_SUFFIX = ".json"

RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELED = "CANCELED"
KILLED = "KILLED"
STATUSES = (RUNNING, FINISHED, FAILED, CANCELED, KILLED)
END_STATUSES = (FINISHED, FAILED, CANCELED, KILLED)

#: Readers never read more than this many bytes of a progress file.
MAX_PROGRESS_BYTES = 4 * 1024 * 1024
#: ... nor of a control file.
MAX_CONTROL_BYTES = 1024 * 1024
#: Longest run name, in bytes of UTF-8, once sanitised.
MAX_RUN_NAME_BYTES = 200

VARIABLE_TYPES = ("bool", "int", "float", "str")

_NUMBER = (int, float)

# Optional known keys and the JSON types they may have (None = null allowed).
_OPTIONAL_TYPES: Dict[str, Tuple[type, ...]] = {
    "host": (str,),
    "pid": (int,),
    "pid_create_time": _NUMBER,
    "pid_namespace": (str,),
    "started_at": _NUMBER,
    "ended_at": _NUMBER,
    "heartbeat_interval": _NUMBER,
    "phase": (str,),
    "error": (str,),
    "epoch": (int,),
    "total_epochs": (int,),
    "batch": (int,),
    "total_batches": (int,),
    "train_batch": (int,),
    "train_total_batches": (int,),
    "val_batch": (int,),
    "val_total_batches": (int,),
    "rate": _NUMBER,
    "times": (dict,),
    "metrics": (dict,),
    "history": (dict,),
    "history_file": (str,),
    "variables": (dict,),
    "variable_types": (dict,),
    "control_seq": (int,),
    "control_error": (str,),
    "logs": (dict,),
    "run_dir": (str,),
    "resources": (dict,),
    "links": (dict,),
    "signal_ack": (dict,),
    "control_file": (str,),
}


_NUMBER_CLASSES = frozenset((int, float))
#: for each optional key, the classes of a value kept as is (None too)
_FINE: Dict[str, frozenset] = {
    k: _NUMBER_CLASSES if t == _NUMBER else frozenset(t) for k, t in _OPTIONAL_TYPES.items()}


class ProgressError(ValueError):
    """A progress or control file that cannot be used; ``str()`` is the reason."""


# ---------------------------------------------------------------------------
# names and paths


#: what becomes ``_`` in a run name: control characters (C0, DEL, C1) and
#: path separators (a table for str.translate: no pattern to compile, nor
#: ``re`` to import, in each process that writes or reads progress files)
_UNSAFE = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0), ord("/"), ord("\\")], "_")


def sanitize_run_name(name: Any) -> str:
    """Return a run name that is safe as a single file name in the folder.

    Path separators, NUL and control characters become ``_``; leading dots and
    spaces are dropped (no hidden files, no ``..``); a name that would read as
    a control file gets a ``run_`` prefix; the result is at most
    :data:`MAX_RUN_NAME_BYTES` bytes of UTF-8 and never empty.
    """
    text = str(name).translate(_UNSAFE).strip()
    text = text.lstrip(". ")
    if text.startswith(CONTROL_PREFIX):
        text = "run_" + text
    raw = text.encode("utf-8", "surrogatepass")[:MAX_RUN_NAME_BYTES]
    text = raw.decode("utf-8", "ignore").rstrip()
    return text or "run"


def progress_path(folder: str, run_name: str) -> str:
    return os.path.join(folder, run_name + PROGRESS_SUFFIX)


def control_path(folder: str, run_name: str) -> str:
    return os.path.join(folder, CONTROL_PREFIX + run_name + PROGRESS_SUFFIX)


def control_name(stem: str, data: Mapping[str, Any]) -> str:
    """The file name of the control file of the run ``stem``:
    ``control_<stem>.json``, or the one its progress file gives as
    ``control_file`` (its writer's own, when another user's file held the
    usual name) if that is one of this run's names,
    ``control_<stem>.<16 hex digits>.json``."""
    usual = CONTROL_PREFIX + stem + PROGRESS_SUFFIX
    name = data.get("control_file")
    if (isinstance(name, str) and len(name) == len(usual) + 17 and name.startswith(usual[:-5] + ".")
            and name.endswith(PROGRESS_SUFFIX) and all(c in "0123456789abcdef" for c in name[-21:-5])):
        return name
    return usual


def log_paths(run_name: str) -> Dict[str, str]:
    """Default ``logs`` entry: capture files relative to the folder."""
    return {"stdout": run_name + ".stdout.log", "stderr": run_name + ".stderr.log"}


def pid_namespace() -> Optional[str]:
    """This process's PID namespace (``"pid:[4026531836]"``), or None where
    it cannot be read (not Linux)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except (OSError, AttributeError):
        return None


def is_progress_filename(name: str) -> bool:
    """True for names the collector reads as progress files."""
    return (
        name.endswith(PROGRESS_SUFFIX)
        and not name.startswith(".")
        and not name.startswith(CONTROL_PREFIX)
        and len(name) > len(PROGRESS_SUFFIX)
    )


def run_key(filename: str) -> str:
    """The run's key: its progress file name without ``.json``."""
    return filename[: -len(PROGRESS_SUFFIX)]


def resolve_inside(folder: str, relpath: Any) -> Optional[str]:
    """Resolve ``relpath`` against ``folder`` (symlinks followed) and return the
    real path only if it lies strictly inside the folder's real path; else None.

    Absolute paths, ``..`` escapes, symlinks pointing outside, NUL bytes,
    names no path can have (a lone surrogate from a ``\\ud800`` JSON escape)
    and non-strings all give None.
    """
    if not isinstance(relpath, str) or not relpath or "\x00" in relpath:
        return None
    if os.path.isabs(relpath):
        return None
    try:
        os.fsencode(relpath)  # a name no file system can hold (realpath only fails on it in newer Pythons)
        root = os.path.realpath(folder)
        target = os.path.realpath(os.path.join(root, relpath))
    except (UnicodeError, ValueError, OSError):  # OSError: a link swapped for a folder mid-resolution
        return None
    if target == root or not target.startswith(root + os.sep):
        return None
    return target


# ---------------------------------------------------------------------------
# JSON values (json_safe, dumps and RawJSON live in ttop.jsonvalues)


_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def number_or_none(value: Any) -> Optional[float]:
    """A metric value as a float (``"NaN"``/``"Infinity"`` strings understood),
    or None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, _NUMBER):
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range
            return math.inf if value > 0 else -math.inf
    return _NONFINITE.get(value) if isinstance(value, str) else None


def write_text_atomic(path: str, text: str) -> None:
    """:func:`write_bytes_atomic` of ``text`` encoded as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, obj: Any) -> None:
    """:func:`write_bytes_atomic` of ``obj`` as strict JSON (:func:`dumps`)."""
    write_bytes_atomic(path, dumps(obj).encode("utf-8"))


def read_capped(path: str, limit: int) -> bytes:
    """Read at most ``limit`` bytes; raise ProgressError if the file is larger
    or not a regular file (opened non-blocking: a FIFO under the name never
    hangs the reader)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ProgressError("not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ProgressError("file larger than %d bytes" % limit)
    return data


def _loads(raw: bytes, what: str) -> Any:
    if not raw.strip():
        raise ProgressError("empty file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProgressError("not UTF-8 (byte %d)" % e.start) from None
    try:
        return _json_loads(text)  # json.loads, without importing json
    except RecursionError:
        raise ProgressError("JSON nested too deeply") from None
    except ValueError as e:
        raise ProgressError("invalid JSON: %s" % _short_str(e, 120)) from None


# ---------------------------------------------------------------------------
# control files


def parse_control(raw: bytes) -> Tuple[int, Dict[str, Any]]:
    """Parse a control file: returns ``(seq, variables)`` or raises
    :class:`ProgressError` with the reason."""
    seq, variables, _signal = parse_control_doc(raw)
    return seq, variables


#: Signals ttop offers, here and through a control file's ``signal`` request.
SIGNAL_NAMES = ("SIGTERM", "SIGINT", "SIGKILL", "SIGHUP", "SIGSTOP", "SIGCONT", "SIGUSR1", "SIGUSR2")
#: ``signal.target``: the run's main process, or its whole process tree.
SIGNAL_TARGETS = ("main", "tree")


def parse_control_doc(raw: bytes, uid: Optional[int] = None, run: Optional[str] = None) -> Tuple[int, Dict[str, Any], Any]:
    """Parse a control file: ``(seq, variables, signal)`` where ``signal`` is
    the raw ``signal`` value (None when absent; check it with
    :func:`parse_signal_request`). Raises :class:`ProgressError`.

    ``uid``: the user of the run reading it. A file ttop wrote for the run
    of another user (``run_owner_uid``: whose progress file ttop saw under
    this name, which someone who can rename in the folder may have swapped)
    is refused: it is not this run's.

    ``run``: the name of the run reading it. A file ttop wrote for another
    run (``run``: the name its control file was written under) is refused
    too: in a folder without the sticky bit anyone may rename one run's
    control file, written by root, over another's, and the request or
    edit must not reach a run it was not meant for."""
    obj = _loads(raw, "control")
    if not isinstance(obj, dict):
        raise ProgressError("control file is not a JSON object")
    if obj.get("format") != CONTROL_FORMAT:
        raise ProgressError("control format is %s, expected %s" % (_short_str(obj.get("format"), 40), CONTROL_FORMAT))
    seq = obj.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ProgressError("control seq missing or not an integer")
    variables = obj.get("variables", {})
    if not isinstance(variables, dict):
        raise ProgressError("control variables is not an object")
    if uid is not None and "run_owner_uid" in obj and obj["run_owner_uid"] not in uid_seen_outside(uid):
        raise ProgressError("written for the run of uid %s, not for this run's user (uid %d)" % (
            _short_str(_dumps(obj["run_owner_uid"]), 20), uid))
    if run is not None and "run" in obj and obj["run"] != run:
        raise ProgressError("written for run %s, not for this run %s" % (_short_str(_dumps(obj["run"]), 80), _dumps(run)))
    return seq, variables, obj.get("signal")


_OUTSIDE: Dict[int, Tuple[int, ...]] = {}


def uid_seen_outside(uid: int) -> Tuple[int, ...]:
    """``uid`` and the uid it is outside this process's user namespace
    (``/proc/self/uid_map``): a run in a rootless container is root inside
    and its user outside, where ttop sees its files."""
    got = _OUTSIDE.get(uid)
    if got is None:
        out = [uid]
        try:
            with open("/proc/self/uid_map") as f:
                for line in f:
                    inside, outside, count = (int(x) for x in line.split())
                    if inside <= uid < inside + count and outside + uid - inside not in out:
                        out.append(outside + uid - inside)
        except (OSError, ValueError):
            pass
        got = _OUTSIDE[uid] = tuple(out)
    return got


def parse_signal_request(value: Any) -> Tuple[int, str, str]:
    """A control file's ``signal`` request ``{"name": "SIGTERM", "target":
    "main"|"tree", "seq": N}`` as ``(seq, name, target)``; raises
    :class:`ProgressError` naming what is wrong (the ``seq`` is needed to
    acknowledge a refusal: without a usable one the request is ignored)."""
    if not isinstance(value, dict):
        raise ProgressError("signal request is not an object")
    seq = value.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ProgressError("signal request seq missing or not a positive integer")
    name = value.get("name")
    if name not in SIGNAL_NAMES:
        raise ProgressError("unknown signal %s (known: %s)" % (_short_str(_dumps(name), 40), ", ".join(SIGNAL_NAMES)))
    target = value.get("target", "main")
    if target not in SIGNAL_TARGETS:
        raise ProgressError("signal target %s is not main or tree" % _short_str(_dumps(target), 40))
    return seq, name, target


def write_control(folder: str, run_name: str, seq: int, variables: Mapping[str, Any],
                  signal: Optional[Mapping[str, Any]] = None, owner_uid: Optional[int] = None,
                  name: Optional[str] = None) -> str:
    """Atomically write the control file for ``run_name`` (with a ``signal``
    request when given); returns its path. ``owner_uid``: the user whose
    run it is for (``run_owner_uid``; a run of another user refuses it).
    ``name``: the file's name when not the usual one (:func:`control_name`)."""
    path = os.path.join(folder, name) if name else control_path(folder, run_name)
    doc: Dict[str, Any] = {"format": CONTROL_FORMAT, "seq": int(seq), "variables": dict(variables), "run": run_name}
    if signal is not None:
        doc["signal"] = dict(signal)
    if owner_uid is not None:  # as seen outside this user namespace (ttop in a rootless container), as the run's is
        doc["run_owner_uid"] = uid_seen_outside(int(owner_uid))[-1]
    write_json_atomic(path, doc)
    return path


def type_name(value: Any) -> Optional[str]:
    """The control type of a tracked value: bool, int, float, str, or None."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


def coerce_value(type_: str, value: Any) -> Any:
    """Apply the control-file typing rule to a value read from JSON: an int
    variable takes an int, a float one an int or float (and the NaN/Infinity
    strings), a bool one a bool, a str one a str; nothing else. Returns the converted value or raises ProgressError with the reason."""
    if type_ == "bool":
        if isinstance(value, bool):
            return value
    elif type_ == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif type_ == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ProgressError("expected float, got int too large for a float") from None
        if value in ("NaN", "Infinity", "-Infinity"):
            return number_or_none(value)
    elif type_ == "str":
        if isinstance(value, str):
            return value
    else:
        raise ProgressError("variable of unsupported type %s" % type_)
    raise ProgressError("expected %s, got %s %s" % (type_, _json_type(value), _short_str(_dumps(value), 40)))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    return "object"


def _dumps(value: Any) -> str:
    """``value`` as JSON text for a message; never raises (a value from a
    file may be nested too deeply to write again, or an integer too long)."""
    import json

    try:
        return json.dumps(value)
    except (RecursionError, ValueError):
        return "<%s>" % type(value).__name__


#: The reader side's check of progress files, in :mod:`ttop.progresscheck`
#: (imported on first use: it imports this module), named here as well.
_CHECK_NAMES = frozenset(("parse_progress", "check_progress", "check_progress_shape", "_SHAPES", "_MAX_SHAPES",
                          "_finite", "_remember_shape"))


def __getattr__(name: str) -> Any:
    if name in _CHECK_NAMES:
        from . import progresscheck

        return getattr(progresscheck, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
