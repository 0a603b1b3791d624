"""A run started again under the same name, whose earlier start is a time no
calendar date can be made of: its CSV files are set aside like any other's,
and the other runs' rows go on."""
from __future__ import annotations

import json
import signal
import subprocess
import time

from test_cli_support import child_env, start_writer, ttop_cmd

from conftest import wait_until


def _rows(path):
    try:
        with open(path, "rb") as f:
            return max(0, f.read().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def _write(folder, name, started_at):
    doc = {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": time.time(),
           "started_at": started_at, "batch": 1}
    tmp = folder / (".%s.tmp" % name)
    tmp.write_text(json.dumps(doc))
    tmp.rename(folder / (name + ".json"))


def test_a_restart_of_a_run_started_beyond_the_calendar_stops_no_csv(spawn, progress_dir, tmp_path):
    start_writer(spawn, progress_dir, ["victim"], tmp_path, period=0.1)
    csv_dir = tmp_path / "csv"
    err_path = tmp_path / "err.txt"
    with open(err_path, "wb") as err:
        ttop = spawn(ttop_cmd(progress_dir, "--headless", "-i", "0.1", "--csv-dir", csv_dir),
                     stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    _write(progress_dir, "far", 1e20)  # (sorts before the victim)
    wait_until(lambda: _rows(csv_dir / "far_matrix.csv") >= 1, timeout=30)
    before = _rows(csv_dir / "victim_matrix.csv")
    _write(progress_dir, "far", 2e20)  # the same name, another start
    # (a cycle or two may pass before ttop reads it: many more rows than that)
    wait_until(lambda: _rows(csv_dir / "victim_matrix.csv") >= before + 20, timeout=60)
    ttop.send_signal(signal.SIGTERM)
    assert ttop.wait(timeout=30) == 0
    text = err_path.read_text()
    assert "failed" not in text and "run far started again" in text, text
    assert sorted(p.name for p in csv_dir.glob("far*_matrix.csv")) == ["far.earlier_matrix.csv", "far_matrix.csv"]


def test_a_run_whose_start_changes_at_every_write_leaves_a_bounded_number_of_files(spawn, progress_dir, tmp_path):
    # a broken writer (or another user's file) giving another started_at at every
    # write: the first MAX_RESTARTS new starts get files of their own, then the rows
    # go on in the files it has, with one line saying so, and no data is lost
    from ttop.sinks.csv import MAX_RESTARTS

    csv_dir = tmp_path / "csv"
    err_path = tmp_path / "err.txt"
    with open(err_path, "wb") as err:
        ttop = spawn(ttop_cmd(progress_dir, "--headless", "-i", "0.1", "--csv-dir", csv_dir),
                     stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    start = 1.7e9
    def total():
        return sum(_rows(p) for p in csv_dir.glob("flip*_matrix.csv"))

    for i in range(MAX_RESTARTS + 8):
        before = total()
        _write(progress_dir, "flip", start + i)
        wait_until(lambda n=before: total() >= n + 2, timeout=30)  # rows written after this start was read
    ttop.send_signal(signal.SIGTERM)
    assert ttop.wait(timeout=30) == 0
    matrices = sorted(p.name for p in csv_dir.glob("flip*_matrix.csv"))
    assert len(matrices) == MAX_RESTARTS + 1, matrices
    text = err_path.read_text()
    assert "run flip started again %d times within an hour: its rows go on in flip_matrix.csv" % MAX_RESTARTS in text, text
