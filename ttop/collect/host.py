"""This machine: hostname, CPUs, memory, load, and the default budgets.

``psutil`` is imported on first use, not with this module: the first screen
(:meth:`HostSampler.first_look`) is drawn without it.
"""
from __future__ import annotations

import os
import time

from .snapshot import Budgets, GpuDevice, HostInfo, RunResources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Optional, Sequence, Tuple


def hostname() -> str:
    # what socket.gethostname() says on POSIX (gethostname() is uname's
    # nodename there), without importing socket before the first screen
    try:
        return os.uname().nodename or "localhost"
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        import socket

        return socket.gethostname()


def cpu_count() -> int:
    import psutil

    return psutil.cpu_count(logical=True) or os.cpu_count() or 1


def _meminfo() -> Tuple[Optional[int], Optional[int]]:
    """(total, used) bytes from /proc/meminfo as psutil reckons them (used =
    total - available); (None, None) where it cannot be read."""
    total = avail = None
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    total = int(line.split()[1]) * 1024
                elif line.startswith(b"MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                if total is not None and avail is not None:
                    return total, total - avail
    except (OSError, ValueError, IndexError):
        pass
    return None, None


def _load() -> Optional[Tuple[float, float, float]]:
    try:
        one, five, fifteen = os.getloadavg()
        return float(one), float(five), float(fifteen)
    except (OSError, AttributeError):
        return None


class HostSampler:
    """Samples :class:`HostInfo` without blocking (``cpu_percent(None)``: the
    first call primes the counter and reports None)."""

    def __init__(self, first_after: float = 0.0) -> None:
        self._primed = False
        self._cpus: Optional[int] = None
        self._first_after = first_after
        if first_after > 0:  # primed now: the first sample measures since then
            import psutil

            try:
                psutil.cpu_percent(interval=None)
                self._primed = True
            except Exception:
                pass
            self._primed_at = time.monotonic()

    def _wait_first(self) -> None:
        # CPU % over a few ticks at least (a tick is 10 ms): measured, not noise
        if self._first_after > 0:
            time.sleep(max(0.0, self._primed_at + self._first_after - time.monotonic()))
            self._first_after = 0.0

    def first_look(self) -> HostInfo:
        """What is known without psutil and without waiting: name, CPUs,
        memory (from /proc/meminfo, where there is one), load; no CPU %."""
        total, used = _meminfo()
        return HostInfo(hostname=hostname(), cpu_count=os.cpu_count() or 1, cpu_percent=None,
                        mem_total=total, mem_used=used, load_avg=_load())

    def sample(self) -> HostInfo:
        import psutil

        name = hostname()
        cpu: Optional[float]
        if self._cpus is None:
            self._cpus = cpu_count()
        self._wait_first()
        try:
            cpu = psutil.cpu_percent(interval=None)
        except Exception:
            cpu = None
        if not self._primed:
            self._primed = True
            cpu = None
        # the two lines of /proc/meminfo needed, not psutil's reading of all of them
        total, used = _meminfo()
        if total is None:
            try:
                vm = psutil.virtual_memory()
                total, used = int(vm.total), int(vm.total - vm.available)
            except Exception:
                total = used = None
        return HostInfo(
            hostname=name,
            cpu_count=self._cpus,
            cpu_percent=cpu,
            mem_total=total,
            mem_used=used,
            load_avg=_load(),
        )


def resolve_budgets(given: Optional[Budgets], host: HostInfo, gpus: Sequence[GpuDevice]) -> Budgets:
    """Fill the budget defaults: the machine's CPUs and RAM, and for GPU memory
    the sum of the devices' totals (None without GPUs)."""
    gpu_total = None
    totals = [g.memory_total for g in gpus if g.memory_total]
    if totals:
        gpu_total = int(sum(totals))
    if given is None:
        return Budgets(cpus=float(host.cpu_count), ram_bytes=int(host.mem_total or 0), gpu_bytes=gpu_total)
    if given.gpu_bytes is None and gpu_total is not None:
        return Budgets(cpus=given.cpus, ram_bytes=given.ram_bytes, gpu_bytes=gpu_total)
    return given


def budgets_from_args(
    max_cpus: Optional[float] = None,
    max_ram_gb: Optional[float] = None,
    max_gpu_gb: Optional[float] = None,
) -> Optional[Budgets]:
    """Build :class:`Budgets` from the CLI's ``--max-cpus/--max-ram/--max-gpu``.

    A "GB" here is :data:`GB` = 2**30 bytes (memory is shown in GiB). Unset
    values default to the machine's totals (GPU: the devices' total, filled in
    by the collector); returns None when nothing was given."""
    if max_cpus is None and max_ram_gb is None and max_gpu_gb is None:
        return None
    cpus = float(max_cpus) if max_cpus is not None else float(cpu_count())
    if max_ram_gb is not None:
        ram = int(float(max_ram_gb) * GB)
    else:
        import psutil

        ram = int(psutil.virtual_memory().total)
    gpu = int(float(max_gpu_gb) * GB) if max_gpu_gb is not None else None
    return Budgets(cpus=cpus, ram_bytes=ram, gpu_bytes=gpu)


#: One "GB" of a budget flag, in bytes.
GB = 1 << 30


def usage_percent(res: RunResources, budgets: Optional[Budgets]) -> Dict[str, Optional[float]]:
    """A run's usage as % of the budgets: ``{"cpu", "ram", "gpu"}``, each None
    when the value or the budget is unknown. CPU: ``cpu_percent`` (% of one
    core) over ``cpus`` cores, so 4 busy cores of an 8-core budget = 50."""
    out: Dict[str, Optional[float]] = {"cpu": None, "ram": None, "gpu": None}
    if budgets is None:
        return out
    if res.cpu_percent is not None and budgets.cpus:
        out["cpu"] = res.cpu_percent / float(budgets.cpus)
    if res.rss_bytes is not None and budgets.ram_bytes:
        out["ram"] = 100.0 * res.rss_bytes / float(budgets.ram_bytes)
    if res.gpu_memory_bytes is not None and budgets.gpu_bytes:
        out["gpu"] = 100.0 * res.gpu_memory_bytes / float(budgets.gpu_bytes)
    return out
