"""Benchmark of TrainingMonitor's hot path against tqdm, measured in the same
run on the same machine, and of its background thread's CPU use.

    pip install -e .[bench]          # tqdm
    python bench/bench_monitor.py    # about 1.5 minutes (60 s of it: the thread)
    python bench/bench_monitor.py --thread-seconds 10 --repeats 11   # quicker

Targets (from the project's issue):

* ``start_batch()`` per call: median <= ``tqdm.update()`` per call
* ``update_metrics(loss=x)`` per call: median <= 2x ``tqdm.update()``
* ``for x in monitor.track(range(N))``: per-item overhead over a bare ``for``
  loop <= tqdm's per-item overhead (``for x in tqdm(range(N))``)
* the background thread at default settings, 5 metrics updated every ~1 ms
  (folded into the progress file and the metric history file):
  <= 0.5 % of one core over ``--thread-seconds`` (default 60)

Candidates are measured in interleaved rounds (A, B, C, A, B, C, ...) so that
load from other processes hits them alike; medians are reported. Per-call
figures include the ``timeit`` loop itself; the bare loop is printed so it can
be subtracted. Exit status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

try:
    import tqdm as tqdm_module
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    sys.exit("bench_monitor needs tqdm: pip install -e .[bench]")

from ttop import TrainingMonitor


def interleaved(candidates, repeats):
    """{name: [seconds per run, ...]} measured round-robin."""
    out = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            out[name].append(fn())
    return out


def thread_cpu_seconds(thread):
    """CPU time (user + system) of one thread of this process."""
    if hasattr(time, "pthread_getcpuclockid"):
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    with open("/proc/self/task/%d/stat" % thread.native_id) as f:  # pragma: no cover
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200_000, help="calls per timing run (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=21, help="timing runs per candidate (default %(default)s)")
    ap.add_argument("--thread-seconds", type=float, default=60.0, help="writer thread measurement (default %(default)s s)")
    args = ap.parse_args(argv)
    n = args.calls
    failed = False

    with tempfile.TemporaryDirectory() as folder, open(os.devnull, "w") as devnull:
        # -- hot path: per-call costs --------------------------------------
        monitor = TrainingMonitor(folder=folder, run_name="bench", handle_signals=False)
        monitor.start_monitoring()  # the writer thread runs meanwhile, at default settings
        monitor.start_phase("train")
        bar = tqdm(total=10**12, file=devnull)
        env = {"m": monitor, "t": bar, "x": 0.5}

        def timer(stmt):
            t = timeit.Timer(stmt, globals=env)
            return lambda: t.timeit(n) / n

        calls = interleaved(
            {
                "bare": timer("pass"),
                "tqdm.update()": timer("t.update()"),
                "start_batch()": timer("m.start_batch()"),
                "update_metrics(loss=x)": timer("m.update_metrics(loss=x)"),
            },
            args.repeats,
        )
        bar.close()

        # -- iteration overhead --------------------------------------------
        def bare_loop():
            t0 = time.perf_counter()
            for _ in range(n):
                pass
            return (time.perf_counter() - t0) / n

        def tqdm_loop():
            t0 = time.perf_counter()
            for _ in tqdm(range(n), file=devnull):
                pass
            return (time.perf_counter() - t0) / n

        def track_loop():
            t0 = time.perf_counter()
            for _ in monitor.track(range(n), phase="train"):
                pass
            return (time.perf_counter() - t0) / n

        loops = interleaved({"bare for": bare_loop, "tqdm": tqdm_loop, "track": track_loop}, args.repeats)
        monitor.set_finished()

        med = {k: statistics.median(v) * 1e9 for k, v in list(calls.items()) + list(loops.items())}
        print(
            "ttop bench_monitor: Python %s, tqdm %s, %s; %d calls x %d interleaved repeats, medians"
            % (platform.python_version(), tqdm_module.__version__, platform.machine(), n, args.repeats)
        )
        print("  %-28s %8.1f ns/call" % ("bare timeit loop", med["bare"]))
        ref = med["tqdm.update()"]
        print("  %-28s %8.1f ns/call" % ("tqdm.update()", ref))
        for name, limit in (("start_batch()", 1.0), ("update_metrics(loss=x)", 2.0)):
            ratio = med[name] / ref
            ok = ratio <= limit
            failed |= not ok
            print(
                "  %-28s %8.1f ns/call  %5.2fx tqdm.update()   target <= %.2fx  %s"
                % (name, med[name], ratio, limit, verdict(ok))
            )
        tq_over = med["tqdm"] - med["bare for"]
        tr_over = med["track"] - med["bare for"]
        ratio = tr_over / tq_over if tq_over > 0 else float("inf")
        ok = tr_over <= tq_over
        failed |= not ok
        print("  %-28s %8.1f ns/item" % ("bare for loop", med["bare for"]))
        print("  %-28s %8.1f ns/item (over the bare loop)" % ("tqdm(range(N)) overhead", tq_over))
        print(
            "  %-28s %8.1f ns/item  %5.2fx tqdm iteration  target <= 1.00x  %s"
            % ("monitor.track() overhead", tr_over, ratio, verdict(ok))
        )
        sys.stdout.flush()

        # -- the writer thread's CPU ---------------------------------------
        if args.thread_seconds > 0:
            monitor = TrainingMonitor(folder=folder, run_name="thread", handle_signals=False)  # default settings
            monitor.track_variables({"lr": 0.01, "batch_size": 32})
            monitor.start_monitoring()
            thread = monitor._thread
            t_start = time.monotonic()
            proc0 = time.process_time()
            monitor.start_epoch(1, total_epochs=1)
            monitor.start_phase("train", total_batches=10**9)
            batches = 0
            loss = 2.0
            deadline = t_start + args.thread_seconds
            warm_at = t_start + min(5.0, args.thread_seconds / 4)
            warm = None
            while time.monotonic() < deadline:
                if warm is None and time.monotonic() >= warm_at:
                    warm = (thread_cpu_seconds(thread), time.monotonic())
                monitor.start_batch()
                loss *= 0.99999
                monitor.update_metrics(loss=loss, acc=1.0 - loss / 2, lr=0.01, grad_norm=loss * 3, tput=512.0)
                batches += 1
                time.sleep(0.001)
            cpu = thread_cpu_seconds(thread)
            now = time.monotonic()
            wall = now - t_start
            proc = time.process_time() - proc0
            monitor.set_finished()
            share = 100.0 * cpu / wall
            ok = share <= 0.5
            failed |= not ok
            print(
                "  writer thread: %.1f ms CPU over %.1f s (start-up included) = %.3f%% of one core"
                "   target <= 0.50%%  %s" % (cpu * 1e3, wall, share, verdict(ok))
            )
            if warm is not None:
                steady = 100.0 * (cpu - warm[0]) / (now - warm[1])
                print(
                    "    steady state (after the first %.0f s: psutil/pynvml imports, NVML probe): %.3f%% of one core"
                    % (warm[1] - t_start, steady)
                )
            print(
                "    (%d batches, start_batch + update_metrics of 5 metrics every ~1 ms; whole process %.1f%% of one core)"
                % (batches, 100.0 * proc / wall)
            )
    print("overall: %s" % ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
