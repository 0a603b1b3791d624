"""Ctrl+C while the monitor starts: its first progress file is written
before output capture starts (a Python process of its own: the start may
take a while), so a Ctrl+C then left a file saying RUNNING for a run that
was not going on (shown KILLED once the process was gone). The run ends
CANCELED there, as a Ctrl+C inside the ``with`` block ends it."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder, python = sys.argv[1], sys.argv[2]
    sys.executable = python  # the capture process starts through it: a Ctrl+C comes meanwhile
    with TrainingMonitor(folder=folder, run_name="job", capture_output=True, gpu=False) as m:
        m.start_phase("train")
        print("training", flush=True)
    """
) % str(ROOT)


def test_ctrl_c_while_output_capture_starts_ends_the_run_canceled(tmp_path):
    python = tmp_path / "python-slow"  # the Ctrl+C (SIGINT to the script) comes as the capture process starts
    python.write_text('#!/bin/sh\nkill -INT $PPID\nsleep 1\nexec %s "$@"\n' % sys.executable)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    folder = tmp_path / "progress"
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(python)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0 and p.stderr.rstrip().endswith("KeyboardInterrupt"), p.stderr
    assert "training" not in p.stdout
    with open(os.path.join(str(folder), "job.json"), "rb") as f:
        d = json.loads(f.read())
    assert (d["status"], d["error"]) == ("CANCELED", "KeyboardInterrupt"), d["status"]
    assert d["ended_at"] is not None


def test_sigterm_while_output_capture_starts_ends_the_run_canceled(tmp_path):
    python = tmp_path / "python-slow"  # a SIGTERM (a scheduler, `kill`) comes as the capture process starts
    python.write_text('#!/bin/sh\nkill -TERM $PPID\nsleep 1\nexec %s "$@"\n' % sys.executable)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    folder = tmp_path / "progress"
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(python)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == -15, (p.returncode, p.stderr)  # still dies of the SIGTERM
    assert "training" not in p.stdout
    with open(os.path.join(str(folder), "job.json"), "rb") as f:
        d = json.loads(f.read())
    assert (d["status"], d["error"]) == ("CANCELED", "received SIGTERM"), d["status"]


OWN_HANDLER = SCRIPT.replace(
    'sys.executable = python', 'import signal; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n'
    'sys.executable = python')


def test_sigterm_to_a_handler_of_the_scripts_own_while_capture_starts_ends_canceled(tmp_path):
    # the script's handler exits with 0 (its way to stop on SIGTERM): the run did not finish
    python = tmp_path / "python-slow"
    python.write_text('#!/bin/sh\nkill -TERM $PPID\nsleep 1\nexec %s "$@"\n' % sys.executable)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    folder = tmp_path / "progress"
    p = subprocess.run([sys.executable, "-c", OWN_HANDLER, str(folder), str(python)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert "training" not in p.stdout
    with open(os.path.join(str(folder), "job.json"), "rb") as f:
        d = json.loads(f.read())
    assert (d["status"], d["error"]) == ("CANCELED", "received SIGTERM"), (d["status"], d["error"])
