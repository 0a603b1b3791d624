"""Table tests of the pure health rules (ttop.collect.health) on synthetic series."""
from __future__ import annotations

import math

import pytest

from ttop.collect.health import CRIT, DEFAULT_CONFIG, OK, WARN, HealthConfig, Sample, assess, stall_threshold

GIB = 1 << 30


def run(n, step=2.0, **kw):
    """``n`` samples ``step`` s apart of a healthy RUNNING run, each moving
    one batch; keyword values override every sample's field (callables get
    the index)."""
    out = []
    for i in range(n):
        d = dict(t=1000.0 + i * step, status="RUNNING", alive=True, updated_at=1000.0 + i * step,
                 heartbeat_limit=10.0, progress=("train", 1, i), batch=i, rate=1.0 / step,
                 metrics={"loss": 1.0}, cpu_percent=50.0, rss_bytes=GIB, ram_limit=16 * GIB,
                 gpu_memory_bytes=4 * GIB, gpu_limit=80 * GIB, device_memory_fraction=0.1, gpu_utilization=90.0)
        for k, v in kw.items():
            d[k] = v(i) if callable(v) else v
        out.append(Sample(**d))
    return out


def frozen_from(k):
    """Progress that stops moving at sample ``k``."""
    return lambda i: ("train", 1, min(i, k))


def rules(v):
    return [f.rule for f in v.findings]


def test_healthy_run_is_ok():
    v = assess(run(100))
    assert v.level == OK and v.reason == "" and v.findings == ()


def test_empty_series_and_ended_runs_are_not_judged():
    assert assess([]).level is None
    assert assess(run(5, status="FINISHED")).level is None


# -- stalled -----------------------------------------------------------------

@pytest.mark.parametrize("extra, fires", [(28, False), (29, False), (30, True), (31, True)])
def test_stalled_fires_at_60s_not_before(extra, fires):
    # batch frozen at sample 10; sample 10 + k is k*2 s later; 60 s = 30 samples
    s = run(10 + extra + 1, batch=lambda i: min(i, 10), progress=frozen_from(10))
    v = assess(s)
    assert ("stalled" in rules(v)) is fires
    if fires:
        assert v.level == WARN and v.reason.startswith("stalled: batch 10 unmoved for 6")


def test_stall_threshold_follows_median_batch_time():
    # 20 s batches -> 10 x 20 s = 200 s > 60 s
    s = run(30, step=2.0, rate=0.05)
    assert stall_threshold(s) == pytest.approx(200.0)
    before = run(101, rate=0.05, batch=lambda i: 0, progress=lambda i: ("train", 1, 0))  # 200 s span
    assert "stalled" in rules(assess(before))
    assert "stalled" not in rules(assess(before[:-1]))  # 198 s


def test_stall_clears_when_the_counter_moves():
    s = run(60, batch=lambda i: min(i, 10), progress=frozen_from(10))
    assert "stalled" in rules(assess(s))
    moved = s + [s[-1]._replace(t=s[-1].t + 2, updated_at=s[-1].t + 2, progress=("train", 1, 11), batch=11)]
    assert assess(moved).level == OK


def test_stall_skipped_without_a_batch_counter_and_for_ended_runs():
    s = run(60, batch=None, progress=("loading", None, None))
    assert assess(s).level == OK
    s = run(60, batch=lambda i: 3, progress=frozen_from(3), status="FINISHED")
    assert assess(s).level is None


def test_stopped_process_is_stalled_not_heartbeat_lost():
    # SIGSTOP: the heartbeat stops too; the process state tells why
    s = run(40, batch=lambda i: min(i, 5), progress=frozen_from(5), updated_at=1010.0, stopped=lambda i: i >= 5)
    v = assess(s)
    assert rules(v) == ["stalled"] and "process stopped" in v.reason
    assert "stalled" not in rules(assess(s[:34]))  # 5..33: 56 s


def test_configurable_stall_threshold():
    cfg = DEFAULT_CONFIG.with_overrides({"stall_seconds": "3", "stall_batches": "0"})
    s = run(4, step=1.0, batch=lambda i: 0, progress=lambda i: ("train", 1, 0))
    assert "stalled" in rules(assess(s, cfg))
    assert "stalled" not in rules(assess(s[:3], cfg))


# -- heartbeat ---------------------------------------------------------------

@pytest.mark.parametrize("age, fires", [(10.0, False), (10.5, True)])
def test_heartbeat_lost_after_the_limit(age, fires):
    s = run(5)
    s[-1] = s[-1]._replace(updated_at=s[-1].t - age)
    v = assess(s)
    assert ("heartbeat" in rules(v)) is fires
    if fires:
        assert v.level == CRIT and "heartbeat lost" in v.reason


def test_heartbeat_rule_ignores_dead_and_ended_runs():
    s = run(5, updated_at=0.0, alive=lambda i: i < 4, status=lambda i: "RUNNING" if i < 4 else "KILLED")
    assert "heartbeat" not in rules(assess(s))


# -- NaN / inf ---------------------------------------------------------------

@pytest.mark.parametrize("value, fires", [(1.0, False), (float("nan"), True), (float("inf"), True),
                                          (-float("inf"), True), ("NaN", True), ("-Infinity", True),
                                          ("n/a", False), (None, False)])
def test_nan_or_inf_in_any_metric_is_crit(value, fires):
    s = run(3)
    s[-1] = s[-1]._replace(metrics={"loss": 0.5, "grad_norm": value})
    v = assess(s)
    assert (v.level == CRIT) is fires
    if fires:
        assert v.reason.startswith("grad_norm is")


def test_nan_clears():
    s = run(3)
    s[1] = s[1]._replace(metrics={"loss": math.nan})
    assert assess(s).level == OK


# -- diverging ---------------------------------------------------------------

@pytest.mark.parametrize("value, fires", [(0.3, False), (0.30001, True)])
def test_diverging_above_k_times_the_running_min(value, fires):
    s = run(30, metrics=lambda i: {"loss": max(0.1, 1.0 - i * 0.05), "acc": 0.1})
    s[-1] = s[-1]._replace(metrics={"loss": value, "acc": 0.1})
    v = assess(s)
    assert ("diverging" in rules(v)) is fires
    if fires:
        assert v.reason.startswith("loss diverging")


def test_diverging_waits_for_the_warm_up():
    s = run(21, metrics=lambda i: {"val_loss": 0.1})
    s[-1] = s[-1]._replace(metrics={"val_loss": 5.0})
    assert "diverging" in rules(assess(s))  # 20 samples before
    assert "diverging" not in rules(assess(s[1:]))  # 19


def test_not_loss_like_metrics_do_not_diverge():
    s = run(30, metrics=lambda i: {"acc": 0.1 if i < 29 else 0.9})
    assert assess(s).level == OK


# -- memory pressure, OOM ------------------------------------------------------

@pytest.mark.parametrize("rss, fires", [(int(0.899 * 16 * GIB), False), (int(0.9 * 16 * GIB) + 1, True)])
def test_ram_pressure_at_90_percent_of_budget(rss, fires):
    v = assess(run(3, rss_bytes=rss))
    assert ("memory" in rules(v)) is fires
    if fires:
        assert v.level == WARN and v.reason == "RAM at 90%"


def test_gpu_memory_pressure_run_or_device():
    assert assess(run(3, gpu_memory_bytes=int(0.95 * 80 * GIB))).reason == "GPU memory at 95%"
    assert assess(run(3, device_memory_fraction=0.93)).reason == "GPU memory at 93%"
    assert assess(run(3, device_memory_fraction=0.89)).level == OK


def test_vanished_near_a_limit_is_likely_oom_killed():
    alive = lambda i: i < 4  # noqa: E731
    status = lambda i: "RUNNING" if i < 4 else "KILLED"  # noqa: E731
    v = assess(run(5, alive=alive, status=status, rss_bytes=int(0.95 * 16 * GIB)))
    assert v.level == CRIT and v.reason == "likely OOM-killed (RAM at 95%)"
    v = assess(run(5, alive=alive, status=status, rss_bytes=int(0.5 * 16 * GIB)))
    assert v.level is None


# -- GPU idle ------------------------------------------------------------------

@pytest.mark.parametrize("n, fires", [(60, False), (61, True)])
def test_gpu_idle_for_two_minutes(n, fires):
    s = run(10) + run(n, gpu_utilization=3.0)[:]
    s = [x._replace(t=1000.0 + 2 * i, updated_at=1000.0 + 2 * i, progress=("train", 1, i)) for i, x in enumerate(s)]
    v = assess(s)
    assert ("gpu_idle" in rules(v)) is fires
    if fires:
        assert v.reason.startswith("GPU idle for 2 min")


def test_gpu_idle_needs_gpu_memory_and_known_utilisation_and_clears():
    assert assess(run(100, gpu_utilization=0.0, gpu_memory_bytes=0)).level == OK
    assert assess(run(100, gpu_utilization=None)).level == OK
    s = run(100, gpu_utilization=lambda i: 0.0 if i < 99 else 5.0)
    assert assess(s).level == OK
    assert "gpu_idle" in rules(assess(s[:-1]))


# -- input-bound ---------------------------------------------------------------

@pytest.mark.parametrize("n, fires", [(15, False), (16, True)])
def test_input_bound_hint(n, fires):
    v = assess(run(n, cpu_percent=99.0, gpu_utilization=20.0))
    assert ("input_bound" in rules(v)) is fires
    assert "input_bound" not in rules(assess(run(40, cpu_percent=99.0, gpu_utilization=30.0)))
    assert "input_bound" not in rules(assess(run(40, cpu_percent=80.0, gpu_utilization=10.0)))


# -- verdict, config -------------------------------------------------------------

def test_worst_finding_wins_and_all_are_kept():
    s = run(3, rss_bytes=15 * GIB)
    s[-1] = s[-1]._replace(metrics={"loss": math.inf})
    v = assess(s)
    assert v.level == CRIT and v.reason == "loss is inf"
    assert rules(v) == ["nan", "memory"]


def test_overrides_are_checked():
    cfg = HealthConfig().with_overrides({"gpu-idle-seconds": "30", "diverge_warmup": "5"})
    assert cfg.gpu_idle_seconds == 30.0 and cfg.diverge_warmup == 5
    with pytest.raises(ValueError, match="unknown health threshold"):
        HealthConfig().with_overrides({"nope": "1"})
    with pytest.raises(ValueError, match="must be a number"):
        HealthConfig().with_overrides({"stall_seconds": "x"})
    with pytest.raises(ValueError, match=">= 0"):
        HealthConfig().with_overrides({"stall_seconds": "-1"})
    with pytest.raises(ValueError, match="regular expression"):
        HealthConfig().with_overrides({"loss_pattern": "("})


def test_cli_health_options():
    from ttop.cli import parse_args

    args = parse_args(["f", "--health", "stall_seconds=5", "--health", "gpu-idle-seconds = 30"])
    assert args.health_config.stall_seconds == 5.0 and args.health_config.gpu_idle_seconds == 30.0
    assert parse_args(["f"]).health_config is None
    for bad in ("stall_seconds", "=3", "nope=1", "stall_seconds=-2"):
        with pytest.raises(SystemExit) as e:
            parse_args(["f", "--health", bad])
        assert e.value.code == 2


# -- stable_until: when an unchanged run must be judged again -----------------

def _repeat(series, t):
    return list(series) + [series[-1]._replace(t=t)]


@pytest.mark.parametrize("series", [
    run(10, batch=lambda i: 3, progress=lambda i: ("train", 1, 3)),  # heading for stalled
    run(10, updated_at=1000.0),  # heading for heartbeat lost
    run(10, gpu_utilization=1.0),  # heading for GPU idle
    run(10, cpu_percent=99.0, gpu_utilization=10.0),  # heading for input-bound
    run(40, batch=lambda i: 3, progress=lambda i: ("train", 1, 3)),  # stalled already: reason refresh
    run(5),  # healthy and moving
])
def test_stable_until_is_the_first_moment_a_rule_can_change(series):
    from ttop.collect.health import stable_until

    v = assess(series)
    until = stable_until(series, v)
    assert until > series[-1].t
    rules_now = rules(v)
    t = series[-1].t
    while t < min(until, series[-1].t + 400):
        assert rules(assess(_repeat(series, t))) == rules_now, t
        t += 0.25
    if until < math.inf and not (set(rules_now) & {"heartbeat", "stalled", "gpu_idle", "input_bound"}):
        later = assess(_repeat(series, until + 0.001))
        assert rules(later) != rules_now  # the rule it waited for fires


def test_stable_until_ended_runs_never_change():
    from ttop.collect.health import stable_until

    s = run(5, status="FINISHED")
    assert stable_until(s, assess(s)) == math.inf


def test_a_huge_health_threshold_is_a_bad_argument_not_an_internal_error(tmp_path):
    """--health stall_seconds=1e308 passed the check (a finite number >= 0)
    and ttop then failed with "internal error: OverflowError" (twice the
    stall window is infinite). Like every number option, a threshold may
    not exceed 1e9: a usage error, exit 2, one line."""
    import subprocess
    import sys

    from conftest import ROOT

    folder = tmp_path / "progress"
    folder.mkdir()
    r = subprocess.run([sys.executable, "-m", "ttop", str(folder), "--once", "--health", "stall_seconds=1e308"],
                       cwd=str(ROOT), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines()[-1] == "ttop: error: health threshold stall_seconds must be a number from 0 to 1e+09, got '1e308'"
