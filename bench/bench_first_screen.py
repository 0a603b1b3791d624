"""Launch to first complete screen: ttop against btop, top and htop.

Each program is started in the same tmux pane (160x50, ``escape-time 0``,
tmux's own TERM; see ``_tmux.py``), in turn within each round (the order
rotates), and the screen is looked at after each output until it is
complete:

* ttop (``ttop DIR``, the installed console script): the header, every run's
  name and the key line;
* btop: its cpu, mem and proc boxes with process rows;
* htop: the meters (load average, uptime), the column header, process rows
  and the key bar;
* top: the summary (Tasks), the column header and process rows;
* python: a bare interpreter printing a line (what any Python program pays
  before its first line of code), for reference;
* python-least: ``_least_monitor.py``, the least a Python curses monitor of
  the folder does before the same screen (read and parse every file, one
  line per run), for reference: the floor of any monitor written in Python.

The package's bytecode is compiled first, as an installed package has it
(the environment may set PYTHONDONTWRITEBYTECODE, which would make every
launch compile the sources again). The harness's own floor, the same measurement of a program that prints its
screen at once (``cat FILE -``), is subtracted. The whole path is measured:
interpreter start, imports, first scan, first paint. The folder holds
``--live`` real writer processes (default 20) and ``--ended`` ended runs.

    python bench/bench_first_screen.py [--rounds 10] [--live 20] [--ended 0] [--baseline DIR]

``--baseline DIR``: also launch the ttop of another checkout (e.g. a
``git worktree`` of an older commit) in the same rounds; both are then
started as ``python -m ttop`` with their own ``PYTHONPATH``.

Prints the medians (less the floor) and the ratio ttop/btop; exits 1 when
ttop is slower than btop in the same run, 2 when btop is missing.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _runs  # noqa: E402
from _tmux import Tmux, TmuxError  # noqa: E402

TARGET_MS = 100.0
LEAST = os.path.join(HERE, "_least_monitor.py")
_ROW = re.compile(r"^\s*\d+\s+\S+", re.M)


def ttop_command(folder: str, interval: float, root: str = "") -> str:
    """The installed console script; with ``root``, ``python -m ttop`` from
    that checkout."""
    exe = os.path.join(os.path.dirname(sys.executable), "ttop")
    if root:  # python -m puts the working folder first on the path: start there
        argv = ["env", "PYTHONPATH=" + root, sys.executable, "-m", "ttop"]
        return "cd %s && exec %s %s -i %g" % (shlex.quote(root), " ".join(shlex.quote(a) for a in argv),
                                              shlex.quote(folder), interval)
    argv = [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "ttop"]
    return "exec %s %s -i %g" % (" ".join(shlex.quote(a) for a in argv), shlex.quote(folder), interval)


def ttop_ready(names: List[str]) -> Callable[[str], bool]:
    def ready(s: str) -> bool:
        return "CPU" in s and "q quit" in s and all(n in s for n in names)
    return ready


def btop_ready(s: str) -> bool:
    return ("cpu" in s and "mem" in s and "proc" in s and "Pid:" in s
            and len(re.findall(r"│\s*\d+ \S", s)) >= 5)


def htop_ready(s: str) -> bool:
    return ("Load average" in s and "Uptime" in s and "PID" in s and "Quit" in s
            and len(_ROW.findall(s)) >= 5)


def top_ready(s: str) -> bool:
    return "Tasks:" in s and "PID" in s and len(_ROW.findall(s)) >= 5


def measure(tm: Tmux, command: str, ready: Callable[[str], bool]) -> float:
    """Milliseconds from respawning the pane to the first complete screen."""
    t0 = time.perf_counter()
    tm.launch(command)
    t1 = tm.wait_screen(ready, timeout=60)
    tm.stop()
    return (t1 - t0) * 1000.0


class Panes:
    """The pane the programs take turns in. tmux 3.3a's server has been
    seen to end (a crash: no server left) now and then when btop was
    killed in the pane after top had run there: a new server is started and
    the launch measured again, at most twice, and the restarts are printed."""

    def __init__(self, cols: int, rows: int) -> None:
        self.size = (cols, rows)
        self.tm = Tmux(cols=cols, rows=rows)
        self.restarts: List[str] = []

    def measure(self, name: str, command: str, ready: Callable[[str], bool]) -> float:
        for attempt in range(3):
            try:
                return measure(self.tm, command, ready)
            except TmuxError as e:
                if attempt == 2 or subprocess.run(["tmux", "-L", self.tm.sock, "has-session"],
                                                  stderr=subprocess.DEVNULL).returncode == 0:
                    raise SystemExit("%s: %s" % (name, e)) from None
                self.restarts.append(name)
                self.tm.close()
                self.tm = Tmux(cols=self.size[0], rows=self.size[1])
        raise AssertionError("unreachable")

    def __enter__(self) -> "Panes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.tm.close()


def percentile(xs: List[float], q: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--live", type=int, default=20, help="live writer processes (default 20)")
    ap.add_argument("--ended", type=int, default=0, help="ended runs in the folder besides (default 0)")
    ap.add_argument("--interval", type=float, default=2.0, help="ttop -i (default 2)")
    ap.add_argument("--settle", type=float, default=0.3, help="seconds between launches")
    ap.add_argument("--cols", type=int, default=160)
    ap.add_argument("--rows", type=int, default=50)
    ap.add_argument("--baseline", metavar="DIR", help="another checkout's ttop, launched in the same rounds")
    args = ap.parse_args()

    here, tmp, folder = _runs.first_screen_setup("ttop-bench-fs-", [args.baseline] if args.baseline else [])
    floor_file = os.path.join(tmp, "floor.txt")
    with open(floor_file, "w") as f:
        f.write("FLOOR-READY\n")
    live = []
    try:
        if args.ended:
            _runs.fill_archive(folder, args.ended)
        live = _runs.start_live(folder, args.live)
        names = [n for n, _ in live] + ["run%05d" % i for i in range(args.ended)]
        names = names[: args.rows - 8]  # what fits on the screen
        tools: List[Tuple[str, str, Callable[[str], bool]]] = [
            ("floor", "exec cat %s -" % shlex.quote(floor_file), lambda s: "FLOOR-READY" in s),
            ("ttop", ttop_command(folder, args.interval, here if args.baseline else ""), ttop_ready(names)),
        ]
        if args.baseline:
            tools.append(("ttop-baseline", ttop_command(folder, args.interval, os.path.abspath(args.baseline)),
                          ttop_ready(names)))
        # how long this interpreter takes to start and print at all: what any
        # Python program pays before its first line of code
        tools.append(("python", "exec %s -c %s" % (shlex.quote(sys.executable), shlex.quote("print('PY-READY'); input()")),
                      lambda s: "PY-READY" in s))
        # the least a Python curses monitor of the folder does (_least_monitor.py)
        tools.append(("python-least", "exec %s %s %s" % (shlex.quote(sys.executable), shlex.quote(LEAST), shlex.quote(folder)),
                      ttop_ready(names)))
        missing = []
        for name, cmd, pred in (("btop", "exec btop", btop_ready), ("htop", "exec htop", htop_ready),
                                ("top", "exec top", top_ready)):
            if shutil.which(name):
                tools.append((name, cmd, pred))
            else:
                missing.append(name)
        print("machine: %d CPUs, load %.2f; folder: %d live + %d ended runs; %d rounds; terminal %dx%d in tmux"
              % (os.cpu_count() or 0, os.getloadavg()[0], args.live, args.ended, args.rounds, args.cols, args.rows))
        if missing:
            print("not installed: %s" % ", ".join(missing))
        times: Dict[str, List[float]] = {name: [] for name, _, _ in tools}
        with Panes(args.cols, args.rows) as panes:
            # one untimed launch each: disk caches, btop's config file
            for name, cmd, pred in tools:
                panes.measure(name, cmd, pred)
                time.sleep(args.settle)
            for r in range(args.rounds):
                k = r % len(tools)
                for name, cmd, pred in tools[k:] + tools[:k]:
                    times[name].append(panes.measure(name, cmd, pred))
                    time.sleep(args.settle)
        if panes.restarts:
            print("tmux's server ended under the harness %d time(s) (%s): started again, those launches measured again"
                  % (len(panes.restarts), ", ".join(panes.restarts)))
        floor = statistics.median(times["floor"])
        print("\nlaunch -> first complete screen, ms (harness floor %.1f ms subtracted; raw p90 in brackets)" % floor)
        net = {}
        for name, _, _ in tools:
            if name == "floor":
                continue
            net[name] = statistics.median(times[name]) - floor
            print("  %-13s median %7.1f   [raw median %7.1f, p90 %7.1f]" % (
                name, net[name], statistics.median(times[name]), percentile(times[name], 90)))
        print("  load average now %.2f" % os.getloadavg()[0])
        if "btop" not in net:
            print("btop is not installed: no peer to compare with")
            return 2
        ratio = net["ttop"] / net["btop"] if net["btop"] > 0 else float("inf")
        print("\nratio ttop/btop: %.2fx (goal <= 1.0: %s); absolute target %.0f ms on an idle machine: %s"
              % (ratio, "OK" if ratio <= 1.0 else "MISSED", TARGET_MS,
                 "met" if net["ttop"] <= TARGET_MS else "not met here"))
        return 0 if ratio <= 1.0 else 1
    finally:
        _runs.stop_all([p for _, p in live])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
