"""A process whose stat line is the last cycle's keeps its ProcInfo: the
sample taken that way against the one made afresh, over random sequences
of stat lines (a real process: its command line, its threads)."""
from __future__ import annotations

import random
import subprocess
import sys

import pytest

from ttop.collect import procs as procs_mod
from ttop.collect.procs import ProcessTable

# says so once it sleeps: its threads' CPU times hold still from then on
SLEEPER = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"]


def _next_row(rng, row, pid):
    ppid, ctime, name, status, cpu_s, nthreads, rss, faults = row
    pick = rng.random()
    if pick < 0.45:
        return row  # an idle process: the same line
    if pick < 0.6:
        cpu_s += rng.choice((0.01, 0.5))
    elif pick < 0.7:
        rss += rng.choice((4096, -4096))
    elif pick < 0.78:
        status = rng.choice(("sleeping", "running", "zombie", "disk-sleep"))
    elif pick < 0.84:
        nthreads = rng.choice((1, 2, 8))
    elif pick < 0.9:
        faults += 1
    elif pick < 0.95:
        name = rng.choice(("python", "python3", "worker"))
    else:
        ppid = rng.choice((1, ppid + 1))
    return (ppid, ctime, name, status, cpu_s, nthreads, rss, faults)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_kept_sample_is_the_sample_made_afresh(spawn, monkeypatch, seed):
    p = spawn(SLEEPER, stdout=subprocess.PIPE)
    with p.stdout:
        assert p.stdout.readline() == b"ready\n"
    pid = p.pid
    rng = random.Random(seed)
    kept, fresh = ProcessTable(), ProcessTable()
    for t in (kept, fresh):
        t.refresh()
    row = (1, 1000.0, "python", "sleeping", 1.0, 1, 1 << 20, 10)
    now = 1000.0
    reused = 0
    depth = 0
    for step in range(300):
        row = _next_row(rng, row, pid)
        if rng.random() < 0.1:
            depth = rng.choice((0, 1, 2))
        gpu = {pid: 1 << 30} if rng.random() < 0.05 else {}
        tpu = {pid: 1 << 29} if rng.random() < 0.05 else {}
        threads = rng.random() < 0.05
        now += rng.choice((0.0, 2.0, 2.0, 2.0, 3.5))
        got = []
        for table, reuse in ((kept, True), (fresh, False)):
            monkeypatch.setattr(procs_mod, "REUSE_SAMPLES", reuse)
            table.refreshed_at = now
            table.threads = threads
            before = table._cpu_prev.get((pid, row[1]))
            info = table._sample(pid, depth, row, now, gpu, None, tpu)
            if reuse and before is not None and before[4] is info:
                reused += 1
            table.end_cycle()
            got.append(info)
        # threads: read from /proc for each table at its own moment (a sleeping
        # process's times do not move); everything else must be equal
        assert got[0] == got[1], (step, row, depth)
    assert reused > 30  # the kept path was taken (and compared) many times
