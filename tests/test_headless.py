"""``ttop FOLDER --headless``: a real ttop process writing CSV from real
writer processes; stopped by SIGTERM/SIGINT, and killed with SIGKILL at random
moments to prove no row is ever torn."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from test_cli_support import child_env, load_csv_dir, read_csv_dir, start_writer, ttop_cmd

from conftest import wait_until
from ttop.sinks.csv import MATRIX_COLUMNS, OVERALL_COLUMNS


def _rows(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n") - 1
    except FileNotFoundError:
        return 0


def _header(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip().split(",")
    except FileNotFoundError:
        return []


def _start_ttop(spawn, folder, csv_dir, *extra, interval="0.2"):
    return spawn(
        ttop_cmd(folder, "--headless", "-i", interval, "--csv-dir", csv_dir, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_headless_writes_csv_until_signal(sig, spawn, progress_dir, tmp_path):
    new_metric = tmp_path / "new-metric"
    writer = start_writer(spawn, progress_dir, ["r1", "r2"], tmp_path, period=0.1, new_metric_when=new_metric)
    csv_dir = tmp_path / "csv"
    ttop = _start_ttop(spawn, str(progress_dir), str(csv_dir), "--csv-interval", "0.3")
    m1 = csv_dir / "r1_matrix.csv"
    # a metric that first appears mid-run (after ttop's first row, however
    # long ttop took to start) gets its own column
    wait_until(lambda: _rows(m1) >= 1, timeout=30)
    new_metric.touch()
    wait_until(lambda: "metric_extra0" in _header(m1) and _rows(m1) >= 4, timeout=30)
    writer.send_signal(signal.SIGTERM)  # the run ends: CANCELED is recorded
    writer.wait(timeout=15)
    wait_until(lambda: "CANCELED" in m1.read_text(encoding="utf-8") and "CANCELED" in (csv_dir / "r2_matrix.csv").read_text(encoding="utf-8"), timeout=30)
    ttop.send_signal(sig)
    out, err = ttop.communicate(timeout=30)
    assert ttop.returncode == 0, err
    assert b"Traceback" not in err
    assert err.decode().startswith("ttop: headless, writing CSV to %s every 0.3 s; Ctrl+C to stop" % csv_dir)
    frames = load_csv_dir(str(csv_dir))
    assert set(frames) == {"r1_matrix.csv", "r1_overall.csv", "r2_matrix.csv", "r2_overall.csv"}
    m = frames["r1_matrix.csv"]
    assert list(m.columns)[: len(MATRIX_COLUMNS)] == list(MATRIX_COLUMNS)
    assert "metric_loss" in m.columns and "metric_extra0" in m.columns
    assert m["metric_extra0"].isna().iloc[0] and not m["metric_extra0"].isna().iloc[-1]
    assert list(m["status"])[-1] == "CANCELED" and (m["status"] == "CANCELED").sum() == 1
    # one writer process keeps both files: one run holds it for the whole
    # time (docs/security.md), the other is not given its resources too
    holders = [n for n in ("r1_matrix.csv", "r2_matrix.csv")
               if (frames[n][frames[n]["status"] == "RUNNING"]["num_procs"] == 1).any()]
    assert len(holders) == 1, holders
    held = frames[holders[0]]
    running = held[held["status"] == "RUNNING"]
    # CPU % needs two samples of a process: the first may be empty, never wrong
    assert (running["cpu_percent"].iloc[1:] >= 0).all() and (running["rss_bytes"] > 1_000_000).all()
    assert (running["num_procs"] == 1).all()
    other = frames[({"r1_matrix.csv", "r2_matrix.csv"} - set(holders)).pop()]
    assert other["rss_bytes"].isna().all()
    ts = m["timestamp"].tolist()
    assert ts == sorted(ts) and min(b - a for a, b in zip(ts, ts[1:])) > 0.15  # --csv-interval 0.3 honoured (not every 0.2 s cycle)
    o = frames["r1_overall.csv"]
    assert list(o.columns) == list(OVERALL_COLUMNS) and len(o) == 1
    assert o["samples"][0] == len(m) and o["status"][0] == "CANCELED"
    assert o["duration"][0] > 0
    held_o = frames[holders[0].replace("_matrix", "_overall")]
    assert held_o["rss_bytes_max"][0] == held["rss_bytes"].max() > 1_000_000


# Forks real `ttop --headless` processes from an interpreter that has already
# imported ttop, so that 25 restarts do not pay 25 interpreter start-ups.
FORK_SERVER = """
import os, sys
import ttop.cli, ttop.collect.collector, ttop.sinks.csv, ttop.sinks.headless  # noqa: F401
argv = sys.argv[1:]
for line in sys.stdin:
    if line.strip() != "go":
        break
    pid = os.fork()
    if pid == 0:
        os._exit(ttop.cli.main(argv))
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


@pytest.mark.slow
def test_kill_9_never_tears_a_row(spawn, progress_dir, tmp_path):
    """SIGKILL a real ttop --headless at random moments (25 times, restarting
    it on the same CSV folder): every file always reads whole."""
    names = ["k%d" % i for i in range(6)]
    start_writer(spawn, progress_dir, names, tmp_path, period=0.05, new_metric_every=40)
    csv_dir = tmp_path / "csv"
    k0 = csv_dir / "k0_matrix.csv"
    server = spawn(
        [sys.executable, "-c", FORK_SERVER, str(progress_dir), "--headless", "-i", "0.05",
         "--csv-dir", str(csv_dir), "--csv-interval", "0.05"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env())
    rng = random.Random(1234)
    last_rows = 0
    pid = None
    for _ in range(25):
        server.stdin.write("go\n")
        server.stdin.flush()
        pid = int(server.stdout.readline())
        # wait until this ttop has written, then kill it at a random moment
        # among its writes (one every 0.05 s)
        wait_until(lambda last=last_rows: _rows(k0) > last or server.poll() is not None, timeout=30)
        assert os.path.exists("/proc/%d" % pid), "ttop %d ended by itself" % pid
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        status = int(server.stdout.readline())
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
        tables = read_csv_dir(str(csv_dir))  # every row whole, every file ends with a newline
        assert len(tables) <= 2 * len(names)  # the first kill may come before every run has a file
        rows = len(tables["k0_matrix.csv"]) - 1
        assert rows > last_rows  # appends continue across restarts, nothing lost
        last_rows = rows
    server.stdin.close()
    server.wait(timeout=15)
    server.stdout.close()
    # temp files of killed ttops are cleaned by the next start: at most the last one's remain
    leftovers = [n for n in os.listdir(csv_dir) if n.startswith(".")]
    assert all(n.endswith(".%d.tmp" % pid) for n in leftovers), leftovers
    frames = load_csv_dir(str(csv_dir))
    assert len(frames) == 2 * len(names)
    assert len(frames["k0_matrix.csv"]) == last_rows
    m = frames["k0_matrix.csv"]
    extra = [c for c in m.columns if c.startswith("metric_extra")]
    assert extra, "the writer's new metrics got columns"
    assert (m["status"] == "RUNNING").all()


def test_csv_alongside_the_curses_ui(progress_dir, spawn, tmp_path):
    """``ttop FOLDER --csv-interval S`` in a real pty: the monitor runs, CSV is
    written meanwhile, and ``q`` leaves with status 0 and complete files."""
    ptyprocess = pytest.importorskip("ptyprocess")
    import threading

    start_writer(spawn, progress_dir, ["ui1"], tmp_path, period=0.1)
    csv_dir = tmp_path / "csv"
    p = ptyprocess.PtyProcess.spawn(
        ttop_cmd(progress_dir, "-i", "0.2", "--csv-interval", "0.2", "--csv-dir", csv_dir),
        env=child_env(TERM="linux", ESCDELAY="25"), dimensions=(24, 100))
    screen = []

    def drain():
        while True:
            try:
                screen.append(p.read(65536))
            except EOFError:
                return

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        wait_until(lambda: _rows(csv_dir / "ui1_matrix.csv") >= 3 or not p.isalive(), timeout=30)
        assert p.isalive(), b"".join(screen)[-2000:]
        wait_until(lambda: b"ui1" in b"".join(screen), timeout=60)
        p.write(b"q")
        wait_until(lambda: not p.isalive(), timeout=60)
    finally:
        if p.isalive():
            p.kill(signal.SIGKILL)
        p.wait()
        t.join(timeout=5)
    assert p.exitstatus == 0, b"".join(screen)[-2000:]
    frames = load_csv_dir(str(csv_dir))
    assert len(frames["ui1_matrix.csv"]) >= 3
    assert frames["ui1_matrix.csv"]["timestamp"].is_unique  # one row per snapshot, however it is wired
    assert int(frames["ui1_overall.csv"]["samples"][0]) == len(frames["ui1_matrix.csv"])


def test_error_reporter_does_not_flood():
    import io

    from ttop.sinks.headless import ErrorReporter

    out = io.StringIO()
    rep = ErrorReporter(out, repeat_every=100)
    for _ in range(250):
        rep("cannot write CSV for run a: disk full")
    rep("another problem")
    lines = out.getvalue().splitlines()
    assert lines == [
        "ttop: cannot write CSV for run a: disk full",
        "ttop: cannot write CSV for run a: disk full (repeated 100 times)",
        "ttop: cannot write CSV for run a: disk full (repeated 200 times)",
        "ttop: another problem",
    ]


def test_run_headless_reports_a_failing_collector_and_stops_cleanly(tmp_path, monkeypatch):
    """In-process: run_headless with a collector whose cycles fail; the error is
    reported once, and stop_event ends it with the sink closed."""
    import io
    import threading

    from ttop.sinks import headless
    from ttop.sinks.csv import CsvSink

    monkeypatch.setattr(headless, "CHECK_EVERY", 0.05)

    class Failing:
        latest = None
        last_error = None

        def __init__(self):
            self.listeners, self.started, self.stopped = [], False, False

        def add_listener(self, fn):
            self.listeners.append(fn)

        def start(self):
            self.started = True
            self.last_error = RuntimeError("boom")

        def stop(self, timeout=5):
            self.stopped = True

    err = io.StringIO()
    sink = CsvSink(str(tmp_path / "csv"), 1.0)
    sink.on_error = None
    c = Failing()
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    try:
        assert headless.run_headless(c, sink, stderr=err, stop_event=stop, install_signals=False) == 0
    finally:
        timer.cancel()
    assert c.started and c.stopped and len(c.listeners) == 1
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("ttop: headless, writing CSV to ")
    assert lines[1:] == ["ttop: collector cycle failed: RuntimeError: boom"]
    assert not sink.maybe_write(object())  # closed


def test_folder_going_away_and_back_is_reported(spawn, progress_dir, tmp_path):
    # ttop watches a symlink to the writer's folder: removing the link makes
    # the folder vanish for ttop while the writer goes on
    start_writer(spawn, progress_dir, ["f1"], tmp_path, period=0.1)
    link = tmp_path / "watched"
    os.symlink(str(progress_dir), str(link))
    csv_dir = tmp_path / "csv"
    err_path = tmp_path / "err.txt"
    with open(err_path, "wb") as err:
        ttop = spawn(ttop_cmd(link, "--headless", "-i", "0.1", "--csv-dir", csv_dir),
                     stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    matrix = csv_dir / "f1_matrix.csv"
    wait_until(lambda: _rows(matrix) >= 2, timeout=30)
    os.unlink(str(link))
    wait_until(lambda: b"progress folder:" in err_path.read_bytes(), timeout=30)
    os.symlink(str(progress_dir), str(link))
    wait_until(lambda: b"progress folder is readable again" in err_path.read_bytes(), timeout=30)
    before = _rows(matrix)
    wait_until(lambda: _rows(matrix) > before, timeout=30)  # writing resumed
    ttop.send_signal(signal.SIGTERM)
    assert ttop.wait(timeout=30) == 0
    text = err_path.read_text()
    assert len(text.splitlines()) == 3 and "Traceback" not in text, text
    frames = load_csv_dir(str(csv_dir))
    assert (frames["f1_matrix.csv"]["status"] == "RUNNING").all()


def test_unattributable_gpu_memory_stays_empty_in_the_csv(spawn, progress_dir, tmp_path):
    """The replayed H200 reports a CUDA process at our writer's PID, which has
    no GPU device open: the CSV leaves gpu_memory_bytes empty rather than
    attributing memory wrongly (see test_once_json_with_the_recorded_h200)."""
    from test_cli import nvml_env

    writer = start_writer(spawn, progress_dir, ["g1"], tmp_path, period=0.1)
    csv_dir = tmp_path / "csv"
    ttop = spawn(ttop_cmd(progress_dir, "--headless", "-i", "0.2", "--csv-dir", csv_dir),
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=nvml_env(writer.pid))
    wait_until(lambda: _rows(csv_dir / "g1_matrix.csv") >= 2, timeout=30)
    ttop.send_signal(signal.SIGTERM)
    _, err = ttop.communicate(timeout=30)
    assert ttop.returncode == 0, err
    frames = load_csv_dir(str(csv_dir))
    m = frames["g1_matrix.csv"]
    assert m["gpu_memory_bytes"].isna().all() and (m["rss_bytes"] > 0).all()
    assert frames["g1_overall.csv"]["gpu_memory_bytes_max"].isna().all()


def test_headless_recreates_a_vanished_csv_folder(spawn, progress_dir, tmp_path):
    import shutil

    start_writer(spawn, progress_dir, ["v"], tmp_path, period=0.1)
    csv_dir = tmp_path / "csv"
    ttop = _start_ttop(spawn, str(progress_dir), str(csv_dir), "--csv-interval", "0.1", interval="0.1")
    matrix = csv_dir / "v_matrix.csv"
    wait_until(lambda: _rows(matrix) >= 2, timeout=30)
    shutil.rmtree(csv_dir)
    wait_until(lambda: _rows(matrix) >= 2, timeout=30)  # back, with a header and fresh rows
    ttop.send_signal(signal.SIGTERM)
    _out, err = ttop.communicate(timeout=30)
    assert ttop.returncode == 0, err
    assert b"re-created" in err and b"cannot write" not in err, err
    frames = load_csv_dir(str(csv_dir))
    assert list(frames["v_matrix.csv"].columns)[: len(MATRIX_COLUMNS)] == list(MATRIX_COLUMNS)
    assert frames["v_overall.csv"]["samples"][0] == len(frames["v_matrix.csv"])


def test_headless_exits_nonzero_when_the_final_flush_fails(spawn, progress_dir, tmp_path):
    start_writer(spawn, progress_dir, ["f"], tmp_path, period=0.1)
    csv_dir = tmp_path / "csv"
    ttop = _start_ttop(spawn, str(progress_dir), str(csv_dir), "--csv-interval", "0.1", interval="0.1")
    overall = csv_dir / "f_overall.csv"
    wait_until(lambda: overall.exists() and _rows(csv_dir / "f_matrix.csv") >= 2, timeout=30)
    overall.unlink()
    overall.mkdir()  # the final summary cannot replace a folder
    (overall / "keep").write_text("x")
    ttop.send_signal(signal.SIGTERM)
    _out, err = ttop.communicate(timeout=30)
    assert ttop.returncode == 1, err
    assert b"f_overall.csv" in err and b"final" in err, err


def test_headless_counts_threads_without_listing_them(spawn, progress_dir, tmp_path):
    """Nothing headless writes lists a process's threads: the collector reads
    none (one read per thread saved each cycle), while the CSV still counts
    them from the process's own stat line. A collector for the monitor keeps them."""
    import io
    import threading

    from ttop.collect import Collector
    from ttop.sinks import headless
    from ttop.sinks.csv import CsvSink

    start_writer(spawn, progress_dir, ["t1"], tmp_path, period=0.1)
    ui = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False)
    assert ui.sample_threads
    listed = wait_until(lambda: (lambda r: r if r is not None and r.processes and r.processes[0].threads else None)(
        ui.collect().run("t1")), timeout=30)
    assert len(listed.processes[0].threads) == listed.processes[0].num_threads

    c = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False)
    sink = CsvSink(str(tmp_path / "csv"), 0.2)
    stop = threading.Event()
    done = []
    t = threading.Thread(target=lambda: done.append(headless.run_headless(
        c, sink, stderr=io.StringIO(), stop_event=stop, install_signals=False)))
    t.start()
    try:
        m = tmp_path / "csv" / "t1_matrix.csv"
        wait_until(lambda: _rows(m) >= 3, timeout=30)
        run = c.latest.run("t1")
        assert not c.sample_threads
        assert run.processes and run.processes[0].num_threads >= 1 and run.processes[0].threads == ()
    finally:
        stop.set()
        t.join(30)
    assert done == [0]
    frame = load_csv_dir(str(tmp_path / "csv"))["t1_matrix.csv"]
    assert (frame["num_threads"].dropna() >= 1).all() and frame["num_threads"].notna().any()


def _ended_file(folder, name, loss, pid):
    data = {"format": "ttop.progress/1", "run_name": name, "status": "FINISHED", "pid": pid,
            "started_at": 1700000000.0, "ended_at": 1700000100.0, "updated_at": 1700000100.0,
            "epoch": 1, "total_epochs": 1, "batch": 10, "total_batches": 10, "metrics": {"loss": loss}}
    (folder / (name + ".json")).write_text(json.dumps(data), encoding="utf-8")


def _overall_keys(csv_dir):
    return {n: pd.read_csv(csv_dir / n, keep_default_na=False, dtype=str).iloc[0]["key"]
            for n in (os.listdir(csv_dir) if csv_dir.exists() else ()) if n.endswith("_overall.csv")}


def test_a_run_whose_safe_name_is_taken_keeps_its_own_files_after_a_restart(spawn, progress_dir, tmp_path):
    # " a" and "a" are both "a" as file names: the second ttop on the folder
    # saw " a" first, took a_matrix.csv for it (the ended run then wrote no
    # row: "its file already ends with that status") and gave "a" a new file
    csv_dir = tmp_path / "csv"
    _ended_file(progress_dir, "a", 1.0, 4000001)
    first = _start_ttop(spawn, str(progress_dir), str(csv_dir))
    wait_until(lambda: list(_overall_keys(csv_dir).values()) == ["a"], timeout=30)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=30)
    assert first.returncode == 0
    _ended_file(progress_dir, " a", 2.0, 4000002)
    second = _start_ttop(spawn, str(progress_dir), str(csv_dir))
    wait_until(lambda: len(_overall_keys(csv_dir)) == 2, timeout=30)
    second.send_signal(signal.SIGINT)
    second.communicate(timeout=30)
    assert second.returncode == 0
    keys = _overall_keys(csv_dir)
    assert sorted(keys.values()) == [" a", "a"] and keys["a_overall.csv"] == "a"
    frames = load_csv_dir(str(csv_dir))
    for name, key in keys.items():
        m = frames[name.replace("_overall.csv", "_matrix.csv")]
        assert list(m["metric_loss"]) == [1.0 if key == "a" else 2.0], name


def test_headless_freezes_what_start_up_made_at_its_first_cycle(spawn, progress_dir, tmp_path):
    """What exists at the first published cycle is moved out of the later
    cyclic collections (ttop.cli._GcAfterFirstCycle(pause=False)); the
    collector stays on throughout."""
    start_writer(spawn, progress_dir, ["frozen-run"], tmp_path)
    said = tmp_path / "said"
    code = ("import gc, sys\n"
            "from ttop import cli\n"
            "freeze = gc.freeze\n"
            "def said():\n"
            "    with open(sys.argv[1], 'a') as f:\n"
            "        f.write('freeze enabled=%s\\n' % gc.isenabled())\n"
            "    freeze()\n"
            "gc.freeze = said\n"
            "sys.exit(cli.main(sys.argv[2:]))\n")
    p = spawn([sys.executable, "-c", code, str(said), str(progress_dir), "--headless", "-i", "0.2", "--csv-dir",
               str(tmp_path / "csv")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    wait_until(said.exists, timeout=30)
    time.sleep(1.0)  # later cycles (-i 0.2): no second freeze
    p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert said.read_text() == "freeze enabled=True\n"  # once, at the first cycle, collection on


def test_a_progress_file_it_skips_is_said_once(spawn, progress_dir, tmp_path):
    """A file in the folder that is not a usable progress file (not JSON, a
    writer's own format) got no CSV and not a word from --headless: a cron
    job's log said nothing of the run it left out (the monitor's footer and
    --once say it). One line per file names it and why, once while it
    stays skipped."""
    start_writer(spawn, progress_dir, ["ok1"], tmp_path, period=0.1)
    (progress_dir / "broken.json").write_text('{"format": "ttop.progress/1", "run_na')
    csv_dir = tmp_path / "csv"
    err_path = tmp_path / "err.txt"
    with open(err_path, "wb") as err:
        ttop = spawn(ttop_cmd(progress_dir, "--headless", "-i", "0.1", "--csv-dir", csv_dir),
                     stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    matrix = csv_dir / "ok1_matrix.csv"
    wait_until(lambda: _rows(matrix) >= 1 and b"broken.json" in err_path.read_bytes(), timeout=30)
    before = _rows(matrix)
    wait_until(lambda: _rows(matrix) >= before + 5, timeout=30)  # more cycles: said once only
    ttop.send_signal(signal.SIGTERM)
    assert ttop.wait(timeout=30) == 0
    lines = err_path.read_text().splitlines()
    said = [line for line in lines if "broken.json" in line]
    assert len(said) == 1 and said[0].startswith("ttop: skipped broken.json: ") and "JSON" in said[0], lines
    assert not (csv_dir / "broken_matrix.csv").exists()
