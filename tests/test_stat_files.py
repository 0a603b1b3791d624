"""The process table reads the runs' processes' ``/proc/<pid>/stat`` through
descriptors kept open between cycles (``procfs.KeptStatFiles``): each read
is the process's line now, a reaped process's descriptor is dropped (its PID
read again by its path), and descriptors of processes no longer looked at
are closed."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ttop.collect import procfs
from ttop.collect.procs import ALIVE, GONE, ProcessTable

pytestmark = pytest.mark.skipif(not procfs._HAVE_PROC, reason="reads /proc")

SLEEPER = [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(120)"]
# burns CPU until killed: its stat line changes from one read to the next
BURNER = [sys.executable, "-c", "print('ready', flush=True)\nwhile True: pass"]


def _start(spawn, argv):
    p = spawn(argv, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    p.stdout.close()
    return p


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def _cycle(table: ProcessTable, pids):
    table.refresh()
    rows = {pid: table.row(pid) for pid in pids}
    table.end_cycle()
    return rows


def test_each_cycle_reads_the_line_of_now_through_one_kept_descriptor(spawn):
    p = _start(spawn, BURNER)
    table = ProcessTable()
    first = _cycle(table, [p.pid])[p.pid]
    fd = table.stat_files.fds[p.pid]
    seen = [first[4]]
    for _ in range(4):
        time.sleep(0.3)
        row = _cycle(table, [p.pid])[p.pid]
        assert table.stat_files.fds[p.pid] == fd  # the same descriptor, not opened again
        seen.append(row[4])
        # the row is that of the line the process shows now, as read by its path
        with open("/proc/%d/stat" % p.pid, "rb") as f:
            now = procfs.parse_stat(f.read(), table._boot)
        assert row[:4] == now[:4] and row[4] <= now[4]
    assert seen == sorted(seen) and seen[-1] > seen[0]  # its CPU time, read anew each cycle


def test_a_reaped_process_is_gone_and_its_descriptor_closed(spawn):
    p = _start(spawn, SLEEPER)
    table = ProcessTable()
    with open("/proc/%d/stat" % p.pid, "rb") as f:
        ctime = procfs.parse_stat(f.read(), procfs.psutil.boot_time())[1]
    table.refresh()
    assert table.identify(p.pid, ctime)[0] == ALIVE
    table.end_cycle()
    fd = table.stat_files.fds[p.pid]
    p.kill()
    p.wait()
    table.refresh()
    assert table.identify(p.pid, ctime)[0] == GONE
    table.end_cycle()
    assert p.pid not in table.stat_files.fds and _closed(fd)


def test_a_descriptor_left_on_a_reaped_process_gives_way_to_the_pid_s_process_now(spawn):
    # as when the PID went to another process meanwhile: the kept descriptor
    # is another (ended) process's, and the PID's line now is read by its path
    dead = _start(spawn, SLEEPER)
    stale = os.open("/proc/%d/stat" % dead.pid, os.O_RDONLY)
    dead.kill()
    dead.wait()
    live = _start(spawn, SLEEPER)
    files = procfs.KeptStatFiles(8)
    files.fds[live.pid] = stale
    proc = os.open("/proc", os.O_RDONLY)
    try:
        open_before = len(os.listdir("/proc/self/fd"))
        raw = files.read(proc, live.pid)
        assert len(os.listdir("/proc/self/fd")) == open_before  # the stale one closed, the new one kept
    finally:
        os.close(proc)
    with open("/proc/%d/stat" % live.pid, "rb") as f:
        assert raw == f.read()
    assert os.readlink("/proc/self/fd/%d" % files.fds[live.pid]) == "/proc/%d/stat" % live.pid
    fd = files.fds[live.pid]
    files.close()
    assert files.fds == {} and _closed(fd)


def test_descriptors_of_processes_no_longer_read_are_closed_and_kept_ones_are_capped(spawn):
    procs = [_start(spawn, SLEEPER) for _ in range(3)]
    pids = [p.pid for p in procs]
    table = ProcessTable()
    table.stat_files.keep = 2
    rows = _cycle(table, pids)
    assert all(rows[pid] is not None and rows[pid][2] for pid in pids)  # each one read, kept or not
    assert len(table.stat_files.fds) == 2
    kept = dict(table.stat_files.fds)
    _cycle(table, pids[2:])  # the first two not looked at this cycle
    assert all(_closed(fd) for pid, fd in kept.items() if pid != pids[2])
    assert set(table.stat_files.fds) <= {pids[2]}
    table.stat_files.close()
    assert table.stat_files.fds == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="the child changes its uid (root only)")
def test_the_uid_read_through_a_kept_status_file_follows_a_change_of_ids(spawn, monkeypatch):
    from ttop.collect import procs

    monkeypatch.setattr(procs, "UID_RECHECK_SECONDS", 0.0)  # read again each time
    code = ("import os, sys; print('ready', flush=True); sys.stdin.readline(); os.setresuid(65534, 65534, 65534); "
            "print('dropped', flush=True); import time; time.sleep(120)")
    p = spawn([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"ready\n"
    table = ProcessTable()
    table.refresh()
    assert table.uid(p.pid) == 0
    table.end_cycle()
    fd = table.status_files.fds[p.pid]
    p.stdin.write(b"go\n")
    p.stdin.flush()
    assert p.stdout.readline() == b"dropped\n"
    table.refresh()
    assert table.uid(p.pid) == 65534
    assert table.status_files.fds[p.pid] == fd  # through the same descriptor
    table.end_cycle()
    p.kill()
    p.wait()
    table.refresh()
    assert table.uid(p.pid) is None  # reaped: nothing to read, by descriptor or path
    table.end_cycle()
    assert p.pid not in table.status_files.fds and _closed(fd)


def test_the_descriptors_kept_are_a_small_part_of_the_open_file_limit():
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert procfs.STAT_FDS_KEPT <= 256
    if soft != resource.RLIM_INFINITY:
        assert 2 * procfs.STAT_FDS_KEPT <= soft // 4
    assert ProcessTable().stat_files.keep == ProcessTable().status_files.keep == procfs.STAT_FDS_KEPT
