"""The alert command's rate limit on a folder shared with other users: one
user's runs must not use up the alerts another user's runs are owed."""
from __future__ import annotations

import os
import signal
import sys

from test_alerts import WRITER, read_events, seen_running, ttop_headless

from conftest import wait_until
from users import shared_dir, three_users  # noqa: F401 (fixtures)

# another user's runs whose loss flips between NaN and a number: a health
# event (CRIT, then back to OK) at every flip
FLAPPER = r"""
import json, os, sys, time
folder = sys.argv[1]
i = 0
while True:
    i += 1
    now = time.time()
    for k in range(3):
        doc = {"format": "ttop.progress/1", "run_name": "flap%d" % k, "status": "RUNNING",
               "updated_at": now, "started_at": 1.0, "host": os.uname().nodename,
               "metrics": {"loss": "NaN" if i % 2 else 1.0}}
        tmp = os.path.join(folder, ".flap%d.tmp" % k)
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.rename(tmp, os.path.join(folder, "flap%d.json" % k))
    time.sleep(0.3)
"""


def test_another_users_flapping_runs_do_not_silence_the_alert_for_my_run(
        spawn, three_users, shared_dir, tmp_path):  # noqa: F811
    other = three_users[0]
    events = tmp_path / "events.jsonl"
    out = tmp_path / "cmd.txt"
    job = spawn([sys.executable, WRITER, "--folder", shared_dir, "--name", "victim", "--interval", "0.2"])
    wait_until(lambda: os.path.exists(os.path.join(shared_dir, "victim.json")), timeout=30)
    ttop_headless(spawn, shared_dir, tmp_path, "--events", str(events),
                  "--alert-cmd", 'echo "$TTOP_RUN $TTOP_STATUS" >> %s' % out)
    wait_until(lambda: seen_running(tmp_path / "csv" / "victim_matrix.csv"), timeout=60)
    flapper = other.popen(["/usr/bin/python3", "-c", FLAPPER, shared_dir])
    try:
        # the other user's runs have used up a minute's worth of commands
        wait_until(lambda: sum(e["run"].startswith("flap") for e in read_events(events)) >= 12, timeout=60)
        os.kill(job.pid, signal.SIGKILL)
        job.wait(timeout=10)
        wait_until(lambda: any(e["run"] == "victim" for e in read_events(events)), timeout=30)
        wait_until(lambda: out.exists() and "victim KILLED" in out.read_text().splitlines(), timeout=30)
    finally:
        flapper.kill()
        flapper.wait(timeout=10)
