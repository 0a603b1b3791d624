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
* a RUNNING run whose heartbeat (``updated_at``) is older than
  ``max(3 x heartbeat_interval, 3 x interval, 10 s)`` is marked ``stale``;
* a file that turns bad keeps its run on screen with the last good data,
  ``stale=True`` and ``file_error`` set (it is *not* also listed in
  ``Snapshot.skipped``; ``skipped`` only holds files that never parsed).
"""
from __future__ import annotations

import math
import os
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..progress import RUNNING, KILLED
from . import procs as _procs
from .host import HostSampler, hostname, resolve_budgets
from .scan import FileResult, FolderScanner
from .snapshot import (
    Budgets,
    GpuDevice,
    RunResources,
    RunSnapshot,
    SkippedFile,
    Snapshot,
    TpuChip,
)

#: Floor of the heartbeat limit, seconds.
MIN_STALE_SECONDS = 10.0
#: The heartbeat limit is this many heartbeat (or collector) intervals.
STALE_INTERVALS = 3.0


def heartbeat_limit(data: Mapping[str, Any], interval: float) -> float:
    hb = data.get("heartbeat_interval")
    hb = float(hb) if isinstance(hb, (int, float)) and not isinstance(hb, bool) and hb > 0 else 0.0
    return max(STALE_INTERVALS * hb, STALE_INTERVALS * interval, MIN_STALE_SECONDS)


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _int(value: Any) -> Optional[int]:
    v = _num(value)
    return int(v) if v is not None and v >= 0 else None


def reported_resources(data: Mapping[str, Any]) -> RunResources:
    """The file's own ``resources`` sample, wrong-typed values ignored."""
    res = data.get("resources")
    if not isinstance(res, dict):
        return RunResources()
    cpu = _num(res.get("cpu_percent"))
    return RunResources(
        cpu_percent=float(cpu) if cpu is not None and cpu >= 0 else None,
        rss_bytes=_int(res.get("rss_bytes")),
        gpu_memory_bytes=_int(res.get("gpu_memory_bytes")),
        tpu_memory_bytes=_int(res.get("tpu_memory_bytes")),
        num_procs=_int(res.get("num_procs")),
        num_threads=_int(res.get("num_threads")),
        sampled_at=_num(res.get("sampled_at")),
        source="reported",
    )


def _fmt_age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 172800:
        return "%d h" % (seconds // 3600)
    return "%d days" % (seconds // 86400)


class Collector:
    """Collects snapshots of a progress folder; see the package docstring.

    ``budgets``: :class:`Budgets` or None (the machine's totals). ``gpu`` /
    ``tpu``: source objects with ``sample()`` (defaults: NVML through
    ``pynvml``, libtpuinfo through ctypes); pass ``False`` to disable one.
    ``clock``: wall clock (heartbeat ages, ``taken_at``).
    """

    def __init__(
        self,
        folder: str,
        interval: float = 2.0,
        budgets: Optional[Budgets] = None,
        *,
        gpu: Any = None,
        tpu: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = os.path.abspath(str(folder))
        self.interval = float(interval)
        self.budgets = budgets
        self.clock = clock
        if gpu is None:
            from .gpu import NvmlSource

            gpu = NvmlSource()
        if tpu is None:
            from .tpu import TpuInfoSource

            tpu = TpuInfoSource()
        self.gpu = gpu or None
        self.tpu = tpu or None
        self._scanner = FolderScanner(self.folder, clock=clock)
        self._table = _procs.ProcessTable()
        self._host = HostSampler()
        self._seq = 0
        self._cycle_lock = threading.Lock()
        self._listeners: List[Callable[[], None]] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None
        #: newest published Snapshot, or None before the first cycle
        self.latest: Optional[Snapshot] = None
        #: last unexpected exception of a background cycle (kept, not raised)
        self.last_error: Optional[BaseException] = None

    # -- public API ----------------------------------------------------------

    def collect(self) -> Snapshot:
        """Run one cycle now, publish its snapshot as :attr:`latest`, call
        the listeners, and return it. Safe to call repeatedly (and while the
        thread runs: cycles are serialised)."""
        with self._cycle_lock:
            snap = self._cycle()
            self.latest = snap
        self._notify()
        return snap

    def start(self) -> None:
        """Start the background thread (a daemon). No-op if running."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
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
            return True
        if t is not threading.current_thread():
            t.join(timeout)
        done = not t.is_alive()
        if done:
            self._thread = None
        return done

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            t0 = time.monotonic()
            try:
                self.collect()
            except Exception as e:  # a bug must not kill the thread
                self.last_error = e
            if self._stopping.is_set():
                break
            wait = max(0.0, self.interval - (time.monotonic() - t0))
            self._wake.wait(wait)
            self._wake.clear()

    def _notify(self) -> None:
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:
                pass

    # -- one cycle ---------------------------------------------------------------

    def _cycle(self) -> Snapshot:
        t0 = time.perf_counter()
        now = self.clock()
        me = hostname()
        notices: List[str] = []
        scan = self._scanner.scan()
        table = self._table

        # which files name a local process to look up
        need_table = False
        for fr in scan.files:
            data = fr.data if fr.data is not None else fr.last_data
            if data is not None and isinstance(data.get("pid"), int) and self._is_local(data, me):
                need_table = True
                break
        table_ok = False
        if need_table:
            try:
                table.refresh()
                table_ok = True
            except Exception as e:  # e.g. /proc not mounted
                notices.append("process table unavailable: %s" % e)

        gpus, gpu_error, gpu_pids = self._sample_gpu()
        tpus, tpu_error, tpu_pids = self._sample_tpu()

        gpu_mem: Mapping[int, Optional[int]] = {}
        gpu_note: Optional[str] = None
        gpu_indices = None
        if gpus:
            from .gpu import check_pid_namespace

            if gpu_pids:
                if table_ok or self._refresh_table_for_gpu():
                    table_ok = True
                    ok, why = check_pid_namespace(gpu_pids, table.rows, getattr(self.gpu, "device_indices", None))
                else:
                    ok, why = False, "process table unavailable"
                if ok:
                    gpu_mem = gpu_pids
                else:
                    gpu_note = why
                    notices.append(why)
            gpu_indices = self._gpu_indices_fn()

        runs: List[RunSnapshot] = []
        skipped: List[SkippedFile] = []
        for fr in scan.files:
            r = self._run(fr, now, me, table if table_ok else None, gpu_mem, gpu_indices, tpu_pids, gpu_note)
            if r is None:
                skipped.append(SkippedFile(fr.name, fr.error or "unusable"))
            else:
                runs.append(r)
        if table_ok:
            table.end_cycle()

        host = self._host.sample()
        budgets = resolve_budgets(self.budgets, host, gpus)
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
            notices=tuple(notices),
            cycle_seconds=time.perf_counter() - t0,
        )

    @staticmethod
    def _is_local(data: Mapping[str, Any], me: str) -> bool:
        host = data.get("host")
        return host is None or host == me

    def _refresh_table_for_gpu(self) -> bool:
        try:
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
        try:
            s = self.gpu.sample()
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

    def _run(
        self,
        fr: FileResult,
        now: float,
        me: str,
        table: Optional[_procs.ProcessTable],
        gpu_mem: Mapping[int, Optional[int]],
        gpu_indices,
        tpu_mem: Mapping[int, int],
        gpu_note: Optional[str],
    ) -> Optional[RunSnapshot]:
        if fr.data is not None:
            data, dropped, mtime, file_error = fr.data, fr.dropped, fr.mtime, None
        elif fr.last_data is not None:
            data, dropped, mtime, file_error = fr.last_data, fr.last_dropped, fr.last_mtime, fr.error
        else:
            return None
        reported = data["status"]
        status = reported
        inferred = False
        status_reason = None
        stale = False
        stale_reason = None
        host = data.get("host")
        local = host is None or host == me
        pid = data.get("pid")
        pid_ctime = data.get("pid_create_time")
        updated = data["updated_at"]
        age = now - float(updated)
        alive: Optional[bool] = None
        processes: Tuple = ()
        resources = RunResources()
        note = None

        if local and isinstance(pid, int) and pid > 0 and table is not None:
            state, _actual = table.identify(pid, pid_ctime)
            if state == _procs.ALIVE:
                alive = True
                plist = table.tree(pid, gpu_mem, gpu_indices, tpu_mem)
                processes = tuple(plist)
                resources = _procs.totals(plist, now)
                note = gpu_note
            elif state == _procs.GONE:
                alive, status_reason = False, "process %d is gone" % pid
            elif state == _procs.ZOMBIE:
                alive, status_reason = False, "process %d has exited" % pid
            elif state == _procs.REUSED:
                alive, status_reason = False, "PID %d now belongs to another process" % pid
            if alive is False and reported == RUNNING:
                status, inferred = KILLED, True
            elif alive is False:
                status_reason = None
        if alive is None:
            # remote, or local but unverifiable: the run's own sample
            resources = reported_resources(data)
        if status == RUNNING and alive is not False:
            limit = heartbeat_limit(data, self.interval)
            if age > limit:
                stale, stale_reason = True, "no heartbeat for %s" % _fmt_age(age)
        if file_error is not None:
            stale = True
            stale_reason = "file unreadable (%s); showing its last good contents" % file_error
        return RunSnapshot(
            key=fr.key,
            path=fr.path,
            data=data,
            run_name=str(data.get("run_name") or fr.key),
            status=status,
            reported_status=reported,
            status_inferred=inferred,
            status_reason=status_reason,
            host=host if host is not None else (me if local else None),
            local=local,
            alive=alive,
            pid=pid if isinstance(pid, int) else None,
            pid_create_time=float(pid_ctime) if isinstance(pid_ctime, (int, float)) else None,
            stale=stale,
            stale_reason=stale_reason,
            file_error=file_error,
            dropped_keys=tuple(dropped),
            mtime=mtime,
            heartbeat_age=age,
            resources=resources,
            processes=processes,
            gpu_note=note,
        )
