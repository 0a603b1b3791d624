"""A process forked while another thread of the training script (the
monitor's writer above all) holds one of ttop's locks: the child has no such
thread, so a lock it inherited held would never be released, and the child
(a data-loader worker, a multiprocessing pool's process) would hang on it.

Each test holds the lock in a thread of its own, as the writer does while it
builds or writes the file, forks, and lets the child use the monitor; the
child ends at once, or is killed when it hangs."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from ttop.monitor import TrainingMonitor


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def fork_while_held(lock, child):
    """Fork while a thread holds ``lock``; run ``child()`` in the child.
    Returns the child's wait status."""
    held, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            release.wait()

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                child()
                code = 0
            finally:
                os._exit(code)
    finally:
        release.set()
        t.join()
    # (a child that hangs, in the after-fork hook too, is killed after a generous wait)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


@pytest.fixture
def monitor(progress_dir):
    m = TrainingMonitor(folder=str(progress_dir), run_name="run", interval=0.05, handle_signals=False, gpu=False)
    m.start_monitoring()
    yield m
    m.set_finished()


def phases(m):
    m.start_phase("worker", total_batches=2)
    m.track_variables({"lr": 0.1})
    for _ in m.track(range(2), phase=None):
        pass
    m.end_phase()


def test_a_child_forked_while_the_writer_holds_the_runs_lock_can_use_the_monitor(monitor):
    status = fork_while_held(monitor._lock, lambda: phases(monitor))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child hung on the run's lock (status %d)" % status
    monitor.start_phase("train")  # the parent's monitor goes on
    assert load(monitor.path)["status"] == "RUNNING"


def test_a_child_forked_while_another_thread_registers_a_monitor_starts(monitor):
    from ttop.monitor import hooks

    status = fork_while_held(hooks._live_lock, lambda: None)  # the after-fork hook alone
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child hung in the after-fork hook (status %d)" % status


def test_a_child_forked_during_an_atomic_write_starts_its_own_run(monitor, progress_dir):
    from ttop import atomic

    def child():
        with TrainingMonitor(folder=str(progress_dir), run_name="worker", interval=0.05, handle_signals=False,
                             gpu=False) as w:
            w.start_phase("work")

    class AllStripes:  # every temp-file lock at once, whichever the child's name falls on
        def __enter__(self):
            for lock in atomic._TEMP_LOCKS:
                lock.acquire()

        def __exit__(self, *exc):
            for lock in atomic._TEMP_LOCKS:
                lock.release()

    status = fork_while_held(AllStripes(), child)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child hung on a temp-file lock (status %d)" % status
    assert load(os.path.join(str(progress_dir), "worker.json"))["status"] == "FINISHED"
