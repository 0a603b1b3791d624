"""Several progress folders at once (``ttop DIR1 DIR2 ...`` and globs): two
runs of the same name in different folders stay two runs, each run's levers
act in its own folder, a missing or vanished folder is said and the others
go on."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from test_levers import Ctx

from conftest import wait_until
from ttop import progress as P
from ttop.collect.collector import Collector
from ttop.collect.folders import expand_folders, folder_tags
from ttop.ui import levers
from ttop.view.state import ViewState
from ttop.view.table import render_table

ROOT = Path(__file__).resolve().parents[1]


def _write(folder, name, status="RUNNING", **extra):
    d = {"format": P.PROGRESS_FORMAT, "run_name": name, "status": status, "updated_at": time.time(),
         "started_at": time.time() - 60, "host": "elsewhere", "heartbeat_interval": 1.0,
         "variables": {"lr": 0.1}, "variable_types": {"lr": "float"}, "control_seq": 0}
    d.update(extra)
    P.write_json_atomic(os.path.join(str(folder), name + ".json"), d)


def _folders(tmp_path, *names):
    out = []
    for n in names:
        d = tmp_path / "scratch" / n / "progress"
        d.mkdir(parents=True)
        out.append(d)
    return out


def _collect(folders):
    c = Collector([str(f) for f in folders], interval=0.5, gpu=False, tpu=False, notify=False)
    try:
        return c, c.collect()
    finally:
        c.stop()


def test_tags_tell_folders_apart():
    assert folder_tags(["/s/a/progress", "/s/b/progress"]) == ["a", "b"]
    assert folder_tags(["/s/a", "/s/b/c"]) == ["a", "b_c"]
    assert folder_tags(["/x/p", "/x/p/sub"]) == ["_x_p", "_x_p_sub"]  # nothing left for one: whole paths
    assert folder_tags(["/only/one"]) == ["one"]
    # unique once the slashes are gone too: a/b and a_b would both be a_b
    assert folder_tags(["/s/a/b/p", "/s/a_b/p"]) == ["_s_a_b_p#1", "_s_a_b_p#2"]
    assert folder_tags(["/x/a_b", "/x/a/b", "/x/c"]) == ["_x_a_b#1", "_x_a_b#2", "_x_c"]


def test_two_folders_whose_tags_differ_only_by_a_slash_are_two_sets_of_runs(tmp_path):
    a, b = tmp_path / "a" / "b", tmp_path / "a_b"
    a.mkdir(parents=True)
    b.mkdir()
    _write(a, "exp")
    _write(b, "exp", status="FINISHED", ended_at=time.time())
    _c, snap = _collect([a, b])
    assert len({r.key for r in snap.runs}) == 2
    assert sorted((r.folder, r.status) for r in snap.runs) == sorted([(str(a), "RUNNING"), (str(b), "FINISHED")])


def test_expand_folders_globs_keeps_order_and_drops_repeats(tmp_path):
    a, b = _folders(tmp_path, "a", "b")
    (tmp_path / "scratch" / "c").mkdir()
    (tmp_path / "scratch" / "c" / "progress").write_text("a file, not a folder")
    found, problems = expand_folders([str(tmp_path / "scratch" / "*" / "progress"), str(a),
                                      str(tmp_path / "nothing-*")])
    assert found == [str(a), str(b)]
    assert problems == ["no folder matches %s" % (tmp_path / "nothing-*")]


def test_a_folder_named_twice_through_a_link_is_watched_once(tmp_path):
    a, b = _folders(tmp_path, "a", "b")
    _write(a, "r1")
    _write(b, "r2")
    link = tmp_path / "alink"
    link.symlink_to(a)
    notes = []
    found, problems = expand_folders([str(a), str(link), str(b), str(a / ".." / "progress")], notes)
    assert (found, problems) == ([str(a), str(b)], [])
    assert notes == ["%s is the same folder as %s; watching it once" % (link, a)]
    rc, out, err = _ttop(str(a), str(link), "--json")
    assert rc == 0, err
    assert [r["key"] for r in json.loads(out)["runs"]] == ["r1"]  # once, under the first spelling
    assert err == "ttop: %s is the same folder as %s; watching it once\n" % (link, a)


def test_same_name_in_two_folders_is_two_runs_and_levers_act_in_their_own_folder(tmp_path):
    a, b = _folders(tmp_path, "a", "b")
    _write(a, "exp")
    _write(b, "exp", status="FINISHED", ended_at=time.time())
    (b / "exp.stdout.log").write_text("hello from b\n")
    (a / "exp.stdout.log").write_text("hello from a\n")
    _c, snap = _collect([a, b])
    assert [r.key for r in snap.runs] == ["a/exp", "b/exp"]
    ra, rb = snap.runs
    assert (ra.folder, ra.stem, ra.folder_tag) == (str(a), "exp", "a")
    assert (rb.folder, rb.stem, rb.status) == (str(b), "exp", "FINISHED")
    assert [(f.path, f.tag, f.error) for f in snap.folders] == [(str(a), "a", None), (str(b), "b", None)]
    # the table names each run with its folder's tag
    table = render_table(snap, ViewState(), 100, 10)
    names = [line for line in ("".join(t for t, _ in ln) for ln in table.lines) if "exp" in line]
    assert any("a/exp" in n for n in names) and any("b/exp" in n for n in names)

    ctx = Ctx(a, snap.runs)
    ctx.snapshot = snap
    # the variable editor writes the control file of b's run into b only
    ctx.push(levers.open_editor(ctx, "a/exp"))
    ctx.keys("ENTER", "CTRL_U", *"0.5", "ENTER")
    assert json.loads((a / "control_exp.json").read_text())["variables"] == {"lr": 0.5}
    assert not (b / "control_exp.json").exists()
    ctx.keys("ESC")
    # the output viewer reads the run's own log
    ctx.push(levers.open_output(ctx, "b/exp"))
    assert "hello from b" in ctx.text() and "hello from a" not in ctx.text()
    ctx.keys("q")
    # delete removes b's files, a's run of the same name is untouched
    ctx.stack.clear()
    ctx.push(levers.open_delete(ctx, "b/exp"))
    assert "exp.json" in ctx.text()
    ctx.keys("y")
    assert ctx.notices[-1][1] is False, ctx.notices
    assert sorted(os.listdir(b)) == []
    assert sorted(os.listdir(a)) == ["control_exp.json", "exp.json", "exp.stdout.log"]


def test_a_folder_that_vanishes_is_said_and_the_others_go_on(tmp_path):
    a, b = _folders(tmp_path, "a", "b")
    _write(a, "one")
    _write(b, "two")
    c = Collector([str(a), str(b)], interval=0.5, gpu=False, tpu=False, notify=False)
    try:
        assert [r.key for r in c.collect().runs] == ["a/one", "b/two"]
        shutil.rmtree(b)
        snap = c.collect()
        assert [r.key for r in snap.runs] == ["a/one"]
        assert snap.folder_error is None
        assert [f.error for f in snap.folders] == [None, "folder does not exist: %s" % b]
        assert any(str(b) in n and "other folders are watched" in n for n in snap.notices)
        b.mkdir()
        _write(b, "two")
        snap = c.collect()
        assert [r.key for r in snap.runs] == ["a/one", "b/two"] and not any(f.error for f in snap.folders)
        shutil.rmtree(a)
        shutil.rmtree(b)
        assert c.collect().folder_error  # none left: as with one folder
    finally:
        c.stop()


def _ttop(*args):
    p = subprocess.run([sys.executable, "-m", "ttop", "--once"] + list(args), cwd=str(ROOT), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def test_json_lists_both_folders_from_a_quoted_glob_and_names_a_missing_one(tmp_path):
    a, b = _folders(tmp_path, "a", "b")
    _write(a, "exp")
    _write(b, "exp")
    rc, out, err = _ttop(str(tmp_path / "scratch" / "*" / "progress"), str(tmp_path / "missing"), "--json")
    assert rc == 0, err
    assert "folder %s does not exist" % (tmp_path / "missing") in err and "watching the others" in err
    doc = json.loads(out)
    assert [(r["key"], r["folder"]) for r in doc["runs"]] == [("a/exp", str(a)), ("b/exp", str(b))]
    assert doc["folders"] == [{"path": str(a), "tag": "a", "error": None}, {"path": str(b), "tag": "b", "error": None}]
    # the table form, and no usable folder at all: exit 2
    rc, out, err = _ttop(str(a), str(b))
    assert rc == 0 and "a/exp" in out and "b/exp" in out
    rc, out, err = _ttop(str(tmp_path / "nope-*"), str(tmp_path / "missing"))
    assert rc == 2 and "no folder matches" in err and "does not exist" in err


def test_monitor_shows_both_folders_and_says_when_one_goes(ttop_term, tmp_path):
    a, b = _folders(tmp_path, "a", "b")
    _write(a, "exp", status="FINISHED", ended_at=time.time())  # ended: no run notice in the footer
    _write(b, "exp", status="FINISHED", ended_at=time.time())
    t = ttop_term(str(a), str(b), cols=110, rows=16)
    t.wait_for(lambda t: "a/exp" in t.text and "b/exp" in t.text)
    shutil.rmtree(b)
    t.wait_for(lambda t: "folder does not exist: " in t.text and "b/exp" not in t.text and "a/exp" in t.text)


def test_rank_files_are_read_in_each_runs_own_folder(tmp_path):
    a, b = _folders(tmp_path, "a", "b")
    _write(a, "job")
    _write(b, "job")
    rank = {"format": "ttop.rank/1", "rank": 1, "world_size": 2, "status": "RUNNING", "updated_at": time.time(),
            "host": "elsewhere"}
    P.write_json_atomic(str(b / ".job.rank1.json"), rank)
    _c, snap = _collect([a, b])
    ranks = {r.key: [k.rank for k in r.ranks] for r in snap.runs}
    assert ranks["a/job"] == [] and 1 in ranks["b/job"]


def test_folder_names_reach_stderr_without_escape_sequences(tmp_path):
    """A glob like /scratch/*/progress matches folders anyone who can write
    /scratch named: their names reach ttop's stderr at start (a folder seen
    twice) and while --headless runs (a folder gone), never raw."""
    import signal

    (good,) = _folders(tmp_path, "good")
    _write(good, "exp")
    scratch = tmp_path / "scratch"
    os.symlink("good", str(scratch / "\x1b]0;PWNED\x07twice"))  # the same folder again, by a link
    red = scratch / "\x1b[31mred" / "progress"
    red.mkdir(parents=True)
    _write(red, "other")
    csv_dir = tmp_path / "csv"
    err_path = tmp_path / "ttop.err"
    with open(str(err_path), "wb") as err_file:
        p = subprocess.Popen([sys.executable, "-m", "ttop", str(scratch / "*" / "progress"), "--headless", "--csv-dir",
                              str(csv_dir), "-i", "0.2"], cwd=str(ROOT), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        wait_until(lambda: list(csv_dir.glob("*other*_matrix.csv")) or p.poll() is not None, timeout=60)
        shutil.rmtree(str(scratch / "\x1b[31mred"))
        # a cycle after that (every 0.2 s, later on a loaded machine) says the folder vanished
        wait_until(lambda: b"does not exist" in err_path.read_bytes() or p.poll() is not None, timeout=60)
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    err = err_path.read_bytes().decode("utf-8", "replace")
    assert "twice" in err and "does not exist" in err and "red/progress" in err, err
    assert not [ch for ch in err if ch < " " and ch != "\n"], repr(err)


def _readable_folder(home, run):
    """``home/progress`` readable by everyone, with a progress file of ``run``."""
    (home / "progress").mkdir(parents=True)
    os.chmod(str(home), 0o755)
    os.chmod(str(home / "progress"), 0o755)
    _write(home / "progress", run)


def test_a_glob_match_that_is_a_strangers_link_to_a_folder_they_cannot_read_is_not_watched(
        three_users, shared_dir, tmp_path):
    """Whoever can write /scratch names what '/scratch/*/progress' matches:
    eve's link there to a folder only root can read must not bring its
    runs to root's screen (nor its --serve page or CSV files); her link to
    a folder she can read is watched as any."""
    eve = three_users[0]
    scratch = Path(shared_dir)
    _readable_folder(scratch / "alice", "open")
    private = tmp_path / "private"  # below pytest's root-only folder
    (private / "progress").mkdir(parents=True)
    _write(private / "progress", "secret")
    eve.sh('ln -s "$1" "$2/eve" && ln -s "$2/alice" "$2/mirror"', str(private), str(scratch))
    rc, out, err = _ttop(str(scratch / "*" / "progress"), "--json")
    assert rc == 0, err
    names = sorted(r["run_name"] for r in json.loads(out)["runs"])
    assert names == ["open"], names  # alice's folder once (the mirror is the same folder), nothing of root's
    assert "symbolic link by %s to a folder %s cannot read: not watched" % (eve.name, eve.name) in err


def test_a_folder_a_glob_matches_also_through_a_strangers_link_is_watched_under_its_own_path(
        three_users, shared_dir):
    """eve's link /scratch/aaa/progress to alice's /scratch/alice/progress
    sorts first in '/scratch/*/progress': watched under that spelling, the
    runs were shown under eve's tag, and eve re-pointing her link at a
    folder of hers took alice's runs off the screen, the CSV and the alerts
    (the watch follows the path it was given). The real path is kept."""
    eve = three_users[0]
    scratch = Path(shared_dir)
    _readable_folder(scratch / "alice", "mine")
    eve.sh('mkdir "$1/aaa" && ln -s "$1/alice/progress" "$1/aaa/progress"', str(scratch))
    notes = []
    found, problems = expand_folders([str(scratch / "*" / "progress")], notes)
    assert (found, problems) == ([str(scratch / "alice" / "progress")], [])
    assert notes == ["%s is the same folder as %s; watching it once" % (
        scratch / "aaa" / "progress", scratch / "alice" / "progress")]
    # a link of one's own (or root's) still counts as the first spelling
    own = scratch / "000"
    own.mkdir()
    (own / "progress").symlink_to(scratch / "alice" / "progress")
    found, problems = expand_folders([str(scratch / "*" / "progress")])
    assert found == [str(own / "progress")]
