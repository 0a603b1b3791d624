"""The archive index: a new collector takes the ended runs it saw before
from the user's cache folder instead of reading them, and reads every file
that is not exactly the one indexed."""
from __future__ import annotations

import glob
import json
import os
import stat
import time

import pytest

from ttop.collect import Collector
from ttop.collect import archive as archive_mod
from ttop.progress import write_json_atomic


def doc(name, status="FINISHED", **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": time.time() - 3600,
         "host": "elsewhere", "metrics": {"loss": 0.25, "acc": float("nan")},
         "history": {"loss": [1.0, 0.5, 0.25]}, "epoch": 3, "bogus_epoch_type": 1}
    d.update(extra)
    return d


def write(folder, name, obj, old=True):
    path = os.path.join(str(folder), name + ".json")
    write_json_atomic(path, obj)
    if old:
        t = time.time() - 3600
        os.utime(path, (t, t))
    return path


def collector(folder, **kw):
    kw.setdefault("gpu", False)
    kw.setdefault("tpu", False)
    return Collector(str(folder), **kw)


def count_reads(c):
    """The names of the files ``c`` reads from now on (each once: a file
    written a moment ago is read once more, git's racily clean rule)."""
    reads = []
    real = c._scanner.reader

    def reader(path, limit):
        name = os.path.basename(path)
        if name not in reads:
            reads.append(name)
        return real(path, limit)

    c._scanner.reader = reader
    return reads


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    monkeypatch.delenv("TTOP_ARCHIVE_INDEX", raising=False)
    return d


def indexed_folder(progress_dir, n=12):
    for i in range(n):
        write(progress_dir, "old%02d" % i, doc("old%02d" % i, epoch="x" if i == 0 else 3))
    write(progress_dir, "live", doc("live", "RUNNING", updated_at=time.time()), old=False)
    c = collector(progress_dir)
    first = c.collect()
    c.stop()  # saves the index
    return first


def index_files(cache):
    return glob.glob(os.path.join(str(cache), "ttop", "archive-*.idx"))


def view(run):
    # the live run is read through count_reads' reader, which knows no owner
    return (run.key, run.status, run.owner_uid if run.key != "live" else None, run.dropped_keys, dict(run.data))


def same(a, b):
    return repr(a) == repr(b)  # NaN equal to NaN


def test_a_new_collector_takes_ended_runs_from_the_index_without_reading_them(progress_dir, cache):
    first = indexed_folder(progress_dir)
    files = index_files(cache)
    assert len(files) == 1 and stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    assert sorted(os.listdir(str(progress_dir))) == sorted(["live.json"] + ["old%02d.json" % i for i in range(12)])
    c = collector(progress_dir)
    reads = count_reads(c)
    s = c.collect()
    assert reads == ["live.json"]  # the ended runs came from the index
    assert c._scanner.total_indexed == 12
    assert same([view(r) for r in s.runs], [view(r) for r in first.runs])
    assert s.run("old00").dropped_keys == ("epoch",)
    assert s.run("old03").data["history"] == {"loss": [1.0, 0.5, 0.25]}
    # --once (one cycle, nothing kept compressed) takes them from the index too
    c1 = collector(progress_dir, single=True)
    reads = count_reads(c1)
    assert same([view(r) for r in c1.collect().runs], [view(r) for r in first.runs]) and reads == ["live.json"]


def test_files_changed_since_the_index_was_written_are_read(progress_dir, cache):
    indexed_folder(progress_dir)
    write(progress_dir, "old03", doc("old03", "RUNNING", updated_at=time.time()), old=False)  # a new run
    path = os.path.join(str(progress_dir), "old04.json")
    ino = os.stat(path).st_ino
    with open(path, "r+") as f:  # in place: the same inode
        d = json.loads(f.read())
        d["epoch"] = 4
        f.seek(0)
        f.truncate(0)
        f.write(json.dumps(d))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9 + 1))  # even an odd old time
    assert os.stat(path).st_ino == ino
    os.unlink(os.path.join(str(progress_dir), "old05.json"))
    c = collector(progress_dir)
    reads = count_reads(c)
    s = c.collect()
    assert sorted(reads) == ["live.json", "old03.json", "old04.json"]
    assert s.run("old03").status == "RUNNING" and s.run("old04").data["epoch"] == 4 and s.run("old05") is None


def test_a_link_to_an_indexed_file_is_read_as_a_link(progress_dir, cache, tmp_path):
    """The name now a symbolic link to the very file indexed (same inode,
    size, time): read as usual, so the link's rules apply."""
    indexed_folder(progress_dir)
    keep = tmp_path / "keep"
    keep.mkdir()
    os.rename(os.path.join(str(progress_dir), "old06.json"), str(keep / "old06.json"))
    os.symlink(str(keep / "old06.json"), os.path.join(str(progress_dir), "old06.json"))
    c = collector(progress_dir)
    reads = count_reads(c)
    s = c.collect()
    assert "old06.json" in reads and s.run("old06").status == "FINISHED"


@pytest.mark.parametrize("spoil", ["owner", "mode", "head", "other-folder", "bytes", "truncated"])
def test_an_index_that_cannot_be_trusted_is_not_used(progress_dir, cache, tmp_path, spoil):
    """Not the user's own file, or writable by others, or a damaged head, or
    another folder now under that path: not used at all. Damaged or missing
    bytes of entries: those files are read."""
    first = indexed_folder(progress_dir)
    (path,) = index_files(cache)
    size = os.path.getsize(path)
    if spoil == "owner":
        os.chown(path, 65534, 65534)
    elif spoil == "mode":
        os.chmod(path, 0o622)
    elif spoil in ("head", "bytes"):
        with open(path, "r+b") as f:
            f.seek(40 if spoil == "head" else size - 100)
            f.write(b"\x00" * 10)
    elif spoil == "truncated":
        os.truncate(path, size - 100)
    else:  # the folder replaced by another one of the same name
        os.rename(str(progress_dir), str(tmp_path / "moved"))
        os.mkdir(str(progress_dir))
        for name in os.listdir(str(tmp_path / "moved")):
            os.link(str(tmp_path / "moved" / name), os.path.join(str(progress_dir), name))
    c = collector(progress_dir)
    reads = count_reads(c)
    s = c.collect()
    if spoil in ("bytes", "truncated"):
        assert 2 <= len(reads) < 13 and c._scanner.total_indexed == 13 - len(reads)
    else:
        assert len(reads) == 13 and c._scanner.total_indexed == 0
    assert same([(r.key, r.status, dict(r.data)) for r in s.runs], [(r.key, r.status, dict(r.data)) for r in first.runs])


def test_no_index_when_switched_off(progress_dir, cache, monkeypatch):
    monkeypatch.setenv("TTOP_ARCHIVE_INDEX", "0")
    indexed_folder(progress_dir)
    assert index_files(cache) == []
    monkeypatch.delenv("TTOP_ARCHIVE_INDEX")
    c = collector(progress_dir)
    reads = count_reads(c)
    c.collect()
    assert len(reads) == 13


def test_an_unwritable_cache_folder_means_no_index(progress_dir, cache):
    cache.mkdir()
    (cache / "ttop").write_text("not a folder")
    first = indexed_folder(progress_dir)
    c = collector(progress_dir)
    reads = count_reads(c)
    runs = c.collect().runs
    assert same([dict(r.data) for r in runs], [dict(r.data) for r in first.runs]) and len(reads) == 13


def test_packed_data_decodes_to_the_parsed_file():
    d = doc("x")
    assert same(archive_mod.unpack(archive_mod.pack(d)), d)
    a = archive_mod.ArchivedData.from_blob(archive_mod.pack(d))
    assert a["metrics"]["loss"] == 0.25 and a.get("nope") is None and same(dict(a), d)


def test_the_first_screen_has_the_runs_the_index_does_not_know_then_the_archive_fills_in(progress_dir, cache):
    indexed_folder(progress_dir)
    write(progress_dir, "fresh", doc("fresh", "RUNNING", updated_at=time.time()), old=False)
    c = collector(progress_dir)
    s = c._collect_some()  # the collector thread's first cycle
    assert sorted(r.key for r in s.runs) == ["fresh", "live"]
    assert any("reading the folder" in n for n in s.notices)
    for _ in range(10):
        if not c._pending:
            break
        s = c._collect_some()
    assert len(s.runs) == 14 and c._scanner.total_indexed == 12 and s.run("old07").status == "FINISHED"


def test_an_indexed_name_written_again_is_looked_at_before_its_turn(progress_dir, cache, monkeypatch):
    """An ended run rewritten by a new run under its name while ttop was not
    running: the index still lists the name, so it waits its turn behind the
    other files, unless it is written again, which change notification
    reports: then it is looked at at once."""
    from ttop.collect import scan as scan_mod
    indexed_folder(progress_dir)
    monkeypatch.setattr(scan_mod, "MIN_READS", 1)
    monkeypatch.setattr(scan_mod, "READS_PER_SECOND", 1)  # one file per cycle of the thread
    write(progress_dir, "old02", doc("old02", "RUNNING", updated_at=time.time()), old=False)
    c = collector(progress_dir, notify=True)
    c._collect_some()
    s = c._collect_some()  # the watch is made here
    if not c._scanner.notifying:
        pytest.skip("no change notification here")
    assert "old02.json" in c._scanner._idx and s.run("old02") is None  # not taken yet (old11, old10, ... first)
    write(progress_dir, "old02", doc("old02", "RUNNING", updated_at=time.time(), epoch=5), old=False)
    s = c._collect_some()
    assert s.run("old02").status == "RUNNING" and s.run("old02").data["epoch"] == 5
    assert c._pending > 0  # the rest of the archive is still filling in
