"""ttop.integrations.transformers with the real HF Trainer, on CPU, in
subprocesses: optimizer-step totals under gradient accumulation, epochs,
evaluation inside the epoch, metrics, an lr edit that survives the linear
schedule, an uncaught exception (FAILED through the excepthook), the
context-manager form, and SIGTERM (CANCELED)."""
from __future__ import annotations

import signal

import pytest

from integrations_helpers import TIMEOUT, edit_when_ready, finish, load, need, output, sigterm_when_running, start, write_driver

need("transformers")
need("accelerate")
need("torch")

pytestmark = [pytest.mark.timeout(TIMEOUT), pytest.mark.slow]

DRIVER = '''
import tempfile
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments
from ttop.integrations.transformers import TtopCallback

EDIT_AT = 9  # optimizer steps done: epoch 2, after the evaluation at step 8
AGAIN = False  # "rerun": the second train()


class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        self.ids = torch.randint(0, 32, (n, 8))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": int(self.ids[i, 0] % 2)}


class Probe(TrainerCallback):
    def on_step_begin(self, args, state, control, optimizer=None, **kw):
        TRACE.append((state.global_step, optimizer.param_groups[0]["lr"]))
        if MODE == "term":
            time.sleep(0.05)

    def on_step_end(self, args, state, control, **kw):
        if MODE == "main" and state.global_step == EDIT_AT:
            handshake(MODE)
        if MODE in ("boom", "with") and state.global_step == 3:
            raise RuntimeError("boom at step 3: the real error")
        if MODE == "rerun" and state.global_step == 3 and not AGAIN:
            raise KeyboardInterrupt  # a notebook's "interrupt the kernel"
        if MODE == "term" and state.global_step == 2:
            open(os.path.join(FOLDER, MODE + ".ready"), "w").close()


config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=16, max_position_embeddings=16, num_labels=2)
args = TrainingArguments(
    output_dir=tempfile.mkdtemp(), num_train_epochs=1000 if MODE == "term" else 2,
    per_device_train_batch_size=4, per_device_eval_batch_size=4, gradient_accumulation_steps=2,
    learning_rate=1e-3, lr_scheduler_type="linear", eval_strategy="steps", eval_steps=4, logging_steps=1,
    save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
)
cb = TtopCallback(folder=FOLDER, run_name=MODE, interval=0.2)
# 48 samples / 4 = 12 micro-batches = 6 optimizer steps per epoch; eval: 12 / 4 = 3 batches
trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Data(48),
                  eval_dataset=Data(12), callbacks=[cb, Probe()])
if MODE == "with":
    try:
        with cb:
            trainer.train()
    except RuntimeError:
        print("caught")
elif MODE == "rerun":  # the cell interrupted, then run again with a new callback
    try:
        trainer.train()
    except KeyboardInterrupt:
        print("interrupted")
    AGAIN = True
    cb = TtopCallback(folder=FOLDER, run_name=MODE, interval=0.2)
    trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Data(48),
                      eval_dataset=Data(12), callbacks=[cb, Probe()])
    trainer.train()
else:
    try:
        trainer.train()
    finally:
        dump_trace(MODE)
'''


def test_steps_epochs_eval_metrics_and_an_lr_edit_through_the_schedule(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "main")
    mid = edit_when_ready(p, folder, "main", "lr", 1e-3)
    finish(p, tmp_path, "main")
    # 9 optimizer steps done: epoch 2 of 2, step 3 of 6 (accumulation 2:
    # steps, not micro-batches); the evaluation at step 8 (3 of 3 batches)
    # was inside the epoch and the train counter went on after it
    assert (mid["epoch"], mid["total_epochs"], mid["phase"]) == (2, 2, "train"), mid
    assert (mid["train_batch"], mid["train_total_batches"]) == (3, 6), mid
    assert (mid["val_batch"], mid["val_total_batches"]) == (3, 3), mid
    assert mid["control_error"] is None

    d = load(folder / "main.json")
    assert d["status"] == "FINISHED" and d["error"] is None, output(tmp_path, "main")
    assert (d["epoch"], d["train_batch"], d["train_total_batches"]) == (2, 6, 6)
    m = d["metrics"]
    for name in ("loss", "grad_norm", "learning_rate", "eval_loss", "train_loss"):
        assert isinstance(m[name], float), name
    assert "epoch" not in m

    trace = dict(load(folder / "main.trace.json"))  # optimizer steps done -> lr of the next step
    # linear decay over 12 steps from 1e-3: the step after s steps uses 1e-3 * (1 - s/12)
    assert trace[8] == pytest.approx(1e-3 * 4 / 12)
    # edited to 1e-3 (x4) once 9 steps were done: the next step uses it, and
    # the schedule goes on from it, scaled by 4, instead of overwriting it
    assert trace[9] == pytest.approx(1e-3)
    assert trace[10] == pytest.approx(4e-3 * 2 / 12)
    assert trace[11] == pytest.approx(4e-3 * 1 / 12)


def test_uncaught_exception_gives_failed_with_the_real_error(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "boom")
    finish(p, tmp_path, "boom", expect_rc=1)
    d = load(folder / "boom.json")
    assert d["status"] == "FAILED", output(tmp_path, "boom")
    assert "RuntimeError: boom at step 3: the real error" in d["error"]
    assert "boom at step 3" in output(tmp_path, "boom")  # Python still printed the traceback


def test_exception_caught_by_the_script_with_the_callback_as_context(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "with")
    finish(p, tmp_path, "with", expect_rc=0)
    d = load(folder / "with.json")
    assert d["status"] == "FAILED", output(tmp_path, "with")
    assert "RuntimeError: boom at step 3: the real error" in d["error"]


def test_train_run_again_after_an_interrupted_one_is_monitored(tmp_path, spawn):
    """The notebook way: train() interrupted (no exception hook, no
    excepthook), then a new Trainer and callback of the same run name. The
    first run, left RUNNING by this process, held the name and the second
    train() was refused (RunNameInUseError); it is taken over."""
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "rerun")
    finish(p, tmp_path, "rerun", expect_rc=0)
    d = load(folder / "rerun.json")
    assert d["status"] == "FINISHED", output(tmp_path, "rerun")
    assert (d["epoch"], d["train_batch"], d["train_total_batches"]) == (2, 6, 6)


def test_sigterm_gives_canceled(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "term")
    d = sigterm_when_running(p, folder, "term")
    assert d["status"] == "CANCELED", output(tmp_path, "term")
    assert d["error"] == "received SIGTERM"
    assert p.returncode == -signal.SIGTERM
