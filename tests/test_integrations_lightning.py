"""ttop.integrations.lightning with the real Lightning, on CPU, in
subprocesses: epochs, phases and totals with a mid-epoch validation, metrics,
an lr edit that survives StepLR, an exception (FAILED) and SIGTERM
(CANCELED)."""
from __future__ import annotations

import pytest

from integrations_helpers import TIMEOUT, edit_when_ready, finish, load, need, output, sigterm_when_running, start, write_driver

need("lightning")
need("torch")

pytestmark = [pytest.mark.timeout(TIMEOUT), pytest.mark.slow]

DRIVER = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from ttop.integrations.lightning import TtopCallback

EDIT_AT = 13  # epoch index 1, batch 5: after the mid-epoch validation


class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        opt = self.trainer.optimizers[0]
        TRACE.append((self.global_step, opt.param_groups[0]["lr"]))
        if MODE == "main" and self.global_step == EDIT_AT:
            handshake(MODE)
        if MODE == "boom" and self.global_step == 3:
            raise RuntimeError("boom at step 3: the real error")
        if MODE == "term":
            if self.global_step == 2:
                open(os.path.join(FOLDER, MODE + ".ready"), "w").close()
            time.sleep(0.05)
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, i):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def data(n):
    x = torch.randn(n, 4)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=2)


trainer = L.Trainer(
    max_epochs=1000 if MODE == "term" else 2, val_check_interval=0.5, num_sanity_val_steps=1,
    accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=[TtopCallback(folder=FOLDER, run_name=MODE, interval=0.2)],
)
try:
    trainer.fit(M(), data(16), data(6))
finally:
    dump_trace(MODE)
'''


def test_epochs_phases_metrics_and_an_lr_edit_through_steplr(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "main")
    mid = edit_when_ready(p, folder, "main", "lr", 0.04)
    finish(p, tmp_path, "main")
    # at global step 13: epoch 2 of 2 (1-based), batch 6 of 8, after the
    # mid-epoch validation (3 of 3) the train counter went on
    assert (mid["epoch"], mid["total_epochs"], mid["phase"]) == (2, 2, "train"), mid
    assert (mid["train_batch"], mid["train_total_batches"]) == (6, 8), mid
    assert (mid["val_batch"], mid["val_total_batches"]) == (3, 3), mid
    assert mid["control_error"] is None

    d = load(folder / "main.json")
    assert d["status"] == "FINISHED" and d["error"] is None, output(tmp_path, "main")
    assert (d["epoch"], d["total_epochs"]) == (2, 2)
    assert (d["train_batch"], d["train_total_batches"], d["val_batch"], d["val_total_batches"]) == (8, 8, 3, 3)
    assert isinstance(d["metrics"]["train_loss"], float) and isinstance(d["metrics"]["val_loss"], float)
    assert len(d["history"]["train_loss"]) >= 1

    trace = dict(load(folder / "main.trace.json"))
    # StepLR (step 3, gamma 0.5) from 0.1: step 13 still had the schedule's lr
    assert trace[13] == pytest.approx(0.1 * 0.5 ** 4)
    # the edit applies from the next batch, and the next scheduler step
    # (at step 15) halves the edited value instead of overwriting it
    assert trace[14] == pytest.approx(0.04)
    assert trace[15] == pytest.approx(0.02)
    assert d["variables"]["lr"] == pytest.approx(0.02)  # shown as the optimizer has it


def test_exception_gives_failed_with_the_real_error(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "boom")
    finish(p, tmp_path, "boom", expect_rc=1)
    d = load(folder / "boom.json")
    assert d["status"] == "FAILED", output(tmp_path, "boom")
    assert "RuntimeError: boom at step 3: the real error" in d["error"]
    assert d["epoch"] == 1 and d["train_batch"] == 4


def test_sigterm_gives_canceled(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "term")
    d = sigterm_when_running(p, folder, "term")
    assert d["status"] == "CANCELED", output(tmp_path, "term")
    assert d["error"] == "received SIGTERM"


RESUME_DRIVER = '''
import glob
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from ttop.integrations.lightning import TtopCallback


class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def training_step(self, batch, i):
        if MODE == "first" and self.global_step == 13:
            raise SystemExit(3)  # the job killed after its checkpoint at step 12
        if MODE == "resume" and self.current_epoch == 1 and i == 6:
            t0, seen = time.time(), None  # mid-way through the resumed epoch: a file written from now
            while time.time() < t0 + 60 and not (seen and seen.get("updated_at", 0) > t0):
                time.sleep(0.02)
                seen = progress(MODE)
            with open(os.path.join(FOLDER, "mid.json"), "w") as f:
                json.dump(seen, f)
        return self.net(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), 0.1)


ckdir = os.path.join(FOLDER, "..", "ck")
loader = DataLoader(TensorDataset(torch.randn(40, 2)), batch_size=4)  # 10 batches an epoch
trainer = L.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_model_summary=False,
                    callbacks=[TtopCallback(folder=FOLDER, run_name=MODE, interval=0.05),
                               ModelCheckpoint(dirpath=ckdir, every_n_train_steps=12, save_top_k=-1)])
trainer.fit(M(), loader, ckpt_path=None if MODE == "first" else glob.glob(os.path.join(ckdir, "*.ckpt"))[0])
'''


def test_a_fit_resumed_mid_epoch_shows_its_epoch(tmp_path, spawn):
    """Resumed from a checkpoint taken mid-epoch, Lightning goes on with the
    epoch without calling on_train_epoch_start: the resumed epoch showed no
    epoch and no total (its batches loose) until the next one began. The
    first training batch of an epoch not started starts it."""
    driver = write_driver(tmp_path, RESUME_DRIVER)
    p, folder = start(spawn, tmp_path, driver, "first")
    finish(p, tmp_path, "first", expect_rc=3)
    p, folder = start(spawn, tmp_path, driver, "resume")
    finish(p, tmp_path, "resume")
    mid = load(folder / "mid.json")
    assert mid is not None, output(tmp_path, "resume")
    assert (mid["epoch"], mid["total_epochs"], mid["phase"], mid["train_total_batches"]) == (2, 3, "train", 10), mid
    d = load(folder / "resume.json")
    assert d["status"] == "FINISHED" and (d["epoch"], d["train_batch"], d["train_total_batches"]) == (3, 10, 10), d
