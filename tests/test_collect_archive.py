"""Many runs: ended runs are kept as an archive that is not re-read, changes
are noticed by change notification and, without it, by the sweep; a big
folder shows its live runs before the archive is read."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

from conftest import ROOT, wait_until
from ptyharness import ttop_term  # noqa: F401  (fixture)
from ttop.collect import Collector
from ttop.collect import scan as scan_mod
from ttop.progress import write_json_atomic

WRITER = str(ROOT / "tests" / "fakes" / "progress_writer.py")


def doc(name, status="FINISHED", **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": time.time() - 3600,
         "host": "elsewhere", "metrics": {"loss": 0.5}, "history": {"loss": [1.0, 0.5]}}
    d.update(extra)
    return d


def age(path, seconds=3600.0):
    t = time.time() - seconds
    os.utime(path, (t, t))  # an old file: not "racily clean", trusted at once


def write(folder, name, obj, atomic=True, old=True):
    path = os.path.join(str(folder), name + ".json")
    if atomic:
        write_json_atomic(path, obj)
    else:  # in place: same inode, as a writer without rename (or NFS) does
        with open(path, "r+" if os.path.exists(path) else "w") as f:
            f.truncate(0)
            f.write(json.dumps(obj))
    if old:
        age(path)
    return path


def collector(folder, **kw):
    kw.setdefault("gpu", False)
    kw.setdefault("tpu", False)
    return Collector(str(folder), **kw)


def count_reads(c):
    reads = []
    real = c._scanner.reader
    c._scanner.reader = lambda path, limit: reads.append(os.path.basename(path)) or real(path, limit)
    return reads


def test_ended_runs_are_not_read_or_rebuilt_while_unchanged(progress_dir):
    for i in range(20):
        write(progress_dir, "old%02d" % i, doc("old%02d" % i))
    write(progress_dir, "live", doc("live", "RUNNING", updated_at=time.time()), old=False)
    c = collector(progress_dir)
    s1 = c.collect()
    assert [r.key for r in s1.runs] == ["live"] + ["old%02d" % i for i in range(20)]
    reads = count_reads(c)
    s2 = c.collect()
    s3 = c.collect()
    assert "old05.json" not in reads
    assert s2.run("old05") is s3.run("old05")  # kept as it was, not made again
    old = s3.run("old05")
    assert old.data["metrics"] == {"loss": 0.5} and old.data["history"] == {"loss": [1.0, 0.5]}
    assert dict(old.data)["run_name"] == "old05"


@pytest.mark.parametrize("notify", [True, False], ids=["notify", "no-notify"])
def test_a_changed_file_is_picked_up(progress_dir, notify):
    write(progress_dir, "a", doc("a", "RUNNING", updated_at=time.time(), epoch=1), old=False)
    write(progress_dir, "z", doc("z"))
    c = collector(progress_dir, notify=notify)
    c.collect()
    c.collect()  # the watch is made on the second cycle
    assert c._scanner.notifying is notify
    write(progress_dir, "a", doc("a", "RUNNING", updated_at=time.time(), epoch=2), atomic=False, old=False)
    wait_until(lambda: c.collect().run("a").data.get("epoch") == 2)


def test_ended_run_rewritten_with_a_new_run_is_seen_at_once_with_notification(progress_dir):
    write(progress_dir, "r", doc("r"))
    c = collector(progress_dir, notify=True)
    c.collect()
    c.collect()
    assert c._scanner.notifying, "inotify is expected to work on this machine"
    assert c.collect().run("r").status == "FINISHED"
    write(progress_dir, "r", doc("r", "RUNNING", updated_at=time.time(), epoch=7), old=False)
    s = c.collect()  # no sweep yet: the kernel said so
    assert s.run("r").status == "RUNNING" and s.run("r").data["epoch"] == 7
    write(progress_dir, "r", doc("r", "FAILED", error="boom"), atomic=False)
    s = c.collect()
    assert s.run("r").status == "FAILED" and s.run("r").data["error"] == "boom"
    os.unlink(os.path.join(str(progress_dir), "r.json"))
    assert c.collect().runs == ()


@pytest.mark.parametrize("atomic", [True, False], ids=["replaced", "in-place"])
def test_without_notification_the_sweep_picks_up_a_rewritten_ended_run(progress_dir, atomic):
    for i in range(30):
        write(progress_dir, "old%02d" % i, doc("old%02d" % i))
    c = collector(progress_dir, notify=False, sweep_seconds=1.0)
    assert all(r.status == "FINISHED" for r in c.collect().runs)
    reads = count_reads(c)
    c.collect()
    assert reads == []
    write(progress_dir, "old17", doc("old17", "RUNNING", updated_at=time.time(), run_name="new"),
          atomic=atomic, old=False)
    snap = wait_until(lambda: (lambda s: s if s.run("old17").status == "RUNNING" else None)(c.collect()),
                      timeout=60, interval=0.1)
    assert snap.run("old17").run_name == "new"
    assert reads.count("old17.json") >= 1 and set(reads) <= {"old17.json"}  # the others: stat'ed only
    # a new file is seen on the next cycle: the folder is listed every cycle
    write(progress_dir, "brand", doc("brand"))
    assert c.collect().run("brand") is not None


_REMOTE = r"""
import json, os, sys, time
path = sys.argv[1]
d = json.load(open(path))
d.update(status="RUNNING", updated_at=time.time(), epoch=42)
with open(path, "r+") as f:   # in place, as a writer on another machine would
    f.truncate(0)
    f.write(json.dumps(d))
"""


def test_a_write_from_another_mount_namespace_is_picked_up_by_the_sweep(progress_dir, spawn):
    """A writer in its own mount namespace (``unshare -m``) stands in for a
    remote one; with notification off only the sweep can see its write."""
    unshare = "/usr/bin/unshare"
    if not os.path.exists(unshare) or os.geteuid() != 0:
        pytest.skip("needs root and unshare")
    path = write(progress_dir, "far", doc("far"))
    for i in range(10):
        write(progress_dir, "old%d" % i, doc("old%d" % i))
    c = collector(progress_dir, notify=False, sweep_seconds=1.0)
    c.collect()
    c.collect()
    p = spawn([unshare, "-m", "--propagation", "private", sys.executable, "-c", _REMOTE, path])
    assert p.wait(timeout=30) == 0
    snap = wait_until(lambda: (lambda s: s if s.run("far").status == "RUNNING" else None)(c.collect()),
                      timeout=60, interval=0.1)
    assert snap.run("far").data["epoch"] == 42


def test_an_ended_local_run_is_looked_up_until_its_process_is_gone(progress_dir, spawn):
    p = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    import psutil

    ct = psutil.Process(p.pid).create_time()
    write(progress_dir, "saving", doc("saving", host=None, pid=p.pid, pid_create_time=ct))
    c = collector(progress_dir)
    s = c.collect()
    assert s.run("saving").alive is True and len(s.run("saving").processes) == 1
    p.kill()
    p.wait()
    s = c.collect()
    assert s.run("saving").alive is False and s.run("saving").processes == ()
    assert c.collect().run("saving") is s.run("saving")  # settled: kept as it is


def test_archived_data_reads_like_the_parsed_file():
    raw = json.dumps(doc("x", metrics={"loss": 1.5})).encode()
    a = scan_mod.ArchivedData(raw)
    assert a["metrics"] == {"loss": 1.5} and a.get("nope", 3) == 3 and "history" in a
    assert dict(a) == json.loads(raw) and a == json.loads(raw)
    for _ in range(scan_mod.PARSED_CACHE + 5):  # pushed out of the cache: parsed again
        scan_mod.ArchivedData(raw)["run_name"]
    assert a["run_name"] == "x"


def test_the_parsed_cache_keeps_the_most_recently_used():
    from ttop.collect import archive

    raw = json.dumps(doc("x")).encode()
    kept = scan_mod.ArchivedData(raw)
    kept["run_name"]
    parsed = archive._PARSED[id(kept)][1]
    others = []
    for _ in range(scan_mod.PARSED_CACHE + 5):
        other = scan_mod.ArchivedData(raw)
        other["run_name"]
        others.append(other)  # (alive: ids stay unique)
        kept["run_name"]  # looked at again after each: never the least recent
    assert len(archive._PARSED) == scan_mod.PARSED_CACHE
    assert id(kept) in archive._PARSED and id(others[-1]) in archive._PARSED
    # never dropped, so never parsed again (a cache dropping the first kept,
    # hit or not, dropped it and parsed it anew at its next look)
    assert archive._PARSED[id(kept)][1] is parsed
    assert not any(id(o) in archive._PARSED for o in others[:6])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fifty_thousand_files_show_live_runs_before_the_archive_is_read(tmp_path, ttop_term, spawn):  # noqa: F811
    folder = tmp_path / "p"
    folder.mkdir()
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from _runs import fill_archive
    finally:
        sys.path.pop(0)
    fill_archive(str(folder), 50000)
    spawn([sys.executable, WRITER, "--folder", str(folder), "--name", "live00", "--interval", "0.5"])
    wait_until(lambda: (folder / "live00.json").exists(), timeout=60)
    term = ttop_term(str(folder), interval="2")
    # the live run (newest file) is on screen while the archive is still being read
    term.wait_for(lambda t: "live00" in t.text and "reading the folder" in t.text, timeout=180)


def test_json_is_written_run_by_run_as_the_same_text(progress_dir):
    import io

    from ttop.sinks.jsonout import dumps_snapshot, iter_json, write_json

    for i in range(5):
        write(progress_dir, "r%d" % i, doc("r%d" % i, metrics={"loss": float("nan"), "name": "caf\u00e9\n"}))
    snap = collector(progress_dir).collect()
    out = io.StringIO()
    write_json(snap, out)
    assert out.getvalue() == dumps_snapshot(snap) + "\n"
    assert len(list(iter_json(snap))) == 2 + 5  # head, one piece per run, tail
    assert json.loads(out.getvalue())["runs"][2]["metrics"]["name"] == "caf\u00e9\n"
    empty = collector(progress_dir / "nowhere").collect()
    out = io.StringIO()
    write_json(empty, out)
    assert out.getvalue() == dumps_snapshot(empty) + "\n"


def test_first_look_reads_only_the_files_written_lately(progress_dir, monkeypatch):
    """Without an archive index, the collector thread's first cycle reads the
    files written within the last minute (the live runs) and publishes them;
    the ended runs' files are read in the cycles after."""
    monkeypatch.setenv("TTOP_ARCHIVE_INDEX", "0")
    for i in range(150):
        write(progress_dir, "old%03d" % i, doc("old%03d" % i))
    for name in ("live1", "live2"):
        write(progress_dir, name, doc(name, "RUNNING", updated_at=time.time()), old=False)
    c = collector(progress_dir)
    reads = count_reads(c)
    s = c._collect_some()
    assert sorted(set(reads)) == ["live1.json", "live2.json"]
    assert sorted(r.key for r in s.runs) == ["live1", "live2"] and c._pending == 150
    for _ in range(20):
        if not c._pending:
            break
        s = c._collect_some()
    assert len(s.runs) == 152 and s.run("old042").status == "FINISHED"
