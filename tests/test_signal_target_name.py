"""The signal confirmation names the target process; a process whose name
is only control characters and escape sequences (any user can name a
process so: prctl PR_SET_NAME) is named ``?``, not left blank."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from conftest import wait_until
from ttop.collect.snapshot import ProcInfo, RunSnapshot, Snapshot
from ttop.ui.levers import describe_target
from ttop.ui.screen import Target

NAMER = ("import ctypes, sys, time\n"
         "ctypes.CDLL(None).prctl(15, b'\\x1b[2J\\x1b]0;x\\x07', 0, 0, 0)\n"
         "print('named', flush=True)\n"
         "time.sleep(120)\n")


class _Ctx:
    def __init__(self, snapshot):
        self.snapshot = snapshot


def test_a_process_named_only_escape_codes_is_named_in_the_confirmation(spawn):
    p = spawn([sys.executable, "-c", NAMER], stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"named"
    proc = psutil.Process(p.pid)
    wait_until(lambda: proc.name().startswith("\x1b"), timeout=30)
    info = ProcInfo(pid=p.pid, ppid=os.getpid(), name=proc.name(), create_time=proc.create_time(), depth=0)
    run = RunSnapshot(key="r", path="/p/r.json", data={}, run_name="r", status="RUNNING", reported_status="RUNNING",
                      host="vm", pid=p.pid, processes=(info,))
    ctx = _Ctx(Snapshot(seq=1, taken_at=time.time(), folder="/p", runs=(run,)))
    for target in (Target("run", "r", p.pid, proc.create_time()), Target("proc", "r", p.pid, proc.create_time())):
        text = describe_target(ctx, target)
        assert text.startswith("PID %d (?, run r, user " % p.pid), text
