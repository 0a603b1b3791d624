"""Lightning + ttop: a tiny model on synthetic data, seconds on a CPU.

    pip install 'ttop-monitor[integrations]'      # or: pip install lightning
    python examples/lightning_example.py           # writes progress/lightning-example.json
    ttop progress                                  # in another terminal

Validation runs twice per epoch (``val_check_interval=0.5``); edit ``lr`` in
ttop (key ``e``): the optimizer takes it at the next batch and the StepLR
schedule goes on from it.
"""
import argparse

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from ttop.integrations.lightning import TtopCallback


class Regressor(L.LightningModule):
    def __init__(self, lr: float, fail_at: int = -1) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        self.lr = lr
        self.fail_at = fail_at

    def training_step(self, batch, batch_idx):
        if self.global_step == self.fail_at:
            raise RuntimeError("synthetic failure at step %d" % self.global_step)
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def loader(n: int, batch_size: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="progress")
    ap.add_argument("--name", default="lightning-example")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=20, help="train batches per epoch")
    ap.add_argument("--val-batches", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--val-check-interval", type=float, default=0.5)
    ap.add_argument("--interval", type=float, default=1.0, help="ttop write interval")
    ap.add_argument("--fail-at", type=int, default=-1, help="raise at this global step")
    ap.add_argument("--step-time", type=float, default=0.0, help="sleep per train batch (to watch it)")
    args = ap.parse_args()

    model = Regressor(args.lr, args.fail_at)
    if args.step_time > 0:
        import time

        model.on_train_batch_start = lambda *a: time.sleep(args.step_time)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        val_check_interval=args.val_check_interval,
        num_sanity_val_steps=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        callbacks=[TtopCallback(folder=args.folder, run_name=args.name, interval=args.interval)],
    )
    trainer.fit(model, loader(args.batches * 8, 8, 0), loader(args.val_batches * 8, 8, 1))


if __name__ == "__main__":
    main()
