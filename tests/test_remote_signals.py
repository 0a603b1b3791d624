"""Signals through the control file: ttop on this host asks the writer of a
run on "another host" (its own PID namespace and hostname, made with
unshare) to signal itself; the writer checks the request, acknowledges it in
the progress file and delivers it."""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import psutil
import pytest
from test_collect_remote import UNSHARE, read_json, unshare_allowed

from conftest import wait_until
from ttop import record
from ttop.levers.control import signal_state, write_edit, write_signal_request
from ttop.progress import write_control
from users import shared_dir, three_users  # noqa: F401 (fixtures)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

JOB = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from ttop import TrainingMonitor
with TrainingMonitor(folder=sys.argv[2], run_name="remote", interval=0.2) as m:
    m.start_phase("train", total_batches=10 ** 9)
    t0 = time.time()
    while time.time() - t0 < 120:
        m.start_batch()
        time.sleep(0.01)
"""


@pytest.fixture
def progress_dir(shared_dir):  # noqa: F811 - reachable by the other users of the last test
    from pathlib import Path

    return Path(shared_dir)


@pytest.fixture
def remote_job(spawn, progress_dir):
    why = unshare_allowed()
    if why:
        pytest.skip(why)
    # sh stays PID 1 of the namespace (an init), the job is PID 2: a SIGSTOP to
    # a namespace's PID 1 is ignored by the kernel
    cmd = UNSHARE + ["sh", "-c", 'hostname gpu-node-9 && "$0" -c "$1" "$2" "$3"', sys.executable, JOB, ROOT,
                     str(progress_dir)]
    outer = spawn(cmd)
    path = progress_dir / "remote.json"
    wait_until(lambda: (read_json(path) or {}).get("host") == "gpu-node-9", timeout=60)

    def host_pid():
        for p in psutil.Process(outer.pid).children(recursive=True):
            if p.name().startswith("python"):
                return p.pid
        return None

    pid = wait_until(host_pid, timeout=30)
    return outer, path, pid


def _ack(path, seq):
    data = read_json(path) or {}
    state, result = signal_state(data, seq)
    return (state, result) if state != "pending" else None


def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2]


def test_sigterm_request_ends_the_remote_run_as_canceled(remote_job, progress_dir):
    outer, path, pid = remote_job
    data = read_json(path)
    assert data["pid"] != pid  # its own PID namespace: ttop could not signal it by PID
    seq = write_signal_request(str(progress_dir), "remote", data, "SIGTERM")
    wait_until(lambda: (read_json(path) or {}).get("status") == "CANCELED", timeout=30)
    final = read_json(path)
    assert final["signal_ack"]["seq"] == seq and final["signal_ack"]["ok"] is True
    assert final["signal_ack"]["name"] == "SIGTERM"
    assert outer.wait(timeout=30) == 128 + signal.SIGTERM  # the job died of SIGTERM


def test_a_writer_that_is_pid_1_ends_for_a_signal_left_to_its_default_action(spawn, progress_dir):
    """A container started without an init: the training script is PID 1
    of its PID namespace, and the kernel drops a signal left to its
    default action for it. SIGUSR1 asked for through the control file was
    acknowledged "sent SIGUSR1 to pid 1" while the run went on; the writer
    now ends as the signal asks (as it does for SIGKILL)."""
    why = unshare_allowed()
    if why:
        pytest.skip(why)
    outer = spawn(UNSHARE + ["sh", "-c", 'hostname gpu-node-7 && exec "$0" -c "$1" "$2" "$3"', sys.executable, JOB, ROOT,
                             str(progress_dir)])
    path = progress_dir / "remote.json"
    data = wait_until(lambda: (lambda d: d if d.get("host") == "gpu-node-7" and d.get("status") == "RUNNING" else None)(
        read_json(path) or {}), timeout=60)
    assert data["pid"] == 1
    write_signal_request(str(progress_dir), "remote", data, "SIGUSR1")
    assert outer.wait(timeout=60) == 128 + signal.SIGUSR1


def test_sigstop_then_sigcont_through_the_control_file(remote_job, progress_dir):
    outer, path, pid = remote_job
    seq = write_signal_request(str(progress_dir), "remote", read_json(path), "SIGSTOP")
    wait_until(lambda: _proc_state(pid) == "T", timeout=30)
    state, result = wait_until(lambda: _ack(path, seq), timeout=30)
    assert state == "applied" and "SIGSTOP" in result
    seq2 = write_signal_request(str(progress_dir), "remote", read_json(path), "SIGCONT")
    assert seq2 == seq + 1
    wait_until(lambda: _proc_state(pid) in ("R", "S"), timeout=30)
    # the resumed writer acknowledges it: "sending ..." before it delivers, "sent ..." after
    state, result = wait_until(lambda: (lambda a: a if a and not a[1].startswith("sending") else None)(
        _ack(path, seq2)), timeout=30)
    assert state == "applied" and result.startswith("sent SIGCONT")
    assert (read_json(path) or {}).get("status") == "RUNNING"


def test_unknown_signal_is_refused_with_a_reason(remote_job, progress_dir):
    outer, path, pid = remote_job
    data = read_json(path)
    write_control(str(progress_dir), "remote", data.get("control_seq", 0), {},
                  signal={"name": "SIGSEGV", "target": "main", "seq": 7})
    state, result = wait_until(lambda: _ack(path, 7), timeout=30)
    assert state == "refused" and "unknown signal" in result and "SIGSEGV" in result
    assert _proc_state(pid) in ("R", "S") and (read_json(path) or {}).get("status") == "RUNNING"


def test_request_written_by_another_user_is_refused(remote_job, progress_dir, three_users):  # noqa: F811
    outer, path, pid = remote_job
    stranger = three_users[0]
    doc = {"format": "ttop.control/1", "seq": 0, "variables": {},
           "signal": {"name": "SIGTERM", "target": "main", "seq": 1}}
    stranger.write(str(progress_dir / "control_remote.json"), json.dumps(doc).encode())
    wait_until(lambda: "owned by" in str((read_json(path) or {}).get("control_error")), timeout=30)
    data = read_json(path)
    assert data["status"] == "RUNNING" and data.get("signal_ack") is None
    assert outer.poll() is None


def test_k_on_a_remote_run_requests_the_signal_and_shows_the_answer(remote_job, progress_dir, ttop_term):
    outer, path, pid = remote_job
    t = ttop_term(str(progress_dir), cols=120, rows=24)
    t.wait_for("remote")
    t.wait_for("RUNNING")
    t.press("k")
    t.wait_for("Signal run remote (on host gpu-node-9, user root) through its control file")
    t.press("1")  # SIGTERM
    t.wait_for("Ask run remote (on host gpu-node-9) to send SIGTERM to its main process?")
    t.press("y")
    # the pending message lasts until ttop reads the answer (a cycle or two):
    # a harness slowed by load may see the answer's message first
    t.wait_for(lambda t: "SIGTERM requested from run remote on host gpu-node-9: pending until it answers" in t.text
               or "run remote: SIGTERM applied" in t.text)
    t.wait_for("run remote: SIGTERM applied", timeout=30)
    wait_until(lambda: (read_json(path) or {}).get("status") == "CANCELED", timeout=30)
    t.wait_for("CANCELED", timeout=30)


def test_l_sends_sigstop_then_sigcont_to_a_remote_run_through_its_control_file(remote_job, progress_dir, ttop_term):
    outer, path, pid = remote_job
    t = ttop_term(str(progress_dir), cols=150, rows=24)
    t.wait_for("remote")
    t.wait_for("RUNNING")
    t.press("l")
    t.wait_for("Signal 1 RUNNING run (no filter)")
    t.press("5")  # SIGSTOP
    t.wait_for("Send SIGSTOP to 1 RUNNING run (no filter) (1 of them through its control")
    t.wait_for("Asked through the control file: remote (on host gpu-node-9)")
    assert "re-checked" not in t.text  # nothing sent from here
    t.press("y")
    t.wait_for(lambda t: "requested from 1 run through the control file (pending until it answers)" in t.text
               or "run remote: SIGSTOP applied" in t.text)  # (the first may come and go between two looks)
    wait_until(lambda: _proc_state(pid) == "T", timeout=30)
    t.wait_for("run remote: SIGSTOP applied", timeout=30)
    t.press("l")
    t.wait_for("Signal 1 RUNNING run (no filter)")
    t.press("6")  # SIGCONT: still offered while the stopped writer's heartbeat is silent
    t.wait_for("Send SIGCONT to 1 RUNNING run (no filter)")
    t.press("y")
    wait_until(lambda: _proc_state(pid) in ("R", "S"), timeout=30)
    t.wait_for("run remote: SIGCONT applied", timeout=30)
    assert (read_json(path) or {}).get("status") == "RUNNING" and outer.poll() is None


def test_a_remote_run_stopped_by_request_stays_signallable_though_its_heartbeat_stopped(progress_dir):
    from test_levers import make_run

    from ttop.ui.levers import remote_signallable

    def remote(stale, **data):
        run = make_run(progress_dir, "r", **data)
        return record.replace(run, local=False, stale=stale)

    assert remote_signallable(remote(False))
    assert not remote_signallable(remote(True))  # silent: nobody would answer
    stopped = {"signal_ack": {"seq": 3, "name": "SIGSTOP", "ok": True, "result": "sent SIGSTOP"}}
    assert remote_signallable(remote(True, **stopped))  # its stop guard delivers SIGCONT
    assert not remote_signallable(remote(True, signal_ack=dict(stopped["signal_ack"], ok=False)))
    assert not remote_signallable(record.replace(remote(False), status="FINISHED"))


COUNTING_JOB = r"""
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from ttop import TrainingMonitor
log = sys.argv[3]
def note(text):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, text.encode() + b"\n")
    os.close(fd)
signal.signal(signal.SIGUSR1, lambda *a: note("usr1"))
signal.signal(signal.SIGUSR2, lambda *a: note("end"))
with TrainingMonitor(folder=sys.argv[2], run_name="counted", interval=0.2) as m:
    m.start_phase("train", total_batches=10 ** 9)
    t0 = time.time()
    while time.time() - t0 < 120:
        m.start_batch()
        time.sleep(0.01)
"""


def test_a_request_the_stop_guard_delivered_is_not_sent_again_by_the_resumed_writer(spawn, progress_dir):
    """SIGSTOP through the control file, then SIGUSR1: the stop guard
    delivers SIGUSR1 (and SIGCONT) to the stopped run; the resumed writer
    acknowledges that request, and must not send SIGUSR1 a second time
    (the script's handler would run twice: a checkpoint saved twice, a
    second KeyboardInterrupt for SIGINT)."""
    log = progress_dir / "usr1.log"
    job = spawn([sys.executable, "-c", COUNTING_JOB, ROOT, str(progress_dir), str(log)])
    path = progress_dir / "counted.json"
    wait_until(lambda: (read_json(path) or {}).get("status") == "RUNNING", timeout=60)
    seq = write_signal_request(str(progress_dir), "counted", read_json(path), "SIGSTOP")
    wait_until(lambda: _proc_state(job.pid) == "T", timeout=30)
    assert wait_until(lambda: _ack(path, seq), timeout=30)[0] == "applied"
    seq2 = write_signal_request(str(progress_dir), "counted", read_json(path), "SIGUSR1")
    state, result = wait_until(lambda: (lambda a: a if a and not a[1].startswith("sending") else None)(
        _ack(path, seq2)), timeout=30)
    assert state == "applied" and result.startswith("sent SIGUSR1"), result
    os.kill(job.pid, signal.SIGUSR2)  # handled after any SIGUSR1 already sent (lower signals first)
    wait_until(lambda: log.exists() and "end" in log.read_text(), timeout=30)
    assert log.read_text().split() == ["usr1", "end"]
    assert (read_json(path) or {}).get("status") == "RUNNING"


def _reads_update_atime(folder):
    probe = os.path.join(str(folder), ".atime-probe")
    with open(probe, "w") as f:
        f.write("x")
    past = os.stat(probe).st_mtime_ns - 100 * 10 ** 9
    os.utime(probe, ns=(past, past))
    with open(probe) as f:
        f.read()
    updated = os.stat(probe).st_atime_ns > past
    os.unlink(probe)
    return updated


def test_the_stop_guard_outlives_a_control_file_nested_too_deeply(spawn, progress_dir):
    """The stop guard of a run stopped through its control file died of a
    control file nested too deeply (RecursionError from json.loads; the
    writer itself ignores such a file): a later SIGCONT request was never
    delivered, and the run stayed stopped for good."""
    if not _reads_update_atime(progress_dir):
        pytest.skip("reads do not update access times here (noatime): cannot tell when the guard read the file")
    job = spawn([sys.executable, "-c", JOB, ROOT, str(progress_dir)])
    path = progress_dir / "remote.json"
    wait_until(lambda: (read_json(path) or {}).get("status") == "RUNNING", timeout=60)
    seq = write_signal_request(str(progress_dir), "remote", read_json(path), "SIGSTOP")
    wait_until(lambda: _proc_state(job.pid) == "T", timeout=30)
    assert wait_until(lambda: _ack(path, seq), timeout=30)[0] == "applied"
    control = progress_dir / "control_remote.json"
    deep = '{"format": "ttop.control/1", "seq": %d, "variables": {"x": %s%s}}' % (seq, "[" * 100000, "]" * 100000)
    tmp = progress_dir / "control.tmp"
    tmp.write_text(deep)
    past = os.stat(tmp).st_mtime_ns - 100 * 10 ** 9
    os.utime(tmp, ns=(past, past))
    os.replace(tmp, control)
    wait_until(lambda: os.stat(control).st_atime_ns > past, timeout=30)  # the guard has read it
    seq2 = write_signal_request(str(progress_dir), "remote", read_json(path), "SIGCONT")
    wait_until(lambda: _proc_state(job.pid) in ("R", "S"), timeout=30)
    state, result = wait_until(lambda: (lambda a: a if a and not a[1].startswith("sending") else None)(
        _ack(path, seq2)), timeout=30)
    assert state == "applied" and result.startswith("sent SIGCONT"), result


TREE_JOB = r"""
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ttop import TrainingMonitor
# a worker (sh) with a worker of its own (sleep): the run's tree
kid = subprocess.Popen(["sh", "-c", "sleep 1000 & echo $! > %s; wait" % sys.argv[3]])
with TrainingMonitor(folder=sys.argv[2], run_name="tree", interval=0.2) as m:
    m.start_phase("train", total_batches=10 ** 9)
    t0 = time.time()
    while time.time() - t0 < 120:
        m.start_batch()
        time.sleep(0.01)
"""


def _tree_job(spawn, progress_dir):
    pidfile = progress_dir / "grandchild.pid"
    job = spawn([sys.executable, "-c", TREE_JOB, ROOT, str(progress_dir), str(pidfile)])
    path = progress_dir / "tree.json"
    wait_until(lambda: (read_json(path) or {}).get("status") == "RUNNING", timeout=60)
    grandchild = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=30))
    return job, path, grandchild


@pytest.fixture
def reap():
    """Kill (and continue) the processes listed, should the test leave them
    stopped: a grandchild outlives the spawn fixture's kill of the job."""
    pids = []
    yield pids
    for p in pids:
        for sig in (signal.SIGKILL, signal.SIGCONT):
            try:
                os.kill(p, sig)
            except OSError:
                pass


def _stopped_tree(progress_dir, path, job, grandchild):
    seq = write_signal_request(str(progress_dir), "tree", read_json(path), "SIGSTOP", target="tree")
    wait_until(lambda: _proc_state(job.pid) == "T" and _proc_state(grandchild) == "T", timeout=30)
    assert wait_until(lambda: _ack(path, seq), timeout=30)[0] == "applied"


def _guards(pid):
    return [p for p in psutil.Process(pid).children() if "_stopguard" in " ".join(p.cmdline())]


def test_sigcont_reaches_a_run_whose_tree_was_stopped_through_the_control_file(spawn, progress_dir, reap):
    """SIGSTOP to the run's process tree: the writer starts the stop guard
    (a child of the run) before it sends, and sent SIGSTOP to the guard too,
    as a descendant: the SIGCONT asked for next was never delivered, and the
    run stayed stopped for good."""
    job, path, grandchild = _tree_job(spawn, progress_dir)
    reap.append(grandchild)
    _stopped_tree(progress_dir, path, job, grandchild)
    reap.extend(g.pid for g in _guards(job.pid))
    assert [g.status() for g in _guards(job.pid)] != [psutil.STATUS_STOPPED]
    seq = write_signal_request(str(progress_dir), "tree", read_json(path), "SIGCONT", target="tree")
    wait_until(lambda: _proc_state(job.pid) in ("R", "S") and _proc_state(grandchild) in ("R", "S"), timeout=30)
    assert wait_until(lambda: _ack(path, seq), timeout=30)[0] == "applied"
    assert (read_json(path) or {}).get("status") == "RUNNING"


def test_sigkill_to_a_stopped_tree_reaches_the_whole_tree(spawn, progress_dir, reap):
    """The stop guard delivering a request to the tree of a stopped run
    signalled itself too, as a descendant of the run: SIGKILL ended the
    guard before it reached the workers listed after it (a worker's own
    worker), left stopped for good."""
    job, path, grandchild = _tree_job(spawn, progress_dir)
    reap.append(grandchild)
    _stopped_tree(progress_dir, path, job, grandchild)
    reap.extend(g.pid for g in _guards(job.pid))
    write_signal_request(str(progress_dir), "tree", read_json(path), "SIGKILL", target="tree")
    assert job.wait(timeout=30) == -signal.SIGKILL
    wait_until(lambda: _proc_state(grandchild) in (None, "Z"), timeout=30)


EARLIER_JOB = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from ttop import TrainingMonitor
with TrainingMonitor(folder=sys.argv[2], run_name="again", interval=0.1) as m:
    m.track_variables({"lr": 0.1})
    m.start_phase("train", total_batches=10 ** 9)
    t0 = time.time()
    while time.time() - t0 < 120:
        m.start_batch()
        time.sleep(0.01)
"""


def test_a_signal_request_left_for_an_earlier_run_of_the_name_is_not_delivered_to_the_next(spawn, progress_dir):
    """SIGKILL asked for through the control file ends the run; a sweep or a
    supervisor starts the name again at once. Its control file, written
    less than a second before the new run started, counts as the new run's
    (the allowance for clocks): ttop's next edit carried the SIGKILL
    request into the file it wrote, and the new run, which had seen no
    request yet, killed itself. A request already in the file when the run
    starts is an earlier run's: never delivered."""
    write_control(str(progress_dir), "again", 1, {}, signal={"seq": 1, "name": "SIGKILL", "target": "main"},
                  owner_uid=os.geteuid())
    job = spawn([sys.executable, "-c", EARLIER_JOB, ROOT, str(progress_dir)])
    path = progress_dir / "again.json"
    data = wait_until(lambda: (lambda d: d if d.get("status") == "RUNNING" else None)(read_json(path) or {}), timeout=60)
    control = progress_dir / "control_again.json"
    os.utime(str(control), (data["started_at"], data["started_at"]))  # written just before the run started
    seq, _ = write_edit(str(progress_dir), "again", data, "lr", 0.5, owner_uid=os.geteuid())
    wait_until(lambda: (read_json(path) or {}).get("control_seq", 0) >= seq or job.poll() is not None, timeout=30)
    assert job.poll() is None, "the new run was killed by its predecessor's request"
    final = read_json(path)
    assert final["variables"]["lr"] == 0.5 and final["status"] == "RUNNING"
    ack = final.get("signal_ack")
    assert ack["seq"] == 1 and ack["ok"] is False and "earlier run" in ack["result"]


def test_a_request_after_an_earlier_runs_is_delivered_to_the_next_run(spawn, progress_dir):
    """The request an earlier run of the name left in the control file (seq
    3) is seen by the next run, never delivered; ttop, which takes a file
    older than the run for the earlier run's, numbered its next request for
    the new run from 1 again, which the run ignored as seen: it stayed
    pending for ever. The run answers the old request (refused), and ttop's
    next one comes above it."""
    write_control(str(progress_dir), "again", 1, {}, signal={"seq": 3, "name": "SIGKILL", "target": "main"},
                  owner_uid=os.geteuid())
    old = time.time() - 3600
    os.utime(str(progress_dir / "control_again.json"), (old, old))  # left by a run an hour ago
    job = spawn([sys.executable, "-c", EARLIER_JOB, ROOT, str(progress_dir)])
    path = progress_dir / "again.json"
    data = wait_until(lambda: (lambda d: d if d.get("status") == "RUNNING" else None)(read_json(path) or {}), timeout=60)
    seq = write_signal_request(str(progress_dir), "again", data, "SIGTERM")
    assert seq == 4
    job.wait(timeout=60)
    final = read_json(path)
    assert final["status"] == "CANCELED" and final["signal_ack"]["seq"] == 4, final


def test_the_stop_guard_delivers_a_sigcont_after_a_second_sigstop(progress_dir, reap):
    """SIGSTOP through the control file twice (``l`` pressed twice, or two
    people): the stop guard delivered the second SIGSTOP and ended, as after
    any request, so the SIGCONT asked for next reached no one and the run
    stayed stopped. It keeps guarding the stopped run after a SIGSTOP."""
    import subprocess

    from ttop.monitor.remote import GUARD

    run = subprocess.Popen(["sleep", "1000"])
    reap.append(run.pid)
    os.kill(run.pid, signal.SIGSTOP)
    wait_until(lambda: _proc_state(run.pid) == "T", timeout=30)
    control = progress_dir / "control_stopped.json"
    uid = os.geteuid()
    write_control(str(progress_dir), "stopped", 0, {}, signal={"seq": 1, "name": "SIGSTOP", "target": "main"})
    guard = subprocess.Popen([sys.executable, "-I", "-S", GUARD, str(run.pid), str(control), str(uid), "1", "main"],
                             stdout=subprocess.PIPE)
    reap.append(guard.pid)
    try:
        write_control(str(progress_dir), "stopped", 0, {}, signal={"seq": 2, "name": "SIGSTOP", "target": "main"})
        assert guard.stdout.readline() == b"2\n"  # delivered (the run stays stopped)
        write_control(str(progress_dir), "stopped", 0, {}, signal={"seq": 3, "name": "SIGCONT", "target": "main"})
        wait_until(lambda: _proc_state(run.pid) in ("R", "S"), timeout=30)
        assert guard.stdout.readline() == b"3\n"
        assert guard.wait(timeout=30) == 0
    finally:
        for p in (guard, run):
            p.kill()
            p.wait(timeout=30)
        guard.stdout.close()


def test_the_resumed_writer_takes_the_guards_last_answer(progress_dir):
    """The guard may answer several requests while the run is stopped (a
    second SIGSTOP, then SIGUSR1): the writer, resumed, must take the last
    one as delivered, or it sends that request a second time."""
    import subprocess

    from ttop.monitor.remote import guard_delivered

    class Control:
        stop_guard = subprocess.Popen(["printf", "2\\n3\\n"], stdout=subprocess.PIPE)

    proc = Control.stop_guard
    proc.wait(timeout=30)
    try:
        assert guard_delivered(Control) == 3
    finally:
        proc.stdout.close()


def test_delete_refuses_a_remote_run_stopped_by_request(remote_job, progress_dir):
    """A remote run paused through its control file (SIGSTOP) stops its
    heartbeat with it and turns stale: delete took it for gone and removed
    its progress file, control file, logs and run folder while it was only
    paused (the stop guard resumes it at the next request). It is refused
    like a live run's."""
    from ttop.collect.collector import Collector
    from ttop.levers.delete import delete_run_files

    outer, path, pid = remote_job
    seq = write_signal_request(str(progress_dir), "remote", read_json(path), "SIGSTOP")
    wait_until(lambda: _proc_state(pid) == "T", timeout=30)
    assert wait_until(lambda: _ack(path, seq), timeout=30)[0] == "applied"
    c = Collector(str(progress_dir), gpu=False, tpu=False, notify=False)
    try:
        def stale_run():
            c.collect()
            run = next(r for r in c.latest.runs if r.key == "remote")
            return run if run.stale else None

        run = wait_until(stale_run, timeout=60)
        deleted, refused = delete_run_files(str(progress_dir), run, c.latest.runs)
    finally:
        c.stop()
    assert deleted == [] and refused and "SIGSTOP" in refused[0], refused
    assert path.exists()
    # resumed by the next request: it was only paused
    seq2 = write_signal_request(str(progress_dir), "remote", read_json(path), "SIGCONT")
    wait_until(lambda: _proc_state(pid) in ("R", "S"), timeout=30)
    wait_until(lambda: (_ack(path, seq2) or ("", ""))[0] == "applied", timeout=30)
