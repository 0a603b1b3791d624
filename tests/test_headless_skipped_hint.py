"""``--headless`` names at most a few skipped progress files a cycle and
points at a command for the rest: that command must list every one."""
from __future__ import annotations

import re
import shlex
import signal
import subprocess

from test_cli_support import child_env, run_ttop, ttop_cmd

from conftest import wait_until


def test_the_command_headless_points_at_lists_every_skipped_file(spawn, progress_dir, tmp_path):
    names = ["bad%02d.json" % i for i in range(14)]
    for name in names:
        (progress_dir / name).write_text("not json %s\n" % name)
    err_path = tmp_path / "err.txt"
    with open(err_path, "wb") as err:
        ttop = spawn(ttop_cmd(progress_dir, "--headless", "-i", "0.1", "--csv-dir", tmp_path / "csv"),
                     stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    wait_until(lambda: b"more files" in err_path.read_bytes(), timeout=30)
    ttop.send_signal(signal.SIGTERM)
    assert ttop.wait(timeout=30) == 0
    lines = err_path.read_text().splitlines()
    said = {n for n in names if any("skipped %s:" % n in line for line in lines)}
    assert 0 < len(said) < len(names), lines
    hint = next(line for line in lines if "more files" in line)
    m = re.search(r"\((ttop .*?) lists them", hint)
    assert m, hint
    words = shlex.split(m.group(1))
    assert words[0] == "ttop" and "FOLDER" in words, hint
    cmd = [str(progress_dir) if w == "FOLDER" else w for w in words[1:]]
    out = run_ttop(*cmd)
    assert out.returncode == 0, out.stderr
    listed = out.stdout + out.stderr
    missing = [n for n in names if n not in said and n not in listed]
    assert not missing, (hint, missing)
