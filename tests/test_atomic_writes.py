"""Atomic progress writes, proved with real processes: a writer process (a
TrainingMonitor writing a ~40 kB file every millisecond while its loop bumps
counters and metrics) is SIGKILLed at random moments, over and over, while a
reader polls the file and parses every read. The reader must never see
anything but complete, valid JSON.

To keep the test quick, writers are forked from a small server process that
has already imported ttop and psutil; each writer is a real process with its
own TrainingMonitor, killed with SIGKILL by this test."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import ROOT
from ttop import histfile
from ttop import progress as P

KILLS = 120

SERVER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, %r)
    import psutil  # noqa: F401  (pre-imported: the writer's thread needs it)
    from ttop import TrainingMonitor

    folder = sys.argv[1]
    for line in sys.stdin:
        if line.strip() != "go":
            break
        pid = os.fork()
        if pid == 0:
            m = TrainingMonitor(folder=folder, run_name="atomic", interval=0.001, resource_interval=0.01,
                                handle_signals=False, gpu=False, history_size=100)
            m.track_variables({"lr": 0.1, "note": "y" * 30000})
            m.start_monitoring()
            m.start_epoch(1, total_epochs=3)
            m.start_phase("train", total_batches=10 ** 9)
            i = 0
            while True:
                m.start_batch()
                m.update_metrics({"metric_%%03d" %% k: i * 0.001 + k for k in range(150)})
                i += 1
                if i %% 200 == 0:
                    m.start_phase("validation" if (i // 200) %% 2 else "train")  # wakes the writer at once
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)
    """
    % str(ROOT)
)


@pytest.mark.slow
def test_reader_never_sees_partial_json_across_sigkills(tmp_path, progress_dir, spawn):
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    server = spawn(
        [sys.executable, str(script), str(progress_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    path = progress_dir / "atomic.json"
    stop = threading.Event()
    stats = {"reads": 0, "missing": 0, "bad": [], "sizes": set(), "versions": set()}

    def reader():
        while not stop.is_set():
            try:
                with open(path, "rb") as f:
                    raw = f.read()
            except FileNotFoundError:
                stats["missing"] += 1
                continue
            try:
                data = json.loads(raw)
                P.parse_progress(raw)
            except ValueError as e:
                stats["bad"].append("%s: %r...%r" % (e, raw[:40], raw[-40:]))
                continue
            stats["reads"] += 1
            stats["sizes"].add(len(raw))
            stats["versions"].add(hash(raw))
            assert data["run_name"] == "atomic"

    rng = random.Random(1234)
    t = threading.Thread(target=reader, daemon=True)
    started = time.monotonic()
    statuses = []
    try:
        for i in range(KILLS):
            server.stdin.write("go\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            if i == 0:
                while not path.exists():  # the first file ever
                    time.sleep(0.001)
                t.start()
            time.sleep(rng.uniform(0.005, 0.08))  # kill at a random moment
            os.kill(pid, signal.SIGKILL)
            statuses.append(int(server.stdout.readline()))
    finally:
        stop.set()
        if t.is_alive():
            t.join(10)
        server.stdin.close()
        server.wait(timeout=30)
        server.stdout.close()
    elapsed = time.monotonic() - started

    assert stats["bad"] == [], stats["bad"][:3]
    assert len(statuses) == KILLS
    assert all(os.WIFSIGNALED(s) and os.WTERMSIG(s) == signal.SIGKILL for s in statuses)
    assert stats["missing"] == 0  # once the file exists it is always there: replaced, never removed
    assert stats["reads"] > KILLS  # the reader really raced the writers
    assert len(stats["versions"]) > 10  # and saw many different versions (the files are not all alike)
    assert max(stats["sizes"]) > 20000  # big files: a torn write would show
    # killed writers may leave temp files: all are named so readers skip them
    leftovers = [f for f in os.listdir(progress_dir) if f not in ("atomic.json", "atomic" + histfile.SUFFIX)]
    assert all(f.startswith(".") and not P.is_progress_filename(f) for f in leftovers), leftovers
    print("%d kills, %d reads, %d distinct sizes, %d temp files left, %.1fs" % (KILLS, stats["reads"], len(stats["sizes"]), len(leftovers), elapsed))
