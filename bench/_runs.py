"""Shared set-up of the benchmarks: folders of progress files and live runs.

``fill_archive(folder, n)`` writes ``n`` ended runs (~2 KB each, like a real
finished run's file: counters, times, three metrics with an 80-point history,
variables, logs, resources) with modification times spread over the last 90
days, as a folder that has collected a lab's runs for months looks.
``start_live(folder, n)`` starts ``n`` real writer processes
(``tests/fakes/progress_writer.py``) and waits until each has written its file.
``start_demo(folder, n)`` starts ``n`` training stand-ins
(``examples/demo_job.py``: a main process with a data-loader worker and
captured output, one batch a second) and waits for their files.
``own_pid_namespace()`` runs the calling script again in a PID namespace of
its own (``--own-pidns`` of the idle benchmarks).
``first_screen_setup(prefix, baselines)`` is the start of the first-screen
benchmarks: bytecode compiled, a fresh folder for the progress files.
"""
from __future__ import annotations

import compileall
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import List, Sequence, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRITER = os.path.join(ROOT, "tests", "fakes", "progress_writer.py")
ENDED = ("FINISHED", "FINISHED", "FINISHED", "FAILED", "CANCELED", "KILLED")


def run_doc(i: int, host: str, status: str = "FINISHED", now: float = 0.0) -> dict:
    now = now or time.time()
    d = {
        "format": "ttop.progress/1",
        "run_name": "run%05d" % i,
        "status": status,
        "updated_at": now,
        "started_at": now - 3600,
        "ended_at": now if status != "RUNNING" else None,
        "host": host,
        "pid": 4000000 + i,
        "pid_create_time": now - 3600,
        "heartbeat_interval": 2.0,
        "phase": "train",
        "epoch": 10,
        "total_epochs": 10,
        "batch": 5000,
        "total_batches": 5000,
        "rate": 12.5,
        "times": {k: {"elapsed": 100.0 + i, "remaining": 0.0, "total": 100.0 + i}
                  for k in ("run", "epoch", "train", "validation")},
        "metrics": {"loss": 1.0 / (i + 2), "acc": 0.9, "lr": 0.001},
        "history": {"loss": [round(1.0 / (j + 1), 6) for j in range(80)],
                    "acc": [round(j / 100.0, 6) for j in range(80)]},
        "variables": {"lr": 0.001, "batch_size": 64},
        "variable_types": {"lr": "float", "batch_size": "int"},
        "logs": {"stdout": "run%05d.stdout.log" % i, "stderr": "run%05d.stderr.log" % i},
        "resources": {"cpu_percent": 100.0, "rss_bytes": 1 << 30, "num_procs": 5, "num_threads": 20,
                      "sampled_at": now},
    }
    if status == "FAILED":
        d["error"] = "RuntimeError: CUDA out of memory"
    return d


def fill_archive(folder: str, n: int, start: int = 0) -> None:
    """``n`` ended runs, files ``run<i>.json``, old modification times."""
    me = socket.gethostname()
    now = time.time()
    for i in range(start, start + n):
        age = 3600 + (i * 7919) % (90 * 86400)
        d = run_doc(i, me if i % 3 else "node-%d" % (i % 7), ENDED[i % len(ENDED)], now - age)
        path = os.path.join(folder, "run%05d.json" % i)
        with open(path, "w") as f:
            f.write(json.dumps(d))
        os.utime(path, (now - age, now - age))


def start_live(folder: str, n: int, children: int = 0, interval: float = 1.0,
               prefix: str = "live") -> List[Tuple[str, subprocess.Popen]]:
    """``n`` real writers; returns ``[(name, Popen)]`` once every file exists."""
    live = []
    for k in range(n):
        name = "%s%02d" % (prefix, k)
        p = subprocess.Popen([sys.executable, WRITER, "--folder", folder, "--name", name,
                              "--children", str(children), "--interval", str(interval)],
                             stdin=subprocess.DEVNULL, start_new_session=True)
        live.append((name, p))
    deadline = time.monotonic() + 120
    for name, _p in live:
        path = os.path.join(folder, name + ".json")
        while True:
            try:
                with open(path) as f:
                    if json.load(f).get("ready", True):
                        break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                stop_all([q for _, q in live])
                raise SystemExit("live runs did not start")
            time.sleep(0.05)
    return live


def first_screen_setup(prefix: str, baselines: Sequence[str] = ()) -> Tuple[str, str, str]:
    """The checkout whose ``ttop`` this interpreter imports, and the
    ``baselines`` (other checkouts): their package's bytecode compiled, as an
    installed package has it (the environment may set
    PYTHONDONTWRITEBYTECODE, which would make every launch compile the
    sources again). Returns ``(checkout, tmp, folder)``: ``tmp`` a new
    temporary folder (the caller removes it), ``folder`` an empty
    ``progress`` folder in it. ``XDG_CONFIG_HOME`` is set to an empty
    folder in it for every program launched from here on (ttop's saved
    column choice, btop's settings): what the user running the benchmark
    chose does not change the figures (a saved choice of 250 columns took
    ttop ~2 ms more to read and apply)."""
    import ttop

    here = os.path.dirname(os.path.dirname(os.path.abspath(ttop.__file__)))
    for root in [here] + list(baselines):
        compileall.compile_dir(os.path.join(root, "ttop"), quiet=1)
    tmp = tempfile.mkdtemp(prefix=prefix)
    folder = os.path.join(tmp, "progress")
    os.makedirs(folder)
    os.environ["XDG_CONFIG_HOME"] = os.path.join(tmp, "config")
    os.makedirs(os.environ["XDG_CONFIG_HOME"])
    return here, tmp, folder


DEMO = os.path.join(ROOT, "examples", "demo_job.py")


def start_demo(folder: str, n: int, prefix: str = "bench-") -> List[Tuple[str, subprocess.Popen]]:
    """``n`` live ``demo_job.py`` runs (one batch a second, one worker each,
    for days); returns ``[(name, Popen)]`` once every file exists."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    live = []
    for i in range(n):
        name = "%s%02d" % (prefix, i)
        args = [sys.executable, DEMO, "--folder", folder, "--name", name, "--epochs", "1000", "--batches", "500",
                "--val-batches", "50", "--batch-time", "1.0", "--workers", "1", "--work", "1000", "--seed", str(i)]
        live.append((name, subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)))
    deadline = time.monotonic() + 120
    for name, _p in live:
        while not os.path.exists(os.path.join(folder, name + ".json")):
            if time.monotonic() > deadline:
                stop_all([q for _, q in live])
                raise SystemExit("demo runs did not start")
            time.sleep(0.1)
    return live


def stop_all(procs) -> None:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its children: utime+stime+cutime+cstime
    (what it used, and what its reaped children used) of ``pid`` and of each
    descendant alive now. 0.0 once it is gone."""
    total = 0.0
    kids: dict = {}
    try:
        names = [n for n in os.listdir("/proc") if n.isdigit()]
    except OSError:
        names = []
    stats = {}
    for n in names:
        try:
            with open("/proc/%s/stat" % n, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2:].split()
        stats[int(n)] = fields
        kids.setdefault(int(fields[1]), []).append(int(n))
    stack = [pid]
    while stack:
        p = stack.pop()
        fields = stats.get(p)
        if fields is None:
            continue
        total += sum(int(x) for x in fields[11:15]) / _TICK  # utime stime cutime cstime
        stack.extend(kids.get(p, ()))
    return total


def rss_bytes(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


PIDNS_ENV = "TTOP_BENCH_PIDNS"


def own_pid_namespace(flag: str = "--own-pidns") -> None:
    """Run this script again, less ``flag``, in a PID namespace of its own
    (``unshare --pid --fork --mount-proc``: root, or user namespaces): only
    the benchmark's processes are there, so nothing else creates processes,
    as on a quiet machine (where a loaded one has others forking all the
    time). The peers there see only those processes too. Returns in the
    re-run; the caller exits with the re-run's status."""
    if os.environ.get(PIDNS_ENV) == "1":
        return
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SystemExit("%s needs unshare (util-linux)" % flag)
    argv = [a for a in sys.argv if a != flag]
    # sh stays PID 1 (orphans go to it, not into the benchmark's trees)
    raise SystemExit(subprocess.call([unshare, "--pid", "--fork", "--mount-proc", "sh", "-c", '"$0" "$@"; exit $?',
                                      sys.executable] + argv, env=dict(os.environ, **{PIDNS_ENV: "1"})))
