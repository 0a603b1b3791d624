"""Benchmark of TrainingMonitor's hot path against tqdm, measured in the same
run on the same machine, and of its background thread's CPU use.

    pip install -e .[bench]          # tqdm
    python bench/bench_monitor.py    # about 1.5 minutes (60 s of it: the thread)
    python bench/bench_monitor.py --thread-seconds 10 --repeats 11   # quicker

Targets:

* ``start_batch()`` per call: median <= 0.5x ``tqdm.update()`` per call
* ``update_metrics(loss=x)`` per call: median <= 1.5x ``tqdm.update()``
* ``for x in monitor.track(range(N))``: per-item overhead over a bare ``for``
  loop <= 0.5x tqdm's per-item overhead (``for x in tqdm(range(N))``)
* the background thread at default settings, 5 metrics updated every ~1 ms
  (folded into the progress file and the metric history file):
  <= 0.25 % of one core over ``--thread-seconds`` (default 60). Printed
  beside it: its CPU per batch against one ``tqdm.update()`` call, and the
  CPU of tqdm's own monitor thread in the same loop (a bar updated every
  batch).

Optional peers, printed for comparison when installed (``pip install wandb
trackio``; skipped with the reason otherwise, ``--no-peers`` skips them):
wandb in offline mode and trackio, one ``log()`` of one metric per call, and
the CPU their helper processes use meanwhile.

Candidates are measured in interleaved rounds (A, B, C, A, B, C, ...) so that
load from other processes hits them alike; medians are reported. Per-call
figures include the ``timeit`` loop itself; the bare loop is printed so it can
be subtracted. Exit status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
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


def _helper_cpu():
    """CPU seconds of this process's child processes (a tracker's service)."""
    try:
        import psutil
    except ImportError:
        return 0.0
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _time_log(fn, calls, repeats):
    """(median seconds per call of fn(i), % of a core used meanwhile by the
    tracker's helper processes and by this process's other threads)."""
    c0, t0 = _helper_cpu(), time.perf_counter()
    p0, th0 = time.process_time(), time.thread_time()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(calls):
            fn(i)
        times.append((time.perf_counter() - t) / calls)
    wall = time.perf_counter() - t0
    others = (time.process_time() - p0) - (time.thread_time() - th0)
    return statistics.median(times), 100.0 * (_helper_cpu() - c0 + max(0.0, others)) / wall


def optional_peers(folder, ref_ns, calls=2000, repeats=5):
    """wandb (offline) and trackio, when installed: one ``log()`` of one
    metric per call against ``tqdm.update()``. Skipped with the reason when
    absent."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DIR", folder)
    os.environ.setdefault("TRACKIO_DIR", os.path.join(folder, "trackio"))
    print("  optional peers (log() of one metric per call; CPU of their helper processes and threads meanwhile):")
    try:
        import wandb
    except Exception as e:  # ImportError, or a broken install
        print("    wandb: skipped (%s: pip install wandb)" % (e.__class__.__name__,))
    else:
        try:
            run = wandb.init(project="ttop-bench", mode="offline", dir=folder)
            per, helper = _time_log(lambda i: run.log({"loss": 1.0 / (i + 1)}), calls, repeats)
            run.finish()
            print("    %-26s %10.1f ns/call  %7.1fx tqdm.update()   helpers %.1f%% of one core"
                  % ("wandb %s offline log()" % wandb.__version__, per * 1e9, per * 1e9 / ref_ns, helper))
        except Exception as e:
            print("    wandb: skipped (%s: %s)" % (e.__class__.__name__, e))
    try:
        import trackio
    except Exception as e:
        print("    trackio: skipped (%s: pip install trackio)" % (e.__class__.__name__,))
    else:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its banner
                trackio.init(project="ttop-bench")
            per, helper = _time_log(lambda i: trackio.log({"loss": 1.0 / (i + 1)}), calls, repeats)
            with contextlib.redirect_stdout(io.StringIO()):
                trackio.finish()
            print("    %-26s %10.1f ns/call  %7.1fx tqdm.update()   helpers %.1f%% of one core"
                  % ("trackio %s log()" % getattr(trackio, "__version__", "?"), per * 1e9, per * 1e9 / ref_ns,
                     helper))
        except Exception as e:
            print("    trackio: skipped (%s: %s)" % (e.__class__.__name__, e))


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200_000, help="calls per timing run (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=21, help="timing runs per candidate (default %(default)s)")
    ap.add_argument("--thread-seconds", type=float, default=60.0, help="writer thread measurement (default %(default)s s)")
    ap.add_argument("--no-peers", dest="peers", action="store_false", help="skip the optional wandb/trackio peers")
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
        for name, limit in (("start_batch()", 0.5), ("update_metrics(loss=x)", 1.5)):
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
        ok = tr_over <= 0.5 * tq_over
        failed |= not ok
        print("  %-28s %8.1f ns/item" % ("bare for loop", med["bare for"]))
        print("  %-28s %8.1f ns/item (over the bare loop)" % ("tqdm(range(N)) overhead", tq_over))
        print(
            "  %-28s %8.1f ns/item  %5.2fx tqdm iteration  target <= 0.50x  %s"
            % ("monitor.track() overhead", tr_over, ratio, verdict(ok))
        )
        if args.peers:
            optional_peers(folder, ref)
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
            # peer in the same loop: a tqdm bar updated every batch, whose own
            # background thread (tqdm's monitor, TMonitor) runs meanwhile
            peer_bar = tqdm(total=10**9, file=devnull)
            tq_thread = getattr(tqdm, "monitor", None)
            tq0 = thread_cpu_seconds(tq_thread) if tq_thread is not None else None
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
                peer_bar.update()
                batches += 1
                time.sleep(0.001)
            cpu = thread_cpu_seconds(thread)
            now = time.monotonic()
            tq_cpu = thread_cpu_seconds(tq_thread) - tq0 if tq0 is not None and tq_thread.is_alive() else None
            peer_bar.close()
            wall = now - t_start
            proc = time.process_time() - proc0
            monitor.set_finished()
            share = 100.0 * cpu / wall
            ok = share <= 0.25
            failed |= not ok
            print(
                "  writer thread: %.1f ms CPU over %.1f s (start-up included) = %.3f%% of one core"
                "   target <= 0.25%%  %s" % (cpu * 1e3, wall, share, verdict(ok))
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
            per_batch = cpu / batches * 1e9 if batches else 0.0
            print("    per batch: %.0f ns of writer CPU = %.2fx one tqdm.update() call measured above"
                  % (per_batch, per_batch / ref))
            if tq_cpu is not None:
                print("    peer, same loop: tqdm's monitor thread %.3f%% of one core (it wakes every %g s)"
                      % (100.0 * tq_cpu / wall, getattr(tqdm, "monitor_interval", 0)))
            else:
                print("    peer, same loop: tqdm's monitor thread not running (monitor_interval=%r)"
                      % getattr(tqdm, "monitor_interval", None))
    print("overall: %s" % ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
