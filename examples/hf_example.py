"""Hugging Face Trainer + ttop: a tiny BERT built from a config, synthetic
token ids, seconds on a CPU (no downloads).

    pip install 'ttop-monitor[integrations]'     # or: pip install transformers accelerate
    python examples/hf_example.py                 # writes progress/hf-example.json
    ttop progress                                 # in another terminal

Gradient accumulation is 2, so one batch in ttop is one optimizer step (the
Trainer's ``global_step``); evaluation runs every 5 steps, inside the epoch.
Edit ``lr`` in ttop (key ``e``): the linear schedule goes on from it.
"""
import argparse
import os

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from ttop.integrations.transformers import TtopCallback


class Synthetic(torch.utils.data.Dataset):
    def __init__(self, n: int, seq: int, vocab: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, vocab, (n, seq), generator=g)
        self.labels = (self.ids[:, 0] % 2).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default="progress")
    ap.add_argument("--name", default="hf-example")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--samples", type=int, default=80, help="training samples (batch size 4)")
    ap.add_argument("--accum", type=int, default=2, help="gradient accumulation steps")
    ap.add_argument("--eval-steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--interval", type=float, default=1.0, help="ttop write interval")
    ap.add_argument("--out", default=None, help="Trainer output_dir (default: a temporary folder)")
    args = ap.parse_args()

    config = BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, num_labels=2,
    )
    model = BertForSequenceClassification(config)
    import tempfile

    out = args.out or tempfile.mkdtemp(prefix="hf-example-")
    targs = TrainingArguments(
        output_dir=out,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        gradient_accumulation_steps=args.accum,
        learning_rate=args.lr,
        lr_scheduler_type="linear",
        eval_strategy="steps",
        eval_steps=args.eval_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    callback = TtopCallback(folder=args.folder, run_name=args.name, interval=args.interval)
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=Synthetic(args.samples, 12, 64, 0),
        eval_dataset=Synthetic(16, 12, 64, 1),
        callbacks=[callback],
    )
    trainer.train()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
