"""End to end with the real writer: examples/demo_job.py (TrainingMonitor) seen
by the collector thread, then SIGKILLed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from conftest import EXAMPLES, wait_until
from ttop.collect import Collector

DEMO = EXAMPLES / "demo_job.py"


@pytest.mark.skipif(not DEMO.exists(), reason="examples/demo_job.py is not there")
def test_demo_job_tree_then_killed(spawn, progress_dir):
    job = spawn([sys.executable, str(DEMO), "--folder", str(progress_dir), "--name", "demo",
                 "--workers", "2", "--batches", "100000", "--work", "2000", "--interval", "0.2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = Collector(str(progress_dir), interval=0.3, gpu=False, tpu=False)
    c.start()
    try:
        def live_tree():
            r = c.latest and c.latest.run("demo")
            return r if r and r.alive and r.resources.num_procs and r.resources.num_procs >= 3 else None

        r = wait_until(live_tree, timeout=60)
        # the monitor's pid and pid_create_time identify the process exactly
        assert r.pid == job.pid and r.local and r.status == "RUNNING" and not r.stale
        assert r.processes[0].pid == job.pid and r.processes[0].depth == 0
        assert all(p.depth >= 1 for p in r.processes[1:])
        assert r.resources.source == "local" and r.resources.rss_bytes > 10_000_000
        os.kill(job.pid, signal.SIGKILL)
        seq = c.latest.seq
        killed = wait_until(lambda: c.latest.run("demo").status == "KILLED" and c.latest.run("demo"), timeout=30)
        assert c.latest.seq <= seq + 2
        assert killed.status_inferred and killed.reported_status == "RUNNING" and killed.processes == ()
    finally:
        c.stop()
        try:  # its pool workers, orphaned by the kill
            os.killpg(job.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
