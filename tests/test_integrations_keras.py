"""ttop.integrations.keras with the real Keras 3 (torch backend), on CPU, in
subprocesses: epochs, phases and totals, metrics under Keras' names, an lr
edit that survives an ExponentialDecay schedule, an exception (FAILED, with
the callback as a context manager) and SIGTERM (CANCELED)."""
from __future__ import annotations

import signal

import pytest

from integrations_helpers import TIMEOUT, edit_when_ready, finish, load, need, output, sigterm_when_running, start, write_driver

need("keras")
need("torch")

pytestmark = [pytest.mark.timeout(TIMEOUT), pytest.mark.slow]

DRIVER = '''
import keras
import numpy as np
from ttop.integrations.keras import TtopCallback

EDIT_AT = (1, 3)  # epoch index 1, batch 3


class Probe(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        opt = self.model.optimizer
        TRACE.append((int(opt.iterations.numpy()), float(keras.ops.convert_to_numpy(opt.learning_rate))))
        if MODE == "term":
            time.sleep(0.05)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if MODE == "main" and (self.epoch, batch) == EDIT_AT:
            handshake(MODE)
        if MODE == "boom" and batch == 3:
            raise RuntimeError("boom at batch 3: the real error")
        if MODE == "term" and batch == 2:
            open(os.path.join(FOLDER, MODE + ".ready"), "w").close()


rng = np.random.default_rng(0)
x = rng.normal(size=(50, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=1, decay_rate=0.9)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse", metrics=["mae"])
cb = TtopCallback(folder=FOLDER, run_name=MODE, interval=0.2)
# 40 training samples / 5 = 8 batches, 10 validation samples = 2 batches
fit = lambda: model.fit(x, y, batch_size=5, epochs=1000 if MODE == "term" else 2, validation_split=0.2,
                        verbose=0, callbacks=[cb, Probe()])
if MODE == "boom":
    try:
        with cb:
            fit()
    except RuntimeError:
        print("caught")
else:
    try:
        fit()
    finally:
        dump_trace(MODE)
'''


def test_epochs_phases_metrics_and_an_lr_edit_through_the_schedule(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "main")
    mid = edit_when_ready(p, folder, "main", "lr", 0.5)
    finish(p, tmp_path, "main")
    # epoch index 1 -> shown 2 of 2; batch index 3 -> 4 of 8; the epoch-1
    # validation ran 2 of 2 batches
    assert (mid["epoch"], mid["total_epochs"], mid["phase"]) == (2, 2, "train"), mid
    assert (mid["train_batch"], mid["train_total_batches"]) == (4, 8), mid
    assert (mid["val_batch"], mid["val_total_batches"]) == (2, 2), mid
    assert mid["control_error"] is None

    d = load(folder / "main.json")
    assert d["status"] == "FINISHED" and d["error"] is None, output(tmp_path, "main")
    assert (d["epoch"], d["train_batch"], d["val_batch"], d["val_total_batches"]) == (2, 8, 2, 2)
    for name in ("loss", "mae", "val_loss", "val_mae"):
        assert isinstance(d["metrics"][name], float), name

    trace = dict(load(folder / "main.trace.json"))
    # ExponentialDecay(0.01, every step, 0.9): step 12 would use 0.01 * 0.9**12
    assert trace[11] == pytest.approx(0.01 * 0.9 ** 11, rel=1e-5)
    # edited to 0.5 after step 11: step 12 uses it, and the schedule goes on from it
    assert trace[12] == pytest.approx(0.5, rel=1e-5)
    assert trace[13] == pytest.approx(0.45, rel=1e-5)
    assert d["variables"]["lr"] == pytest.approx(0.5 * 0.9 ** 4, rel=1e-5)


def test_exception_gives_failed_with_the_real_error(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "boom")
    finish(p, tmp_path, "boom", expect_rc=0)
    d = load(folder / "boom.json")
    assert d["status"] == "FAILED", output(tmp_path, "boom")
    assert "RuntimeError: boom at batch 3: the real error" in d["error"]
    assert (d["epoch"], d["train_batch"]) == (1, 4)


def test_sigterm_gives_canceled(tmp_path, spawn):
    driver = write_driver(tmp_path, DRIVER)
    p, folder = start(spawn, tmp_path, driver, "term")
    d = sigterm_when_running(p, folder, "term")
    assert d["status"] == "CANCELED", output(tmp_path, "term")
    assert d["error"] == "received SIGTERM"
    assert p.returncode == -signal.SIGTERM
