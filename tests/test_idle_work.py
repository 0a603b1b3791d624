"""Work the collector leaves out when nobody looks at its result: per-thread
reads for runs not shown expanded, with real processes."""
from __future__ import annotations

import json
import os
import sys
import time

import psutil

from conftest import wait_until
from ttop.collect import Collector

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
