"""Instructions of one steady fleet cycle (callgrind): what ``bench_fleet.py``
times, counted instead, a measure the other programs on a shared machine do
not disturb.

1,000 remote runs (``bench_fleet.py``'s files: 10 hosts x 100) in one
folder; before each cycle a separate process (not counted) rewrites every
file, so each cycle reads all of them. The collector runs on a clock that
moves 2 s per cycle whatever valgrind's pace (the same code paths in every
run: no run goes stale because valgrind is slow). Only the steady cycles
are counted: callgrind starts with collection off and counts what runs
inside ``functools.reduce`` (``--toggle-collect``; nothing of ttop's or the
peer's calls it), through which the harness makes each of 7 cycles after 2
uncounted ones (the start, imports, the first reads and the archive's
first look stay out; counting 7 cycles less 1 instead let the start's
share vary by a few per cent from run to run). The peer: reading and
``json.loads`` of every file, counted the same way.

    python bench/bench_fleet_instr.py [--baseline DIR]

``--baseline DIR``: also count another checkout's ttop (e.g. a ``git
worktree`` of an older commit). Each checkout runs with its ttop command's
garbage collector settings (``ttop.collect.readfile.set_process_gc``, where
it has it; Python's defaults before); ``--library-gc``: Python's defaults
for all (the Collector in a library user's process). Prints millions of
instructions per cycle and the ratios; exits 2 when valgrind is missing.
"""
from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WRITE = r"""
import os, sys
root, folder, tick = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, root)
sys.path.insert(0, os.path.join(root, "bench"))
import bench_fleet
from ttop.progress import write_json_atomic
bench_fleet.time.time = lambda: 1.7e9 + tick  # the same bytes in every run
for h in range(10):
    for i in range(100):
        write_json_atomic(os.path.join(folder, bench_fleet._name(h, i)), bench_fleet.doc(h, i, 10 + tick))
"""

HARNESS = r"""
import functools, json, os, subprocess, sys, time
code, writer, folder, mode, k, wroot = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
sys.path.insert(0, code)
from ttop.collect.collector import Collector
if sys.argv[7] == "process":  # the ttop command's own process settings (the monitor, --headless)
    try:
        from ttop.collect.readfile import set_process_gc
    except ImportError:  # older code: Python's defaults
        pass
    else:
        set_process_gc()
names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
def write(tick):
    subprocess.run([sys.executable, "-c", writer, wroot, folder, str(tick)], check=True)
    time.sleep(0.06)  # past the scanner's racy-mtime window
def peer():
    for n in names:
        with open(os.path.join(folder, n), "rb") as f:
            json.loads(f.read())
def counted(fn):  # callgrind counts inside functools.reduce only (--toggle-collect)
    functools.reduce(lambda a, b: fn(), (0, 1))
now = [time.time()]
c = Collector(folder, interval=2.0, gpu=False, tpu=False, clock=lambda: now[0]) if mode == "ttop" else None
for tick in range(WARM + k):
    now[0] += 2.0
    write(1 + tick)
    step = c.collect if c is not None else peer
    if tick < WARM:
        step()
    else:
        counted(step)
if c is not None:
    c.stop()
""".replace("WARM", "2")


#: "process": each code's ttop command's garbage collector settings
#: (ttop.collect.readfile.set_process_gc, where the code has it);
#: "library": Python's defaults, as in a library user's process (--library-gc)
GC = "process"


def count(code: str, mode: str, cycles: int, tmp: str) -> int:
    folder = tempfile.mkdtemp(dir=tmp)
    subprocess.run([sys.executable, "-c", WRITE, ROOT, folder, "0"], check=True)  # the same files for any code
    log = os.path.join(tmp, "callgrind.log")
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONPATH", None)
    subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=no", "--callgrind-out-file=/dev/null",
                    "--collect-atstart=no", "--toggle-collect=functools_reduce", "--log-file=" + log,
                    sys.executable, "-c", HARNESS, code, WRITE, folder, mode, str(cycles), ROOT, GC],
                   check=True, env=env)
    shutil.rmtree(folder)
    with open(log) as f:
        m = re.search(r"Collected : (\d+)", f.read())
    if not m or not int(m.group(1)):
        raise SystemExit("callgrind counted nothing (no symbol functools_reduce?): see %s" % log)
    return int(m.group(1))


CYCLES = 7


def per_cycle(code: str, mode: str, tmp: str) -> float:
    return count(code, mode, CYCLES, tmp) / float(CYCLES)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="another checkout's root, counted too")
    ap.add_argument("--library-gc", action="store_true",
                    help="Python's garbage collector defaults (a library user's process), not the ttop command's")
    args = ap.parse_args()
    global GC
    GC = "library" if args.library_gc else "process"
    if shutil.which("valgrind") is None:
        print("bench_fleet_instr: valgrind is not installed")
        return 2
    codes = [("ttop", ROOT)] + ([("baseline", os.path.abspath(args.baseline))] if args.baseline else [])
    for _, code in codes:  # bytecode compiled first, as an installed package has it
        compileall.compile_dir(os.path.join(code, "ttop"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        peer = per_cycle(ROOT, "peer", tmp)
        got = [(label, per_cycle(code, "ttop", tmp)) for label, code in codes]
    print("bench_fleet_instr: one steady cycle, 1,000 remote files all rewritten (callgrind, millions of instructions;"
          " garbage collector: %s)" % ("Python's defaults" if GC == "library" else "as the ttop command sets it"))
    for label, n in got:
        print("  %-10s %7.1fM  (%.2fx the peer)" % (label, n / 1e6, n / peer))
    print("  %-10s %7.1fM  (read + json.loads of every file)" % ("peer", peer / 1e6))
    if len(got) == 2:
        print("  ttop / baseline: %.3f" % (got[0][1] / got[1][1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
