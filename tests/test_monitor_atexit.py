"""A final status given by an ``atexit`` handler the script registered
before the run started: atexit runs handlers last registered first, so
ttop's own exit hook (registered at the first start) runs before it, and
the status the script gives there must still be written."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    how, folder = sys.argv[1], sys.argv[2]
    m = TrainingMonitor(folder=folder, run_name="job", gpu=False)
    if how == "finished":
        atexit.register(m.set_finished)
    else:
        atexit.register(m.set_failed, "checkpoint upload failed")
    m.start_monitoring()
    m.start_phase("train")
    for _ in range(7):
        m.start_batch()
    m.update_metrics(loss=0.25)
    """
) % str(ROOT)


@pytest.mark.parametrize("how,status", [("finished", "FINISHED"), ("failed", "FAILED")])
def test_a_status_given_at_exit_by_an_earlier_atexit_handler_is_written(tmp_path, how, status):
    folder = tmp_path / "progress"
    p = subprocess.run([sys.executable, "-c", SCRIPT, how, str(folder)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    with open(folder / "job.json", "rb") as f:
        d = json.loads(f.read())
    assert d["status"] == status, "the status given at exit was lost (%s)" % d["status"]
    assert (d["train_batch"], d["metrics"]) == (7, {"loss": 0.25})
    if how == "failed":
        assert d["error"] == "checkpoint upload failed"
    assert p.stderr == ""
