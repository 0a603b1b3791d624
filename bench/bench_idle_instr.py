#!/usr/bin/env python3
"""Instructions of one steady cycle of the monitor (callgrind) with 20 live
runs: what ``bench_idle.py`` and ``bench_headless.py`` time, counted instead,
a measure the other programs on a shared machine do not disturb.

``--runs`` live ``examples/demo_job.py`` runs (one batch a second). Counted
under ``valgrind --tool=callgrind``, each in a private tmux pane (200x50):

* ui: ``ttop FOLDER -i 2`` (the curses monitor: collector cycle, frame made
  in the collector's listener, paint and ``doupdate`` in the UI thread);
* headless: ``ttop FOLDER --headless -i 2 --csv-dir TMP``;
* top: ``top -d 2 -n K``, the peer (one screen of every process each cycle).

ttop's collector thread runs W + K cycles 2 s apart (one cycle, a 2 s sleep:
the runs write two new file versions in between, as at ``-i 2``), then the
process ends (``os._exit``) 1 s after the last one (its paint). Callgrind
starts with instrumentation off (``--instr-atstart=no``) and the harness
switches it on (``callgrind_control -i on``) after W = 2 warm-up cycles: the
count is that of the K = 5 steady cycles alone (collector, frame, paint),
divided by K. (Counting K = 7 less K = 1 instead, as before, also counts
how much longer the start-up's parse of the growing files takes in the
later run.) top cannot be switched that way: its cycle is the count of
``top -n 7`` less ``top -n 1``, divided by 6.

    python bench/bench_idle_instr.py [--baseline DIR] [--modes ui,headless,top] [--steady K]

``--steady K``: count K steady cycles (default 5); over ~30 (a minute of
the monitor) the count includes the cyclic garbage collector's rarer
collections of the older generations, which 5 cycles seldom hold.

``--baseline DIR``: also count another checkout's ttop (e.g. a ``git
worktree`` of an older commit), interleaved with this one. Prints millions
of instructions per cycle and the ratios; exits 2 when valgrind or tmux is
missing.
"""
from __future__ import annotations

import argparse
import compileall
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _runs import ROOT, start_demo, stop_all  # noqa: E402
from bench_idle import Tmux, quote  # noqa: E402

CYCLES = (1, 7)  # top
WARMUP, STEADY = 2, 5  # ttop
GAP = 2.0

HARNESS = r"""
import os, subprocess, sys, time
code, w, k, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sys.path.insert(0, code)
from ttop.collect import collector as C

def _loop(self):
    for i in range(w + k):
        if i == w:  # the steady cycles from here on are counted
            subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], stdout=subprocess.DEVNULL)
        self._collect_some()
        time.sleep(gap)
    time.sleep(1.0)  # the last paint
    os._exit(0)

C.Collector._loop = _loop
from ttop.cli import main
sys.exit(main(sys.argv[5:]))
"""


def count(tmux: Tmux, argv: List[str], cwd: str, out: str, at_start: bool = True) -> int:
    """Instructions of ``argv`` under callgrind in a tmux pane (``at_start``
    False: from when the program switches instrumentation on)."""
    log = out + ".log"
    if os.path.exists(log):
        os.unlink(log)
    session, _ = tmux.start(quote(["valgrind", "--tool=callgrind", "--dump-instr=no", "--callgrind-out-file=/dev/null",
                                   "--instr-atstart=" + ("yes" if at_start else "no"), "--log-file=" + log] + argv),
                            cwd)
    deadline = time.monotonic() + 600
    try:
        while True:
            time.sleep(0.5)
            try:
                with open(log) as f:
                    m = re.search(r"Collected : (\d+)", f.read())
            except OSError:
                m = None
            if m:
                return int(m.group(1))
            if time.monotonic() > deadline:
                raise SystemExit("bench_idle_instr: no count from %s:\n%s" % (argv, tmux.capture(session)))
    finally:
        tmux.stop(session)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--baseline", help="another checkout's root, counted too")
    ap.add_argument("--modes", default="ui,headless,top")
    ap.add_argument("--steady", type=int, default=STEADY, help="steady cycles counted (default: %(default)s)")
    a = ap.parse_args()
    steady = max(1, a.steady)
    for tool in ("valgrind", "callgrind_control", "tmux", "top"):
        if shutil.which(tool) is None:
            print("bench_idle_instr: %s is not installed" % tool)
            return 2
    modes = a.modes.split(",")
    codes = [("ttop", ROOT)] + ([("baseline", os.path.abspath(a.baseline))] if a.baseline else [])
    for _, code in codes:  # bytecode compiled first, as an installed package has it
        compileall.compile_dir(os.path.join(code, "ttop"), quiet=1)
    tmp = tempfile.mkdtemp(prefix="ttop-bench-idle-instr-")
    folder = os.path.join(tmp, "progress")
    os.makedirs(folder)
    env = dict(os.environ, PYTHONHASHSEED="0")
    if "UTF-8" not in (env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "").upper().replace("UTF8", "UTF-8"):
        env["LANG"] = "C.UTF-8"
        env.pop("LC_ALL", None)
    env.pop("TMUX", None)
    env.pop("PYTHONPATH", None)
    tmux = Tmux(env)
    runs: list = []
    got: Dict[str, Dict[int, int]] = {}
    try:
        runs = start_demo(folder, a.runs)
        time.sleep(2)  # past their loading phase
        for mode in modes:
            if mode == "top":
                for k in CYCLES:
                    n = count(tmux, ["top", "-d", str(GAP), "-n", str(k)], tmp, os.path.join(tmp, "cg"))
                    got.setdefault("top", {})[k] = n
                continue
            for label, code in codes:  # interleaved
                argv = ([sys.executable, "-c", HARNESS, code, str(WARMUP), str(steady), str(GAP), folder, "-i", str(GAP)]
                        + (["--headless", "--csv-dir", os.path.join(tmp, "csv")] if mode == "headless" else []))
                got.setdefault("%s %s" % (label, mode), {})[steady] = count(
                    tmux, argv, code, os.path.join(tmp, "cg"), at_start=False)
    finally:
        tmux.close()
        stop_all([p for _, p in runs])
        shutil.rmtree(tmp, ignore_errors=True)
    per = {label: (d[CYCLES[1]] - d[CYCLES[0]]) / float(CYCLES[1] - CYCLES[0]) if label == "top" else d[steady] / steady
           for label, d in got.items()}
    top: Optional[float] = per.get("top")
    print("bench_idle_instr: one steady cycle (-i %g; ttop: the mean of %d), %d live demo runs, callgrind, "
          "millions of instructions" % (GAP, steady, a.runs))
    for label, n in per.items():
        print("  %-18s %7.2fM%s" % (label, n / 1e6, "  (%.2fx top)" % (n / top) if top and label != "top" else ""))
    for mode in modes:
        if "ttop " + mode in per and "baseline " + mode in per:
            print("  %s: ttop / baseline = %.3f" % (mode, per["ttop " + mode] / per["baseline " + mode]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
