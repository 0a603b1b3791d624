"""What a writer tick keeps: every update given between two ticks reaches
both files at the next tick, and the end of a run (an exception, a normal
exit, a plain-API exit without a final call) writes what came after the
last tick. The writer is woken by the script's own calls here (its
interval is far longer than the tests), so each tick is one the test made."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, wait_until
from ttop.collect.history import HistoryReader
from ttop.monitor import TrainingMonitor

SLOW = 3000.0  # seconds between the writer's own ticks: only wake-ups tick


def load(path):
    with open(path) as f:
        return json.load(f)


def history(folder, data):
    return HistoryReader(str(folder), data["history_file"]).poll()


def wait_history(m, pred):
    """The history file's series once ``pred`` holds for them (the file is
    flushed after the progress file is written)."""

    def check():
        if m._mlog.file_name is None:
            return None
        cols = HistoryReader(m.folder, m._mlog.file_name).poll()
        return cols if pred(cols) else None

    return wait_until(check, timeout=30)


@pytest.fixture
def mon(progress_dir):
    m = TrainingMonitor(folder=str(progress_dir), run_name="ticks", interval=SLOW, gpu=False, handle_signals=False)
    yield m
    if m.status == "RUNNING" and m._started:
        m.set_canceled("test teardown")


def tick(m, total):
    """Wake the writer (set_total_batches does) and wait for the tick that
    wrote ``total``."""
    m.set_total_batches(total)
    return wait_until(lambda: (lambda d: d if d.get("total_batches") == total else None)(load(m.path)), timeout=30)


def test_updates_between_two_ticks_are_all_in_both_files_after_the_next_tick(mon, progress_dir):
    mon.start_monitoring()
    mon.start_phase("train")
    tick(mon, 100)
    for i in range(3):
        mon.start_batch()
        mon.update_metrics(loss=1.0 / (i + 1))
    mon.update_metrics(acc=0.5)  # a metric given alone, after the others
    d = tick(mon, 101)
    assert d["metrics"] == {"loss": 1.0 / 3, "acc": 0.5}
    assert d["history"]["loss"][-1] == 1.0 / 3
    cols = wait_history(mon, lambda c: "acc" in c)
    assert cols["loss"].x == [1.0, 2.0, 3.0] and cols["loss"].y == [1.0, 0.5, 1.0 / 3]
    assert cols["acc"].x == [3.0] and cols["acc"].y == [0.5]

    # the same value again at a later batch: a new point in the history file
    # (the batch moved), the progress file's metrics unchanged
    mon.start_batch()
    mon.update_metrics(loss=1.0 / 3)
    d = tick(mon, 102)
    assert d["metrics"]["loss"] == 1.0 / 3 and d["batch"] == 4
    cols = wait_history(mon, lambda c: len(c["loss"].x) == 4)
    assert cols["loss"].x[-1] == 4.0 and cols["loss"].y[-1] == 1.0 / 3

    # a tick with no update at all writes the file (a heartbeat) and adds no point
    before = d["updated_at"]
    d = tick(mon, 103)
    assert d["updated_at"] >= before and d["metrics"]["loss"] == 1.0 / 3
    assert d["history_file"] == mon._mlog.file_name
    assert len(history(progress_dir, d)["loss"].x) == 4


def test_the_last_tick_before_a_compaction_keeps_every_point(mon, progress_dir):
    # a compaction rewrites the history file whole from the writer's model:
    # the updates of the tick that compacts are in it
    mon.start_monitoring()
    mon.start_phase("train")
    tick(mon, 100)
    for i in range(40):
        mon.start_batch()
        mon.update_metrics(loss=float(i), lr=0.01)
    mon._mlog._appended = 1 << 40  # the next flush compacts
    tick(mon, 101)
    loss = wait_history(mon, lambda c: "loss" in c)["loss"]
    model = HistoryReader(mon.folder, mon._mlog.file_name)
    model.poll()
    ents = model.model.metrics["loss"].entries()
    assert len(ents) == 16 and ents[0][0] == 1 and ents[-1][1] == 40  # the tick's buckets span every step given
    assert max(loss.hi) == 39.0 and min(loss.lo) == 0.0 and loss.y[-1] == 39.0
    with open(progress_dir / mon._mlog.file_name) as f:
        first = json.loads(f.readline())
    assert first["format"] == "ttop.history/1"  # a compacted file: its header, then a line per metric


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    mode, folder = sys.argv[1], sys.argv[2]
    m = TrainingMonitor(folder=folder, run_name=mode, interval=3000.0, gpu=False)
    m.start_monitoring()
    m.start_phase("train", total_batches=10)
    for i in range(7):  # given after the only tick: written by the end alone
        m.start_batch()
        m.update_metrics(loss=1.0 / (i + 1))
    if mode == "raise":
        raise ValueError("bad batch 7")
    if mode == "finish":
        m.set_finished()
    # "plain-exit": no final call
    """
    % str(ROOT)
)


@pytest.mark.parametrize("mode, status", [("raise", "FAILED"), ("finish", "FINISHED"), ("plain-exit", "RUNNING")])
def test_the_end_of_a_run_writes_what_came_after_the_last_tick(tmp_path, progress_dir, spawn, mode, status):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    p = spawn([sys.executable, str(script), mode, str(progress_dir)], stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, text=True)
    p.communicate(timeout=60)
    d = load(progress_dir / (mode + ".json"))
    assert d["status"] == status
    assert d["metrics"] == {"loss": 1.0 / 7}
    assert d["train_batch"] == 7
    cols = history(progress_dir, d)
    assert cols["loss"].x == [float(s) for s in range(1, 8)]
    assert cols["loss"].y[-1] == 1.0 / 7
