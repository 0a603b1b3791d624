"""The fleet view: per-host summaries of a shared folder, the ``host:``
filter, and the hosts screen in a real terminal."""
from __future__ import annotations

import os
import time

from ttop import record
from ttop.collect.fleet import host_summaries
from ttop.collect.snapshot import RunResources, RunSnapshot, Snapshot
from ttop.view.state import ViewState
from ttop.view.table import filtered_runs


def _run(key, host, status="RUNNING", stale=False, local=False, updated=1000.0, mtime=1000.0, age=1.0,
         cpu=None, rss=None):
    data = {"format": "ttop.progress/1", "run_name": key, "status": status, "updated_at": updated, "host": host}
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=data, run_name=key, status=status,
                       reported_status=status, host=host, local=local, stale=stale, mtime=mtime,
                       heartbeat_age=age, resources=RunResources(cpu_percent=cpu, rss_bytes=rss))


def test_host_summaries_group_sum_and_estimate_skew():
    snap = Snapshot(seq=1, taken_at=2000.0, folder="/p", runs=(
        _run("a1", "node-a", updated=1600.0, mtime=1000.0, age=3.0, cpu=100.0, rss=10),   # clock 10 min ahead
        _run("a2", "node-a", updated=1601.0, mtime=1001.0, age=1.5, cpu=50.0, rss=5),
        _run("a3", "node-a", status="FINISHED", updated=1500.0, mtime=900.0, age=99.0, cpu=7.0, rss=1000),
        _run("b1", "node-b", stale=True, updated=400.0, mtime=1000.0, age=700.0, cpu=80.0),  # 10 min behind, silent
        _run("me1", "here", local=True, age=0.5),
    ))
    by = {h.host: h for h in host_summaries(snap)}
    assert [h.host for h in host_summaries(snap)] == ["here", "node-a", "node-b"]  # this machine first
    a, b, me = by["node-a"], by["node-b"], by["here"]
    assert (a.runs, a.running, a.stale, a.silent) == (3, 2, 0, False)
    assert a.cpu_percent == 150.0 and a.rss_bytes == 15  # only RUNNING runs count
    assert a.heartbeat_age == 1.5 and a.clock_skew == 600.0
    assert (b.running, b.stale, b.silent, b.clock_skew) == (1, 1, True, -600.0)
    assert me.local and not a.local and me.cpu_percent is None


def test_host_names_differing_in_case_are_one_host_as_for_the_host_filter():
    """node-1 and NODE-1 (DNS names ignore case): the hosts screen listed
    two hosts of one run each, while Enter on either (host:=node-1, which
    ignores case) showed both runs."""
    snap = Snapshot(seq=1, taken_at=2000.0, folder="/p", runs=(
        _run("r1", "node-1", cpu=10.0), _run("r2", "NODE-1", cpu=20.0), _run("r3", "node-2", cpu=1.0)))
    hosts = host_summaries(snap)
    assert [(h.host, h.runs, h.cpu_percent) for h in hosts] == [("NODE-1", 2, 30.0), ("node-2", 1, 1.0)]
    shown = filtered_runs(snap, ViewState(name_filter="host:=" + hosts[0].host))
    assert sorted(r.key for r in shown) == ["r1", "r2"]


def test_a_stale_run_s_last_sample_is_not_added_to_its_host_s_sums():
    snap = Snapshot(seq=1, taken_at=2000.0, folder="/p", runs=(
        _run("live", "node-a", cpu=100.0, rss=10),
        _run("silent", "node-a", stale=True, age=700.0, cpu=800.0, rss=1000),  # its last report
        record.replace(_run("hung", "here", local=True, stale=True, age=700.0, cpu=0.5, rss=77),
                       alive=True),  # measured here: a hung process
    ))
    by = {h.host: h for h in host_summaries(snap)}
    assert (by["node-a"].cpu_percent, by["node-a"].rss_bytes, by["node-a"].stale) == (100.0, 10, 1)
    assert (by["here"].cpu_percent, by["here"].rss_bytes) == (0.5, 77)  # a hung process still holds its memory


def test_a_jobs_ranks_on_other_hosts_count_on_their_own_hosts():
    """A multi-rank job whose rank 1 runs on gpu-9: the run's figures are
    the sums over its ranks, but gpu-9's CPU and RAM are not this
    machine's, neither in the hosts screen nor in the Budget line; a rank
    whose heartbeat stopped adds its last report to no host's sums."""
    from ttop.collect.snapshot import Budgets, RankSnapshot
    from ttop.view.header import budget_line

    r0 = RunResources(cpu_percent=100.0, rss_bytes=10)
    r1 = RunResources(cpu_percent=400.0, rss_bytes=1000, source="reported")
    silent = RunResources(cpu_percent=800.0, rss_bytes=10 ** 6, source="reported")  # its last report
    job = record.replace(_run("job", "here", local=True, cpu=1300.0, rss=10 ** 6 + 1010), ranks=(
        RankSnapshot(rank=0, host="here", local=True, resources=r0),
        RankSnapshot(rank=1, host="gpu-9", local=False, resources=r1),
        RankSnapshot(rank=2, host="gpu-7", local=False, stale=True, resources=silent),
        RankSnapshot(rank=3, host=None, local=False)))  # its file names no host: no host of its own
    snap = Snapshot(seq=1, taken_at=2000.0, folder="/p", runs=(job, _run("b", "node-b", cpu=50.0, rss=5)),
                    budgets=Budgets(8, 1 << 30))
    by = {h.host: h for h in host_summaries(snap)}
    assert (by["here"].cpu_percent, by["here"].rss_bytes, by["here"].runs) == (100.0, 10, 1)
    assert (by["gpu-9"].cpu_percent, by["gpu-9"].rss_bytes, by["gpu-9"].runs, by["gpu-9"].local) == (400.0, 1000, 0, False)
    assert (by["node-b"].cpu_percent, by["node-b"].rss_bytes) == (50.0, 5)
    assert "gpu-7" not in by and "" not in by  # silent: its last report is no figure of now
    assert sum(h.cpu_percent for h in by.values()) == 550.0  # every figure once, on one host
    line = "".join(t for t, _ in budget_line(snap, 80))
    assert line.startswith("Budget  CPU 1.0/8 cores (12%)  RAM 10B/"), line
    # Enter on gpu-9 in the hosts screen (host:=gpu-9) shows the job that has a rank there
    keys = lambda f: [r.key for r in filtered_runs(snap, ViewState(name_filter=f))]  # noqa: E731
    assert keys("host:=gpu-9") == ["job"] and keys("host:gpu") == ["job"] and keys("host:=node-b") == ["b"]


def test_hosts_screen_in_ascii_clips_without_unicode():
    from ttop.view.fleet import host_lines
    hosts = host_summaries(Snapshot(seq=1, taken_at=1000.0, folder="/p", runs=(
        RunSnapshot(key="a", path="/p/a.json", data={"run_name": "a", "updated_at": 999.0}, run_name="a",
                    status="RUNNING", reported_status="RUNNING", host="h" * 60),)))
    lines = host_lines(hosts, 30, 5, 0, ascii=True)
    text = ["".join(t for t, _ in line) for line in lines]
    assert all(t.isascii() for t in text) and text[2].endswith("...")
    assert not all(t.isascii() for t in ["".join(t for t, _ in ln) for ln in host_lines(hosts, 30, 5, 0)])


def test_host_filter_matches_the_host_column():
    snap = Snapshot(seq=1, taken_at=0.0, folder="/p", runs=(_run("x", "gpu-01"), _run("gpu-01-run", "gpu-02")))
    keys = lambda f: [r.key for r in filtered_runs(snap, ViewState(name_filter=f))]  # noqa: E731
    assert keys("host:gpu-01") == ["x"]  # the host, not a name containing it
    assert keys("gpu-01") == ["gpu-01-run"]  # a plain filter still matches names only
    assert keys("host:") == ["x", "gpu-01-run"]
    assert keys("host:gpu-0") == ["x", "gpu-01-run"]  # typed: any host containing it
    assert keys("host:=gpu-0") == [] and keys("host:=GPU-01") == ["x"]  # the hosts screen's pick: that host


def _write(folder, name, host, updated, mtime=None):
    from ttop.progress import write_json_atomic

    path = os.path.join(str(folder), name + ".json")
    write_json_atomic(path, {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "host": host,
                             "updated_at": updated, "heartbeat_interval": 1.0,
                             "resources": {"cpu_percent": 42.0, "rss_bytes": 3 << 30}})
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_hosts_screen_in_a_terminal_flags_a_silent_host_and_filters_by_host(ttop_term, tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    now = time.time()
    # fresh, clock 10.5 min ahead: shown as +10m..., however long ttop takes to start
    _write(folder, "alpha-1", "node-a", now + 630)
    _write(folder, "alpha-2", "node-a", now + 630)
    _write(folder, "beta-1", "node-b", now - 900, mtime=now - 900)  # silent for 15 min
    t = ttop_term(str(folder), cols=110, rows=20)
    t.wait_for("alpha-1")
    t.press("H")
    t.wait_for("Hosts")

    def host_row(name):
        y = t.row_of(name)
        return t.line(y) if y is not None else ""

    t.wait_for(lambda t: "SILENT" in host_row("node-b") and "SILENT" not in host_row("node-a"))
    assert host_row("node-a").split()[1:4] == ["2", "2", "0"]  # runs, running, stale
    assert "+10m" in host_row("node-a")  # its clock runs 10 min ahead
    t.press("DOWN", "ENTER")  # node-b
    t.wait_for(lambda t: "beta-1" in t.text and "alpha-1" not in t.text)
    assert "host:=node-b" in t.text
    t.press("ESC")
    t.wait_for("alpha-1")


def test_enter_on_a_host_shows_that_host_s_runs_only(ttop_term, tmp_path):
    # gpu-1's name is part of gpu-10's; a host name with an escape sequence
    # is shown cleaned: Enter must still pick exactly the runs of that host
    folder = tmp_path / "progress"
    folder.mkdir()
    now = time.time()
    _write(folder, "one", "gpu-1", now)
    _write(folder, "ten-a", "gpu-10", now)
    _write(folder, "ten-b", "gpu-10", now)
    _write(folder, "odd", "\x1bP+q\x1b\\", now)
    t = ttop_term(str(folder), cols=110, rows=20)
    t.wait_for("ten-b")
    t.press("H")
    t.wait_for(lambda t: t.row_of("gpu-10") is not None and t.row_of("+q") is not None)
    # sorted by name: the escape-sequence host (shown as +q), gpu-1, gpu-10
    assert t.row_of("+q") < t.row_of("gpu-1 ") < t.row_of("gpu-10")
    t.press("HOME", "DOWN", "ENTER")  # gpu-1
    t.wait_for(lambda t: "one" in t.text and "Run Name" in t.text)
    t.wait_for(lambda t: "ten-a" not in t.text and "ten-b" not in t.text and "odd" not in t.text)
    t.press("H")
    t.wait_for("Hosts")
    t.press("HOME", "ENTER")  # the escape-sequence host
    t.wait_for(lambda t: "odd" in t.text and "Run Name" in t.text)
    assert "one" not in t.text and "ten-a" not in t.text


def test_copied_files_of_ended_runs_do_not_make_a_clock_skew(ttop_term, tmp_path):
    # the skew is a file's updated_at minus its modification time; a file
    # copied in (results gathered with cp, a restored archive) has an old
    # updated_at and a new time: ended runs' files made the hosts screen say
    # this machine's clock ran 1d12h behind itself, and node-a's 23h behind
    import json
    import socket

    folder = tmp_path / "progress"
    folder.mkdir()
    now = time.time()
    me = socket.gethostname()
    _write(folder, "mine", me, now)
    _write(folder, "alpha", "node-a", now + 630)  # fresh, its clock 10.5 min ahead
    for name, host, days in (("old-mine", me, 3), ("old-alpha", "node-a", 2)):
        (folder / (name + ".json")).write_text(json.dumps({
            "format": "ttop.progress/1", "run_name": name, "status": "FINISHED", "host": host,
            "updated_at": now - days * 86400, "ended_at": now - days * 86400}))
    t = ttop_term(str(folder), cols=110, rows=20)
    t.wait_for("alpha")
    t.press("H")
    t.wait_for("Hosts")
    t.wait_for(lambda t: t.row_of("node-a") is not None and t.row_of("(here)") is not None)
    here, node_a = t.line(t.row_of("(here)")), t.line(t.row_of("node-a"))
    assert here.split()[-1] == "ok", here
    assert "+10m" in node_a, node_a


def test_hosts_screen_shows_every_heartbeat_age_whole():
    """A heartbeat 10 to 60 minutes old (a host gone silent: the case the
    screen is for) read "16m28s a…": the column was one cell short of
    "59m59s ago", as for 10-23 hours and 10 days or more."""
    from ttop.collect.fleet import HostSummary
    from ttop.view.fleet import host_lines
    for age, shown in ((988.0, "16m28s ago"), (86399.0, "23h59m ago"), (10 ** 6, "11d13h ago"), (5.0, "5s ago")):
        h = HostSummary(host="node", local=False, runs=1, running=1, stale=1, cpu_percent=None, rss_bytes=None,
                        gpu_memory_bytes=None, heartbeat_age=age, clock_skew=None, silent=True)
        text = "".join(t for t, _ in host_lines([h], 200, 3, 0)[2])
        assert shown in text, text
        assert text.rstrip().endswith("SILENT"), text
