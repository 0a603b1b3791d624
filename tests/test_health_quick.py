"""healthquick.quick_ok never says "fine" where assess finds something, and
says it for the usual live run (random series against the full rules)."""
from __future__ import annotations

import math
import random

from ttop.collect.health import ALL_OK, HealthConfig, Sample, assess
from ttop.collect.healthquick import quick_ok
from ttop.collect.lows import RingLows


def _series(rng):
    n = rng.randint(1, 30)
    out = []
    batch = 0
    t = 0.0
    for _ in range(n):
        t += rng.choice((1.0, 2.0, 30.0))
        if rng.random() < 0.8:
            batch += 1
        metrics = {}
        if rng.random() < 0.9:
            metrics["loss"] = rng.choice((1.0, 0.5, 0.1, 5.0, 9.0, 3, float("nan"), math.inf, "NaN", None, 10 ** 400))
        if rng.random() < 0.3:
            metrics["acc"] = rng.choice((0.5, 0.9, "x", -math.inf))
        local = rng.random() < 0.3
        gpu = rng.choice((None, 0, 1 << 30))
        out.append(Sample(
            t=t, status=rng.choice(("RUNNING",) * 8 + ("FINISHED", "FAILED")),
            alive=rng.choice((None, None, True, False)), stopped=rng.random() < 0.1,
            updated_at=t - rng.choice((0.0, 1.0, 5.0, 50.0)) if rng.random() < 0.95 else None,
            heartbeat_limit=rng.choice((10.0, 3.0)), progress=("train", 1, batch, None, None),
            batch=batch if rng.random() < 0.9 else None, rate=rng.choice((None, 1.0, 0.01)), metrics=metrics,
            cpu_percent=rng.choice((None, 50.0, 99.0)), rss_bytes=rng.choice((None, 1 << 30, 2040 << 20)),
            ram_limit=(1 << 31) if local and rng.random() < 0.5 else None, gpu_memory_bytes=gpu,
            gpu_limit=(1 << 31) if gpu and local else None,
            device_memory_fraction=rng.choice((None, 0.5, 0.95)) if gpu and local else None,
            gpu_utilization=rng.choice((None, 1.0, 50.0)) if gpu else None))
    return out


def test_quick_ok_only_where_assess_finds_nothing_and_for_the_usual_live_run():
    rng = random.Random(3)
    config = HealthConfig(diverge_warmup=3, stall_seconds=5.0)
    said = 0
    for _ in range(4000):
        samples = _series(rng)
        lows = RingLows()
        if quick_ok(samples, config, lows):
            said += 1
            assert assess(samples, config, RingLows()) is ALL_OK, samples
    assert said > 200  # the usual case is told quickly


def test_quick_ok_leaves_a_stall_a_lost_heartbeat_nan_and_divergence_to_assess():
    config = HealthConfig(diverge_warmup=2)
    base = dict(status="RUNNING", alive=None, heartbeat_limit=10.0, batch=1, progress=("train", 1, 1, None, None))
    fine = [Sample(t=float(t), updated_at=float(t), metrics={"loss": 1.0}, **dict(base, batch=t,
                   progress=("train", 1, t, None, None))) for t in range(5)]
    assert quick_ok(fine, config, RingLows()) and assess(fine, config) is ALL_OK
    stalled = fine[:-1] + [fine[-1]._replace(progress=fine[-2].progress, batch=fine[-2].batch)]
    lost = fine[:-1] + [fine[-1]._replace(updated_at=-20.0)]
    nan = fine[:-1] + [fine[-1]._replace(metrics={"loss": float("nan")})]
    diverging = fine[:-1] + [fine[-1]._replace(metrics={"loss": 9.0})]
    # a GPU nearly full, no GPU budget given, its utilisation not read (as under MIG)
    gpu_full = fine[:-1] + [fine[-1]._replace(gpu_memory_bytes=1 << 30, device_memory_fraction=0.99)]
    for samples in (stalled, lost, nan, diverging, gpu_full):
        assert not quick_ok(samples, config, RingLows())
    assert assess(nan, config).level == "CRIT" and assess(diverging, config).level == "WARN"
    assert [f.rule for f in assess(gpu_full, config).findings] == ["memory"]
