"""Instructions of TrainingMonitor's writer thread per tick (callgrind): what
``bench_monitor.py`` times as a share of a core, counted instead, a measure
the other programs on a shared machine do not disturb.

A training loop at default settings (``bench_monitor.py``'s: 5 metrics per
``update_metrics``, two tracked variables) gives ``U`` updates between two
ticks of the writer. The writer thread is the monitor's own ``_run`` loop;
only its wait is replaced by a hand-over with the loop (a tick runs once the
loop has given its ``U`` updates), and the monitor's clocks move 1 s per
tick whatever valgrind's pace (a resource sample every 5 ticks, as at the
default ``resource_interval``). Each count is the writer thread's alone
(``--separate-threads=yes``); a tick's count is the difference between a
run of 25 ticks and a run of 5, divided by 20 (the thread's start: psutil's
import, the first samples, cancel out).

* ``U=1000`` (a batch every ~1 ms, ``bench_monitor.py``'s loop) and ``U=1``
  (a batch per second or slower: the fixed costs of a tick);
* one compaction of the history file (rewritten whole once 1 MiB was
  appended: every ~235 ticks at ``U=1000``) after 80 ticks at ``U=1000``
  (a full recent part, 1,000 entries per metric, and some old buckets): a
  run of 80 ticks whose last one compacts, less a run of 80 that does not.

Peer, counted the same way: ``U`` calls of ``tqdm.update()`` (what a
progress bar costs the loop for the same batches).

    python bench/bench_monitor_instr.py [--baseline DIR]

``--baseline DIR``: also count another checkout's ttop (e.g. a ``git
worktree`` of an older commit), in the same run. Prints thousands of
instructions; exits 2 when valgrind is missing. About 5 minutes per checkout.
"""
from __future__ import annotations

import argparse
import compileall
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HARNESS = r"""
import os, sys, threading, time, types
code, folder, mode, ticks, upt, compact = sys.argv[1:7]
ticks, upt, compact = int(ticks), int(upt), compact == "1"
sys.path.insert(0, code)
if mode == "tqdm":
    from tqdm import tqdm
    bar = tqdm(total=10**12, file=open(os.devnull, "w"), mininterval=0.1)
    for t in range(ticks):
        for i in range(upt):
            bar.update()
    sys.stdout.flush()
    os._exit(0)
import ttop.monitor.core as core
from ttop import TrainingMonitor
now = [0.0]
class Clock:
    monotonic = staticmethod(lambda: now[0])
    time = staticmethod(lambda: 1.7e9 + now[0])
shim = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
shim.monotonic = Clock.monotonic
core.time = shim  # the writer loop's own clock (resource samples every 5 ticks)
class Pace:  # the writer's wait: returns once the loop has given a tick's updates
    def __init__(self):
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
    def set(self):
        pass
    def clear(self):
        pass
    def is_set(self):
        return False
    def wait(self, timeout=None):
        self.done.release()
        self.go.acquire()
        return False
m = TrainingMonitor(folder=folder, run_name="instr", handle_signals=False, clock=Clock)
pace = m._wake = Pace()
m.track_variables({"lr": 0.01, "batch_size": 32})
m.start_monitoring()
m.start_epoch(1, total_epochs=1)
m.start_phase("train", total_batches=10**9)
pace.done.acquire()  # the first tick
loss = 2.0
for t in range(ticks):
    for i in range(upt):
        m.start_batch()
        loss *= 0.99999
        m.update_metrics(loss=loss, acc=1.0 - loss / 2, lr=0.01, grad_norm=loss * 3, tput=512.0)
    now[0] += 1.0
    if compact and t == ticks - 1:
        m._mlog._appended = 1 << 40  # this tick compacts the history file
    pace.go.release()
    pace.done.acquire()
sys.stdout.flush()
os._exit(0)
"""


def thread_counts(work: str, args: List[str]) -> Dict[int, int]:
    """Instructions of each thread (1: the main one) of ``python -c
    args...`` run under callgrind in the folder ``work`` (removed after)."""
    out = os.path.join(work, "cg.out")
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONPATH", None)
    subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=no", "--separate-threads=yes",
                    "--callgrind-out-file=" + out, "--log-file=" + os.path.join(work, "log"),
                    sys.executable, "-c"] + args, check=True, env=env)
    totals: Dict[int, int] = {}
    for path in glob.glob(out + "*"):
        with open(path) as f:
            text = f.read()
        thread = re.search(r"^thread: (\d+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if thread and total:
            totals[int(thread.group(1))] = int(total.group(1))
    shutil.rmtree(work)
    if not totals:
        raise SystemExit("callgrind counted nothing (%s)" % " ".join(args[1:]))
    return totals


def checkouts(name: str, baseline: Optional[str]) -> Optional[List[Tuple[str, str]]]:
    """``[(label, checkout)]``: this one and ``baseline``, their bytecode
    compiled as an installed package has it; None (said) without valgrind."""
    if shutil.which("valgrind") is None:
        print("%s: valgrind is not installed" % name)
        return None
    codes = [("ttop", ROOT)] + ([("baseline", os.path.abspath(baseline))] if baseline else [])
    for _, code in codes:
        compileall.compile_dir(os.path.join(code, "ttop"), quiet=1)
    return codes


def count(code: str, mode: str, ticks: int, upt: int, compact: bool, tmp: str) -> int:
    """Instructions of the writer thread (mode "ttop") or of the whole
    process (mode "tqdm")."""
    work = tempfile.mkdtemp(dir=tmp)
    folder = os.path.join(work, "progress")
    os.mkdir(folder)
    totals = thread_counts(work, [HARNESS, code, folder, mode, str(ticks), str(upt), "1" if compact else "0"])
    if mode == "tqdm":
        return sum(totals.values())
    if len(totals) < 2:
        raise SystemExit("no writer thread counted (%s)" % code)
    return totals[2]  # thread 1: the loop; 2: the monitor's writer


def figures(code: str, tmp: str, pool: concurrent.futures.Executor) -> List[Tuple[str, float]]:
    jobs = {
        "u1000": [pool.submit(count, code, "ttop", n, 1000, False, tmp) for n in (25, 5)],
        "u1": [pool.submit(count, code, "ttop", n, 1, False, tmp) for n in (25, 5)],
        "compact": [pool.submit(count, code, "ttop", 80, 1000, c, tmp) for c in (True, False)],
    }
    got = {k: [f.result() for f in v] for k, v in jobs.items()}
    return [
        ("tick, 1,000 updates", (got["u1000"][0] - got["u1000"][1]) / 20.0),
        ("tick, 1 update", (got["u1"][0] - got["u1"][1]) / 20.0),
        ("one compaction", float(got["compact"][0] - got["compact"][1])),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="another checkout's root, counted too")
    ap.add_argument("--jobs", type=int, default=2, help="valgrind runs at once (default %(default)s)")
    args = ap.parse_args()
    codes = checkouts("bench_monitor_instr", args.baseline)
    if codes is None:
        return 2
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        peer = [pool.submit(count, ROOT, "tqdm", n, u, False, tmp) for u in (1000, 1) for n in (25, 5)]
        got = [(label, figures(code, tmp, pool)) for label, code in codes]
        p = [f.result() for f in peer]
    tq = {"tick, 1,000 updates": (p[0] - p[1]) / 20.0, "tick, 1 update": (p[2] - p[3]) / 20.0}
    print("bench_monitor_instr: the writer thread (callgrind, thousands of instructions)")
    for label, rows in got:
        for what, n in rows:
            peer_text = "  (%.2fx the peer)" % (n / tq[what]) if what in tq else ""
            print("  %-10s %-22s %10.1fk%s" % (label, what, n / 1e3, peer_text))
    for what, n in tq.items():
        print("  %-10s %-22s %10.1fk  (tqdm.update() per update, whole process)" % ("peer", what, n / 1e3))
    if len(got) == 2:
        for (what, a), (_, b) in zip(got[0][1], got[1][1]):
            print("  ttop / baseline, %-22s %.3f" % (what + ":", a / b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
