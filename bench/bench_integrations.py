"""Per-step cost of each ttop callback against the framework's own progress
bar, measured in the same run on the same machine.

    pip install -e '.[integrations]'
    python bench/bench_integrations.py                  # about a minute plus the imports
    python bench/bench_integrations.py --only keras --steps 5000 --repeats 11

For each framework a tiny real training run is started with both callbacks
installed; at its third step a probe calls, with the live trainer, model,
batch and logs, the per-step hooks of

* the ttop callback (Lightning: ``on_train_batch_start`` + ``_end``; HF:
  ``on_step_begin`` + ``on_step_end``; Keras: ``on_train_batch_begin`` +
  ``_end``), and
* the framework's progress bar (Lightning's ``TQDMProgressBar``, the HF
  Trainer's ``ProgressCallback``, Keras' ``ProgbarLogger``), the same hooks,

``--steps`` times each, in interleaved rounds (ttop, bar, bare loop, ...),
timed by this thread's CPU clock (so that other processes on a loaded
machine do not count; the bars' writes to the terminal do),
with the batch index / global step advancing as in training and fds 1 and 2
sent to /dev/null (the bars draw there). Printed: the median ns/step of
each, less the bare loop, and the ratio ttop / bar (target <= 1). Exit
status 1 if a target is missed.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("KERAS_BACKEND", "torch")

RESULTS: Dict[str, Dict[str, float]] = {}


class Quiet:
    """fds 1 and 2 to /dev/null (the progress bars draw there)."""

    def __enter__(self) -> "Quiet":
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.close(null)
        return self

    def __exit__(self, *exc: Any) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])


def measure(name: str, candidates: Dict[str, Callable[[int], None]], steps: int, repeats: int) -> None:
    """Median ns per step of each candidate (called with a step index that
    keeps advancing), round-robin."""
    times: Dict[str, List[float]] = {k: [] for k in candidates}
    start = {k: 10 for k in candidates}
    with Quiet():
        for _ in range(repeats):
            for k, fn in candidates.items():
                i0 = start[k]
                t0 = time.thread_time_ns()
                for i in range(i0, i0 + steps):
                    fn(i)
                times[k].append((time.thread_time_ns() - t0) / steps)
                start[k] = i0 + steps
    RESULTS[name] = {k: statistics.median(v) for k, v in times.items()}


def bench_lightning(args: argparse.Namespace, folder: str) -> None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import TQDMProgressBar
    from torch.utils.data import DataLoader, TensorDataset

    from ttop.integrations.lightning import TtopCallback

    ttop_cb = TtopCallback(folder=folder, run_name="bench-lightning")
    bar = TQDMProgressBar()

    class Probe(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx != 2:
                return

            def ours(i: int) -> None:
                ttop_cb.on_train_batch_start(trainer, pl_module, batch, i)
                ttop_cb.on_train_batch_end(trainer, pl_module, outputs, batch, i)

            def theirs(i: int) -> None:
                bar.on_train_batch_start(trainer, pl_module, batch, i)
                bar.on_train_batch_end(trainer, pl_module, outputs, batch, i)

            measure("lightning", {"ttop": ours, "bar": theirs, "bare": lambda i: None}, args.steps, args.repeats)
            trainer.should_stop = True

    class M(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, i):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x = torch.randn(64, 4)
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_model_summary=False, callbacks=[ttop_cb, bar, Probe()],
    )
    with Quiet():
        trainer.fit(M(), DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4))


def bench_transformers(args: argparse.Namespace, folder: str) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import ProgressCallback

    from ttop.integrations.transformers import TtopCallback

    ttop_cb = TtopCallback(folder=folder, run_name="bench-transformers")
    holder: Dict[str, Any] = {}

    class Probe(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):
            if state.global_step != 3:
                return
            bar = holder["bar"]
            s_ours, s_bar = copy.copy(state), copy.copy(state)

            def ours(i: int) -> None:
                ttop_cb.on_step_begin(targs, s_ours, control, **kw)
                s_ours.global_step = i
                ttop_cb.on_step_end(targs, s_ours, control, **kw)

            def theirs(i: int) -> None:
                bar.on_step_begin(targs, s_bar, control, **kw)
                s_bar.global_step = i
                bar.on_step_end(targs, s_bar, control, **kw)

            measure("transformers", {"ttop": ours, "bar": theirs, "bare": lambda i: None}, args.steps, args.repeats)
            control.should_training_stop = True

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 64

        def __getitem__(self, i):
            return {"input_ids": torch.arange(8) % 32, "labels": i % 2}

    config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    targs = TrainingArguments(output_dir=tempfile.mkdtemp(), num_train_epochs=1, per_device_train_batch_size=4,
                              logging_steps=1, save_strategy="no", report_to="none", use_cpu=True)
    trainer = Trainer(model=BertForSequenceClassification(config), args=targs, train_dataset=Data(),
                      callbacks=[ttop_cb, Probe()])
    holder["bar"] = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, ProgressCallback))
    with Quiet():
        trainer.train()


def bench_keras(args: argparse.Namespace, folder: str) -> None:
    import keras
    import numpy as np

    from ttop.integrations.keras import TtopCallback

    ttop_cb = TtopCallback(folder=folder, run_name="bench-keras")

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch != 2:
                return
            bar = keras.callbacks.ProgbarLogger()
            bar.set_params(dict(self.params, verbose=1))
            bar.set_model(self.model)
            bar.on_train_begin()
            bar.on_epoch_begin(0)
            logs = dict(logs or {})

            def ours(i: int) -> None:
                ttop_cb.on_train_batch_begin(i)
                ttop_cb.on_train_batch_end(i, logs)

            def theirs(i: int) -> None:
                bar.on_train_batch_begin(i)
                bar.on_train_batch_end(i, logs)

            measure("keras", {"ttop": ours, "bar": theirs, "bare": lambda i: None}, args.steps, args.repeats)
            self.model.stop_training = True

    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", metrics=["mae"])
    with Quiet():
        model.fit(x, x.sum(axis=1, keepdims=True), batch_size=4, epochs=1, verbose=1, callbacks=[ttop_cb, Probe()])


BENCHES = {"lightning": bench_lightning, "transformers": bench_transformers, "keras": bench_keras}
BARS = {"lightning": "TQDMProgressBar", "transformers": "ProgressCallback", "keras": "ProgbarLogger"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="hook calls per round (default 2000)")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds (default 7)")
    ap.add_argument("--only", default=",".join(BENCHES), help="comma-separated frameworks")
    args = ap.parse_args()
    print("python %s, %s, %d CPUs" % (platform.python_version(), platform.machine(), os.cpu_count() or 0))
    folder = tempfile.mkdtemp(prefix="ttop-bench-")
    for name in args.only.split(","):
        try:
            BENCHES[name](args, folder)
        except ImportError as e:
            print("%-13s skipped: %s" % (name, e))
    ok = True
    print("%-13s %16s %18s %16s %10s" % ("framework", "ttop ns/step", "bar ns/step", "bare loop ns", "ttop/bar"))
    for name, r in RESULTS.items():
        ours, bar, bare = r["ttop"] - r["bare"], r["bar"] - r["bare"], r["bare"]
        ratio = ours / bar if bar > 0 else float("inf")
        verdict = "PASS" if ratio <= 1.0 else "FAIL"
        ok = ok and ratio <= 1.0
        print("%-13s %16.0f %18.0f %16.0f %9.3f  %s (bar: %s)" % (name, ours, bar, bare, ratio, verdict, BARS[name]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
