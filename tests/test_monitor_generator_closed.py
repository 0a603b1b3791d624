"""Runs stopped from outside without an error. A run inside a generator
(``with TrainingMonitor(...)`` around a loop that yields each step's loss)
whose consumer stops early (early stopping: ``break``) is closed with
GeneratorExit at its ``yield``; one inside an asyncio task that is
cancelled (a timeout, or Ctrl+C under ``asyncio.run``, which cancels the
main task) gets CancelledError. The ``with`` block took either for an
error: the run ended FAILED with a traceback, though nothing failed. Both
end CANCELED, as a Ctrl+C does: the run was stopped before its end."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT
from ttop import TrainingMonitor


def steps(folder, n):
    with TrainingMonitor(folder=str(folder), run_name="gen", interval=0.05, gpu=False) as m:
        for i in m.track(range(n)):
            yield 1.0 / (i + 1)


def load(folder):
    with open(folder / "gen.json") as f:
        return json.load(f)


def test_a_run_in_a_generator_stopped_early_by_its_consumer_is_canceled_not_failed(tmp_path):
    for loss in steps(tmp_path, 100):
        if loss < 0.1:
            break  # the generator is closed here (CPython: as its last reference goes)
    d = load(tmp_path)
    assert d["status"] == "CANCELED", d["error"]
    assert d["error"].startswith("GeneratorExit") and "Traceback" not in d["error"]
    assert d["train_batch"] == 11


def test_a_run_in_a_generator_consumed_whole_is_finished(tmp_path):
    assert len(list(steps(tmp_path, 5))) == 5
    d = load(tmp_path)
    assert (d["status"], d["error"], d["train_batch"]) == ("FINISHED", None, 5)


def test_a_framework_callback_around_a_generator_closed_early_is_canceled_too(tmp_path):
    """``with callback: trainer.train()`` (HF, Keras: no exception hook)
    inside a generator stopped early by its consumer."""
    from ttop.integrations._common import Bridge, BridgeCallback

    class Callback(BridgeCallback):
        def __init__(self):
            self._bridge = Bridge(None, {"folder": str(tmp_path), "run_name": "cb", "interval": 0.05, "gpu": False},
                                  rank_zero_only=True, track_lr=False, default_handle_signals=False)

    def train(cb):
        with cb:
            m = cb._bridge.open(0)  # what the framework's train-begin hook does
            for i in m.track(range(100)):
                yield i

    for i in train(Callback()):
        if i == 3:
            break
    with open(tmp_path / "cb.json") as f:
        d = json.load(f)
    assert d["status"] == "CANCELED" and d["error"].startswith("GeneratorExit"), d["error"]


def test_a_run_in_an_asyncio_task_cancelled_by_a_timeout_is_canceled(tmp_path):
    import asyncio

    async def train():
        with TrainingMonitor(folder=str(tmp_path), run_name="gen", interval=0.05, gpu=False) as m:
            for _ in m.track(range(10 ** 6)):
                await asyncio.sleep(0.001)

    async def main():
        try:
            await asyncio.wait_for(train(), timeout=0.2)
        except asyncio.TimeoutError:
            pass

    asyncio.run(main())
    d = load(tmp_path)
    assert d["status"] == "CANCELED" and d["error"].startswith("CancelledError"), d["error"]


CTRL_C_UNDER_ASYNCIO = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    async def train():
        with TrainingMonitor(folder=sys.argv[1], run_name="gen", interval=0.05, gpu=False) as m:
            for i in m.track(range(10 ** 6)):
                if i == 5:
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C: asyncio.run cancels the main task
                await asyncio.sleep(0.001)

    asyncio.run(train())
    """
    % str(ROOT)
)


def test_ctrl_c_under_asyncio_run_is_canceled_not_failed(tmp_path):
    script = tmp_path / "aio.py"
    script.write_text(CTRL_C_UNDER_ASYNCIO)
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert "KeyboardInterrupt" in r.stderr and r.returncode != 0, r.stderr
    d = load(tmp_path)
    # asyncio.run cancels the main task on Ctrl+C from Python 3.11 on; before, the
    # KeyboardInterrupt itself comes through the with block
    cause = "CancelledError" if sys.version_info >= (3, 11) else "KeyboardInterrupt"
    assert d["status"] == "CANCELED" and d["error"].startswith(cause), d["error"]
