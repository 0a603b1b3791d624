"""A multi-rank job as one ttop run: Lightning DDP, 2 ranks with gloo on CPU.

    pip install 'ttop-monitor[integrations]'
    torchrun --standalone --nproc_per_node=2 examples/torchrun_example.py
    ttop progress                       # in another terminal

Rank 0 writes progress/torchrun-example.json; rank 1 follows the run's
control file, so an ``lr`` edit made in ttop (key ``e``) is applied on both
ranks, and leaves its status in progress/.torchrun-example.rank1.json. In
ttop, ``t`` on the run shows a row per rank ([R0], [R1]) with its processes,
and the run's CPU and RAM are the sums over both ranks.
``--fail-rank 1 --fail-at 30`` makes rank 1 raise: the run is FAILED with
rank 1's error, not with rank 0's "connection closed" that follows it.
"""
import argparse
import os
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from ttop.integrations.lightning import TtopCallback


class Regressor(L.LightningModule):
    def __init__(self, fail_rank: int, fail_at: int, step_time: float) -> None:
        super().__init__()
        self.net = torch.nn.Linear(16, 1)
        self.fail_rank, self.fail_at, self.step_time = fail_rank, fail_at, step_time

    def training_step(self, batch, batch_idx):
        if self.global_rank == self.fail_rank and self.global_step == self.fail_at:
            raise RuntimeError("rank %d blew up at step %d" % (self.global_rank, self.global_step))
        time.sleep(self.step_time)
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, sync_dist=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.ExponentialLR(opt, 0.9)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="progress")
    ap.add_argument("--name", default="torchrun-example")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--step-time", type=float, default=0.05, help="sleep per step (to watch it)")
    ap.add_argument("--fail-rank", type=int, default=-1)
    ap.add_argument("--fail-at", type=int, default=-1, help="global step at which --fail-rank raises")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 16, generator=g)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        strategy="ddp",
        accelerator="cpu",
        devices=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[TtopCallback(folder=args.folder, run_name=args.name)],
    )
    trainer.fit(Regressor(args.fail_rank, args.fail_at, args.step_time), data)


if __name__ == "__main__":
    main()
