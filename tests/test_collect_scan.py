"""Folder scan: bad files skipped with reasons, the stat cache, runs whose file
turns bad, files coming and going, a missing folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from ttop.collect import Collector
from ttop.collect import scan as scan_mod
from ttop.progress import MAX_PROGRESS_BYTES, write_json_atomic


def doc(name, status="RUNNING", updated_at=None, **extra):
    d = {
        "format": "ttop.progress/1",
        "run_name": name,
        "status": status,
        "updated_at": time.time() if updated_at is None else updated_at,
    }
    d.update(extra)
    return d


def write(folder, name, obj):
    write_json_atomic(os.path.join(str(folder), name + ".json"), obj)


def make_collector(folder, **kw):
    kw.setdefault("gpu", False)
    kw.setdefault("tpu", False)
    return Collector(str(folder), **kw)


def skipped_map(snap):
    return {s.name: s.reason for s in snap.skipped}


def test_good_files_become_runs_sorted_and_others_ignored(progress_dir):
    write(progress_dir, "b", doc("b", "FINISHED"))
    write(progress_dir, "a", doc("a", "FAILED", error="boom"))
    (progress_dir / "control_a.json").write_text('{"format": "ttop.control/1", "seq": 1, "variables": {}}')
    (progress_dir / ".a.json.x1.tmp").write_text("{partial")
    (progress_dir / "a.stdout.log").write_text("hello\n")
    (progress_dir / "notes.txt").write_text("x")
    snap = make_collector(progress_dir).collect()
    assert [r.key for r in snap.runs] == ["a", "b"]
    assert snap.skipped == ()
    assert snap.folder_error is None
    a = snap.run("a")
    assert a.status == "FAILED" and a.reported_status == "FAILED" and not a.status_inferred
    assert a.data["error"] == "boom"
    assert a.path == str(progress_dir / "a.json")


def test_each_kind_of_bad_file_is_skipped_with_its_reason(progress_dir):
    d = progress_dir
    write(d, "good", doc("good"))
    (d / "empty.json").write_bytes(b"")
    (d / "blank.json").write_bytes(b"  \n ")
    (d / "partial.json").write_bytes(json.dumps(doc("partial")).encode()[:30])
    (d / "latin1.json").write_bytes(b'{"format": "ttop.progress/1", "run_name": "caf\xe9"}')
    (d / "array.json").write_text("[1, 2, 3]")
    (d / "wrongtype.json").write_text(json.dumps(doc("w", updated_at="yesterday")))
    (d / "badstatus.json").write_text(json.dumps(doc("s", status="PAUSED")))
    (d / "noformat.json").write_text(json.dumps({"run_name": "x", "status": "RUNNING", "updated_at": 1}))
    (d / "deep.json").write_text("[" * 100000 + "]" * 100000)
    with open(d / "huge.json", "wb") as f:
        f.truncate(MAX_PROGRESS_BYTES + 1)
    (d / "adir.json").mkdir()
    os.mkfifo(str(d / "fifo.json"))
    os.symlink(str(d / "nowhere"), str(d / "dangling.json"))

    snap = make_collector(d).collect()  # a FIFO must not hang the scan
    reasons = skipped_map(snap)
    assert [r.key for r in snap.runs] == ["good"]
    assert reasons["empty.json"] == "empty file"
    assert reasons["blank.json"] == "empty file"
    assert reasons["partial.json"].startswith("invalid JSON")
    assert reasons["latin1.json"].startswith("not UTF-8")
    assert reasons["array.json"] == "not a JSON object"
    assert reasons["wrongtype.json"] == "updated_at missing or not a number"
    assert reasons["badstatus.json"].startswith("status is PAUSED")
    assert reasons["noformat.json"].startswith("format is None")
    assert reasons["deep.json"] == "JSON nested too deeply"
    assert reasons["huge.json"] == "file larger than %d bytes" % MAX_PROGRESS_BYTES
    assert reasons["adir.json"] == "is a directory"
    assert reasons["fifo.json"] == "not a regular file"
    assert reasons["dangling.json"] == "broken symbolic link"
    assert len(reasons) == 13


def test_wrong_typed_optional_keys_are_dropped_not_fatal(progress_dir):
    write(progress_dir, "r", doc("r", epoch="three", pid="123", metrics={"loss": 0.5}))
    snap = make_collector(progress_dir).collect()
    r = snap.run("r")
    assert set(r.dropped_keys) == {"epoch", "pid"}
    assert "epoch" not in r.data and r.data["metrics"] == {"loss": 0.5}
    assert r.pid is None


def test_integers_beyond_the_float_range_never_hide_the_other_runs(progress_dir):
    import socket

    huge = "1" + "0" * 400  # valid JSON, too big for a float
    now = time.time()
    head = '{"format":"ttop.progress/1","status":"RUNNING","host":"%s","pid":%d,' % (socket.gethostname(), os.getpid())
    for name, extra in [("ct", '"pid_create_time":%s' % huge), ("hb", '"heartbeat_interval":%s' % huge),
                        ("res", '"resources":{"cpu_percent":%s,"rss_bytes":%s,"sampled_at":%s}' % (huge, huge, huge))]:
        (progress_dir / (name + ".json")).write_text(head + '"run_name":"%s","updated_at":%f,%s}' % (name, now, extra))
    (progress_dir / "upd.json").write_text(head + '"run_name":"upd","updated_at":%s}' % huge)
    write(progress_dir, "good", doc("good", status="FINISHED"))
    snap = make_collector(progress_dir).collect()
    assert [r.key for r in snap.runs] == ["ct", "good", "hb", "res"]
    assert snap.run("ct").dropped_keys == ("pid_create_time",) and snap.run("hb").dropped_keys == ("heartbeat_interval",)
    assert snap.run("res").resources.cpu_percent is None and snap.run("res").resources.rss_bytes is None
    assert skipped_map(snap) == {"upd.json": "updated_at missing or not a number"}


def test_huge_file_is_not_read(progress_dir, monkeypatch):
    with open(progress_dir / "huge.json", "wb") as f:
        f.truncate(MAX_PROGRESS_BYTES + 10)
    c = make_collector(progress_dir)
    reads = []
    c._scanner.reader = lambda path, limit: reads.append(path) or scan_mod.read_progress_bytes(path, limit)
    snap = c.collect()
    assert skipped_map(snap)["huge.json"].startswith("file larger than")
    assert reads == []


def test_file_growing_past_the_cap_between_stat_and_read(tmp_path):
    p = tmp_path / "g.json"
    p.write_bytes(b"{" + b" " * 200 + b"}")
    with pytest.raises(scan_mod.ProgressError, match="larger than 100 bytes"):
        scan_mod.read_progress_bytes(str(p), 100)


def test_unchanged_files_are_not_reread(progress_dir):
    old = time.time() - 60
    for i in range(20):
        write(progress_dir, "r%02d" % i, doc("r%02d" % i, updated_at=old))
        os.utime(progress_dir / ("r%02d.json" % i), (old, old))
    (progress_dir / "bad.json").write_text("{nope")
    os.utime(progress_dir / "bad.json", (old, old))
    c = make_collector(progress_dir)
    reads = []
    real = c._scanner.reader
    c._scanner.reader = lambda path, limit: reads.append(os.path.basename(path)) or real(path, limit)
    s1 = c.collect()
    assert len(reads) == 21 and len(s1.runs) == 20 and len(s1.skipped) == 1
    reads.clear()
    s2 = c.collect()
    s3 = c.collect()
    assert reads == []  # neither good nor bad files are read again
    assert len(s3.runs) == 20 and skipped_map(s3) == skipped_map(s1)
    assert s2.run("r00").data is s1.run("r00").data
    # one file rewritten: only that one is read
    write(progress_dir, "r07", doc("r07", "FINISHED", updated_at=old))
    s4 = c.collect()
    assert reads == ["r07.json"]
    assert s4.run("r07").status == "FINISHED"


def test_same_size_and_mtime_keeps_cached_data(progress_dir):
    """Proof that the cache is trusted: same inode, size and mtime -> old data."""
    p = progress_dir / "r.json"
    old = time.time() - 60
    p.write_text(json.dumps(doc("r", "FAILED", updated_at=old)))
    os.utime(p, (old, old))
    c = make_collector(progress_dir)
    assert c.collect().run("r").reported_status == "FAILED"
    text = p.read_text().replace('"FAILED"', '"KILLED"')
    assert len(text) == len(p.read_text())
    with open(p, "r+") as f:  # in place: same inode
        f.write(text)
    os.utime(p, (old, old))
    assert c.collect().run("r").reported_status == "FAILED"
    os.utime(p, (old + 1, old + 1))  # any mtime change invalidates
    assert c.collect().run("r").reported_status == "KILLED"


def test_racily_fresh_file_is_read_again_once(progress_dir):
    """A file written in the same tick as it was read is re-read next cycle."""
    write(progress_dir, "r", doc("r"))
    c = make_collector(progress_dir)
    reads = []
    real = c._scanner.reader
    c._scanner.reader = lambda path, limit: reads.append(path) or real(path, limit)
    c.collect()
    assert len(reads) == 1
    time.sleep(scan_mod.RACY_SECONDS * 2)
    c.collect()
    c.collect()
    assert len(reads) in (1, 2)  # at most one extra read, then trusted
    n = len(reads)
    c.collect()
    assert len(reads) == n


def test_run_whose_file_turns_bad_keeps_last_good_data(progress_dir):
    write(progress_dir, "r", doc("r", "RUNNING", epoch=3, host="elsewhere"))
    c = make_collector(progress_dir)
    s1 = c.collect()
    assert s1.run("r").data["epoch"] == 3 and not s1.run("r").stale
    (progress_dir / "r.json").write_text('{"format": "ttop.progress/1", "run_na')
    s2 = c.collect()
    r = s2.run("r")
    assert r is not None and r.data["epoch"] == 3
    assert r.stale and r.file_error.startswith("invalid JSON")
    assert "last good" in r.stale_reason
    assert s2.skipped == ()  # shown as a stale run, not as a skipped file
    write(progress_dir, "r", doc("r", "RUNNING", epoch=4, host="elsewhere"))
    r = c.collect().run("r")
    assert r.data["epoch"] == 4 and r.file_error is None and not r.stale


def test_files_appear_disappear_and_are_replaced(progress_dir):
    c = make_collector(progress_dir)
    assert c.collect().runs == ()
    write(progress_dir, "a", doc("a", "RUNNING", host="h2"))
    write(progress_dir, "b", doc("b", "FINISHED"))
    assert [r.key for r in c.collect().runs] == ["a", "b"]
    os.unlink(progress_dir / "a.json")
    write(progress_dir, "b", doc("b", "FAILED"))  # replaced (new inode)
    write(progress_dir, "c", doc("c", "CANCELED"))
    s = c.collect()
    assert [(r.key, r.status) for r in s.runs] == [("b", "FAILED"), ("c", "CANCELED")]
    # a file that disappears and comes back bad has no "last good" data
    os.unlink(progress_dir / "c.json")
    c.collect()
    (progress_dir / "c.json").write_text("garbage")
    s = c.collect()
    assert s.run("c") is None and skipped_map(s)["c.json"].startswith("invalid JSON")


def test_missing_folder_reported_and_picked_up_later(tmp_path):
    folder = tmp_path / "later"
    c = make_collector(folder)
    s = c.collect()
    assert s.folder_error == "folder does not exist: %s" % folder
    assert s.runs == ()
    folder.mkdir()
    write(folder, "a", doc("a"))
    s = c.collect()
    assert s.folder_error is None and [r.key for r in s.runs] == ["a"]
    (tmp_path / "file").write_text("x")
    s = make_collector(tmp_path / "file").collect()
    assert s.folder_error.startswith("not a folder")


_UNPRIVILEGED = r"""
import os, sys, json
sys.path.insert(0, sys.argv[2])
from ttop.collect.collector import Collector   # import everything first: the
from ttop.collect import procs, cost, health    # interpreter may be root-only
c = Collector(sys.argv[1], gpu=False, tpu=False)  # (a full cycle's modules, psutil)
os.setgid(65534); os.setuid(65534)
s = c.collect()
print(json.dumps({"runs": [r.key for r in s.runs],
                  "skipped": {k.name: k.reason for k in s.skipped},
                  "folder_error": s.folder_error}))
"""


def test_unreadable_file_and_folder_as_unprivileged_user(spawn):
    """chmod 000 means nothing to root: run the collector as nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    top = tempfile.mkdtemp(prefix="ttop-perm-")
    try:
        os.chmod(top, 0o755)
        folder = os.path.join(top, "p")
        os.mkdir(folder)
        os.chmod(folder, 0o755)
        write(folder, "ok", doc("ok"))
        write(folder, "secret", doc("secret"))
        for n in ("ok", "secret"):
            os.chmod(os.path.join(folder, n + ".json"), 0o644)
        os.chmod(os.path.join(folder, "secret.json"), 0o000)
        p = spawn([sys.executable, "-c", _UNPRIVILEGED, folder, root], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        got = json.loads(out)
        assert got["runs"] == ["ok"]
        assert got["skipped"] == {"secret.json": "permission denied"}
        os.chmod(folder, 0o000)
        p = spawn([sys.executable, "-c", _UNPRIVILEGED, folder, root], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
        got = json.loads(out)
        assert got["folder_error"] == "cannot read folder %s: permission denied" % folder
    finally:
        os.chmod(os.path.join(top, "p"), 0o755)
        subprocess.run(["rm", "-rf", top], check=False)


def test_a_file_rewritten_within_a_whole_seconds_stamp_is_read_again(progress_dir):
    """A file system that keeps whole seconds (Lustre, ext3, FAT) gives a
    file rewritten in place within the same second its old size and its old
    modification time. A file read while its second may still be open is
    read again until it is over: the ended run's last word is not missed for
    good. (The stamp is set here as such a file system sets it.)"""
    stamp = int(time.time()) - 100
    path = os.path.join(str(progress_dir), "r.json")
    write_json_atomic(path, doc("r", "FINISHED", updated_at=stamp))
    os.utime(path, ns=(stamp * 10**9, stamp * 10**9))
    c = make_collector(progress_dir)
    now = [stamp + 0.5]  # the scanner's wall clock: half a second into the file's second
    c._scanner.clock = lambda: now[0]
    assert c.collect().run("r").status == "FINISHED"
    with open(path, "r+b") as f:  # the writer's last word, in place: same size, same second
        old = f.read()
        new = old.replace(b'"FINISHED"', b'"CANCELED"')
        assert len(new) == len(old) and new != old
        f.seek(0)
        f.write(new)
    os.utime(path, ns=(stamp * 10**9, stamp * 10**9))
    now[0] = stamp + 0.9
    assert c.collect().run("r").status == "CANCELED"
    now[0] = stamp + 5
    assert c.collect().run("r").status == "CANCELED"
    assert make_collector(progress_dir).collect().run("r").status == "CANCELED"
