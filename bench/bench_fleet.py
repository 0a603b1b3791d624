"""Benchmark: one ttop over a shared folder of a fleet.

10 hosts x 100 runs (all RUNNING, written "remotely": another host name, so
nothing is looked up locally) in one folder.

**Steady (the realistic case).** A live writer rewrites its file once per
``heartbeat_interval`` (TrainingMonitor's default: 1 s). A writer process
here rewrites each of the 1,000 files once a second, spread evenly over the
second as independent writers would, while the collector cycles at ttop's
default ``-i 2``: so every live file has changed between two cycles and each
cycle reads all of them. (The writer runs on this machine and competes for
its CPU; on a real fleet the writers are on the other hosts.)

Also printed, in the same run:

- the floor: nothing changed since the last cycle (stat only);
- the worst case: every file rewritten between back-to-back cycles;
- the peer: reading and ``json.loads`` of every file (the least a cycle that
  sees every file changed must do), measured right after each steady cycle,
  and the ratio of the cycle to it (robust on a busy machine);
- the CPU time of the steady cycle and of the peer (``time.thread_time``:
  what the wall clock adds on a machine shared with other work is left out).

The collector runs with the ttop command's garbage collector settings
(``ttop.collect.readfile.set_process_gc``); ``--library-gc``: with Python's
defaults, as in a library user's process.

Target: the steady cycle <= 50 ms (exit 1 when missed).

    python bench/bench_fleet.py [--hosts 10] [--runs-per-host 100] [--cycles 8] [--library-gc]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ttop.collect.collector import Collector  # noqa: E402
from ttop.collect.readfile import set_process_gc  # noqa: E402
from ttop.progress import write_json_atomic  # noqa: E402


def doc(host: int, i: int, tick: int) -> dict:
    return {
        "format": "ttop.progress/1", "run_name": "h%02d-run%03d" % (host, i), "status": "RUNNING",
        "updated_at": time.time(), "host": "node-%02d" % host, "pid": 1000 + i, "pid_create_time": 1.0,
        "heartbeat_interval": 1.0, "phase": "train", "epoch": 3, "total_epochs": 10, "batch": tick % 500,
        "total_batches": 500, "rate": 12.5, "times": {"run": {"elapsed": 100.0, "remaining": 900.0, "total": 1000.0}},
        "metrics": {"loss": 1.0 / (tick + 1), "acc": 0.5, "lr": 0.001},
        "history": {"loss": [1.0 / (t + 1) for t in range(max(0, tick - 100), tick)]},
        "resources": {"cpu_percent": 99.0, "rss_bytes": 1 << 30, "num_procs": 5, "num_threads": 40,
                      "sampled_at": 1.7e9 + tick // 5 * 5},  # sampled every 5 s (resource_interval), written every 1 s
    }


def _name(h: int, i: int) -> str:
    return "h%02d-run%03d.json" % (h, i)


WRITER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, os.path.join(sys.argv[1], "bench"))
from bench_fleet import _name, doc
from ttop.progress import write_json_atomic
folder, hosts, per = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
files = [(h, i) for h in range(hosts) for i in range(per)]
tick = 1
while True:  # each file once a second, spread evenly over the second
    t0 = time.monotonic()
    tick += 1
    for n, (h, i) in enumerate(files):
        write_json_atomic(os.path.join(folder, _name(h, i)), doc(h, i, tick))
        lag = t0 + (n + 1) / len(files) - time.monotonic()
        if lag > 0:
            time.sleep(lag)
"""


def peer(folder: str, names: list, cpu: Optional[list] = None) -> float:
    t0, c0 = time.perf_counter(), time.thread_time()
    for n in names:
        with open(os.path.join(folder, n), "rb") as f:
            json.loads(f.read())
    if cpu is not None:
        cpu.append(time.thread_time() - c0)
    return time.perf_counter() - t0


def cycle(c: Collector, cpu: Optional[list] = None) -> float:
    t0, c0 = time.perf_counter(), time.thread_time()
    c.collect()
    if cpu is not None:
        cpu.append(time.thread_time() - c0)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--runs-per-host", type=int, default=100)
    ap.add_argument("--cycles", type=int, default=8)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--library-gc", action="store_true",
                    help="Python's garbage collector defaults (a library user's process), not the ttop command's")
    args = ap.parse_args()
    if not args.library_gc:
        set_process_gc()  # as the ttop command (the monitor, --headless) runs its collector
    files = [(h, i) for h in range(args.hosts) for i in range(args.runs_per_host)]
    names = [_name(h, i) for h, i in files]
    with tempfile.TemporaryDirectory() as folder:
        for h, i in files:
            write_json_atomic(os.path.join(folder, _name(h, i)), doc(h, i, 0))
        c = Collector(folder, interval=args.interval, gpu=False, tpu=False)
        c.collect()
        c.collect()
        floor = [cycle(c) for _ in range(args.cycles)]

        writer = subprocess.Popen([sys.executable, "-c", WRITER, ROOT, folder, str(args.hosts),
                                   str(args.runs_per_host)], start_new_session=True)
        steady, peers, reads = [], [], []
        steady_cpu: list = []
        peers_cpu: list = []
        try:
            time.sleep(args.interval)  # every writer has written once
            cycle(c)
            for _ in range(args.cycles):
                time.sleep(args.interval)  # the collector's own wait between cycles
                before = c._scanner.total_reads
                steady.append(cycle(c, steady_cpu))
                reads.append(c._scanner.total_reads - before)
                peers.append(peer(folder, names, peers_cpu))
        finally:
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait()

        worst = []
        tick = 10_000
        for _ in range(args.cycles):
            tick += 1
            for h, i in files:
                write_json_atomic(os.path.join(folder, _name(h, i)), doc(h, i, tick))
            time.sleep(0.06)  # past the scanner's racy-mtime window
            worst.append(cycle(c))
        c.stop()

    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print("bench_fleet: %d hosts x %d runs in one folder (%d files), -i %g, garbage collector: %s"
          % (args.hosts, args.runs_per_host, len(files), args.interval,
             "Python's defaults" if args.library_gc else "as the ttop command sets it"))
    print("  nothing changed (floor)                       median %7.1f ms" % ms(floor))
    print("  steady: writers at 1 Hz, every file changed   median %7.1f ms  (%d files read per cycle)"
          % (ms(steady), statistics.median(reads)))
    print("  peer: read + json.loads of every file         median %7.1f ms  (steady cycle = %.1fx the peer)"
          % (ms(peers), ms(steady) / ms(peers)))
    print("  CPU time (this thread) of the same: steady cycle %.1f ms, peer %.1f ms (cycle = %.1fx the peer)"
          % (ms(steady_cpu), ms(peers_cpu), ms(steady_cpu) / ms(peers_cpu)))
    print("  worst: every file rewritten between back-to-back cycles  median %7.1f ms" % ms(worst))
    ok = ms(steady) <= 50.0
    print("  target: steady cycle <= 50 ms: %s" % ("PASS" if ok else "MISS"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
