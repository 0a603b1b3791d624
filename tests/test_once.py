"""``ttop FOLDER --once``: the monitor's header and table printed once, by the
real program, with the same renderer as the curses screen."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_until
from ttop.progress import write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo_job.py"


def _doc(name, status, **kw):
    now = time.time()
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": now - 50,
         "host": socket.gethostname(), "phase": "train", "epoch": 3, "total_epochs": 3,
         "train_batch": 500, "train_total_batches": 500,
         "times": {"run": {"elapsed": 3725, "remaining": 0, "total": 3725}}}
    d.update(kw)
    return d


def _once(folder, *args, env=None):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "ttop", str(folder), "--once"] + list(args), cwd=str(ROOT),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode("utf-8", "replace")


@pytest.mark.slow
def test_once_prints_header_table_and_summary_with_a_live_run(progress_dir, spawn):
    write_json_atomic(str(progress_dir / "done.json"), _doc("done", "FINISHED"))
    write_json_atomic(str(progress_dir / "boom.json"), _doc("boom", "FAILED", error="ValueError: x"))
    (progress_dir / "broken.json").write_text("{not json")
    spawn([sys.executable, str(DEMO), "--folder", str(progress_dir), "--name", "live", "--epochs", "100",
           "--batches", "40", "--batch-time", "0.05", "--workers", "1", "--work", "1000", "--interval", "0.3"],
          cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (progress_dir / "live.json").exists(), timeout=30)
    out = _once(progress_dir, env={"COLUMNS": "100"})
    lines = out.splitlines()
    assert "\x1b" not in out  # not a terminal: no colour
    assert all(len(l) <= 100 for l in lines)
    title = next(i for i, l in enumerate(lines) if l.startswith("Run Name"))
    assert lines[title].split()[:6] == ["Run", "Name", "Status", "Health", "Phase", "Epoch"]
    rows = lines[title + 1:title + 4]
    assert [r.split()[0] for r in rows] == ["boom", "done", "live"]
    assert rows[0].split()[1:3] == ["FAILED", "-"]  # ended: no verdict
    wide = _once(progress_dir, env={"COLUMNS": "160"}).splitlines()
    assert "1h02m" in next(l for l in wide if l.startswith("boom"))
    assert rows[2].split()[1:3] == ["RUNNING", "\u2713"]  # live and healthy
    assert lines[-1].startswith("1 running 1 finished 1 failed")
    assert "1 file skipped: broken.json (invalid JSON" in lines[-1]
    assert "CPU [" in lines[0] and "RAM [" in lines[0]


def test_once_ascii_when_the_output_cannot_encode_unicode(progress_dir):
    write_json_atomic(str(progress_dir / "w.json"), _doc("\u5b66\u7fd2-run", "FINISHED"))
    out = _once(progress_dir, env={"PYTHONIOENCODING": "ascii", "COLUMNS": "90"})
    assert out.isascii()
    assert "#" in out.splitlines()[0] or "." in out.splitlines()[0]
    assert any(l.startswith("????-run") for l in out.splitlines())  # wide chars kept their width


def test_once_colour_only_when_asked(progress_dir):
    import io

    from ttop.collect import Collector
    from ttop.sinks.once import print_once

    write_json_atomic(str(progress_dir / "f.json"), _doc("f", "FAILED"))
    snap = Collector(str(progress_dir)).collect()
    buf = io.StringIO()
    print_once(snap, buf, width=80, color=True)
    row = next(l for l in buf.getvalue().splitlines() if l.startswith("f "))
    assert "\x1b[1;31m FAILED " in row  # failed: bold red, as on the curses screen
    buf = io.StringIO()
    print_once(snap, buf, width=80, color=False)
    assert "\x1b" not in buf.getvalue()


def test_once_survives_an_integer_beyond_the_float_range(progress_dir):
    huge = "1" + "0" * 400  # valid JSON, too big for a float
    (progress_dir / "big.json").write_text(
        '{"format":"ttop.progress/1","run_name":"big","status":"FINISHED","updated_at":%f,'
        '"times":{"run":{"elapsed":%s}},"metrics":{"loss":%s},"history":{"loss":[%s,1]}}'
        % (time.time(), huge, huge, huge))
    write_json_atomic(str(progress_dir / "ok.json"), _doc("ok", "FINISHED"))
    out = _once(progress_dir, env={"COLUMNS": "100"})
    names = [l.split()[0] for l in out.splitlines() if l.startswith(("big ", "ok "))]
    assert names == ["big", "ok"]


def test_an_absurd_cpu_sample_keeps_the_budget_line_readable(progress_dir):
    """A live run whose file says it uses 1e308 % CPU (a bug in its sampler,
    or a run made to look busy) showed the budget line's CPU as a
    300-digit number of cores, pushing the RAM budget off the line for
    every run in the folder; it is capped like the table's CPU cell."""
    now = time.time()
    write_json_atomic(str(progress_dir / "hog.json"), _doc(
        "hog", "RUNNING", updated_at=now, heartbeat_interval=1000.0, pid=os.getpid(),
        resources={"cpu_percent": 1e308, "rss_bytes": 1024, "num_procs": 1, "num_threads": 1, "sampled_at": now}))
    out = _once(progress_dir, env={"COLUMNS": "100"})
    budget = next(line for line in out.splitlines() if line.startswith("Budget"))
    assert " RAM " in budget, budget
    assert "000000" not in budget, budget


def test_json_has_no_lone_surrogate_that_strict_readers_refuse(progress_dir):
    # another user of the folder: a "\ud800" escape in a name (valid JSON
    # syntax, no Unicode text) and a file whose name is not UTF-8; jq refused
    # the whole snapshot ("Invalid \uXXXX\uXXXX surrogate pair escape")
    (progress_dir / "sur.json").write_bytes(
        b'{"format": "ttop.progress/1", "run_name": "a\\ud800b", "status": "FINISHED", "updated_at": 1.0,'
        b' "metrics": {"\\udc80": 1, "loss": 0.5}}')
    for raw, name in ((b"bad\xff.json", "x"), (b"bad\xfe.json", "y")):
        with open(os.path.join(os.fsencode(progress_dir), raw), "wb") as f:
            f.write(b'{"format": "ttop.progress/1", "run_name": "%s", "status": "FINISHED", "updated_at": 1.0}'
                    % name.encode())
    import json

    runs = {r["run_name"]: r for r in json.loads(_once(progress_dir, "--json"))["runs"]}
    assert runs["a\ufffdb"]["metrics"] == {"\ufffd": 1, "loss": 0.5}
    assert runs["x"]["key"].startswith("bad\ufffd//") and runs["x"]["path"].endswith("/bad\ufffd.json")
    # two names that are not UTF-8 are still two keys ("key" is unique in the folder)
    assert runs["y"]["key"].startswith("bad\ufffd//") and runs["x"]["key"] != runs["y"]["key"]

    def texts(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for k, x in v.items():
                yield k
                yield from texts(x)
        elif isinstance(v, list):
            for x in v:
                yield from texts(x)
    for t in texts(list(runs.values())):
        t.encode("utf-8")  # raises on a surrogate


def test_the_summary_counts_stale_runs_as_the_monitor_footer_does(progress_dir):
    # a run of another host whose writer has said nothing for 15 minutes: still
    # RUNNING (ttop never declares a remote run dead) but stale, and the summary
    # says so beside "1 running", as the monitor's footer does
    path = progress_dir / "far.json"
    write_json_atomic(str(path), _doc("far", "RUNNING", host="otherbox", pid=4242, updated_at=time.time() - 900))
    old = time.time() - 900
    os.utime(str(path), (old, old))
    last = _once(progress_dir).rstrip("\n").splitlines()[-1]
    assert "1 running" in last and "1 stale" in last, last
