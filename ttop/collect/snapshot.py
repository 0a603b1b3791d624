"""Immutable snapshot types published by the collector.

A :class:`Snapshot` is everything one collection cycle saw. The UI, the
``--once`` printer and the CSV sink only ever read these; nothing in them is
mutated after publication (tuples and frozen dataclasses; ``RunSnapshot.data``
is the parsed progress file and must be treated as read-only).

``None`` means "unavailable"; where a reason is known it sits in a matching
``*_error`` field or in ``errors``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple


@dataclass(frozen=True)
class ThreadInfo:
    tid: int
    user_time: float
    system_time: float
    cpu_percent: Optional[float] = None  # since the previous cycle, % of one core
    name: str = ""  # the thread's name (/proc/<pid>/task/<tid>/comm), "" where unknown


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    name: str
    create_time: float
    depth: int  # 0 = the run's main process
    status: str = ""  # psutil status: running, sleeping, zombie, ...
    cmdline: str = ""
    cpu_percent: Optional[float] = None  # % of one core
    rss_bytes: Optional[int] = None
    num_threads: Optional[int] = None
    gpu_memory_bytes: Optional[int] = None
    gpu_indices: Tuple[int, ...] = ()
    tpu_memory_bytes: Optional[int] = None
    threads: Tuple[ThreadInfo, ...] = ()
    error: Optional[str] = None  # e.g. "access denied: rss"


@dataclass(frozen=True)
class RunResources:
    """Totals over a run's process tree."""

    cpu_percent: Optional[float] = None  # % of one core (may exceed 100)
    #: resident memory of the tree with shared pages counted once: the PSS
    #: sum for trees of several processes (see ttop.pss), RSS for one process
    rss_bytes: Optional[int] = None
    gpu_memory_bytes: Optional[int] = None
    tpu_memory_bytes: Optional[int] = None
    num_procs: Optional[int] = None
    num_threads: Optional[int] = None
    sampled_at: Optional[float] = None
    source: str = "none"  # "local" (psutil here), "reported" (the file's own), "none"
    ram_measure: Optional[str] = None  # "rss", "pss", "pss+rss" (PSS where read yet), None: unknown
    ram_sampled_at: Optional[float] = None  # when the oldest figure in rss_bytes was read (PSS is sampled less often)


@dataclass(frozen=True)
class RankSnapshot:
    """One rank (k > 0) of a multi-rank job, from its status file
    ``.<run>.rank<k>.json`` (see ttop.collect.ranks); rank 0 is the run."""

    rank: int
    world_size: Optional[int] = None
    pid: Optional[int] = None
    pid_create_time: Optional[float] = None
    host: Optional[str] = None
    local: bool = True  # on this host: its processes were looked up here
    alive: Optional[bool] = None  # None: cannot tell (remote, or not attributed)
    status: str = "RUNNING"  # what the rank's file says
    error: Optional[str] = None
    control_seq: int = 0  # the last edit this rank acknowledged
    control_error: Optional[str] = None  # why it refused it
    #: its answer to the last request to signal the run's tree (``signal_ack``)
    signal_ack: Optional[Mapping[str, Any]] = None
    heartbeat_age: Optional[float] = None  # seconds since the file's updated_at (ttop's clock)
    stale: bool = False  # RUNNING, but its file has not changed for the heartbeat limit
    resources: RunResources = field(default_factory=RunResources)  # the rank's tree, or its own report
    processes: Tuple[ProcInfo, ...] = ()  # its main process first
    ownership_note: Optional[str] = None  # why its process is not attributed
    file_error: Optional[str] = None  # (rank 0) the run's file is unreadable; its last good contents are shown


@dataclass(frozen=True)
class RunSnapshot:
    key: str  # progress file name without .json (several folders: TAG/NAME); unique in the snapshot
    path: str  # absolute path of the progress file
    data: Mapping[str, Any]  # last good parsed progress file (read-only)
    run_name: str
    status: str  # effective status (may be inferred)
    reported_status: str  # what the file says
    status_inferred: bool = False  # True: status is ttop's inference, not the run's report
    status_reason: Optional[str] = None  # why inferred, e.g. "process 1234 is gone"
    host: Optional[str] = None
    local: bool = True  # written on this host: processes were looked up here
    alive: Optional[bool] = None  # process exists with matching create time (None: cannot tell)
    pid: Optional[int] = None
    pid_create_time: Optional[float] = None
    stale: bool = False  # heartbeat too old, or the file turned bad (last good data kept)
    stale_reason: Optional[str] = None
    file_error: Optional[str] = None  # the file is currently unreadable; data is the last good one
    dropped_keys: Tuple[str, ...] = ()  # optional keys ignored for a wrong type
    mtime: float = 0.0
    heartbeat_age: Optional[float] = None  # seconds since updated_at at collection time
    resources: RunResources = field(default_factory=RunResources)
    processes: Tuple[ProcInfo, ...] = ()  # main process first, then children depth-first
    gpu_note: Optional[str] = None  # e.g. "NVML PIDs do not match this PID namespace"
    owner_uid: Optional[int] = None  # uid owning the progress file (None: unknown)
    owner: Optional[str] = None  # its login name (or "uid N")
    #: why the run's process (or part of its tree) is not attributed to it,
    #: e.g. "pid 12036 belongs to hostc, not to the file's owner hostb"
    ownership_note: Optional[str] = None
    health: Optional[str] = None  # OK / WARN / CRIT (ttop.collect.health); None: not judged (ended)
    health_reason: Optional[str] = None  # e.g. "stalled: batch 120 unmoved for 75 s"
    gpu_utilization: Optional[float] = None  # % the run's processes use of their busiest GPU
    cost: Optional[float] = None  # run time priced so far (ttop.collect.cost); None: no prices given
    cost_projected: Optional[float] = None  # the same for elapsed + remaining
    #: the other ranks of a multi-rank job (rank 1, 2, ...); resources then
    #: sum rank 0's tree and theirs
    ranks: Tuple[RankSnapshot, ...] = ()

    @property
    def folder(self) -> str:
        """The folder of the run's progress file: where its levers act
        (control file, logs, history, delete)."""
        return os.path.dirname(self.path)

    @property
    def stem(self) -> str:
        """The progress file's name without ``.json``: the run's name in
        its folder (control, log and history file names derive from it).
        Equals :attr:`key` when one folder is watched."""
        name = os.path.basename(self.path)
        return name[:-5] if name.endswith(".json") else name

    @property
    def folder_tag(self) -> str:
        """With several folders watched, the label of the run's folder
        (``key`` is ``TAG/STEM``); "" with one folder."""
        return self.key.rpartition("/")[0]


@dataclass(frozen=True)
class SkippedFile:
    name: str  # file name inside the folder
    reason: str


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    cpu_count: int
    cpu_percent: Optional[float] = None  # whole machine, 0..100
    mem_total: Optional[int] = None
    mem_used: Optional[int] = None
    load_avg: Optional[Tuple[float, float, float]] = None


@dataclass(frozen=True)
class GpuDevice:
    index: int
    name: Optional[str] = None
    uuid: Optional[str] = None
    memory_used: Optional[int] = None
    memory_total: Optional[int] = None
    utilization: Optional[int] = None  # %
    memory_utilization: Optional[int] = None  # %
    temperature: Optional[int] = None  # degrees C
    power_mw: Optional[int] = None
    power_limit_mw: Optional[int] = None
    errors: Mapping[str, str] = field(default_factory=dict)  # field -> reason


@dataclass(frozen=True)
class TpuChip:
    index: int
    device_id: Optional[int] = None
    memory_used: Optional[int] = None
    memory_total: Optional[int] = None
    duty_cycle: Optional[float] = None  # %


@dataclass(frozen=True)
class FolderInfo:
    """One watched folder (several: ``ttop DIR1 DIR2 ...``)."""

    path: str  # absolute
    tag: str  # its label: the TAG of its runs' keys ("" with one folder)
    error: Optional[str] = None  # why it could not be read this cycle


@dataclass(frozen=True)
class Budgets:
    """Usage is shown as % of these (defaults: the machine's totals)."""

    cpus: float
    ram_bytes: int
    gpu_bytes: Optional[int] = None  # None: sum of GPU memory, or no GPU


@dataclass(frozen=True)
class Snapshot:
    seq: int  # increases by one per published snapshot
    taken_at: float  # wall clock
    folder: str  # the (first) watched folder
    runs: Tuple[RunSnapshot, ...] = ()  # sorted by key
    skipped: Tuple[SkippedFile, ...] = ()
    host: Optional[HostInfo] = None
    gpus: Tuple[GpuDevice, ...] = ()
    gpu_error: Optional[str] = None  # e.g. "NVML not available: libnvidia-ml.so.1 not found"
    tpus: Tuple[TpuChip, ...] = ()
    tpu_error: Optional[str] = None
    budgets: Optional[Budgets] = None
    folder_error: Optional[str] = None  # folder missing / unreadable this cycle (several: all of them)
    #: every watched folder, with its tag and error (one folder: just it)
    folders: Tuple[FolderInfo, ...] = ()
    notices: Tuple[str, ...] = ()
    cycle_seconds: float = 0.0  # how long the cycle took

    def run(self, key: str) -> Optional[RunSnapshot]:
        for r in self.runs:
            if r.key == key:
                return r
        return None

    def counts(self) -> Dict[str, int]:
        """Runs per effective status (counted once per snapshot: the footer
        asks on every key)."""
        done = self.__dict__.get("_counts")  # a cache beside the fields, not one of them
        if done is None:
            done = {}
            for r in self.runs:
                done[r.status] = done.get(r.status, 0) + 1
            self.__dict__["_counts"] = done
        return dict(done)
