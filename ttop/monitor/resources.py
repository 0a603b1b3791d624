"""The writer's own sample of its process tree (the ``resources`` key).

Created and used only inside the monitor's background thread: psutil and
pynvml are imported here, never at ``import ttop`` time.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from ..pss import PssCache


def _last_pid() -> Optional[int]:
    """The PID most recently created on the system (``/proc/loadavg``, in
    this PID namespace), or None."""
    try:
        with open("/proc/loadavg", "rb") as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def _linux_descendants(root: int) -> Optional[Dict[int, int]]:
    """{pid: start time in clock ticks} of every descendant of ``root``, from
    one pass over ``/proc/*/stat`` (about twice as fast as psutil's
    ``children(recursive=True)``, which reads the same files); None if
    /proc cannot be read."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    kids: Dict[int, list] = {}
    starts: Dict[int, int] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            fd = os.open("/proc/%s/stat" % name, os.O_RDONLY)
            try:
                data = os.read(fd, 2048)
            finally:
                os.close(fd)
            fields = data[data.rfind(b")") + 2 :].split()
            pid, ppid = int(name), int(fields[1])
            starts[pid] = int(fields[19])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(pid)
    if not starts:
        return None
    out: Dict[int, int] = {}
    todo = list(kids.get(root, ()))
    while todo:
        pid = todo.pop()
        if pid in out or pid == root:
            continue
        out[pid] = starts[pid]
        todo.extend(kids.get(pid, ()))
    return out


def _children_ok() -> bool:
    """Whether this kernel lists children in ``/proc/<pid>/task/<tid>/children``
    (Linux 3.5+ with CONFIG_PROC_CHILDREN)."""
    try:
        return os.path.exists("/proc/self/task/%d/children" % threading.get_native_id())
    except (AttributeError, OSError):
        return False


def _tree_by_children(root: int) -> Optional[Dict[int, int]]:
    """{pid: start time in clock ticks} of every descendant of ``root``, from
    the ``children`` files of the tree's own threads: a few reads for the
    usual tree, however many processes the machine runs (the pass over all of
    ``/proc`` costs one read per process on the box). None if ``root`` cannot
    be read."""
    out: Dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except OSError:
            if pid == root:
                return None
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/children" % (pid, tid), "rb") as f:
                    kids = f.read().split()
            except OSError:  # the thread ended meanwhile
                continue
            for k in kids:
                try:
                    child = int(k)
                except ValueError:
                    continue
                if child in out or child == root:
                    continue
                try:
                    with open("/proc/%d/stat" % child, "rb") as f:
                        data = f.read(2048)
                    out[child] = int(data[data.rfind(b")") + 2 :].split()[19])
                except (OSError, ValueError, IndexError):  # ended meanwhile
                    continue
                todo.append(child)
    return out


def _boot_offset() -> Optional[float]:
    """The wall clock less the boot clock (the boot time, a fraction of a
    second off), or None where there is no boot clock."""
    try:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return None


class ResourceSampler:
    """Sum CPU %, memory, processes and threads over ``pid`` and its
    descendants; GPU memory of those processes through NVML when it is
    available. Memory counts shared pages once: PSS for a tree of several
    processes, on the budget of :mod:`ttop.pss` (``ram_measure`` says which).

    NVML is initialised once, on the first sample. If ``pynvml`` is missing or
    ``nvmlInit`` fails (no driver, no GPU) GPU sampling is disabled quietly;
    an NVML error after a successful init disables it with one line on
    stderr. ``note`` keeps the reason.
    """

    def __init__(self, pid: int, gpu: bool = True) -> None:
        import psutil  # lazy: only ever in the background thread

        self._psutil = psutil
        self.pid = pid
        self.root = psutil.Process(pid)
        self.create_time: Optional[float] = self.root.create_time()
        self._start_s: Optional[float] = None  # start in seconds after boot (Linux)
        self._boot_offset: Optional[float] = None  # realtime - boottime clock at the last boot time read
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                raw = f.read()
            self._start_s = int(raw[raw.rfind(b")") + 2 :].split()[19]) / float(os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError, AttributeError):
            pass
        self._procs: Dict[int, Any] = {pid: self.root}
        self._starts: Dict[int, Any] = {}
        self._fast = sys.platform.startswith("linux")
        self._by_children = self._fast and _children_ok()
        self._last_pid: Optional[int] = None
        self._gpu_wanted = gpu
        self._nvml: Any = None
        self._handles: list = []
        self.note: Optional[str] = None
        self._pss = PssCache()

    def refresh_create_time(self) -> Optional[float]:
        """The process's create time with the boot time as it reads now: the
        wall-clock boot time moves when the system clock is stepped, and
        readers add the one they see (psutil's ``create_time()`` keeps the
        first value). Linux only; elsewhere the first value is kept."""
        if self._start_s is None:
            return self.create_time
        # The boot time psutil reads (``btime`` of /proc/stat, a big file on
        # a machine with many CPUs) is the wall clock less the boot clock,
        # in whole seconds: read it again only when that difference moved
        # (a stepped clock) or sits close to a whole second.
        offset = _boot_offset()
        last = self._boot_offset
        if offset is not None and last is not None and abs(offset - last) < 0.005:
            return self.create_time
        try:
            self.create_time = self._start_s + self._psutil.boot_time()
        except Exception:
            return self.create_time
        near_whole = offset is None or abs(offset - round(offset)) < 0.01
        self._boot_offset = None if near_whole else offset
        return self.create_time

    # -- process tree -----------------------------------------------------

    def _tree(self) -> Iterable[Any]:
        """The root and its live descendants as cached psutil.Process objects
        (cached so ``cpu_percent`` has a baseline between samples)."""
        psutil = self._psutil
        found = None
        if self._fast:
            last = _last_pid()
            if last is not None and last == self._last_pid:
                # no process was created anywhere since the last scan: the
                # tree is the one we know, less the dead (skipped at sampling)
                return list(self._procs.values())
            found = _tree_by_children(self.pid) if self._by_children else _linux_descendants(self.pid)
            self._last_pid = last if found is not None else None
        if found is None:
            self._fast = False
            try:
                children = self.root.children(recursive=True)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                children = []
            found = {c.pid: c for c in children}
        seen = {self.pid: self.root}
        for pid, start in found.items():
            old = self._procs.get(pid)
            if old is not None and self._starts.get(pid) == start:
                seen[pid] = old
                continue
            try:
                proc = start if isinstance(start, psutil.Process) else psutil.Process(pid)
            except psutil.Error:
                continue
            seen[pid] = proc
            self._starts[pid] = start
        self._procs = seen
        for pid in list(self._starts):
            if pid not in seen:
                del self._starts[pid]
        return seen.values()

    def sample(self) -> Dict[str, Any]:
        psutil = self._psutil
        cpu = 0.0
        rss = 0
        threads = 0
        nprocs = 0
        pids: Set[int] = set()
        rows: List[Tuple[int, int]] = []
        for proc in self._tree():
            try:
                c = proc.cpu_percent(None)
                m = proc.memory_info().rss
                t = proc.num_threads()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue
            except psutil.AccessDenied:
                continue
            cpu += c
            rss += m
            threads += t
            nprocs += 1
            pids.add(proc.pid)
            rows.append((proc.pid, m))
        measure = "rss"
        if len(rows) > 1:
            pss = self._pss
            pss.begin()
            rss = 0
            have = 0
            for pid, m in rows:
                got = pss.get((pid, self._starts.get(pid)), pid)
                if got is not None:
                    rss += got[0]
                    have += 1
                else:
                    rss += m
            pss.end()
            measure = "pss" if have == len(rows) else ("pss+rss" if have else "rss")
        return {
            "cpu_percent": round(cpu, 1),
            "rss_bytes": rss,
            "ram_measure": measure,
            "gpu_memory_bytes": self._gpu_memory(pids),
            "num_procs": nprocs,
            "num_threads": threads,
            "sampled_at": time.time(),
        }

    # -- GPU (NVML) -------------------------------------------------------

    def _init_nvml(self) -> bool:
        self._gpu_wanted = False  # try once
        try:
            import pynvml  # lazy: 20 ms, and only useful on a GPU box

            pynvml.nvmlInit()
        except Exception as e:  # no module, no driver, no GPU
            self.note = "GPU memory not sampled: %s" % (str(e) or type(e).__name__)
            return False
        try:
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as e:
            self.note = "GPU memory not sampled: %s" % (str(e) or type(e).__name__)
            self._shutdown(pynvml)
            return False
        self._nvml = pynvml
        return True

    def _gpu_memory(self, pids: Set[int]) -> Optional[int]:
        if self._nvml is None and not (self._gpu_wanted and self._init_nvml()):
            return None
        if not self._handles:
            return None
        nvml = self._nvml
        total = 0
        try:
            for handle in self._handles:
                per_pid: Dict[int, int] = {}
                for getter in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
                    try:
                        procs = getter(handle)
                    except nvml.NVMLError_NotSupported:  # e.g. graphics list on compute-only boards
                        continue
                    for p in procs:
                        used = getattr(p, "usedGpuMemory", None)
                        if p.pid in pids and isinstance(used, int):
                            per_pid[p.pid] = max(per_pid.get(p.pid, 0), used)
                total += sum(per_pid.values())
        except Exception as e:
            self.note = "GPU memory sampling disabled after an NVML error: %s" % (str(e) or type(e).__name__)
            try:
                sys.stderr.write("ttop: %s\n" % self.note)
            except Exception:
                pass
            self.close()
            return None
        return total

    @staticmethod
    def _shutdown(nvml: Any) -> None:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass

    def close(self) -> None:
        if self._nvml is not None:
            self._shutdown(self._nvml)
        self._nvml = None
        self._handles = []
