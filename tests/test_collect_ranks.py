"""The ranks of a multi-rank job as rows of its run: rank files read with
the owner checks of progress files, each rank's process tree attributed
once, the run's resources summed over its ranks. Real processes, real files,
real users."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from conftest import wait_until
from ttop.collect import Collector
from ttop.progress import write_json_atomic
from ttop.sinks.jsonout import run_to_dict
from ttop.view.state import ViewState
from ttop.view.table import render_table, visible_rows

BUSY = [sys.executable, "-c", "import time\nwhile True: sum(range(20000)); time.sleep(0.001)"]
PARENT = [sys.executable, "-c", "import subprocess, sys, time\n"
          "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
          "print(p.pid, flush=True)\ntime.sleep(600)"]


def progress(name, pid, **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": time.time(),
         "pid": pid, "pid_create_time": psutil.Process(pid).create_time(), "heartbeat_interval": 60}
    d.update(extra)
    return d


def rank_doc(name, rank, pid, world=2, **extra):
    d = {"format": "ttop.rank/1", "run_name": name, "rank": rank, "world_size": world, "pid": pid,
         "pid_create_time": psutil.Process(pid).create_time() if pid else None, "host": os.uname().nodename,
         "status": "RUNNING", "updated_at": time.time(), "control_seq": 0, "control_error": None}
    d.update(extra)
    return d


def collector(folder):
    return Collector(str(folder), gpu=False, tpu=False)


def cycles(c, pred, timeout=60):
    return wait_until(lambda: (lambda s: s if pred(s) else None)(c.collect()), timeout=timeout)


def test_two_ranks_are_one_run_with_summed_resources(spawn, progress_dir):
    r0, r1 = spawn(BUSY), spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    write_json_atomic(str(progress_dir / ".job.rank1.json"), rank_doc("job", 1, r1.pid))
    c = collector(progress_dir)
    s = cycles(c, lambda s: all(r.resources.cpu_percent for r in s.run("job").ranks))
    assert [r.key for r in s.runs] == ["job"]  # the rank file is no run of its own
    run = s.run("job")
    assert [(r.rank, r.pid, r.alive, r.local) for r in run.ranks] == [(0, r0.pid, True, True), (1, r1.pid, True, True)]
    assert [p.pid for p in run.ranks[1].processes] == [r1.pid] and [p.pid for p in run.processes] == [r0.pid]
    # the run's figures are the sums of its ranks' (one snapshot: the same samples)
    shares = [r.resources for r in run.ranks]
    assert run.resources.cpu_percent == pytest.approx(sum(x.cpu_percent for x in shares))
    assert run.resources.rss_bytes == sum(x.rss_bytes for x in shares)
    assert run.resources.num_procs == 2
    assert all(run.resources.rss_bytes > x.rss_bytes > 0 for x in shares)
    d = run_to_dict(run)
    assert [(r["rank"], r["pid"], r["world_size"]) for r in d["ranks"]] == [(0, r0.pid, 2), (1, r1.pid, 2)]
    assert d["ranks"][1]["processes"][0]["pid"] == r1.pid and d["ranks"][1]["resources"]["source"] == "local"
    assert d["ranks"][1]["signal_ack"] is None and d["ranks"][1]["control_seq"] == 0
    # `t`: a row per rank, each with its own processes under it
    rows = visible_rows(s, ViewState(expanded=frozenset(["job"])))
    assert [(r.kind, r.rank.rank if r.rank else (r.proc.pid if r.proc else None)) for r in rows if r.kind != "thread"] == [
        ("run", None), ("rank", 0), ("proc", r0.pid), ("rank", 1), ("proc", r1.pid)]
    text = ["".join(t for t, _ in line) for line in render_table(s, ViewState(), 160, 10, select=False,
                                                                  rows=visible_rows(s, ViewState(), ranks=True)).lines]
    assert any(t.startswith("  [R1] rank 1/2 RUNNING") for t in text), text
    from ttop.view.table import COLUMNS, cell_text
    pid_col = next(col for col in COLUMNS if col.key == "pid")
    assert [cell_text(pid_col, r) for r in rows if r.kind == "rank"] == [str(r0.pid), str(r1.pid)]
    # --once prints the rank rows under the run
    out = subprocess.run([sys.executable, "-m", "ttop", str(progress_dir), "--once"], env=dict(os.environ, COLUMNS="160"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=True).stdout.decode()
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("job "))
    assert lines[i + 1].startswith("  [R0] rank 0/2") and lines[i + 2].startswith("  [R1] rank 1/2"), out
    # rank 1 goes: its row says so, and counts nothing
    r1.kill()
    r1.wait()
    s = cycles(c, lambda s: s.run("job").ranks[1].alive is False)
    assert s.run("job").ranks[1].resources.cpu_percent is None
    assert s.run("job").resources.num_procs == 1


def test_first_look_cpu_of_a_rank_is_its_own_recent_sample(spawn, progress_dir):
    """--once looks once: a rank's CPU % is then the rank's own fresh sample
    (as a run's is), and counts in the run's total; a stale one does not."""
    r0, r1 = spawn(BUSY), spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    own = {"cpu_percent": 42.0, "rss_bytes": 1, "sampled_at": time.time()}
    write_json_atomic(str(progress_dir / ".job.rank1.json"), rank_doc("job", 1, r1.pid, resources=own))
    run = collector(progress_dir).collect().run("job")
    assert run.ranks[1].resources.cpu_percent == 42.0 and run.ranks[1].resources.source == "local"
    assert run.ranks[1].resources.rss_bytes > 1  # measured here
    assert run.resources.cpu_percent == pytest.approx(42.0 + (run.ranks[0].resources.cpu_percent or 0.0))
    old = dict(own, sampled_at=time.time() - 3600)
    write_json_atomic(str(progress_dir / ".job.rank1.json"), rank_doc("job", 1, r1.pid, resources=old))
    assert collector(progress_dir).collect().run("job").ranks[1].resources.cpu_percent is None


def test_a_rank_file_nested_too_deeply_is_ignored_not_the_end_of_every_cycle(spawn, progress_dir):
    """Whoever writes a run (and its rank files) must not stop ttop from
    showing every other run: a rank file of 100,000 nested arrays is a bad
    rank file, not an exception out of the collector's cycle."""
    r0, other = spawn(BUSY), spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    write_json_atomic(str(progress_dir / "other.json"), progress("other", other.pid))
    (progress_dir / ".job.rank1.json").write_bytes(b"[" * 100000)
    s = collector(progress_dir).collect()
    assert sorted(r.key for r in s.runs) == ["job", "other"]
    out = subprocess.run([sys.executable, "-m", "ttop", str(progress_dir), "--once", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(r["key"] for r in json.loads(out.stdout)["runs"]) == ["job", "other"]


def test_a_rank_below_another_is_counted_once_under_its_own_row(spawn, progress_dir):
    p = spawn(PARENT, stdout=subprocess.PIPE)
    child = int(p.stdout.readline())
    p.stdout.close()
    write_json_atomic(str(progress_dir / "job.json"), progress("job", p.pid))
    write_json_atomic(str(progress_dir / ".job.rank1.json"), rank_doc("job", 1, child))
    run = collector(progress_dir).collect().run("job")
    assert [x.pid for x in run.processes] == [p.pid]  # rank 1 is not in rank 0's tree...
    assert [x.pid for x in run.ranks[1].processes] == [child]  # ...but under its own row
    assert run.resources.num_procs == 2


def test_remote_rank_shows_its_own_sample(spawn, progress_dir):
    r0 = spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    far = dict(rank_doc("job", 1, r0.pid), pid=4242, pid_create_time=1.0, host="gpu-far-02",
               resources={"cpu_percent": 150.0, "rss_bytes": 7 << 30, "num_procs": 3, "num_threads": 40,
                          "sampled_at": time.time()})
    far["world_size"] = 3
    write_json_atomic(str(progress_dir / ".job.rank1.json"), far)
    quiet = dict(far, rank=2, updated_at=time.time() - 600)  # stopped writing 10 min ago
    write_json_atomic(str(progress_dir / ".job.rank2.json"), quiet)
    run = collector(progress_dir).collect().run("job")
    assert [(r.rank, r.stale) for r in run.ranks] == [(0, False), (1, False), (2, True)]
    from ttop.view.ranks import rank_state
    assert [rank_state(r) for r in run.ranks] == ["RUNNING", "RUNNING", "stale"]
    far = run.ranks[1]
    assert (far.local, far.alive, far.host, far.pid) == (False, None, "gpu-far-02", 4242)
    assert far.resources.source == "reported" and far.resources.rss_bytes == 7 << 30 and far.processes == ()
    # the stale rank's last report still counts, as a stale run's own does
    assert run.resources.rss_bytes == run.ranks[0].resources.rss_bytes + 2 * (7 << 30)
    assert run.resources.num_procs == 1 + 3 + 3
    rows = visible_rows(collector(progress_dir).collect(), ViewState(), ranks=True)
    from ttop.view.table import _name_text
    assert [_name_text(r) for r in rows][1:] == ["  [R0] rank 0/3", "  [R1] rank 1/3 @gpu-far-02",
                                                 "  [R2] rank 2/3 @gpu-far-02"]


def test_rank_files_outside_the_owner_rules_are_not_used(three_users, shared_dir, spawn):
    b, c = three_users[0], three_users[1]
    mine = b.popen(["sleep", "600"])
    theirs = c.popen(["sleep", "600"])
    other = b.popen(["sleep", "600"])
    try:
        b.write(os.path.join(shared_dir, "job.json"), json.dumps(progress("job", mine.pid)).encode())
        # rank 1: the owner's file naming another user's process: shown, not attributed
        b.write(os.path.join(shared_dir, ".job.rank1.json"), json.dumps(rank_doc("job", 1, theirs.pid, world=5)).encode())
        # rank 2: a stranger's file (it would name one of the owner's processes): ignored
        c.write(os.path.join(shared_dir, ".job.rank2.json"), json.dumps(rank_doc("job", 2, other.pid, world=5)).encode())
        # rank 3: a link to the owner's own file, made by a stranger: not followed
        c.sh('ln -s "$1/.job.rank1.json" "$1/.job.rank3.json"', shared_dir)
        # rank 4: a FIFO of the owner's: neither read nor waited on
        b.sh('mkfifo "$1/.job.rank4.json"', shared_dir)
        run = collector(shared_dir).collect().run("job")
        assert [r.rank for r in run.ranks] == [0, 1]
        r1 = run.ranks[1]
        assert r1.processes == () and r1.resources.num_procs is None
        assert r1.ownership_note == "pid %d belongs to %s, not to the file's owner %s" % (theirs.pid, c.name, b.name)
        assert run.resources.num_procs == 1
    finally:
        for p in (mine, theirs, other):
            p.kill()
            p.wait()


def test_an_edit_is_applied_once_every_running_rank_took_it():
    from ttop.collect.snapshot import RankSnapshot
    from ttop.levers.control import edit_state

    data = {"variables": {"lr": 0.1, "wd": 0.0}, "control_seq": 3, "control_error": None}
    r0 = RankSnapshot(rank=0, control_seq=3)
    late = RankSnapshot(rank=1, control_seq=2)
    took = RankSnapshot(rank=1, control_seq=3)
    refused = RankSnapshot(rank=2, control_seq=3, control_error="refused lr: the optimizer has no param group 1")
    ended = RankSnapshot(rank=3, control_seq=0, status="FAILED")
    assert edit_state(data, 3, "lr", [r0, late]) == ("pending", "")  # rank 1 has not applied it yet
    assert edit_state(data, 3, "lr", [r0, took, ended]) == ("applied", "")  # an ended rank waits for nothing
    assert edit_state(data, 3, "lr", [r0, took, refused]) == (
        "refused", "rank 2: refused lr: the optimizer has no param group 1")
    assert edit_state(data, 3, "wd", [r0, took, refused]) == ("applied", "")  # it names another variable


def test_t_shows_rank_rows_and_k_signals_the_ranks_process(ttop_term, spawn, progress_dir):
    """The real curses UI: `t` on a two-rank job shows [R0] and [R1] with
    their processes under them; `k` on [R1] signals rank 1's process."""
    import pwd

    r0 = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    r1 = spawn([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True)); time.sleep(600)"],
               stdout=subprocess.PIPE)

    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    write_json_atomic(str(progress_dir / ".job.rank1.json"), rank_doc("job", 1, r1.pid, world=3))
    write_json_atomic(str(progress_dir / ".job.rank2.json"), dict(rank_doc("job", 2, r1.pid, world=3), pid=77,
                                                                  host="gpu-far-02"))
    t = ttop_term(str(progress_dir), cols=150, rows=30)
    t.wait_for("job")
    t.press("t")
    t.wait_for("[R1] rank 1/3")
    y0, y1 = t.row_of("[R0] rank 0/3"), t.row_of("[R1] rank 1/3")
    assert y0 is not None and y1 is not None and y0 < y1
    p_rows = [y for y in range(30) if "[P]" in t.line(y)]  # each followed by its [T] rows
    assert [int(t.line(y).split()[1]) for y in p_rows] == [r0.pid, r1.pid]
    assert y0 < p_rows[0] < y1 < p_rows[1]  # each rank's process under its own row
    for _ in range(y1 - y0 + 1):  # from the run's row (just above [R0]) to [R1]
        t.press("DOWN")
    t.press("k")
    user = pwd.getpwuid(os.getuid()).pw_name
    t.wait_for("Signal PID %d (rank 1, run job, user %s)" % (r1.pid, user))
    t.press("7")  # SIGUSR1
    t.wait_for("Send SIGUSR1 to PID %d" % r1.pid)
    t.press("y")
    t.wait_for("sent SIGUSR1 to PID %d" % r1.pid)
    assert r1.stdout.readline().strip() == b"usr1"
    r1.stdout.close()
    assert r0.poll() is None
    # a rank on another host: k says why it cannot be signalled from here
    t.wait_for(lambda t: t.row_of("[R2] rank 2/3 @gpu-far-02") is not None)
    for _ in range(t.row_of("[R2] rank 2/3") - y1):
        t.press("DOWN")
    t.press("k")
    t.wait_for("rank 2 runs on gpu-far-02: ttop cannot signal it from this host")


def test_odd_rank_files_neither_break_the_cycle_nor_lose_the_run(spawn, progress_dir):
    r0 = spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    odd = {"format": "ttop.rank/1", "rank": "one", "world_size": 6, "pid": "x", "pid_create_time": [],
           "host": 5, "status": 7, "error": {}, "updated_at": "now", "control_seq": -2, "control_error": 3,
           "resources": "lots", "signal_ack": [1]}
    write_json_atomic(str(progress_dir / ".job.rank1.json"), odd)
    (progress_dir / ".job.rank2.json").write_text("{not json")
    (progress_dir / ".job.rank3.json").write_text("[1, 2]")
    write_json_atomic(str(progress_dir / ".job.rank4.json"), dict(odd, format="something/else"))
    write_json_atomic(str(progress_dir / ".job.rank5.json"), dict(odd, pid=2 ** 40, world_size=10 ** 12, host=None))
    s = collector(progress_dir).collect()
    run = s.run("job")
    assert run.status == "RUNNING" and [r.rank for r in run.ranks] == [0, 1, 5]
    r1 = run.ranks[1]
    assert (r1.pid, r1.status, r1.error, r1.control_seq, r1.control_error, r1.signal_ack) == (None, "?", None, 0, None, None)
    assert r1.resources.cpu_percent is None and r1.processes == ()
    assert run.ranks[2].alive is False  # no such process here
    text = render_table(s, ViewState(expanded=frozenset(["job"])), 120, 20, select=False).lines
    assert any("[R5]" in "".join(t for t, _ in line) for line in text)
    assert json.loads(json.dumps(run_to_dict(run)))["ranks"][1]["pid"] is None


def test_a_rank_file_of_an_earlier_run_of_the_same_name_is_not_shown(spawn, progress_dir):
    r0 = spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid, started_at=time.time()))
    old = rank_doc("job", 1, r0.pid, status="FAILED", error="RuntimeError: last week", ended_at=time.time() - 7 * 86400)
    write_json_atomic(str(progress_dir / ".job.rank1.json"), old)
    assert collector(progress_dir).collect().run("job").ranks == ()


def test_rank_files_of_an_earlier_killed_job_of_the_same_name_are_not_shown(spawn, progress_dir):
    """A 4-rank job killed at once (SIGKILL, the OOM killer, a preempted
    node) leaves its rank files saying RUNNING, without an end. A new run of
    that name (one process, or fewer ranks: a requeued job keeps its name)
    was shown as rank 0/4 with three ranks "gone"; a rank file last written
    long before the run started is the earlier job's. A live rank of the
    run, started before rank 0 wrote its file, is still shown."""
    r0, r1 = spawn(BUSY), spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid, started_at=time.time()))
    for k in (1, 2, 3):
        old = rank_doc("job", k, None, world=4, pid_create_time=time.time() - 7200,
                       started_at=time.time() - 7200, updated_at=time.time() - 3600)
        old["pid"] = 4000000 + k  # long gone
        write_json_atomic(str(progress_dir / (".job.rank%d.json" % k)), old)
    c = collector(progress_dir)
    run = c.collect().run("job")
    assert run.ranks == ()
    # rank 1 of this run starts (it began before rank 0: its start is older, its beat fresh)
    write_json_atomic(str(progress_dir / ".job.rank1.json"),
                      rank_doc("job", 1, r1.pid, world=2, started_at=time.time() - 600))
    run = cycles(c, lambda s: s.run("job").ranks).run("job")  # probed again within 2 s
    assert [(k.rank, k.alive) for k in run.ranks] == [(0, True), (1, True)]


def test_a_reused_pid_is_not_a_rank(spawn, progress_dir):
    """A rank file's PID now held by another process (its create time differs)
    is not the rank: nothing of that process is shown or counted."""
    r0, other = spawn(BUSY), spawn(BUSY)
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    doc = rank_doc("job", 1, other.pid)
    doc["pid_create_time"] += 100.0
    write_json_atomic(str(progress_dir / ".job.rank1.json"), doc)
    run = collector(progress_dir).collect().run("job")
    r1 = run.ranks[1]
    assert (r1.alive, r1.processes, r1.resources.num_procs) == (False, (), None)
    from ttop.view.ranks import rank_state
    assert rank_state(r1) == "gone" and run.resources.num_procs == 1


def test_many_runs_probed_by_one_listing_still_find_their_ranks(progress_dir, monkeypatch):
    from ttop.collect import ranks as ranks_mod

    opened = []
    real_read = ranks_mod._read
    monkeypatch.setattr(ranks_mod, "_read", lambda dfd, name, *a: opened.append(name) or real_read(dfd, name, *a))
    now = time.time()
    remote = {"host": "gpu-far-01", "pid": 4242, "pid_create_time": 1.0, "heartbeat_interval": 60}
    for i in range(ranks_mod.LIST_PROBES + 8):
        d = {"format": "ttop.progress/1", "run_name": "r%02d" % i, "status": "RUNNING", "updated_at": now, **remote}
        write_json_atomic(str(progress_dir / ("r%02d.json" % i)), d)
    write_json_atomic(str(progress_dir / ".r03.rank1.json"), dict(rank_doc("r03", 1, 0), **remote))
    clock = [now]
    c = Collector(str(progress_dir), gpu=False, tpu=False, clock=lambda: clock[0])
    snap = c.collect()
    assert [r.key for r in snap.runs if r.ranks] == ["r03"]
    assert opened == [".r03.rank1.json"]  # the others were answered by the listing
    write_json_atomic(str(progress_dir / ".r07.rank1.json"), dict(rank_doc("r07", 1, 0), **remote))
    clock[0] += ranks_mod.PROBE_SECONDS + 1  # probed again after PROBE_SECONDS
    assert [r.key for r in c.collect().runs if r.ranks] == ["r03", "r07"]
    c.stop()


def test_pss_of_a_still_multi_rank_job_is_not_read_again_before_its_time(spawn, progress_dir):
    """A run's own tree and the union of its ranks' trees are told apart: the
    PSS of a job whose processes hold still is not read again 30 s on (as it
    would be for a tree that keeps changing)."""
    from ttop.pss import read_pss

    if read_pss(os.getpid()) is None:
        pytest.skip("no /proc/<pid>/smaps_rollup on this kernel")
    r0 = spawn(PARENT, stdout=subprocess.PIPE)
    child = int(r0.stdout.readline())
    r1 = spawn([sys.executable, "-c", "import time; time.sleep(600)"])
    write_json_atomic(str(progress_dir / "job.json"), progress("job", r0.pid))
    write_json_atomic(str(progress_dir / ".job.rank1.json"), rank_doc("job", 1, r1.pid))
    c = collector(progress_dir)
    s = cycles(c, lambda s: s.run("job").resources.ram_measure == "pss" and s.run("job").resources.num_procs == 3)
    assert sorted(p.pid for p in s.run("job").processes) == sorted([r0.pid, child])
    time.sleep(0.5)  # every process past its start-up
    pss = c._table.pss
    clock = [pss.clock()]
    pss.clock = lambda: clock[0]
    # reads cost nothing from now on: PSS reads have a budget of real time
    # (2 % of the time between cycles), and on a loaded machine slow reads
    # used it up, so that reads due in the first cycle below were put off to
    # the second (what is read when is tested in test_trust_ram.py)
    far = pss.timer() + 1e6
    pss.timer = lambda: far
    clock[0] += 30.0  # what moved while they started is read again
    c.collect()
    reads = c._table.pss.total_reads
    clock[0] += 30.0  # past the 10 s refresh; nothing moved since
    c.collect()
    assert c._table.pss.total_reads == reads
    r0.stdout.close()
