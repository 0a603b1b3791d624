"""Instructions per call of the training loop's calls (callgrind), against
tqdm in the same run: what ``bench_monitor.py`` times, counted instead, a
measure the other programs on a shared machine do not disturb.

Each figure is the loop's thread alone (``--separate-threads=yes``: the
monitor's writer thread is ``bench_monitor_instr.py``'s), for a loop of
``N`` calls less a loop of none, divided by ``N``, less the same for a
bare ``for`` loop (what every call below pays for the loop around it):

* ``start_batch()`` and ``update_metrics(loss=x)`` against one
  ``tqdm.update()`` (goals: <= 0.5x and <= 1.5x);
* ``monitor.track()`` per item against ``tqdm(range(N))`` per item
  (goal: <= 0.5x).

    python bench/bench_hot_instr.py [--baseline DIR] [--calls N]

``--baseline DIR``: also count another checkout's ttop (e.g. a ``git
worktree`` of an older commit), in the same run. Exits 1 when a goal is
missed, 2 when valgrind is missing. About a minute per checkout.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
from typing import Dict

from bench_monitor_instr import checkouts, thread_counts  # (this folder is on the path: the script's own)

HARNESS = r"""
import os, sys
code, folder, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, code)
from tqdm import tqdm
from ttop import TrainingMonitor
devnull = open(os.devnull, "w")
m = TrainingMonitor(folder=folder, run_name="hot", handle_signals=False, gpu=False)
m.start_monitoring()
m.start_phase("train")
bar = tqdm(total=10**12, file=devnull)
x = 0.5
if mode == "start_batch":
    for _ in range(n):
        m.start_batch()
elif mode == "update_metrics":
    for _ in range(n):
        m.update_metrics(loss=x)
elif mode == "tqdm.update":
    for _ in range(n):
        bar.update()
elif mode == "track":
    for _ in m.track(range(n), phase=None):
        pass
elif mode == "tqdm(range)":
    for _ in tqdm(range(n), file=devnull):
        pass
else:
    for _ in range(n):
        pass
devnull.flush()
os._exit(0)
"""

MODES = ("bare", "start_batch", "update_metrics", "tqdm.update", "track", "tqdm(range)")


def count(code: str, mode: str, n: int, tmp: str) -> int:
    """Instructions of the main thread of one harness run."""
    work = tempfile.mkdtemp(dir=tmp)
    return thread_counts(work, [HARNESS, code, work, mode, str(n)])[1]


def per_call(code: str, n: int, tmp: str, pool: concurrent.futures.Executor) -> Dict[str, float]:
    jobs = {mode: [pool.submit(count, code, mode, k, tmp) for k in (n, 0)] for mode in MODES}
    got = {mode: (a.result() - b.result()) / n for mode, (a, b) in jobs.items()}
    return got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="another checkout's root, counted too")
    ap.add_argument("--calls", type=int, default=100_000, help="calls per loop (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=2, help="valgrind runs at once (default %(default)s)")
    args = ap.parse_args()
    codes = checkouts("bench_hot_instr", args.baseline)
    if codes is None:
        return 2
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        got = [(label, per_call(code, args.calls, tmp, pool)) for label, code in codes]
    print("bench_hot_instr: instructions per call, the loop's thread alone (%d calls less none)" % args.calls)
    missed = False
    for label, c in got:
        over = {mode: c[mode] - c["bare"] for mode in MODES}
        tq, tq_iter = over["tqdm.update"], over["tqdm(range)"]
        rows = [("start_batch()", over["start_batch"], tq, 0.5), ("update_metrics(loss=x)", over["update_metrics"], tq, 1.5),
                ("track() per item", over["track"], tq_iter, 0.5)]
        for what, n, peer, goal in rows:
            ok = n <= goal * peer
            missed |= label == "ttop" and not ok
            print("  %-8s %-24s %7.0f  %5.2fx the peer (goal <= %.1fx)%s"
                  % (label, what, n, n / peer, goal, "" if ok else "  MISSED"))
        print("  %-8s peers: tqdm.update() %.0f, tqdm(range) per item %.0f (each over the bare loop's %.0f)"
              % (label, tq, tq_iter, c["bare"]))
    if len(got) == 2:
        a, b = got[0][1], got[1][1]
        for mode in ("start_batch", "update_metrics", "track"):
            print("  ttop / baseline, %-16s %.3f" % (mode + ":", (a[mode] - a["bare"]) / (b[mode] - b["bare"])))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
