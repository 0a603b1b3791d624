"""A progress name that is a symbolic link (its owner's, to the run's file
elsewhere: docs/security.md): when the run it leads to ended and is started
again, ttop follows it like any other run. Change notification reports
writes under the link's target's name, in the target's folder, never under
the link's own name."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import time

from test_cli_support import child_env, ttop_cmd

from conftest import wait_until


def _write(path, status, started_at, batch):
    doc = {"format": "ttop.progress/1", "run_name": "x", "status": status, "updated_at": time.time(),
           "started_at": started_at, "batch": batch}
    if status != "RUNNING":
        doc["ended_at"] = doc["updated_at"]
    tmp = path.with_name(".x.tmp")
    tmp.write_text(json.dumps(doc))
    tmp.rename(path)


def _statuses(csv_dir):
    out = []
    for p in sorted(csv_dir.glob("x*_matrix.csv")):
        with open(p, newline="") as f:
            out += [row["status"] for row in csv.DictReader(f)]
    return out


def test_a_linked_run_started_again_after_it_ended_is_seen_running(spawn, tmp_path):
    folder = tmp_path / "progress"
    elsewhere = tmp_path / "runs"
    folder.mkdir()
    elsewhere.mkdir()
    target = elsewhere / "x.json"
    _write(target, "FINISHED", time.time() - 60, 10)
    time.sleep(0.2)  # (not written within the moment it is read)
    (folder / "x.json").symlink_to(target)
    csv_dir = tmp_path / "csv"
    ttop = spawn(ttop_cmd(folder, "--headless", "-i", "0.1", "--csv-dir", csv_dir),
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    wait_until(lambda: _statuses(csv_dir) == ["FINISHED"], timeout=30)
    time.sleep(0.5)  # a few cycles with the run ended
    started = time.time()
    try:
        def running():
            _write(target, "RUNNING", started, int((time.time() - started) * 10))
            return "RUNNING" in _statuses(csv_dir)

        wait_until(running, timeout=30)
    finally:
        ttop.send_signal(signal.SIGTERM)
        ttop.wait(timeout=30)
