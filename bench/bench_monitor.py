"""Benchmark of TrainingMonitor's hot path against tqdm, measured in the same
run on the same machine, and of its background thread's CPU use.

    pip install -e .[bench]          # tqdm
    python bench/bench_monitor.py    # about 4.5 minutes (3.5 of them: the thread)
    python bench/bench_monitor.py --baseline ../old   # + 3.5 minutes: an older checkout's thread
    python bench/bench_monitor.py --rounds 3 --thread-seconds 10 --repeats 11   # quicker

Targets:

* ``start_batch()`` per call: median <= 0.5x ``tqdm.update()`` per call
* ``update_metrics(loss=x)`` per call: median <= 1.5x ``tqdm.update()``
* ``for x in monitor.track(range(N))``: per-item overhead over a bare ``for``
  loop <= 0.5x tqdm's per-item overhead (``for x in tqdm(range(N))``)
* the background thread at default settings, 5 metrics updated every ~1 ms
  (folded into the progress file and the metric history file):
  <= 0.25 % of one core in the steady state: each round is a process of its
  own whose first ``--warmup`` seconds (default 10: psutil's import, the
  NVML probe, the first samples; printed apart) are left out, then
  ``--thread-seconds`` (default 30) measured; the median of ``--rounds``
  (default 5) is compared with the target. ``--baseline DIR`` measures
  another checkout's thread in the same rounds, interleaved (A B, B A, ...).
  The history file's compaction (a rewrite of the whole file once 1 MiB
  was appended: every ~4 minutes in this loop) falls in few rounds: the
  rounds' own figures and all rounds together are printed beside the median
  (``bench_monitor_instr.py`` counts a compaction's instructions). Printed
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
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

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


# One round of the writer thread's measure, in a process of its own (the
# baseline's ttop is another package of the same name): the loop of
# bench_monitor's targets for ``warm`` seconds (start-up: psutil's import,
# the NVML probe, the first samples), then ``seconds`` measured. Prints one
# JSON line.
CHILD = r"""
import json, os, sys, time
code, folder, warm, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
sys.path.insert(0, code)
from tqdm import tqdm
from ttop import TrainingMonitor
def cpu(thread):
    if thread is None or not thread.is_alive():
        return None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
monitor = TrainingMonitor(folder=folder, run_name="thread", handle_signals=False)  # default settings
monitor.track_variables({"lr": 0.01, "batch_size": 32})
monitor.start_monitoring()
thread = monitor._thread
t_start = time.monotonic()
monitor.start_epoch(1, total_epochs=1)
monitor.start_phase("train", total_batches=10**9)
# peer in the same loop: a tqdm bar updated every batch, whose own background
# thread (tqdm's monitor, TMonitor) runs meanwhile
bar = tqdm(total=10**9, file=open(os.devnull, "w"))
tq = getattr(tqdm, "monitor", None)
loss = 2.0
batches = 0
warm_at, end_at = t_start + warm, t_start + warm + seconds
w = None
while True:
    now = time.monotonic()
    if w is None and now >= warm_at:
        w = (cpu(thread), now, batches, cpu(tq))
    if now >= end_at:
        break
    monitor.start_batch()
    loss *= 0.99999
    monitor.update_metrics(loss=loss, acc=1.0 - loss / 2, lr=0.01, grad_norm=loss * 3, tput=512.0)
    bar.update()
    batches += 1
    time.sleep(0.001)
c, tqc, now = cpu(thread), cpu(tq), time.monotonic()
bar.close()
monitor.set_finished()
print(json.dumps({"startup_cpu": w[0], "startup_wall": w[1] - t_start, "cpu": c - w[0], "wall": now - w[1],
                  "batches": batches - w[2], "tqdm_cpu": None if tqc is None or w[3] is None else tqc - w[3]}))
"""


def thread_rounds(codes, warm, seconds, rounds):
    """{label: [one round's figures, ...]}: each round runs every checkout
    once, in turn (the order reversed every other round: A B, B A, ...), so
    that the load of other programs hits them alike."""
    out = {label: [] for label, _ in codes}
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    for r in range(rounds):
        for label, code in codes if r % 2 == 0 else codes[::-1]:
            with tempfile.TemporaryDirectory() as folder:
                got = subprocess.run([sys.executable, "-c", CHILD, code, folder, str(warm), str(seconds)],
                                     capture_output=True, text=True, env=env)
            if got.returncode != 0:
                raise SystemExit("bench_monitor: the writer round of %s failed:\n%s" % (code, got.stderr[-2000:]))
            out[label].append(json.loads(got.stdout.strip().splitlines()[-1]))
    return out


def share(r):
    return 100.0 * r["cpu"] / r["wall"]


def writer_thread(args, ref):
    """Print the writer thread's figures; True when the target is met."""
    codes = [("ttop", ROOT)]
    if args.baseline:
        codes.append(("baseline", os.path.abspath(args.baseline)))
    got = thread_rounds(codes, args.warmup, args.thread_seconds, args.rounds)
    mine = got["ttop"]
    med = statistics.median(map(share, mine))
    ok = med <= 0.25
    print("  writer thread, steady state (after %g s of start-up; %d rounds of %g s, median):"
          " %.3f%% of one core   target <= 0.25%%  %s" % (args.warmup, args.rounds, args.thread_seconds, med, verdict(ok)))
    for label, _ in codes:
        rs = got[label]
        whole = 100.0 * sum(r["cpu"] for r in rs) / sum(r["wall"] for r in rs)
        startup = statistics.median(r["startup_cpu"] for r in rs)
        print("    %-8s rounds %s; all rounds together %.3f%%; first %g s (start-up) %.1f ms of CPU"
              % (label, " ".join("%.3f" % share(r) for r in rs), whole, args.warmup, startup * 1e3))
    per_batch = statistics.median(r["cpu"] / r["batches"] * 1e9 for r in mine if r["batches"])
    rate = statistics.median(r["batches"] / r["wall"] for r in mine)
    print("    per batch: %.0f ns of writer CPU = %.2fx one tqdm.update() call measured above (%.0f batches/s:"
          " start_batch + update_metrics of 5 metrics, then sleep(0.001))" % (per_batch, per_batch / ref, rate))
    if len(codes) == 2:
        base = statistics.median(map(share, got["baseline"]))
        print("    baseline %s, same rounds interleaved: %.3f%% median; ttop / baseline %.2f"
              % (codes[1][1], base, med / base if base else float("inf")))
    tq = [r["tqdm_cpu"] / r["wall"] * 100.0 for r in mine if r["tqdm_cpu"] is not None]
    if tq:
        print("    peer, same loop: tqdm's monitor thread %.3f%% of one core (it wakes every %g s)"
              % (statistics.median(tq), getattr(tqdm, "monitor_interval", 0)))
    else:
        print("    peer, same loop: tqdm's monitor thread not running (monitor_interval=%r)"
              % getattr(tqdm, "monitor_interval", None))
    return ok


def verdict(ok):
    return "PASS" if ok else "FAIL"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200_000, help="calls per timing run (default %(default)s)")
    ap.add_argument("--repeats", type=int, default=21, help="timing runs per candidate (default %(default)s)")
    ap.add_argument("--thread-seconds", type=float, default=30.0,
                    help="writer thread: seconds measured per round, after the start-up (default %(default)s)")
    ap.add_argument("--warmup", type=float, default=10.0,
                    help="writer thread: seconds of start-up left out of each round (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="writer thread: rounds (default %(default)s), median reported")
    ap.add_argument("--baseline", metavar="DIR",
                    help="another checkout's root (e.g. a git worktree of an older commit): its writer thread is "
                         "measured in the same rounds, interleaved")
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
            failed |= not writer_thread(args, ref)
    print("overall: %s" % ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
