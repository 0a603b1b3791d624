"""update_metrics only queues the values for the writer thread. A monitor
that no longer writes (its run ended, or it was inherited by a forked child,
e.g. a data-loader worker whose dataset reports a timing) has no writer to
empty that queue: kept there, a million updates held some 230 MB until the
process ended."""
from __future__ import annotations

import json
import os

from ttop.monitor import TrainingMonitor


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def make(progress_dir, name):
    m = TrainingMonitor(folder=str(progress_dir), run_name=name, interval=0.05, handle_signals=False, gpu=False)
    m.start_monitoring()
    return m


def updates(m, count):
    for i in range(count):
        m.start_batch()
        m.update_metrics(loss=float(i), acc=0.5)
        m.update_metrics({"val/loss": 1.0})


def test_updates_after_the_end_are_not_kept(progress_dir):
    m = make(progress_dir, "ended")
    m.start_phase("train")
    updates(m, 5)
    m.set_finished()
    before = load(m.path)
    updates(m, 10000)
    m.start_phase("eval")  # (a phase started after the end changes nothing either)
    updates(m, 10)
    assert len(m._mq) == 0, "%d items kept for a writer that has ended" % len(m._mq)
    after = load(m.path)
    assert after == before and after["metrics"] == {"loss": 4.0, "acc": 0.5, "val/loss": 1.0}


def test_updates_in_a_forked_child_are_not_kept(progress_dir):
    m = make(progress_dir, "parent")
    m.start_phase("train")
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 99
            try:
                updates(m, 10000)
                code = min(len(m._mq), 98)
            finally:
                os._exit(code)
        status = os.waitpid(pid, 0)[1]
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child kept its updates (status %d)" % status
        updates(m, 3)  # the parent's monitor still takes them
        assert len(m._mq) > 0
    finally:
        m.set_finished()
    d = load(m.path)
    assert d["status"] == "FINISHED" and d["train_batch"] == 3 and d["metrics"]["loss"] == 2.0
