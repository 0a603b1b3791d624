"""A script's on_variable_change callback runs in the writer's thread (rank
0) or the follower's thread (other ranks): whatever it raises, sys.exit()
included, is its error to report, never the end of that thread."""
from __future__ import annotations

import os
import sys

import pytest

from conftest import load_json as load
from conftest import wait_until
from ttop import progress as P
from ttop.monitor import TrainingMonitor


def stop_on_zero(name, old, new):
    if new == 0:
        sys.exit("lr 0 asked: stop")  # a script's idea of stopping the run


def test_sys_exit_in_the_callback_does_not_end_the_writer(progress_dir, capsys):
    m = TrainingMonitor(folder=str(progress_dir), run_name="run", interval=0.05, handle_signals=False, gpu=False,
                        variables={"lr": 0.1}, on_variable_change=stop_on_zero)
    m.start_monitoring()
    try:
        P.write_control(str(progress_dir), "run", 1, {"lr": 0})
        # the writer either says what the callback did, or is gone
        wait_until(lambda: not m._thread.is_alive() or (load(m.path) or {}).get("control_seq") == 1)
        assert m._thread.is_alive(), "the writer thread ended with the callback's SystemExit"
        m.start_phase("train")
        for _ in range(3):
            m.start_batch()
        m.update_metrics(loss=0.5)
        d = wait_until(lambda: (lambda d: d if d and d["batch"] == 3 and d["metrics"] == {"loss": 0.5} else None)(
            load(m.path)))
        assert "on_variable_change('lr') raised SystemExit: lr 0 asked: stop" in d["control_error"]
        assert m.variables["lr"] == 0
    finally:
        m.set_finished()
    assert "on_variable_change('lr') raised SystemExit" in capsys.readouterr().err
    assert load(m.path)["status"] == "FINISHED"


def test_sys_exit_in_the_callback_does_not_end_a_ranks_follower(tmp_path):
    from ttop.integrations._ranks import RankFollower

    f = RankFollower(str(tmp_path), "job", 1, 2, 0.05, stop_on_zero)
    f.track({"lr": 0.1})
    f.start()
    path = os.path.join(str(tmp_path), ".job.rank1.json")
    try:
        P.write_control(str(tmp_path), "job", 1, {"lr": 0})
        wait_until(lambda: not f._thread.is_alive() or (load(path) or {}).get("control_seq") == 1)
        assert f._thread.is_alive(), "the follower thread ended with the callback's SystemExit"
        d = load(path)
        assert "SystemExit: lr 0 asked: stop" in d["control_error"]
        P.write_control(str(tmp_path), "job", 2, {"lr": 0.5})  # and it goes on following the run
        wait_until(lambda: (load(path) or {}).get("control_seq") == 2)
    finally:
        f.end("FINISHED")


def test_a_name_held_by_a_monitor_of_this_process_says_so(progress_dir):
    """A notebook cell interrupted outside a ``with`` block (no excepthook
    there) leaves its run going; run again, it is refused: the message must
    not send the user after "a live run (PID n)" that is their own kernel."""
    from ttop.monitor import RunNameInUseError

    first = TrainingMonitor(folder=str(progress_dir), run_name="exp", handle_signals=False, gpu=False)
    first.start_monitoring()
    try:
        with pytest.raises(RunNameInUseError) as e:
            TrainingMonitor(folder=str(progress_dir), run_name="exp", handle_signals=False, gpu=False).start_monitoring()
        msg = str(e.value)
        assert e.value.pid == os.getpid()
        assert "another TrainingMonitor of this process (PID %d" % os.getpid() in msg, msg
        assert "has not ended" in msg and "set_finished()" in msg and "live run" not in msg
    finally:
        first.set_finished()
