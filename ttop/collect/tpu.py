"""Google TPUs through libtpuinfo (ctypes).

The C ABI ttop expects from libtpuinfo::

    int tpu_chip_count(void);
    int tpu_pids(long long *pids, int n);
    int tpu_metrics(int port, long long *device_ids, long long *memory_usage,
                    long long *total_memory, double *duty_cycle_pct, int n);

Each returns a count (>= 0) or a negative error code. ``tpu_pids`` fills, per
chip index, the PID of the process that holds that chip (0 or less: none), so
a process's TPU memory is the sum of ``memory_usage`` over the chips it holds.

The library is found through ``$TTOP_LIBTPUINFO`` (a path), else
``ctypes.util.find_library("tpuinfo")``; without it the snapshot's
``tpu_error`` is "libtpuinfo not found" (looked for again at most once every
:data:`RETRY_SECONDS`; ``find_library``, which runs ``ldconfig`` and, when
that finds nothing, ``gcc`` and ``ld``, at most every :data:`FIND_SECONDS`). A negative count becomes ``tpu_error`` for that cycle.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from .snapshot import TpuChip

ENV_LIBRARY = "TTOP_LIBTPUINFO"
RETRY_SECONDS = 60.0
#: ``find_library`` runs programs (~20 ms of CPU): its answer is kept this long.
FIND_SECONDS = 600.0
#: Never ask for more chips than this (a garbage count cannot allocate GBs).
MAX_CHIPS = 4096

NOT_FOUND = "libtpuinfo not found"


@dataclass
class TpuSample:
    chips: List[TpuChip] = field(default_factory=list)
    error: Optional[str] = None
    pid_memory: Dict[int, int] = field(default_factory=dict)  # pid -> bytes of HBM


def find_library() -> Optional[str]:
    path = os.environ.get(ENV_LIBRARY)
    if path:
        return path
    return ctypes.util.find_library("tpuinfo")



class TpuInfoSource:
    """TPU chips and per-process HBM from libtpuinfo.

    ``path``: the library (default: :func:`find_library`). ``port``: the
    ``tpu_metrics`` port argument (-1: the library's default).
    """

    def __init__(self, path: Optional[str] = None, *, port: int = -1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self.port = int(port)
        self.clock = clock
        self.lib: Any = None
        self.load_attempts = 0
        self._load_error: Optional[str] = None
        self._next_try = 0.0
        self._found: Optional[Tuple[float, Optional[str]]] = None  # (when, find_library's answer)

    def _ensure(self) -> Optional[str]:
        if self.lib is not None:
            return None
        now = self.clock()
        if self.load_attempts and now < self._next_try:
            return self._load_error
        self.load_attempts += 1
        self._next_try = now + RETRY_SECONDS
        path = self._path or os.environ.get(ENV_LIBRARY)
        if not path:  # find_library's search kept for FIND_SECONDS
            if self._found is None or not 0 <= now - self._found[0] < FIND_SECONDS:
                self._found = (now, ctypes.util.find_library("tpuinfo"))
            path = self._found[1]
        if not path:
            self._load_error = NOT_FOUND
            return self._load_error
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            self._load_error = "%s: cannot load %s (%s)" % (NOT_FOUND, path, e)
            return self._load_error
        try:
            LL = ctypes.POINTER(ctypes.c_longlong)
            lib.tpu_chip_count.restype = ctypes.c_int
            lib.tpu_chip_count.argtypes = []
            lib.tpu_pids.restype = ctypes.c_int
            lib.tpu_pids.argtypes = [LL, ctypes.c_int]
            lib.tpu_metrics.restype = ctypes.c_int
            lib.tpu_metrics.argtypes = [ctypes.c_int, LL, LL, LL, ctypes.POINTER(ctypes.c_double), ctypes.c_int]
        except AttributeError as e:
            self._load_error = "libtpuinfo at %s is incomplete: %s" % (path, e)
            return self._load_error
        self.lib = lib
        self._load_error = None
        return None

    def sample(self) -> TpuSample:
        err = self._ensure()
        if err is not None:
            return TpuSample(error=err)
        lib = self.lib
        n = int(lib.tpu_chip_count())
        if n < 0:
            return TpuSample(error="libtpuinfo error %d (tpu_chip_count)" % n)
        if n == 0:
            return TpuSample()
        n = min(n, MAX_CHIPS)
        ids = (ctypes.c_longlong * n)()
        used = (ctypes.c_longlong * n)()
        total = (ctypes.c_longlong * n)()
        duty = (ctypes.c_double * n)()
        m = int(lib.tpu_metrics(self.port, ids, used, total, duty, n))
        if m < 0:
            return TpuSample(error="libtpuinfo error %d (tpu_metrics)" % m)
        m = min(m, n)
        chips = [
            TpuChip(
                index=i,
                device_id=int(ids[i]),
                memory_used=int(used[i]) if used[i] >= 0 else None,
                memory_total=int(total[i]) if total[i] >= 0 else None,
                duty_cycle=float(duty[i]) if duty[i] >= 0 else None,
            )
            for i in range(m)
        ]
        pids = (ctypes.c_longlong * n)()
        k = int(lib.tpu_pids(pids, n))
        error = None
        pid_memory: Dict[int, int] = {}
        if k < 0:
            error = "libtpuinfo error %d (tpu_pids): per-process TPU memory unavailable" % k
        else:
            for i in range(min(k, m)):
                pid = int(pids[i])
                if pid > 0 and used[i] >= 0:
                    pid_memory[pid] = pid_memory.get(pid, 0) + int(used[i])
        return TpuSample(chips=chips, error=error, pid_memory=pid_memory)
