"""``--once`` keeps the rows of ended runs across starts (ttop/sinks/oncecache.py):
a row taken from there is the row worked out from the file, a file that is
not exactly the one kept is read again, and a kept-rows file that cannot be
trusted is not used, with nothing lost."""
from __future__ import annotations

import glob
import io
import json
import marshal
import os
import socket
import time
import zlib

import pytest

from ttop import cli
from ttop.collect.scan import FolderScanner
from ttop.collect.snapshot import HostInfo, RankSnapshot, RunResources, RunSnapshot, Snapshot
from ttop.progress import write_json_atomic
from ttop.record import replace
from ttop.sinks.once import render_once
from ttop.view.state import ViewState
from ttop.view.table import render_table, visible_rows

HOST = socket.gethostname()


def doc(name, status="FINISHED", **extra):
    now = time.time()
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": now - 7200,
         "started_at": now - 10800, "ended_at": now - 7200, "host": HOST, "pid": 4000001,
         "pid_create_time": now - 10800, "phase": "train", "epoch": 3, "total_epochs": 3,
         "train_batch": 500, "train_total_batches": 500,
         "times": {"run": {"elapsed": 3725, "remaining": 0, "total": 3725},
                   "epoch": {"elapsed": 1200, "remaining": 0, "total": 1200},
                   "validation": {"last": 61, "elapsed": 61, "remaining": 0, "total": 61}},
         "metrics": {"loss": 0.25, "acc": 0.9}, "history": {"loss": [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25]},
         "resources": {"cpu_percent": 99.0, "rss_bytes": 1 << 30, "num_procs": 2, "num_threads": 9}}
    d.update(extra)
    return d


def write(folder, name, obj, age=3600.0):
    path = os.path.join(str(folder), name + ".json")
    write_json_atomic(path, obj)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def fill(folder):
    """Ended runs of every kind the table shows differently, and a run
    inferred KILLED (not ended by its file: never kept)."""
    write(folder, "a-done", doc("a-done", links={"wandb": "https://wandb.ai/lab/p/runs/x1"}))
    write(folder, "b-failed", doc("b-failed", "FAILED", error="ValueError: x",
                                  metrics={"loss": float("nan"), "val_loss": 1.5, "lr": 0.1}))
    write(folder, "c-canceled", doc("c-canceled", "CANCELED", phase="validation", val_batch=7, val_total_batches=50))
    write(folder, "d-killed", doc("d-killed", "KILLED", host="node-7", epoch="bad"))
    write(folder, "e-wide", doc("e-wide", run_name="\u5b66\u7fd2-\u0e17\u0e14\u0e25\u0e2d\u0e07-a-very-long-run-name-indeed",
                                metrics={"train/loss": 12345.678, "acc": "Infinity"}))
    write(folder, "f-remote", doc("f-remote", host="gpu-box", pid=77, total_epochs=None, train_total_batches=None))
    write(folder, "g-dead", doc("g-dead", "RUNNING", ended_at=None, pid=4000003))  # KILLED*, inferred


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))
    monkeypatch.delenv("TTOP_ARCHIVE_INDEX", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return d


@pytest.fixture
def visited(monkeypatch):
    """The names the scanner looks at (reads, or takes from the archive index)."""
    names = []
    real = FolderScanner._visit

    def visit(self, dfd, name, active, out):
        names.append(name)
        return real(self, dfd, name, active, out)

    monkeypatch.setattr(FolderScanner, "_visit", visit)
    return names


def once(folder, monkeypatch, *extra, columns=450, kept=True, color=False):
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("TTOP_ARCHIVE_INDEX", "1" if kept else "0")
    monkeypatch.setattr(cli, "use_color", lambda stream: color)
    args = cli.parse_args([str(folder), "--once"] + list(extra))
    cli.check_folders(args, io.StringIO())
    out = io.StringIO()
    assert cli.run_once(args, out) == 0
    return out.getvalue().splitlines()


def table(lines):
    """The lines after the header (the host line's CPU and memory move)."""
    i = next(i for i, line in enumerate(lines) if "Run Name" in line)
    return lines[i:]


def content(path):
    with open(path, "rb") as f:
        return f.read()


def kept_files(cache):
    return glob.glob(os.path.join(str(cache), "ttop", "once-*.idx"))


@pytest.mark.parametrize("extra,color", [((), False), (("--ascii",), False), ((), True)])
def test_a_kept_row_is_the_row_worked_out_from_the_file(progress_dir, cache, monkeypatch, visited, extra, color):
    fill(progress_dir)
    worked = table(once(progress_dir, monkeypatch, *extra, kept=False, color=color))
    assert kept_files(cache) == []
    first = table(once(progress_dir, monkeypatch, *extra, color=color))  # works them out and keeps them
    assert len(kept_files(cache)) == 1
    del visited[:]
    second = table(once(progress_dir, monkeypatch, *extra, color=color))
    assert visited == ["g-dead.json"]  # the ended runs were neither read nor taken from the archive index
    assert first == worked and second == worked
    text = "\n".join(worked)
    assert "Health" in text and "wandb.ai/lab/p/runs/x1" in text and "gpu-box" in text and "KILLED*" in text
    assert ("\x1b[" in text) == color
    # another width: the kept cells make the lines of the other layout
    for cols in (100, 61):
        assert table(once(progress_dir, monkeypatch, *extra, columns=cols, color=color)) == table(
            once(progress_dir, monkeypatch, *extra, columns=cols, kept=False, color=color))
    # other columns, metrics named (kept or not)
    pick = ("--columns", "status,health,m:val_loss,m:loss,cpu,pid,wandb,val_time")
    assert table(once(progress_dir, monkeypatch, *extra, *pick, color=color)) == table(
        once(progress_dir, monkeypatch, *extra, *pick, kept=False, color=color))


def test_a_rewritten_or_replaced_ended_file_is_read_again(progress_dir, cache, monkeypatch, visited):
    fill(progress_dir)
    once(progress_dir, monkeypatch)
    archive = glob.glob(os.path.join(str(cache), "ttop", "archive-*.idx"))
    before = content(archive[0])
    # a new run under an old name (a new file: another inode)
    write(progress_dir, "a-done", doc("a-done", "FAILED", epoch=1, metrics={"loss": 9.5}))
    # the same file written in place: same inode, another size
    path = os.path.join(str(progress_dir), "c-canceled.json")
    with open(path, "r+") as f:
        d = json.load(f)
        d["epoch"] = 2
        d["run_name"] = "c-canceled-2"
        f.seek(0)
        f.truncate()
        f.write(json.dumps(d))
    t = time.time() - 5000
    os.utime(path, (t, t))
    # the same size, another time
    path = os.path.join(str(progress_dir), "d-killed.json")
    os.utime(path, (t, t))
    os.unlink(os.path.join(str(progress_dir), "f-remote.json"))
    write(progress_dir, "h-new", doc("h-new"))  # a new ended run
    del visited[:]
    got = table(once(progress_dir, monkeypatch))
    assert sorted(visited) == ["a-done.json", "c-canceled.json", "d-killed.json", "g-dead.json", "h-new.json"]
    assert got == table(once(progress_dir, monkeypatch, kept=False))
    text = "\n".join(got)
    assert "c-canceled-2" in text and "h-new" in text and "f-remote" not in text
    row = next(line for line in got if line.startswith("a-done"))
    assert "FAILED" in row and "9.5" in row
    # a --once that used kept rows leaves the archive index as it was (it
    # would lose the entries of the files it did not look at)
    assert content(archive[0]) == before
    # ... and kept the new rows: now only the inferred run is read
    del visited[:]
    assert table(once(progress_dir, monkeypatch)) == got and visited == ["g-dead.json"]


def test_a_link_in_place_of_a_kept_file_is_read(progress_dir, cache, monkeypatch, visited, tmp_path):
    fill(progress_dir)
    once(progress_dir, monkeypatch)
    keep = tmp_path / "keep"
    keep.mkdir()
    os.rename(os.path.join(str(progress_dir), "a-done.json"), str(keep / "a-done.json"))
    os.symlink(str(keep / "a-done.json"), os.path.join(str(progress_dir), "a-done.json"))
    del visited[:]
    once(progress_dir, monkeypatch)
    assert "a-done.json" in visited


def _rewrite_head(path, change):
    """Rewrite the kept-rows file's head with ``change(head)`` applied, with
    a valid checksum: a well-formed file of the wrong contents."""
    raw = content(path)
    magic = raw[:raw.index(b"\n") + 1]
    n = int.from_bytes(raw[len(magic) + 4:len(magic) + 12], "big")
    head = marshal.loads(raw[len(magic) + 12:len(magic) + 12 + n])
    new = marshal.dumps(change(head))
    rest = raw[len(magic) + 12 + n:]
    with open(path, "wb") as f:
        f.write(magic + zlib.crc32(new).to_bytes(4, "big") + len(new).to_bytes(8, "big") + new + rest)


def _bad_host(head):
    key, at, entries, meta = head
    name = sorted(entries)[0]
    e = entries[name]
    entries[name] = e[:4] + (e[4][:3] + (12,) + e[4][4:],) + e[5:]
    return key, at, entries, meta


@pytest.mark.parametrize("spoil", ["owner", "mode", "folder-mode", "link", "head", "cells", "truncated", "types",
                                   "line"])
def test_a_kept_rows_file_that_cannot_be_trusted_is_not_used(progress_dir, cache, monkeypatch, visited, tmp_path,
                                                            spoil):
    """Not the user's own, writable by others, in a folder others may write
    in, a link, damaged, cut short, or well formed but wrong: the runs are
    read as usual and every row is there as it should be."""
    fill(progress_dir)
    worked = table(once(progress_dir, monkeypatch, kept=False))
    once(progress_dir, monkeypatch)
    (path,) = kept_files(cache)
    size = os.path.getsize(path)
    columns = 450
    if spoil == "owner":
        os.chown(path, 65534, 65534)
    elif spoil == "mode":
        os.chmod(path, 0o666)
    elif spoil == "folder-mode":
        os.chmod(os.path.dirname(path), 0o777)
    elif spoil == "link":
        os.rename(path, str(tmp_path / "elsewhere.idx"))
        os.symlink(str(tmp_path / "elsewhere.idx"), path)
    elif spoil == "head":
        with open(path, "r+b") as f:
            f.seek(60)
            f.write(b"\x00" * 10)
    elif spoil == "cells":  # found only when another layout needs the kept cells
        with open(path, "r+b") as f:
            f.seek(size - 40)
            f.write(b"\x07" * 20)
        columns = 120
        worked = table(once(progress_dir, monkeypatch, kept=False, columns=120))
    elif spoil == "truncated":
        os.truncate(path, size - 40)
        columns = 120
        worked = table(once(progress_dir, monkeypatch, kept=False, columns=120))
    elif spoil == "types":
        _rewrite_head(path, _bad_host)
    else:  # a line that is not a line
        _rewrite_head(path, lambda h: (h[0], h[1], {k: e[:4] + (e[4][:11] + ((("x", 1),),),) + e[5:]
                                                    for k, e in h[2].items()}, h[3]))
    del visited[:]
    got = table(once(progress_dir, monkeypatch, columns=columns))
    assert got == worked
    if spoil not in ("cells", "truncated"):  # (those two: looked at again after the kept rows failed)
        assert len(visited) == 7
    # the unusable file was replaced by good kept rows (where the folder can be trusted)
    worked = table(once(progress_dir, monkeypatch, kept=False, columns=100))
    del visited[:]
    assert table(once(progress_dir, monkeypatch, columns=100)) == worked
    if spoil == "folder-mode":
        assert len(visited) == 7
    else:
        assert visited == ["g-dead.json"]


def test_switched_off_nothing_is_kept(progress_dir, cache, monkeypatch):
    fill(progress_dir)
    once(progress_dir, monkeypatch, kept=False)
    assert kept_files(cache) == []
    once(progress_dir, monkeypatch, "--json")
    assert kept_files(cache) == []  # --json keeps nothing either


# ---------------------------------------------------------------------------
# the table made from each row's cells is render_table's


def _run(key, status="FINISHED", data=None, **kw):
    d = {"format": "ttop.progress/1", "run_name": kw.pop("run_name", key), "status": status, "updated_at": 1000.0,
         "phase": "train", "epoch": 2, "total_epochs": 10, "train_batch": 120, "train_total_batches": 500,
         "times": {"run": {"elapsed": 3725, "remaining": 725, "total": 4450}}, "rate": 3.5,
         "metrics": {"loss": 0.5, "acc": 0.7}, "history": {"loss": [0.9, 0.8, 0.7, 0.6, 0.5]}}
    d.update(data or {})
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=d, run_name=d["run_name"], status=status,
                       reported_status=kw.pop("reported", status), **kw)


def _snapshots():
    ranks = (RankSnapshot(rank=1, world_size=2, pid=11, host="b", local=False, status="RUNNING",
                          resources=RunResources(cpu_percent=50.0, rss_bytes=1 << 28)),)
    runs = [
        _run("alpha", "RUNNING", pid=4242, health="OK",
             resources=RunResources(cpu_percent=98.6, rss_bytes=3435973837, num_procs=3, num_threads=17)),
        _run("beta", "RUNNING", data={"phase": "validation", "val_batch": 12, "val_total_batches": 50},
             stale=True, health="CRIT", health_reason="heartbeat lost (no update for 5m)"),
        _run("gamma", "KILLED", reported="RUNNING", status_inferred=True, host="h2"),
        _run("delta", data={"metrics": {"loss": float("nan")}, "links": {"wandb": "https://w/" + "x" * 40}}),
        _run("eps", "RUNNING", ranks=ranks, run_name="\u5b66\u7fd2" * 12, cost=1.25, cost_projected=3.5),
        _run("zeta", "FAILED", data={"epoch": 123456789, "total_epochs": 999999999999, "phase": None}),
    ]
    host = HostInfo("box", 8, 37.0, 16 << 30, 5 << 30, (0.5, 0.4, 0.3))
    one = Snapshot(seq=1, taken_at=1000.0, folder="/p", runs=tuple(runs), host=host)
    yield one
    yield replace(one, runs=tuple(r for r in runs if r.host is None and not r.ranks))


@pytest.mark.parametrize("width", [40, 80, 133, 400])
@pytest.mark.parametrize("ascii", [False, True])
def test_the_once_table_is_render_tables(width, ascii):
    for snap in _snapshots():
        rows = visible_rows(snap, ViewState(ascii=ascii), ranks=True)
        want = render_table(snap, ViewState(ascii=ascii), width, len(rows) + 1, select=False, rows=rows).lines
        got = list(render_once(snap, width, ascii))
        start = next(i for i, line in enumerate(got) if line[0][0].startswith("Run Name"))
        assert got[start:start + len(want)] == want


def test_rows_are_kept_with_prices_and_health_thresholds_and_only_for_them(progress_dir, cache, monkeypatch,
                                                                            visited):
    """Prices (flags or the config file) and --health thresholds change the
    cells: the rows are kept for them, and used only with the same ones."""
    fill(progress_dir)
    opts = ("--price-hour", "2", "--price-host", "gpu-box=3", "--health", "stall_seconds=300")
    worked = table(once(progress_dir, monkeypatch, *opts, kept=False))
    assert "Cost" in worked[0]
    assert table(once(progress_dir, monkeypatch, *opts)) == worked
    assert len(kept_files(cache)) == 1
    del visited[:]
    assert table(once(progress_dir, monkeypatch, *opts)) == worked
    assert visited == ["g-dead.json"]  # the ended runs' kept rows stood in
    del visited[:]
    other = ("--price-hour", "5") + opts[2:]
    assert table(once(progress_dir, monkeypatch, *other)) == table(once(progress_dir, monkeypatch, *other, kept=False))
    assert "a-done.json" in visited  # other prices: read again
