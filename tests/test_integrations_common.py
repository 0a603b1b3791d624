"""What the framework callbacks share: imports (no framework pulled in by
another, a one-line ImportError when one is missing), the rank from the
launcher's environment, and lr edits that survive torch's LR schedulers."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import ROOT
from ttop.integrations._common import check_monitor_args, rank_from_env

FRAMEWORKS = ("torch", "lightning", "pytorch_lightning", "transformers", "keras", "tensorflow", "jax")


def run_py(code: str, **env):
    import os

    e = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch")
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=300)


def test_import_ttop_and_the_package_import_no_framework():
    r = run_py(
        "import sys, ttop, ttop.integrations\n"
        "from ttop import TrainingMonitor\n"
        "print(sorted(m for m in %r if m in sys.modules))" % (FRAMEWORKS,)
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "module, blocked, install",
    [
        ("lightning", ("lightning", "lightning.pytorch", "pytorch_lightning"), "pip install lightning"),
        ("transformers", ("transformers", "transformers.trainer_callback"), "pip install transformers"),
        ("keras", ("keras",), "pip install keras"),
    ],
)
def test_a_missing_framework_is_a_one_line_import_error(module, blocked, install):
    r = run_py(
        "import sys\n"
        "for name in %r: sys.modules[name] = None\n"
        "try:\n"
        "    import ttop.integrations.%s\n"
        "except ImportError as e:\n"
        "    print(e)\n" % (blocked, module)
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ttop.integrations.%s needs" % module), r.stdout
    assert install in lines[0]


@pytest.mark.slow
@pytest.mark.timeout(600)  # a framework's import: 30 s for lightning on a loaded machine here
@pytest.mark.parametrize(
    "module, framework",
    [("lightning", "lightning.pytorch"), ("transformers", "transformers.trainer_callback"), ("keras", "keras")],
)
def test_importing_one_integration_imports_no_other_framework(module, framework):
    """Beyond what the framework imports itself (Lightning imports
    transformers when it is installed)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip("%s is not installed (pip install -e '.[integrations]')" % module)
    r = run_py(
        "import sys\n"
        "import %s\n"
        "before = set(sys.modules)\n"
        "import ttop.integrations.%s\n"
        "print(sorted(m for m in %r if m in sys.modules and m not in before))" % (framework, module, FRAMEWORKS)
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, (0, 0, 1)),
        ({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}, (3, 1, 4)),  # torchrun, accelerate, DeepSpeed
        ({"LOCAL_RANK": "1"}, (1, 1, 2)),
        ({"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"}, (5, 1, 8)),
        ({"RANK": "0", "WORLD_SIZE": "2", "SLURM_PROCID": "7"}, (0, 0, 2)),  # torchrun inside a SLURM step
        ({"RANK": "x", "SLURM_PROCID": "2"}, (2, 2, 3)),
        # -1: "not distributed" (the default of many scripts' --local_rank, exported): rank 0,
        # not a rank -1 that reported nothing and followed nothing, without a word
        ({"LOCAL_RANK": "-1"}, (0, 0, 1)),
        ({"RANK": "-1", "LOCAL_RANK": "-1", "WORLD_SIZE": "-1"}, (0, 0, 1)),
    ],
)
def test_rank_from_env(env, expected):
    assert rank_from_env(env) == expected


def test_a_bad_monitor_argument_is_refused_when_the_callback_is_made():
    with pytest.raises(TypeError, match="run_nmae"):
        check_monitor_args(None, {"run_nmae": "x"})
    check_monitor_args(None, {"run_name": "x", "interval": 0.5})


# ---------------------------------------------------------------------------
# lr edits against torch's schedulers (in process: only torch needed)


@pytest.fixture(scope="module")
def torch():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install -e '.[integrations]')")
    import torch

    return torch


def make(torch, groups=1, lr=0.1):
    params = [[torch.nn.Parameter(torch.zeros(2))] for _ in range(groups)]
    return torch.optim.SGD([{"params": p} for p in params], lr=lr)


def run_steps(opt, sched, n):
    out = []
    for _ in range(n):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out

def twin_schedules(torch, factory):
    """The same schedule twice, both 3 steps in; the second under TorchLR."""
    from ttop.integrations._torch import TorchLR

    ref_opt, opt = make(torch), make(torch)
    ref, sched = factory(ref_opt), factory(opt)
    run_steps(ref_opt, ref, 3)
    run_steps(opt, sched, 3)
    return ref_opt, ref, opt, sched, TorchLR([opt], [sched])



def test_edit_survives_lambda_lr_and_scales_the_schedule(torch):
    from ttop.integrations._torch import TorchLR

    opt = make(torch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    run_steps(opt, sched, 3)  # lr = 0.1 / 4
    lr = TorchLR([opt], [sched])
    assert lr.read() == {"lr": pytest.approx(0.025)}
    assert lr.apply("lr", 0.05) is None  # x2
    assert opt.param_groups[0]["lr"] == 0.05 and sched.get_last_lr() == [0.05]
    assert run_steps(opt, sched, 1) == [pytest.approx(0.2 / 5)]  # the schedule goes on, doubled


def test_edit_survives_step_cosine_onecycle_cyclic_and_sequential(torch):

    cases = {
        "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
        "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
        "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20),
        "cyclic": lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4),
        "sequential": lambda o: torch.optim.lr_scheduler.SequentialLR(
            o,
            [torch.optim.lr_scheduler.LinearLR(o, 0.5, 1.0, total_iters=2), torch.optim.lr_scheduler.ExponentialLR(o, 0.9)],
            milestones=[2],
        ),
    }
    for name, factory in cases.items():
        # the same schedule twice: one edited to x3 after 3 steps
        ref_opt, ref, opt, sched, lr = twin_schedules(torch, factory)
        now = opt.param_groups[0]["lr"]
        assert lr.apply("lr", now * 3) is None, name
        assert opt.param_groups[0]["lr"] == pytest.approx(now * 3), name
        expected = [x * 3 for x in run_steps(ref_opt, ref, 4)]
        assert run_steps(opt, sched, 4) == pytest.approx(expected), name


def test_a_pause_to_zero_and_a_resume_go_on_with_the_schedule(torch):
    """lr edited to 0 (pause the learning) and then back: the edit to 0
    scaled the schedule's values to 0, the resume had no factor to scale
    them back by, and the next scheduler step (OneCycleLR, cosine, ...)
    set the lr to 0 again: the run went on without learning. The resume
    scales the values the schedule had at the pause."""

    cases = {
        "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20),
        "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
        "cyclic": lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4),
    }
    for name, factory in cases.items():
        ref_opt, ref, opt, sched, lr = twin_schedules(torch, factory)
        now = opt.param_groups[0]["lr"]
        assert lr.apply("lr", 0.0) is None, name
        assert run_steps(opt, sched, 2) == [0.0, 0.0], name  # paused
        run_steps(ref_opt, ref, 2)
        assert lr.apply("lr", now / 2) is None, name  # resumed at half the lr it had
        expected = [x / 2 for x in run_steps(ref_opt, ref, 4)]
        got = run_steps(opt, sched, 4)
        assert all(x > 0 for x in got), (name, got)  # learning again
        if name == "onecycle":  # (its lr is worked out from the group's values, not from the last lr)
            assert got == pytest.approx(expected)


def test_edit_during_a_warmup_from_zero_sets_the_base(torch):
    from ttop.integrations._torch import TorchLR

    opt = make(torch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / 4, 1.0))  # lr 0 at step 0
    lr = TorchLR([opt], [sched])
    assert lr.read() == {"lr": 0.0}
    assert lr.apply("lr", 0.5) is None
    assert run_steps(opt, sched, 4)[-1] == pytest.approx(0.5)  # the peak is the edited value


def test_param_groups_and_optimizers_are_named(torch):
    from ttop.integrations._torch import TorchLR

    same = make(torch, groups=2)  # the HF Trainer's decay / no-decay groups share one lr
    assert list(TorchLR([same]).read()) == ["lr"]
    lr = TorchLR([same])
    lr.apply("lr", 0.3)
    assert [g["lr"] for g in same.param_groups] == [0.3, 0.3]

    differ = make(torch, groups=2)
    differ.param_groups[1]["lr"] = 0.01
    assert TorchLR([differ]).read() == {"lr/0": 0.1, "lr/1": 0.01}
    assert list(TorchLR([make(torch), differ]).read()) == ["lr/0", "lr/1.0", "lr/1.1"]


def test_param_groups_of_different_lrs_are_told_apart_during_a_warmup_from_zero(torch):
    """Groups with lrs of their own (a backbone at 1e-4, a head at 1e-2)
    under a warm-up from 0: when training starts every lr is 0, and the
    groups were taken for one lr, "lr", that showed the first group's only;
    an edit set every group to the one value, the head's and backbone's
    ratio lost. The schedule's base (``initial_lr``) tells them apart."""
    from ttop.integrations._torch import TorchLR

    opt = make(torch, groups=2)
    opt.param_groups[0]["lr"], opt.param_groups[1]["lr"] = 1e-4, 1e-2
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / 4, 1.0))  # lr 0 at step 0
    lr = TorchLR([opt], [sched])
    assert lr.read() == {"lr/0": 0.0, "lr/1": 0.0}
    assert lr.apply("lr/1", 0.02) is None  # the head's peak doubled, the backbone's kept
    run_steps(opt, sched, 4)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(1e-4), pytest.approx(0.02)]
    assert lr.read() == {"lr/0": pytest.approx(1e-4), "lr/1": pytest.approx(0.02)}


def test_bad_values_are_not_applied(torch):
    from ttop.integrations._torch import TorchLR

    opt = make(torch)
    lr = TorchLR([opt])
    assert "finite" in lr.apply("lr", float("nan"))
    assert "finite" in lr.apply("lr", -1.0)
    assert lr.apply("nope", 1.0) is not None
    assert opt.param_groups[0]["lr"] == 0.1


def test_a_count_beyond_what_the_monitor_takes_is_unknown_not_an_error_in_training(tmp_path):
    """fit(epochs=sys.maxsize) with early stopping (train until it stops),
    or steps_per_epoch=sys.maxsize for an endless dataset: the monitor
    takes counts up to 2**53 and raises beyond them, and the callbacks
    passed the framework's counts on, so its hook raised and training
    stopped. Such a count is shown as unknown."""
    import json

    from ttop.integrations._common import Bridge

    b = Bridge(None, {"folder": str(tmp_path), "run_name": "big", "gpu": False}, rank_zero_only=True,
               track_lr=False, default_handle_signals=False)
    m = b.open(0, total_epochs=sys.maxsize)
    b.start_epoch(1)
    b.start_phase("validation", 2 ** 60)
    b.resume_train(sys.maxsize)
    m.start_batch()
    b.finish()
    data = json.loads((tmp_path / "big.json").read_text())
    assert data["status"] == "FINISHED" and data["total_epochs"] is None and data["train_total_batches"] is None


def test_a_folder_that_cannot_be_written_is_refused_when_the_callback_is_made(tmp_path):
    """As TrainingMonitor does when it is made: the clear error comes before
    training starts, not from the framework's first hook."""
    from ttop.integrations._common import Bridge

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match="progress folder"):
        Bridge(None, {"folder": str(blocker), "run_name": "r"}, rank_zero_only=True, track_lr=False,
               default_handle_signals=False)
    with pytest.raises(OSError, match="parent .* does not exist"):
        Bridge(str(blocker / "sub" / "r.json"), {}, rank_zero_only=True, track_lr=False, default_handle_signals=False)


def test_a_folder_that_fails_when_training_starts_leaves_training_going(tmp_path, capfd):
    """The folder was fine when the callback was made and gone bad by the
    time training starts (removed and a file put there, a full disk): the
    framework's hook must not raise into training. One line says the run
    is not monitored; the callback's later hooks do nothing."""
    from ttop.integrations._common import Bridge

    folder = tmp_path / "progress"
    b = Bridge(None, {"folder": str(folder), "run_name": "r", "gpu": False}, rank_zero_only=True, track_lr=False,
               default_handle_signals=False)
    folder.rmdir()
    folder.write_text("not a folder any more")
    assert b.open(0, total_epochs=2) is None
    assert not b.active
    b.start_epoch(1)
    b.finish()
    err = capfd.readouterr().err
    assert err.count("ttop: this run is not monitored:") == 1 and "not a directory" in err
    assert err.rstrip().endswith("training continues")
    assert folder.read_text() == "not a folder any more"


def test_a_training_run_again_in_its_thread_takes_over_the_run_left_running(tmp_path):
    """A notebook cell's train() interrupted (HF and Keras have no exception
    hook, and a notebook no excepthook), then the cell run again with a new
    callback of the same run name: the first run, left RUNNING by this very
    process, held the name, and the new training was refused with
    RunNameInUseError. A run left by a training of this thread is over: it
    ends CANCELED saying so, and the new one takes the name. A run of
    another thread (a training going on there) still holds it."""
    import json
    import threading

    from ttop.integrations._common import Bridge
    from ttop.monitor.names import RunNameInUseError

    def bridge():
        return Bridge(None, {"folder": str(tmp_path), "run_name": "nb", "gpu": False}, rank_zero_only=True,
                      track_lr=False, default_handle_signals=False)

    first = bridge()
    m1 = first.open(0)
    first.start_epoch(1)
    m1.start_batch()  # ... and the cell was interrupted: no final call
    again = bridge()
    m2 = again.open(0)
    assert m2 is not None and m2.status == "RUNNING"
    assert m1.status == "CANCELED"
    assert json.loads((tmp_path / "nb.json").read_text())["status"] == "RUNNING"  # the new run's file
    again.finish()
    data = json.loads((tmp_path / "nb.json").read_text())
    assert data["status"] == "FINISHED" and data["error"] is None

    # a training going on in another thread keeps its name
    busy = bridge()
    opened = threading.Event()
    done = threading.Event()

    def train():
        busy.open(0)
        opened.set()
        done.wait(60)
        busy.finish()

    t = threading.Thread(target=train)
    t.start()
    try:
        assert opened.wait(60)
        with pytest.raises(RunNameInUseError):
            bridge().open(0)
        assert busy.monitor.status == "RUNNING"
    finally:
        done.set()
        t.join(60)

