"""A script that changes its working directory after the monitor started
(into the run's output directory, as many do): a relative progress folder
was looked up again from there at each write, so the run's file stayed
behind saying RUNNING (KILLED once the process had gone), a second folder
of the same name was made in the new directory ("progress folder progress
was removed; re-created it", which it was not) and the run's history and
control file went with it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    m = TrainingMonitor(folder="progress", run_name="job", interval=0.05, gpu=False, capture_output=True)
    m.start_monitoring()
    m.start_phase("train")
    os.chdir(sys.argv[1])  # e.g. into the run's output directory
    for i in range(6):
        m.start_batch()
        m.update_metrics(loss=float(i))
        print("batch", i, flush=True)
        time.sleep(0.05)
    m.set_finished()
    """
) % str(ROOT)


def test_a_chdir_after_the_start_does_not_move_the_runs_files(tmp_path):
    start, later = tmp_path / "start", tmp_path / "later"
    start.mkdir()
    later.mkdir()
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(later)], cwd=str(start), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "re-created" not in p.stderr, p.stderr
    assert os.listdir(str(later)) == [], "files written in the new working directory: %s" % os.listdir(str(later))
    folder = start / "progress"
    with open(folder / "job.json", "rb") as f:
        d = json.loads(f.read())
    assert (d["status"], d["train_batch"], d["metrics"]) == ("FINISHED", 6, {"loss": 5.0})
    assert d["history_file"] == "job.history.jsonl" and (folder / "job.history.jsonl").is_file()
    assert "batch 5\n" in (folder / "job.stdout.log").read_text()
