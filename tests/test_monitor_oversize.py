"""A run whose progress file would be larger than readers accept
(``MAX_PROGRESS_BYTES``): a huge text metric, or a very great many metrics.
The writer keeps the file readable (the run never disappears from ttop) and
says once what it left out. Real training processes, real files."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import ROOT
from ttop.collect import Collector
from ttop.progress import MAX_PROGRESS_BYTES

CHILD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    mode, folder = sys.argv[1], sys.argv[2]
    with TrainingMonitor(folder=folder, run_name="big", interval=0.05, gpu=False) as m:
        m.start_phase("train")
        for step in range(3):
            m.start_batch()
            m.update_metrics(loss=1.0 / (step + 1))
            if mode == "text":
                m.update_metrics(sample="x" * (6 << 20))
            else:
                # (long names: the writer keeps 10,000 names, which must not fit)
                m.update_metrics(**{"class_%%06d_accuracy_%%s" %% (i, "x" * 500): 0.5 for i in range(10000)})
            time.sleep(0.1)
    """
) % str(ROOT)


def _run(tmp_path, mode):
    folder = tmp_path / "progress"
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(folder)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    path = folder / "big.json"
    assert os.path.getsize(path) <= MAX_PROGRESS_BYTES
    snap = Collector(str(folder), gpu=False, tpu=False).collect()
    assert snap.skipped == (), snap.skipped
    (run,) = snap.runs
    assert run.status == "FINISHED" and run.data["metrics"]["loss"] == 1.0 / 3
    lines = [ln for ln in p.stderr.splitlines() if "big.json" in ln]
    assert len(lines) == 1, p.stderr  # said once, not every write
    return run, lines[0]


def test_a_huge_text_metric_is_cut_so_the_file_stays_readable(tmp_path):
    run, said = _run(tmp_path, "text")
    sample = run.data["metrics"]["sample"]
    assert sample.startswith("xxxx") and len(sample) < 100000
    assert "larger than" in said


def test_a_great_many_metrics_are_trimmed_so_the_file_stays_readable(tmp_path):
    run, said = _run(tmp_path, "many")
    assert 0 < len(run.data["metrics"]) < 10001
    assert "larger than" in said and "metrics" in said
