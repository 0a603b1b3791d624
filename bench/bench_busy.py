"""Busy box: the collector's steady cycle over 1,000 progress files (10 live
runs of 1 + 4 processes each) without and with 2,000 unrelated sleeping
processes on the machine.

Goal (exit status 1 when missed): with the extra processes the median cycle
is <= 2x the median without them. ttop walks each run's tree through
``/proc/<pid>/task/<tid>/children``; in the same run, the cycle that lists and
reads every process each time (what ttop does on kernels without that file,
with ``FULL_REFRESH_SECONDS = 0``) is measured as the peer. The cycles' CPU
time is printed too: on a loaded machine much of a cycle's wall time is
waiting for a core.

    python bench/bench_busy.py [--procs 2000] [--cycles 20]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _runs import ROOT, fill_archive, start_live, stop_all  # noqa: E402

sys.path.insert(0, ROOT)

from ttop.collect import procs as procs_mod  # noqa: E402
from ttop.collect.collector import Collector  # noqa: E402

SPAWNER = r"""
import subprocess, sys
procs = [subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL) for _ in range(int(sys.argv[1]))]
print("ready", flush=True)
sys.stdin.read()
"""


def cycles(c: Collector, n: int, cpu: Optional[List[float]] = None) -> float:
    """Median wall time of ``n`` cycles (their CPU times appended to ``cpu``)."""
    times = []
    for _ in range(n):
        time.sleep(0.2)
        t = time.perf_counter()
        u = time.thread_time()
        c.collect()
        times.append(time.perf_counter() - t)
        if cpu is not None:
            cpu.append(time.thread_time() - u)
    return statistics.median(times)


def measure(folder: str, n: int):
    """(median cycle, median cycle listing and reading every process each
    time, median CPU time of a cycle)."""
    c = Collector(folder, interval=2.0, gpu=False, tpu=False)
    c.collect()
    c.collect()
    cpu: List[float] = []
    fast = cycles(c, n, cpu)
    saved = procs_mod.FULL_REFRESH_SECONDS
    procs_mod.FULL_REFRESH_SECONDS = 0.0
    c._table = procs_mod.ProcessTable(walk=False)
    try:
        c.collect()
        full = cycles(c, n)
    finally:
        procs_mod.FULL_REFRESH_SECONDS = saved
    c.stop()
    return fast, full, statistics.median(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", type=int, default=2000)
    ap.add_argument("--cycles", type=int, default=20)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="ttop-busy-")
    live, extra = [], []
    try:
        fill_archive(folder, 990)
        live = start_live(folder, 10, children=4, interval=1.0)
        base_procs = len([n for n in os.listdir("/proc") if n.isdigit()])
        quiet, quiet_full, quiet_cpu = measure(folder, args.cycles)
        # started by a helper process: 2,000 Popen objects in this one would
        # make its own garbage collection, not the collector, slower
        helper = subprocess.Popen([sys.executable, "-c", SPAWNER, str(args.procs)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, start_new_session=True)
        extra.append(helper)
        assert helper.stdout is not None
        helper.stdout.readline()  # "ready"
        busy_procs = len([n for n in os.listdir("/proc") if n.isdigit()])
        busy, busy_full, busy_cpu = measure(folder, args.cycles)
        ratio = busy / quiet
        print("steady cycle, 1,000 files, 10 live runs x 5 processes (trees %s):"
              % ("walked" if procs_mod.ProcessTable().walk else "listed: no /proc/<pid>/task/<tid>/children"))
        print("  %5d processes on the machine: %6.1f ms   (listing every process: %6.1f ms)"
              % (base_procs, quiet * 1000, quiet_full * 1000))
        print("  %5d processes on the machine: %6.1f ms   (listing every process: %6.1f ms)"
              % (busy_procs, busy * 1000, busy_full * 1000))
        print("  ratio busy/quiet: %.2fx   (listing every process: %.2fx)" % (ratio, busy_full / quiet_full))
        print("  CPU time of a cycle (the collector's own work): %.1f ms quiet, %.1f ms busy (%.2fx)"
              % (quiet_cpu * 1000, busy_cpu * 1000, busy_cpu / quiet_cpu))
        ok = ratio <= 2.0
        print("%s  busy cycle <= 2x the quiet one" % ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        for p in extra:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the helper and its sleepers
            except OSError:
                pass
            p.wait()
        stop_all([p for _, p in live])
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
