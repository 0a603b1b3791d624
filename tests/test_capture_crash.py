"""Output capture when the training process dies: every byte it wrote to
fd 1/2 before dying reaches both the console (here: the test's pipes, the
child's real stdout/stderr) and the logs, for each way of dying, 10 times
each. Also: Ctrl+C to the whole process group, and children that outlive
the script."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, wait_until

LINES = 2000
RUNS = 10

CHILD = textwrap.dedent(
    """
    import ctypes, faulthandler, os, sys, threading, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    mode, folder, ready_fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    faulthandler.enable()
    m = TrainingMonitor(folder=folder, run_name="crash", capture_output=True, interval=60, gpu=False)
    m.start_monitoring()
    for i in range(%d):
        print("out %%05d %%s" %% (i, "x" * 60), flush=True)
        if i %% 10 == 0:
            print("err %%05d" %% i, file=sys.stderr, flush=True)
    if mode == "segv":
        ctypes.string_at(0)
    elif mode == "abort":
        os.abort()
    elif mode == "exit":
        os._exit(7)
    elif mode == "thread":
        t = threading.Thread(target=lambda: 1 / 0, name="loader")
        t.start()
        t.join()
        os._exit(3)
    elif mode == "sidecar-killed":
        import signal
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a write to a dead reader would kill us
        os.kill(m._capture.sidecar_pid, signal.SIGKILL)
        for i in range(%d):
            print("later %%05d" %% i, flush=True)
        m.set_finished()
        print("after stop", flush=True)
        sys.exit(0)
    elif mode == "sidecar-killed-child":
        # a child holding the pipes writes only after the watchdog took over
        import signal, subprocess
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys\\nsys.stdin.read()\\nfor i in range(300): print('child %%05d' %% i, flush=True)"],
            stdin=subprocess.PIPE,
        )
        pipe = os.fstat(1).st_ino
        os.kill(m._capture.sidecar_pid, signal.SIGKILL)
        while os.fstat(1).st_ino == pipe:  # the console is back on fd 1
            time.sleep(0.01)
        time.sleep(0.5)  # what was in the pipes has been copied by now
        child.stdin.close()
        assert child.wait() == 0
        m.set_finished()
        print("after stop", flush=True)
        sys.exit(0)
    elif mode == "sidecar-killed-at-stop":
        # the sidecar dies while stop waits for it to copy what is queued
        import signal
        pid = m._capture.sidecar_pid
        # first, all printed so far copied: a sidecar stopped (then killed)
        # in the middle of a copy loses what it had read, as any copier would
        ends = {"stdout": ("out %%05d %%s\\n" %% (i, "x" * 60)).encode(), "stderr": ("err %%05d\\n" %% (i // 10 * 10)).encode()}
        for name, end in ends.items():
            while not open(os.path.join(folder, "crash.%%s.log" %% name), "rb").read().endswith(end):
                time.sleep(0.01)
        os.kill(pid, signal.SIGSTOP)
        while open("/proc/%%d/stat" %% pid).read().rpartition(")")[2].split()[0] != "T":
            time.sleep(0.01)
        for i in range(300):
            print("queued %%05d" %% i, flush=True)
        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        ok = m._capture.stop(timeout=60)
        m.set_finished()
        print("stopped %%s" %% ok, flush=True)
        sys.exit(0)
    elif mode == "late-child":
        import subprocess
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5); print('late child line', flush=True)"])
        m.set_finished()
        print("after stop")
        sys.exit(0)
    os.write(ready_fd, b"ready")  # kill / sigint: wait for the signal
    while True:
        time.sleep(0.05)
    """
    % (str(ROOT), LINES, LINES)
)

# mode -> (expected return code, text that must be in the stderr log)
MODES = {
    "segv": (-signal.SIGSEGV, "Fatal Python error: Segmentation fault"),
    "abort": (-signal.SIGABRT, "Fatal Python error: Aborted"),
    "exit": (7, None),
    "kill": (-signal.SIGKILL, None),
    "thread": (3, "ZeroDivisionError: division by zero"),
}


def run_child(tmp_path, folder, mode, spawn):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    ready_r, ready_w = os.pipe()
    try:
        p = spawn(
            [sys.executable, str(script), mode, str(folder), str(ready_w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(ready_w,),
        )
        os.close(ready_w)
        ready_w = -1
        if mode in ("kill", "sigint"):
            assert os.read(ready_r, 16) == b"ready"
            if mode == "kill":
                os.kill(p.pid, signal.SIGKILL)
            else:
                os.killpg(p.pid, signal.SIGINT)  # Ctrl+C reaches the whole group
        # EOF on both only once the sidecar copied everything and exited
        out, err = p.communicate(timeout=120)
    finally:
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
    log_out = (folder / "crash.stdout.log").read_bytes()
    log_err = (folder / "crash.stderr.log").read_bytes()
    return p.returncode, out, err, log_out, log_err


def check_lines(out, err):
    want_out = b"".join(b"out %05d %s\n" % (i, b"x" * 60) for i in range(LINES))
    want_err = b"".join(b"err %05d\n" % i for i in range(0, LINES, 10))
    assert out.startswith(want_out), "stdout: %d of %d lines arrived" % (out.count(b"\nout ") + out.startswith(b"out "), LINES)
    assert err.startswith(want_err), "stderr lines lost"


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_output_lost_when_the_process_dies(tmp_path, spawn, mode):
    code, marker = MODES[mode]
    for n in range(RUNS):
        folder = tmp_path / ("run%d" % n)
        folder.mkdir()
        rc, out, err, log_out, log_err = run_child(tmp_path, folder, mode, spawn)
        assert rc == code, (n, rc, err[-2000:])
        check_lines(log_out, log_err)
        # the console got exactly the bytes of the log
        assert out == log_out, n
        assert err == log_err, n
        if marker:
            assert marker.encode() in log_err, (n, log_err[-2000:])


def test_ctrl_c_to_the_process_group_loses_nothing(tmp_path, spawn, progress_dir):
    rc, out, err, log_out, log_err = run_child(tmp_path, progress_dir, "sigint", spawn)
    assert rc != 0
    check_lines(log_out, log_err)
    assert out == log_out and err == log_err
    # the traceback Python prints at exit is captured too
    assert b"KeyboardInterrupt" in log_err


def test_a_child_that_outlives_the_capture_is_still_copied(tmp_path, spawn, progress_dir):
    rc, out, err, log_out, log_err = run_child(tmp_path, progress_dir, "late-child", spawn)
    assert rc == 0, err
    check_lines(log_out, log_err)
    # the child kept the pipe: its line reaches console and log after the script ended
    assert b"late child line\n" in log_out and b"late child line\n" in out
    # the script's own output after stop goes to the console only
    assert b"after stop\n" in out and b"after stop" not in log_out
    # a sidecar that ends after a normal stop is no death to report
    assert b"capture process" not in err


def later_lines(out):
    """The numbers of the 'later' lines in out. The pipes' leftovers that
    the watchdog copies may be split by lines the script writes straight to
    the console meanwhile (each of those is one write, never split): taking
    out the lines found rejoins the pieces around them. And ``print`` writes
    a line's text and its newline as two writes (sys.stdout is write-through
    under capture): the switch to the console can fall between them, the
    text going into the pipe (copied later) and the newline straight out, so
    a line's text counts without its newline too."""
    found = set()
    line = re.compile(rb"later (\d{5})(?!\d)\n?")
    while True:
        hits = line.findall(out)
        if not hits:
            return found
        found.update(int(n) for n in hits)
        out = line.sub(b"", out)


def test_later_lines_rejoins_a_leftover_split_by_a_direct_write():
    out = b"later 00000\nlater 003later 00002\n49\nlater 00001\n"
    assert later_lines(out) == {0, 1, 2, 349}


def test_later_lines_counts_a_line_whose_newline_went_out_before_it():
    # seen in a full run: line 1651's text copied from the pipe after lines
    # the script had written straight to the console, its newline among them
    out = b"later 01650\n\nlater 01652\nlater 01651later 01653\nlater 0165"
    assert later_lines(out) == {1650, 1651, 1652, 1653}


def test_a_killed_sidecar_puts_the_console_back(tmp_path, spawn, progress_dir):
    # kill -9 of the copying process must not break the training loop: the
    # console comes back on fd 1/2, nothing the script prints fails
    rc, out, err, log_out, log_err = run_child(tmp_path, progress_dir, "sidecar-killed", spawn)
    assert rc == 0, err[-2000:]
    # SIGKILL is not instant: the dying sidecar may still copy some lines
    # and read one more chunk it never writes (lost, like anything it had
    # read): at most one unbroken run of lines, anywhere. Every other line
    # reached the console.
    lost = set(range(LINES)) - later_lines(out)
    assert not lost or lost == set(range(min(lost), max(lost) + 1)), sorted(lost)
    assert len(lost) < LINES
    assert out.endswith(b"after stop\n")
    assert b"the output capture process (pid " in err and b"ended; output goes to the console only" in err
    # what the killed process had read but not written is lost; what the
    # watchdog copies from the pipes' leftovers may be split by later lines,
    # so only the start of the console is compared
    assert out.startswith(b"out 00000 ")


def test_after_a_killed_sidecar_the_pipes_are_copied_until_every_writer_closed_them(tmp_path, spawn, progress_dir):
    # a child started during capture writes into the pipes after the console
    # was put back (as does a write the script began just before the
    # switch): the watchdog copies it to the console and the log, and
    # stopping waits for it
    rc, out, err, log_out, log_err = run_child(tmp_path, progress_dir, "sidecar-killed-child", spawn)
    assert rc == 0, err[-2000:]
    lines = b"".join(b"child %05d\n" % i for i in range(300))
    assert out.endswith(lines + b"after stop\n")
    assert log_out.endswith(lines)


def test_a_sidecar_killed_while_stopping_loses_nothing_queued(tmp_path, spawn, progress_dir):
    # stop() waited for the sidecar's answer; when it died instead, stop
    # said all was copied and closed the pipes with the queued lines in them
    rc, out, err, log_out, log_err = run_child(tmp_path, progress_dir, "sidecar-killed-at-stop", spawn)
    assert rc == 0, err[-2000:]
    check_lines(log_out, log_err)
    queued = b"".join(b"queued %05d\n" % i for i in range(300))
    assert log_out.endswith(queued)
    assert out.endswith(queued + b"stopped True\n")
    # it died before it said it had ended: said so, though stopping had begun
    assert b"the output capture process (pid " in err and b"ended; output goes to the console only" in err


SLOW_START = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor
    from ttop.monitor.names import RunNameInUseError

    folder, python = sys.argv[1], sys.argv[2]
    if python:  # the run with output capture, its sidecar's interpreter slow to start
        sys.executable = python
        TrainingMonitor(folder=folder, run_name="same", capture_output=True, gpu=False).start_monitoring()
        time.sleep(120)
    try:
        TrainingMonitor(folder=folder, run_name="same", gpu=False, handle_signals=False).start_monitoring()
    except RunNameInUseError:
        sys.exit(3)
    """
    % str(ROOT)
)


def test_a_slow_capture_start_does_not_let_a_second_run_take_the_name(tmp_path, spawn, progress_dir):
    # the name is checked and taken (the first file written) under the
    # folder's lock and the capture starts after it: a sidecar slow to start
    # held the lock past the bounded wait of a second run of the name, which
    # then went on unlocked, found the name free and took it too
    marker = tmp_path / "sidecar-starting"
    slow = tmp_path / "slowpython"
    slow.write_text("#!/bin/sh\ntouch %s\nsleep 8\nexec %s \"$@\"\n" % (marker, sys.executable))
    slow.chmod(0o755)
    script = tmp_path / "start.py"
    script.write_text(SLOW_START)
    spawn([sys.executable, str(script), str(progress_dir), str(slow)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(marker.exists)
    second = subprocess.run([sys.executable, str(script), str(progress_dir), ""], capture_output=True, text=True,
                            timeout=100)
    assert second.returncode == 3, second.stderr[-2000:]
