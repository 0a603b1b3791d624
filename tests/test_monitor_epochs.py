"""A run that counts a great many epochs (a reinforcement-learning loop
calling ``start_epoch`` once per episode): the writer kept every epoch's
duration for the mean it estimates with, a list growing without end (some
100 MB after 3 million epochs) and summed over at each write (15 ms a write
by then, and ever more)."""
from __future__ import annotations

import tracemalloc

from ttop.monitor.estimates import RunState, estimate


def test_the_mean_epoch_is_kept_in_constant_memory():
    s = RunState(total_epochs=10 ** 7)
    now = 0.0
    for epoch in range(1, 1001):
        s.start_epoch(now, epoch)
        now += 1.0 if epoch % 2 else 3.0  # epochs of 1 s and 3 s: a mean of 2 s
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for epoch in range(1001, 101002):
            s.start_epoch(now, epoch)
            now += 1.0 if epoch % 2 else 3.0
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, "%d bytes held for 100,000 more epochs" % grown
    t = estimate(now, s, 0, 0.0, False)["times"]
    # the epoch going on (101001) has lasted 1 s of its expected 2; 10**7 - 101001 epochs left, 2 s each
    assert t["epoch"] == {"elapsed": 1.0, "remaining": 1.0, "total": 2.0}
    assert t["run"]["remaining"] == 1.0 + (10 ** 7 - 101001) * 2.0
    s.end_epoch(now)
    assert estimate(now, s, 0, 0.0, False)["times"]["epoch"] == {"elapsed": 1.0, "remaining": 0.0, "total": 1.0}
