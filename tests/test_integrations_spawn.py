"""A framework callback sent to spawned processes: Lightning's
``strategy="ddp_spawn"`` pickles the trainer, callbacks included, into each
rank it starts (so does any launcher of the ``spawn`` start method). The
callback refused to be pickled ("cannot pickle '_thread.lock' object") and
the fit never started."""
from __future__ import annotations

import pickle

import pytest

from integrations_helpers import TIMEOUT, finish, load, output, start, write_driver
from ttop.integrations._common import Bridge


def test_a_bridge_is_sent_without_its_run(tmp_path):
    b = Bridge(None, {"folder": str(tmp_path), "run_name": "sent", "interval": 0.05},
               rank_zero_only=True, track_lr=True, default_handle_signals=False)
    m = b.open(0, total_epochs=2)  # a run of this process: not what another process gets
    assert m is not None
    try:
        copy = pickle.loads(pickle.dumps(b))
    finally:
        b.finish()
    assert (copy.monitor, copy.follower, copy.lr, copy.pending) == (None, None, None, False)
    assert copy.kwargs == b.kwargs and copy.output_file is None
    copy.pending = True  # its own lock: an edit handed over there is applied there
    copy.apply_pending()
    m2 = copy.open(0, total_epochs=2)  # the copy starts a run of its own (the first has ended)
    assert m2 is not None and m2 is not m
    m2.start_epoch(1)
    copy.finish()
    assert load(tmp_path / "sent.json")["status"] == "FINISHED"


DRIVER = '''
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning as L
from ttop.integrations.lightning import TtopCallback


class M(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def training_step(self, batch, i):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, sync_dist=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


if __name__ == "__main__":
    x = torch.randn(64, 4)
    trainer = L.Trainer(max_epochs=2, strategy="ddp_spawn", accelerator="cpu", devices=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[TtopCallback(folder=FOLDER, run_name=MODE, interval=0.05)])
    trainer.fit(M(), DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4))
'''


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.slow
def test_lightning_ddp_spawn_is_one_run_of_two_ranks(tmp_path, spawn):
    pytest.importorskip("lightning")
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "spawned")
    finish(p, tmp_path, "spawned")
    d = load(folder / "spawned.json")
    assert d is not None, output(tmp_path, "spawned")
    # 64 samples, batches of 4, two ranks: 8 batches a rank and epoch
    assert (d["status"], d["epoch"], d["total_epochs"], d["train_batch"], d["train_total_batches"]) == (
        "FINISHED", 2, 2, 8, 8), d
    r1 = load(folder / ".spawned.rank1.json")
    assert r1 is not None and (r1["status"], r1["world_size"]) == ("FINISHED", 2), r1
