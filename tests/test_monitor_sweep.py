"""A sweep in one process, each trial a ``with TrainingMonitor(...,
capture_output=True)`` whose failure the script catches to go on with the
next trial. A failed run keeps its capture until exit (for the traceback
that follows), so it stayed in the monitors the exit hook ends; once the
next trial's capture has stopped it, nothing is left for it to do there,
and it held its metrics, history and last tick's updates for as long as the
sweep ran: one more run's worth per failed trial."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import gc, json, sys, weakref
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder = sys.argv[1]
    failed = []
    for k in range(4):
        try:
            with TrainingMonitor(folder=folder, run_name="trial%%d" %% k, capture_output=True, gpu=False) as m:
                print("trial", k, flush=True)
                m.start_phase("train")
                m.update_metrics(loss=float(k))
                raise ValueError("diverged")
        except ValueError:
            print("trial", k, "failed", flush=True)
            failed.append(weakref.ref(m))
        del m
    gc.collect()
    print(json.dumps([ref() is not None for ref in failed]), flush=True)
    """
) % str(ROOT)


def test_failed_trials_of_a_sweep_are_not_kept_once_their_capture_stopped(tmp_path):
    folder = tmp_path / "progress"
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    kept = json.loads(p.stdout.splitlines()[-1])
    # the last one still captures (until exit); the others are gone
    assert kept == [False, False, False, True], "failed trials kept alive: %s" % kept
    for k in range(4):
        with open(folder / ("trial%d.json" % k), "rb") as f:
            assert json.loads(f.read())["status"] == "FAILED"
        log = (folder / ("trial%d.stdout.log" % k)).read_text()
        assert "trial %d\ntrial %d failed\n" % (k, k) in log, log  # (each log has its trial's lines)
