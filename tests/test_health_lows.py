"""The diverging rule's running minima, kept as a run's sample ring moves,
give the very figures (and verdicts) of a pass over the whole ring."""
from __future__ import annotations

import math
import random

from ttop.collect.health import HealthConfig, Sample, assess
from ttop.collect.recent import RecentSamples, _Track

CONFIG = HealthConfig(diverge_warmup=5)


def _brute(ring, name):
    low, n = math.inf, 0
    for s in list(ring)[:-1]:
        m = (s.metrics or {}).get(name)
        if (m.__class__ is float or m.__class__ is int) and m == m and m not in (math.inf, -math.inf):
            n += 1
            low = min(low, m)
    return low, n


def test_running_minima_equal_a_pass_over_the_ring_as_it_fills_drops_and_repeats():
    rng = random.Random(7)
    rs = RecentSamples(1.0, CONFIG, horizon=10.0)  # a short ring: it drops samples soon
    tr = _Track(rs.maxlen)
    values = [None, True, float("nan"), math.inf, "x", 0, 3, 0.5, 1.0, 2.5, 7, 9.0, 100.0]
    asked_at = {50, 51, 90}
    metrics: dict = {"loss": 1.0}
    verdicts = set()
    for t in range(400):
        if rng.random() < 0.7:  # else: a repeat of the newest (replaced in place, not appended)
            metrics = {}
            if rng.random() < 0.9:
                metrics["loss"] = rng.choice(values)
            if rng.random() < 0.5:
                metrics["val_loss"] = rng.choice(values)
        rs._append(tr, Sample(t=float(t), status="RUNNING", alive=None, metrics=dict(metrics)))
        if t < 40 or t in asked_at or t > 120:  # minima asked for at times, not every cycle
            for name in ("loss", "val_loss"):
                assert tr.lows(tr.ring, name) == _brute(tr.ring, name), (t, name)
            got = assess(tr.ring, CONFIG, tr.lows)
            assert got == assess(tr.ring, CONFIG)
            verdicts.add(got.level)
    assert len(tr.ring) == rs.maxlen
    assert "warn" in {str(v).lower() for v in verdicts}  # the rule fired at times: the figures were used
