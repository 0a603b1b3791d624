"""Batches counted with no phase started show as a ``train`` phase, whether
or not the writer thread wrote the file while they were counted. They were
taken into a phase only by the writer's tick: a phase started or ended
before its next tick (a loop shorter than the write interval) dropped them,
and the run showed no training at all."""
from __future__ import annotations

import pytest

from conftest import load_json as load
from conftest import wait_until
from ttop import TrainingMonitor


@pytest.mark.parametrize("then", ["start_phase", "end_phase"])
def test_batches_counted_without_a_phase_are_kept_when_a_phase_starts_or_ends(tmp_path, then):
    # the writer ticks once when it starts, then not for 1000 s: nothing the
    # test does below (start_batch) wakes it before the phase changes
    m = TrainingMonitor(folder=str(tmp_path), run_name="loose", interval=1000, gpu=False)
    m.start_monitoring()
    wait_until(lambda: (load(m.path) or {}).get("pid_create_time") is not None, timeout=60)  # its first tick
    for _ in range(5):
        m.start_batch()
    if then == "start_phase":
        m.start_phase("validation", 2)
        m.start_batch()
        m.start_batch()
    else:
        m.end_phase()
    m.set_finished()
    d = load(m.path)
    assert (d["train_batch"], d["val_batch"]) == (5, 2 if then == "start_phase" else None), d


def test_end_phase_before_the_start_makes_no_phase_of_the_batches_counted_so_far(tmp_path):
    """A train phase from batches counted before the run started began at
    the monotonic clock's zero: the file's train elapsed was the machine's
    uptime."""
    m = TrainingMonitor(folder=str(tmp_path), run_name="early", interval=1000, gpu=False)
    for _ in range(3):
        m.start_batch()
    m.end_phase()
    m.start_monitoring()
    m.set_finished()
    d = load(m.path)
    assert d["times"]["train"]["elapsed"] is None or d["times"]["train"]["elapsed"] <= d["times"]["run"]["elapsed"], d
