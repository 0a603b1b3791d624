"""``ttop FOLDER --once --json``: a snapshot as a plain, stable JSON document.

:func:`snapshot_to_dict` turns a :class:`~ttop.collect.snapshot.Snapshot` into
a dict of JSON values with the keys listed below, always all of them (a value
that is unknown is ``null``, never a missing key). Keys are only ever added,
never renamed or removed, within format ``ttop.snapshot/1``; ``docs/cli.md``
documents each one. Non-finite floats become the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` (as in progress files), so the output is strict
JSON that every parser accepts.

This module knows nothing of curses and reads nothing from disk.
"""
from __future__ import annotations

import json
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional

from ..collect.fleet import host_summaries
from ..collect.snapshot import ProcInfo, RunSnapshot, Snapshot
from ..jsonvalues import ascii_json
from ..progress import json_safe
from ..view.metrics import trend

SNAPSHOT_FORMAT = "ttop.snapshot/1"

#: Top-level keys, in output order.
TOP_KEYS = (
    "format",
    "seq",
    "taken_at",
    "folder",
    "folder_error",
    "folders",
    "cycle_seconds",
    "host",
    "budgets",
    "gpus",
    "gpu_error",
    "tpus",
    "tpu_error",
    "skipped",
    "notices",
    "counts",
    "metric_columns",
    "columns",
    "health_counts",
    "cost_total",
    "hosts",
    "runs",
)
HOST_KEYS = ("hostname", "cpu_count", "cpu_percent", "mem_total", "mem_used", "load_avg")
BUDGET_KEYS = ("cpus", "ram_bytes", "gpu_bytes")
#: Keys of each entry of ``hosts`` (see :mod:`ttop.collect.fleet`).
FLEET_KEYS = ("host", "local", "runs", "running", "stale", "cpu_percent", "rss_bytes", "gpu_memory_bytes",
              "heartbeat_age", "clock_skew", "silent")
GPU_KEYS = (
    "index",
    "name",
    "uuid",
    "memory_used",
    "memory_total",
    "utilization",
    "memory_utilization",
    "temperature",
    "power_mw",
    "power_limit_mw",
    "errors",
)
TPU_KEYS = ("index", "device_id", "memory_used", "memory_total", "duty_cycle")
SKIPPED_KEYS = ("name", "reason")
#: Keys of each entry of ``folders`` (the watched folders).
FOLDER_KEYS = ("path", "tag", "error")

#: Keys of each entry of ``runs``.
RUN_KEYS = (
    "key",
    "path",
    "folder",
    "run_name",
    "status",
    "reported_status",
    "status_inferred",
    "status_reason",
    "host",
    "local",
    "alive",
    "stale",
    "stale_reason",
    "file_error",
    "dropped_keys",
    "pid",
    "pid_create_time",
    "heartbeat_age",
    "started_at",
    "updated_at",
    "ended_at",
    "phase",
    "error",
    "epoch",
    "total_epochs",
    "batch",
    "total_batches",
    "train_batch",
    "train_total_batches",
    "val_batch",
    "val_total_batches",
    "rate",
    "times",
    "metrics",
    "metric_trends",
    "variables",
    "control_seq",
    "control_error",
    "logs",
    "links",
    "gpu_note",
    "owner_uid",
    "owner",
    "ownership_note",
    "health",
    "health_reason",
    "gpu_utilization",
    "cost",
    "cost_projected",
    "resources",
    "processes",
    "ranks",
)
#: Run keys taken from the RunSnapshot object itself; the rest come from the
#: progress file (``RunSnapshot.data``).
_RUN_ATTRS = (
    "key",
    "path",
    "folder",
    "run_name",
    "status",
    "reported_status",
    "status_inferred",
    "status_reason",
    "host",
    "local",
    "alive",
    "stale",
    "stale_reason",
    "file_error",
    "pid",
    "pid_create_time",
    "heartbeat_age",
    "gpu_note",
    "owner_uid",
    "owner",
    "ownership_note",
    "health",
    "health_reason",
    "gpu_utilization",
    "cost",
    "cost_projected",
)
_RUN_DICT_KEYS = ("times", "metrics", "variables", "logs", "links")
RESOURCE_KEYS = (
    "cpu_percent",
    "rss_bytes",
    "gpu_memory_bytes",
    "tpu_memory_bytes",
    "num_procs",
    "num_threads",
    "sampled_at",
    "source",
    "ram_measure",
    "ram_sampled_at",
)
PROCESS_KEYS = (
    "pid",
    "ppid",
    "name",
    "create_time",
    "depth",
    "status",
    "cmdline",
    "cpu_percent",
    "rss_bytes",
    "num_threads",
    "gpu_memory_bytes",
    "gpu_indices",
    "tpu_memory_bytes",
    "error",
    "threads",
)
THREAD_KEYS = ("tid", "name", "user_time", "system_time", "cpu_percent")
#: One rank of a multi-rank job (rank 0 is the run itself), ``resources``
#: with RESOURCE_KEYS, ``processes`` with PROCESS_KEYS.
RANK_KEYS = ("rank", "world_size", "pid", "pid_create_time", "host", "local", "alive", "status", "error",
             "control_seq", "control_error", "signal_ack", "heartbeat_age", "stale", "ownership_note", "resources", "processes")


def _attrs(obj: Any, keys: Iterable[str]) -> Dict[str, Any]:
    """The named fields of a snapshot dataclass, as JSON values."""
    return {k: json_safe(getattr(obj, k)) for k in keys}


def _maybe(obj: Any, keys: Iterable[str]) -> Optional[Dict[str, Any]]:
    return None if obj is None else _attrs(obj, keys)


def _process_dict(proc: ProcInfo) -> Dict[str, Any]:
    out = _attrs(proc, PROCESS_KEYS[:-1])
    out["gpu_indices"] = [json_safe(i) for i in proc.gpu_indices]
    out["threads"] = [_attrs(t, THREAD_KEYS) for t in proc.threads]
    return out


def _rank_dict(rank: Any) -> Dict[str, Any]:
    out = _attrs(rank, RANK_KEYS[:-2])
    out["resources"] = _attrs(rank.resources, RESOURCE_KEYS)
    out["processes"] = [_process_dict(p) for p in rank.processes]
    return out


def _trends(run: RunSnapshot) -> Dict[str, Optional[str]]:
    m = run.data.get("metrics")
    if not isinstance(m, Mapping):
        return {}
    return {str(k): trend(run, k) for k in m if isinstance(k, str)}


def run_to_dict(run: RunSnapshot) -> Dict[str, Any]:
    """One run as a dict with exactly :data:`RUN_KEYS`."""
    data = run.data
    attrs = _attrs(run, _RUN_ATTRS)
    out: Dict[str, Any] = {}
    for key in RUN_KEYS:
        if key in attrs:
            out[key] = attrs[key]
        elif key == "dropped_keys":
            out[key] = [str(k) for k in run.dropped_keys]
        elif key == "resources":
            out[key] = _attrs(run.resources, RESOURCE_KEYS)
        elif key == "processes":
            out[key] = [_process_dict(p) for p in run.processes]
        elif key == "ranks":
            out[key] = [_rank_dict(r) for r in run.ranks]
        elif key == "metric_trends":
            out[key] = _trends(run)
        elif key in _RUN_DICT_KEYS:
            value = data.get(key)
            out[key] = json_safe(value) if isinstance(value, Mapping) else {}
        else:
            out[key] = json_safe(data.get(key))
    out["key"] = json_key(run.key)
    return out


def json_key(key: str) -> str:
    """A run's ``key`` as ``--json`` writes it: the key, or for one no
    UTF-8 text can hold (a file name that is not UTF-8, which would be
    written with U+FFFD) that spelling, ``//`` and a digest of the name, so
    that ``a\xff.json`` and ``a\xfe.json`` stay two keys (a key that is a
    file name never holds ``//``)."""
    try:
        key.encode("utf-8")
        return key
    except UnicodeEncodeError:
        import hashlib

        shown = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in key)
        return "%s//%s" % (shown, hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:12])


def table_columns(snapshot: Any, columns: Any = None) -> List[str]:
    """Keys of the columns the table (and ``--once``) shows for the column
    choice ``columns`` (None: the default), ``"name"`` first."""
    from ..view.state import ViewState
    from ..view.table import columns_for

    try:
        return ["name"] + [c.key for c in columns_for(snapshot, ViewState(columns=columns), snapshot.runs)]
    except Exception:  # odd progress-file content never breaks the output
        return ["name"]


def cost_total(runs: Any) -> Optional[Dict[str, Any]]:
    """``{"cost": sum so far, "projected": sum of projections}`` over the
    runs that have a cost (projected: null if one of them has none); None
    when no run has a cost (no prices given)."""
    total = 0.0
    projected: Optional[float] = 0.0
    seen = False
    for r in runs:
        c = r.cost
        if c is None:
            continue
        seen = True
        total += c
        p = r.cost_projected
        projected = None if p is None or projected is None else projected + p
    if not seen:
        return None
    return {"cost": json_safe(round(total, 4)), "projected": None if projected is None else json_safe(round(projected, 4))}


def snapshot_to_dict(snapshot: Snapshot, with_runs: bool = True, columns: Any = None) -> Dict[str, Any]:
    """The snapshot as a dict of JSON values with exactly :data:`TOP_KEYS`
    (format ``ttop.snapshot/1``). Never raises on odd progress-file content.
    ``with_runs=False`` leaves ``runs`` empty (:func:`write_json` streams them).
    ``columns``: the column choice (``--columns`` / the config file), which
    ``columns`` and ``metric_columns`` follow."""
    host_d = _maybe(snapshot.host, HOST_KEYS)
    if host_d is not None and host_d.get("load_avg") is not None:
        host_d["load_avg"] = list(host_d["load_avg"])
    gpus: List[Dict[str, Any]] = []
    for g in snapshot.gpus:
        d = _attrs(g, GPU_KEYS)
        if not isinstance(d.get("errors"), dict):
            d["errors"] = {}
        gpus.append(d)
    runs = snapshot.runs
    shown = table_columns(snapshot, columns)
    counts: Dict[str, int] = {}
    health: Dict[str, int] = {}
    for r in runs:
        counts[r.status] = counts.get(r.status, 0) + 1
        level = r.health
        if level is not None:
            health[level] = health.get(level, 0) + 1
    return {
        "format": SNAPSHOT_FORMAT,
        "seq": json_safe(snapshot.seq),
        "taken_at": json_safe(snapshot.taken_at),
        "folder": json_safe(snapshot.folder),
        "folder_error": json_safe(snapshot.folder_error),
        "folders": [_attrs(f, FOLDER_KEYS) for f in snapshot.folders],
        "cycle_seconds": json_safe(snapshot.cycle_seconds),
        "host": host_d,
        "budgets": _maybe(snapshot.budgets, BUDGET_KEYS),
        "gpus": gpus,
        "gpu_error": json_safe(snapshot.gpu_error),
        "tpus": [_attrs(t, TPU_KEYS) for t in snapshot.tpus],
        "tpu_error": json_safe(snapshot.tpu_error),
        "skipped": [_attrs(s, SKIPPED_KEYS) for s in snapshot.skipped],
        "notices": [json_safe(n) for n in snapshot.notices],
        "counts": counts,
        "metric_columns": [k[2:] for k in shown if k.startswith("m:")],
        "columns": shown,
        "health_counts": health,
        "cost_total": cost_total(runs),
        "hosts": [_attrs(h, FLEET_KEYS) for h in host_summaries(snapshot)],
        "runs": [run_to_dict(r) for r in runs] if with_runs else [],
    }


def _dumps(obj: Any, indent: Optional[int]) -> str:
    def dump(o: Any) -> str:
        return json.dumps(o, indent=indent, allow_nan=False, ensure_ascii=True)

    return ascii_json(dump(obj), obj, dump)


def dumps_snapshot(snapshot: Snapshot, indent: Optional[int] = 2, columns: Any = None) -> str:
    """Strict JSON text of :func:`snapshot_to_dict` (ASCII-only, so it survives
    any locale; non-ASCII appears as ``\\uXXXX`` escapes)."""
    return _dumps(snapshot_to_dict(snapshot, columns=columns), indent)


def iter_json(snapshot: Snapshot, columns: Any = None) -> Iterator[str]:
    """:func:`dumps_snapshot` (indent 2) in pieces, one run at a time: the
    same text, never held whole (50,000 runs are hundreds of MB of JSON)."""
    head = _dumps(snapshot_to_dict(snapshot, with_runs=False, columns=columns), 2)
    if not snapshot.runs:
        yield head
        return
    empty = "[]\n}"
    if not head.endswith('"runs": ' + empty):  # pragma: no cover - "runs" is the last key
        yield dumps_snapshot(snapshot, columns=columns)
        return
    yield head[: -len(empty)] + "["
    sep = "\n    "
    for i, run in enumerate(snapshot.runs):
        # a run is an element of a list two levels deep: 4 more spaces on
        # every line (JSON strings hold no raw newline)
        yield ("," if i else "") + sep + _dumps(run_to_dict(run), 2).replace("\n", sep)
    yield "\n  ]\n}"


def write_json(snapshot: Snapshot, stream: IO[str], columns: Any = None) -> None:
    """Write the snapshot as JSON plus a newline to ``stream``, run by run."""
    buf: List[str] = []
    size = 0
    for piece in iter_json(snapshot, columns):
        buf.append(piece)
        size += len(piece)
        if size >= 1 << 16:
            stream.write("".join(buf))
            buf, size = [], 0
    buf.append("\n")
    stream.write("".join(buf))
    stream.flush()
