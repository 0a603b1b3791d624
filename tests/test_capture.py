"""Output capture (capture_output=True) in real processes: Python prints,
shell commands (os.system), raw fd writes, subprocesses and stderr all land in
the logs AND still reach the console (here: the parent's pipes)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT

CHILD = textwrap.dedent(
    """
    import io, os, subprocess, sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    mode, folder = sys.argv[1], sys.argv[2]
    if mode == "python-level":
        class NoFd(io.TextIOBase):
            # a stream without a file descriptor (like a notebook's)
            def __init__(self, inner):
                self.inner = inner
            def write(self, s):
                return self.inner.write(s)
            def flush(self):
                self.inner.flush()
            def fileno(self):
                raise io.UnsupportedOperation("no fileno")
        sys.stdout = NoFd(sys.stdout)
        sys.stderr = NoFd(sys.stderr)
    if mode == "closed":
        sys.stdout = sys.stderr = None  # what Python sets when fds 1 and 2 are closed

    print("before capture")
    with TrainingMonitor(folder=folder, run_name="cap", capture_output=True, interval=0.05, gpu=False) as m:
        print("from python print")
        print("to python stderr", file=sys.stderr)
        if mode == "fd":
            sys.stdout.flush()
            os.system("echo from os.system")
            os.write(1, b"raw fd write\\n")
            subprocess.run([sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"])
            print("unicode \\u00e9\\u4e2d")
            print("x" * 200000)  # more than a pipe buffer
            if len(sys.argv) > 3:
                raise RuntimeError("crash after output")
        print("mode", m._capture.mode)
    print("after capture")
    """
    % str(ROOT)
)


def run(tmp_path, progress_dir, mode, *extra):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    r = subprocess.run(
        [sys.executable, str(script), mode, str(progress_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    out = (progress_dir / "cap.stdout.log").read_bytes().decode()
    err = (progress_dir / "cap.stderr.log").read_bytes().decode()
    return r, out, err


def test_fd_level_capture_tees_everything(tmp_path, progress_dir):
    r, out, err = run(tmp_path, progress_dir, "fd")
    assert r.returncode == 0, r.stderr
    console_out, console_err = r.stdout.decode(), r.stderr.decode()
    for text in ("from python print", "from os.system", "raw fd write", "child out", "unicode \u00e9\u4e2d", "x" * 200000):
        assert text + "\n" in out, text
        assert text + "\n" in console_out, text
    for text in ("to python stderr", "child err"):
        assert text in err and text in console_err
    assert "mode fd" in out
    # only what was written while capturing goes to the logs
    assert "before capture" not in out and "after capture" not in out
    assert console_out.startswith("before capture\n") and console_out.endswith("after capture\n")
    # order within a stream is kept
    assert out.index("from python print") < out.index("from os.system") < out.index("raw fd write") < out.index("child out")
    with open(progress_dir / "cap.json") as f:
        d = json.load(f)
    assert d["logs"] == {"stdout": "cap.stdout.log", "stderr": "cap.stderr.log"}
    assert d["status"] == "FINISHED"


def test_traceback_of_a_crash_reaches_the_stderr_log(tmp_path, progress_dir):
    r, out, err = run(tmp_path, progress_dir, "fd", "crash")
    assert r.returncode == 1
    assert "RuntimeError: crash after output" in err  # printed by Python after the with block
    assert "RuntimeError: crash after output" in r.stderr.decode()
    assert "from python print" in out
    with open(progress_dir / "cap.json") as f:
        assert json.load(f)["status"] == "FAILED"


def test_python_level_fallback_without_file_descriptors(tmp_path, progress_dir):
    r, out, err = run(tmp_path, progress_dir, "python-level")
    assert r.returncode == 0, r.stderr
    console_out = r.stdout.decode()
    assert "from python print\n" in out and "from python print\n" in console_out
    assert "to python stderr" in err and "to python stderr" in r.stderr.decode()
    assert "mode python" in out
    assert "after capture" in console_out and "after capture" not in out


def test_closed_console_streams_never_make_print_raise(tmp_path, progress_dir):
    # started with stdout/stderr closed, print() is a no-op for Python;
    # capturing must not turn it into an AttributeError in the training loop
    r, out, err = run(tmp_path, progress_dir, "closed")
    assert r.returncode == 0, r.stderr
    assert "from python print\n" in out and "to python stderr" in err and "mode python" in out
    with open(progress_dir / "cap.json") as f:
        assert json.load(f)["status"] == "FINISHED"


TWO_THREADS = textwrap.dedent(
    """
    import sys, threading, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder = sys.argv[1]
    together = threading.Barrier(2, timeout=30)  # (a thread failing before it fails the other, not a hang)
    started = []

    def start(name):
        m = TrainingMonitor(folder=folder, run_name=name, capture_output=True, interval=0.05, gpu=False)
        together.wait()
        m.start_monitoring()
        started.append(m)

    threads = [threading.Thread(target=start, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("after both started", flush=True)
    for m in started:
        m.set_finished()
    """
    % str(ROOT)
)


def test_two_threads_starting_captures_at_once_leave_one_capturing(tmp_path):
    # one capture per process: the one started second stops the first. Two
    # threads starting theirs at the same moment each took the other's pipe
    # for the console: the output after it reached the console only, in no
    # log (5 times in 6 here)
    script = tmp_path / "two.py"
    script.write_text(TWO_THREADS)
    for i in range(5):
        folder = tmp_path / ("p%d" % i)
        r = subprocess.run([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60, text=True)
        assert r.returncode == 0, r.stderr
        assert "after both started" in r.stdout  # the console has it
        logs = [(folder / (n + ".stdout.log")).read_text() for n in ("a", "b")]
        assert sum(log.count("after both started") for log in logs) == 1, (i, r.stdout, logs)
