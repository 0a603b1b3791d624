"""Multi-rank jobs as one run: a shared run name, rank 0 writing the
progress file, every rank following the control file, the first failing
rank's error as the run's. The job test runs Lightning DDP under
``torchrun --nproc_per_node=2`` with gloo on CPU."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import wait_until
from integrations_helpers import TIMEOUT, edit_when_ready, env, load, output, write_driver
from ttop.integrations._ranks import first_failure, job_run_name, rank_file


def test_job_run_name_is_the_same_on_every_rank(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/x/train.py"])
    assert job_run_name({"TORCHELASTIC_RUN_ID": "abc", "MASTER_PORT": "1"}) == "train-abc"
    assert job_run_name({"TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}) == "train-10.0.0.1-29500"
    assert job_run_name({"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0"}) == "train-slurm77.0"
    assert job_run_name({}) is None
    assert "/" not in job_run_name({"TORCHELASTIC_RUN_ID": "../../etc"})


def test_first_failure_is_the_earliest_failed_rank(tmp_path):
    def put(rank, status, ended, error):
        with open(rank_file(str(tmp_path), "job", rank), "w") as f:
            json.dump({"rank": rank, "status": status, "ended_at": ended, "error": error}, f)

    assert first_failure(str(tmp_path), "job", time.time()) is None
    put(1, "RUNNING", None, None)
    put(2, "FAILED", 200.0, "RuntimeError: later")
    put(3, "FAILED", 100.0, "RuntimeError: first")
    (tmp_path / ".job.rank4.json").write_text("{garbage")
    assert first_failure(str(tmp_path), "job", 300.0) == (3, "RuntimeError: first")
    assert first_failure(str(tmp_path), "job", 150.0) == (3, "RuntimeError: first")
    assert first_failure(str(tmp_path), "job", 50.0) is None  # failed after this rank did: not first
    assert first_failure(str(tmp_path), "other", 300.0) is None


DRIVER = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from ttop.integrations.lightning import TtopCallback

RANK = int(os.environ["RANK"])
EDIT_AT, FAIL_AT = 5, 8


def rank1_acked():
    try:
        with open(os.path.join(FOLDER, ".ddp.rank1.json")) as f:
            return json.load(f).get("control_seq", 0) >= 1
    except (OSError, ValueError):
        return False


class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        TRACE.append((self.global_step, self.trainer.optimizers[0].param_groups[0]["lr"]))
        if self.global_step == EDIT_AT and RANK == 0:
            handshake("ddp")
            deadline = time.monotonic() + 300
            while not rank1_acked() and time.monotonic() < deadline:  # rank 1 took the edit too
                time.sleep(0.05)
        if self.global_step == FAIL_AT and RANK == 1:
            raise RuntimeError("rank 1 blew up")
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


x = torch.randn(64, 4)
trainer = L.Trainer(
    max_epochs=1, strategy="ddp", accelerator="cpu", devices=2, logger=False, enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False,
    callbacks=[TtopCallback(folder=FOLDER, run_name=MODE, interval=0.2)],
)
try:
    trainer.fit(M(), DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=2))
finally:
    with open(os.path.join(FOLDER, "trace%d.json" % RANK), "w") as f:
        json.dump(TRACE, f)
'''


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT)
def test_torchrun_two_ranks_are_one_run(tmp_path, spawn):
    for module in ("lightning", "torch"):
        if __import__("importlib").util.find_spec(module) is None:
            pytest.skip("%s is not installed (pip install -e '.[integrations]')" % module)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    driver = write_driver(tmp_path, "import json\n" + DRIVER)
    folder = tmp_path / "progress"
    folder.mkdir()
    e = env()
    e["PL_DISABLE_FORK"] = "1"
    with open(tmp_path / "ddp.out", "w") as out:
        p = spawn(
            [torchrun, "--standalone", "--nproc_per_node=2", str(driver), str(folder), "ddp"],
            env=e, cwd=str(tmp_path), stdout=out, stderr=subprocess.STDOUT,
        )
    edit_when_ready(p, folder, "ddp", "lr", 0.04)
    assert p.wait(timeout=TIMEOUT) != 0  # rank 1 failed the job

    # one run, written by rank 0; rank 1 left its hidden status file
    runs = sorted(n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith((".", "control_", "trace")))
    assert runs == ["ddp.json"], runs
    d = load(folder / "ddp.json")
    r1 = load(folder / ".ddp.rank1.json")
    assert r1["rank"] == 1 and r1["pid"] != d["pid"] and r1["status"] == "FAILED"
    # the run's error is rank 1's own, not rank 0's follow-on error
    assert d["status"] == "FAILED", output(tmp_path, "ddp")
    assert "rank 1 failed first" in d["error"] and "RuntimeError: rank 1 blew up" in d["error"], d["error"]
    # the edit reached both ranks' optimizers at the same step
    for rank in (0, 1):
        trace = dict(load(folder / ("trace%d.json" % rank)))
        assert trace[5] == pytest.approx(0.1) and trace[6] == pytest.approx(0.04), (rank, trace)
    assert r1["control_seq"] == d["control_seq"] == 1


def test_a_follower_applies_the_runs_edits_and_reports_its_status(tmp_path):
    from ttop.integrations._ranks import RankFollower
    from ttop.progress import write_control

    seen = []
    f = RankFollower(str(tmp_path), "job", 1, 2, 0.05, lambda name, old, new: seen.append((name, old, new)))
    f.track({"lr": 0.1, "opt": "sgd"})
    f.start()
    try:
        d = load(tmp_path / ".job.rank1.json")
        assert (d["rank"], d["world_size"], d["pid"], d["status"], d["control_seq"]) == (1, 2, os.getpid(), "RUNNING", 0)
        write_control(str(tmp_path), "job", 1, {"lr": 0.02, "nope": 1})
        d = wait_until(lambda: (lambda d: d if d and d["control_seq"] == 1 else None)(load(tmp_path / ".job.rank1.json")))
        assert seen == [("lr", 0.1, 0.02)]
        assert "nope: not a tracked variable" in d["control_error"]
        write_control(str(tmp_path), "job", 1, {"lr": 5.0})  # not a newer seq: ignored
        time.sleep(0.3)
        assert seen == [("lr", 0.1, 0.02)]
    finally:
        f.end("FAILED", "RuntimeError: rank 1 blew up")
    d = load(tmp_path / ".job.rank1.json")
    assert d["status"] == "FAILED" and d["error"] == "RuntimeError: rank 1 blew up" and d["ended_at"] is not None
    assert first_failure(str(tmp_path), "job", time.time()) == (1, "RuntimeError: rank 1 blew up")
    assert not any(n.endswith(".json") and not n.startswith(".") for n in os.listdir(tmp_path) if not n.startswith("control_"))


def test_a_follower_acknowledges_an_edit_once_the_training_thread_applied_it(tmp_path):
    """The rank's ``control_seq`` says the edit is in its optimizer, not only
    read; one the optimizer refused is acknowledged with the reason."""
    import psutil

    from ttop.integrations._ranks import RankFollower
    from ttop.progress import write_control

    waiting = []
    f = RankFollower(str(tmp_path), "job", 1, 2, 0.05, lambda name, old, new: waiting.append(name),
                     held=lambda: bool(waiting))
    f.track({"lr": 0.1})
    f.start()
    path = tmp_path / ".job.rank1.json"
    try:
        d = wait_until(lambda: (lambda d: d if d and d.get("resources") else None)(load(path)))
        assert d["pid_create_time"] == pytest.approx(psutil.Process().create_time(), abs=0.05)
        assert d["resources"]["rss_bytes"] > 0 and d["resources"]["num_procs"] >= 1
        write_control(str(tmp_path), "job", 1, {"lr": 0.02})
        wait_until(lambda: waiting)
        time.sleep(0.3)  # several of the follower's writes
        assert load(path)["control_seq"] == 0  # read, not applied yet
        waiting.clear()
        f.confirm(["lr: the optimizer has no param group 3"])  # the training thread's answer
        d = load(path)
        assert d["control_seq"] == 1 and d["control_error"] == "refused lr: the optimizer has no param group 3"
        write_control(str(tmp_path), "job", 2, {"lr": 0.03})
        wait_until(lambda: waiting)
        waiting.clear()
        f.confirm([])
        d = load(path)
        assert d["control_seq"] == 2 and d["control_error"] is None
    finally:
        f.end("FINISHED")
