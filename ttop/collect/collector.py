"""The collector: one cycle = folder scan + process trees + GPU + TPU + host,
published as one immutable :class:`~ttop.collect.snapshot.Snapshot`.

Readers (curses UI, CSV, ``--once``) only ever read :attr:`Collector.latest`,
a plain attribute swapped after each cycle: they never wait on the collector
and it never waits on them.

Status inference (what ttop tells that the file cannot):

* a **local** run (its ``host`` is this host's name, or absent) whose file
  says RUNNING but whose process is gone, has exited (zombie), or whose PID
  now belongs to a process with another create time is shown as ``KILLED``
  with ``status_inferred=True`` and a ``status_reason``;
* a **remote** run (another ``host``) is never looked up here: ``alive`` is
  None, its resources are the file's own ``resources`` (``source="reported"``);
* a RUNNING run whose heartbeat (``updated_at``) has not changed for
  ``max(3 x heartbeat_interval, 3 x interval, 10 s)``, timed on ttop's own
  clock (not by comparing ``updated_at`` with it, which a writer's clock skew
  would fool), is marked ``stale``;
* a file that turns bad keeps its run on screen with the last good data,
  ``stale=True`` and ``file_error`` set (it is *not* also listed in
  ``Snapshot.skipped``; ``skipped`` only holds files that never parsed).
"""
from __future__ import annotations

import bisect
import os
import time
from _thread import allocate_lock

from ..record import replace
from .host import HostSampler, hostname, resolve_budgets
from .owners import claims, user_name  # noqa: F401  (user_name: re-exported)
from .readfile import gc_paused as _gc_paused
from .runs import (  # noqa: F401  (MIN_STALE_SECONDS, STALE_INTERVALS, reported_resources: re-exported)
    MIN_STALE_SECONDS,
    STALE_INTERVALS,
    ClockWatch,
    _first,
    _load_procs,
    _Static,
    heartbeat_limit,
    reported_resources,
    run_snapshot,
    static_of,
)
from .scan import SWEEP_SECONDS, FileResult, FolderScanner
from .snapshot import Budgets, FolderInfo, GpuDevice, RunResources, RunSnapshot, SkippedFile, Snapshot, TpuChip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AbstractSet, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

    from .procs import ProcessTable
    from .ranks import RankReader
    from .recent import RecentSamples

#: Seconds of reading new files per cycle of the thread (a big folder is
#: published in parts, newest files first).
READ_BUDGET = 0.2
#: ... after the first cycle, while files are left to read.
LOAD_BUDGET = 1.0

#: With ``single=True`` the host's CPU % is measured over at least this long
#: (from the collector's creation: the scan's time counts).
SINGLE_HOST_SECONDS = 0.1

TPU_PIDNS_NOTE = "libtpuinfo PIDs do not match this PID namespace; per-process TPU memory unavailable"
#: The notice of a :meth:`Collector.first_look` snapshot.
FIRST_LOOK_NOTE = "looking up processes and devices..."
#: The GPU line of a first-look snapshot's header.
FIRST_LOOK_DEVICES = "looking up..."
#: A local run's resources before its processes were looked up.
PENDING_RESOURCES = RunResources(source="pending")
#: The default GPU / TPU source, made with the first full cycle.
_DEFAULT = object()


class Collector:
    """Collects snapshots of a progress folder; see the package docstring.

    ``budgets``: :class:`Budgets` or None (the machine's totals). ``gpu`` /
    ``tpu``: source objects with ``sample()`` (defaults: NVML through
    ``pynvml``, libtpuinfo through ctypes); pass ``False`` to disable one.
    ``clock``: wall clock (heartbeat ages, ``taken_at``); ``elapsed``: the
    clock that tells when it was set (see :class:`~ttop.collect.runs.ClockWatch`;
    default: the boot-time clock, or ``clock`` itself where that is given). ``health``: the
    thresholds of the health rules (:class:`~ttop.collect.health.HealthConfig`;
    default: the documented defaults; ``False``: no samples, no verdicts).
    ``prices``: :class:`~ttop.collect.cost.Prices` to price each run's time
    (``RunSnapshot.cost``); None: no cost. ``skip``: see
    :class:`~ttop.collect.scan.FolderScanner` (one folder only).
    Each run's recent samples are kept in :attr:`recent`
    (:class:`~ttop.collect.recent.RecentSamples`).
    """

    def __init__(
        self,
        folder: Union[str, Sequence[str]],
        interval: float = 2.0,
        budgets: Optional[Budgets] = None,
        *,
        gpu: Any = None,
        tpu: Any = None,
        clock: Callable[[], float] = time.time,
        elapsed: Optional[Callable[[], float]] = None,
        health: Any = None,
        notify: Optional[bool] = None,
        archive: bool = True,
        sweep_seconds: float = SWEEP_SECONDS,
        single: bool = False,
        prices: Any = None,
        skip: Optional[Callable[[int, Any], Any]] = None,
    ) -> None:
        folders = [folder] if isinstance(folder, (str, os.PathLike)) else list(folder)
        #: the watched folders, absolute (several: see ttop.collect.folders)
        self.folders = tuple(os.path.abspath(str(f)) for f in folders)
        self.folder = self.folders[0]
        self.interval = float(interval)
        self.budgets = budgets
        self.clock = clock
        self._clock_watch = ClockWatch(elapsed or (None if clock is time.time else clock))
        # the default sources (NVML through pynvml, libtpuinfo) are made by
        # the first full cycle, not before the first screen
        self.gpu: Any = _DEFAULT if gpu is None else (gpu or None)
        self.tpu: Any = _DEFAULT if tpu is None else (tpu or None)
        self.single = single
        if single:  # one snapshot: nothing to watch or keep
            notify, archive = False, False
        self._scanner: Any
        if len(self.folders) > 1:
            from .folders import MultiScanner

            self._scanner = MultiScanner(self.folders, notify=notify, compact=archive, sweep_seconds=sweep_seconds)
        else:
            self._scanner = FolderScanner(self.folder, notify=notify, compact=archive, sweep_seconds=sweep_seconds,
                                          skip=skip)
        #: ended runs whose process is known gone: their snapshots are kept
        #: as they are (nothing about them changes), keyed by file name
        self._archive: Dict[str, RunSnapshot] = {}
        self._arch_names: List[str] = []  # sorted
        self._arch_runs: List[RunSnapshot] = []  # in the order of _arch_names
        self._arch_dirty = False  # sort it again
        self._arch_added: List[str] = []  # newly archived
        self._arch_removed: List[str] = []  # taken out of the archive
        #: ended files whose local process may still exist: looked up each cycle
        self._ended_live: Dict[str, FileResult] = {}
        self._pending = 0
        self._table: Optional[ProcessTable] = None  # made with the first full cycle
        self._ranks: Optional[RankReader] = None  # the ranks of multi-rank jobs: the same
        self._threads: Any = True  # see sample_threads
        self._host = HostSampler(SINGLE_HOST_SECONDS if single else 0.0)
        self._statics: Dict[str, _Static] = {}
        interval_ = self.interval
        #: each run's recent samples and health verdict (made with the first
        #: full cycle: the health rules are not loaded before the first screen)
        self.recent: Optional[RecentSamples] = None
        self._recent_args: Any = None if health is False else (
            health, lambda d: heartbeat_limit(d, interval_), prices)
        self._gpu_last: Any = None
        self._seq = 0
        self._cycle_lock = allocate_lock()  # threading.Lock
        self._listeners: List[Callable[[], None]] = []
        #: (wake, stopping): threading.Events, made when first needed
        #: (threading is imported after the first screen)
        self._events: Any = None
        self._thread: Any = None  # threading.Thread
        #: newest published Snapshot, or None before the first cycle
        self.latest: Optional[Snapshot] = None
        #: last unexpected exception of a background cycle (kept, not raised)
        self.last_error: Optional[BaseException] = None

    # -- public API ----------------------------------------------------------

    def collect(self) -> Snapshot:
        """Run one cycle now, publish its snapshot as :attr:`latest`, call
        the listeners, and return it. Safe to call repeatedly (and while the
        thread runs: cycles are serialised)."""
        # a big folder is read in parts, published once (kept compressed
        # part by part: the parsed whole would need GBs); single: at once
        budget = None if self.single else LOAD_BUDGET
        with self._cycle_lock, _gc_paused():
            snap = self._cycle(budget)
            while self._pending:
                self._seq -= 1
                snap = self._cycle(budget)
            self.latest = snap
        self._notify()
        return snap

    def first_look(self) -> Snapshot:
        """A snapshot from the progress files alone, for the first screen:
        no process, GPU, TPU or CPU sampling (nothing that needs psutil or
        NVML). Local runs' resources are :data:`PENDING_RESOURCES`, their
        ``alive`` None, health not judged yet, with :data:`FIRST_LOOK_NOTE`
        among the notices and :data:`FIRST_LOOK_DEVICES` as the GPU error
        (the header keeps a line for the devices). Published as :attr:`latest` (listeners are not
        called); the next cycle is a full one. A big folder is read in part
        (newest files first), as by the thread's first cycle."""
        with self._cycle_lock:
            snap = self._cycle(READ_BUDGET, quick=True)
            self.latest = snap
        return snap

    def _collect_some(self) -> Snapshot:
        # the thread's cycle: a big folder is read in parts, newest files first
        with self._cycle_lock, _gc_paused():
            # the first part small (the first screen), then bigger ones
            snap = self._cycle(READ_BUDGET if self.latest is None else LOAD_BUDGET)
            self.latest = snap
        self._notify()
        return snap

    def start(self) -> None:
        """Start the background thread (a daemon). No-op if running."""
        if self._thread is not None and self._thread.is_alive():
            self._stopping.clear()  # a stop() that timed out is taken back
            return
        self._stopping.clear()
        import threading

        self._thread = threading.Thread(target=self._loop, name="ttop-collector", daemon=True)
        self._thread.start()

    def add_listener(self, fn: Callable[[], None]) -> None:
        """``fn()`` is called after each publish, from the thread that ran the
        cycle; its exceptions are swallowed."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        try:
            self._listeners.remove(fn)
        except ValueError:
            pass

    def refresh_now(self) -> None:
        """Wake the thread for a cycle now (never blocks)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread and join it; returns True if it ended in time."""
        self._stopping.set()
        self._wake.set()
        t = self._thread
        if t is None:
            self._scanner.close()
            return True
        import threading

        if t is not threading.current_thread():
            t.join(timeout)
        done = not t.is_alive()
        if done:
            self._thread = None
            self._scanner.close()
        return done

    @property
    def _wake(self) -> Any:
        return (self._events or self._make_events())[0]

    @property
    def _stopping(self) -> Any:
        return (self._events or self._make_events())[1]

    def _make_events(self) -> Any:
        import threading

        self._events = (threading.Event(), threading.Event())
        return self._events

    @property
    def sample_threads(self) -> Any:
        """Which runs' processes get their threads sampled
        (``ProcInfo.threads``): True (default) or False for every run, or a
        function of the run key (the monitor: the runs shown expanded).
        Headless mode turns it off, as nothing it writes shows them."""
        return self._threads

    @sample_threads.setter
    def sample_threads(self, on: Any) -> None:
        self._threads = on if callable(on) else bool(on)

    def settled(self) -> List[Tuple[str, Any, RunSnapshot]]:
        """The runs that ended for good (ended, their process gone): (file
        name, the file's (inode, size, mtime in ns) as read, snapshot)."""
        seen = getattr(self._scanner, "_cache", {})  # FolderScanner's: name -> _Cached(signature, ...)
        return [(name, seen[name].sig if name in seen else None, run) for name, run in self._archive.items()]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            t0 = time.monotonic()
            try:
                self._collect_some()
            except Exception as e:  # a bug must not kill the thread
                self.last_error = e
            if self._stopping.is_set():
                break
            # files still to read: go on at once
            wait = 0.0 if self._pending else max(0.0, self.interval - (time.monotonic() - t0))
            self._wake.wait(wait)
            self._wake.clear()

    def _notify(self) -> None:
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:
                pass

    # -- one cycle ---------------------------------------------------------------

    def _cycle(self, budget: Optional[float] = None, quick: bool = False) -> Snapshot:
        t0 = time.perf_counter()
        now = self.clock()
        step = self._clock_watch.step(now)
        if step:  # the wall clock was set: the times ttop took on it move with it
            for st_ in self._statics.values():
                st_.beat += step
            for part in (self._ranks, self.recent):
                if part is not None:
                    part.shift(step)
        me = hostname()
        notices: List[str] = []
        if quick:
            table: Any = None
        else:
            if self._table is None:  # what full cycles need (the first look does not wait for it)
                from . import fastjson
                from .ranks import RankReader

                fastjson.enable()

                self._table = _load_procs().ProcessTable()
                if self._recent_args is not None:
                    from .recent import RecentSamples

                    health_, limit, prices_ = self._recent_args
                    self.recent = RecentSamples(self.interval, health_, heartbeat_limit=limit, prices=prices_)
                self._ranks = RankReader(self.folder, self.interval)
                self._open_sources()
            table = self._table
        scan = self._scanner.scan(budget)
        self._pending = scan.pending
        ended_live = self._ended_live
        if scan.folder_error and self._archive:
            self._archive.clear()
            self._arch_dirty = True
        for name in scan.gone:
            if self._archive.pop(name, None) is not None:
                self._arch_removed.append(name)
            ended_live.pop(name, None)
        for fr in scan.ended:  # new or changed ended files: settled below once their process is gone
            if self._archive.pop(fr.name, None) is not None:
                self._arch_removed.append(fr.name)
            ended_live[fr.name] = fr
        if scan.folder_error:
            ended_live.clear()

        # what each file says (cached per file version); which name a local process
        statics = [(fr, static_of(self._statics, fr, me, now, self.interval)) for fr in scan.files]
        statics.extend((fr, static_of(self._statics, fr, me, now, self.interval)) for fr in ended_live.values())
        if len(self._statics) > len(statics):
            keep = {fr.name for fr, st in statics if st is not None}
            self._statics = {k: v for k, v in self._statics.items() if k in keep}
        need_table = not quick and any(st is not None and st.lookup_pid is not None for fr, st in statics)
        ranks = None if self._ranks is None else self._ranks.cycle(statics, me, now, scan.hidden)
        need_table = need_table or (ranks is not None and ranks.needs_table())
        table_ok = False
        if need_table:
            try:
                table.refresh()
                table_ok = True
            except Exception as e:  # e.g. /proc not mounted
                notices.append("process table unavailable: %s" % e)

        gpus: List[GpuDevice] = []
        tpus: List[TpuChip] = []
        gpu_error = tpu_error = None
        gpu_pids: Dict[int, Optional[int]] = {}
        tpu_pids: Dict[int, int] = {}
        if quick:
            notices.append(FIRST_LOOK_NOTE)
            gpu_error = FIRST_LOOK_DEVICES  # the header keeps a line for the devices
        else:
            gpus, gpu_error, gpu_pids = self._sample_gpu()
            tpus, tpu_error, tpu_pids = self._sample_tpu()

        gpu_mem: Mapping[int, Optional[int]] = {}
        gpu_note: Optional[str] = None
        gpu_indices = None
        if gpus:
            from .gpu import PIDNS_NOTE, check_pid_namespace

            if gpu_pids:
                if table_ok or self._refresh_table_for_gpu():
                    table_ok = True
                    ok, why = check_pid_namespace(gpu_pids, table.by_pid, getattr(self.gpu, "device_indices", None))
                else:
                    ok, why = False, "process table unavailable"
                if ok:
                    gpu_mem = gpu_pids
                else:
                    gpu_note = why or PIDNS_NOTE
                    notices.append(gpu_note)
            gpu_indices = self._gpu_indices_fn()

        if tpu_pids:
            if table_ok or self._refresh_table_for_gpu():
                table_ok = True
                missing = [pid for pid in tpu_pids if pid not in table.by_pid]
            else:
                missing = list(tpu_pids)
            if missing:
                tpu_pids = {}
                notices.append(TPU_PIDNS_NOTE)

        active: List[Tuple[str, RunSnapshot]] = []
        skipped: List[SkippedFile] = []
        tbl = table if table_ok else None
        # main processes of live local runs: a run nested in another run's
        # tree (e.g. launched by a sweep script that is a run itself) is
        # counted for itself only
        mains: AbstractSet[int] = frozenset()
        refused: Dict[str, str] = {}
        if tbl is not None:
            mains, refused = claims(statics, tbl)
            if ranks is not None:  # a rank's tree is its own row's
                mains = ranks.claim(statics, tbl, mains)
        settled: List[Tuple[str, RunSnapshot]] = []
        found = ranks.found if ranks is not None else None  # runs with ranks: the others need no attach
        for fr, st in statics:
            if st is None:
                skipped.append(SkippedFile(fr.name, fr.error or "unusable"))
                continue
            run = run_snapshot(st, now, tbl, gpu_mem, gpu_indices, tpu_pids, gpu_note, mains, refused.get(st.key),
                               self._threads)
            if found and found.get(st.key) and ranks is not None:
                run = ranks.attach(run, tbl, mains, gpu_mem, gpu_indices, tpu_pids)
            if quick and st.lookup_pid is not None:
                run = replace(run, resources=PENDING_RESOURCES)
            if fr.name in ended_live and st.file_error is None and (st.simple or run.alive is False):
                settled.append((fr.name, run))  # ended, and its process is gone: for good
            else:
                active.append((fr.name, run))
        if table_ok:
            table.end_cycle()
        for name, run in settled:
            del ended_live[name]
            self._statics.pop(name, None)
            self._archive[name] = run
            self._arch_added.append(name)
        skipped.sort(key=lambda s: s.name)
        runs = self._merge(active)
        folders = self._folder_infos(scan.folder_error, notices)
        if scan.pending:
            notices.append("reading the folder: %d of %d files read" % (scan.total - scan.pending, scan.total))

        host = self._host.first_look() if quick else self._host.sample()
        budgets = resolve_budgets(self.budgets, host, gpus)
        if self.recent is not None and not quick:
            # archived runs are left out: their verdict was set when they
            # were archived and cannot change (their rings are let go)
            fresh = [run for _, run in active]
            fresh.extend(run for _, run in settled)
            self.recent.update(fresh, now, budgets, self.budgets.gpu_bytes if self.budgets is not None else None,
                               gpus, self._gpu_last if gpu_note is None else None,
                               {st.key: st for _fr, st in statics if st is not None})  # (facts: once per version)
        self._seq += 1
        return Snapshot(
            seq=self._seq,
            taken_at=now,
            folder=self.folder,
            runs=tuple(runs),
            skipped=tuple(skipped),
            host=host,
            gpus=tuple(gpus),
            gpu_error=gpu_error,
            tpus=tuple(tpus),
            tpu_error=tpu_error,
            budgets=budgets,
            folder_error=scan.folder_error,
            folders=folders,
            notices=tuple(notices),
            cycle_seconds=time.perf_counter() - t0,
        )

    def _folder_infos(self, folder_error: Optional[str], notices: List[str]) -> Tuple[FolderInfo, ...]:
        scanner = self._scanner
        if not hasattr(scanner, "tags"):
            return (FolderInfo(self.folder, "", folder_error),)
        errors = dict(scanner.errors)
        if errors and not folder_error:  # the others go on
            notices.extend("%s (the other folders are watched)" % errors[f] for f in scanner.folders if f in errors)
        return tuple(FolderInfo(f, t, errors.get(f)) for f, t in zip(scanner.folders, scanner.tags))

    def _merge(self, active: List[Tuple[str, RunSnapshot]]) -> List[RunSnapshot]:
        """The archive's runs with this cycle's others, in file-name order
        (the archive's sorted list is rebuilt only when it changed)."""
        added, self._arch_added = self._arch_added, []
        removed, self._arch_removed = self._arch_removed, []
        if self._arch_dirty or len(added) + len(removed) > 64:
            self._arch_names = sorted(self._archive)
            self._arch_runs = [self._archive[n] for n in self._arch_names]
            self._arch_dirty = False
        else:  # a few runs ended or went: put them in their place
            for name in removed:
                i = bisect.bisect_left(self._arch_names, name)
                if i < len(self._arch_names) and self._arch_names[i] == name:
                    del self._arch_names[i]
                    del self._arch_runs[i]
            for name in added:
                i = bisect.bisect_left(self._arch_names, name)
                self._arch_names.insert(i, name)
                self._arch_runs.insert(i, self._archive[name])
        if not self._arch_runs:
            active.sort(key=_first)
            return [run for _, run in active]
        runs = list(self._arch_runs)
        names = self._arch_names
        active.sort(key=_first, reverse=True)
        for name, run in active:  # from the end: earlier positions stay valid
            runs.insert(bisect.bisect_left(names, name), run)
        return runs

    def _open_sources(self) -> None:
        # (a hung driver call must not stop the cycle: see bounded)
        if self.gpu is _DEFAULT:
            from .bounded import BoundedSource
            from .gpu import GpuSample, NvmlSource

            self.gpu = BoundedSource(NvmlSource(), lambda why: GpuSample(error=why), "NVML")
        if self.tpu is _DEFAULT:
            from .bounded import BoundedSource
            from .tpu import TpuInfoSource, TpuSample

            self.tpu = BoundedSource(TpuInfoSource(), lambda why: TpuSample(error=why), "libtpuinfo")

    def _refresh_table_for_gpu(self) -> bool:  # also used for TPU PIDs
        try:
            assert self._table is not None
            self._table.refresh()
            return True
        except Exception:
            return False

    def _gpu_indices_fn(self):
        fn = getattr(self.gpu, "device_indices", None)
        return fn if callable(fn) else None

    def _sample_gpu(self) -> Tuple[List[GpuDevice], Optional[str], Dict[int, Optional[int]]]:
        if self.gpu is None:
            return [], None, {}
        self._gpu_last = None
        try:
            s = self.gpu.sample()
            self._gpu_last = s if hasattr(s, "device_pids") else None
            return list(s.devices), s.error, dict(s.pid_memory)
        except Exception as e:  # a source must never break a cycle
            return [], "GPU source failed: %s" % e, {}

    def _sample_tpu(self) -> Tuple[List[TpuChip], Optional[str], Dict[int, int]]:
        if self.tpu is None:
            return [], None, {}
        try:
            s = self.tpu.sample()
            return list(s.chips), s.error, dict(s.pid_memory)
        except Exception as e:
            return [], "TPU source failed: %s" % e, {}
