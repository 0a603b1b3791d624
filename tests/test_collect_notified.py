"""Files that change notification reports written: opened and read at once,
without a ``stat`` of the name first (the ``fstat`` of the descriptor read
is the stat); whatever that open finds unusual is looked at as before, so
the rows and reasons are a fresh collector's."""
from __future__ import annotations

import os
import time

import pytest

from ttop.collect import Collector
from ttop.collect import scan as scan_mod
from ttop.progress import MAX_PROGRESS_BYTES, write_json_atomic


def doc(name, status="RUNNING", **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": time.time(),
         "host": "node-7", "pid": 4242, "heartbeat_interval": 1.0, "batch": 1,
         "metrics": {"loss": 1.0}, "history": {"loss": [3.0, 2.0, 1.0]},
         "resources": {"cpu_percent": 50.0, "rss_bytes": 1 << 20, "sampled_at": time.time()}}
    d.update(extra)
    return d


def write(folder, name, obj):
    write_json_atomic(os.path.join(str(folder), name + ".json"), obj)


class CountingOs:
    """``os`` for scan.py, counting its ``stat`` calls by name."""

    def __init__(self):
        self.stats = []

    def __getattr__(self, name):
        return getattr(os, name)

    def stat(self, name, *a, **kw):
        self.stats.append(name)
        return os.stat(name, *a, **kw)


def watched(folder, monkeypatch):
    c = Collector(str(folder), interval=1.0, gpu=False, tpu=False, notify=True, archive=False)
    c.collect()
    c.collect()  # the watch is made by the second scan
    if not c._scanner.notifying:
        pytest.skip("no change notification here")
    counting = CountingOs()
    monkeypatch.setattr(scan_mod, "os", counting)
    return c, counting


def rows(snap):
    """Per file: what the row says (the heartbeat's age aside), or why it is skipped."""
    out = {s.name: ("skipped", s.reason) for s in snap.skipped}
    for r in snap.runs:
        out[os.path.basename(r.path)] = (r.status, r.reported_status, dict(r.data), r.dropped_keys, r.host,
                                         r.local, r.pid, r.resources, r.stale, r.owner_uid, r.mtime, r.file_error)
    return out


def test_written_files_are_read_without_a_stat_and_give_a_fresh_collector_s_rows(progress_dir, monkeypatch):
    for i in range(5):
        write(progress_dir, "r%d" % i, doc("r%d" % i))
    write(progress_dir, "ended", doc("ended"))
    c, counting = watched(progress_dir, monkeypatch)
    time.sleep(scan_mod.RACY_SECONDS * 2)
    for i in range(5):  # the next version: other numbers, another resources sample
        write(progress_dir, "r%d" % i, doc("r%d" % i, batch=2 + i, metrics={"loss": 0.5 / (i + 1)},
                                          resources={"cpu_percent": 75.0, "num_procs": 3}))
    write(progress_dir, "ended", doc("ended", "FINISHED"))
    write(progress_dir, "new", doc("new", rate="fast"))  # a wrong-typed key: dropped
    time.sleep(scan_mod.RACY_SECONDS * 2)
    reads = c._scanner.total_reads
    snap = c.collect()
    assert c._scanner.total_reads - reads == 7
    # the five live files and the ended one were reported written: read with no stat of the name
    assert sorted(counting.stats) == ["new.json"]  # (a new name is dated by a stat before its first read)
    monkeypatch.setattr(scan_mod, "os", os)
    fresh = Collector(str(progress_dir), interval=1.0, gpu=False, tpu=False, notify=False).collect()
    assert rows(snap) == rows(fresh)
    assert snap.run("r3").data["batch"] == 5 and snap.run("r3").resources.num_procs == 3
    assert snap.run("ended").status == "FINISHED" and snap.run("new").dropped_keys == ("rate",)


def test_a_written_name_that_is_no_regular_file_says_why_as_before(progress_dir, monkeypatch, tmp_path):
    names = ("dir", "fifo", "big", "link", "broken", "gone", "bad")
    for n in names:
        write(progress_dir, n, doc(n))
    other = tmp_path / "elsewhere.json"
    write_json_atomic(str(other), doc("link", batch=99))
    c, counting = watched(progress_dir, monkeypatch)
    p = lambda n: str(progress_dir / (n + ".json"))  # noqa: E731
    os.unlink(p("dir"))
    os.mkdir(p("dir"))
    os.unlink(p("fifo"))
    os.mkfifo(p("fifo"))
    with open(p("big"), "r+b") as f:
        f.truncate(MAX_PROGRESS_BYTES + 10)
    os.unlink(p("link"))
    os.symlink(str(other), p("link"))
    os.unlink(p("broken"))
    os.symlink(str(tmp_path / "nowhere.json"), p("broken"))
    os.unlink(p("gone"))
    with open(p("bad"), "w") as f:
        f.write("{nope")
    time.sleep(scan_mod.RACY_SECONDS * 2)
    t0 = time.monotonic()
    snap = c.collect()
    assert time.monotonic() - t0 < 30  # (the FIFO did not hang the scan)
    why = {os.path.basename(r.path): r.file_error for r in snap.runs if r.file_error}
    assert why == {"dir.json": "is a directory", "fifo.json": "not a regular file",
                   "big.json": "file larger than %d bytes" % MAX_PROGRESS_BYTES,
                   "broken.json": "broken symbolic link", "bad.json": why["bad.json"]}
    assert why["bad.json"].startswith("invalid JSON")
    assert snap.run("link").data["batch"] == 99 and not snap.run("link").stale  # a link of one's own: followed
    assert "gone" not in {r.key for r in snap.runs}
    # the unusual ones were looked at by a stat, as without notification
    assert {"dir.json", "fifo.json", "big.json", "broken.json"} <= set(counting.stats)
    assert "bad.json" not in counting.stats and "link.json" not in counting.stats
    monkeypatch.setattr(scan_mod, "os", os)
    fresh = Collector(str(progress_dir), interval=1.0, gpu=False, tpu=False, notify=False).collect()
    assert {s.name: s.reason for s in fresh.skipped} == {k: v for k, v in why.items()}
