"""Many runs: a folder of 50,000 progress files (10 live runs, the rest ended)
and ``--once`` / ``--json`` over 10,000.

Goals (exit status 1 when one is missed):

* collector over 50,000 files: the first snapshot with every live run within
  1 s of starting to collect (the thread's way: newest files first) when the
  archive index of an earlier start is there (without it, the first start of
  all, the figure is printed too), steady cycle median <= 100 ms, RSS <= 300 MB;
* ``ttop FOLDER --once`` over 10,000 files (``--live`` of them live runs,
  the rest ended) <= 1 s wall, with what an earlier ``--once`` left in the
  cache folder (the archive index and the kept rows of ended runs; without
  them, ``TTOP_ARCHIVE_INDEX=0``, is printed too), and ``--once --json``
  streams (its first byte comes well before its last).

The cache goes to a temporary ``XDG_CACHE_HOME`` (one for each checkout). Beside each wall-clock
figure of ``--once`` the CPU time it used (user + system, its children's
included) is printed: on a busy machine the wall clock mostly measures the
waits. ``--compare ROOT`` runs that checkout's ttop (e.g. a worktree of the
code before a change) in the same rounds.

The peer measured in the same run is ``top -b -n 1`` (one screen of every
process on the machine), the figure the ratios are given against.

    python bench/bench_many.py [--files 50000] [--once-files 10000] [--cycles 10] [--compare ROOT]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _runs import ROOT, fill_archive, start_live, stop_all  # noqa: E402

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[2])
t0 = time.perf_counter()
from ttop.collect.collector import Collector
c = Collector(sys.argv[1], interval=2.0, gpu=False, tpu=False)
first = None
while True:
    s = c._collect_some()          # what the collector thread does
    lives = sum(1 for r in s.runs if r.key.startswith("live") and r.status == "RUNNING")
    if first is None and lives >= int(sys.argv[3]):
        first = time.perf_counter() - t0
    if not c._pending:
        break
loaded = time.perf_counter() - t0
cycles = []
for _ in range(int(sys.argv[4])):
    time.sleep(0.5)
    t = time.perf_counter()
    s = c.collect()
    cycles.append(time.perf_counter() - t)
rss = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
notify = c._scanner.notifying
c.stop()
print(json.dumps({"first": first, "loaded": loaded, "cycles": cycles, "rss": rss, "runs": len(s.runs),
                  "notify": notify, "indexed": c._scanner.total_indexed}))
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def top_once():
    """(wall seconds, CPU seconds) of ``top -b -n 1``."""
    c, t = _children_cpu(), time.perf_counter()
    subprocess.run(["top", "-b", "-n", "1"], stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t, _children_cpu() - c


def timed_once(folder: str, *extra: str, index: bool = True, root: str = ROOT):
    """(wall seconds to the first byte, to the end, bytes, CPU seconds) of
    ttop --once (``root``: the checkout whose ttop runs)."""
    env = dict(os.environ, COLUMNS="120", PYTHONPATH=root, TTOP_ARCHIVE_INDEX="1" if index else "0")
    if root != ROOT:  # a cache of its own: one checkout's kept rows would be thrown away by the other's
        env["XDG_CACHE_HOME"] = os.environ["XDG_CACHE_HOME"] + "-compare"
    c, t = _children_cpu(), time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "ttop", folder, "--once", *extra], stdout=subprocess.PIPE,
                         env=env, cwd=root)  # -m: the working folder comes first on the path
    assert p.stdout is not None
    first = p.stdout.read(1)
    t_first = time.perf_counter() - t
    rest = p.stdout.read()
    p.wait()
    return t_first, time.perf_counter() - t, len(first) + len(rest), _children_cpu() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=50000)
    ap.add_argument("--once-files", type=int, default=10000)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--live", type=int, default=10)
    ap.add_argument("--compare", metavar="ROOT", help="also time this checkout's ttop --once, in the same rounds")
    ap.add_argument("--once-only", action="store_true", help="only the --once figures")
    ap.add_argument("--rounds", type=int, default=3, help="--once runs of each kind (medians)")
    args = ap.parse_args()
    ok = True
    top = tempfile.mkdtemp(prefix="ttop-many-")
    os.environ["XDG_CACHE_HOME"] = os.path.join(top, "cache")
    procs = []
    try:
        if not args.once_only:
            ok = collector_figures(args, top)
        small = os.path.join(top, "small")
        os.mkdir(small)
        fill_archive(small, args.once_files - args.live)
        procs = [p for _, p in start_live(small, args.live, interval=1.0)]
        ok = once_figures(args, small) and ok
    finally:
        stop_all(procs)
        shutil.rmtree(top, ignore_errors=True)
    return 0 if ok else 1


def collector_figures(args: argparse.Namespace, top: str) -> bool:
    ok = True
    procs = []
    try:
        big = os.path.join(top, "big")
        os.mkdir(big)
        fill_archive(big, args.files - args.live)
        live = start_live(big, args.live, interval=1.0)
        procs = [p for _, p in live]
        import json

        runs = []
        for _ in range(2):  # the first start of all, then one with the index it left
            out = subprocess.run([sys.executable, "-c", CHILD, big, ROOT, str(args.live), str(args.cycles)],
                                 capture_output=True, text=True, timeout=1800)
            if out.returncode != 0:
                print(out.stderr)
                return False
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        cold, r = runs
        peers = [top_once()[0] for _ in range(3)]
        peer = statistics.median(peers)
        med = statistics.median(r["cycles"])
        print("collector, %d files (%d live), change notification %s:" % (r["runs"], args.live,
                                                                          "on" if r["notify"] else "off"))
        print("  first snapshot with every live run: %.2f s with the archive index (%d ended runs taken from it)"
              "   (top -b -n 1: %.2f s, ratio %.1fx)" % (r["first"], r["indexed"], peer, r["first"] / peer))
        print("  ... without it (the first start): %.2f s (ratio %.1fx)" % (cold["first"], cold["first"] / peer))
        print("  whole folder read: %.1f s with the index, %.1f s without" % (r["loaded"], cold["loaded"]))
        print("  steady cycle: median %.1f ms (min %.1f, max %.1f, %d cycles)   (ratio to top -b -n 1: %.2fx)"
              % (med * 1000, min(r["cycles"]) * 1000, max(r["cycles"]) * 1000, len(r["cycles"]), med / peer))
        print("  RSS: %.0f MB" % (r["rss"] / 1e6))
        for good, what in ((r["first"] <= 1.0, "first snapshot with the live runs <= 1 s"),
                           (med <= 0.1, "steady cycle <= 100 ms"), (r["rss"] <= 300e6, "RSS <= 300 MB")):
            print("%s  %s" % ("PASS" if good else "FAIL", what))
            ok = ok and good
    finally:
        stop_all(procs)
    return ok


def once_figures(args: argparse.Namespace, small: str) -> bool:
    ok = True
    timed_once(small)  # warm the page cache; leaves the index and the kept rows
    roots = [ROOT] + ([os.path.abspath(args.compare)] if args.compare else [])
    if args.compare:
        timed_once(small, root=roots[1])
    table: dict = {r: [] for r in roots}
    for _ in range(args.rounds):  # interleaved: the same load for both
        for r in roots:
            table[r].append(timed_once(small, root=r))
    js = [timed_once(small, "--json") for _ in range(args.rounds)]
    bare = [timed_once(small, index=False) for _ in range(args.rounds)]
    peers = [top_once() for _ in range(args.rounds)]
    peer, peer_cpu = statistics.median(w for w, _ in peers), statistics.median(c for _, c in peers)

    def med(runs, i):
        return statistics.median(x[i] for x in runs)

    t_table, c_table = med(table[ROOT], 1), med(table[ROOT], 3)
    t_json, first_json = med(js, 1), med(js, 0)
    print("--once, %d files (%d live):" % (args.once_files, args.live))
    print("  table: %.2f s wall, %.2f s CPU   (top -b -n 1: %.2f s wall, %.2f s CPU; ratio %.1fx wall, %.1fx CPU)"
          % (t_table, c_table, peer, peer_cpu, t_table / peer, c_table / peer_cpu if peer_cpu else float("inf")))
    print("  ... without the cache (TTOP_ARCHIVE_INDEX=0): %.2f s wall, %.2f s CPU" % (med(bare, 1), med(bare, 3)))
    if args.compare:
        o_t, o_c = med(table[roots[1]], 1), med(table[roots[1]], 3)
        print("  --compare ttop (%s): %.2f s wall, %.2f s CPU   (ratio this/compare: %.2f wall, %.2f CPU)"
              % (args.compare, o_t, o_c, t_table / o_t, c_table / o_c))
    print("  --json: %.2f s wall (first byte at %.2f s, %.0f MB), %.2f s CPU"
          % (t_json, first_json, js[0][2] / 1e6, med(js, 3)))
    for good, what in ((t_table <= 1.0, "--once <= 1 s"),
                       (first_json < 0.9 * t_json, "--json streams (first byte before the end)")):
        print("%s  %s" % ("PASS" if good else "FAIL", what))
        ok = ok and good
    return ok


if __name__ == "__main__":
    sys.exit(main())
