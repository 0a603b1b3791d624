"""Key press to changed screen, measured from outside the program.

ttop runs in a tmux pane (160x50, ``escape-time 0``; see ``_tmux.py``) on a
folder of ``--runs`` runs (default 1,000: ``--live`` real writer processes,
10 by default, and ended runs) with the collector at ``-i 0.2``. Each press
is ``tmux send-keys``; its time is until ``capture-pane`` first shows the
screen the key asked for:

* main table: Down, until the reverse-video (selected) row is the next run;
* detail view (Enter on a run): ``l``, until the key line says the other
  scale (``l log`` / ``l lin``).

The harness's floor is the same measurement of a program that writes each
key back as soon as it reads it (Python, raw mode), in the same pane; its
median is subtracted. A peer in the same run: htop (``-d 100``) moving its
selection with Down, until the screen changed.

    python bench/bench_keys.py [--presses 200] [--detail-presses 100] [--runs 1000] [--baseline DIR]

``--baseline DIR``: also measure the ttop of another checkout (e.g. a
``git worktree`` of an older commit) in the same run, on the same folder.

Prints median and p95 (less the floor) and exits 1 when the main table's
p95 is over 20 ms or the detail view's over 50 ms.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import sys
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _runs  # noqa: E402
from _tmux import Tmux  # noqa: E402

MAIN_GOAL_MS = 20.0
DETAIL_GOAL_MS = 50.0
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_ESC = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ECHO = "import os, tty; tty.setraw(0); [os.write(1, os.read(0, 1)) for _ in iter(int, 1)]"


def selected_name(tm: Tmux) -> Optional[str]:
    """The first word of the row drawn in reverse video."""
    for line in tm.cmd("capture-pane -p -e -t bench"):
        m = _SGR.search(line)
        if m and "7" in m.group(1).split(";"):
            words = _ESC.sub("", line).split()
            if words and words[0] != "Run":
                return words[0]
    return None


def percentile(xs: List[float], q: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def floor_times(tm: Tmux, presses: int) -> List[float]:
    tm.launch("exec %s -c %s" % (shlex.quote(sys.executable), shlex.quote(ECHO)))
    time.sleep(0.5)
    out = []
    for i in range(presses):
        want = i + 1
        t0 = time.perf_counter()
        tm.send_keys("x")
        t1 = tm.wait_screen(lambda s, want=want: s.count("x") >= want)
        out.append((t1 - t0) * 1000.0)
        if want >= 1000:
            break
    tm.stop()
    return out


def main_table_times(tm: Tmux, presses: int) -> List[float]:
    out = []
    prev = selected_name(tm)
    for _ in range(presses):
        seen = [prev]

        def moved(prev=prev, seen=seen) -> bool:
            seen[0] = selected_name(tm)
            return seen[0] is not None and seen[0] != prev

        t0 = time.perf_counter()
        tm.send_keys("Down")
        t1 = tm.wait(moved, why=lambda prev=prev: "the selection never moved from %s" % prev)
        out.append((t1 - t0) * 1000.0)
        prev = seen[0]
    return out


def detail_times(tm: Tmux, presses: int) -> List[float]:
    tm.send_keys("Enter")
    tm.wait_screen(lambda s: "Esc back" in s and "l lin" in s)
    time.sleep(1.0)
    out = []
    log = False
    for _ in range(presses):
        log = not log
        want = "l log" if log else "l lin"
        t0 = time.perf_counter()
        tm.send_keys("l")
        t1 = tm.wait_screen(lambda s, want=want: want in s)
        out.append((t1 - t0) * 1000.0)
    tm.send_keys("Escape")
    return out


def htop_times(tm: Tmux, presses: int) -> List[float]:
    tm.launch("exec htop -d 100")
    tm.wait_screen(lambda s: "Load average" in s and "PID" in s)
    time.sleep(1.5)
    tm.send_keys("Home")
    time.sleep(0.5)
    out = []
    for _ in range(presses):
        before = "\n".join(tm.cmd("capture-pane -p -e -t bench"))
        t0 = time.perf_counter()
        tm.send_keys("Down")
        t1 = tm.wait(lambda before=before: "\n".join(tm.cmd("capture-pane -p -e -t bench")) != before)
        out.append((t1 - t0) * 1000.0)
    tm.stop()
    return out


def report(name: str, xs: List[float], floor: float, goal: Optional[float] = None) -> float:
    med, p95 = statistics.median(xs) - floor, percentile(xs, 95) - floor
    extra = "" if goal is None else "   goal p95 <= %.0f ms: %s" % (goal, "OK" if p95 <= goal else "MISSED")
    print("  %-34s median %6.1f  p95 %6.1f   [raw median %6.1f, p95 %6.1f, n=%d]%s" % (
        name, med, p95, statistics.median(xs), percentile(xs, 95), len(xs), extra))
    return p95


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--detail-presses", type=int, default=100)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--live", type=int, default=10)
    ap.add_argument("--interval", default="0.2")
    ap.add_argument("--no-htop", action="store_true")
    ap.add_argument("--baseline", metavar="DIR", help="another checkout's ttop, measured in the same run")
    args = ap.parse_args()

    here, tmp, folder = _runs.first_screen_setup("ttop-bench-keys-", [args.baseline] if args.baseline else [])
    live = []
    try:
        _runs.fill_archive(folder, max(0, args.runs - args.live))
        live = _runs.start_live(folder, args.live)
        def command(root: str) -> str:
            # python -m puts the working folder first on the path: start there
            argv = ["env", "PYTHONPATH=" + root, sys.executable, "-m", "ttop"]
            return "cd %s && exec %s %s -i %s" % (shlex.quote(root), " ".join(shlex.quote(a) for a in argv),
                                                  shlex.quote(folder), args.interval)

        print("machine: %d CPUs, load %.2f; %d runs (%d live), ttop -i %s; terminal 160x50 in tmux"
              % (os.cpu_count() or 0, os.getloadavg()[0], args.runs, args.live, args.interval))
        times: Dict[str, List[float]] = {}
        with Tmux(cols=160, rows=50) as tm:
            times["floor"] = floor_times(tm, min(args.presses, 200))
            for name, root in [("", here)] + ([("baseline ", os.path.abspath(args.baseline))] if args.baseline else []):
                tm.launch(command(root))
                tm.wait_screen(lambda s: "Run Name" in s and "looking up" not in s, timeout=120)
                time.sleep(3.0)  # past the first cycles over the whole folder
                times[name + "main"] = main_table_times(tm, args.presses)
                times[name + "detail"] = detail_times(tm, args.detail_presses)
                tm.stop()
            if not args.no_htop and shutil.which("htop"):
                times["htop"] = htop_times(tm, min(args.presses, 100))
        floor = statistics.median(times["floor"])
        print("\nkey -> changed screen, ms (harness floor %.1f ms subtracted)" % floor)
        report("floor (echo program)", times["floor"], 0.0)
        p_main = report("ttop main table, Down", times["main"], floor, MAIN_GOAL_MS)
        p_detail = report("ttop detail view, l", times["detail"], floor, DETAIL_GOAL_MS)
        if args.baseline:
            report("baseline ttop main table, Down", times["baseline main"], floor)
            report("baseline ttop detail view, l", times["baseline detail"], floor)
        if "htop" in times:
            p_htop = report("htop -d 100, Down (peer)", times["htop"], floor)
            print("  ratio ttop/htop, main table p95: %.2fx" % (p_main / p_htop if p_htop > 0 else float("inf")))
        print("  load average now %.2f" % os.getloadavg()[0])
        return 0 if p_main <= MAIN_GOAL_MS and p_detail <= DETAIL_GOAL_MS else 1
    finally:
        _runs.stop_all([p for _, p in live])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
