#!/usr/bin/env python3
"""CPU cost of ``ttop FOLDER --headless -i 2`` watching 20 live runs.

Starts ``--runs`` live demo runs (``examples/demo_job.py``; a small writer loop
if it is missing), then ``ttop FOLDER --headless -i 2 --csv-dir TMP`` and, as
the baseline measured over the same seconds, ``top -b -d 2`` (procps). Reads
each process's utime+stime from ``/proc/<pid>/stat`` at the start and end of
each window and prints the CPU % of one core per window, the median, the
target (1 % of one core) and the ratio to the baseline. ttop's start-up
(imports, first cycle) is measured separately, before the first window, and
``--warmup`` seconds pass before it (the first PSS read of every process is
start-up work too).

    python bench/bench_headless.py                # 20 runs, 3 windows of 20 s
    python bench/bench_headless.py --seconds 30 --window 10 --runs 5
    python bench/bench_headless.py --alerts       # with --events and --alert-cmd
    python bench/bench_headless.py --compare /path/to/other/checkout   # that ttop too, same runs and windows
    python bench/bench_headless.py --own-pidns    # in a PID namespace of its own (root)
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from _runs import own_pid_namespace  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TARGET = 1.0  # % of one core

FALLBACK_WRITER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
import psutil
from ttop.progress import write_json_atomic
folder, name = sys.argv[2], sys.argv[3]
ctime = psutil.Process().create_time(); t0 = time.time(); i = 0
while True:
    write_json_atomic(os.path.join(folder, name + ".json"), {
        "format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": time.time(),
        "started_at": t0, "pid": os.getpid(), "pid_create_time": ctime, "phase": "train",
        "epoch": i // 100, "batch": i % 100, "total_batches": 100, "metrics": {"loss": 1.0 / (i + 1)}})
    i += 1
    time.sleep(1.0)
"""


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid, "rb") as f:
        raw = f.read()
    fields = raw[raw.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def start_runs(n: int, folder: str, tmp: str) -> list:
    demo = os.path.join(ROOT, "examples", "demo_job.py")
    procs = []
    env = dict(os.environ, PYTHONPATH=ROOT)
    for i in range(n):
        name = "bench-%02d" % i
        if os.path.exists(demo):
            args = [sys.executable, demo, "--folder", folder, "--name", name, "--epochs", "1000", "--batches", "500",
                    "--val-batches", "50", "--batch-time", "1.0", "--workers", "1", "--work", "1000", "--seed", str(i)]
        else:
            script = os.path.join(tmp, "writer.py")
            with open(script, "w") as f:
                f.write(FALLBACK_WRITER)
            args = [sys.executable, script, ROOT, folder, name]
        procs.append(subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True, env=env))
    return procs


def stop(procs: list) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="measured time (default: %(default)s)")
    ap.add_argument("--window", type=float, default=20.0, help="window length (default: %(default)s)")
    ap.add_argument("--interval", default="2", help="ttop -i (default: %(default)s)")
    ap.add_argument("--warmup", type=float, default=30.0,
                    help="unmeasured seconds after the first CSV rows (first PSS reads of every process; "
                         "default: %(default)s)")
    ap.add_argument("--compare", metavar="ROOT",
                    help="also run the ttop of another checkout (e.g. the previous release) over the same windows")
    ap.add_argument("--alerts", action="store_true",
                    help="also pass --events TMP/events.jsonl --alert-cmd true (health and alerts on)")
    ap.add_argument("--own-pidns", action="store_true",
                    help="run in a PID namespace of its own, where only these processes exist (nothing else "
                         "starts processes, as on a quiet machine; the peers see only these processes too)")
    a = ap.parse_args()
    if a.own_pidns:
        own_pid_namespace()
    if not shutil.which("top"):
        print("bench_headless: `top` (procps) is needed for the baseline: apt-get install procps", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="ttop-bench-")
    folder = os.path.join(tmp, "progress")
    csv_dir = os.path.join(tmp, "csv")
    os.makedirs(folder)
    runs, others = [], []
    try:
        runs = start_runs(a.runs, folder, tmp)
        deadline = time.monotonic() + 60
        while len([n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith(("control_", "."))]) < a.runs:
            if time.monotonic() > deadline:
                print("bench_headless: runs did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)
        time.sleep(2)  # let them settle (loading phase, workers up)
        env = dict(os.environ, PYTHONPATH=ROOT)
        t0 = time.monotonic()
        extra = ["--events", os.path.join(tmp, "events.jsonl"), "--alert-cmd", "true"] if a.alerts else []
        ttop = subprocess.Popen([sys.executable, "-m", "ttop", folder, "--headless", "-i", a.interval, "--csv-dir", csv_dir]
                                + extra, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        others.append(ttop)
        first = os.path.join(csv_dir, "bench-00_matrix.csv")
        while not os.path.exists(first):
            if ttop.poll() is not None or time.monotonic() - t0 > 60:
                print("bench_headless: ttop wrote nothing", file=sys.stderr)
                return 1
            time.sleep(0.05)
        startup_cpu, startup_wall = cpu_seconds(ttop.pid), time.monotonic() - t0
        other = None
        if a.compare:
            other_csv = os.path.join(tmp, "csv-compare")
            other = subprocess.Popen([sys.executable, "-m", "ttop", folder, "--headless", "-i", a.interval, "--csv-dir",
                                      other_csv] + extra, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True, cwd=os.path.abspath(a.compare),
                                     env=dict(os.environ, PYTHONPATH=os.path.abspath(a.compare)))  # -m: cwd first
            others.append(other)
            t1 = time.monotonic()
            while not os.path.exists(os.path.join(other_csv, "bench-00_matrix.csv")):
                if other.poll() is not None or time.monotonic() - t1 > 60:
                    print("bench_headless: the --compare ttop wrote nothing", file=sys.stderr)
                    return 1
                time.sleep(0.05)
        time.sleep(a.warmup)  # steady state: each process's first PSS read is behind
        top = subprocess.Popen(["top", "-b", "-d", "2"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ, COLUMNS="200"))
        others.append(top)
        time.sleep(0.5)  # top's own start-up is not part of its steady cost either
        windows = max(1, int(round(a.seconds / a.window)))
        print("bench_headless: %d live %s runs, `ttop --headless -i %s`, %d windows of %g s (%d cores, CLK_TCK %d)"
              % (a.runs, "demo_job.py" if os.path.exists(os.path.join(ROOT, "examples", "demo_job.py")) else "writer",
                 a.interval, windows, a.window, os.cpu_count() or 0, TICK))
        print("  ttop start-up (imports + first cycle + first CSV): %.2f s CPU in %.2f s" % (startup_cpu, startup_wall))
        ttop_pcts, top_pcts, other_pcts = [], [], []
        t_start, b_start, m_start = cpu_seconds(ttop.pid), cpu_seconds(top.pid), time.monotonic()
        for w in range(windows):
            c0, b0, m0 = cpu_seconds(ttop.pid), cpu_seconds(top.pid), time.monotonic()
            o0 = cpu_seconds(other.pid) if other is not None else 0.0
            time.sleep(a.window)
            c1, b1, m1 = cpu_seconds(ttop.pid), cpu_seconds(top.pid), time.monotonic()
            o1 = cpu_seconds(other.pid) if other is not None else 0.0
            ttop_pcts.append(100.0 * (c1 - c0) / (m1 - m0))
            top_pcts.append(100.0 * (b1 - b0) / (m1 - m0))
            other_pcts.append(100.0 * (o1 - o0) / (m1 - m0))
            print("  window %d: ttop %.2f%% of one core | baseline top -b -d 2: %.2f%%%s"
                  % (w + 1, ttop_pcts[-1], top_pcts[-1], " | --compare ttop: %.2f%%" % other_pcts[-1] if other else ""))
        span = time.monotonic() - m_start
        t_all = 100.0 * (cpu_seconds(ttop.pid) - t_start) / span
        b_all = 100.0 * (cpu_seconds(top.pid) - b_start) / span
        print("  whole %.0f s: ttop %.2f%% | baseline top -b -d 2: %.2f%% (CPU time is counted in 1/%d s ticks)"
              % (span, t_all, b_all, TICK))
        med, base = statistics.median(ttop_pcts), statistics.median(top_pcts)
        ratio = med / base if base > 0 else float("inf")
        rows = 0
        for n in os.listdir(csv_dir):
            if n.endswith("_matrix.csv"):
                with open(os.path.join(csv_dir, n), "rb") as f:
                    rows += f.read().count(b"\n") - 1
        print("  median: ttop %.2f%% of one core (target <= %.1f%%: %s) | baseline top -b -d 2: %.2f%% | ratio ttop/top = %.2f"
              % (med, TARGET, "PASS" if med <= TARGET else "FAIL", base, ratio))
        print("  CSV rows written: %d across %d runs" % (rows, a.runs))
        if other is not None:
            omed = statistics.median(other_pcts)
            print("  --compare ttop (%s): median %.2f%% | ratio ttop/compare = %.2f"
                  % (a.compare, omed, med / omed if omed > 0 else float("inf")))
        return 0 if med <= TARGET else 1
    finally:
        stop(others)
        stop(runs)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
