"""Health verdicts computed by the collector for real processes: a demo run
SIGSTOPped and resumed, a run logging NaN, a GPU process replayed busy -> held
(memory kept, utilisation gone) through the recorded NVML fixture."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_collect_gpu import doc, fake_nvml, gpu_process  # noqa: F401 (fixture)

from conftest import EXAMPLES, ROOT, wait_until
from ttop.collect import Collector
from ttop.collect.gpu import NvmlSource
from ttop.collect.health import CRIT, OK, WARN, HealthConfig
from ttop.progress import write_json_atomic

DEMO = EXAMPLES / "demo_job.py"


def streak(samples, cond):
    i = len(samples) - 1
    while i >= 0 and cond(samples[i]):
        i -= 1
    return None if i == len(samples) - 1 else samples[-1].t - samples[i + 1].t


def test_sigstop_is_stalled_once_past_the_threshold_and_sigcont_clears(spawn, progress_dir):
    job = spawn([sys.executable, str(DEMO), "--folder", str(progress_dir), "--name", "demo", "--workers", "0",
                 "--batches", "100000", "--batch-time", "0.02", "--interval", "0.2"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = HealthConfig(stall_seconds=1.5, stall_batches=0)
    c = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False, health=cfg)

    def training():
        r = c.collect().run("demo")
        return r if r and r.alive and r.data.get("batch") is not None else None

    def healthy():
        r = training()
        return r if r is not None and r.health == OK else None

    wait_until(training, timeout=60)
    r = wait_until(healthy, timeout=30)
    assert r.health_reason is None
    os.kill(job.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: c.collect().run("demo").processes[0].status == "stopped", timeout=60)
        fired = None
        deadline = time.monotonic() + 30
        while fired is None and time.monotonic() < deadline:
            r = c.collect().run("demo")
            samples = c.recent.samples("demo")
            newest = samples[-1].progress
            idle = streak(samples, lambda s, newest=newest: s.progress == newest)
            # every cycle: stalled exactly when the counters have been still for the threshold
            assert (r.health == WARN) == (idle is not None and idle >= 1.5), (idle, r.health, r.health_reason)
            if r.health == WARN:
                fired = r
            time.sleep(0.1)
        assert fired is not None, "never stalled"
        assert fired.health_reason.startswith("stalled: process stopped, batch ")
    finally:
        os.kill(job.pid, signal.SIGCONT)
    wait_until(lambda: c.collect().run("demo").health == OK, timeout=30)


NAN_JOB = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from ttop import TrainingMonitor
with TrainingMonitor(folder=sys.argv[1], run_name="nan", interval=0.2) as m:
    for b in m.track(range(1000000), phase="train"):
        m.update_metrics(loss=1.0 if b < 20 else float("nan"))
        time.sleep(0.02)
"""


def test_a_run_logging_nan_is_crit(spawn, progress_dir):
    spawn([sys.executable, "-c", NAN_JOB, str(progress_dir), str(ROOT)])
    c = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False)
    seen = []

    def crit():
        r = c.collect().run("nan")
        if r is not None and r.alive:
            seen.append(r.health)
        return r if r is not None and r.health == CRIT else None

    r = wait_until(crit, timeout=60)
    assert r.health_reason == "loss is NaN"
    assert r.status == "RUNNING" and r.alive


def test_gpu_idle_from_the_recording_busy_then_held(fake_nvml, spawn, tmp_path, progress_dir, monkeypatch):  # noqa: F811
    p, ctime, prefix = gpu_process(spawn, tmp_path)
    monkeypatch.setenv("TTOP_FAKE_NVML_PID_MAP", "489:%d" % p.pid)
    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "busy")
    path = str(progress_dir / "g.json")
    batch = [0]

    def beat():
        batch[0] += 1
        write_json_atomic(path, doc("g", p.pid, ctime, batch=batch[0], rate=10.0))

    clock = [1000.0]
    beat()
    cfg = HealthConfig(gpu_idle_seconds=1.0)
    src = NvmlSource(device_prefix=prefix, clock=lambda: clock[0])
    c = Collector(str(progress_dir), interval=2.0, gpu=src, tpu=False, health=cfg)
    calls0 = fake_nvml.calls.get("nvmlDeviceGetProcessUtilization", 0)
    r = c.collect().run("g")
    assert r.resources.gpu_memory_bytes == 3869245440
    assert r.gpu_utilization == 96.0 and r.health == OK  # NVML's per-process SM % of PID 489
    assert fake_nvml.calls["nvmlDeviceGetProcessUtilization"] == calls0 + 1  # one call per device
    c.collect()  # within the TTL: cached
    assert fake_nvml.calls["nvmlDeviceGetProcessUtilization"] == calls0 + 1

    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "held")  # memory kept, NotFound = nothing ran
    verdicts = []
    for _ in range(30):
        clock[0] += 2.0  # the NVML cache's clock; samples use the collector's wall clock
        beat()
        r = c.collect().run("g")
        samples = c.recent.samples("g")
        idle = streak(samples, lambda s: s.gpu_utilization == 0.0)
        assert r.gpu_utilization == 0.0 and r.resources.gpu_memory_bytes == 3869245440
        verdicts.append(r.health)
        assert (r.health == WARN) == (idle >= 1.0), (idle, r.health_reason)
        if r.health == WARN:
            assert r.health_reason.startswith("GPU idle for ")
            break
        time.sleep(0.2)
    assert verdicts[-1] == WARN and verdicts[0] == OK

    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "busy")
    clock[0] += 2.0
    beat()
    r = c.collect().run("g")
    assert r.gpu_utilization == 96.0 and r.health == OK


def test_device_utilisation_is_used_when_the_run_is_alone_and_per_process_figures_fail(
        fake_nvml, spawn, tmp_path, progress_dir, monkeypatch):  # noqa: F811
    p, ctime, prefix = gpu_process(spawn, tmp_path)
    monkeypatch.setenv("TTOP_FAKE_NVML_PID_MAP", "489:%d" % p.pid)
    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "busy")
    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetProcessUtilization",
                        lambda h, ts=0: (_ for _ in ()).throw(fake_nvml.NVMLError_NoPermission()))
    write_json_atomic(str(progress_dir / "g.json"), doc("g", p.pid, ctime, batch=1))
    c = Collector(str(progress_dir), interval=2.0, gpu=NvmlSource(device_prefix=prefix), tpu=False)
    s = c.collect()
    assert s.run("g").gpu_utilization == 100.0  # the device's own figure: the run is alone on it
    assert s.gpus[0].errors.get("process_utilization") == "Insufficient Permissions"


@pytest.mark.parametrize("n_remote", [50])
def test_silent_remote_runs_keep_two_samples(progress_dir, n_remote):
    now = time.time()
    for i in range(n_remote):
        write_json_atomic(str(progress_dir / ("r%d.json" % i)),
                          {"format": "ttop.progress/1", "run_name": "r%d" % i, "status": "RUNNING",
                           "updated_at": now - 100, "host": "elsewhere", "batch": 3})
        os.utime(str(progress_dir / ("r%d.json" % i)), (now - 100, now - 100))  # as its writer left it
    c = Collector(str(progress_dir), interval=0.5, gpu=False, tpu=False)
    for _ in range(10):
        s = c.collect()
    assert all(r.health == CRIT and r.health_reason.startswith("heartbeat lost") for r in s.runs)
    assert all(1 <= len(c.recent.samples(r.key)) <= 2 for r in s.runs)  # repeats collapse


HOG = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from ttop import TrainingMonitor
block = bytearray(int(sys.argv[3]))  # resident: touched below
for i in range(0, len(block), 4096):
    block[i] = 1
with TrainingMonitor(folder=sys.argv[1], run_name="hog", interval=0.2) as m:
    for b in m.track(range(1000000), phase="train"):
        time.sleep(0.05)
"""


def test_memory_pressure_then_vanished_is_likely_oom_killed(spawn, progress_dir):
    from ttop.collect.snapshot import Budgets

    job = spawn([sys.executable, "-c", HOG, str(progress_dir), str(ROOT), str(60 << 20)])
    wait_until(lambda: (progress_dir / "hog.json").exists(), timeout=60)
    probe = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False)
    rss = wait_until(lambda: (probe.collect().run("hog").resources.rss_bytes or 0) > (60 << 20)
                     and probe.latest.run("hog").resources.rss_bytes, timeout=30)
    budget = Budgets(cpus=2.0, ram_bytes=int(rss / 0.95))  # the run sits at ~95 % of its RAM budget
    c = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False, budgets=budget)
    r = wait_until(lambda: c.collect().run("hog").health == WARN and c.latest.run("hog"), timeout=30)
    assert r.health_reason.startswith("RAM at 9")
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=10)
    r = wait_until(lambda: c.collect().run("hog").status == "KILLED" and c.latest.run("hog"), timeout=30)
    assert r.health == CRIT and r.health_reason.startswith("likely OOM-killed (RAM at 9")
    for _ in range(3):  # and it stays so once the run has ended
        r = c.collect().run("hog")
    assert r.health == CRIT and r.health_reason.startswith("likely OOM-killed")


_values = st.sampled_from([None, 0, 1, 7, 2.5, True, "3", float("nan"), [1], {"a": 1}])


@settings(max_examples=25, deadline=None)
@given(versions=st.lists(st.tuples(
    st.sampled_from(["RUNNING", "RUNNING", "FINISHED"]), _values, _values, _values, _values,
    st.sampled_from([{"loss": 0.5}, {"loss": 0.5, "acc": float("inf")}, None, [0.5], {}]),
    st.sampled_from([1.0, 2.0, 1, "x"]), st.sampled_from([{"cpu_percent": 50.0}, {"rss_bytes": 1}, None]),
    st.sampled_from(["node-1", "node-2"])), min_size=1, max_size=7))
def test_health_samples_from_the_collectors_per_version_facts_equal_those_worked_out_alone(versions):
    """The collector hands each run's per-version facts (its _Static) to the
    health samples; samples worked out by RecentSamples alone from the same
    runs are the same, version after version, whatever the file holds."""
    from unittest import mock

    from ttop.collect import scan
    from ttop.collect.recent import RecentSamples
    from ttop.record import replace

    now = [1.7e9]
    # no file settles (the scanner's test of a file's real age): an ended
    # version that had settled would be archived, its samples let go, which
    # RecentSamples alone does not know of; on a loaded machine that
    # happened, or not, by the time between the write and the read
    never = mock.patch.multiple(scan, RACY_SECONDS=1e12, _RACY_COARSE=1e12)
    with tempfile.TemporaryDirectory() as folder, never:
        c = Collector(folder, interval=2.0, gpu=False, tpu=False, clock=lambda: now[0], notify=False)
        alone = None
        try:
            for status, batch, phase, epoch, rate, metrics, updated, res, host in versions:
                d = {"format": "ttop.progress/1", "run_name": "r", "status": status, "host": host,
                     "updated_at": now[0] - 1 if updated == "x" else now[0] - updated, "heartbeat_interval": 1.0,
                     "batch": batch, "phase": phase, "epoch": epoch, "rate": rate, "metrics": metrics,
                     "resources": res, "pid": 10}
                write_json_atomic(os.path.join(folder, "r.json"), {n: v for n, v in d.items() if v is not None})
                # (s: the same status and host throughout: its _Static renewed in place)
                write_json_atomic(os.path.join(folder, "s.json"), dict(d, run_name="s", status="RUNNING", host="n"))
                snap = c.collect()
                if alone is None:
                    alone = RecentSamples(2.0, heartbeat_limit=c.recent._hb)
                runs = [replace(r) for r in snap.runs]
                alone.update(runs, now[0])
                for r, mine in zip(snap.runs, runs):
                    assert alone.samples(r.key) == c.recent.samples(r.key)
                    assert (mine.health, mine.health_reason) == (r.health, r.health_reason)
                now[0] += 2.0
        finally:
            c.stop()
