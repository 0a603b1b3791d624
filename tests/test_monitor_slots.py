"""TrainingMonitor keeps every attribute in a slot.

The training loop's calls (``start_batch``, ``update_metrics``) load
``self._n`` and ``self._mq`` and look the method up on each call. With an
instance dict of 40-odd names the interpreter falls back to its slower dict
lookups for all three; slots keep them on its fastest path
(``bench/bench_monitor.py`` measures the difference against tqdm). The
class still has a ``__dict__`` so a name added later, or a user's own
attribute, works; these tests make sure ttop's own names never land there,
whatever the run goes through, so the slot list stays complete."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

LIFE = r"""
import json, os, sys
from ttop import TrainingMonitor

folder = sys.argv[1]
seen = {}

def check(label, m):
    seen[label] = sorted(vars(m))

m = TrainingMonitor(folder=folder, run_name="slots", interval=0.05, capture_output=True,
                    variables={"lr": 0.1}, on_variable_change=lambda *a: None, links={"docs": "x"},
                    run_dir=folder, total_epochs=2, gpu=False, name_conflict="suffix")
check("made", m)
with m:
    for epoch in range(2):
        m.start_epoch(epoch + 1)
        for x in m.track(range(5), phase="train"):
            m.update_metrics(loss=0.5)
            m.update_metrics({"val/loss": 0.25}, acc=0.9)
        m.start_phase("val", total_batches=3)
        for _ in range(3):
            m.start_batch()
        m.end_phase()
    print("a line of output")
    pid = os.fork()
    if pid == 0:  # the after-fork hooks renew the monitor's locks and queue
        os._exit(0 if not vars(m) else 3)
    _, code = os.waitpid(pid, 0)
    seen["fork child exit"] = code
check("finished", m)

again = TrainingMonitor(folder=folder, run_name="slots", interval=0.05, gpu=False, name_conflict="suffix")
again.start_monitoring()
m2 = TrainingMonitor(folder=folder, run_name="slots", interval=0.05, gpu=False, name_conflict="suffix")
m2.start_monitoring()
m2.set_failed(ValueError("boom"))
again.set_canceled("enough")
check("failed", m2)
check("canceled", again)
print(json.dumps(seen), file=sys.stderr)
"""


def test_no_attribute_of_a_monitor_lands_in_its_instance_dict(tmp_path):
    proc = subprocess.run([sys.executable, "-c", LIFE, str(tmp_path)], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stderr.strip().splitlines()[-1])
    assert seen == {"made": [], "finished": [], "failed": [], "canceled": [], "fork child exit": 0}


def test_a_users_own_attribute_still_works(tmp_path):
    from ttop import TrainingMonitor

    m = TrainingMonitor(folder=str(tmp_path), run_name="mine", handle_signals=False, gpu=False)
    m.note = "kept"
    assert m.note == "kept" and vars(m) == {"note": "kept"}
