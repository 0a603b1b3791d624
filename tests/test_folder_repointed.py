"""``ttop progress`` where ``progress`` is a symbolic link to the current
folder of runs (``progress -> 2026-12-04``), pointed at another folder
while ttop runs: the runs of the folder it names now show, as after a
restart of ttop."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from test_cli_support import child_env, ttop_cmd

from conftest import wait_until


def _write(folder, name):
    doc = {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": time.time(),
           "started_at": time.time(), "host": "elsewhere", "heartbeat_interval": 3600}
    tmp = folder / (".%s.tmp" % name)
    tmp.write_text(json.dumps(doc))
    tmp.rename(folder / (name + ".json"))


def test_a_progress_link_pointed_at_another_folder_shows_its_runs(spawn, tmp_path):
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    day1.mkdir()
    day2.mkdir()
    link = tmp_path / "progress"
    link.symlink_to("day1")
    _write(day1, "old")
    csv_dir = tmp_path / "csv"
    ttop = spawn(ttop_cmd(link, "--headless", "-i", "0.1", "--csv-dir", csv_dir),
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    try:
        wait_until(lambda: (csv_dir / "old_matrix.csv").exists(), timeout=30)
        time.sleep(0.5)  # a few cycles: the folder is watched
        tmp = tmp_path / "progress.new"
        tmp.symlink_to("day2")
        os.replace(tmp, link)  # re-pointed at once, as ln -sfn does
        _write(day2, "new")

        def seen():
            _write(day2, "new")
            return (csv_dir / "new_matrix.csv").exists()

        wait_until(seen, timeout=30)
    finally:
        ttop.send_signal(signal.SIGTERM)
        ttop.wait(timeout=30)
