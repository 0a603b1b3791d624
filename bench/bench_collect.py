"""Benchmark one collector cycle against a naive baseline, in the same run.

Setup: a folder of 1,000 progress files of ~2 KB (990 finished or remote runs
plus 10 live local runs, each a real process tree of 1 parent + 4 children);
before every measured cycle 10 files are rewritten (the live runs' heartbeats).

* ttop: ``Collector.collect()`` (stat cache, one pass over the process table).
* baseline: list the folder, read + ``json.loads`` every file, and for each
  live run ``psutil.Process(pid).children(recursive=True)`` plus
  ``cpu_percent()`` / ``memory_info()`` per process.

Prints both medians, the ratio, PASS/FAIL against "median <= 50 ms" and
"at least 5x faster", and the RSS of a fresh process holding a Collector over
the 1,000 runs after a few cycles (PASS if <= 60 MB).

    python bench/bench_collect.py [--cycles 40]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import psutil  # noqa: E402

from ttop.collect import Collector  # noqa: E402
from ttop.progress import write_json_atomic  # noqa: E402

WRITER = os.path.join(ROOT, "tests", "fakes", "progress_writer.py")
N_FILES = 1000
N_LIVE = 10
CHILDREN = 4


def run_doc(i, host, status="FINISHED", pid=None, ctime=None, batch=0):
    now = time.time()
    d = {
        "format": "ttop.progress/1",
        "run_name": "run%04d" % i,
        "status": status,
        "updated_at": now,
        "started_at": now - 3600,
        "host": host,
        "pid": pid if pid is not None else 4000000 + i,
        "pid_create_time": ctime if ctime is not None else now - 7200,
        "heartbeat_interval": 2.0,
        "phase": "train",
        "epoch": 3,
        "total_epochs": 10,
        "batch": batch,
        "total_batches": 5000,
        "rate": 12.5,
        "times": {k: {"elapsed": 100.0, "remaining": 50.0, "total": 150.0}
                  for k in ("run", "epoch", "train", "validation")},
        "metrics": {"loss": 0.1234, "acc": 0.9, "lr": 0.001},
        "history": {"loss": [round(1.0 / (j + 1), 6) for j in range(80)],
                    "acc": [round(j / 40.0, 6) for j in range(80)]},
        "variables": {"lr": 0.001, "batch_size": 64},
        "variable_types": {"lr": "float", "batch_size": "int"},
        "logs": {"stdout": "run%04d.stdout.log" % i, "stderr": "run%04d.stderr.log" % i},
        "resources": {"cpu_percent": 100.0, "rss_bytes": 1 << 30, "num_procs": 5, "num_threads": 20,
                      "sampled_at": now},
    }
    if status != "RUNNING":
        d["ended_at"] = now
    return d


def naive_cycle(folder, me):
    runs = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json") or name.startswith("."):
            continue
        try:
            with open(os.path.join(folder, name), "rb") as f:
                runs.append(json.loads(f.read()))
        except (OSError, ValueError):
            continue
    out = []
    for d in runs:
        if d.get("status") != "RUNNING" or d.get("host") != me:
            continue
        try:
            p = psutil.Process(d["pid"])
            tree = [p] + p.children(recursive=True)
            tot_cpu = tot_rss = 0
            for q in tree:
                tot_cpu += q.cpu_percent(None)
                tot_rss += q.memory_info().rss
            out.append((d["run_name"], tot_cpu, tot_rss, len(tree)))
        except psutil.Error:
            continue
    return out


RSS_CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from ttop.collect import Collector
c = Collector(sys.argv[1], interval=1.0)
for _ in range(5):
    s = c.collect()
assert len(s.runs) >= 1000, len(s.runs)
with open('/proc/self/status') as f:
    for line in f:
        if line.startswith('VmRSS:'):
            print(int(line.split()[1]) * 1024)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=40)
    args = ap.parse_args()
    me = socket.gethostname()
    folder = tempfile.mkdtemp(prefix="ttop-bench-")
    procs = []
    try:
        for i in range(N_FILES - N_LIVE):
            status = "FINISHED" if i % 10 else "RUNNING"
            host = me if status == "FINISHED" else "node-%d" % (i % 7)
            write_json_atomic(os.path.join(folder, "run%04d.json" % i), run_doc(i, host, status))
        live = []
        for k in range(N_LIVE):
            name = "live%02d" % k
            p = subprocess.Popen([sys.executable, WRITER, "--folder", folder, "--name", name,
                                  "--children", str(CHILDREN), "--interval", "3600"],
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            procs.append(p)
            live.append((name, p))
        deadline = time.monotonic() + 120
        ready = {}
        while len(ready) < N_LIVE:
            if time.monotonic() > deadline:
                raise SystemExit("live runs did not start")
            for name, p in live:
                try:
                    with open(os.path.join(folder, name + ".json")) as f:
                        d = json.load(f)
                    if len(psutil.Process(p.pid).children()) == CHILDREN:
                        ready[name] = d
                except (OSError, ValueError, psutil.Error):
                    pass
            time.sleep(0.1)
        sizes = [os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)]
        files = [n for n in os.listdir(folder) if n.endswith(".json")]
        print("setup: %d progress files (median %d bytes), %d live runs x (1 + %d) processes, "
              "%d processes on this machine, %d CPUs"
              % (len(files), statistics.median(sizes), N_LIVE, CHILDREN, len(psutil.pids()),
                 psutil.cpu_count()))

        def touch(batch):
            for name, d in ready.items():
                d = dict(d, updated_at=time.time(), batch=batch)
                write_json_atomic(os.path.join(folder, name + ".json"), d)

        c = Collector(folder, interval=2.0)
        c_plain = Collector(folder, interval=2.0, health=False)  # peer: no samples, no health verdicts
        c.collect()
        c.collect()  # warm: first read of every file, NVML/TPU probes
        c_plain.collect()
        c_plain.collect()
        t_health = []
        _update = c.recent.update

        def timed_update(*a, **kw):  # the health step's own share of each cycle
            t0 = time.perf_counter()
            _update(*a, **kw)
            t_health.append(time.perf_counter() - t0)

        c.recent.update = timed_update
        snap = c.collect()
        lives = [r for r in snap.runs if r.key.startswith("live")]
        assert len(snap.runs) == N_FILES and len(lives) == N_LIVE, (len(snap.runs), len(lives))
        assert all(r.alive and len(r.processes) == 1 + CHILDREN for r in lives)
        naive_cycle(folder, me)
        t_ttop, t_naive, t_plain = [], [], []
        del t_health[:]
        for cycle in range(args.cycles):
            touch(cycle)
            t0 = time.perf_counter()
            naive_cycle(folder, me)
            t_naive.append(time.perf_counter() - t0)
            touch(cycle)
            t0 = time.perf_counter()
            snap = c.collect()
            t_ttop.append(time.perf_counter() - t0)
            touch(cycle)
            t0 = time.perf_counter()
            c_plain.collect()
            t_plain.append(time.perf_counter() - t0)
        assert all(r.resources.num_procs == 1 + CHILDREN for r in snap.runs if r.key.startswith("live"))
        m_ttop = statistics.median(t_ttop) * 1000
        m_naive = statistics.median(t_naive) * 1000
        ratio = m_naive / m_ttop
        print("collect cycle  (ttop):     median %7.2f ms  (min %.2f, max %.2f, %d cycles)"
              % (m_ttop, min(t_ttop) * 1000, max(t_ttop) * 1000, len(t_ttop)))
        print("naive baseline (parse all): median %7.2f ms  (min %.2f, max %.2f, %d cycles)"
              % (m_naive, min(t_naive) * 1000, max(t_naive) * 1000, len(t_naive)))
        m_plain = statistics.median(t_plain) * 1000
        print("collect cycle without health: median %7.2f ms (min %.2f); health adds %+.1f%% (medians), %+.1f%% (minima)"
              % (m_plain, min(t_plain) * 1000, (m_ttop / m_plain - 1) * 100, (min(t_ttop) / min(t_plain) - 1) * 100))
        share = statistics.median(t / total for t, total in zip(t_health, t_ttop))
        print("health step inside the cycle: median %.2f ms, %.1f%% of its cycle"
              % (statistics.median(t_health) * 1000, share * 100))
        print("%s  health adds <= 10%% (with/without)" % ("PASS" if m_ttop <= 1.10 * m_plain else "FAIL"))
        print("speed-up vs baseline: %.1fx" % ratio)
        print("%s  median <= 50 ms" % ("PASS" if m_ttop <= 50 else "FAIL"))
        print("%s  >= 5x faster than the baseline" % ("PASS" if ratio >= 5 else "FAIL"))

        out = subprocess.run([sys.executable, "-c", RSS_CHILD, folder, ROOT], capture_output=True,
                             timeout=300, check=True).stdout
        rss = int(out.split()[-1])
        print("RSS of a process holding a Collector over %d runs: %.1f MB" % (N_FILES, rss / 1e6))
        print("%s  RSS <= 60 MB" % ("PASS" if rss <= 60e6 else "FAIL"))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass
            p.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
