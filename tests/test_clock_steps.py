"""The wall clock is set while ttop runs (an NTP step, an administrator, a
virtual machine resumed): heartbeat ages and health samples keep counting
ttop's elapsed time, in both directions."""
from __future__ import annotations

import time

from ttop.collect import Collector
from ttop.collect.runs import CLOCK_STEP_SECONDS, ClockWatch
from ttop.progress import write_json_atomic

HOUR = 3600.0


def remote_job(folder, t0, ranks=False):
    """A RUNNING job of another host whose files stay as they are (its writer
    went silent), written at ``t0``."""
    d = {"format": "ttop.progress/1", "run_name": "far", "status": "RUNNING", "updated_at": t0, "host": "gpu-far-01",
         "pid": 4242, "pid_create_time": 1.0, "heartbeat_interval": 1.0, "batch": 7}
    write_json_atomic(str(folder / "far.json"), d)
    if ranks:
        write_json_atomic(str(folder / ".far.rank1.json"), {
            "format": "ttop.rank/1", "run_name": "far", "rank": 1, "world_size": 2, "pid": 4243,
            "pid_create_time": 1.0, "host": "gpu-far-02", "status": "RUNNING", "updated_at": t0,
            "control_seq": 0, "control_error": None})


def stepping_collector(folder, t0):
    """A collector whose wall clock (``wall[0]``) and boot-time clock
    (``elapsed[0]``) the test moves."""
    wall, elapsed = [t0], [1000.0]
    c = Collector(str(folder), interval=1.0, gpu=False, tpu=False,
                  clock=lambda: wall[0], elapsed=lambda: elapsed[0])
    return c, wall, elapsed


def test_a_clock_set_back_does_not_keep_a_silent_run_fresh(progress_dir):
    t0 = time.time()
    remote_job(progress_dir, t0, ranks=True)
    c, wall, elapsed = stepping_collector(progress_dir, t0)
    run = c.collect().run("far")
    assert not run.stale and run.ranks and not run.ranks[0].stale
    wall[0] -= HOUR  # set back an hour ...
    elapsed[0] += 11.0  # ... while 11 s passed: past the 10 s heartbeat limit
    wall[0] += 11.0
    run = c.collect().run("far")
    assert run.stale and run.stale_reason == "no heartbeat for 11 s"
    assert abs(run.heartbeat_age - 11.0) < 1.0
    assert run.ranks[0].stale and abs(run.ranks[0].heartbeat_age - 11.0) < 1.0


def test_a_clock_set_ahead_does_not_make_every_run_stale(progress_dir):
    t0 = time.time()
    remote_job(progress_dir, t0, ranks=True)
    c, wall, elapsed = stepping_collector(progress_dir, t0)
    c.collect()
    wall[0] += HOUR + 2.0
    elapsed[0] += 2.0
    run = c.collect().run("far")
    assert not run.stale and abs(run.heartbeat_age - 2.0) < 1.0
    assert not run.ranks[0].stale and abs(run.ranks[0].heartbeat_age - 2.0) < 1.0


def test_health_samples_keep_their_order_and_spacing_across_a_step(progress_dir):
    t0 = time.time()
    remote_job(progress_dir, t0)
    c, wall, elapsed = stepping_collector(progress_dir, t0)
    for step in (0.0, 0.0, -HOUR, 0.0):
        c.collect()
        wall[0] += 1.0 + step
        elapsed[0] += 1.0
    c.collect()
    ts = [s.t for s in c.recent.samples("far")]  # samples that only repeat the last are folded into it
    assert len(ts) >= 2 and ts == sorted(ts)
    assert round(ts[-1] - ts[0], 6) == 4.0  # the first cycle's sample is 4 s old, as ttop counts
    assert ts[-1] == wall[0]  # the newest sample on the clock as it reads now


def test_a_slewed_clock_is_not_a_step():
    wall, elapsed = [100.0], [5.0]
    w = ClockWatch(lambda: elapsed[0])
    assert w.step(wall[0]) == 0.0
    wall[0], elapsed[0] = wall[0] + 2.0 + CLOCK_STEP_SECONDS * 0.9, elapsed[0] + 2.0  # NTP slewing, a late cycle
    assert w.step(wall[0]) == 0.0
    wall[0], elapsed[0] = wall[0] - 30.0, elapsed[0] + 2.0
    assert w.step(wall[0]) == -32.0


def test_an_injected_clock_alone_is_never_taken_for_a_step(progress_dir):
    """Tests (and embedders) that pass only ``clock`` move time with it."""
    now = [time.time()]
    c = Collector(str(progress_dir), gpu=False, tpu=False, clock=lambda: now[0])
    assert c._clock_watch.step(now[0]) == 0.0
    now[0] += HOUR
    assert c._clock_watch.step(now[0]) == 0.0
