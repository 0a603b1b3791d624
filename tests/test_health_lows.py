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


def test_diverging_names_the_first_loss_like_metric_by_name_whatever_the_key_order():
    # the loss-like names of a key tuple are remembered: the next sample's
    # keys in another order, or with another pattern, give the same answers
    def ring(order):
        body = [Sample(t=float(t), status="RUNNING", metrics={"val_loss": 1.0, "loss": 1.0, "acc": 0.1})
                for t in range(6)]
        last = {"acc": 50.0, "val_loss": 9.0, "loss": 8.0, "zloss": math.nan}
        return body + [Sample(t=6.0, status="RUNNING", metrics={k: last[k] for k in order})]

    for order in (("acc", "val_loss", "loss", "zloss"), ("zloss", "loss", "acc", "val_loss")) * 2:
        v = assess(ring(order), CONFIG)
        assert [f.rule for f in v.findings] == ["nan", "diverging"]
        assert v.findings[1].reason.startswith("loss diverging (8,")
        only_val = assess(ring(order), HealthConfig(diverge_warmup=5, loss_pattern="^val_"))
        assert only_val.findings[1].reason.startswith("val_loss diverging (9,")
        acc = assess(ring(order), HealthConfig(diverge_warmup=5, loss_pattern="acc"))
        assert acc.findings[1].reason.startswith("acc diverging (50,")
