"""Instructions from launch to the first screen (callgrind), 20 live runs.

What ``bench_first_screen.py`` times, counted instead: a measure that the
other programs on a shared machine do not disturb. Each count is one
``valgrind --tool=callgrind`` run in a tmux pane (160x50) of:

* ttop: the ``ttop`` console script installed beside the interpreter (what
  the installer wrote: pip before 25.0 has it import ``re`` and call
  ``re.sub``, later pip does not; where none is installed, the later pip's
  lines), then ``main`` on the folder, ended (``os._exit``) where the
  monitor starts its collector thread, that is right after the first paint;
* script: the interpreter's start and the console script's own lines alone
  (its ``from ttop.cli import main`` left out);
* python: ``python -c pass``.

    python bench/bench_first_instr.py [--live 20] [--baseline DIR] [--baseline-python PY]

Run it with the interpreter of the environment to count (its site start-up
is counted: an editable install's path hooks, for one).
``--baseline DIR``: also count another checkout's ttop (e.g. a ``git
worktree`` of an older commit), imported from DIR by the same interpreter
and console script. ``--baseline-python PY``: also count the interpreter of
another environment with its own installed ttop and console script (e.g. a
venv where an older commit is installed as the README says): start-up and
install counted too. Prints the counts in millions; exits 2 when valgrind
or tmux is missing.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _runs  # noqa: E402

# before the console script's lines: the collector thread's start ends the
# process, patched in as ttop.collect.collector is imported (where ttop
# imports it: the imports keep their order, the cyclic GC its state)
HOOK = """import sys
import os
class _FirstPaint:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "ttop.collect.collector":
            return None
        sys.meta_path.remove(_FirstPaint)
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module
        def exec_and_patch(module):
            exec_module(module)
            def first_paint_done(self, *a, **k):
                sys.stdout.flush()
                os._exit(0)
            module.Collector.start = first_paint_done
        spec.loader.exec_module = exec_and_patch
        return spec
sys.meta_path.insert(0, _FirstPaint)
"""
# what pip >= 25.0 writes (pip._internal.operations.install.wheel.PipScriptMaker)
PIP_SCRIPT = """import sys
from ttop.cli import main
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(main())
"""
IMPORT_MAIN = "from ttop.cli import main\n"


def console_script(python: str) -> Tuple[str, str]:
    """``(lines, where)``: the ``ttop`` console script installed beside
    ``python`` less its ``#!`` line, or pip's lines where there is none."""
    path = os.path.join(os.path.dirname(python), "ttop")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return PIP_SCRIPT, "not installed: pip's lines"
    if text.startswith("#!"):
        text = text.split("\n", 1)[1]
    if IMPORT_MAIN not in text:
        raise SystemExit("%s does not import ttop.cli's main: %r" % (path, text))
    return text, path


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
    ap.add_argument("--baseline-python", metavar="PY", help="another environment's interpreter and installed ttop, counted too")
    args = ap.parse_args()
    missing = [p for p in ("valgrind", "tmux") if shutil.which(p) is None]
    if missing:
        print("not installed: %s" % ", ".join(missing))
        return 2

    _here, tmp, folder = _runs.first_screen_setup("ttop-bench-instr-", [args.baseline] if args.baseline else [])
    # (name, interpreter, PYTHONPATH)
    subjects = [("ttop", sys.executable, "")]
    if args.baseline:
        subjects.append(("ttop-baseline", sys.executable, os.path.abspath(args.baseline)))
    if args.baseline_python:
        py = os.path.abspath(args.baseline_python)
        subprocess.run([py, "-c", "import compileall, os, ttop; compileall.compile_dir(os.path.dirname(ttop.__file__), quiet=1)"],
                       check=True, cwd=tmp)
        subjects.append(("baseline-python", py, ""))
    live = []
    try:
        live = _runs.start_live(folder, args.live)
        pythons: Dict[str, Dict[str, int]] = {}
        hooks: Dict[str, str] = {}
        print("instructions to the first screen, %d live runs (callgrind, millions)" % args.live)
        counts = {}
        for name, py, root in subjects:
            if py not in pythons:
                lines, where = console_script(py)
                hook = os.path.join(tmp, "ttop_first_paint_%d.py" % len(pythons))
                bare = os.path.join(tmp, "ttop_script_%d.py" % len(pythons))
                with open(hook, "w") as f:
                    f.write(HOOK + lines)
                with open(bare, "w") as f:
                    f.write(lines.replace(IMPORT_MAIN, "main = int\n"))
                pythons[py] = {"python": count([py, "-c", "pass"], {}, tmp), "script": count([py, bare, folder], {}, tmp)}
                hooks[py] = hook
                print("%s (console script: %s)" % (py, where))
                print("  python -c pass        %7.1f" % (pythons[py]["python"] / 1e6))
                print("  + the console script  %7.1f" % (pythons[py]["script"] / 1e6))
            extra = {"PYTHONPATH": root} if root else {}
            counts[name] = count([py, hooks[py], folder, "-i", "2"], extra, tmp)
            print("  %-21s %7.1f  (ttop's own: %.1f)" % (name, counts[name] / 1e6, (counts[name] - pythons[py]["script"]) / 1e6))
        for name, _py, _root in subjects[1:]:
            print("ttop / %s: %.3f" % (name, counts["ttop"] / counts[name]))
        return 0
    finally:
        _runs.stop_all([p for _, p in live])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
