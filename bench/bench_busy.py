"""Busy box: the collector's steady cycle over 1,000 progress files (10 live
runs of 1 + 4 processes each) without and with 2,000 unrelated sleeping
processes on the machine.

Goal (exit status 1 when missed): with the extra processes the median cycle
is <= 2x the median without them. ttop walks each run's tree through
``/proc/<pid>/task/<tid>/children``; in the same run, the cycle that lists and
reads every process each time (what ttop does on kernels without that file,
with ``FULL_REFRESH_SECONDS = 0``) is measured as the peer.

    python bench/bench_busy.py [--procs 2000] [--cycles 20]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _runs import ROOT, fill_archive, start_live, stop_all  # noqa: E402

sys.path.insert(0, ROOT)

from ttop.collect import procs as procs_mod  # noqa: E402
from ttop.collect.collector import Collector  # noqa: E402


def cycles(c: Collector, n: int) -> float:
    times = []
    for _ in range(n):
        time.sleep(0.2)
        t = time.perf_counter()
        c.collect()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(folder: str, n: int):
    """(median cycle, median cycle listing and reading every process each time)."""
    c = Collector(folder, interval=2.0, gpu=False, tpu=False)
    c.collect()
    c.collect()
    fast = cycles(c, n)
    saved = procs_mod.FULL_REFRESH_SECONDS
    procs_mod.FULL_REFRESH_SECONDS = 0.0
    c._table = procs_mod.ProcessTable(walk=False)
    try:
        c.collect()
        full = cycles(c, n)
    finally:
        procs_mod.FULL_REFRESH_SECONDS = saved
    c.stop()
    return fast, full


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
        quiet, quiet_full = measure(folder, args.cycles)
        for _ in range(args.procs):
            extra.append(subprocess.Popen(["sleep", "3600"], stdin=subprocess.DEVNULL))
        busy_procs = len([n for n in os.listdir("/proc") if n.isdigit()])
        busy, busy_full = measure(folder, args.cycles)
        ratio = busy / quiet
        print("steady cycle, 1,000 files, 10 live runs x 5 processes (trees %s):"
              % ("walked" if procs_mod.ProcessTable().walk else "listed: no /proc/<pid>/task/<tid>/children"))
        print("  %5d processes on the machine: %6.1f ms   (listing every process: %6.1f ms)"
              % (base_procs, quiet * 1000, quiet_full * 1000))
        print("  %5d processes on the machine: %6.1f ms   (listing every process: %6.1f ms)"
              % (busy_procs, busy * 1000, busy_full * 1000))
        print("  ratio busy/quiet: %.2fx   (listing every process: %.2fx)" % (ratio, busy_full / quiet_full))
        ok = ratio <= 2.0
        print("%s  busy cycle <= 2x the quiet one" % ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        for p in extra:
            p.kill()
        for p in extra:
            p.wait()
        stop_all([p for _, p in live])
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
