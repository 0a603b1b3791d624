"""A fake ``pynvml`` that replays what NVML really returned on an H200.

Put this folder first on the module path to use it instead of the real
``pynvml``: in-process, insert it into ``sys.path`` and drop
``sys.modules["pynvml"]`` (see the ``fake_nvml`` fixture in
``tests/test_collect_gpu.py``); in a subprocess (e.g. ``python -m ttop`` in a
pseudo-terminal), set ``PYTHONPATH=tests/fakes`` (absolute path) in its env.

Environment (read on every call, so a test may change it between cycles):

``TTOP_FAKE_NVML_FIXTURE``
    the recording to replay (default: ``tests/fixtures/nvml-h200.json``).
``TTOP_FAKE_NVML_PHASE``
    ``idle`` (default), ``busy`` (one CUDA process, PID 489, holding
    3869245440 bytes) or ``after`` (it exited); ``held`` replays the
    ``busy`` process lists with everything else from ``idle`` (utilisation
    0 %, per-process utilisation NotFound): a process that keeps its GPU
    memory but stopped computing.
``TTOP_FAKE_NVML_PID_MAP``
    ``"489:<pid>[,<recorded>:<pid>...]"``: report a recorded PID as another
    PID, e.g. a process the test spawned, so its GPU memory is attributed.
``TTOP_FAKE_NVML_PROCS``
    ``pidns``: in the ``busy`` phase report the process list recorded inside
    a child PID namespace (``nvml-h200-pidns.json``: PID 2, 1453326336 bytes)
    instead of the host one.
``TTOP_FAKE_NVML_INIT_ERROR``
    an error name such as ``LibraryNotFound`` or ``DriverNotLoaded``:
    ``nvmlInit`` raises it (as a machine without a driver does).
``TTOP_FAKE_NVML_HANG_FILE``
    a path: while a file is there, every call after ``nvmlInit`` waits (as
    NVML calls hang on a driver in a bad state, a GPU fallen off the bus);
    removing it lets them return.

Errors are raised as ``NVMLError`` subclasses with the ``value`` codes and
messages of the real ``pynvml`` (``NVMLError_NotSupported`` = 3, "Not
Supported"; ``NVMLError_NotFound`` = 6, ...). ``init_calls`` counts
``nvmlInit`` calls and ``calls`` counts every call by name.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FIXTURE = os.path.join(os.path.dirname(_HERE), "fixtures", "nvml-h200.json")
PIDNS_FIXTURE = os.path.join(os.path.dirname(_HERE), "fixtures", "nvml-h200-pidns.json")

NVML_TEMPERATURE_GPU = 0
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}

init_calls = 0
calls: Dict[str, int] = {}
_initialized = False


class NVMLError(Exception):
    _classes: Dict[int, type] = {}

    def __new__(cls, value):
        if cls is NVMLError:
            cls = NVMLError._classes.get(value, NVMLError)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return _MESSAGES.get(self.value, "Unknown Error")

    def __eq__(self, other):
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _subclass(name: str, code: int) -> type:
    """``NVMLError_<name>``: raised bare (``raise NVMLError_NotFound()``) or
    built by ``NVMLError(code)``, like the real module's classes."""

    def __new__(cls, value=code):
        obj = Exception.__new__(cls)
        obj.value = code
        return obj

    def __init__(self, value=code):
        self.value = code

    cls = type("NVMLError_" + name, (NVMLError,), {"__new__": __new__, "__init__": __init__})
    NVMLError._classes[code] = cls
    return cls


NVMLError_Uninitialized = _subclass("Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _subclass("InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _subclass("NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _subclass("NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _subclass("NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _subclass("DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _subclass("LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_GpuIsLost = _subclass("GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_Unknown = _subclass("Unknown", NVML_ERROR_UNKNOWN)


class _Struct:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join("%s=%r" % kv for kv in self.__dict__.items()))


class c_nvmlProcessInfo_t(_Struct):
    pass


class _Handle:
    def __init__(self, index: int) -> None:
        self.index = index


_cache: Dict[str, Any] = {}


def _fixture() -> Dict[str, Any]:
    path = os.environ.get("TTOP_FAKE_NVML_FIXTURE") or DEFAULT_FIXTURE
    data = _cache.get(path)
    if data is None:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        _cache[path] = data
    return data


def _pid_map() -> Dict[int, int]:
    out = {}
    for part in (os.environ.get("TTOP_FAKE_NVML_PID_MAP") or "").split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            out[int(a)] = int(b)
    return out


def _recorded(fn: str, index: Any = None) -> Any:
    calls[fn] = calls.get(fn, 0) + 1
    hang = os.environ.get("TTOP_FAKE_NVML_HANG_FILE")
    while hang and os.path.exists(hang):
        time.sleep(0.05)
    if not _initialized:
        raise NVMLError_Uninitialized()
    rec = _fixture()["calls"]
    if index is None:
        key = fn
    else:
        phase = os.environ.get("TTOP_FAKE_NVML_PHASE") or "idle"
        if phase == "held":
            phase = "busy" if fn.endswith("RunningProcesses") else "idle"
        key = "%s:%s[%d]" % (phase, fn, index)
    if key not in rec:
        raise NVMLError_NotSupported()
    value = rec[key][0]
    if isinstance(value, dict) and "error" in value and "msg" in value:
        cls = globals().get(value["error"], NVMLError_Unknown)
        raise cls()
    return value


def _index(handle: Any) -> int:
    if not isinstance(handle, _Handle):
        raise NVMLError_InvalidArgument()
    return handle.index


# -- the API ---------------------------------------------------------------


def nvmlInit() -> None:
    global init_calls, _initialized
    init_calls += 1
    calls["nvmlInit"] = calls.get("nvmlInit", 0) + 1
    err = os.environ.get("TTOP_FAKE_NVML_INIT_ERROR")
    if err:
        cls = globals().get("NVMLError_" + err, NVMLError_Unknown)
        raise cls()
    _initialized = True


def nvmlShutdown() -> None:
    global _initialized
    if not _initialized:
        raise NVMLError_Uninitialized()
    _initialized = False


def nvmlSystemGetDriverVersion() -> str:
    return _recorded("nvmlSystemGetDriverVersion")


def nvmlDeviceGetCount() -> int:
    return int(_recorded("nvmlDeviceGetCount"))


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    calls["nvmlDeviceGetHandleByIndex"] = calls.get("nvmlDeviceGetHandleByIndex", 0) + 1
    if not _initialized:
        raise NVMLError_Uninitialized()
    if not 0 <= index < nvmlDeviceGetCount():
        raise NVMLError_InvalidArgument()
    return _Handle(index)


def nvmlDeviceGetName(handle) -> str:
    return _recorded("nvmlDeviceGetName", _index(handle))


def nvmlDeviceGetUUID(handle) -> str:
    return _recorded("nvmlDeviceGetUUID", _index(handle))


def nvmlDeviceGetMemoryInfo(handle) -> _Struct:
    return _Struct(**_recorded("nvmlDeviceGetMemoryInfo", _index(handle)))


def nvmlDeviceGetUtilizationRates(handle) -> _Struct:
    return _Struct(**_recorded("nvmlDeviceGetUtilizationRates", _index(handle)))


def nvmlDeviceGetTemperature(handle, sensor) -> int:
    if sensor != NVML_TEMPERATURE_GPU:
        raise NVMLError_InvalidArgument()
    return _recorded("nvmlDeviceGetTemperature", _index(handle))


def nvmlDeviceGetPowerUsage(handle) -> int:
    return _recorded("nvmlDeviceGetPowerUsage", _index(handle))


def nvmlDeviceGetEnforcedPowerLimit(handle) -> int:
    return _recorded("nvmlDeviceGetEnforcedPowerLimit", _index(handle))


def nvmlDeviceGetFanSpeed(handle) -> int:
    return _recorded("nvmlDeviceGetFanSpeed", _index(handle))


def nvmlDeviceGetPerformanceState(handle) -> int:
    return _recorded("nvmlDeviceGetPerformanceState", _index(handle))


def _procs(fn: str, handle) -> list:
    raw = _recorded(fn, _index(handle))
    phase = os.environ.get("TTOP_FAKE_NVML_PHASE") or "idle"
    if phase == "held":
        phase = "busy"
    if (
        os.environ.get("TTOP_FAKE_NVML_PROCS") == "pidns"
        and phase == "busy"
        and fn == "nvmlDeviceGetComputeRunningProcesses"
    ):
        with open(PIDNS_FIXTURE, encoding="utf-8") as f:
            ns = json.load(f)
        raw = [
            {"pid": p, "usedGpuMemory": m, "gpuInstanceId": 4294967295, "computeInstanceId": 4294967295}
            for p, m in zip(ns["nvml_pids"], ns["nvml_mem"])
        ]
    mapping = _pid_map()
    out = []
    for p in raw:
        d = dict(p)
        d["pid"] = mapping.get(d["pid"], d["pid"])
        out.append(c_nvmlProcessInfo_t(**d))
    return out


def nvmlDeviceGetComputeRunningProcesses(handle) -> list:
    return _procs("nvmlDeviceGetComputeRunningProcesses", handle)


def nvmlDeviceGetGraphicsRunningProcesses(handle) -> list:
    return _procs("nvmlDeviceGetGraphicsRunningProcesses", handle)


def nvmlDeviceGetMPSComputeRunningProcesses(handle) -> list:
    return _procs("nvmlDeviceGetMPSComputeRunningProcesses", handle)


def nvmlDeviceGetProcessUtilization(handle, last_seen_timestamp=0) -> list:
    rows = _recorded("nvmlDeviceGetProcessUtilization", _index(handle))
    mapping = _pid_map()
    out = []
    for r in rows:
        d = dict(r)
        d["pid"] = mapping.get(d["pid"], d["pid"])
        out.append(_Struct(**d))
    return out
