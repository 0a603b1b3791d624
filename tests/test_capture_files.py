"""Capture files in a shared folder: never followed through a symlink, never
a FIFO or another user's file, an ended run's logs kept; and the terminal
width handed to the captured script."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT
from ptyharness import TtopTerm
from ttop.monitor.capture import CaptureError, open_log

CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder = sys.argv[1]
    with TrainingMonitor(folder=folder, run_name="job", capture_output=True, interval=60, gpu=False) as m:
        print("line one", flush=True)
        os.system("echo from a shell")
        print("to stderr", file=sys.stderr, flush=True)
        print("capture mode", m._capture.mode, flush=True)
    """
    % str(ROOT)
)


def run(tmp_path, folder):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return subprocess.run(
        [sys.executable, str(script), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_planted_symlink_is_not_followed(tmp_path, progress_dir):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    os.symlink(victim, progress_dir / "job.stdout.log")
    r = run(tmp_path, progress_dir)
    assert r.returncode == 0, r.stderr
    assert victim.read_bytes() == b"precious\n"  # neither truncated nor appended to
    assert os.path.islink(progress_dir / "job.stdout.log")
    err = r.stderr.decode()
    assert "ttop: output capture is off: %s is a symbolic link; it was not followed" % (progress_dir / "job.stdout.log") in err
    # the script ran on with its output on the console
    out = r.stdout.decode()
    assert "line one\n" in out and "from a shell\n" in out and "capture mode None\n" in out
    assert "to stderr" in err
    # nothing was captured into the other log either
    assert not (progress_dir / "job.stderr.log").exists() or (progress_dir / "job.stderr.log").read_bytes() == b""
    with open(progress_dir / "job.json") as f:
        d = json.load(f)
    assert d["status"] == "FINISHED"
    assert d["logs"] is None  # the viewer is not pointed at the link


def test_fifo_at_the_log_path_neither_blocks_nor_is_written(tmp_path, progress_dir):
    os.mkfifo(progress_dir / "job.stderr.log")
    r = run(tmp_path, progress_dir)  # would hang in open() if it waited for a reader
    assert r.returncode == 0, r.stderr
    assert "output capture is off: %s is a FIFO" % (progress_dir / "job.stderr.log") in r.stderr.decode()
    assert "line one\n" in r.stdout.decode()


def test_ended_run_name_reused_keeps_the_old_logs(tmp_path, progress_dir):
    r1 = run(tmp_path, progress_dir)
    assert r1.returncode == 0, r1.stderr
    first = (progress_dir / "job.stdout.log").read_bytes()
    assert first == r1.stdout  # a fresh log holds exactly the console's bytes
    r2 = run(tmp_path, progress_dir)
    assert r2.returncode == 0, r2.stderr
    log = (progress_dir / "job.stdout.log").read_bytes()
    assert log.startswith(first)
    sep, rest = log[len(first):].split(b"\n", 1)
    assert re.match(rb"--- ttop: run started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* pid \d+ ---$", sep), sep
    assert rest == r2.stdout
    err_log = (progress_dir / "job.stderr.log").read_bytes()
    assert err_log.count(b"to stderr") == 2 and err_log.count(b"--- ttop: run started") == 1


def test_separator_starts_on_its_own_line(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"no newline at the end")
    os.close(open_log(str(path)))
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b"no newline at the end" and lines[1].startswith(b"--- ttop: run started")


def test_open_log_refuses_what_is_not_our_own_regular_file(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"x")
    os.link(target, tmp_path / "hard.log")
    (tmp_path / "dir.log").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.log")
    cases = {
        "hard.log": "has 2 hard links",
        "dir.log": "is a directory",
        "dangling.log": "is a symbolic link; it was not followed",
    }
    for name, text in cases.items():
        with pytest.raises(CaptureError) as e:
            open_log(str(tmp_path / name))
        assert text in str(e.value), name
    assert not (tmp_path / "nowhere").exists()  # a dangling link is not created through
    assert target.read_bytes() == b"x"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make another user's file")
def test_open_log_refuses_another_users_file(tmp_path):
    path = tmp_path / "other.log"
    path.write_bytes(b"theirs\n")
    os.chown(path, 65534, 65534)
    with pytest.raises(CaptureError) as e:
        open_log(str(path))
    assert "is owned by uid 65534, not by this process" in str(e.value)
    assert path.read_bytes() == b"theirs\n"


WIDTH_CHILD = textwrap.dedent(
    """
    import os, shutil, subprocess, sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder = sys.argv[1]
    bar = "from tqdm import tqdm\\nfor _ in tqdm(range(3), mininterval=0): pass"
    with TrainingMonitor(folder=folder, run_name="bar", capture_output=True, interval=60, gpu=False):
        print("env", os.environ.get("COLUMNS"), os.environ.get("LINES"), flush=True)
        print("shutil", tuple(shutil.get_terminal_size()), flush=True)
        os.system("echo shell $COLUMNS")
        if sys.argv[2] == "tqdm":
            subprocess.run([sys.executable, "-c", bar])
    print("after", os.environ.get("COLUMNS"), os.environ.get("TQDM_NCOLS"), flush=True)
    """
    % str(ROOT)
)


def run_in_terminal(tmp_path, folder, what):
    script = tmp_path / "width.py"
    script.write_text(WIDTH_CHILD)
    # the shell keeps the terminal open once the script ended, so that its
    # last line is read before the terminal's last writer closes it
    cmd = "%s %s %s %s; echo EXIT=$?; exec sleep 60" % (sys.executable, script, folder, what)
    term = TtopTerm(["/bin/sh", "-c", cmd], cols=137, rows=41)
    try:
        term.wait_for("EXIT=")
        assert "EXIT=0" in term.text, term.dump()
        return term.text
    finally:
        term.close()


def test_captured_script_gets_the_terminal_size(tmp_path, progress_dir):
    screen = run_in_terminal(tmp_path, progress_dir, "env")
    out = (progress_dir / "bar.stdout.log").read_text()
    assert "env 137 41\n" in out
    assert "shutil (137, 41)\n" in out
    assert "shell 137\n" in out  # children inherit it
    assert "after None None" in screen  # only set while capturing


def test_progress_bars_in_captured_children_are_terminal_wide(tmp_path, progress_dir):
    pytest.importorskip("tqdm")
    run_in_terminal(tmp_path, progress_dir, "tqdm")
    err = (progress_dir / "bar.stderr.log").read_text()
    states = [s for s in re.split(r"[\r\n]", err) if "3/3" in s]
    # a pipe gets a 10-character bar; tqdm on this terminal draws 136 wide
    assert states and max(len(s) for s in states) == 136, states
