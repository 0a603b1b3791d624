"""A process forked from a rank other than 0 (a helper started with
``os.fork()``) inherits the rank's follower, its excepthook included. An
exception that ended the child went through that hook, which wrote the
rank's status file as FAILED with the child's error: the rank, still
training, was shown failed, and rank 0 would blame it for the run's end
("rank 1 failed first"). Rank 0's monitor has always been inert in a forked
child; the follower now is too."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import ROOT

CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, %r)
    from ttop.integrations._ranks import RankFollower

    folder = sys.argv[1]
    f = RankFollower(folder, "job", 1, 2, 0.05, lambda *a: None, resources=False)
    f.start()
    pid = os.fork()
    if pid == 0:
        raise RuntimeError("the forked helper failed")  # uncaught: sys.excepthook, then exit 1
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status), flush=True)
    with open(os.path.join(folder, ".job.rank1.json")) as fh:
        print(fh.read(), flush=True)
    f.end("FINISHED")
    """
    % str(ROOT)
)


def test_an_exception_in_a_forked_child_of_a_rank_does_not_fail_the_rank(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(CHILD)
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "child exit 1", r.stdout
    assert "the forked helper failed" in r.stderr  # the child's traceback is still printed
    during = json.loads("\n".join(lines[1:]))
    assert (during["status"], during["error"]) == ("RUNNING", None), during
    after = json.loads((tmp_path / ".job.rank1.json").read_text())
    assert after["status"] == "FINISHED"
