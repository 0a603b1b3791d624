"""Two threads of one process starting runs of one name at the same moment:
a monitor of this process holds its name as a live run of another process
does. The name was checked and the first file written under the folder's
lock, but the monitor joined the ones this process checks only later,
after its output capture had started (a process of its own): the other
thread, let in meanwhile, found the name free (a file naming this very
process is left to the monitors it knows) and took it too; both wrote one
file."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor
    from ttop.monitor import RunNameInUseError

    folder, mode = sys.argv[1], sys.argv[2]
    together = threading.Barrier(2, timeout=30)
    names, started = [], []

    def start():
        m = TrainingMonitor(folder=folder, run_name="same", capture_output=True, interval=0.05, gpu=False,
                            name_conflict=mode)
        together.wait()
        try:
            m.start_monitoring()
        except RunNameInUseError:
            names.append("refused")
            return
        names.append(m.run_name)
        started.append(m)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for m in started:
        m.set_finished()
    print(json.dumps(sorted(names)), flush=True)
    """
) % str(ROOT)


@pytest.mark.parametrize("mode,want", [("error", ["refused", "same"]), ("suffix", ["same", "same-2"])])
def test_two_threads_starting_one_name_at_once_do_not_both_take_it(tmp_path, mode, want):
    for i in range(3):
        folder = tmp_path / ("p%d" % i)
        p = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), mode], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout.splitlines()[-1]) == want, "attempt %d: %s" % (i, p.stdout)
