"""Work the collector leaves out when nobody looks at its result (per-thread
reads for runs not shown expanded) or when nothing changed (a process
tree's children files while no process was created), with real processes."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import wait_until
from ttop.collect import Collector
from ttop.collect import procs as procs_mod

THREADED = [sys.executable, "-c",
            "import threading, time\n"
            "for _ in range(3): threading.Thread(target=time.sleep, args=(120,), daemon=True).start()\n"
            "time.sleep(120)"]


def _run_file(folder, name, pid):
    doc = {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": time.time(),
           "heartbeat_interval": 600, "pid": pid, "pid_create_time": psutil.Process(pid).create_time()}
    with open(os.path.join(str(folder), name + ".json"), "w") as f:
        json.dump(doc, f)


def test_threads_sampled_only_for_the_runs_asked_for(spawn, progress_dir):
    a, b = spawn(THREADED), spawn(THREADED)
    wait_until(lambda: psutil.Process(a.pid).num_threads() == 4 and psutil.Process(b.pid).num_threads() == 4)
    _run_file(progress_dir, "a", a.pid)
    _run_file(progress_dir, "b", b.pid)
    c = Collector(str(progress_dir), gpu=False, tpu=False)
    expanded = {"a"}
    c.sample_threads = lambda key: key in expanded
    assert callable(c.sample_threads)
    snap = c.collect()
    pa, pb = snap.run("a").processes[0], snap.run("b").processes[0]
    assert [t.tid for t in pa.threads][0] == a.pid and len(pa.threads) == 4
    assert pb.threads == () and pb.num_threads == 4  # counted from its stat line all the same
    expanded.clear()
    expanded.add("b")
    time.sleep(0.05)
    snap = c.collect()
    assert snap.run("a").processes[0].threads == ()
    assert len(snap.run("b").processes[0].threads) == 4
    snap = c.collect()  # a second look: CPU % for each thread
    assert all(t.cpu_percent is not None for t in snap.run("b").processes[0].threads)
    c.sample_threads = True
    assert c.sample_threads is True
    assert len(c.collect().run("a").processes[0].threads) == 4


# a parent whose child has a child of its own; it forks one more child when
# the file named by argv[1] appears
PARENT = """
import os, subprocess, sys, time
sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(%r); time.sleep(120)" % (sleep,)])
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
subprocess.Popen(sleep)
time.sleep(120)
"""


def test_tree_follows_a_child_that_ends_and_one_that_starts(spawn, progress_dir, tmp_path):
    """The children found are kept between cycles only while they hold: a
    child killed (its own child adopted elsewhere) and a new child show in
    the next cycle's tree, exactly."""
    if not procs_mod._HAVE_CHILDREN:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children")
    go = str(tmp_path / "fork-now")
    main = spawn([sys.executable, "-c", PARENT, go])
    child = wait_until(lambda: psutil.Process(main.pid).children(), timeout=60)[0].pid
    grandchild = wait_until(lambda: psutil.Process(child).children(), timeout=60)[0].pid
    _run_file(progress_dir, "p", main.pid)
    c = Collector(str(progress_dir), gpu=False, tpu=False)
    for _ in range(2):
        assert [p.pid for p in c.collect().run("p").processes] == [main.pid, child, grandchild]
    os.kill(child, signal.SIGKILL)  # not reaped by its parent: a zombie; its child is adopted by another
    wait_until(lambda: psutil.Process(grandchild).ppid() != child, timeout=60)
    r = c.collect().run("p")
    assert [p.pid for p in r.processes] == [main.pid, child] and r.processes[1].status == psutil.STATUS_ZOMBIE
    os.kill(grandchild, signal.SIGKILL)
    open(go, "w").close()
    # (starting it reaps the zombie)
    new = wait_until(lambda: [k.pid for k in psutil.Process(main.pid).children() if k.pid != child], timeout=60)
    wait_until(lambda: not psutil.pid_exists(child), timeout=60)
    r = c.collect().run("p")
    assert [p.pid for p in r.processes] == [main.pid] + new


# in a PID namespace of its own, where only this script creates processes:
# the children files are read only for a process that got a new child (and
# the new process itself), or after one of the tree ended
IN_NAMESPACE = """
import json, os, subprocess, sys, time
from ttop.collect import procs
reads = []
real = procs.task_children
procs.task_children = lambda pid: reads.append(pid) or real(pid)
sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
go = sys.argv[1]
# a forks a child of its own once the file go exists
a = subprocess.Popen([sys.executable, "-c", "import os, subprocess, time\\n"
                      "while not os.path.exists(%r): time.sleep(0.02)\\n"
                      "subprocess.Popen(%r)\\ntime.sleep(120)" % (go, sleep)])
table = procs.ProcessTable()


def cycle():
    del reads[:]
    table.refresh()
    got = [p.pid for p in table.tree(os.getpid())]
    table.end_cycle()
    return got, sorted(reads)


out = {"me": os.getpid(), "a": a.pid, "cycles": [cycle(), cycle()]}
# a process of no one in the tree (adopted by PID 1 once its shell exits)
subprocess.run(["sh", "-c", "sleep 120 >/dev/null 2>&1 &"])
out["cycles"] += [cycle(), cycle()]
b = subprocess.Popen(sleep)
out["b"] = b.pid
out["cycles"] += [cycle(), cycle()]
open(go, "w").close()
deadline = time.monotonic() + 30
while not real(a.pid) and time.monotonic() < deadline:
    time.sleep(0.02)
out["a2"] = real(a.pid)
out["cycles"] += [cycle(), cycle()]
a.kill()
a.wait()
out["cycles"] += [cycle(), cycle()]
print(json.dumps(out))
"""


def test_children_are_read_again_only_after_a_process_was_created_or_ended(tmp_path):
    if not procs_mod._HAVE_CHILDREN:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(procs_mod.__file__)))
    # sh stays PID 1 of the namespace (the script's tree is its own, not init's)
    got = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "sh", "-c", '"$0" "$@"; exit $?',
                          sys.executable, "-c", IN_NAMESPACE, str(tmp_path / "go")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, PYTHONPATH=root), timeout=60)
    if got.returncode != 0 and b"unshare" in got.stderr:
        pytest.skip("cannot make a PID namespace here: %s" % got.stderr.decode(errors="replace").strip())
    assert got.returncode == 0, got.stderr.decode(errors="replace")
    out = json.loads(got.stdout)
    me, a, b, a2 = out["me"], out["a"], out["b"], out["a2"]
    assert len(a2) == 1
    a2 = a2[0]
    assert out["cycles"] == [
        [[me, a], sorted([me, a])],  # first walk
        [[me, a], []],  # nothing created, nothing ended: nothing read
        [[me, a], []],  # processes created outside the tree: nothing read
        [[me, a], []],
        [[me, a, b], sorted([me, b])],  # b was created: its parent's children, and its own
        [[me, a, b], []],
        [[me, a, a2, b], sorted([a, a2])],  # a's new child: a's children, and the child's
        [[me, a, a2, b], []],
        [[me, b], sorted([me, b])],  # a ended: its parent's children are read again
        [[me, b], []],
    ]
