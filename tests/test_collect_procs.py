"""Process trees, status inference and PID reuse, with real processes."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

import psutil
import pytest

from conftest import wait_until
from ttop.collect import Budgets, Collector, RunResources
from ttop.collect import procs as procs_mod
from ttop.collect.collector import heartbeat_limit
from ttop.collect.host import GB, budgets_from_args, usage_percent
from ttop.progress import write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
WRITER = os.path.join(HERE, "fakes", "progress_writer.py")
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def doc(name, status="RUNNING", updated_at=None, **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": status,
         "updated_at": time.time() if updated_at is None else updated_at}
    d.update(extra)
    return d


def write(folder, name, obj):
    """Write a progress file as its writer would have at ``updated_at``: a
    heartbeat in the past is also the file's modification time (ttop times a
    heartbeat it has not seen change from the file's mtime)."""
    path = os.path.join(str(folder), name + ".json")
    write_json_atomic(path, obj)
    stamp = min(obj["updated_at"], time.time())
    os.utime(path, (stamp, stamp))


def collector(folder, **kw):
    kw.setdefault("gpu", False)
    kw.setdefault("tpu", False)
    return Collector(str(folder), **kw)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def start_writer(spawn, folder, name, *args):
    p = spawn([sys.executable, WRITER, "--folder", str(folder), "--name", name] + [str(a) for a in args])
    wait_until(lambda: (read_json(os.path.join(str(folder), name + ".json")) or {}).get("ready"), timeout=60)
    return p


@pytest.fixture(params=["walked", "listed"])
def table_mode(request, monkeypatch):
    """Both ways of finding a run's processes: walking its tree through
    /proc/<pid>/task/<tid>/children, and listing every process (kernels
    without that file)."""
    if request.param == "listed":
        monkeypatch.setattr(procs_mod, "_HAVE_CHILDREN", False)
    elif not procs_mod._HAVE_CHILDREN:
        pytest.skip("this kernel has no /proc/<pid>/task/<tid>/children")
    return request.param


def test_tree_of_a_real_parent_with_four_children(spawn, progress_dir, table_mode):
    w = start_writer(spawn, progress_dir, "job", "--children", 4, "--grandchildren", 1, "--busy", 1,
                     "--threads", 2, "--interval", 0.2)
    kids = read_json(str(progress_dir / "job.json"))["children"]
    assert len(kids) == 4
    grandkid = wait_until(lambda: psutil.Process(kids[0]).children(), timeout=60)[0].pid
    c = collector(progress_dir, interval=0.5)
    s1 = c.collect()
    assert c._table is not None and c._table.walk is (table_mode == "walked")  # made by the first cycle
    r = s1.run("job")
    assert r.alive is True and r.local and r.status == "RUNNING" and not r.status_inferred
    pids = [p.pid for p in r.processes]
    # main first, then depth-first by PID: the first child is followed by its child
    assert pids == [w.pid, kids[0], grandkid] + sorted(kids[1:])
    assert [p.depth for p in r.processes] == [0, 1, 2, 1, 1, 1]
    assert r.processes[1].ppid == w.pid and r.processes[2].ppid == kids[0]
    assert all(p.cpu_percent is None for p in r.processes)  # first sight: not yet measurable
    time.sleep(0.5)
    r = c.collect().run("job")
    by_pid = {p.pid: p for p in r.processes}
    busy = by_pid[kids[-1]]
    assert busy.cpu_percent is not None and busy.cpu_percent > 5.0
    main = by_pid[w.pid]
    assert main.num_threads >= 3
    tids = [t.tid for t in main.threads]
    assert w.pid in tids and len(tids) == main.num_threads
    assert all(t.cpu_percent is not None for t in main.threads)
    busy_thread = busy.threads[0]
    assert busy_thread.tid == busy.pid and busy_thread.cpu_percent > 5.0
    assert "progress_writer.py" in main.cmdline
    assert all(p.rss_bytes and p.rss_bytes > 1_000_000 for p in r.processes)
    res = r.resources
    assert res.source == "local" and res.num_procs == 6
    # several processes: shared pages counted once (PSS), never more than the RSS sum
    assert res.ram_measure in ("pss", "pss+rss") and 0 < res.rss_bytes <= sum(p.rss_bytes for p in r.processes)
    assert res.num_threads == sum(p.num_threads for p in r.processes)
    assert res.cpu_percent == pytest.approx(sum(p.cpu_percent for p in r.processes))
    # a child killed (and not reaped by its parent) stays as a zombie without figures
    os.kill(kids[1], signal.SIGKILL)

    def zombie():
        got = [p for p in c.collect().run("job").processes if p.pid == kids[1]]
        return got and got[0].status == psutil.STATUS_ZOMBIE and got[0]

    z = wait_until(zombie, timeout=60)
    assert z.rss_bytes is None and z.cpu_percent is None and z.num_threads is None


def test_sigkilled_run_shows_killed_within_two_intervals(spawn, progress_dir):
    w = start_writer(spawn, progress_dir, "victim", "--children", 2, "--interval", 0.05)
    c = collector(progress_dir, interval=0.3)
    c.start()
    try:
        wait_until(lambda: c.latest and c.latest.run("victim") and c.latest.run("victim").alive, timeout=60)
        os.kill(w.pid, signal.SIGKILL)  # mid-batch: it rewrites its file every 50 ms
        seq_at_kill = c.latest.seq
        killed = wait_until(
            lambda: c.latest.run("victim") if c.latest.run("victim").status == "KILLED" else None, timeout=60)
        assert c.latest.seq <= seq_at_kill + 2
        assert killed.status_inferred and killed.reported_status == "RUNNING"
        assert killed.alive is False
        assert killed.status_reason == "process %d has exited" % w.pid  # a zombie until reaped
        assert killed.processes == () and killed.resources.source == "none"
        w.wait(timeout=10)  # reaped: the PID is gone
        gone = wait_until(lambda: c.latest.run("victim").status_reason == "process %d is gone" % w.pid
                          and c.latest.run("victim"), timeout=60)
        assert gone.status == "KILLED" and gone.processes == ()
    finally:
        assert c.stop(timeout=60)
        try:  # its orphaned children (the spawn fixture only cleans up live leaders)
            os.killpg(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_reused_pid_is_never_attributed(spawn, progress_dir):
    other = spawn(SLEEPER)
    real_ct = wait_until(lambda: psutil.Process(other.pid).create_time(), timeout=60)
    write(progress_dir, "stale", doc("stale", pid=other.pid, pid_create_time=real_ct - 3600.0,
                                     host=socket.gethostname(),
                                     resources={"cpu_percent": 99.0, "rss_bytes": 123}))
    s = collector(progress_dir).collect()
    r = s.run("stale")
    assert r.status == "KILLED" and r.status_inferred and r.alive is False
    assert r.status_reason == "PID %d now belongs to another process" % other.pid
    assert r.processes == ()
    assert r.resources == RunResources()  # nothing attributed, not even the file's stale sample
    assert other.poll() is None


def test_create_time_tolerance(spawn, progress_dir):
    p = spawn(SLEEPER)
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    tol = procs_mod.CREATE_TIME_TOLERANCE
    write(progress_dir, "same", doc("same", pid=p.pid, pid_create_time=ct + tol * 0.5))
    write(progress_dir, "exact", doc("exact", pid=p.pid, pid_create_time=ct))
    write(progress_dir, "later", doc("later", pid=p.pid, pid_create_time=ct + 0.01 + tol))
    write(progress_dir, "earlier", doc("earlier", pid=p.pid, pid_create_time=ct - 0.01 - tol))
    s = collector(progress_dir).collect()
    assert s.run("same").alive is True and s.run("exact").alive is True
    assert [x.pid for x in s.run("exact").processes] == [p.pid]
    for k in ("later", "earlier"):
        assert s.run(k).alive is False and s.run(k).status == "KILLED" and s.run(k).processes == ()


def test_finished_run_keeps_its_status(spawn, progress_dir):
    write(progress_dir, "done", doc("done", "FINISHED", pid=2 ** 22 + 7, pid_create_time=1.0, ended_at=time.time()))
    p = spawn(SLEEPER)
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    write(progress_dir, "lingering", doc("lingering", "FINISHED", pid=p.pid, pid_create_time=ct))
    s = collector(progress_dir).collect()
    done = s.run("done")
    assert done.status == "FINISHED" and not done.status_inferred and done.alive is False
    assert done.status_reason is None
    ling = s.run("lingering")  # finished, but its process still runs (e.g. saving)
    assert ling.status == "FINISHED" and ling.alive is True and ling.processes[0].pid == p.pid


def test_zombie_child_in_a_tree(spawn, progress_dir):
    code = "import os, time\nif os.fork() == 0:\n    os._exit(0)\ntime.sleep(120)\n"
    p = spawn([sys.executable, "-c", code])
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    wait_until(lambda: [k for k in psutil.Process(p.pid).children() if k.status() == psutil.STATUS_ZOMBIE],
               timeout=60)
    write(progress_dir, "z", doc("z", pid=p.pid, pid_create_time=ct))
    c = collector(progress_dir)
    c.collect()
    r = c.collect().run("z")
    assert r.alive is True and len(r.processes) == 2
    zombie = r.processes[1]
    assert zombie.status == psutil.STATUS_ZOMBIE and zombie.depth == 1
    assert zombie.rss_bytes is None and zombie.cpu_percent is None and zombie.threads == ()
    assert r.resources.num_procs == 2 and r.resources.rss_bytes == r.processes[0].rss_bytes


def test_dead_zombie_main_process_is_killed(spawn, progress_dir):
    p = spawn([sys.executable, "-c", "pass"])
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    wait_until(lambda: psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE, timeout=60)
    write(progress_dir, "r", doc("r", pid=p.pid, pid_create_time=ct))
    r = collector(progress_dir).collect().run("r")
    assert r.status == "KILLED" and r.status_reason == "process %d has exited" % p.pid


def test_local_run_without_pid_relies_on_heartbeat(progress_dir):
    now = time.time()
    write(progress_dir, "fresh", doc("fresh", updated_at=now - 2, resources={"rss_bytes": 5}))
    write(progress_dir, "old", doc("old", updated_at=now - 31, heartbeat_interval=10))
    write(progress_dir, "slowbeat", doc("slowbeat", updated_at=now - 31, heartbeat_interval=20))
    write(progress_dir, "done", doc("done", "FINISHED", updated_at=now - 10 ** 6))
    s = collector(progress_dir, interval=2.0).collect()
    fresh = s.run("fresh")
    assert fresh.alive is None and not fresh.stale and fresh.status == "RUNNING"
    assert fresh.resources.source == "reported" and fresh.resources.rss_bytes == 5
    old = s.run("old")
    assert old.stale and old.stale_reason == "no heartbeat for 31 s" and old.status == "RUNNING"
    assert not old.status_inferred
    assert not s.run("slowbeat").stale  # 3 x 20 s not yet over
    assert not s.run("done").stale  # only running runs need a heartbeat
    assert s.run("old").heartbeat_age == pytest.approx(31, abs=2)


def test_heartbeat_limit():
    assert heartbeat_limit({}, 2.0) == 10.0
    assert heartbeat_limit({"heartbeat_interval": 5}, 2.0) == 15.0
    assert heartbeat_limit({"heartbeat_interval": 1}, 8.0) == 24.0
    assert heartbeat_limit({"heartbeat_interval": -5}, 1.0) == 10.0


def test_budgets_default_to_machine_and_usage_percent(progress_dir):
    s = collector(progress_dir).collect()
    assert s.budgets.cpus == psutil.cpu_count() and s.budgets.ram_bytes == psutil.virtual_memory().total
    assert s.budgets.gpu_bytes is None  # no GPU source
    b = Budgets(cpus=4, ram_bytes=8 * GB, gpu_bytes=2 * GB)
    assert collector(progress_dir, budgets=b).collect().budgets == b
    res = RunResources(cpu_percent=200.0, rss_bytes=2 * GB, gpu_memory_bytes=GB, source="local")
    assert usage_percent(res, b) == {"cpu": 50.0, "ram": 25.0, "gpu": 50.0}
    assert usage_percent(RunResources(), b) == {"cpu": None, "ram": None, "gpu": None}
    made = budgets_from_args(max_cpus=2, max_ram_gb=1.5)
    assert made.cpus == 2.0 and made.ram_bytes == int(1.5 * GB) and made.gpu_bytes is None
    assert budgets_from_args() is None
    s = collector(progress_dir, budgets=made).collect()
    assert s.host.hostname == socket.gethostname() and s.host.cpu_count == psutil.cpu_count()
    assert s.host.mem_total == psutil.virtual_memory().total


def test_published_runs_equal_constructor_built_ones_and_stay_frozen(spawn, progress_dir):
    from ttop import record
    from ttop.collect import RunSnapshot

    p = spawn(SLEEPER)
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    write(progress_dir, "alive", doc("alive", pid=p.pid, pid_create_time=ct))
    write(progress_dir, "dead", doc("dead", pid=2 ** 22 + 9, pid_create_time=1.0))
    write(progress_dir, "ended", doc("ended", "FINISHED", pid=2 ** 22 + 9, pid_create_time=1.0))
    write(progress_dir, "remote", doc("remote", "CANCELED", host="far"))
    s = collector(progress_dir).collect()
    assert len(s.runs) == 4
    for r in s.runs:
        rebuilt = RunSnapshot(**{f: getattr(r, f) for f in record.fields(RunSnapshot)})
        assert rebuilt == r and repr(rebuilt) == repr(r)
        with pytest.raises(record.FrozenInstanceError):
            r.status = "FINISHED"
        assert record.replace(r, status="X").status == "X"
    assert s.run("ended").alive is False and s.run("ended").status_reason is None
    assert s.run("dead").status == "KILLED"


def test_pid_without_create_time(spawn, progress_dir):
    p = spawn(SLEEPER)
    wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    write(progress_dir, "unsure", doc("unsure", pid=p.pid, resources={"rss_bytes": 42}))
    write(progress_dir, "gone", doc("gone", pid=2 ** 22 + 11))
    s = collector(progress_dir).collect()
    unsure = s.run("unsure")  # a live PID, but is it the run's process? cannot tell
    assert unsure.alive is None and unsure.status == "RUNNING" and unsure.processes == ()
    assert unsure.resources.source == "reported" and unsure.resources.rss_bytes == 42
    gone = s.run("gone")
    assert gone.status == "KILLED" and gone.status_reason == "process %d is gone" % (2 ** 22 + 11)
    # an exited (zombie) process is dead whichever process it was
    z = spawn([sys.executable, "-c", "pass"])
    wait_until(lambda: psutil.Process(z.pid).status() == psutil.STATUS_ZOMBIE, timeout=60)
    write(progress_dir, "exited", doc("exited", pid=z.pid))
    r = collector(progress_dir).collect().run("exited")
    assert r.status == "KILLED" and r.status_reason == "process %d has exited" % z.pid


def test_nested_run_is_counted_for_itself_only(spawn, progress_dir):
    """A sweep script that is a run itself launches a run: each process counts once."""
    w = start_writer(spawn, progress_dir, "sweep", "--children", 2, "--grandchildren", 1, "--interval", 0.5)
    kids = read_json(str(progress_dir / "sweep.json"))["children"]
    grandkid = wait_until(lambda: psutil.Process(kids[0]).children(), timeout=60)[0].pid
    write(progress_dir, "trial", doc("trial", pid=kids[0], pid_create_time=psutil.Process(kids[0]).create_time()))
    s = collector(progress_dir).collect()
    assert [p.pid for p in s.run("sweep").processes] == [w.pid, kids[1]]
    assert [(p.pid, p.depth) for p in s.run("trial").processes] == [(kids[0], 0), (grandkid, 1)]
    assert s.run("sweep").resources.num_procs == 2 and s.run("trial").resources.num_procs == 2
    # once the trial ends (its file says so and its process is gone), the sweep's tree is whole again
    os.kill(kids[0], signal.SIGKILL)
    c = collector(progress_dir)
    s = wait_until(lambda: (lambda s: s.run("trial").status == "KILLED" and s)(c.collect()), timeout=60)
    pids = [p.pid for p in s.run("sweep").processes]
    assert pids[0] == w.pid and kids[0] in pids  # the zombie child, no longer another run's


FORKS_IN_A_THREAD = r"""
import subprocess, sys, threading, time
def fork():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
t = threading.Thread(target=fork)
t.start()
t.join()
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
time.sleep(120)
"""


def test_walked_tree_holds_children_of_every_thread_and_reads_no_other_process(spawn, progress_dir, table_mode):
    """A child forked by a worker thread is the process's child too (the
    kernel lists it under that thread); an unrelated process on the machine
    is not looked at when the tree is walked."""
    main = spawn([sys.executable, "-c", FORKS_IN_A_THREAD])
    kids = wait_until(lambda: (lambda k: len(k) == 2 and k)(psutil.Process(main.pid).children()), timeout=60)
    other = spawn(SLEEPER)
    write(progress_dir, "t", doc("t", pid=main.pid, pid_create_time=psutil.Process(main.pid).create_time()))
    c = collector(progress_dir)
    for _ in range(2):
        r = c.collect().run("t")
        assert [p.pid for p in r.processes] == [main.pid] + sorted(k.pid for k in kids)
        assert [p.depth for p in r.processes] == [0, 1, 1]
    if table_mode == "walked":
        assert set(c._table.rows) == {main.pid} | {k.pid for k in kids} and other.pid not in c._table.rows
    else:
        assert other.pid in c._table.rows


def test_psutil_path_where_proc_is_not_readable(spawn, progress_dir, monkeypatch):
    """Without /proc (other systems) the table comes from process_iter and the
    figures from psutil, with Process objects kept so cpu_percent is real."""
    monkeypatch.setattr(procs_mod, "_HAVE_PROC", False)
    busy = spawn([sys.executable, "-c", "import threading\nwhile True: pass"])
    ct = wait_until(lambda: psutil.Process(busy.pid).create_time(), timeout=60)
    write(progress_dir, "b", doc("b", pid=busy.pid, pid_create_time=ct))
    c = collector(progress_dir)
    r = c.collect().run("b")
    assert r.alive and r.processes[0].cpu_percent is None  # first sight
    time.sleep(0.3)
    r = c.collect().run("b")
    p = r.processes[0]
    assert p.cpu_percent > 5.0 and p.rss_bytes > 1_000_000 and p.num_threads == 1
    assert [t.tid for t in p.threads] == [busy.pid] and p.status in ("running", "sleeping")
    assert p.name.startswith("python")
    assert r.resources.cpu_percent == p.cpu_percent


def test_resolve_budgets_fills_gpu_from_devices():
    from ttop.collect import GpuDevice, HostInfo
    from ttop.collect.host import resolve_budgets

    host = HostInfo(hostname="h", cpu_count=8, mem_total=64 * GB)
    gpus = [GpuDevice(index=0, memory_total=80 * GB), GpuDevice(index=1, memory_total=80 * GB),
            GpuDevice(index=2)]  # a device whose memory could not be read adds nothing
    assert resolve_budgets(None, host, gpus) == Budgets(cpus=8.0, ram_bytes=64 * GB, gpu_bytes=160 * GB)
    assert resolve_budgets(None, host, []) == Budgets(cpus=8.0, ram_bytes=64 * GB, gpu_bytes=None)
    given = Budgets(cpus=2, ram_bytes=GB)
    assert resolve_budgets(given, host, gpus) == Budgets(cpus=2, ram_bytes=GB, gpu_bytes=160 * GB)
    given = Budgets(cpus=2, ram_bytes=GB, gpu_bytes=GB)
    assert resolve_budgets(given, host, gpus) is given


def test_live_process_with_an_old_heartbeat_is_stale(spawn, progress_dir):
    """Alive but silent (hung, or stuck in a long step): shown, and flagged."""
    p = spawn(SLEEPER)
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    write(progress_dir, "hung", doc("hung", updated_at=time.time() - 600, pid=p.pid, pid_create_time=ct))
    r = collector(progress_dir).collect().run("hung")
    assert r.alive is True and r.status == "RUNNING" and not r.status_inferred
    assert r.stale and r.stale_reason == "no heartbeat for 10 min"
    assert r.processes[0].pid == p.pid


def test_injected_clock_drives_heartbeat_ages(progress_dir):
    t0 = 1795000000.0
    now = [t0]
    write(progress_dir, "r", doc("r", updated_at=t0 - 5, host="far"))
    c = collector(progress_dir, interval=1.0, clock=lambda: now[0])
    s = c.collect()
    assert s.taken_at == t0 and s.run("r").heartbeat_age == 5.0 and not s.run("r").stale
    now[0] = t0 + 1000
    r = c.collect().run("r")
    assert r.heartbeat_age == 1005.0 and r.stale and r.stale_reason == "no heartbeat for 16 min"
    write(progress_dir, "r", doc("r", updated_at=t0 + 999, host="far"))  # still seen: real time for the scan
    r = c.collect().run("r")
    assert r.heartbeat_age == 0.0 and not r.stale  # timed from when ttop saw it change


def test_a_command_line_read_empty_mid_exec_is_read_again(spawn, progress_dir, monkeypatch):
    """Between an exec's new name and its new arguments (the kernel sets
    comm before it lays out argv) /proc/<pid>/cmdline reads empty: that is
    not kept as the process's command line for good."""
    p = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    ct = psutil.Process(p.pid).create_time()
    write(progress_dir, "mid", doc("mid", pid=p.pid, pid_create_time=ct, host=socket.gethostname()))
    c = collector(progress_dir)
    real = psutil.Process.cmdline
    reads = []

    def cmdline(self):
        reads.append(self.pid)
        return [] if self.pid == p.pid and reads.count(p.pid) == 1 else real(self)

    monkeypatch.setattr(psutil.Process, "cmdline", cmdline)
    first = wait_until(lambda: (lambda r: r.processes[0] if r is not None and r.processes else None)(c.collect().run("mid")),
                       timeout=30)
    assert first.pid == p.pid and first.cmdline == ""  # the read mid-exec
    again = c.collect().run("mid").processes[0]
    assert again.cmdline.endswith("time.sleep(120)"), again.cmdline


def test_a_process_that_execs_is_shown_as_what_it_runs_now(spawn, progress_dir):
    """A process keeps its PID and create time across exec (a shell that
    execs the trainer, a launcher): its name and command line are read
    again once its name in /proc changed, not kept from before (the signal
    confirmation names the process by them)."""
    import subprocess

    p = spawn([sys.executable, "-c", "import os, sys; sys.stdin.readline(); os.execvp('sleep', ['sleep', '120'])"],
              stdin=subprocess.PIPE)
    ct = psutil.Process(p.pid).create_time()
    write(progress_dir, "ex", doc("ex", pid=p.pid, pid_create_time=ct, host=socket.gethostname()))
    c = collector(progress_dir)
    c.first_look()

    def main_proc():
        run = c.collect().run("ex")
        return run.processes[0] if run is not None and run.processes else None

    before = wait_until(main_proc, timeout=30)
    assert before.pid == p.pid and "python" in before.name.lower() and "execvp" in before.cmdline
    p.stdin.write(b"go\n")
    p.stdin.flush()
    wait_until(lambda: psutil.Process(p.pid).name() == "sleep", timeout=30)
    after = wait_until(lambda: (lambda q: q if q is not None and q.name == "sleep" else None)(main_proc()), timeout=30)
    assert after.pid == p.pid and after.cmdline == "sleep 120"
