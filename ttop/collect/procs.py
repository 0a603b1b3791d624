"""Process trees: only the runs' own processes are read each cycle.

On Linux with ``/proc/<pid>/task/<tid>/children`` (the usual case) the table is *walked*:
:meth:`ProcessTable.refresh` reads one line (``/proc/loadavg``); a run's main process is identified
from its own ``/proc/<pid>/stat`` and its tree walked through the ``children`` files of each
process's threads, so the other processes of a busy machine cost nothing. The children found are
kept from cycle to cycle while none of the processes walked ended or changed parent and none of them
got a new child (the parent of each ID handed out since the last cycle is read,
:data:`NEW_PIDS_CHECKED`; :data:`WALK_REFRESH_SECONDS`), so a steady tree costs one ``stat`` read
per process. Where the kernel lacks that file (or with ``walk=False``) the table is *listed*, as
follows.

``children(recursive=True)`` scans every process on the machine on each call,
so calling it per run does not scale. Instead :meth:`ProcessTable.refresh`
makes one pass over the process table (on Linux one read of
``/proc/<pid>/stat`` per process; elsewhere ``process_iter(["ppid",
"create_time", "name", "status"])``), builds a ppid -> children map, and
:meth:`ProcessTable.tree` walks it from a run's main PID.

CPU % is measured between two cycles, so a process seen for the first time
reports None (not psutil's meaningless first 0.0). On Linux the table's own
read of ``/proc/<pid>/stat`` already holds CPU times, thread count and RSS:
CPU % is the change of user+system time, keyed by ``(pid, create_time)``, over
the wall time between two table reads, and no further call per process is
needed. Elsewhere ``psutil.Process`` objects are kept across cycles, keyed the
same way, and sampled under ``oneshot()`` (``cpu_percent()``,
``memory_info()``, ``num_threads()``, ``status()``). Thread CPU % is the change
of each thread's user+system time over the wall time since the previous cycle.

Errors are per process and per field: a process that vanished mid-cycle is
left out, a zombie is listed with status ``zombie`` and no figures, a field
the OS refuses to show is None and named in ``ProcInfo.error``.
"""
from __future__ import annotations

import os
import time
from typing import AbstractSet, Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import psutil

from ..pss import PssCache
from .procfs import (  # noqa: F401  (read_real_uid: re-exported)
    _HAVE_CHILDREN,
    _HAVE_PROC,
    _O_RDONLY,
    STAT_FDS_KEPT,
    KeptStatFiles,
    _linux_threads,
    _proc_rows_linux,
    _proc_rows_psutil,
    _Row,
    _stat_row,
    _WalkedRows,
    hidden_process,
    last_pid,
    parents_of_new,
    read_real_uid,
    row_of,
    status_uid,
    task_children,
)
from .snapshot import ProcInfo, ThreadInfo
from .totals import totals, tree_pss  # noqa: F401  (re-exported)

#: Two create times closer than this are the same process. psutil computes
#: create_time as boot time + start ticks / CLK_TCK: 10 ms ticks, identical
#: in every reader as long as the boot time reads the same. A reused PID's
#: process starts at least one tick later.
CREATE_TIME_TOLERANCE = 0.05

#: Every process's row is read again at least this often (PID reuse, a
#: process adopted by another parent); in between only new PIDs are read.
FULL_REFRESH_SECONDS = 10.0

#: A walked table keeps each process's children from cycle to cycle while
#: none of the processes created in this PID namespace since the last cycle
#: (the IDs up to the last PID handed out, from ``/proc/loadavg``) is the
#: child of one of them, and none of the processes walked ended or changed
#: parent (their own ``stat`` lines, read each cycle anyway, say so); the
#: children are read again at least this often all the same.
WALK_REFRESH_SECONDS = 30.0

#: When the last PID moved by at most this many, each new ID's parent is
#: read (one ``stat`` each) and only that parent's kept children are read
#: again; past it (many forks on the machine), every tree's children are.
NEW_PIDS_CHECKED = 128

#: A process whose stat line is the last cycle's (and whose figures come out
#: the same) keeps its ProcInfo: False makes each one afresh (tests compare).
REUSE_SAMPLES = True

#: Cap on the processes walked per run (a runaway fork tree cannot stall a cycle).
MAX_TREE = 4096

#: A process's real uid is read again after this many seconds (it only
#: changes when a privileged process drops or changes its ids; a signal
#: re-reads it right before sending anyway).
UID_RECHECK_SECONDS = 5.0

ALIVE = "alive"
GONE = "gone"
REUSED = "reused"
ZOMBIE = "zombie"
UNKNOWN = "unknown"


class _NoOneshot:
    """``oneshot()`` pays off only for several values of one /proc file:
    with the table's own stat read, only threads() and the cmdline are left."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_ONESHOT = _NoOneshot()


def _gpu_indices(gpu_indices: Optional[Callable[[int, float], Tuple[int, ...]]], pid: int, ctime: float
                 ) -> Tuple[int, ...]:
    """The GPUs process ``pid`` has open (``gpu_indices``: see :meth:`ProcessTable.tree`)."""
    if gpu_indices is None:
        return ()
    try:
        return gpu_indices(pid, ctime) or ()
    except Exception:
        return ()


def same_process(a: Optional[float], b: Optional[float]) -> bool:
    return a is not None and b is not None and abs(a - b) < CREATE_TIME_TOLERANCE


class ProcessTable:
    """The process table of this host, refreshed once per cycle. ``walk``:
    read only the runs' trees (None: where the kernel allows it)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, walk: Optional[bool] = None) -> None:
        self.clock = clock
        can = _HAVE_PROC and _HAVE_CHILDREN
        self.walk = can if walk is None else bool(walk) and can
        self._kids: Dict[int, List[int]] = {}  # walked: pid -> children (kept, see WALK_REFRESH_SECONDS)
        self._kids_at = 0.0  # when the kept children were first read
        self._last_pid: Optional[int] = None
        self._procfd: Optional[int] = None  # /proc, open from refresh() to end_cycle()
        self.rows: Dict[int, _Row] = {}
        self.children: Dict[int, List[int]] = {}
        self._objs: Dict[Tuple[int, float], psutil.Process] = {}
        self._cmdlines: Dict[Tuple[int, float], Tuple[str, str, Any]] = {}  # (cmdline, name, comm read with them)
        self._thread_prev: Dict[Tuple[int, int], Tuple[float, float]] = {}
        self._thread_seen: Dict[Tuple[int, int], Tuple[float, float]] = {}
        self._used: set = set()
        # (pid, create time) -> (cpu seconds, when, stat row, depth, ProcInfo made from them)
        self._cpu_prev: Dict[Tuple[int, float], Tuple[float, float, Any, Any, Any]] = {}
        self._cpu_seen: Dict[Tuple[int, float], Tuple[float, float, Any, Any, Any]] = {}
        self._uids: Dict[Tuple[int, float], Tuple[Optional[int], float]] = {}  # -> (uid, read at)
        self._uids_used: set = set()
        #: PSS of processes of multi-process trees (see :mod:`ttop.pss`)
        self.pss = PssCache(clock)
        #: sample each process's threads (``ProcInfo.threads``); False: left
        #: empty, for readers that never show them (one read per thread saved)
        self.threads = True
        self.refreshed = False
        self.refreshed_at = 0.0
        self._fresh: set = set()  # PIDs whose row was read this cycle
        self._full_at: Optional[float] = None  # last read of every process
        self._boot: Optional[float] = None
        self._same = False  # the table's processes and parents are those of the last cycle
        self.stat_files = KeptStatFiles(STAT_FDS_KEPT)  # of the processes read each cycle
        self.status_files = KeptStatFiles(STAT_FDS_KEPT, "status")  # for their uid

    # -- the table ---------------------------------------------------------

    def refresh(self) -> None:
        """A new table. On Linux only processes not seen before are read
        (every process once per :data:`FULL_REFRESH_SECONDS`): the rest keep
        their row until a run's lookup asks for one (:meth:`row`), so a busy
        machine's unrelated processes cost a directory entry each, not a
        read."""
        if self._procfd is None:
            try:
                self._procfd = os.open("/proc", _O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                pass
        if self.walk:
            self._fresh = set()  # every row is read again when asked for
            now = self.clock()
            last = last_pid()  # before any children are read: a fork after it shows next cycle
            if last is None or self._last_pid is None or now - self._kids_at >= WALK_REFRESH_SECONDS:
                self._kids = {}
                self._kids_at = now
            elif last != self._last_pid:
                self._new_pids(self._last_pid, last)
            self._last_pid = last
            self._full_at = 0.0
            if self._boot is None:
                self._boot = psutil.boot_time()
            self.pss.begin()
            self.refreshed = True
            self.refreshed_at = now
            return
        rows = None
        same, self._same = self._same, True
        if _HAVE_PROC:
            now = time.monotonic()
            if self._full_at is None or now - self._full_at >= FULL_REFRESH_SECONDS:
                rows = _proc_rows_linux()
                same = False
                if rows is not None:
                    self._full_at = now
                    self._fresh = set(rows)
            else:
                rows = self._update_rows()
        if rows is None:
            rows = _proc_rows_psutil()
            self._fresh = set(rows)
            self._full_at = None
            same = False
        if same and rows is self.rows and self._same:
            self.pss.begin()
            self.refreshed = True
            self.refreshed_at = self.clock()
            return
        children: Dict[int, List[int]] = {}
        for pid, row in rows.items():
            ppid = row[0]
            if ppid >= 0 and ppid != pid:
                children.setdefault(ppid, []).append(pid)
        for kids in children.values():
            kids.sort()
        self.pss.begin()
        self.rows = rows
        self.children = children
        self._same = True  # the tree is this table's
        self.refreshed = True
        self.refreshed_at = self.clock()

    def _new_pids(self, old: int, new: int) -> None:
        """IDs ``(old, new]`` were handed out since the last cycle: the kept
        children of their parents are read again, and those of a process
        now under such an ID (a PID reused) are not kept (all kept children
        when the IDs cannot be told, see :data:`NEW_PIDS_CHECKED`)."""
        parents = None
        if self._procfd is not None and self._kids:
            parents = parents_of_new(self._procfd, old, new, NEW_PIDS_CHECKED)
        if parents is None:
            self._kids = {}
            self._kids_at = self.clock()
            return
        kids = self._kids
        for pid, ppid in parents:
            kids.pop(ppid, None)
            kids.pop(pid, None)

    def _update_rows(self) -> Optional[Dict[int, _Row]]:
        """Rows of the processes alive now: the old ones kept (stale until
        :meth:`row` reads them again), new PIDs read."""
        try:
            proc = os.open("/proc", _O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return None
        try:
            pids = {int(n) for n in os.listdir(proc) if n.isdigit()}
            boot = psutil.boot_time()
            self._boot = boot
            old = self.rows
            new = pids.difference(old)
            gone = old.keys() - pids
            fresh = set()
            if not new and not gone:
                rows = old  # the same processes: the same table (and tree)
            else:
                self._same = False
                rows = dict(old)
                for pid in gone:
                    del rows[pid]
                for pid in new:  # new since the last cycle: its parent matters
                    row = _stat_row(proc, str(pid), boot)
                    if row is not None:
                        rows[pid] = row
                        fresh.add(pid)
        except OSError:
            return None
        finally:
            os.close(proc)
        self._fresh = fresh
        return rows

    def row(self, pid: int) -> Optional[_Row]:
        """``pid``'s row, read again this cycle if it was not (None: gone)."""
        if pid in self._fresh or self._full_at is None:
            return self.rows.get(pid)
        self._fresh.add(pid)
        if pid not in self.rows and not self.walk:
            return None
        proc = self._procfd
        if proc is None:  # outside a cycle
            try:
                proc = os.open("/proc", _O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                return self.rows.get(pid)
        try:
            raw = self.stat_files.read(proc, pid)
            row = row_of(raw, self._boot or psutil.boot_time()) if raw is not None else None
        finally:
            if proc != self._procfd:
                os.close(proc)
        old = self.rows.pop(pid, None)
        if row is None or (old is not None and row[0] != old[0]):
            # gone, or adopted by another parent: a new tree next cycle; a
            # walked process's children moved to another parent (children
            # read from here on are as new as the last PID read this cycle)
            self._same = False
            if pid in self._kids:
                self._kids = {}
            if row is None:
                return None
        self.rows[pid] = row
        return row

    def identify(self, pid: int, create_time: Optional[float]) -> Tuple[str, Optional[float]]:
        """Is ``pid`` still the process that started at ``create_time``?

        Returns ``(state, actual_create_time)`` with state one of ALIVE, GONE
        (no such PID), ZOMBIE (exited, not yet reaped), REUSED (the PID now
        belongs to a process with another create time) or UNKNOWN (the create
        time could not be read, the file gave none, or /proc hides it).
        """
        row = self.row(pid)
        if row is None:  # (another user's process under hidepid: there, but which one is unknown)
            return (UNKNOWN if hidden_process(pid) else GONE), None
        actual = row[1]
        if actual is None:
            try:
                actual = psutil.Process(pid).create_time()
            except psutil.NoSuchProcess:
                return GONE, None
            except Exception:
                return UNKNOWN, None
        if create_time is None:
            # which process it is cannot be told; an exited one is dead either way
            return (ZOMBIE if row[3] in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD) else UNKNOWN), actual
        if not same_process(actual, create_time):
            return REUSED, actual
        if row[3] == psutil.STATUS_ZOMBIE or row[3] == psutil.STATUS_DEAD:
            return ZOMBIE, actual
        return ALIVE, actual

    def uid(self, pid: int) -> Optional[int]:
        """Real uid of ``pid`` as of at most :data:`UID_RECHECK_SECONDS`
        ago (cached per process, i.e. per PID and create time)."""
        row = self.row(pid) if self.walk else self.rows.get(pid)  # walked: this process, not a stale row
        key = (pid, row[1] if row is not None and row[1] is not None else 0.0)
        self._uids_used.add(key)
        now = self.clock()
        got = self._uids.get(key)
        if got is not None and now - got[1] < UID_RECHECK_SECONDS and got[0] is not None:
            return got[0]
        uid = read_real_uid(pid) if self._procfd is None else status_uid(self.status_files.read(self._procfd, pid))
        self._uids[key] = (uid, now)
        return uid

    def tree_pids(self, pid: int, stop_at: AbstractSet[int] = frozenset(), owner_uid: Optional[int] = None,
                  foreign: Optional[List[Tuple[int, Optional[int]]]] = None) -> List[Tuple[int, int]]:
        """``[(pid, depth)]``: the main process, then its descendants
        depth-first (children by PID). Subtrees rooted at a PID in
        ``stop_at`` (another run's main process) are left out, so a process
        counts for one run only.

        With ``owner_uid``, a descendant whose real uid is another one is
        left out with its whole subtree (and listed in ``foreign`` as
        ``(pid, uid)``): a run only holds its owner's processes. PID 1
        (every orphan is re-parented to it) never brings its descendants."""
        out: List[Tuple[int, int]] = []
        seen = set(stop_at)
        seen.discard(pid)
        stack = [(pid, 0)]
        while stack and len(out) < MAX_TREE:
            p, d = stack.pop()
            if p in seen:
                continue
            seen.add(p)
            if d > 0 and owner_uid is not None:
                u = self.uid(p)
                if u != owner_uid:
                    if foreign is not None:
                        foreign.append((p, u))
                    continue
            out.append((p, d))
            if p == 1:
                continue
            kids = self._children_of(p)
            if kids:
                stack.extend((k, d + 1) for k in reversed(kids))
        return out

    def _children_of(self, pid: int) -> Optional[List[int]]:
        if not self.walk:
            return self.children.get(pid)
        kids = self._kids.get(pid)
        if kids is None:
            kids = self._kids[pid] = task_children(pid) or []
        return kids

    @property
    def by_pid(self) -> Mapping[int, _Row]:
        """pid -> row of any process of this PID namespace (walked: read on
        demand, only the PIDs asked for)."""
        return _WalkedRows(self) if self.walk else self.rows

    # -- sampling -------------------------------------------------------------

    def tree(
        self,
        pid: int,
        gpu_memory: Mapping[int, Optional[int]] = {},
        gpu_indices: Optional[Callable[[int, float], Tuple[int, ...]]] = None,
        tpu_memory: Mapping[int, int] = {},
        stop_at: AbstractSet[int] = frozenset(),
        owner_uid: Optional[int] = None,
        foreign: Optional[List[Tuple[int, Optional[int]]]] = None,
    ) -> List[ProcInfo]:
        """Sample every process of the tree rooted at ``pid`` (already
        identified as alive). ``gpu_memory``/``tpu_memory`` map PIDs to bytes
        (only PIDs known to be of this PID namespace); ``gpu_indices(pid,
        create_time)`` names the GPUs a process has open; ``stop_at``,
        ``owner_uid``, ``foreign``: see :meth:`tree_pids`."""
        now = self.clock()
        kept = self._kids
        rows = [(p, d, self.row(p)) for p, d in self.tree_pids(pid, stop_at, owner_uid, foreign)]
        if self._kids is not kept:  # a process ended or moved: its kept children were stale
            if foreign is not None:
                del foreign[:]
            rows = [(p, d, self.row(p)) for p, d in self.tree_pids(pid, stop_at, owner_uid, foreign)]
        out: List[ProcInfo] = []
        for p, depth, row in rows:
            if row is None:
                continue
            info = self._sample(p, depth, row, now, gpu_memory, gpu_indices, tpu_memory)
            if info is not None:
                out.append(info)
        return out

    def _process(self, pid: int, ctime: float) -> psutil.Process:
        key = (pid, ctime)
        proc = self._objs.get(key)
        if proc is None:
            proc = psutil.Process(pid)
            self._objs[key] = proc
        self._used.add(key)
        return proc

    def _sample(self, pid, depth, row, now, gpu_memory, gpu_indices, tpu_memory) -> Optional[ProcInfo]:
        ppid, ctime, name, status, cpu_s, nthreads, rss, _faults = row
        if ctime is None:
            ctime = 0.0
        key = (pid, ctime)
        if name is not None and self._cmdlines.get(key, (0, 0, name))[2] != name:
            del self._cmdlines[key]  # its comm changed (an exec keeps PID and create time): read them again
        cpu = None
        zombie = status == psutil.STATUS_ZOMBIE
        from_table = cpu_s is not None
        if from_table and not zombie:
            # CPU % from the table's own read of /proc/<pid>/stat, against the previous cycle
            t = self.refreshed_at
            prev = self._cpu_prev.get(key)
            if prev is not None and t > prev[1]:
                cpu = max(0.0, 100.0 * (cpu_s - prev[0]) / (t - prev[1]))
            cached = None if self.threads else self._cmdlines.get(key)
            if cached is not None:
                # no threads to read, its command line known: nothing to ask psutil
                self._used.add(key)  # as _process does
                if prev is not None and prev[2] == row and prev[3] == depth and REUSE_SAMPLES:
                    # the same stat line as the last cycle's sample (an idle process):
                    # its ProcInfo, when each figure it holds came out the same again
                    info = prev[4]
                    if (info.cpu_percent == cpu and gpu_indices is None and info.gpu_memory_bytes == gpu_memory.get(pid)
                            and info.tpu_memory_bytes == tpu_memory.get(pid)):
                        self._cpu_seen[key] = (cpu_s, t, row, depth, info)
                        return info
                # positional, in the order of ProcInfo's fields (a call by keyword costs ~6k instructions more)
                info = ProcInfo(pid, ppid, cached[1], ctime, depth, status, cached[0] or "", cpu, rss, nthreads,
                                gpu_memory.get(pid), _gpu_indices(gpu_indices, pid, ctime), tpu_memory.get(pid))
                self._cpu_seen[key] = (cpu_s, t, row, depth, info)
                return info
            self._cpu_seen[key] = (cpu_s, t, None, None, None)
        fresh = key not in self._objs
        errors: List[str] = []
        threads: Tuple[ThreadInfo, ...] = ()
        try:
            proc = self._process(pid, ctime)
        except psutil.NoSuchProcess:
            return None
        except Exception as e:  # pragma: no cover - Process() only raises NoSuchProcess
            return ProcInfo(pid=pid, ppid=ppid, name=name, create_time=ctime, depth=depth, status=status,
                            error=type(e).__name__)
        cached = self._cmdlines.get(key)
        cmdline, comm = None, name
        if cached is not None:
            cmdline, name, _comm = cached
        try:
            with (_NO_ONESHOT if from_table else proc.oneshot()):
                if not zombie and not from_table:
                    try:
                        cpu = proc.cpu_percent(None)
                        if fresh:
                            cpu = None  # psutil's first call has nothing to compare with
                    except psutil.AccessDenied:
                        errors.append("cpu")
                    try:
                        rss = int(proc.memory_info().rss)
                    except psutil.AccessDenied:
                        errors.append("rss")
                    try:
                        nthreads = int(proc.num_threads())
                    except psutil.AccessDenied:
                        errors.append("threads")
                    try:
                        status = proc.status()
                    except psutil.AccessDenied:
                        pass
                if not zombie and self.threads:
                    try:
                        raw = _linux_threads(pid) if from_table else None
                        if raw is None:
                            raw = [(t.id, t.user_time, t.system_time, "") for t in proc.threads()]
                        threads = self._threads(pid, raw, now)
                    except psutil.AccessDenied:
                        if "threads" not in errors:
                            errors.append("threads")
                if cached is None:
                    try:
                        cmdline = " ".join(proc.cmdline())
                    except (psutil.AccessDenied, psutil.ZombieProcess):
                        cmdline = ""
                    try:
                        name = proc.name()  # /proc's comm is cut at 15 characters
                    except (psutil.AccessDenied, psutil.ZombieProcess):
                        pass
                    if cmdline:  # none yet (mid-exec: comm is set before the arguments): read again next time
                        self._cmdlines[key] = (cmdline, name, comm)
        except psutil.ZombieProcess:
            zombie = True
        except psutil.NoSuchProcess:
            return None
        if zombie:
            status = psutil.STATUS_ZOMBIE
            cpu = rss = nthreads = None
            threads = ()
        info = ProcInfo(pid, ppid, name, ctime, depth, status, cmdline or "", cpu, rss, nthreads, gpu_memory.get(pid),
                        _gpu_indices(gpu_indices, pid, ctime), tpu_memory.get(pid), threads,
                        ("access denied: " + ", ".join(errors)) if errors else None)
        if from_table and not zombie and not threads:
            self._cpu_seen[key] = (cpu_s, self.refreshed_at, row, depth, info)
        return info

    def _threads(self, pid: int, raw: Iterable, now: float) -> Tuple[ThreadInfo, ...]:
        out = []
        prev_map = self._thread_prev
        seen = self._thread_seen
        for tid, user, system, tname in raw:
            total = user + system
            k = (pid, tid)
            prev = prev_map.get(k)
            pct = None
            if prev is not None and now > prev[1]:
                pct = max(0.0, 100.0 * (total - prev[0]) / (now - prev[1]))
            seen[k] = (total, now)
            out.append(ThreadInfo(tid=tid, user_time=user, system_time=system, cpu_percent=pct, name=tname))
        return tuple(out)

    def end_cycle(self) -> None:
        """Forget processes and threads not sampled this cycle."""
        if len(self._objs) != len(self._used):
            for key in [k for k in self._objs if k not in self._used]:
                del self._objs[key]
                self._cmdlines.pop(key, None)
        self._used = set()
        self._thread_prev = self._thread_seen
        self._thread_seen = {}
        self._cpu_prev = self._cpu_seen
        self._cpu_seen = {}
        self.pss.end()
        if self._procfd is not None:
            try:
                os.close(self._procfd)
            except OSError:
                pass
            self._procfd = None
        if self.walk and len(self.rows) != len(self._fresh):  # keep the rows of the processes looked at
            self.rows = {p: r for p, r in self.rows.items() if p in self._fresh}
        self.stat_files.retain(self._fresh)
        self.status_files.retain(self._fresh)
        if len(self._uids) != len(self._uids_used):
            self._uids = {k: v for k, v in self._uids.items() if k in self._uids_used}
        self._uids_used = set()

