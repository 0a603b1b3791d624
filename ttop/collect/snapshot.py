"""Immutable snapshot types published by the collector.

A :class:`Snapshot` is everything one collection cycle saw. The UI, the
``--once`` printer and the CSV sink only ever read these; nothing in them is
mutated after publication (tuples and frozen records, see :mod:`ttop.record`;
``RunSnapshot.data`` is the parsed progress file and must be treated as
read-only).

``None`` means "unavailable"; where a reason is known it sits in a matching
``*_error`` field or in ``errors``.
"""
from __future__ import annotations

import os

from ..record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Tuple


class ThreadInfo(FrozenRecord):
    tid: int
    user_time: float
    system_time: float
    cpu_percent: Optional[float]  # since the previous cycle, % of one core
    name: str  # the thread's name (/proc/<pid>/task/<tid>/comm), "" where unknown

    def __init__(self, tid: int, user_time: float, system_time: float, cpu_percent: Optional[float] = None,
                 name: str = "") -> None:
        self.__dict__.update(tid=tid, user_time=user_time, system_time=system_time, cpu_percent=cpu_percent,
                             name=name)


class ProcInfo(FrozenRecord):
    pid: int
    ppid: int
    name: str
    create_time: float
    depth: int  # 0 = the run's main process
    status: str  # psutil status: running, sleeping, zombie, ...
    cmdline: str
    cpu_percent: Optional[float]  # % of one core
    rss_bytes: Optional[int]
    num_threads: Optional[int]
    gpu_memory_bytes: Optional[int]
    gpu_indices: Tuple[int, ...]
    tpu_memory_bytes: Optional[int]
    threads: Tuple[ThreadInfo, ...]
    error: Optional[str]  # e.g. "access denied: rss"

    def __init__(self, pid: int, ppid: int, name: str, create_time: float, depth: int, status: str = "",
                 cmdline: str = "", cpu_percent: Optional[float] = None, rss_bytes: Optional[int] = None,
                 num_threads: Optional[int] = None, gpu_memory_bytes: Optional[int] = None,
                 gpu_indices: Tuple[int, ...] = (), tpu_memory_bytes: Optional[int] = None,
                 threads: Tuple[ThreadInfo, ...] = (), error: Optional[str] = None) -> None:
        self.__dict__.update(pid=pid, ppid=ppid, name=name, create_time=create_time, depth=depth, status=status,
                             cmdline=cmdline, cpu_percent=cpu_percent, rss_bytes=rss_bytes, num_threads=num_threads,
                             gpu_memory_bytes=gpu_memory_bytes, gpu_indices=gpu_indices,
                             tpu_memory_bytes=tpu_memory_bytes, threads=threads, error=error)


class RunResources(FrozenRecord):
    """Totals over a run's process tree."""

    cpu_percent: Optional[float]  # % of one core (may exceed 100)
    #: resident memory of the tree with shared pages counted once: the PSS
    #: sum for trees of several processes (see ttop.pss), RSS for one process
    rss_bytes: Optional[int]
    gpu_memory_bytes: Optional[int]
    tpu_memory_bytes: Optional[int]
    num_procs: Optional[int]
    num_threads: Optional[int]
    sampled_at: Optional[float]
    source: str  # "local" (psutil here), "reported" (the file's own), "none"
    ram_measure: Optional[str]  # "rss", "pss", "pss+rss" (PSS where read yet), None: unknown
    ram_sampled_at: Optional[float]  # when the oldest figure in rss_bytes was read (PSS is sampled less often)

    def __init__(self, cpu_percent: Optional[float] = None, rss_bytes: Optional[int] = None,
                 gpu_memory_bytes: Optional[int] = None, tpu_memory_bytes: Optional[int] = None,
                 num_procs: Optional[int] = None, num_threads: Optional[int] = None,
                 sampled_at: Optional[float] = None, source: str = "none", ram_measure: Optional[str] = None,
                 ram_sampled_at: Optional[float] = None) -> None:
        self.__dict__.update(cpu_percent=cpu_percent, rss_bytes=rss_bytes, gpu_memory_bytes=gpu_memory_bytes,
                             tpu_memory_bytes=tpu_memory_bytes, num_procs=num_procs, num_threads=num_threads,
                             sampled_at=sampled_at, source=source, ram_measure=ram_measure,
                             ram_sampled_at=ram_sampled_at)


#: the default resources of a run or rank (records are immutable: one is shared)
_NO_RESOURCES = RunResources()


class RankSnapshot(FrozenRecord):
    """One rank (k > 0) of a multi-rank job, from its status file
    ``.<run>.rank<k>.json`` (see ttop.collect.ranks); rank 0 is the run."""

    rank: int
    world_size: Optional[int]
    pid: Optional[int]
    pid_create_time: Optional[float]
    host: Optional[str]
    local: bool  # on this host: its processes were looked up here
    alive: Optional[bool]  # None: cannot tell (remote, or not attributed)
    status: str  # what the rank's file says
    error: Optional[str]
    control_seq: int  # the last edit this rank acknowledged
    control_error: Optional[str]  # why it refused it
    #: its answer to the last request to signal the run's tree (``signal_ack``)
    signal_ack: Optional[Mapping[str, Any]]
    heartbeat_age: Optional[float]  # seconds since the file's updated_at (ttop's clock)
    stale: bool  # RUNNING, but its file has not changed for the heartbeat limit
    resources: RunResources  # the rank's tree, or its own report
    processes: Tuple[ProcInfo, ...]  # its main process first
    ownership_note: Optional[str]  # why its process is not attributed
    file_error: Optional[str]  # (rank 0) the run's file is unreadable; its last good contents are shown

    def __init__(self, rank: int, world_size: Optional[int] = None, pid: Optional[int] = None,
                 pid_create_time: Optional[float] = None, host: Optional[str] = None, local: bool = True,
                 alive: Optional[bool] = None, status: str = "RUNNING", error: Optional[str] = None,
                 control_seq: int = 0, control_error: Optional[str] = None,
                 signal_ack: Optional[Mapping[str, Any]] = None, heartbeat_age: Optional[float] = None,
                 stale: bool = False, resources: RunResources = _NO_RESOURCES, processes: Tuple[ProcInfo, ...] = (),
                 ownership_note: Optional[str] = None, file_error: Optional[str] = None) -> None:
        self.__dict__.update(rank=rank, world_size=world_size, pid=pid, pid_create_time=pid_create_time, host=host,
                             local=local, alive=alive, status=status, error=error, control_seq=control_seq,
                             control_error=control_error, signal_ack=signal_ack, heartbeat_age=heartbeat_age,
                             stale=stale, resources=resources,
                             processes=processes, ownership_note=ownership_note, file_error=file_error)


class RunSnapshot(FrozenRecord):
    key: str  # progress file name without .json (several folders: TAG/NAME); unique in the snapshot
    path: str  # absolute path of the progress file
    data: Mapping[str, Any]  # last good parsed progress file (read-only)
    run_name: str
    status: str  # effective status (may be inferred)
    reported_status: str  # what the file says
    status_inferred: bool  # True: status is ttop's inference, not the run's report
    status_reason: Optional[str]  # why inferred, e.g. "process 1234 is gone"
    host: Optional[str]
    local: bool  # written on this host: processes were looked up here
    alive: Optional[bool]  # process exists with matching create time (None: cannot tell)
    pid: Optional[int]
    pid_create_time: Optional[float]
    stale: bool  # heartbeat too old, or the file turned bad (last good data kept)
    stale_reason: Optional[str]
    file_error: Optional[str]  # the file is currently unreadable; data is the last good one
    dropped_keys: Tuple[str, ...]  # optional keys ignored for a wrong type
    mtime: float
    heartbeat_age: Optional[float]  # seconds since updated_at at collection time
    resources: RunResources
    processes: Tuple[ProcInfo, ...]  # main process first, then children depth-first
    gpu_note: Optional[str]  # e.g. "NVML PIDs do not match this PID namespace"
    owner_uid: Optional[int]  # uid owning the progress file (None: unknown)
    owner: Optional[str]  # its login name (or "uid N")
    #: why the run's process (or part of its tree) is not attributed to it,
    #: e.g. "pid 12036 belongs to hostc, not to the file's owner hostb"
    ownership_note: Optional[str]
    health: Optional[str]  # OK / WARN / CRIT (ttop.collect.health); None: not judged (ended)
    health_reason: Optional[str]  # e.g. "stalled: batch 120 unmoved for 75 s"
    gpu_utilization: Optional[float]  # % the run's processes use of their busiest GPU
    cost: Optional[float]  # run time priced so far (ttop.collect.cost); None: no prices given
    cost_projected: Optional[float]  # the same for elapsed + remaining
    #: the other ranks of a multi-rank job (rank 1, 2, ...); resources then
    #: sum rank 0's tree and theirs
    ranks: Tuple[RankSnapshot, ...]

    def __init__(self, key: str, path: str, data: Mapping[str, Any], run_name: str, status: str, reported_status: str,
                 status_inferred: bool = False, status_reason: Optional[str] = None, host: Optional[str] = None,
                 local: bool = True, alive: Optional[bool] = None, pid: Optional[int] = None,
                 pid_create_time: Optional[float] = None, stale: bool = False, stale_reason: Optional[str] = None,
                 file_error: Optional[str] = None, dropped_keys: Tuple[str, ...] = (), mtime: float = 0.0,
                 heartbeat_age: Optional[float] = None, resources: RunResources = _NO_RESOURCES,
                 processes: Tuple[ProcInfo, ...] = (), gpu_note: Optional[str] = None,
                 owner_uid: Optional[int] = None, owner: Optional[str] = None, ownership_note: Optional[str] = None,
                 health: Optional[str] = None, health_reason: Optional[str] = None,
                 gpu_utilization: Optional[float] = None, cost: Optional[float] = None,
                 cost_projected: Optional[float] = None, ranks: Tuple[RankSnapshot, ...] = ()) -> None:
        self.__dict__.update(key=key, path=path, data=data, run_name=run_name, status=status,
                             reported_status=reported_status, status_inferred=status_inferred,
                             status_reason=status_reason, host=host, local=local, alive=alive, pid=pid,
                             pid_create_time=pid_create_time, stale=stale, stale_reason=stale_reason,
                             file_error=file_error, dropped_keys=dropped_keys, mtime=mtime,
                             heartbeat_age=heartbeat_age,
                             resources=resources, processes=processes,
                             gpu_note=gpu_note, owner_uid=owner_uid, owner=owner, ownership_note=ownership_note,
                             health=health, health_reason=health_reason, gpu_utilization=gpu_utilization, cost=cost,
                             cost_projected=cost_projected, ranks=ranks)

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


class SkippedFile(FrozenRecord):
    name: str  # file name inside the folder
    reason: str

    def __init__(self, name: str, reason: str) -> None:
        self.__dict__.update(name=name, reason=reason)


class HostInfo(FrozenRecord):
    hostname: str
    cpu_count: int
    cpu_percent: Optional[float]  # whole machine, 0..100
    mem_total: Optional[int]
    mem_used: Optional[int]
    load_avg: Optional[Tuple[float, float, float]]

    def __init__(self, hostname: str, cpu_count: int, cpu_percent: Optional[float] = None,
                 mem_total: Optional[int] = None, mem_used: Optional[int] = None,
                 load_avg: Optional[Tuple[float, float, float]] = None) -> None:
        self.__dict__.update(hostname=hostname, cpu_count=cpu_count, cpu_percent=cpu_percent, mem_total=mem_total,
                             mem_used=mem_used, load_avg=load_avg)


class GpuDevice(FrozenRecord):
    index: int
    name: Optional[str]
    uuid: Optional[str]
    memory_used: Optional[int]
    memory_total: Optional[int]
    utilization: Optional[int]  # %
    memory_utilization: Optional[int]  # %
    temperature: Optional[int]  # degrees C
    power_mw: Optional[int]
    power_limit_mw: Optional[int]
    errors: Mapping[str, str]  # field -> reason

    def __init__(self, index: int, name: Optional[str] = None, uuid: Optional[str] = None,
                 memory_used: Optional[int] = None, memory_total: Optional[int] = None,
                 utilization: Optional[int] = None, memory_utilization: Optional[int] = None,
                 temperature: Optional[int] = None, power_mw: Optional[int] = None,
                 power_limit_mw: Optional[int] = None, errors: Optional[Mapping[str, str]] = None) -> None:
        self.__dict__.update(index=index, name=name, uuid=uuid, memory_used=memory_used, memory_total=memory_total,
                             utilization=utilization, memory_utilization=memory_utilization, temperature=temperature,
                             power_mw=power_mw, power_limit_mw=power_limit_mw,
                             errors={} if errors is None else errors)


class TpuChip(FrozenRecord):
    index: int
    device_id: Optional[int]
    memory_used: Optional[int]
    memory_total: Optional[int]
    duty_cycle: Optional[float]  # %

    def __init__(self, index: int, device_id: Optional[int] = None, memory_used: Optional[int] = None,
                 memory_total: Optional[int] = None, duty_cycle: Optional[float] = None) -> None:
        self.__dict__.update(index=index, device_id=device_id, memory_used=memory_used, memory_total=memory_total,
                             duty_cycle=duty_cycle)


class FolderInfo(FrozenRecord):
    """One watched folder (several: ``ttop DIR1 DIR2 ...``)."""

    path: str  # absolute
    tag: str  # its label: the TAG of its runs' keys ("" with one folder)
    error: Optional[str]  # why it could not be read this cycle

    def __init__(self, path: str, tag: str, error: Optional[str] = None) -> None:
        self.__dict__.update(path=path, tag=tag, error=error)


class Budgets(FrozenRecord):
    """Usage is shown as % of these (defaults: the machine's totals)."""

    cpus: float
    ram_bytes: int
    gpu_bytes: Optional[int]  # None: sum of GPU memory, or no GPU

    def __init__(self, cpus: float, ram_bytes: int, gpu_bytes: Optional[int] = None) -> None:
        self.__dict__.update(cpus=cpus, ram_bytes=ram_bytes, gpu_bytes=gpu_bytes)


class Snapshot(FrozenRecord):
    seq: int  # increases by one per published snapshot
    taken_at: float  # wall clock
    folder: str  # the (first) watched folder
    runs: Tuple[RunSnapshot, ...]  # sorted by key
    skipped: Tuple[SkippedFile, ...]
    host: Optional[HostInfo]
    gpus: Tuple[GpuDevice, ...]
    gpu_error: Optional[str]  # e.g. "NVML not available: libnvidia-ml.so.1 not found"
    tpus: Tuple[TpuChip, ...]
    tpu_error: Optional[str]
    budgets: Optional[Budgets]
    folder_error: Optional[str]  # folder missing / unreadable this cycle (several: all of them)
    #: every watched folder, with its tag and error (one folder: just it)
    folders: Tuple[FolderInfo, ...]
    notices: Tuple[str, ...]
    cycle_seconds: float  # how long the cycle took

    def __init__(self, seq: int, taken_at: float, folder: str, runs: Tuple[RunSnapshot, ...] = (),
                 skipped: Tuple[SkippedFile, ...] = (), host: Optional[HostInfo] = None,
                 gpus: Tuple[GpuDevice, ...] = (), gpu_error: Optional[str] = None, tpus: Tuple[TpuChip, ...] = (),
                 tpu_error: Optional[str] = None, budgets: Optional[Budgets] = None,
                 folder_error: Optional[str] = None, folders: Tuple[FolderInfo, ...] = (),
                 notices: Tuple[str, ...] = (), cycle_seconds: float = 0.0) -> None:
        self.__dict__.update(seq=seq, taken_at=taken_at, folder=folder, runs=runs, skipped=skipped, host=host,
                             gpus=gpus, gpu_error=gpu_error, tpus=tpus, tpu_error=tpu_error, budgets=budgets,
                             folder_error=folder_error, folders=folders, notices=notices, cycle_seconds=cycle_seconds)

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


def host_shares(run: Any) -> List[Tuple[str, bool, Any]]:
    """``(host, local, resources)`` for what ``run`` uses where: each rank
    of a multi-rank job on the host that runs it (rank 0 on the run's),
    any other run on its own host. A job's ranks on two machines are not
    all the first machine's CPU and RAM. A rank whose heartbeat stopped,
    not seen alive here, is left out: its figures are its last report, not
    what it uses now (as for a stale run, which the callers leave out)."""
    ranks = getattr(run, "ranks", None) or ()
    if not ranks:
        return [(run.host or "", bool(run.local), run.resources)]
    return [(((run.host if rk.rank == 0 else rk.host) or ""), bool(run.local if rk.rank == 0 else rk.local),
             rk.resources) for rk in ranks if not (rk.stale and rk.alive is not True)]
