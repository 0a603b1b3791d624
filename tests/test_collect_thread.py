"""The collector thread: publishes every interval, readers never wait, stops fast."""
from __future__ import annotations

import os
import threading
import time

from conftest import wait_until
from ttop.collect import Collector, GpuDevice
from ttop.collect.gpu import GpuSample
from ttop.progress import write_json_atomic


class SlowGpu:
    """A GPU source whose sample() can be held up, to make one cycle slow."""

    def __init__(self):
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.calls = 0

    def sample(self):
        self.calls += 1
        self.entered.set()
        self.gate.wait(30)
        return GpuSample(devices=[GpuDevice(index=0, name="slow", memory_total=100)])


class BrokenSource:
    def sample(self):
        raise RuntimeError("driver exploded")


class RecordingWake(threading.Event):
    """The collector's wake-up event, recording how long the thread asked
    to wait after each cycle (install before start: ``c._events =
    (RecordingWake(), threading.Event())``)."""

    def __init__(self):
        super().__init__()
        self.asked = []

    def wait(self, timeout=None):
        self.asked.append(timeout)
        return super().wait(timeout)


class SleepyGpu:
    """A GPU source that takes at least 0.2 s: every cycle does."""

    def sample(self):
        time.sleep(0.2)
        return GpuSample(devices=[GpuDevice(index=0, name="sleepy", memory_total=100)])


def write_run(folder, name):
    write_json_atomic(os.path.join(str(folder), name + ".json"),
                      {"format": "ttop.progress/1", "run_name": name, "status": "FINISHED",
                       "updated_at": time.time()})


def test_publishes_every_interval_and_stops_fast(progress_dir):
    write_run(progress_dir, "a")
    c = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False)
    wake = RecordingWake()
    c._events = (wake, threading.Event())
    assert c.latest is None
    seen = []
    c.add_listener(lambda: seen.append(c.latest.seq))
    c.start()
    c.start()  # idempotent
    try:
        wait_until(lambda: c.latest is not None and c.latest.seq >= 5, timeout=60)
        snap = c.latest
        assert snap.run("a").status == "FINISHED"
        assert seen[:5] == [1, 2, 3, 4, 5]
        assert c.running
        # a long interval: the thread is soon waiting ~60 s for the next cycle
        c.interval = 60.0
        wait_until(lambda: wake.asked and wake.asked[-1] > 30, timeout=60)
    finally:
        # stopping wakes it: the stop does not wait out the interval
        assert c.stop(timeout=30)
    assert not c.running
    n = c.latest.seq
    time.sleep(0.5)
    assert c.latest.seq == n  # stopped means stopped


def test_interval_is_paced_from_cycle_start(progress_dir):
    # every cycle takes 0.2 s or more (the GPU source sleeps that long)
    c = Collector(str(progress_dir), interval=0.3, gpu=SleepyGpu(), tpu=False)
    wake = RecordingWake()
    c._events = (wake, threading.Event())
    starts = []
    c.add_listener(lambda: starts.append(c.latest.taken_at))  # taken when the cycle began
    c.start()
    try:
        wait_until(lambda: len(starts) >= 5, timeout=60)
    finally:
        assert c.stop(timeout=60)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.25  # never faster than the interval (less scheduling jitter)
    # and not slower: after each cycle the thread waits what is left of the
    # interval since the cycle began (0.1 s at most after a 0.2 s cycle,
    # less on a slower machine), not the whole interval after it ended
    assert len(wake.asked) >= 4 and all(w <= 0.1 for w in wake.asked), wake.asked


def test_latest_never_blocks_during_a_slow_cycle(progress_dir):
    gpu = SlowGpu()
    c = Collector(str(progress_dir), interval=0.1, gpu=gpu, tpu=False)
    c.start()
    try:
        wait_until(lambda: c.latest is not None, timeout=60)
        gpu.entered.clear()
        gpu.gate.clear()  # the next cycle hangs in the GPU source
        wait_until(gpu.entered.is_set, timeout=60)
        before = c.latest
        seen = []

        def reader():
            seen.extend(c.latest for _ in range(1000))
            c.refresh_now()

        # the cycle stays hung in the GPU source until the gate opens: a reader
        # that waited on it would still be waiting
        r = threading.Thread(target=reader, daemon=True)
        r.start()
        r.join(timeout=15)
        assert not r.is_alive(), "latest or refresh_now() waited on the hung cycle"
        assert not gpu.gate.is_set() and len(seen) == 1000 and all(s is before for s in seen)
        assert before.gpus[0].name == "slow"
        gpu.gate.set()
        wait_until(lambda: c.latest.seq > before.seq, timeout=60)
    finally:
        gpu.gate.set()
        assert c.stop(timeout=60)


def test_refresh_now_wakes_the_thread(progress_dir):
    c = Collector(str(progress_dir), interval=60, gpu=False, tpu=False)
    c.start()
    try:
        wait_until(lambda: c.latest is not None, timeout=60)
        first = c.latest.seq
        write_run(progress_dir, "new")
        c.refresh_now()
        snap = wait_until(lambda: c.latest.seq > first and c.latest, timeout=60)
        assert snap.run("new") is not None
    finally:
        assert c.stop(timeout=30)  # does not sit out the 60 s interval


def test_listener_errors_are_swallowed_and_others_still_called(progress_dir):
    c = Collector(str(progress_dir), interval=0.1, gpu=False, tpu=False)
    calls = []

    def bad():
        calls.append("bad")
        raise ValueError("listener bug")

    c.add_listener(bad)
    c.add_listener(lambda: calls.append("good"))
    c.start()
    try:
        wait_until(lambda: calls.count("good") >= 3, timeout=60)
    finally:
        c.stop()
    assert calls.count("bad") >= 3 and c.last_error is None
    c.remove_listener(bad)
    n = calls.count("bad")
    c.collect()
    assert calls.count("bad") == n


def test_broken_sources_do_not_break_a_cycle(progress_dir):
    write_run(progress_dir, "a")
    c = Collector(str(progress_dir), gpu=BrokenSource(), tpu=BrokenSource())
    s = c.collect()
    assert s.gpu_error == "GPU source failed: driver exploded"
    assert s.tpu_error == "TPU source failed: driver exploded"
    assert s.run("a") is not None


def test_collect_alongside_the_thread_keeps_seq_unique(progress_dir):
    c = Collector(str(progress_dir), interval=0.01, gpu=False, tpu=False)
    c.start()
    try:
        mine = [c.collect().seq for _ in range(30)]
    finally:
        c.stop()
    assert mine == sorted(mine) and len(set(mine)) == 30
    assert c.latest.seq >= 30


def test_folder_missing_keeps_the_thread_going(tmp_path):
    folder = tmp_path / "later"
    c = Collector(str(folder), interval=0.1, gpu=False, tpu=False)
    c.start()
    try:
        wait_until(lambda: c.latest is not None and c.latest.folder_error, timeout=60)
        folder.mkdir()
        write_run(folder, "a")
        wait_until(lambda: c.latest.folder_error is None and c.latest.run("a"), timeout=60)
    finally:
        c.stop()


def test_stop_timing_out_then_start_keeps_one_thread_running(progress_dir):
    gpu = SlowGpu()
    c = Collector(str(progress_dir), interval=0.05, gpu=gpu, tpu=False)
    c.start()
    try:
        wait_until(lambda: c.latest is not None, timeout=60)
        gpu.entered.clear()
        gpu.gate.clear()
        wait_until(gpu.entered.is_set, timeout=60)
        thread = c._thread
        assert c.stop(timeout=0.1) is False  # stuck in a slow cycle
        c.start()  # taken back: the same thread goes on
        assert c._thread is thread
        gpu.gate.set()
        seq = c.latest.seq
        wait_until(lambda: c.latest.seq >= seq + 3, timeout=60)
        assert thread.is_alive() and c.running
    finally:
        gpu.gate.set()
        assert c.stop(timeout=60)
