"""UI benchmarks, measured for real in a pseudo-terminal (tests/ptyharness.py).

(a) key -> screen latency: ``ttop`` on a folder of 1,000 progress files with
    a fast collector interval (``-i 0.2``: the collector is scanning the
    1,000 files almost all the time); press Down N times and time each press
    until the pyte screen shows the selection on the next run. Baseline, same
    run, same harness: the same app on a 10-run folder with the collector idle
    (``-i 60``). Target: p95 <= 50 ms.

(b) idle CPU: 20 live demo runs (examples/demo_job.py); ``ttop DIR -i 2`` and
    ``htop -d 20`` each in its own pty for the same ``--seconds`` (default 60),
    at the same time; CPU = utime+stime from /proc/<pid>/stat, as % of one
    core. Target for ttop: <= 1 %.

    python bench/bench_ui.py [--presses 200] [--seconds 60] [--skip-idle] [--skip-latency]
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
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from ptyharness import TtopTerm  # noqa: E402
from ttop.progress import write_json_atomic  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def make_folder(path: str, n: int) -> None:
    os.makedirs(path, exist_ok=True)
    now = time.time()
    for i in range(n):
        name = "run-%04d" % i
        write_json_atomic(os.path.join(path, name + ".json"), {
            "format": "ttop.progress/1", "run_name": name, "status": "FINISHED", "updated_at": now,
            "phase": "train", "epoch": 3, "total_epochs": 3, "train_batch": 500, "train_total_batches": 500,
            "times": {"run": {"elapsed": 3600 + i, "remaining": 0, "total": 3600 + i}},
            "metrics": {"loss": 0.1, "acc": 0.9}})


def selected(t: TtopTerm):
    for y in range(t.rows):
        if t.is_reverse_row(y, 0, 4):
            line = t.line(y)
            if line.startswith("run-"):
                return line.split()[0]
    return None


def percentile(xs, q):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def latency(folder: str, interval: str, presses: int):
    t = TtopTerm.ttop(folder, interval=interval, cols=120, rows=40)
    try:
        t.wait_for("run-0000", timeout=60)
        t.wait_for(lambda t: selected(t) == "run-0000", timeout=30)
        n = len([f for f in os.listdir(folder) if f.endswith(".json")])
        times = []
        cur = 0
        for _ in range(presses):
            if cur + 1 >= n:
                t.send("HOME")
                t.wait_for(lambda t: selected(t) == "run-0000", timeout=30)
                cur = 0
            want = "run-%04d" % (cur + 1)
            t0 = time.perf_counter()
            t.send("DOWN")
            t.wait_for(lambda t, want=want: selected(t) == want, timeout=30)
            times.append((time.perf_counter() - t0) * 1000.0)
            cur += 1
        return times
    finally:
        t.close()


def cpu_seconds(pid: int) -> float:
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def idle_cpu(seconds: float, runs: int):
    tmp = tempfile.mkdtemp(prefix="ttop-bench-")
    folder = os.path.join(tmp, "progress")
    os.makedirs(folder)
    demo = os.path.join(ROOT, "examples", "demo_job.py")
    procs = []
    terms = []
    try:
        for i in range(runs):
            procs.append(subprocess.Popen(
                [sys.executable, demo, "--folder", folder, "--name", "demo-%02d" % i, "--epochs", "1000",
                 "--batches", "200", "--val-batches", "20", "--batch-time", "0.5", "--workers", "1",
                 "--work", "1000", "--interval", "1"],
                start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while len([f for f in os.listdir(folder) if f.endswith(".json") and not f.startswith(("control_", "."))]) < runs:
            if time.monotonic() > deadline:
                raise SystemExit("demo runs did not start")
            time.sleep(0.2)
        ttop = TtopTerm.ttop(folder, interval="2", cols=160, rows=40)
        terms.append(ttop)
        ttop.wait_for("demo-%02d" % (runs - 1), timeout=60)
        htop_bin = shutil.which("htop")
        htop = None
        if htop_bin:
            htop = TtopTerm([htop_bin, "-d", "20"], cols=160, rows=40)
            terms.append(htop)
            htop.wait_for(lambda t: "Load average" in t.text or "Tasks" in t.text, timeout=30)
        time.sleep(3)  # both past start-up
        c0 = {"ttop": cpu_seconds(ttop.proc.pid)}
        if htop:
            c0["htop"] = cpu_seconds(htop.proc.pid)
        w0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - w0
        out = {"ttop": 100.0 * (cpu_seconds(ttop.proc.pid) - c0["ttop"]) / wall}
        if htop:
            out["htop"] = 100.0 * (cpu_seconds(htop.proc.pid) - c0["htop"]) / wall
        return out, wall
    finally:
        for t in terms:
            t.close()
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--runs", type=int, default=20, help="live demo runs for the idle test")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-idle", action="store_true")
    args = ap.parse_args()
    print("machine: %d CPUs, %s" % (os.cpu_count() or 0, os.uname().release))
    if not args.skip_latency:
        tmp = tempfile.mkdtemp(prefix="ttop-bench-")
        try:
            small, big = os.path.join(tmp, "small"), os.path.join(tmp, "big")
            make_folder(small, 10)
            make_folder(big, args.files)
            base = latency(small, "60", args.presses)
            lat = latency(big, "0.2", args.presses)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        bm, bp = statistics.median(base), percentile(base, 95)
        m, p = statistics.median(lat), percentile(lat, 95)
        print("key->screen, baseline (10 runs, collector idle):      median %.1f ms  p95 %.1f ms  (n=%d)" % (bm, bp, len(base)))
        print("key->screen, %d files, collector scanning (-i 0.2): median %.1f ms  p95 %.1f ms  (n=%d)" % (args.files, m, p, len(lat)))
        print("  ratio to baseline: median %.2fx  p95 %.2fx;  target p95 <= 50 ms: %s" % (
            m / bm if bm else float("nan"), p / bp if bp else float("nan"), "OK" if p <= 50 else "MISSED"))
    if not args.skip_idle:
        res, wall = idle_cpu(args.seconds, args.runs)
        print("idle CPU over %.0f s with %d live demo runs (%% of one core):" % (wall, args.runs))
        print("  ttop -i 2:   %.2f %%   target <= 1 %%: %s" % (res["ttop"], "OK" if res["ttop"] <= 1.0 else "MISSED"))
        if "htop" in res:
            print("  htop -d 20:  %.2f %%   ratio ttop/htop %.2fx" % (res["htop"], res["ttop"] / res["htop"] if res["htop"] else float("nan")))
        else:
            print("  htop: not installed (apt-get install -y htop)")


if __name__ == "__main__":
    main()
