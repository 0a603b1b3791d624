"""The writer's estimate maths (ttop.monitor.estimates) with made-up numbers:
rate smoothing, phase / epoch / run elapsed, remaining and total. No clock,
no sleeps, exact values."""
from __future__ import annotations

import pytest

from ttop.monitor.estimates import (
    MIN_RATE_DT,
    Phase,
    RunState,
    epoch_times,
    estimate,
    phase_kind,
    phase_numbers,
    run_times,
    update_rate,
)

approx = pytest.approx


def test_phase_kinds():
    assert [phase_kind(n) for n in ("train", " Training ", "val", "EVAL", "validation", "loading")] == [
        "train", "train", "validation", "validation", "validation", "other",
    ]


def test_rate_is_a_moving_average_of_batches_and_seconds():
    rec = Phase("train", "train", start=10.0, total=None, gen=1)
    assert update_rate(rec, 0, 10.0) is None  # no time has passed
    assert update_rate(rec, 10, 12.0) == approx(5.0)  # first update: 10 batches in 2 s
    # second: 10 more in 1 s; dn and dt are averaged separately (0.3 / 0.7)
    assert update_rate(rec, 20, 13.0) == approx((0.3 * 10 + 0.7 * 10) / (0.3 * 1 + 0.7 * 2))
    before = rec.rate
    # closer than MIN_RATE_DT to the last update: nothing changes, the batches wait
    assert update_rate(rec, 25, 13.0 + MIN_RATE_DT / 2) == before
    assert (rec.rate_t, rec.rate_n) == (13.0, 20)
    # a stall lowers the rate smoothly, not to zero at once
    stalled = update_rate(rec, 20, 23.0)
    assert 0 < stalled < before
    assert update_rate(None, 5, 1.0) is None


def test_rate_is_none_until_a_batch_is_counted():
    rec = Phase("train", "train", start=0.0, total=None, gen=1)
    assert update_rate(rec, 0, 5.0) is None


def test_phase_numbers_live_ended_and_unknown():
    rec = Phase("train", "train", start=100.0, total=50, gen=1)
    assert phase_numbers(None, rec, 3, 101.0) == (None, None, None, None)
    # live, no rate yet: remaining unknown
    assert phase_numbers(rec, rec, 10, 102.0) == (10, 2.0, None, None)
    rec.rate = 4.0
    assert phase_numbers(rec, rec, 10, 102.0) == (10, 2.0, 10.0, 12.0)  # 40 left at 4/s
    assert phase_numbers(rec, rec, 50, 102.0) == (50, 2.0, 0.0, 2.0)  # total reached
    assert phase_numbers(rec, rec, 60, 102.0) == (60, 2.0, 0.0, 2.0)  # past the total
    rec.total = None
    assert phase_numbers(rec, rec, 10, 102.0) == (10, 2.0, None, None)
    # not the current phase (or ended): its frozen count, remaining 0
    rec.end, rec.n = 105.0, 42
    assert phase_numbers(rec, None, 7, 200.0) == (42, 5.0, 0.0, 5.0)
    # a clock that went backwards never gives a negative elapsed
    fresh = Phase("val", "validation", start=10.0, total=None, gen=2)
    assert phase_numbers(fresh, fresh, 0, 9.0)[1] == 0.0


def test_epoch_times():
    # during training: train remaining + one validation still to come
    assert epoch_times(10.0, 4.0, [], "train", 3.0, 2.0, False) == (6.0, 5.0, 11.0)
    # ... but not when this epoch's validation already ran
    assert epoch_times(10.0, 4.0, [], "train", 3.0, 2.0, True) == (6.0, 3.0, 9.0)
    assert epoch_times(10.0, 4.0, [], "validation", 1.5, 2.0, False) == (6.0, 1.5, 7.5)
    # no phase estimate: the mean epoch minus what has passed, never negative
    assert epoch_times(10.0, 4.0, [8.0, 10.0], "other", None, None, False) == (6.0, 3.0, 9.0)
    assert epoch_times(30.0, 4.0, [8.0, 10.0], None, None, None, False) == (26.0, 0.0, 26.0)
    assert epoch_times(10.0, 4.0, [], "train", None, None, False) == (6.0, None, None)
    # between epochs: the last one's duration
    assert epoch_times(10.0, None, [8.0, 7.0], None, None, None, False) == (7.0, 0.0, 7.0)
    assert epoch_times(10.0, None, [], None, None, None, False) == (None, None, None)


def test_run_times():
    # epoch 2 of 5 running, 3 s left in it, mean epoch 10 s: 3 + 3 x 10
    assert run_times(50.0, 20.0, False, 2, 5, True, [10.0], 3.0, 12.0, True, 1.0) == (30.0, 33.0, 63.0)
    # no epoch ended yet: this epoch's estimated total stands for the others
    assert run_times(5.0, 0.0, False, 1, 3, True, [], 4.0, 9.0, True, 4.0) == (5.0, 22.0, 27.0)
    # between epochs: the epochs left at the mean
    assert run_times(50.0, 20.0, False, 2, 5, False, [10.0, 14.0], None, None, False, None) == (30.0, 36.0, 66.0)
    # last epoch: only what is left of it
    assert run_times(50.0, 20.0, False, 5, 5, True, [], 3.0, None, True, 3.0) == (30.0, 3.0, 33.0)
    # epochs without a total: unknown; without epochs: the phase's remaining
    assert run_times(50.0, 20.0, False, 2, None, True, [10.0], 3.0, 12.0, True, 1.0) == (30.0, None, None)
    assert run_times(50.0, 20.0, False, None, None, False, [], None, None, True, 7.0) == (30.0, 7.0, 37.0)
    assert run_times(50.0, 20.0, False, None, 4, False, [], None, None, False, None) == (30.0, None, None)
    # ended; not started
    assert run_times(50.0, 20.0, True, 2, 5, False, [10.0], None, None, False, None) == (30.0, 0.0, 30.0)
    assert run_times(50.0, None, False, None, None, False, [], None, None, False, None) == (0.0, None, None)


def test_a_run_with_epochs_validation_and_an_end():
    s = RunState(total_epochs=3)
    s.start_epoch(0.0, 1)
    s.start_phase(0.0, "train", 10, n=0)
    update_rate(s.cur, 10, 2.0)  # 10 batches in 2 s
    s.start_phase(2.0, "validation", 4, n=10)  # ends train with its 10 batches
    update_rate(s.cur, 2, 3.0)  # 2 batches in 1 s

    e = estimate(3.0, s, 2, 0.0, False)
    assert (e["batch"], e["train_batch"], e["val_batch"], e["rate"]) == (2, 10, 2, 2.0)
    t = e["times"]
    assert t["train"] == {"elapsed": 2.0, "remaining": 0.0, "total": 2.0}
    assert t["validation"] == {"elapsed": 1.0, "remaining": 1.0, "total": 2.0, "last": None}
    assert t["epoch"] == {"elapsed": 3.0, "remaining": 1.0, "total": 4.0}
    # no epoch ended: this one's total (4 s) for each of the 2 left
    assert t["run"] == {"elapsed": 3.0, "remaining": 9.0, "total": 12.0}

    s.end_phase(4.0, 4)
    s.start_epoch(4.0, None)  # numbering continues
    assert s.epoch == 2 and (len(s.epoch_durations), s.epoch_durations[-1]) == (1, 4.0)
    s.start_phase(4.0, "train", 10, n=0)
    update_rate(s.cur, 3, 5.0)
    e = estimate(5.0, s, 3, 0.0, False)
    t = e["times"]
    assert (e["batch"], e["train_batch"], e["val_batch"], e["rate"]) == (3, 3, 4, 3.0)
    assert t["train"] == {"elapsed": 1.0, "remaining": 2.333, "total": 3.333}
    assert t["validation"] == {"elapsed": 2.0, "remaining": 0.0, "total": 2.0, "last": 2.0}
    # 7 batches at 3/s + one validation of 2 s
    assert t["epoch"] == {"elapsed": 1.0, "remaining": 4.333, "total": 5.333}
    # + one more epoch at the mean (4 s)
    assert t["run"] == {"elapsed": 5.0, "remaining": 8.333, "total": 13.333}

    s.end_phase(6.0, 5)
    s.end_epoch(6.0)
    e = estimate(6.0, s, 0, 0.0, True)
    t = e["times"]
    assert e["rate"] is None and (e["batch"], e["train_batch"]) == (None, 5)
    assert t["epoch"] == {"elapsed": 2.0, "remaining": 0.0, "total": 2.0}
    assert t["run"] == {"elapsed": 6.0, "remaining": 0.0, "total": 6.0}


def test_each_phase_has_its_own_rate():
    s = RunState()
    s.start_phase(0.0, "train", None, n=0)
    assert update_rate(s.cur, 100, 1.0) == 100.0
    s.start_phase(1.0, "validation", 20, n=100)
    assert estimate(1.0, s, 0, 0.0, False)["rate"] is None  # not the train phase's
    update_rate(s.cur, 5, 2.0)
    e = estimate(2.0, s, 5, 0.0, False)
    assert e["rate"] == 5.0 and e["times"]["validation"]["remaining"] == 3.0
    # without epochs the run's remaining is the current phase's
    assert e["times"]["run"] == {"elapsed": 2.0, "remaining": 3.0, "total": 5.0}


def test_batches_counted_outside_a_phase_become_a_train_phase():
    s = RunState()
    s.adopt_loose_batches(0, 1.0)
    assert s.cur is None  # nothing counted: nothing adopted
    s.adopt_loose_batches(7, 1.0)
    assert s.cur is s.train and s.cur.start == 1.0 and s.cur.name == "train"
    s.end_phase(3.0, 7)
    s.adopt_loose_batches(2, 1.0)  # from the end of the last phase
    assert s.cur.start == 3.0 and estimate(4.0, s, 2, 1.0, False)["batch"] == 2


def test_rounding_as_written():
    s = RunState()
    s.start_phase(0.0, "train", 7, n=0)
    update_rate(s.cur, 3, 0.7)
    e = estimate(1.0 / 3.0, s, 3, 0.0, False)
    assert e["rate"] == round(3 / 0.7, 4)
    assert e["times"]["train"]["elapsed"] == 0.333


def test_resumed_phase_continues_its_count_elapsed_and_rate():
    s = RunState(total_epochs=1)
    s.start_epoch(0.0, 1)
    assert s.start_phase(0.0, "train", 10, n=0) == 0
    train = s.cur
    update_rate(train, 4, 2.0)  # 4 batches in 2 s
    assert s.start_phase(2.0, "validation", 3, n=4) == 0  # mid-epoch validation
    update_rate(s.cur, 3, 3.5)
    n = s.start_phase(3.5, "train", None, n=3, resume=True)
    assert n == 4 and s.cur is train and s.train is train and train.total == 10  # total kept
    e = estimate(3.5, s, n, 0.0, False)
    # elapsed goes on from 2 s (the validation in between is not train time), no rate jump
    assert e["rate"] == 2.0 and e["train_batch"] == 4 and e["batch"] == 4
    assert e["times"]["train"] == {"elapsed": 2.0, "remaining": 3.0, "total": 5.0}
    assert e["times"]["validation"]["last"] == 1.5 and e["val_batch"] == 3
    # 2 more batches in 1 s: the same pace, the same rate
    assert update_rate(train, 6, 4.5) == approx(2.0)
    e = estimate(4.5, s, 6, 0.0, False)
    assert e["times"]["train"] == {"elapsed": 3.0, "remaining": 2.0, "total": 5.0}
    # validation already ran this epoch: nothing more expected for it
    assert e["times"]["epoch"] == {"elapsed": 4.5, "remaining": 2.0, "total": 6.5}


def test_resume_without_an_earlier_phase_or_of_the_current_one():
    s = RunState()
    assert s.start_phase(0.0, "train", 5, n=0, resume=True) == 0  # nothing to resume: a new phase
    first = s.cur
    assert s.start_phase(1.0, "train", 8, n=3, resume=True) == 3  # the current one: goes on
    assert s.cur is first and first.total == 8 and first.end is None
    s.start_phase(2.0, "checkpoint", None, n=4)
    assert s.start_phase(3.0, "checkpoint", None, n=0, resume=False) == 0  # without resume: a new one
    s.start_phase(4.0, "train", None, n=0)  # a new train phase, not resumed
    assert s.cur is not first and s.cur.n == 0 and first.n == 4
    s.end_phase(5.0, 2)
    assert s.start_phase(6.0, "checkpoint", None, n=0, resume=True) == 0  # not the latest train/validation phase nor the last ended: a new one
    assert s.start_phase(7.0, "train", None, n=0, resume=True) == 2  # the latest train phase, not the first
