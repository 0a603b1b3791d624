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
    # a rank file left by an earlier run of the same name is not this run's
    assert first_failure(str(tmp_path), "job", 300.0, after=100.0 + 60.0) == (3, "RuntimeError: first")
    assert first_failure(str(tmp_path), "job", 300.0, after=200.0 + 61.0) is None


def test_first_failure_reads_only_the_runs_own_rank_files(three_users, shared_dir):
    """The folder is shared: another user's FIFO under a rank file's name
    does not hang the failing run (first_failure runs in its excepthook and
    SIGTERM handler), nor does their link to /dev/zero, and their FAILED
    rank file does not become the run's error."""
    import threading

    mallory = three_users[0]
    with open(rank_file(shared_dir, "job", 1), "w") as f:
        json.dump({"rank": 1, "status": "FAILED", "ended_at": 200.0, "error": "RuntimeError: real"}, f)
    mallory.sh('mkfifo "$1/.job.rank2.json" && ln -s /dev/zero "$1/.job.rank3.json"', shared_dir)
    mallory.write(rank_file(shared_dir, "job", 4), json.dumps(
        {"rank": 4, "status": "FAILED", "ended_at": 100.0, "error": "spoofed"}).encode())
    got = []
    t = threading.Thread(target=lambda: got.append(first_failure(shared_dir, "job", 300.0)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "first_failure hangs on another user's FIFO"
    assert got == [(1, "RuntimeError: real")]


DRIVER = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from ttop.integrations.lightning import TtopCallback

RANK = int(os.environ["RANK"])
EDIT_AT, FAIL_AT = 5, 8


def rank1_acked():
    """Rank 1 has the edit: applied, or waiting for its next step (it is
    held in this step's gradient sync, so it cannot apply it before)."""
    try:
        with open(os.path.join(FOLDER, ".ddp.rank1.json")) as f:
            d = json.load(f)
        return d.get("control_seq", 0) >= 1 or (d.get("control_pending") or 0) >= 1
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


def test_a_follower_that_cannot_write_its_status_file_says_so_once(tmp_path, capsys):
    """Something else under the rank file's name (another user's file in a
    sticky folder, here a folder): the rank trains on, and says once why
    ttop will not show it, instead of vanishing silently."""
    from ttop.integrations._ranks import RankFollower

    (tmp_path / ".job.rank1.json").mkdir()
    f = RankFollower(str(tmp_path), "job", 1, 2, 0.05, lambda *a: None)
    f.start()
    f._write()
    f.end("FINISHED")
    err = capsys.readouterr().err
    assert err.count("ttop: rank 1 cannot write its status file") == 1, err
    assert "ttop will not show this rank" in err


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
        d = wait_until(lambda: (lambda d: d if d and d.get("control_pending") == 1 else None)(load(path)))
        assert d["control_seq"] == 0  # read, not applied yet
        waiting.clear()
        f.confirm(["lr: the optimizer has no param group 3"])  # the training thread's answer
        d = load(path)
        assert d["control_seq"] == 1 and d["control_error"] == "refused lr: the optimizer has no param group 3"
        assert d["control_pending"] is None
        write_control(str(tmp_path), "job", 2, {"lr": 0.03})
        wait_until(lambda: waiting)
        waiting.clear()
        f.confirm([])
        d = load(path)
        assert d["control_seq"] == 2 and d["control_error"] is None
    finally:
        f.end("FINISHED")



def test_a_follower_reads_the_control_file_rank_0_made_when_another_user_took_the_name(three_users, shared_dir):
    """Another user planted control_job.json in the sticky folder first: the
    job's own user could not replace it. Rank 0 makes a file of its own and
    names it in its progress file; rank 1 reads that name there, so an
    edit written where the levers write it reaches both ranks."""
    from ttop.integrations._ranks import RankFollower
    from ttop.levers import control as C
    from ttop.monitor import TrainingMonitor
    from ttop.progress import control_path

    c = three_users[1]
    c.write(control_path(shared_dir, "job"), json.dumps({"format": "ttop.control/1", "seq": 1,
                                                         "variables": {"lr": 9.0}}).encode())
    seen = []
    m = TrainingMonitor(folder=shared_dir, run_name="job", interval=0.05, gpu=False, handle_signals=False,
                        variables={"lr": 0.1})
    f = RankFollower(shared_dir, "job", 1, 2, 0.05, lambda name, old, new: seen.append((name, old, new)))
    f.track({"lr": 0.1})
    f.start()
    m.start_phase("train")
    try:
        d = wait_until(lambda: (lambda d: d if d and d.get("control_file") else None)(load(os.path.join(shared_dir, "job.json"))))
        assert d["control_file"].startswith("control_job.") and m.control_file.endswith(d["control_file"])
        wait_until(lambda: (lambda r: r and "reading %s instead" % d["control_file"] in (r["control_error"] or ""))(
            load(os.path.join(shared_dir, ".job.rank1.json"))))
        C.write_edit(shared_dir, "job", d, "lr", 0.02)
        wait_until(lambda: (lambda r: r and r["control_seq"] == 1)(load(os.path.join(shared_dir, ".job.rank1.json"))))
        assert seen == [("lr", 0.1, 0.02)]
        wait_until(lambda: m.variables["lr"] == 0.02)
        assert load(os.path.join(shared_dir, ".job.rank1.json"))["control_error"] is None
    finally:
        f.end("FINISHED")
        m.set_finished()


ROWS_DRIVER = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from ttop.integrations.lightning import TtopCallback

RANK = int(os.environ["RANK"])


def hold(marker):
    """Both ranks busy (CPU) at the same step until the test says go."""
    if RANK == 0:
        open(os.path.join(FOLDER, marker + ".ready"), "w").close()
    go = os.path.join(FOLDER, marker + ".go")
    deadline = time.monotonic() + 300
    while not os.path.exists(go) and time.monotonic() < deadline:
        sum(range(20000))


class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        TRACE.append((self.global_step, [g["lr"] for g in self.trainer.optimizers[0].param_groups]))
        if self.global_step == 3:
            hold("rows")
        if self.global_step == 6:
            hold("edited")
        if self.global_step == 8 and RANK == 1:
            raise RuntimeError("rank 1 blew up")
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        if RANK == 1:  # lr/0 and lr/1 here, lr on rank 0: an edit of lr has nothing to set on rank 1
            return torch.optim.SGD([{"params": [self.net.weight]}, {"params": [self.net.bias], "lr": 0.2}], lr=0.1)
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
def test_torchrun_ranks_are_rows_of_the_run_with_summed_resources(tmp_path, spawn):
    """Real torchrun, 2 gloo ranks on CPU: ttop's snapshot and --json show one
    run with a row per rank, the run's CPU/RAM are the ranks' sums, and an lr
    edit rank 1 cannot apply is reported refused on rank 1, not applied."""
    from ttop.collect import Collector
    from ttop.levers.control import edit_state, write_edit

    for module in ("lightning", "torch"):
        if __import__("importlib").util.find_spec(module) is None:
            pytest.skip("%s is not installed (pip install -e '.[integrations]')" % module)
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    driver = write_driver(tmp_path, "import json\n" + ROWS_DRIVER)
    folder = tmp_path / "progress"
    folder.mkdir()
    e = env()
    e["PL_DISABLE_FORK"] = "1"
    with open(tmp_path / "rows.out", "w") as out:
        p = spawn([torchrun, "--standalone", "--nproc_per_node=2", str(driver), str(folder), "rows"],
                  env=e, cwd=str(tmp_path), stdout=out, stderr=subprocess.STDOUT)
    wait_until(lambda: (folder / "rows.ready").exists() or p.poll() is not None, timeout=TIMEOUT)
    assert p.poll() is None, output(tmp_path, "rows")
    # both ranks busy at step 3: one run, two rank rows, the sums of both
    c = Collector(str(folder), gpu=False, tpu=False)

    def both_busy():
        s = c.collect()
        run = s.run("rows")
        if run is None or len(run.ranks) != 2 or not all(r.resources.cpu_percent for r in run.ranks):
            return None
        return s

    s = wait_until(both_busy, timeout=60)
    assert [r.key for r in s.runs] == ["rows"]
    run = s.run("rows")
    r0, r1 = run.ranks
    assert (r0.rank, r1.rank, r1.world_size) == (0, 1, 2)
    assert r0.pid == run.pid and r1.pid == load(folder / ".rows.rank1.json")["pid"] and r1.pid != r0.pid
    assert r1.local and r1.alive and r1.processes[0].pid == r1.pid
    assert r1.pid not in [x.pid for x in run.processes]  # a sibling under torchrun, counted under its own row
    total = run.resources
    for share in (r0.resources, r1.resources):
        assert 0 < share.cpu_percent <= total.cpu_percent and 0 < share.rss_bytes < total.rss_bytes
    assert total.cpu_percent == pytest.approx(r0.resources.cpu_percent + r1.resources.cpu_percent, abs=0.5)
    assert total.rss_bytes == r0.resources.rss_bytes + r1.resources.rss_bytes
    assert total.num_procs == r0.resources.num_procs + r1.resources.num_procs
    # --once --json: the same run with its ranks
    got = subprocess.run([sys.executable, "-m", "ttop", str(folder), "--once", "--json"], env=env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=True)
    runs = json.loads(got.stdout)["runs"]
    assert [r["key"] for r in runs] == ["rows"]
    assert [(k["rank"], k["pid"], k["local"]) for k in runs[0]["ranks"]] == [(0, r0.pid, True), (1, r1.pid, True)]
    assert runs[0]["ranks"][1]["processes"][0]["pid"] == r1.pid
    # an lr edit: rank 0 applies it, rank 1 (lr/0, lr/1) has no such variable
    seq, _ = write_edit(str(folder), "rows", run.data, "lr", 0.04)
    (folder / "rows.go").touch()
    wait_until(lambda: (folder / "edited.ready").exists() or p.poll() is not None, timeout=TIMEOUT)

    def answered():
        run = c.collect().run("rows")
        ok = run is not None and len(run.ranks) == 2 and min(r.control_seq for r in run.ranks) >= seq
        return run if ok else None

    run = wait_until(answered, timeout=60)
    assert edit_state(run.data, seq, "lr") == ("applied", "")  # rank 0 alone would say so
    assert edit_state(run.data, seq, "lr", run.ranks) == ("refused", "rank 1: refused lr: not a tracked variable")
    (folder / "edited.go").touch()
    assert p.wait(timeout=TIMEOUT) != 0  # rank 1 failed the job
    d = load(folder / "rows.json")
    assert d["status"] == "FAILED" and "rank 1 failed first" in d["error"] and "rank 1 blew up" in d["error"], d["error"]
    lrs0, lrs1 = (dict((s, lr) for s, lr in load(folder / ("trace%d.json" % k))) for k in (0, 1))
    # both ranks were held at step 6 until the edit was answered: step 7 runs with it
    # (a step between 3 and 6 may or may not, as the writer's next read falls)
    assert lrs0[3] == [pytest.approx(0.1)] and lrs0[7] == [pytest.approx(0.04)]
    assert lrs1[7] == [pytest.approx(0.1), pytest.approx(0.2)]


def test_an_edit_the_optimizer_refuses_is_in_the_runs_control_error(tmp_path):
    """Rank 0 (or a single process): the monitor acknowledged the edit when
    it read it; the optimizer's refusal, found by the training thread, goes
    into the run's control_error, so ttop shows it refused, not applied."""
    from ttop.integrations._common import Bridge, LRControl
    from ttop.levers.control import edit_state
    from ttop.progress import write_control

    class Picky(LRControl):
        def read(self):
            return {"lr": 0.1}

        def apply(self, name, value):
            return "a learning rate must be a finite number >= 0, not %r" % value if value < 0 else None

    b = Bridge(None, {"folder": str(tmp_path), "run_name": "one", "interval": 0.1}, rank_zero_only=True,
               track_lr=True, default_handle_signals=False)
    m = b.open(0)
    try:
        b.set_lr(Picky())
        write_control(str(tmp_path), "one", 1, {"lr": -1.0})
        wait_until(lambda: b.pending)
        b.apply_pending()  # the training thread, at the next batch
        d = wait_until(lambda: (lambda d: d if d and d.get("control_error") else None)(load(tmp_path / "one.json")))
        assert d["control_seq"] == 1
        assert edit_state(d, 1, "lr") == ("refused", "refused lr: a learning rate must be a finite number >= 0, not -1.0")
    finally:
        m.set_finished()


FOLLOWER = r'''
import os, signal, subprocess, sys, time
from ttop.integrations._ranks import RankFollower

folder = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1))
f = RankFollower(folder, "job", 1, 2, 0.05, lambda *a: None)
f.start()
print(child.pid, flush=True)
deadline = time.monotonic() + 120
while not got and time.monotonic() < deadline:
    time.sleep(0.02)
open(os.path.join(folder, "usr1"), "w").close()
time.sleep(600)
'''


@pytest.mark.timeout(120)
def test_a_rank_answers_a_request_to_signal_the_runs_tree(tmp_path, spawn):
    """A remote 'SIGTERM tree' (or any tree request) is for every rank: each
    acknowledges it in its own file and signals its own tree. Requests for
    the main process are rank 0's alone."""
    from ttop.levers.control import write_signal_request

    script = tmp_path / "follower.py"
    script.write_text(FOLLOWER)
    p = spawn([sys.executable, str(script), str(tmp_path)], env=env(), stdout=subprocess.PIPE)
    child = int(p.stdout.readline())
    p.stdout.close()
    path = tmp_path / ".job.rank1.json"
    wait_until(lambda: load(path))
    data = {"status": "RUNNING", "control_seq": 0, "started_at": time.time() - 60}  # rank 0's file, as ttop reads it
    write_signal_request(str(tmp_path), "job", data, "SIGUSR1", "main")
    time.sleep(0.5)  # ten polls of the follower
    assert load(path)["signal_ack"] is None and not (tmp_path / "usr1").exists()
    data["signal_ack"] = {"seq": 1, "ok": True}  # rank 0 answered that one
    seq = write_signal_request(str(tmp_path), "job", data, "SIGUSR1", "tree")
    ack = wait_until(lambda: (lambda d: d and d["signal_ack"] and d["signal_ack"]["seq"] == seq and d["signal_ack"])(load(path)))
    wait_until(lambda: (tmp_path / "usr1").exists())
    assert ack["name"] == "SIGUSR1" and ack["target"] == "tree"
    ack = wait_until(lambda: (lambda a: a if a["ok"] and a["result"].startswith("sent") else None)(load(path)["signal_ack"]))
    assert ack["result"] == "sent SIGUSR1 to 2 processes of pid %d's tree" % p.pid
    assert p.poll() is None
    assert wait_until(lambda: psutil_status(child) in ("zombie", None))  # SIGUSR1 ended the child (default action)


def psutil_status(pid):
    import psutil

    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return None


def test_rank_files_validate_against_the_rank_schema(tmp_path):
    """docs/rank.schema.json describes what a rank really writes, running
    and ended."""
    jsonschema = pytest.importorskip("jsonschema")
    from conftest import ROOT
    from ttop.integrations._ranks import RankFollower

    with open(ROOT / "docs" / "rank.schema.json") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    f = RankFollower(str(tmp_path), "job", 1, 2, 0.05, lambda *a: None)
    f.track({"lr": 0.1})
    f.start()
    try:
        d = wait_until(lambda: (lambda d: d if d and d.get("resources") else None)(load(tmp_path / ".job.rank1.json")))
        assert set(d) <= set(schema["properties"]), set(d) - set(schema["properties"])
        assert list(validator.iter_errors(d)) == []
    finally:
        f.end("FAILED", "RuntimeError: rank 1 blew up")
    d = load(tmp_path / ".job.rank1.json")
    assert list(validator.iter_errors(d)) == [] and set(d) == set(schema["properties"])
    assert list(validator.iter_errors(dict(d, rank=0))) and list(validator.iter_errors(dict(d, status="DONE")))
