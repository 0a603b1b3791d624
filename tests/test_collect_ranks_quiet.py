"""Runs without rank files in a folder that change notification watches are
not probed every cycle (ttop.collect.ranks: ``quiet``): a differential test
against the full path (a collector whose rank reader is not told which
rank files were written: it probes every run every cycle) over random sequences of rank files written, replaced by
a link or a FIFO, removed, runs restarted and handed to another owner, and
events lost. Real files, real inotify."""
from __future__ import annotations

import os
import random
import stat
import time

import pytest

from ttop.collect import Collector
from ttop.collect import ranks as ranks_mod
from ttop.collect.ranks import RankReader
from ttop.progress import write_json_atomic

RUNS = ("a", "b", "c")
STRANGER = 54321  # a uid without a user: only root can hand a file to it
T0 = 1.7e9


def _progress(folder, name, started, status, owner, tick):
    path = os.path.join(folder, name + ".json")
    write_json_atomic(path, {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": T0 + tick,
                             "started_at": started, "host": "far", "pid": 4242, "pid_create_time": 1.0,
                             "heartbeat_interval": 60, "batch": tick})
    os.chown(path, owner, -1)
    # stamped a second ago: past the scanner's racy-mtime window (timed on
    # the real clock) for both collectors alike; a file read within it is read
    # again next cycle, and the two would archive an ended run cycles apart
    t = time.time_ns() - 10**9
    os.utime(path, ns=(t, t), follow_symlinks=False)


def _rank_doc(name, rank, world, updated):
    return {"format": "ttop.rank/1", "run_name": name, "rank": rank, "world_size": world, "pid": 5000 + rank,
            "pid_create_time": 1.0, "host": "far", "status": "RUNNING", "updated_at": updated, "control_seq": 0,
            "control_error": None}


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _step(rng, folder, state, tick, quick):
    """One random change of the folder (or none); ``quick``: the notified
    collector."""
    name = rng.choice(RUNS)
    rank = rng.choice((1, 1, 1, 2))
    path = os.path.join(folder, ".%s.rank%d.json" % (name, rank))
    op = rng.randrange(11)
    if op <= 2:  # written by its rank (now, or long before the run started)
        doc = _rank_doc(name, rank, rng.choice((2, 3)), rng.choice((T0, T0 - 200.0, T0 - 200.0)) + tick)
        write_json_atomic(path, doc)
    elif op == 3:  # written in place (a link or a FIFO there removed first)
        if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
        with open(path, "w") as f:
            f.write('{"format": "ttop.rank/1", "world_size": 2, "status": "RUNNING", "updated_at": %r}' % (T0 + tick))
    elif op == 4:
        _remove(path)
    elif op == 5:  # a link (never followed) or a FIFO in its place
        _remove(path)
        if rng.random() < 0.5:
            os.symlink(os.path.join(folder, "%s.json" % name), path)
        else:
            os.mkfifo(path)
    elif op in (6, 7):  # the run restarted (another start), handed to another owner, ended or running again
        started, status, owner = state[name]
        if op == 6 and rng.random() < 0.7:  # (a rank file written long before one start is not before another)
            started = rng.choice((T0 - 200.0, T0, T0 + 100.0))
        elif op == 6:
            status = "FINISHED" if status == "RUNNING" else "RUNNING"
        else:
            owner = STRANGER if owner == 0 else 0
        state[name] = (started, status, owner)
        _progress(folder, name, started, status, owner, tick)
    elif op == 8:  # a cycle that reads no ranks (as one that fails between its scan and them)
        doc = _rank_doc(name, rank, 2, T0 + tick)
        write_json_atomic(path, doc)
    elif op == 9:  # events lost: the watch is made again
        quick._scanner.close()
        doc = _rank_doc(name, rank, 2, T0 + tick)
        write_json_atomic(path, doc)  # (while nothing watches)
    return op


def _ranks(snap):
    return sorted((r.key, r.status, tuple((k.rank, k.status, k.world_size, k.heartbeat_age, k.stale, k.pid)
                                          for k in r.ranks)) for r in snap.runs)


@pytest.mark.parametrize("seed", range(6))
def test_quiet_runs_see_what_probing_every_run_sees(progress_dir, seed):
    folder = str(progress_dir)
    rng = random.Random(seed)
    state = {name: (T0, "RUNNING", 0) for name in RUNS}
    for name in RUNS:
        _progress(folder, name, T0, "RUNNING", 0, 0)
    now = [time.time()]
    watched = Collector(folder, gpu=False, tpu=False, clock=lambda: now[0])
    probing = Collector(folder, gpu=False, tpu=False, clock=lambda: now[0])  # files seen alike, by events
    quiet = 0
    try:
        watched.collect(), probing.collect()
        full = probing._ranks  # never told which rank files were written: probes every run every cycle
        full.cycle = lambda statics, me, now_, hidden=None: RankReader.cycle(full, statics, me, now_, None)
        for tick in range(1, 160):
            op = _step(rng, folder, state, tick, watched)
            now[0] += rng.choice((2.0, 2.0, 2.0, 0.5, 1.0, ranks_mod.RECHECK_SECONDS / 3))
            if op == 8:  # its events are not seen by the next cycle's ranks
                reader, watched._ranks = watched._ranks, None
                watched.collect()
                watched._ranks = reader
                now[0] += 2.0
            a, b = watched.collect(), probing.collect()
            assert _ranks(a) == _ranks(b), "seed %d tick %d op %d" % (seed, tick, op)
            quiet += sum(1 for r in watched._ranks._runs.values() if r.quiet is not None)
        assert probing._ranks is not None and not any(r.quiet for r in probing._ranks._runs.values())
        assert quiet > 50  # the quiet path was taken (not only the probes)
    finally:
        watched.stop()
        probing.stop()


def test_a_quiet_run_costs_no_open_until_its_rank_file_is_written(progress_dir, monkeypatch):
    folder = str(progress_dir)
    opened = []
    real_read = ranks_mod._read
    monkeypatch.setattr(ranks_mod, "_read", lambda dfd, name, *a: opened.append(name) or real_read(dfd, name, *a))
    for name in RUNS:
        _progress(folder, name, T0, "RUNNING", 0, 0)
    now = [time.time()]
    c = Collector(folder, gpu=False, tpu=False, clock=lambda: now[0])
    try:
        for _ in range(3):  # (the watch is made by the second scan: probed until its events follow on)
            now[0] += 2.0
            c.collect()
        del opened[:]
        for _ in range(5):
            now[0] += 2.0
            assert not any(r.ranks for r in c.collect().runs)
        assert opened == []
        write_json_atomic(os.path.join(folder, ".b.rank1.json"), _rank_doc("b", 1, 2, T0))
        now[0] += 2.0
        assert [r.key for r in c.collect().runs if r.ranks] == ["b"]
        assert opened == [".b.rank1.json"]
        now[0] += ranks_mod.RECHECK_SECONDS
        c.collect()  # probed again after RECHECK_SECONDS, events or not
        assert sorted(opened) == [".a.rank1.json", ".b.rank1.json", ".b.rank1.json", ".c.rank1.json"]
    finally:
        c.stop()
