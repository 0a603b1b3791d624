"""The examples run for real: the seed tutorial to FINISHED; the demo job (with
small numbers) to FINISHED with its worker processes seen, to FAILED with
--fail-at-epoch, obeying an lr edit, and --runs/--detach returning at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import EXAMPLES, ROOT, wait_until
from conftest import load_json as load
from ttop import progress as P

SMALL = ["--epochs", "2", "--batches", "8", "--val-batches", "3", "--batch-time", "0.05", "--interval", "0.1"]


def env():
    return dict(os.environ, PYTHONPATH=str(ROOT))




@pytest.mark.slow
def test_tutorial_runs_to_finished(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "tutorial.py")], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    d = load(tmp_path / "progress" / "tutorial.json")
    assert d["status"] == "FINISHED" and d["run_name"] == "tutorial"
    assert d["train_batch"] == 100 and d["variables"] == {"learning_rate": 0.01, "batch_size": 32}
    assert isinstance(d["metrics"]["loss"], float)


@pytest.mark.slow
def test_demo_job_finishes_with_workers_and_logs(tmp_path, spawn):
    folder = tmp_path / "progress"
    p = spawn(
        [sys.executable, str(EXAMPLES / "demo_job.py"), "--folder", str(folder), "--name", "demo", "--workers", "2"]
        + SMALL
        + ["--batches", "40"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    path = folder / "demo.json"
    # while it runs: the main process and its two pool workers (at least)
    d = wait_until(
        lambda: (lambda d: d if d and (d.get("resources") or {}).get("num_procs", 0) >= 3 else None)(load(path)),
        timeout=60,
    )
    assert d["status"] == "RUNNING"
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    d = load(path)
    assert d["status"] == "FINISHED" and d["epoch"] == 2 and d["total_epochs"] == 2
    assert (d["train_batch"], d["val_batch"], d["val_total_batches"]) == (40, 3, 3)
    assert set(d["metrics"]) == {"loss", "acc", "val_loss", "val_acc"}
    assert d["variable_types"] == {"lr": "float", "batch_size": "int", "pause": "bool"}
    log = (folder / d["logs"]["stdout"]).read_text()
    assert "epoch 1 batch 0/40" in log and "epoch 2 done" in log
    assert "epoch 1 batch 0/40" in out  # and it still reached the console


@pytest.mark.slow
def test_demo_job_obeys_an_lr_edit(tmp_path, spawn):
    folder = tmp_path / "progress"
    p = spawn(
        [sys.executable, str(EXAMPLES / "demo_job.py"), "--folder", str(folder), "--name", "lr", "--workers", "0"]
        + SMALL
        + ["--epochs", "1", "--batches", "400", "--batch-time", "0.02"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    path = folder / "lr.json"
    wait_until(lambda: (load(path) or {}).get("batch"), timeout=60)
    P.write_control(str(folder), "lr", 1, {"lr": 0.25})
    d = wait_until(lambda: (lambda d: d if d and d.get("control_seq") == 1 else None)(load(path)), timeout=30)
    assert d["variables"]["lr"] == 0.25 and d["control_error"] is None
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "variable lr changed: 0.01 -> 0.25" in out
    assert "lr 0.25" in out  # the loop uses the new value


@pytest.mark.slow
def test_demo_job_fail_at_epoch(tmp_path):
    folder = tmp_path / "progress"
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_job.py"), "--folder", str(folder), "--name", "bad", "--workers", "1"]
        + SMALL
        + ["--fail-at-epoch", "2"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "simulated failure" in r.stderr
    d = load(folder / "bad.json")
    assert d["status"] == "FAILED" and d["epoch"] == 2
    assert d["error"].startswith("RuntimeError: loss diverged at epoch 2") and "Traceback" in d["error"]
    assert "simulated failure" in (folder / "bad.stderr.log").read_text()  # the traceback, captured


def test_demo_detach_returns_at_once_and_runs_finish(tmp_path):
    folder = tmp_path / "progress"
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_job.py"), "--folder", str(folder), "--runs", "3", "--detach", "--workers", "0"]
        + SMALL,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    returned_at = time.time()
    assert r.returncode == 0, r.stderr
    assert str(folder) in r.stdout and "ttop" in r.stdout
    names = [n for n in r.stdout.split(": ", 1)[1].splitlines()[0].split(", ")]
    assert len(names) == 3 and len(set(names)) == 3
    paths = [folder / (n + ".json") for n in names]
    try:
        first = wait_until(lambda: (lambda d: d if d and d.get("pid") else None)(load(paths[0])), timeout=60)
        try:
            assert os.getsid(first["pid"]) == first["pid"]  # detached: it leads its own session
        except ProcessLookupError:
            pass  # already done
        done = wait_until(
            lambda: (lambda ds: ds if all(d and d["status"] != "RUNNING" for d in ds) else None)([load(p) for p in paths]),
            timeout=90,
        )
        statuses = sorted(d["status"] for d in done)
        assert statuses == ["FAILED", "FINISHED", "FINISHED"]  # the third run fails at epoch 2
        # at once: it returned before any run ended (each runs 2 epochs)
        assert all(d["ended_at"] > returned_at for d in done), ([d["ended_at"] for d in done], returned_at)
        pids = {d["pid"] for d in done}
        assert len(pids) == 3 and os.getpid() not in pids
    finally:
        for p in paths:  # never leave a detached run behind
            d = load(p)
            if d and d.get("pid"):
                try:
                    proc = psutil.Process(d["pid"])
                    if d.get("pid_create_time") and abs(proc.create_time() - d["pid_create_time"]) < 1:
                        proc.send_signal(signal.SIGKILL)
                except psutil.Error:
                    pass


def test_demo_bad_arguments_exit_2(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo_job.py"), "--epochs", "-1"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--epochs" in r.stderr and not (tmp_path / "progress").exists()


@pytest.mark.parametrize("script", ["tutorial.py", "demo_job.py"])
def test_examples_have_usage_docstrings(script):
    text = (EXAMPLES / script).read_text()
    assert text.startswith('"""') and "ttop progress" in text
