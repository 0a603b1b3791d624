"""The training view, driven for real in a pseudo-terminal against demo runs
(examples/demo_job.py) of different speeds: sorting, the run detail screen
with its charts, and the comparison of marked runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_until
from ptyharness import TtopTerm, ttop_term  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo_job.py"
#: name -> seconds per batch (the names' order is not the speed order)
RUNS = {"a-slow": 0.3, "b-fast": 0.02, "c-mid": 0.08}


def _start(folder: Path, name: str, batch_time: float) -> subprocess.Popen:
    args = [sys.executable, str(DEMO), "--folder", str(folder), "--name", name, "--epochs", "1000",
            "--batches", "400", "--val-batches", "4", "--batch-time", str(batch_time), "--workers", "1",
            "--work", "200", "--interval", "0.3"]
    return subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("trainview") / "progress"
    d.mkdir()
    procs = [_start(d, n, bt) for n, bt in RUNS.items()]
    try:
        wait_until(lambda: all((d / (n + ".json")).exists() for n in RUNS), timeout=30)
        yield d
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait(timeout=10)


def start(ttop_term, folder, **kw) -> TtopTerm:
    t = ttop_term(folder, **kw)
    t.wait_for("Run Name", msg="the table never showed")
    t.wait_for(lambda t: all(t.row_of(n + " ") is not None for n in RUNS), msg="the runs never showed")
    return t


def order(t: TtopTerm):
    names = []
    for line in t.display:
        w = line.split()[:1]
        if w and w[0].lstrip("*") in RUNS:
            names.append(w[0].lstrip("*"))
    return names


def test_sort_by_rate_puts_the_fastest_first_and_I_inverts(ttop_term, folder):
    t = start(ttop_term, folder, cols=120, rows=20)
    t.wait_for(lambda t: order(t) == ["a-slow", "b-fast", "c-mid"])
    # < / > walk the sort column: Run Name, Status, Phase, Epoch, Batch, Rate
    for _ in range(6):
        t.press(">")
    t.wait_for("sort: Rate, highest first")
    t.wait_for(lambda t: order(t) == ["b-fast", "c-mid", "a-slow"], timeout=30)
    assert "Rate\u25bc" in t.line(t.row_of("Run Name"))
    t.press("I")
    t.wait_for("sort: Rate, lowest first")
    t.wait_for(lambda t: order(t) == ["a-slow", "c-mid", "b-fast"], timeout=30)
