"""Instructions from launch to the first screen (callgrind), 20 live runs.

What ``bench_first_screen.py`` times, counted instead: a measure that the
other programs on a shared machine do not disturb. Each count is one
``valgrind --tool=callgrind`` run in a tmux pane (160x50) of:

* ttop: the console script's own lines (pip's script imports ``re`` and
  calls ``re.sub`` before ``ttop.cli.main``), then ``main`` on the folder,
  ended (``os._exit``) where the monitor starts its collector thread, that
  is right after the first paint;
* script: the console script's lines alone (``import re``, ``re.sub``);
* python: ``python -c pass``.

    python bench/bench_first_instr.py [--live 20] [--baseline DIR]

``--baseline DIR``: also count another checkout's ttop (e.g. a ``git
worktree`` of an older commit), imported from DIR. The package's bytecode
is compiled first, as an installed package has it. Prints the counts in
millions; exits 2 when valgrind or tmux is missing.
"""
from __future__ import annotations

import argparse
import compileall
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _runs  # noqa: E402

# pip's console script, with the collector thread's start ending the process
HOOK = """import re
import sys
import os
import ttop.collect.collector as _c
def _first_paint_done(self, *a, **k):
    sys.stdout.flush()
    os._exit(0)
_c.Collector.start = _first_paint_done
from ttop.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""
SCRIPT = "import re; re.sub(r'(-script\\.pyw|\\.exe)?$', '', 'ttop')"


def count(argv: List[str], env: Dict[str, str], tmp: str) -> int:
    """Instructions of ``argv`` run under callgrind in a tmux pane."""
    out = os.path.join(tmp, "callgrind.out")
    log = os.path.join(tmp, "callgrind.log")
    sock = "ttop-bench-instr-%d" % os.getpid()
    cmd = " ".join(shlex.quote(a) for a in ["env", "-u", "PYTHONPATH", "-u", "TMUX"] + ["%s=%s" % kv for kv in env.items()] + [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--log-file=" + log] + argv)
    subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "50", cmd],
                   check=True)
    try:
        while subprocess.run(["tmux", "-L", sock, "has-session"], capture_output=True).returncode == 0:
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
    with open(log) as f:
        m = re.search(r"Collected : (\d+)", f.read())
    if not m:
        raise SystemExit("callgrind counted nothing: see %s" % log)
    return int(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--live", type=int, default=20, help="live writer processes (default 20)")
    ap.add_argument("--baseline", metavar="DIR", help="another checkout's ttop, counted too")
    args = ap.parse_args()
    missing = [p for p in ("valgrind", "tmux") if shutil.which(p) is None]
    if missing:
        print("not installed: %s" % ", ".join(missing))
        return 2

    import ttop

    here = os.path.dirname(os.path.dirname(os.path.abspath(ttop.__file__)))
    roots = [("ttop", "")] + ([("ttop-baseline", os.path.abspath(args.baseline))] if args.baseline else [])
    compileall.compile_dir(os.path.join(here, "ttop"), quiet=1)
    for _name, root in roots[1:]:
        compileall.compile_dir(os.path.join(root, "ttop"), quiet=1)
    tmp = tempfile.mkdtemp(prefix="ttop-bench-instr-")
    folder = os.path.join(tmp, "progress")
    os.makedirs(folder)
    hook = os.path.join(tmp, "ttop_first_paint.py")
    with open(hook, "w") as f:
        f.write(HOOK)
    live = []
    try:
        live = _runs.start_live(folder, args.live)
        counts = {"python": count([sys.executable, "-c", "pass"], {}, tmp),
                  "script": count([sys.executable, "-c", SCRIPT], {}, tmp)}
        for name, root in roots:
            extra = {"PYTHONPATH": root} if root else {}
            counts[name] = count([sys.executable, hook, folder, "-i", "2"], extra, tmp)
        print("instructions to the first screen, %d live runs (callgrind, millions)" % args.live)
        print("  python -c pass        %7.1f" % (counts["python"] / 1e6))
        print("  + the console script  %7.1f  (import re, re.sub)" % (counts["script"] / 1e6))
        for name, _root in roots:
            print("  %-21s %7.1f  (ttop's own: %.1f)" % (name, counts[name] / 1e6,
                                                      (counts[name] - counts["script"]) / 1e6))
        if args.baseline:
            print("ttop / baseline: %.3f" % (counts["ttop"] / counts["ttop-baseline"]))
        return 0
    finally:
        _runs.stop_all([p for _, p in live])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
