"""A run on "another host": its own PID namespace and hostname (unshare), so
the local collector cannot and must not look its processes up."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from conftest import wait_until
from ttop.collect import Collector

HERE = os.path.dirname(os.path.abspath(__file__))
WRITER = os.path.join(HERE, "fakes", "progress_writer.py")
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--uts"]


def unshare_allowed():
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    try:
        r = subprocess.run(UNSHARE + ["sh", "-c", "hostname ttop-probe && hostname"], capture_output=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unshare failed: %s" % e
    if r.returncode != 0 or r.stdout.strip() != b"ttop-probe":
        return "unshare --pid --fork --mount-proc --uts is not permitted here: %s" % (
            r.stderr.decode(errors="replace").strip() or r.returncode)
    return None


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def test_run_in_another_pid_namespace_and_host(spawn, progress_dir):
    why = unshare_allowed()
    if why:
        pytest.skip(why)
    assert socket.gethostname() != "otherhost"
    cmd = "hostname otherhost && exec %s %s --folder %s --name remote --children 2 --interval 0.2" % (
        sys.executable, WRITER, progress_dir)
    spawn(UNSHARE + ["sh", "-c", cmd])
    path = str(progress_dir / "remote.json")
    written = wait_until(lambda: (read_json(path) or {}).get("ready") and
                         (read_json(path) or {}).get("resources", {}).get("num_procs") == 3 and read_json(path),
                         timeout=30)
    assert written["host"] == "otherhost"
    assert written["pid"] == 1  # the writer is PID 1 of its namespace
    c = Collector(str(progress_dir), interval=0.5, gpu=False, tpu=False)
    c.collect()
    s = c.collect()
    r = s.run("remote")
    assert r.host == "otherhost" and r.local is False
    assert r.alive is None and r.status == "RUNNING" and not r.status_inferred
    # never looked up here: local PID 1 (this machine's init) is not its process
    assert r.processes == ()
    assert r.resources.source == "reported"
    assert r.resources.num_procs == 3 and r.resources.rss_bytes > 1_000_000
    assert r.resources.num_threads >= 3
    assert r.pid == 1 and not r.stale


def test_remote_run_with_an_old_heartbeat_is_stale_not_killed(progress_dir):
    from ttop.progress import write_json_atomic

    now = time.time()
    write_json_atomic(str(progress_dir / "far.json"),
                      {"format": "ttop.progress/1", "run_name": "far", "status": "RUNNING",
                       "updated_at": now - 120, "host": "gpu-node-7", "pid": os.getpid(),
                       "pid_create_time": 1.0, "heartbeat_interval": 5,
                       "resources": {"cpu_percent": 350.0, "rss_bytes": 7 << 30, "gpu_memory_bytes": 3 << 30,
                                     "num_procs": 5, "num_threads": 40, "sampled_at": now - 120}})
    os.utime(str(progress_dir / "far.json"), (now - 120, now - 120))  # written 2 min ago, then silence
    r = Collector(str(progress_dir), gpu=False, tpu=False).collect().run("far")
    assert r.local is False and r.alive is None
    assert r.status == "RUNNING" and not r.status_inferred  # a remote run is never declared dead here
    assert r.stale and r.stale_reason == "no heartbeat for 2 min"
    assert r.processes == ()  # os.getpid() names a process here, but not this run's
    assert r.resources.cpu_percent == 350.0 and r.resources.gpu_memory_bytes == 3 << 30
    assert r.resources.num_procs == 5 and r.resources.sampled_at == pytest.approx(now - 120)


def test_a_claimed_heartbeat_interval_counts_up_to_an_hour(progress_dir):
    """The writer's interval is under an hour: a file claiming 1e308
    seconds kept its run from ever going stale (a dead job looking alive
    for good); one claiming 50 min is still given 3 x 50 min."""
    from ttop.progress import write_json_atomic

    now = time.time()
    for name, hb, age in (("huge", 1e308, 4 * 3600), ("slow", 3000, 2 * 3600)):
        path = str(progress_dir / (name + ".json"))
        write_json_atomic(path, {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING",
                                 "updated_at": now - age, "host": "gpu-node-7", "pid": 4242,
                                 "heartbeat_interval": hb})
        os.utime(path, (now - age, now - age))
    s = Collector(str(progress_dir), gpu=False, tpu=False).collect()
    assert s.run("huge").stale and s.run("huge").stale_reason == "no heartbeat for 4 h"
    assert not s.run("slow").stale


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "CANCELED", "KILLED"])
def test_an_ended_remote_run_shows_no_resources(progress_dir, status):
    """Its last self-reported sample describes processes that have ended: a
    finished job must not look busy."""
    from ttop.progress import write_json_atomic

    now = time.time()
    write_json_atomic(str(progress_dir / "done.json"),
                      {"format": "ttop.progress/1", "run_name": "done", "status": status,
                       "updated_at": now - 1, "host": "gpu-node-7", "pid": 4321, "pid_create_time": 1.0,
                       "resources": {"cpu_percent": 350.0, "rss_bytes": 7 << 30, "num_procs": 5,
                                     "num_threads": 40, "sampled_at": now - 2}})
    c = Collector(str(progress_dir), gpu=False, tpu=False)
    for _ in range(2):  # the first cycle and the cached one alike
        r = c.collect().run("done")
        assert r.status == status and r.local is False
        assert r.resources.cpu_percent is None and r.resources.num_procs is None
        assert r.resources.source == "none"


MONITOR_JOB = """
import sys, time
from ttop import TrainingMonitor
with TrainingMonitor(folder=sys.argv[1], run_name="boxed", interval=0.2, gpu=False) as m:
    m.start_phase("train")
    while True:
        m.start_batch()
        time.sleep(0.05)
"""


def test_run_in_another_pid_namespace_on_the_same_host_is_not_killed(spawn, progress_dir):
    # a container sharing the host's name (host networking) but not its PIDs:
    # the writer is PID 1 of its namespace, which is this machine's init here
    why = unshare_allowed()
    if why:
        pytest.skip(why)
    spawn(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", MONITOR_JOB, str(progress_dir)],
          cwd=os.path.dirname(HERE))
    path = str(progress_dir / "boxed.json")
    written = wait_until(lambda: (read_json(path) or {}).get("resources") and read_json(path), timeout=30)
    assert written["pid"] == 1 and written["host"] == socket.gethostname()
    c = Collector(str(progress_dir), interval=0.5, gpu=False, tpu=False)
    c.collect()
    r = c.collect().run("boxed")
    assert r.status == "RUNNING" and not r.status_inferred and r.alive is None and r.local is False
    assert r.processes == () and r.resources.source == "reported"


def test_pid_namespace_other_than_ours_is_never_looked_up(progress_dir):
    import psutil

    from ttop.progress import write_json_atomic

    me = psutil.Process()
    write_json_atomic(str(progress_dir / "ns.json"),
                      {"format": "ttop.progress/1", "run_name": "ns", "status": "RUNNING",
                       "updated_at": time.time(), "host": socket.gethostname(), "pid": me.pid,
                       "pid_create_time": me.create_time(), "pid_namespace": "pid:[1]"})
    r = Collector(str(progress_dir), gpu=False, tpu=False).collect().run("ns")
    assert r.local is False and r.alive is None and r.processes == ()
    assert r.status == "RUNNING" and not r.status_inferred


SKEWED_WRITER = r"""
import os, sys, time
sys.path.insert(0, sys.argv[1])
from ttop.progress import write_json_atomic
folder, name, host, skew = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
while True:
    write_json_atomic(os.path.join(folder, name + ".json"), {
        "format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "host": host,
        "updated_at": time.time() + skew, "heartbeat_interval": 0.2})
    time.sleep(0.1)
"""


def test_heartbeat_staleness_is_timed_on_ttops_clock_not_the_writers(spawn, progress_dir):
    """A host whose clock runs 10 min ahead goes stale when its writer stops;
    one 10 min behind is never stale while it writes."""
    root = os.path.dirname(HERE)
    ahead = spawn([sys.executable, "-c", SKEWED_WRITER, root, str(progress_dir), "ahead", "fast-clock", "600"])
    spawn([sys.executable, "-c", SKEWED_WRITER, root, str(progress_dir), "behind", "slow-clock", "-600"])
    wait_until(lambda: {"ahead.json", "behind.json"} <= set(os.listdir(str(progress_dir))), timeout=30)
    shift = [0.0]
    c = Collector(str(progress_dir), interval=0.2, gpu=False, tpu=False, clock=lambda: time.time() + shift[0])
    for _ in range(3):
        s = c.collect()
        assert not s.run("ahead").stale and not s.run("behind").stale
        assert 0 <= s.run("behind").heartbeat_age < 10  # not 600 s: its clock is not ttop's
        time.sleep(0.3)
    ahead.kill()
    ahead.wait(timeout=10)
    c.collect()  # sees the last write of the stopped writer
    shift[0] = 11.0  # 11 s later on ttop's clock: past the 10 s floor of the heartbeat limit
    # the live writer writes again meanwhile: a version the collector has
    # not read (it writes every 0.1 s, less often on a loaded machine)
    def version():
        st = os.stat(str(progress_dir / "behind.json"))
        return st.st_ino, st.st_mtime_ns

    read = version()
    wait_until(lambda: version() != read, timeout=60)
    s = c.collect()
    assert s.run("ahead").stale and s.run("ahead").stale_reason.startswith("no heartbeat for 1")
    assert not s.run("behind").stale


def _remote(name, batch, **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": 1.7e9 + batch,
         "host": "gpu-node-7", "pid": 4242, "pid_create_time": 1.0, "heartbeat_interval": 1.0, "phase": "train",
         "batch": batch, "metrics": {"loss": 1.0 / batch}, "history": {"loss": [1.0 / b for b in range(1, batch + 1)]},
         "resources": {"cpu_percent": 90.0, "rss_bytes": 1 << 30, "sampled_at": 1.7e9}}
    d.update(extra)
    return d


def test_a_rewritten_remote_run_shows_what_a_fresh_collector_shows(progress_dir):
    """A live file's next version is taken in place where only its numbers
    moved: every value of the row is the new file's, as a new collector
    sees it, and a new heartbeat interval moves the heartbeat limit."""
    from ttop.progress import write_json_atomic

    now = [time.time()]
    c = Collector(str(progress_dir), interval=1.0, gpu=False, tpu=False, clock=lambda: now[0])
    names = ("same", "numbers", "slower", "resources", "moved")
    for n in names:
        write_json_atomic(str(progress_dir / (n + ".json")), _remote(n, 1))
    c.collect()
    c.collect()
    time.sleep(0.1)
    write_json_atomic(str(progress_dir / "numbers.json"), _remote("numbers", 2, rate=3.5))
    write_json_atomic(str(progress_dir / "slower.json"), _remote("slower", 2, heartbeat_interval=100.0))
    write_json_atomic(str(progress_dir / "resources.json"),
                      _remote("resources", 2, resources={"cpu_percent": 10.0, "rss_bytes": 5, "sampled_at": 1.7e9 + 2}))
    write_json_atomic(str(progress_dir / "moved.json"), _remote("moved", 2, host="gpu-node-8", pid=7))
    time.sleep(0.1)
    now[0] += 30.0
    snap = c.collect()
    fresh = Collector(str(progress_dir), interval=1.0, gpu=False, tpu=False, clock=lambda: now[0]).collect()

    def row(r):
        return (r.status, r.reported_status, dict(r.data), r.dropped_keys, r.host, r.local, r.pid, r.pid_create_time,
                r.resources, r.owner_uid, r.mtime, r.file_error, r.run_name, r.path)

    assert [row(r) for r in snap.runs] == [row(r) for r in fresh.runs]
    got = {r.key: r for r in snap.runs}
    assert got["numbers"].data["rate"] == 3.5 and got["resources"].resources.rss_bytes == 5
    assert got["moved"].host == "gpu-node-8" and got["moved"].pid == 7
    assert [k for k, r in got.items() if r.stale] == ["same"]  # 30 s without a new heartbeat; the others wrote
    now[0] += 60.0  # past 3 heartbeat intervals of 1 s (10 s at least), within those of 100 s
    later = {r.key: r.stale for r in c.collect().runs}
    assert later == {"same": True, "numbers": True, "slower": False, "resources": True, "moved": True}
