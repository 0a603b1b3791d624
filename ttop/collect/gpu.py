"""NVIDIA GPUs through NVML (``pynvml``, package ``nvidia-ml-py``).

``pynvml`` is imported lazily, on the first :meth:`NvmlSource.sample` (in the
collector thread), so ``import ttop`` and start-up stay fast. If the import or
``nvmlInit`` fails, the snapshot's ``gpu_error`` carries one reason (e.g.
"NVML not available: NVML Shared Library Not Found") and initialisation is
retried at most once every :data:`RETRY_SECONDS`.

Per device and cycle: memory, utilisation, temperature, power; name and UUID
are read once, the enforced power limit is cached for :data:`SLOW_TTL`
seconds. Every call is wrapped: an ``NVMLError`` makes that one field None and
records ``errors[field] = reason``; a field that is *Not Supported* is never
asked again. Per-process GPU memory comes from
``nvmlDeviceGetComputeRunningProcesses`` + ``...GraphicsRunningProcesses``.
Per-process GPU utilisation comes from ``nvmlDeviceGetProcessUtilization``
(~1.9 ms a call on an H200): one call per device that has processes, at most
once per :data:`UTIL_TTL` seconds, asking for the samples since the newest one
seen. *Not Found* means no process used the device since then (the recording
shows it while idle): every listed process then counts 0 %. Any other error
makes the device's per-process utilisation unknown (None).

PID namespaces: NVML may report PIDs of another namespace (older drivers in
containers report host PIDs). :func:`check_pid_namespace` refuses to attribute
memory when a reported PID does not exist here, or exists but has no
``/dev/nvidiaN`` open; processes' open ``/dev/nvidiaN`` files still tell which
GPUs they use (``ProcInfo.gpu_indices``).
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from cachetools import TTLCache

from .snapshot import GpuDevice

#: Seconds between two attempts to initialise NVML after a failure.
RETRY_SECONDS = 60.0
#: Seconds slow-changing values (power limit) are cached.
SLOW_TTL = 30.0
#: Seconds a process's open /dev/nvidiaN files are cached.
FD_TTL = 5.0
#: Seconds per-process utilisation is cached per device (one NVML call each).
UTIL_TTL = 1.0

PIDNS_NOTE = "NVML PIDs do not match this PID namespace; per-process GPU memory unavailable"


@dataclass
class GpuSample:
    devices: List[GpuDevice] = field(default_factory=list)
    error: Optional[str] = None
    pid_memory: Dict[int, Optional[int]] = field(default_factory=dict)  # pid -> bytes (None: N/A)
    #: device index -> PIDs NVML lists on it (compute and graphics)
    device_pids: Dict[int, Tuple[int, ...]] = field(default_factory=dict)
    #: device index -> {pid: SM utilisation %} (absent pid: 0 %), None: unknown
    device_pid_util: Dict[int, Optional[Dict[int, int]]] = field(default_factory=dict)


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return text or type(e).__name__


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _text_of(fn: Callable[[Any], Any], handle: Any) -> str:
    return _text(fn(handle))


def nvidia_device_indices(pid: int, prefix: str = "/dev/nvidia") -> Optional[Tuple[int, ...]]:
    """GPU indices a process has open (``/proc/<pid>/fd`` links to
    ``<prefix>N``); None when its fds cannot be read (permission, gone)."""
    base = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(base)
    except OSError:
        return None
    found = set()
    n = len(prefix)
    for fd in fds:
        try:
            target = os.readlink(base + "/" + fd)
        except OSError:
            continue
        if target.startswith(prefix):
            rest = target[n:]
            if rest.isdigit():
                found.add(int(rest))
    return tuple(sorted(found))


def check_pid_namespace(
    pid_memory: Mapping[int, Any],
    rows: Mapping[int, Tuple[Any, ...]],
    device_indices: Optional[Callable[[int, float], Optional[Tuple[int, ...]]]] = None,
) -> Tuple[bool, Optional[str]]:
    """May NVML's PIDs be attributed to the processes we see?

    ``rows`` is the process table (pid -> (ppid, create_time, ...)). False
    with :data:`PIDNS_NOTE` when any reported PID is absent here, or present
    but (readably) without any ``/dev/nvidiaN`` open."""
    for pid in pid_memory:
        row = rows.get(pid)
        if row is None:
            return False, PIDNS_NOTE
        if device_indices is not None:
            idx = device_indices(pid, row[1] or 0.0)
            if idx is not None and not idx:
                return False, PIDNS_NOTE
    return True, None


class NvmlSource:
    """GPU devices and per-process GPU memory from NVML.

    ``module``: a ``pynvml``-like module (default: ``import pynvml`` on first
    use). ``device_prefix``: device file prefix used to tell which GPUs a
    process has open. ``clock``: monotonic clock for retries and caches.
    """

    def __init__(
        self,
        module: Any = None,
        *,
        device_prefix: str = "/dev/nvidia",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._module = module
        self.device_prefix = device_prefix
        self.clock = clock
        self.nvml: Any = None
        self.init_attempts = 0
        self._init_error: Optional[str] = None
        self._next_try = 0.0
        self._handles: List[Any] = []
        self._static: Dict[Tuple[int, str], Any] = {}
        self._unsupported: Dict[Tuple[int, str], str] = {}
        self._slow: TTLCache = TTLCache(maxsize=256, ttl=SLOW_TTL, timer=clock)
        self._fds: TTLCache = TTLCache(maxsize=8192, ttl=FD_TTL, timer=clock)
        self._util: TTLCache = TTLCache(maxsize=256, ttl=UTIL_TTL, timer=clock)
        self._util_seen: Dict[int, int] = {}  # device -> newest sample timestamp (us)

    # -- init -------------------------------------------------------------------

    def _ensure(self) -> Optional[str]:
        if self.nvml is not None:
            return None
        now = self.clock()
        if self.init_attempts and now < self._next_try:
            return self._init_error
        self.init_attempts += 1
        self._next_try = now + RETRY_SECONDS
        try:
            mod = self._module if self._module is not None else importlib.import_module("pynvml")
        except ImportError:
            self._init_error = "NVML not available: pynvml (nvidia-ml-py) is not installed"
            return self._init_error
        try:
            mod.nvmlInit()
        except Exception as e:
            self._init_error = "NVML not available: %s" % _reason(e)
            return self._init_error
        try:
            count = int(mod.nvmlDeviceGetCount())
            handles = [mod.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as e:
            self._init_error = "NVML cannot list devices: %s" % _reason(e)
            try:
                mod.nvmlShutdown()
            except Exception:
                pass
            return self._init_error
        self.nvml = mod
        self._handles = handles
        self._init_error = None
        return None

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass
            self.nvml = None

    # -- sampling -----------------------------------------------------------------

    def _call(self, index: int, name: str, errors: Dict[str, str], fn: Callable[[], Any]) -> Any:
        key = (index, name)
        reason = self._unsupported.get(key)
        if reason is not None:
            errors[name] = reason
            return None
        try:
            return fn()
        except Exception as e:
            reason = _reason(e)
            errors[name] = reason
            nvml = self.nvml
            ns = getattr(nvml, "NVMLError_NotSupported", None)
            if ns is not None and isinstance(e, ns):
                self._unsupported[key] = reason
            return None

    def _static_call(self, index: int, name: str, errors: Dict[str, str], fn: Callable[[], Any]) -> Any:
        key = (index, name)
        if key in self._static:
            return self._static[key]
        value = self._call(index, name, errors, fn)
        if value is not None:
            self._static[key] = value
        return value

    def _slow_call(self, index: int, name: str, errors: Dict[str, str], fn: Callable[[], Any]) -> Any:
        key = (index, name)
        try:
            value, reason = self._slow[key]
        except KeyError:
            e2: Dict[str, str] = {}
            value = self._call(index, name, e2, fn)
            reason = e2.get(name)
            self._slow[key] = (value, reason)
        if reason is not None:
            errors[name] = reason
        return value

    def sample(self) -> GpuSample:
        err = self._ensure()
        if err is not None:
            return GpuSample(error=err)
        nvml = self.nvml
        devices: List[GpuDevice] = []
        pid_memory: Dict[int, Optional[int]] = {}
        device_pids: Dict[int, Tuple[int, ...]] = {}
        device_util: Dict[int, Optional[Dict[int, int]]] = {}
        temp_sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        for i, h in enumerate(self._handles):
            errors: Dict[str, str] = {}
            name = self._static_call(i, "name", errors, partial(_text_of, nvml.nvmlDeviceGetName, h))
            uuid = self._static_call(i, "uuid", errors, partial(_text_of, nvml.nvmlDeviceGetUUID, h))
            mem = self._call(i, "memory", errors, partial(nvml.nvmlDeviceGetMemoryInfo, h))
            util = self._call(i, "utilization", errors, partial(nvml.nvmlDeviceGetUtilizationRates, h))
            temp = self._call(i, "temperature", errors, partial(nvml.nvmlDeviceGetTemperature, h, temp_sensor))
            power = self._call(i, "power", errors, partial(nvml.nvmlDeviceGetPowerUsage, h))
            limit = self._slow_call(i, "power_limit", errors, partial(nvml.nvmlDeviceGetEnforcedPowerLimit, h))
            self._call(i, "fan_speed", errors, partial(nvml.nvmlDeviceGetFanSpeed, h))
            here: Dict[int, Optional[int]] = {}
            for fname, label in (
                ("nvmlDeviceGetComputeRunningProcesses", "compute_processes"),
                ("nvmlDeviceGetGraphicsRunningProcesses", "graphics_processes"),
            ):
                fn = getattr(nvml, fname, None)
                if fn is None:
                    continue
                plist = self._call(i, label, errors, partial(fn, h))
                for p in plist or ():
                    pid = getattr(p, "pid", None)
                    if not isinstance(pid, int):
                        continue
                    used = getattr(p, "usedGpuMemory", None)
                    used = int(used) if isinstance(used, int) and used >= 0 else None
                    prev = here.get(pid)
                    here[pid] = used if prev is None else (prev if used is None else max(prev, used))
            if here:
                device_pids[i] = tuple(here)
                device_util[i] = self._process_util(i, h, errors)
            for pid, used in here.items():
                prev = pid_memory.get(pid)
                if prev is None:
                    pid_memory[pid] = used
                elif used is not None:
                    pid_memory[pid] = prev + used
            devices.append(
                GpuDevice(
                    index=i,
                    name=name,
                    uuid=uuid,
                    memory_used=_attr_int(mem, "used"),
                    memory_total=_attr_int(mem, "total"),
                    utilization=_attr_int(util, "gpu"),
                    memory_utilization=_attr_int(util, "memory"),
                    temperature=int(temp) if isinstance(temp, int) else None,
                    power_mw=int(power) if isinstance(power, int) else None,
                    power_limit_mw=int(limit) if isinstance(limit, int) else None,
                    errors=errors,
                )
            )
        return GpuSample(devices=devices, error=None, pid_memory=pid_memory, device_pids=device_pids,
                         device_pid_util=device_util)

    def _process_util(self, index: int, handle: Any, errors: Dict[str, str]) -> Optional[Dict[int, int]]:
        """{pid: SM %} on one device (cached :data:`UTIL_TTL` s), or None."""
        try:
            value, reason = self._util[index]
        except KeyError:
            value, reason = self._query_util(index, handle)
            self._util[index] = (value, reason)
        if reason is not None:
            errors["process_utilization"] = reason
        return value

    def _query_util(self, index: int, handle: Any) -> Tuple[Optional[Dict[int, int]], Optional[str]]:
        nvml = self.nvml
        fn = getattr(nvml, "nvmlDeviceGetProcessUtilization", None)
        if fn is None:
            return None, "not available"
        key = (index, "process_utilization")
        if key in self._unsupported:
            return None, self._unsupported[key]
        try:
            rows = fn(handle, self._util_seen.get(index, 0))
        except Exception as e:
            nf = getattr(nvml, "NVMLError_NotFound", None)
            if nf is not None and isinstance(e, nf):
                return {}, None  # no samples since the last one: nothing ran
            ns = getattr(nvml, "NVMLError_NotSupported", None)
            if ns is not None and isinstance(e, ns):
                self._unsupported[key] = _reason(e)
            return None, _reason(e)
        out: Dict[int, int] = {}
        newest: Dict[int, int] = {}
        seen = self._util_seen.get(index, 0)
        for r in rows or ():
            pid = getattr(r, "pid", None)
            sm = getattr(r, "smUtil", None)
            ts = getattr(r, "timeStamp", 0)
            if not isinstance(pid, int) or not isinstance(sm, int) or isinstance(sm, bool):
                continue
            ts = ts if isinstance(ts, int) else 0
            if pid not in newest or ts >= newest[pid]:
                newest[pid] = ts
                out[pid] = max(0, min(100, sm))
            seen = max(seen, ts)
        self._util_seen[index] = seen
        return out, None

    def device_indices(self, pid: int, create_time: float) -> Optional[Tuple[int, ...]]:
        """GPUs the process has open (cached for :data:`FD_TTL` s)."""
        key = (pid, create_time)
        try:
            return self._fds[key]
        except KeyError:
            pass
        value = nvidia_device_indices(pid, self.device_prefix)
        self._fds[key] = value
        return value


def _attr_int(obj: Any, name: str) -> Optional[int]:
    if obj is None:
        return None
    v = getattr(obj, name, None)
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None
