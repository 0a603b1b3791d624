#!/usr/bin/env python3
"""Idle CPU of the monitor: ``ttop FOLDER -i 2`` in a terminal with 20 live
runs, against btop and top showing the same machine.

Starts ``--runs`` live ``examples/demo_job.py`` runs (a main process, a
data-loader worker, captured output, one batch a second), then runs each tool
in its own tmux session (a private tmux server, 200x50, ``escape-time 0``,
the terminal type tmux gives) one after the other, interleaved: per round
every tool once, in a rotating order, for ``--window`` seconds each after a
start-up that is not measured (ttop: until its table shows the runs, then
``--settle`` seconds; the others: ``--settle`` seconds). A tool's CPU is the
change of utime+stime+cutime+cstime of its process and of its descendants
(``/proc/<pid>/stat``) over the window, as % of one core; RSS is read at the
end of each window.

Prints per tool the median over the rounds and each round's figure, then the
ratios ttop/btop and ttop/top. Goal: ttop <= btop in the same run; exits 1
when it is missed (2 when a tool or tmux is missing). ``--headless``: also
``ttop FOLDER --headless -i 2 --csv-dir TMP`` in the same rounds (its own
tmux session; measured from its start like the others), held to the same
goal.

    python bench/bench_idle.py                      # 20 runs, 3 rounds of 60 s
    python bench/bench_idle.py --rounds 1 --window 20
    python bench/bench_idle.py --compare /path/to/other/checkout   # also that ttop
    python bench/bench_idle.py --headless           # ttop --headless too, against btop
    python bench/bench_idle.py --own-pidns          # in a PID namespace of its own (root)
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _runs import ROOT, own_pid_namespace, rss_bytes, start_demo, stop_all, tree_cpu_seconds  # noqa: E402

COLS, ROWS = 200, 50


class Tmux:
    """A private tmux server (its own socket): nothing of the user's touched."""

    def __init__(self, env: Dict[str, str]) -> None:
        self.sock = "ttop-bench-idle-%d" % os.getpid()
        self.env = env
        self.sessions = 0

    def _run(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["tmux", "-L", self.sock, *args], env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, check=check)
        return out.stdout.decode("utf-8", "replace")

    def start(self, command: str, cwd: str) -> Tuple[str, int]:
        self.sessions += 1
        name = "t%d" % self.sessions
        for attempt in range(5):  # the server of the last session may be exiting just now
            try:
                self._run("new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), "-c", cwd,
                          "exec " + command)
                break
            except subprocess.CalledProcessError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        self._run("set", "-g", "escape-time", "0")
        pid = int(self._run("display", "-p", "-t", name, "#{pane_pid}").strip())
        return name, pid

    def capture(self, name: str) -> str:
        return self._run("capture-pane", "-p", "-t", name, check=False)

    def stop(self, name: str) -> None:
        self._run("kill-session", "-t", name, check=False)

    def close(self) -> None:
        self._run("kill-server", check=False)


def quote(args: List[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in args)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=60.0, help="measured seconds per tool and round (default: %(default)s)")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="unmeasured seconds after start-up (ttop: its first PSS reads; default: %(default)s)")
    ap.add_argument("--interval", default="2", help="ttop -i (btop and top: 2 s)")
    ap.add_argument("--compare", metavar="ROOT", action="append", default=[],
                    help="also measure the ttop of another checkout (e.g. the previous release)")
    ap.add_argument("--headless", action="store_true", help="also ttop --headless (and each --compare's)")
    ap.add_argument("--own-pidns", action="store_true",
                    help="run in a PID namespace of its own, where only these processes exist (nothing else "
                         "starts processes, as on a quiet machine; the peers see only these processes too)")
    a = ap.parse_args()
    if a.own_pidns:
        own_pid_namespace()
    for tool in ("tmux", "btop", "top"):
        if not shutil.which(tool):
            print("bench_idle: %s is needed (apt-get install %s)" % (tool, "procps" if tool == "top" else tool),
                  file=sys.stderr)
            return 2
    tmp = tempfile.mkdtemp(prefix="ttop-bench-idle-")
    folder = os.path.join(tmp, "progress")
    os.makedirs(folder)
    # btop: its defaults (update_ms 2000), not a user's config
    conf = os.path.join(tmp, "config", "btop")
    os.makedirs(conf)
    with open(os.path.join(conf, "btop.conf"), "w") as f:
        f.write("update_ms = 2000\n")
    env = dict(os.environ, XDG_CONFIG_HOME=os.path.join(tmp, "config"))
    if "UTF-8" not in (env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or "").upper().replace("UTF8", "UTF-8"):
        env["LANG"] = "C.UTF-8"  # btop refuses to start otherwise; ttop then draws its Unicode marks
        env.pop("LC_ALL", None)
    env.pop("TMUX", None)
    # (name, command, folder it starts in: python -m puts that first on the path)
    tools: List[Tuple[str, str, str]] = [
        ("ttop", quote(["env", "PYTHONPATH=" + ROOT, sys.executable, "-m", "ttop", folder, "-i", a.interval]), ROOT),
        ("btop", "btop", tmp),
        ("top", "top -d 2", tmp),
    ]
    for i, root in enumerate(a.compare):
        root = os.path.abspath(root)
        tools.append(("ttop@%d" % (i + 1) if len(a.compare) > 1 else "ttop@compare",
                      quote(["env", "PYTHONPATH=" + root, sys.executable, "-m", "ttop", folder, "-i", a.interval]),
                      root))
    if a.headless:
        for name, command, cwd in list(tools):
            if name.startswith("ttop"):
                tools.append((name + "-headless", command + " " + quote(["--headless", "--csv-dir",
                                                                          os.path.join(tmp, "csv-" + name)]), cwd))
    tmux = Tmux(env)
    runs: list = []
    cpu: Dict[str, List[float]] = {name: [] for name, _, _ in tools}
    rss: Dict[str, List[int]] = {name: [] for name, _, _ in tools}
    try:
        runs = start_demo(folder, a.runs)
        time.sleep(2)  # past their loading phase
        print("bench_idle: %d live demo_job.py runs; ttop -i %s, btop (update_ms 2000), top -d 2; %d rounds of %g s "
              "per tool in tmux %dx%d (%d cores)" % (a.runs, a.interval, a.rounds, a.window, COLS, ROWS,
                                                     os.cpu_count() or 0))
        for rnd in range(a.rounds):
            order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
            figures = []
            for name, command, cwd in order:
                session, pid = tmux.start(command, cwd)
                try:
                    if name.startswith("ttop") and not name.endswith("-headless"):
                        deadline = time.monotonic() + 60
                        while "%s00" % "bench-" not in tmux.capture(session):
                            if time.monotonic() > deadline:
                                print("bench_idle: %s showed no runs:\n%s" % (name, tmux.capture(session)),
                                      file=sys.stderr)
                                return 1
                            time.sleep(0.1)
                    time.sleep(a.settle)
                    c0, m0 = tree_cpu_seconds(pid), time.monotonic()
                    time.sleep(a.window)
                    c1, m1 = tree_cpu_seconds(pid), time.monotonic()
                    if c1 == 0.0:
                        print("bench_idle: %s ended during the window:\n%s" % (name, tmux.capture(session)),
                              file=sys.stderr)
                        return 1
                    cpu[name].append(100.0 * (c1 - c0) / (m1 - m0))
                    rss[name].append(rss_bytes(pid))
                    figures.append("%s %.2f%%" % (name, cpu[name][-1]))
                finally:
                    tmux.stop(session)
            print("  round %d: %s" % (rnd + 1, " | ".join(figures)))
        med = {name: statistics.median(v) for name, v in cpu.items()}
        for name, _, _ in tools:
            print("  %-12s median %.2f%% of one core (rounds: %s)  RSS %.0f MB"
                  % (name, med[name], ", ".join("%.2f" % v for v in cpu[name]), statistics.median(rss[name]) / 1e6))

        def ratio(x: float, y: float) -> str:
            return "%.2f" % (x / y) if y > 0 else "inf"

        ok = med["ttop"] <= med["btop"]
        print("  ratio ttop/btop = %s (goal <= 1: %s) | ttop/top = %s"
              % (ratio(med["ttop"], med["btop"]), "PASS" if ok else "FAIL", ratio(med["ttop"], med["top"])))
        if a.headless:
            hok = med["ttop-headless"] <= med["btop"]
            ok = ok and hok
            print("  ratio ttop-headless/btop = %s (goal <= 1: %s) | ttop-headless/top = %s"
                  % (ratio(med["ttop-headless"], med["btop"]), "PASS" if hok else "FAIL",
                     ratio(med["ttop-headless"], med["top"])))
        for name, _, _ in tools[3:]:
            if name.startswith("ttop@"):
                mine = "ttop-headless" if name.endswith("-headless") else "ttop"
                print("  ratio %s/%s = %s" % (mine, name, ratio(med[mine], med[name])))
        return 0 if ok else 1
    finally:
        tmux.close()
        stop_all([p for _, p in runs])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
