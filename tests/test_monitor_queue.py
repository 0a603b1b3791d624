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


def test_a_metric_name_per_step_keeps_the_first_names_only(progress_dir, capsys):
    """``update_metrics({"loss_%d" % step: x})``: a name per step made every
    write copy, compare and encode every name given so far (the loop ran 2.5
    times slower over a million steps, and ever slower after), and kept them
    all. The first MAX_NAMES are written; the others are left out, said once."""
    from ttop.monitor.history import MAX_NAMES

    m = make(progress_dir, "names")
    m.start_phase("train")
    try:
        for step in range(MAX_NAMES + 500):
            m.start_batch()
            m.update_metrics({"loss_%d" % step: 0.5, "loss": float(step)})
            if step % 1000 == 0:
                m._write_now()  # (a tick: as in a long run, the names arrive over many writes)
        m.update_metrics(loss_3=0.25)  # a name kept still moves
    finally:
        m.set_finished()
    metrics = load(m.path)["metrics"]
    assert len(m._metrics) == MAX_NAMES == len(metrics)
    assert metrics["loss"] == float(MAX_NAMES + 499) and metrics["loss_3"] == 0.25
    assert "loss_%d" % (MAX_NAMES - 2) in metrics and "loss_%d" % (MAX_NAMES - 1) not in metrics
    err = capsys.readouterr().err
    assert err.count("metric names") == 1, err
    assert "more than %d metric names" % MAX_NAMES in err and "'loss_%d'" % (MAX_NAMES - 1) in err
