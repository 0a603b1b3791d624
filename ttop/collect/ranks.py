"""The ranks of a multi-rank job as rows of its run.

Rank 0 of a job writes the run's progress file; every other rank k writes a
hidden status file ``.<run>.rank<k>.json`` next to it (see
``ttop.integrations._ranks``) with its PID (and create time), host, status,
error, the edit it acknowledged last and a sample of its own resources.

Each cycle, for every RUNNING run, :class:`RankReader` reads its ranks'
files. The folder is shared with strangers, so each file is opened once
relative to the folder's descriptor without following a link and without
blocking (``O_NOFOLLOW | O_NONBLOCK``), checked on that descriptor
(``fstat``: a regular file) and used only when it has the same owner as the
run's progress file: anyone else's file says nothing about the run.

A rank on this host whose process is alive and belongs to the run's owner
is attributed to the run: its process tree is looked up here (its PID is
added to the other trees' stop set, so a rank that is another rank's
descendant is counted once, under its own row). A rank on another host
(or in another PID namespace) shows its own resource sample. The run's
resources become the sum over rank 0's tree and the ranks', with every
process's RAM measured alike (PSS where read).

Runs without rank files cost one failed ``open`` of ``.<run>.rank1.json``
per :data:`PROBE_SECONDS` (many at once: one listing of the folder); in a
folder that local change notification watches (``ScanResult.hidden``), a
run found without one is probed again only when a file of that name is
reported written or removed, its start time or owner changes, events may
have been missed, or :data:`RECHECK_SECONDS` passed.
"""
from __future__ import annotations

import json
import os
import stat
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Tuple

from ..fsafe import FILE_FLAGS, open_dir
from ..progress import RUNNING, pid_namespace
from ..record import replace
from . import procs as _procs
from .owners import user_name
from .runs import _int, _num, heartbeat_limit, reported_resources
from .snapshot import ProcInfo, RankSnapshot, RunResources, RunSnapshot

#: ``format`` of a rank status file.
RANK_FORMAT_PREFIX = "ttop.rank/"
#: A rank file larger than this is refused.
MAX_RANK_BYTES = 256 * 1024
#: A run without rank files is probed for one again after this long.
PROBE_SECONDS = 2.0
#: Runs to probe in one cycle from which the folder is listed instead (when
#: its last listing had at most LIST_RATIO names per probe)
LIST_PROBES = 32
LIST_RATIO = 10
#: Under change notification, a run without rank files is probed at least this often.
RECHECK_SECONDS = 60.0
#: At most this many ranks per run are read.
MAX_RANKS = 1024

_MY_PIDNS = pid_namespace()


def rank_name(run_key: str, rank: int) -> str:
    return ".%s.rank%d.json" % (run_key, rank)


class _File:
    """A rank file as last read: its signature, its data, when ttop saw its
    ``updated_at`` change."""

    __slots__ = ("sig", "data", "updated", "beat")

    def __init__(self) -> None:
        self.sig: Optional[Tuple[int, int, int]] = None
        self.data: Optional[Dict[str, Any]] = None
        self.updated: Optional[float] = None
        self.beat = 0.0


class _Run:
    __slots__ = ("files", "next_probe", "world", "quiet")

    def __init__(self) -> None:
        self.files: Dict[int, _File] = {}
        self.next_probe = 0.0
        self.world = 2
        #: found without rank 1 under change notification: (events' generation, the run's start, its owner, recheck by)
        self.quiet: Optional[Tuple[int, float, Optional[int], float]] = None


def _read(dfd: int, name: str, owner: Optional[int], cached: Optional[_File]) -> Tuple[Optional[_File], bool]:
    """``(file, found)``: the rank file ``name`` read (or its cached copy
    when unchanged); ``(None, False)`` when there is none, ``(None, True)``
    when it is not the run owner's (ignored)."""
    if "/" in name:  # one name in the folder, never a path
        return None, False
    try:  # no link followed, no blocking on a FIFO
        fd = os.open(name, FILE_FLAGS, dir_fd=dfd)
    except FileNotFoundError:
        return None, False
    except OSError:  # a link, unreadable: not a rank file ttop reads
        return None, True
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a FIFO, a folder
            return None, True
        if owner is not None and st.st_uid != owner:
            return None, True  # a stranger's file: says nothing about this run
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        if cached is not None and cached.sig == sig:
            return cached, True
        if st.st_size > MAX_RANK_BYTES:
            return None, True
        raw = os.read(fd, MAX_RANK_BYTES + 1)
    except OSError:
        return None, True
    finally:
        os.close(fd)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested too deeply: no cycle breaks on it
        data = None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith(RANK_FORMAT_PREFIX):
        return cached, True  # its last good contents, if any
    f = _File()
    f.sig = sig
    f.data = data
    upd = _num(data.get("updated_at"))
    f.updated = float(upd) if upd is not None else None
    return f, True


_NO_RUN = _Run()
_RANK1 = ".rank1.json"
assert rank_name("x", 1) == ".x" + _RANK1
_NOT_LISTED: Any = object()


class RankReader:
    """Reads the rank files of the RUNNING runs of one folder, cycle after
    cycle (see the module docstring)."""

    def __init__(self, folder: str, interval: float = 2.0) -> None:
        self.folder = folder
        self.interval = interval
        self._runs: Dict[str, _Run] = {}
        self._listed = 0  # names in the folder's last listing
        self._gen = 0  # changes with each cycle whose events do not follow the last one's
        self._scan = -1  # the scan of the last cycle's events

    def shift(self, step: float) -> None:
        """The wall clock was set by ``step`` seconds: the heartbeats and
        probe times taken on it move with it."""
        for r in self._runs.values():
            r.next_probe += step
            r.quiet = None
            for f in r.files.values():
                f.beat += step

    def cycle(self, statics: List[Tuple[Any, Any]], me: str, now: float,
              hidden: Optional[Tuple[int, AbstractSet[str]]] = None) -> Optional["RankCycle"]:
        """This cycle's ranks, per run key; None when no run has any.
        ``hidden``: the scan's :attr:`~ttop.collect.fileresult.ScanResult.hidden`."""
        if hidden is None or hidden[0] != self._scan + 1:  # events may have been missed since the last cycle
            self._gen += 1
        self._scan, told = hidden if hidden is not None else (-1, frozenset())
        gen = self._gen
        live = [st for _fr, st in statics if st is not None and st.reported == RUNNING]
        if not live:
            self._runs.clear()
            return None
        found: Dict[str, List[Tuple[int, _File]]] = {}
        keep: Dict[str, _Run] = {}
        dfds: Dict[str, int] = {}  # several folders watched: each run's ranks are in its own
        # many runs to probe for a first rank file: one listing of the folder
        # answers for all of them (a failed open each costs ~10x a listed name)
        runs = self._runs
        probes = 0
        todo = []
        for st in live:
            due = runs.get(st.key) or _NO_RUN
            q = due.quiet
            if q is not None:  # (no rank files)
                if (q[0] == gen and q[1] == st.started and q[2] == st.owner_uid and now < q[3]
                        and (not told or "." + st.key + _RANK1 not in told)):  # (told: the scan's while gen is q[0]'s)
                    if now >= due.next_probe:  # as a probe would find: none
                        due.next_probe = now + PROBE_SECONDS
                    keep[st.key] = due
                    continue
                due.quiet = None
            todo.append(st)
            if not due.files and now >= due.next_probe:
                probes += 1
        listings: Optional[Dict[str, Optional[AbstractSet[str]]]] = None
        if probes >= LIST_PROBES and probes * LIST_RATIO >= self._listed:
            listings = {}
        try:
            for st in todo:
                folder = self.folder if "/" not in st.key else (os.path.dirname(st.path) or self.folder)
                dfd = dfds.get(folder, -1)
                if dfd < 0:
                    try:
                        dfd = dfds[folder] = open_dir(folder)
                    except OSError:
                        continue
                stem = st.key.rpartition("/")[2]  # the file's name in its folder (keys are TAG/NAME then)
                r = runs.get(st.key)
                if r is None:
                    r = _Run()
                if not r.files and now < r.next_probe:
                    keep[st.key] = r
                    continue
                if not r.files and listings is not None:
                    names = listings.get(folder, _NOT_LISTED)
                    if names is _NOT_LISTED:
                        try:
                            names = listings[folder] = frozenset(os.listdir(dfd))
                            self._listed = len(names)
                        except OSError:
                            names = listings[folder] = None
                    if names is not None and "." + stem + _RANK1 not in names:  # (rank_name(stem, 1))
                        # no rank 1 and none known (r.files is empty): probe again later
                        r.next_probe = now + PROBE_SECONDS
                        r.world = 2
                        if hidden is not None and "/" not in st.key:
                            r.quiet = (gen, st.started, st.owner_uid, now + RECHECK_SECONDS)
                        keep[st.key] = r
                        continue
                files: Dict[int, _File] = {}
                k = 1
                while k < min(r.world, MAX_RANKS):
                    got, exists = _read(dfd, rank_name(stem, k), st.owner_uid, r.files.get(k))
                    if got is not None and got.data is not None and _earlier(got.data, st.started):
                        got = None  # left by an earlier run of the same name
                    if got is not None:
                        if got.data is not None:
                            prev = r.files.get(k)
                            if prev is None or prev.updated != got.updated:
                                got.beat = now if prev is not None else min(now, got.updated or now)
                            else:
                                got.beat = prev.beat
                            w = _int(got.data.get("world_size"))
                            if w is not None and w > r.world:
                                r.world = min(w, MAX_RANKS)
                        files[k] = got
                    elif not exists and k == 1 and not r.files:
                        break  # no rank 1 and none known: probe again later
                    k += 1
                r.files = files
                if not files:
                    r.next_probe = now + PROBE_SECONDS
                    r.world = 2
                    if hidden is not None and "/" not in st.key:  # (the events are of the scanner's folder)
                        r.quiet = (gen, st.started, st.owner_uid, now + RECHECK_SECONDS)
                keep[st.key] = r
                if files:
                    found[st.key] = sorted(files.items())
        finally:
            for fd in dfds.values():
                os.close(fd)
        self._runs = keep
        return RankCycle(found, me, now, self.interval) if found else None


class RankCycle:
    """One cycle's rank files: which local rank processes the runs hold
    (:meth:`claim`), then the ranks attached to each run (:meth:`attach`)."""

    def __init__(self, found: Mapping[str, List[Tuple[int, _File]]], me: str, now: float, interval: float = 2.0) -> None:
        self.found = found
        self.me = me
        self.now = now
        self.limit = heartbeat_limit({}, interval)  # a rank writes every write interval of its run
        #: (key, rank) -> why its live local process is not the run's (None: it is)
        self._verdict: Dict[Tuple[str, int], Optional[str]] = {}
        self._state: Dict[Tuple[str, int], str] = {}

    def needs_table(self) -> bool:
        return any(self._local(f.data) for files in self.found.values() for _k, f in files if f.data)

    def _local(self, data: Mapping[str, Any]) -> bool:
        host, ns = data.get("host"), data.get("pid_namespace")
        return (host is None or host == self.me) and (ns is None or _MY_PIDNS is None or ns == _MY_PIDNS)

    def claim(self, statics: List[Tuple[Any, Any]], table: _procs.ProcessTable, mains: AbstractSet[int]
              ) -> AbstractSet[int]:
        """``mains`` plus the PIDs of the live local ranks their run holds
        (a rank's tree is its own, left out of the others')."""
        owners = {st.key: st for _fr, st in statics if st is not None and st.key in self.found}
        held = set(mains)
        for key, files in self.found.items():
            st = owners.get(key)
            if st is None:
                continue
            for k, f in files:
                d = f.data
                if d is None or not self._local(d):
                    continue
                pid = _int(d.get("pid"))
                if pid is None or pid <= 1:
                    continue
                ct = _num(d.get("pid_create_time"))
                state, _actual = table.identify(pid, float(ct) if ct is not None else None)
                self._state[(key, k)] = state
                if state != _procs.ALIVE:
                    continue
                why: Optional[str] = None
                uid = table.uid(pid)
                if st.owner_uid is not None and uid != st.owner_uid:
                    why = "pid %d belongs to %s, not to the file's owner %s" % (pid, user_name(uid), user_name(st.owner_uid))
                elif pid == st.lookup_pid or pid in mains:
                    why = "pid %d is held by another run" % pid if pid != st.lookup_pid else "pid %d is rank 0's" % pid
                self._verdict[(key, k)] = why
                if why is None:
                    held.add(pid)
        return held

    def attach(self, run: RunSnapshot, table: Optional[_procs.ProcessTable], stop_at: AbstractSet[int],
               gpu_mem: Mapping[int, Optional[int]], gpu_indices: Any, tpu_mem: Mapping[int, int]) -> RunSnapshot:
        """``run`` with its ranks (rank 0: the run itself) and resources
        summed over them."""
        files = self.found.get(run.key)
        if not files:
            return run
        entries: List[Tuple[int, Any, Optional[List[ProcInfo]], Dict[str, Any]]] = []
        union: List[ProcInfo] = list(run.processes)
        world: Optional[int] = None
        for k, f in files:
            d = f.data or {}
            w = _int(d.get("world_size"))
            world = w if w is not None and (world is None or w > world) else world
            info: Dict[str, Any] = {}
            procs: Optional[List[ProcInfo]] = None
            local = bool(d) and self._local(d)
            pid = _int(d.get("pid"))
            state = self._state.get((run.key, k))
            why = self._verdict.get((run.key, k))
            alive: Optional[bool] = None
            if f.data is None:
                pass
            elif local and table is not None and state is not None and pid is not None:
                if state == _procs.ALIVE and why is None:
                    alive = True
                    procs = table.tree(pid, gpu_mem, gpu_indices, tpu_mem, stop_at, run.owner_uid, [])
                    union.extend(procs)
                elif state == _procs.ALIVE:
                    info["ownership_note"] = why
                elif state != _procs.UNKNOWN:
                    alive = False
            info["alive"] = alive
            info["local"] = local
            entries.append((k, f, procs, info))
        # (the union of the ranks' trees: named apart from rank 0's own tree)
        pss = _procs.tree_pss(table, union, ("ranks", run.key)) if table is not None and union else None
        clock_now = table.clock() if table is not None else None
        shares: List[RunResources] = []
        ranks: List[RankSnapshot] = []
        if run.processes:
            own = _procs.totals(list(run.processes), self.now, pss, clock_now)
            if run.resources.cpu_percent is not None and own.cpu_percent is None:
                own = replace(own, cpu_percent=run.resources.cpu_percent)  # its own first sample
        else:
            own = run.resources
        shares.append(own)
        ranks.append(RankSnapshot(
            rank=0, world_size=world, pid=run.pid, pid_create_time=run.pid_create_time, host=run.host,
            local=run.local, alive=run.alive, status=run.reported_status, error=_str(run.data.get("error")),
            control_seq=_int(run.data.get("control_seq")) or 0, control_error=_str(run.data.get("control_error")),
            signal_ack=_dict(run.data.get("signal_ack")), heartbeat_age=run.heartbeat_age,
            stale=run.stale, resources=own, processes=run.processes,
            ownership_note=run.ownership_note, file_error=run.file_error,
        ))
        for k, f, procs, info in entries:
            d = f.data or {}
            status = d.get("status") if isinstance(d.get("status"), str) else "?"
            if procs is not None:
                res = _procs.totals(procs, self.now, pss, clock_now)
                if res.cpu_percent is None:  # first look (no CPU % yet): its own recent sample, as for a run
                    own_res = reported_resources(d)
                    at = own_res.sampled_at
                    if own_res.cpu_percent is not None and at is not None and self.now - at <= self.limit:
                        res = replace(res, cpu_percent=own_res.cpu_percent)
            elif info["alive"] is None and "ownership_note" not in info and status == RUNNING:
                res = reported_resources(d)  # remote: its own sample
            else:
                res = RunResources()
            shares.append(res)
            age = (self.now - f.beat) if f.data is not None else None
            ranks.append(RankSnapshot(
                rank=k, world_size=_int(d.get("world_size")), pid=_int(d.get("pid")),
                pid_create_time=_num(d.get("pid_create_time")), host=_str(d.get("host")) or (self.me if info["local"] else None),
                local=info["local"], alive=info["alive"], status=str(status), error=_str(d.get("error")),
                control_seq=_int(d.get("control_seq")) or 0, control_error=_str(d.get("control_error")),
                signal_ack=_dict(d.get("signal_ack")), heartbeat_age=age,
                stale=status == RUNNING and info["alive"] is not False and age is not None and age > self.limit,
                resources=res,
                processes=tuple(procs or ()), ownership_note=info.get("ownership_note"),
            ))
        return replace(run, ranks=tuple(ranks), resources=_sum(shares, run.resources))


#: A rank file that ended, or was last written, this long before its run
#: started is an earlier run's of the same name, left behind (see
#: ttop.integrations._ranks): a live rank rewrites its file every interval.
EARLIER_RUN_SECONDS = 60.0


def _earlier(data: Mapping[str, Any], started: float) -> bool:
    ended = _num(data.get("ended_at"))
    if ended is None:  # a rank killed (SIGKILL, OOM, a preempted node) never wrote its end: its last beat
        ended = _num(data.get("updated_at"))
    return ended is not None and ended < started - EARLIER_RUN_SECONDS


def _str(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def _dict(v: Any) -> Optional[Mapping[str, Any]]:
    return v if isinstance(v, dict) else None


def _sum(shares: List[RunResources], base: RunResources) -> RunResources:
    """Field by field, a total None only where no share has the figure."""

    def add(name: str) -> Any:
        vals = [getattr(s, name) for s in shares if getattr(s, name) is not None]
        return sum(vals) if vals else None

    sources = {s.source for s in shares if s.source != "none"}
    measures = [s.ram_measure for s in shares if s.ram_measure is not None]
    sampled = [s.sampled_at for s in shares if s.sampled_at is not None]
    ram_at = [s.ram_sampled_at for s in shares if s.ram_sampled_at is not None]
    return RunResources(
        cpu_percent=add("cpu_percent"),
        rss_bytes=add("rss_bytes"),
        gpu_memory_bytes=add("gpu_memory_bytes"),
        tpu_memory_bytes=add("tpu_memory_bytes"),
        num_procs=add("num_procs"),
        num_threads=add("num_threads"),
        sampled_at=min(sampled) if sampled else base.sampled_at,
        source="local" if "local" in sources else (sources.pop() if sources else base.source),
        ram_measure=(measures[0] if len(set(measures)) == 1 else "pss+rss") if measures else None,
        ram_sampled_at=min(ram_at) if ram_at else None,
    )
