#!/usr/bin/env python3
"""Instructions of the monitor's frame (the main screen's lines made from a
snapshot: rows, cells, header, footer) with 20 live runs, counted under
callgrind on recorded data, so the figure does not move with what the runs
or the machine do meanwhile (``bench_idle_instr.py`` counts whole cycles).

Records the progress files of ``--runs`` live ``examples/demo_job.py`` runs
once a second for 14 s, then, per checkout, builds a snapshot of RUNNING runs
from each recorded version and counts ``main_frame`` (200x50) over the
snapshots: the count of 12 frames less that of 2, divided by 10. The peer:
``top -d 2`` counted per cycle the same way (K = 7 less K = 1, in a tmux pane).

    python bench/bench_idle_frame_instr.py [--baseline DIR]

Prints millions of instructions per frame and the ratios; exits 2 when
valgrind or tmux is missing.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _runs import ROOT, start_demo, stop_all  # noqa: E402
from bench_idle import Tmux  # noqa: E402
from bench_idle_instr import count  # noqa: E402

FRAMES = (2, 12)

HARNESS = r"""
import json, os, sys
code, recorded, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, code)
from ttop.collect.snapshot import RunResources, RunSnapshot, Snapshot
from ttop.view.screen import main_frame
from ttop.view.state import ViewState
snaps = []
with open(recorded) as f:
    versions = json.load(f)
for seq, ver in enumerate(versions, 1):
    runs = []
    for name, d in sorted(ver.items()):
        res = RunResources(cpu_percent=37.0 + seq, rss_bytes=(25 << 20) + seq, num_procs=3, num_threads=8,
                           source="local")
        runs.append(RunSnapshot(key=name[:-5], path="/p/" + name, data=d, run_name=d["run_name"], status="RUNNING",
                                reported_status="RUNNING", status_inferred=False, stale=False, pid=d.get("pid"),
                                host="vm", resources=res, alive=True))
    snaps.append(Snapshot(seq=seq, taken_at=d["updated_at"], folder="/p", runs=tuple(runs)))
state = ViewState()
for s in snaps[:n]:
    main_frame(s, state, 200, 50)
os._exit(0)
"""


def record(folder: str, out: str, versions: int) -> None:
    got: List[Dict[str, dict]] = []
    while len(got) < versions:
        ver = {}
        for name in sorted(os.listdir(folder)):
            if name.endswith(".json") and not name.startswith("."):
                try:
                    with open(os.path.join(folder, name)) as f:
                        ver[name] = json.load(f)
                except (OSError, ValueError):  # replaced meanwhile: the next version has it
                    pass
        got.append(ver)
        time.sleep(1.0)
    with open(out, "w") as f:
        json.dump(got, f)


def frame_count(code: str, recorded: str, n: int, env: Dict[str, str]) -> int:
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c",
                        HARNESS, code, recorded, str(n)], env=env, cwd=code, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, universal_newlines=True)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if m is None:
        raise SystemExit("bench_idle_frame_instr: no count for %s:\n%s" % (code, r.stderr[-2000:]))
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--baseline", help="another checkout's root, counted too")
    a = ap.parse_args()
    for tool in ("valgrind", "tmux", "top"):
        if shutil.which(tool) is None:
            print("bench_idle_frame_instr: %s is not installed" % tool)
            return 2
    codes = [("ttop", ROOT)] + ([("baseline", os.path.abspath(a.baseline))] if a.baseline else [])
    for _, code in codes:
        compileall.compile_dir(os.path.join(code, "ttop"), quiet=1)
    tmp = tempfile.mkdtemp(prefix="ttop-bench-frame-instr-")
    folder = os.path.join(tmp, "progress")
    os.makedirs(folder)
    recorded = os.path.join(tmp, "recorded.json")
    env = dict(os.environ, PYTHONHASHSEED="0", LANG="C.UTF-8")
    env.pop("LC_ALL", None)
    env.pop("TMUX", None)
    env.pop("PYTHONPATH", None)
    tmux = Tmux(env)
    runs: list = []
    got: Dict[str, Dict[int, int]] = {}
    try:
        runs = start_demo(folder, a.runs)
        time.sleep(2)  # past their loading phase
        record(folder, recorded, FRAMES[1])
        for k in (1, 7):
            got.setdefault("top", {})[k] = count(tmux, ["top", "-d", "2", "-n", str(k)], tmp, os.path.join(tmp, "cg"))
    finally:
        tmux.close()
        stop_all([p for _, p in runs])
    try:
        for n in FRAMES:  # interleaved
            for label, code in codes:
                got.setdefault(label, {})[n] = frame_count(code, recorded, n, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    top = (got["top"][7] - got["top"][1]) / 6.0
    print("bench_idle_frame_instr: one frame (200x50) of %d live demo runs, callgrind, millions of instructions"
          % a.runs)
    per = {label: (got[label][FRAMES[1]] - got[label][FRAMES[0]]) / float(FRAMES[1] - FRAMES[0])
           for label, _ in codes}
    for label, n in per.items():
        print("  %-10s frame %7.2fM  (%.2fx a cycle of top)" % (label, n / 1e6, n / top))
    print("  top        cycle %7.2fM" % (top / 1e6))
    if "baseline" in per:
        print("  ttop / baseline = %.3f" % (per["ttop"] / per["baseline"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
