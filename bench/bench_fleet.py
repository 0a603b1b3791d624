"""Benchmark: one ttop over a shared folder of a fleet.

10 hosts x 100 runs (all RUNNING, written "remotely": another host name, so
nothing is looked up locally) in one folder. Between two collector cycles a
share of the files is rewritten, as live writers on other hosts do (each
writer refreshes its file every ``heartbeat_interval``; with the default 1 s
heartbeat and ``-i 2`` every live file changes between two cycles).

Prints the collector's cycle (median of 15) for 10 %, 50 % and 100 % of the
files changed per cycle, next to the cycle with nothing changed (the floor).
Target: the cycle with every file changed stays <= 50 ms. Exits 1 when missed.

    python bench/bench_fleet.py [--hosts 10] [--runs-per-host 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ttop.collect.collector import Collector  # noqa: E402
from ttop.progress import write_json_atomic  # noqa: E402


def doc(host: int, i: int, tick: int) -> dict:
    return {
        "format": "ttop.progress/1", "run_name": "h%02d-run%03d" % (host, i), "status": "RUNNING",
        "updated_at": time.time(), "host": "node-%02d" % host, "pid": 1000 + i, "pid_create_time": 1.0,
        "heartbeat_interval": 1.0, "phase": "train", "epoch": 3, "total_epochs": 10, "batch": tick % 500,
        "total_batches": 500, "rate": 12.5, "times": {"run": {"elapsed": 100.0, "remaining": 900.0, "total": 1000.0}},
        "metrics": {"loss": 1.0 / (tick + 1), "acc": 0.5, "lr": 0.001},
        "history": {"loss": [1.0 / (t + 1) for t in range(max(0, tick - 100), tick)]},
        "resources": {"cpu_percent": 99.0, "rss_bytes": 1 << 30, "num_procs": 5, "num_threads": 40},
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--runs-per-host", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=15)
    args = ap.parse_args()
    files = [(h, i) for h in range(args.hosts) for i in range(args.runs_per_host)]
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for h, i in files:
            write_json_atomic(os.path.join(folder, "h%02d-run%03d.json" % (h, i)), doc(h, i, 0))
        c = Collector(folder, interval=2.0, gpu=False, tpu=False)
        c.collect()
        c.collect()
        tick = 1
        for share in (0.0, 0.1, 0.5, 1.0):
            times = []
            n = int(len(files) * share)
            for _ in range(args.cycles):
                tick += 1
                for h, i in files[:n]:
                    write_json_atomic(os.path.join(folder, "h%02d-run%03d.json" % (h, i)), doc(h, i, tick))
                time.sleep(0.06)  # past the scanner's racy-mtime window
                t0 = time.perf_counter()
                c.collect()
                times.append(time.perf_counter() - t0)
            results[share] = statistics.median(times) * 1000
    print("bench_fleet: %d hosts x %d runs in one folder (%d files)" % (args.hosts, args.runs_per_host, len(files)))
    for share, ms in results.items():
        print("  collector cycle, %3d%% of the files changed: median %7.1f ms" % (share * 100, ms))
    ok = results[1.0] <= 50.0
    print("  target: every file changed <= 50 ms: %s" % ("PASS" if ok else "MISS"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
