"""Final statuses written by real training processes: the context manager
(normal exit, exception, SystemExit), SIGTERM (default death kept, a user
handler still runs), Ctrl+C (SIGINT), and the plain seed API with an uncaught
exception or no final call at all."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, wait_until

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    mode, folder = sys.argv[1], sys.argv[2]

    def loop(m, n=None):
        m.start_phase("train")
        i = 0
        while n is None or i < n:
            m.start_batch()
            m.update_metrics(loss=1.0 / (i + 1))
            i += 1
            time.sleep(0.01)

    def make():
        return TrainingMonitor(folder=folder, run_name=mode, interval=0.05, gpu=False)

    if mode == "user-handler":
        def handler(signum, frame):
            print("user handler ran", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, handler)

    if mode in ("sigterm", "sigint", "user-handler"):
        with make() as m:
            loop(m)
    elif mode == "finish":
        with make() as m:
            loop(m, 20)
    elif mode == "raise":
        with make() as m:
            loop(m, 5)
            raise ValueError("bad batch 5")
    elif mode == "exit0":
        with make() as m:
            loop(m, 3)
            sys.exit(0)
    elif mode == "exit3":
        with make() as m:
            loop(m, 3)
            sys.exit(3)
    elif mode.startswith("plain"):
        m = make()
        m.track_variables({"lr": 0.1})
        m.start_monitoring()
        if mode == "plain-raise":
            loop(m, 3)
            raise RuntimeError("boom in plain API")
        elif mode == "plain-ctrlc":
            loop(m)
        elif mode == "plain-fork":
            loop(m, 5)
            pid = os.fork()
            if pid == 0:  # a forked worker: it must never write the parent's file
                m.start_batch()
                m.set_finished()
                if sys.argv[3] == "term":
                    os.kill(os.getpid(), signal.SIGTERM)  # the inherited handler passes it on
                    time.sleep(5)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            print("child", "signal %%d" %% os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exit %%d" %% os.WEXITSTATUS(status), flush=True)
            time.sleep(0.3)
            m.set_finished()
        else:
            loop(m, 3)  # plain-exit: never calls set_finished
    """
    % str(ROOT)
)


@pytest.fixture
def child(tmp_path, spawn, progress_dir):
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def _run(mode, *extra):
        p = spawn(
            [sys.executable, str(script), mode, str(progress_dir), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return p, progress_dir / (mode + ".json")

    return _run


def load(path):
    with open(path) as f:
        return json.load(f)


def running_with_batches(path):
    def check():
        try:
            d = load(path)
        except (OSError, ValueError):
            return False
        return d["status"] == "RUNNING" and (d.get("batch") or 0) >= 5

    wait_until(check, timeout=30)


def finish(p):
    out, err = p.communicate(timeout=30)
    return p.returncode, out, err


def test_sigterm_records_canceled_and_still_dies_by_sigterm(child):
    p, path = child("sigterm")
    running_with_batches(path)
    p.send_signal(signal.SIGTERM)
    rc, out, err = finish(p)
    assert rc == -signal.SIGTERM, err
    d = load(path)
    assert d["status"] == "CANCELED" and "SIGTERM" in d["error"] and d["ended_at"] >= d["started_at"]
    assert [f for f in os.listdir(path.parent) if f.startswith(".")] == []  # no temp file left


def test_sigterm_keeps_a_user_handler(child):
    p, path = child("user-handler")
    running_with_batches(path)
    p.send_signal(signal.SIGTERM)
    rc, out, err = finish(p)
    assert rc == 7 and "user handler ran" in out, err
    assert load(path)["status"] == "CANCELED"


def test_ctrl_c_records_canceled_and_reraises(child):
    p, path = child("sigint")
    running_with_batches(path)
    p.send_signal(signal.SIGINT)
    rc, out, err = finish(p)
    assert rc == -signal.SIGINT and "KeyboardInterrupt" in err  # re-raised: Python's usual Ctrl+C exit
    d = load(path)
    assert d["status"] == "CANCELED" and d["error"] == "KeyboardInterrupt"


def test_normal_exit_finished(child):
    p, path = child("finish")
    rc, out, err = finish(p)
    assert rc == 0, err
    d = load(path)
    assert d["status"] == "FINISHED" and d["train_batch"] == 20 and d["error"] is None


def test_exception_failed_with_message_and_traceback(child):
    p, path = child("raise")
    rc, out, err = finish(p)
    assert rc == 1 and "ValueError: bad batch 5" in err  # the exception still propagates
    d = load(path)
    assert d["status"] == "FAILED"
    assert d["error"].startswith("ValueError: bad batch 5")
    assert "Traceback" in d["error"] and "child.py" in d["error"]


@pytest.mark.parametrize("mode,status,rc", [("exit0", "FINISHED", 0), ("exit3", "FAILED", 3)])
def test_sys_exit_inside_with(child, mode, status, rc):
    p, path = child(mode)
    code, out, err = finish(p)
    assert code == rc, err
    d = load(path)
    assert d["status"] == status
    if status == "FAILED":
        assert "SystemExit: 3" in d["error"]


def test_plain_api_uncaught_exception_records_failed(child):
    p, path = child("plain-raise")
    rc, out, err = finish(p)
    assert rc == 1 and "RuntimeError: boom in plain API" in err  # the usual traceback is printed
    d = load(path)
    assert d["status"] == "FAILED" and "boom in plain API" in d["error"]


def test_plain_api_ctrl_c_records_canceled(child):
    p, path = child("plain-ctrlc")
    running_with_batches(path)
    p.send_signal(signal.SIGINT)
    rc, out, err = finish(p)
    assert rc == -signal.SIGINT
    assert load(path)["status"] == "CANCELED"


def test_plain_api_without_final_call_stays_running(child):
    """Documented: without set_finished() or ``with``, the file keeps RUNNING
    and ttop shows the run as KILLED once its PID is gone."""
    p, path = child("plain-exit")
    rc, out, err = finish(p)
    assert rc == 0 and err == ""
    d = load(path)
    assert d["status"] == "RUNNING" and d["ended_at"] is None and d["pid"] == p.pid
    assert [f for f in os.listdir(path.parent) if f.startswith(".")] == []


def test_plain_api_sigterm_records_canceled(child):
    p, path = child("plain-ctrlc")
    running_with_batches(path)
    p.send_signal(signal.SIGTERM)
    rc, out, err = finish(p)
    assert rc == -signal.SIGTERM
    assert load(path)["status"] == "CANCELED"


@pytest.mark.parametrize("how,child_end", [("exit", "child exit 0"), ("term", "child signal 15")])
def test_forked_child_never_writes_the_parents_file(child, how, child_end):
    p, path = child("plain-fork", how)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert out.splitlines() == [child_end]
    d = load(path)
    # the child's set_finished() / SIGTERM did nothing to the file: the parent finished it
    assert d["status"] == "FINISHED" and d["pid"] == p.pid and d["train_batch"] == 5


GRACEFUL = textwrap.dedent(
    """
    import signal, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))  # stop after this epoch, as a preemptible job does
    with TrainingMonitor(folder=sys.argv[1], run_name="graceful", interval=0.05, gpu=False,
                         capture_output=True) as m:
        m.start_phase("train")
        while not stop:
            m.start_batch()
            time.sleep(0.01)
        print("got SIGTERM: saving a checkpoint", flush=True)
        m.start_batch()
        print("checkpoint saved", flush=True)
    """
    % str(ROOT)
)


def test_output_after_sigterm_to_a_script_with_its_own_handler_is_still_captured(tmp_path, spawn, progress_dir):
    """The script's own SIGTERM handler lets it finish its epoch and save a
    checkpoint: what it prints then is in its log, not only on the console."""
    script = tmp_path / "graceful.py"
    script.write_text(GRACEFUL)
    p = spawn([sys.executable, str(script), str(progress_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = progress_dir / "graceful.json"
    running_with_batches(path)
    p.send_signal(signal.SIGTERM)
    rc, out, err = finish(p)
    assert rc == 0 and "checkpoint saved" in out, err
    assert load(path)["status"] == "CANCELED"
    log = (progress_dir / "graceful.stdout.log").read_text()
    assert "got SIGTERM: saving a checkpoint" in log and "checkpoint saved" in log, log


CARRY_ON = textwrap.dedent(
    """
    import signal, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    mode, folder, flag = sys.argv[1], sys.argv[2], sys.argv[3]
    got = []
    signal.signal(signal.SIGTERM, lambda *a: got.append(1))  # noted, training goes on
    m = TrainingMonitor(folder=folder, run_name=mode, interval=0.05, gpu=False)
    m.start_monitoring()
    m.start_phase("train", total_batches=1000)
    i = 0
    while True:
        m.start_batch()
        m.update_metrics(loss=1.0 / (i + 1))
        i += 1
        time.sleep(0.01)
        if got and i %% 10 == 0:
            open(flag, "a").write("%%d\\n" %% i)  # the batches done after the SIGTERM
        try:
            open(flag + ".stop").close()
            break
        except OSError:
            pass
    if mode == "finish":
        m.set_finished()
    # "exit": ends without a final call
    """
    % str(ROOT)
)


@pytest.mark.parametrize("mode,status,error", [("exit", "CANCELED", "received SIGTERM"), ("finish", "FINISHED", None)])
def test_a_script_that_carries_on_after_sigterm_stays_monitored(tmp_path, spawn, progress_dir, mode, status, error):
    """A SIGTERM handler of the script's own that lets training go on: the
    run is neither shown ended nor frozen while it trains; how it ends then
    decides its status (an exit without a final call: CANCELED)."""
    script = tmp_path / "carry.py"
    script.write_text(CARRY_ON)
    flag = tmp_path / "after"
    p = spawn([sys.executable, str(script), mode, str(progress_dir), str(flag)],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = progress_dir / (mode + ".json")
    running_with_batches(path)
    p.send_signal(signal.SIGTERM)
    # the script opens the flag, then writes its line: wait for the line
    at_signal = int(wait_until(lambda: flag.exists() and flag.read_text().split(), timeout=30)[0])

    def written_after():  # batches done after the SIGTERM reach the file, still RUNNING
        d = load(path)
        assert d["status"] == "RUNNING", d
        return d["batch"] > at_signal + 20

    wait_until(written_after, timeout=30)
    (tmp_path / "after.stop").touch()
    rc, out, err = finish(p)
    assert rc == 0, err
    d = load(path)
    assert (d["status"], d["error"]) == (status, error)
    assert d["train_batch"] > at_signal + 20


TWO_RUNS = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder = sys.argv[1]
    a = TrainingMonitor(folder=folder, run_name="first", interval=0.05, gpu=False).start_monitoring()
    b = TrainingMonitor(folder=folder, run_name="second", interval=0.05, gpu=False).start_monitoring()
    print("ready", flush=True)
    # short sleeps, as a training loop's: CPython runs a Python signal
    # handler between bytecodes of the main thread, and a signal that comes
    # while the main thread waits for the GIL just before a blocking call
    # (the two monitor threads start up right now) waits for that call to
    # return; one sleep of 60 s held the SIGTERM for 60 s
    while True:
        time.sleep(0.1)
    """
    % str(ROOT)
)


def test_sigterm_with_two_runs_in_one_process_cancels_both(tmp_path, spawn, progress_dir):
    """Two monitors of one process: the second found the first's SIGTERM
    handler, not one of the script's own; both runs end CANCELED when the
    signal kills the process (the second was left RUNNING)."""
    script = tmp_path / "two.py"
    script.write_text(TWO_RUNS)
    p = spawn([sys.executable, str(script), str(progress_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    rc, out, err = finish(p)
    assert rc == -signal.SIGTERM, err
    for name in ("first", "second"):
        d = load(progress_dir / (name + ".json"))
        assert (d["status"], d["error"]) == ("CANCELED", "received SIGTERM"), name
