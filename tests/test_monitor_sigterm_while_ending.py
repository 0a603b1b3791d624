"""A SIGTERM that comes while the run's final status is being written (a
second SIGTERM: ``timeout``, SLURM, Kubernetes and a shell's ``kill``
of the process group each send one more; or a SIGTERM just as the script
calls ``set_finished()``) must not end the process before that status is
in the file: the run would say RUNNING, and ttop show it KILLED.

The signal is sent from the clock the monitor is given (a parameter of the
API): its first ``time()`` in the main thread after ``arm`` is the one
``_terminal`` asks for once the run is closed, so the signal lands there
every time, not at a moment the test would have to hit."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT


def _child(sig, body):
    """A script whose monitor's clock sends ``sig`` to the process at its
    first ``time()`` in the main thread once ``Clock.arm`` is set."""
    return textwrap.dedent(
        """
        import os, signal, sys, threading, time
        sys.path.insert(0, %r)
        from ttop import TrainingMonitor

        class Clock:
            arm = False
            def monotonic(self):
                return time.monotonic()
            def time(self):
                if Clock.arm and threading.current_thread() is threading.main_thread():
                    Clock.arm = False
                    os.kill(os.getpid(), signal.%s)
                return time.time()
        """
        % (str(ROOT), sig)
    ) + textwrap.dedent(body)


CHILD = _child("SIGTERM", """
    mode, folder = sys.argv[1], sys.argv[2]
    m = TrainingMonitor(folder=folder, run_name=mode, interval=0.05, gpu=False, clock=Clock())
    m.start_monitoring()
    m.start_phase("train")
    for i in range(5):
        m.start_batch()
        m.update_metrics(loss=1.0 / (i + 1))
    Clock.arm = True
    if mode == "finish":
        m.set_finished()  # a SIGTERM comes while it writes FINISHED
    elif mode == "twice":
        os.kill(os.getpid(), signal.SIGTERM)  # and a second one while the first writes CANCELED
    time.sleep(30)
    print("survived", flush=True)
    """)


CTRL_C = _child("SIGINT", """
    folder = sys.argv[1]
    with TrainingMonitor(folder=folder, run_name="ctrl-c", interval=0.05, gpu=False, clock=Clock()) as m:
        for i in m.track(range(5)):
            m.update_metrics(loss=1.0 / (i + 1))
        Clock.arm = True
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl+C, and a second one while the first writes CANCELED
        time.sleep(30)
    print("survived", flush=True)
    """)


def test_a_second_ctrl_c_while_the_final_status_is_written_does_not_lose_it(tmp_path, spawn, progress_dir):
    """Ctrl+C pressed twice (the usual impatient stop): the second
    KeyboardInterrupt came out of the code writing CANCELED, before the
    file said so."""
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    p = spawn([sys.executable, str(script), str(progress_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0, (out, err)
    assert "KeyboardInterrupt" in err
    d = json.loads((progress_dir / "ctrl-c.json").read_text())
    assert (d["status"], d["error"]) == ("CANCELED", "KeyboardInterrupt")
    assert d["train_batch"] == 5


@pytest.mark.parametrize("mode,status,error", [
    ("finish", "FINISHED", None),
    ("twice", "CANCELED", "received SIGTERM"),
])
def test_a_sigterm_while_the_final_status_is_written_waits_for_it(tmp_path, spawn, progress_dir, mode, status, error):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    p = spawn([sys.executable, str(script), mode, str(progress_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == -signal.SIGTERM, (out, err)  # the process still dies of it
    d = json.loads((progress_dir / (mode + ".json")).read_text())
    assert (d["status"], d["error"]) == (status, error)
    assert d["train_batch"] == 5


STUCK = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    class Clock:
        arm = False
        def monotonic(self):
            if Clock.arm and threading.current_thread() is threading.main_thread():
                os.kill(os.getpid(), signal.SIGTERM)  # put off until the status is written
            return time.monotonic()
        def time(self):
            if Clock.arm and threading.current_thread() is threading.main_thread():
                Clock.arm = False
                os.kill(os.getpid(), signal.SIGTERM)  # a second one: the user insists
                time.sleep(600)  # as a write stuck on a hung file system
            return time.time()

    m = TrainingMonitor(folder=sys.argv[1], run_name="stuck", interval=0.05, gpu=False, clock=Clock())
    m.start_monitoring()
    Clock.arm = True
    m.set_finished()
    """
    % str(ROOT)
)


def test_a_second_sigterm_while_one_waits_for_the_final_status_is_not_put_off(tmp_path, spawn, progress_dir):
    """Only one SIGTERM waits for the final status: a final write stuck
    (a hung file system) must not make the process deaf to SIGTERM."""
    script = tmp_path / "stuck.py"
    script.write_text(STUCK)
    p = spawn([sys.executable, str(script), str(progress_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=300)  # (the stuck write lasts 600 s)
    assert p.returncode == -signal.SIGTERM, (out, err)
