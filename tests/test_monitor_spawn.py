"""A monitor handed to a process that is not forked (spawn or forkserver
workers: a data loader's workers on macOS, or wherever CUDA asks for spawn,
get their dataset pickled): it cannot go there (its run is written by the
process that started it), and the error said only "cannot pickle
'_thread.RLock' object", naming neither ttop nor what to do."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import multiprocessing, pickle, sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    class Dataset:
        def __init__(self, monitor):
            self.monitor = monitor

    def work(dataset):
        pass

    if __name__ == "__main__":
        m = TrainingMonitor(folder=sys.argv[1], run_name="run", gpu=False)
        m.start_monitoring()
        for send in (lambda: pickle.dumps(Dataset(m)),
                     lambda: multiprocessing.get_context("spawn").Process(target=work, args=(Dataset(m),)).start()):
            try:
                send()
            except TypeError as e:
                print("TypeError:", e, flush=True)
        m.set_finished()
    """
) % str(ROOT)


def test_a_monitor_sent_to_a_spawned_worker_says_what_is_wrong(tmp_path):
    # (in a process of its own: a spawn context starts a resource tracker that outlives the test)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    p = subprocess.run([sys.executable, str(script), str(tmp_path / "progress")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2, p.stdout
    for msg in lines:
        assert "TrainingMonitor cannot be sent to another process" in msg, msg
        assert "fork" in msg and "main process" in msg, msg
