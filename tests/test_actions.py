"""Acting on runs with real processes and real files: signals re-checked by
create time, thread signals, safe deletion, control-file edits."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from conftest import ROOT, wait_until
from ttop import progress as P
from ttop.collect.snapshot import RunSnapshot
from ttop.levers import control, delete, logs, signals

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]


def _ct(pid):
    return psutil.Process(pid).create_time()


def _state(pid):
    return psutil.Process(pid).status()


# ---------------------------------------------------------------------------
# signals


def test_sigterm_kills_a_real_process(spawn):
    p = spawn(SLEEPER)
    ok, msg = signals.send_signal(p.pid, _ct(p.pid), signal.SIGTERM)
    assert ok, msg
    assert msg.startswith("sent SIGTERM to PID %d (" % p.pid)
    assert p.wait(timeout=15) == -signal.SIGTERM


def test_sigstop_then_sigcont_changes_state(spawn):
    p = spawn(SLEEPER)
    ct = _ct(p.pid)
    assert signals.send_signal(p.pid, ct, signal.SIGSTOP)[0]
    wait_until(lambda: _state(p.pid) == psutil.STATUS_STOPPED, timeout=60)
    assert signals.send_signal(p.pid, ct, signal.SIGCONT)[0]
    wait_until(lambda: _state(p.pid) != psutil.STATUS_STOPPED, timeout=60)
    assert p.poll() is None


def test_create_time_mismatch_is_never_signalled(spawn):
    """A PID reused between the snapshot and the key press: the create time
    seen in the snapshot differs from the process's now."""
    p = spawn(SLEEPER)
    ok, msg = signals.send_signal(p.pid, _ct(p.pid) - 100.0, signal.SIGKILL)
    assert not ok
    assert msg.startswith("process changed, not sent")
    time.sleep(0.2)
    assert p.poll() is None
    ok, msg = signals.send_signal(p.pid, None, signal.SIGKILL)
    assert not ok and "no create time" in msg
    assert p.poll() is None


def test_vanished_process(spawn):
    p = spawn(SLEEPER)
    ct = _ct(p.pid)
    p.kill()
    p.wait(timeout=15)
    ok, msg = signals.send_signal(p.pid, ct, signal.SIGTERM)
    assert not ok
    assert msg == "process %d has exited, not sent" % p.pid


def test_permission_denied_is_reported(spawn, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the sender as another user")
    target = spawn(SLEEPER)
    ct = _ct(target.pid)
    code = textwrap.dedent(
        """
        import signal, sys
        sys.path.insert(0, %r)
        from ttop.levers.signals import send_signal
        import os
        os.setgid(65534)
        os.setuid(65534)  # the sender drops root; the target stays root's
        ok, msg = send_signal(%d, %r, signal.SIGTERM)
        print(ok, msg)
        """ % (str(ROOT), target.pid, ct)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False permission denied sending SIGTERM to %d" % target.pid
    assert target.poll() is None


THREADED = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    got = []
    def handler(signum, frame):
        got.append(threading.current_thread().name)
    signal.signal(signal.SIGUSR1, handler)
    def work():
        while True:
            time.sleep(0.02)
    t = threading.Thread(target=work, name="worker", daemon=True)
    t.start()
    print(threading.get_native_id(), t.native_id, flush=True)
    while True:
        time.sleep(0.02)
        if got:
            print("handled in", got.pop(), flush=True)
    """
)


def test_thread_signal_semantics_on_linux(spawn):
    p = spawn([sys.executable, "-c", THREADED], stdout=subprocess.PIPE, text=True)
    try:
        main_tid, worker_tid = map(int, p.stdout.readline().split())
        assert main_tid == p.pid and worker_tid != p.pid
        ct = _ct(p.pid)
        # a Python handler for a signal sent to the worker thread runs in the main thread
        ok, msg = signals.send_signal(p.pid, ct, signal.SIGUSR1, tid=worker_tid)
        assert ok and msg.startswith("sent SIGUSR1 to thread %d of PID %d" % (worker_tid, p.pid))
        assert p.stdout.readline().strip() == "handled in MainThread"
        # a default action (stop) sent to one thread stops the whole process
        assert signals.send_signal(p.pid, ct, signal.SIGSTOP, tid=worker_tid)[0]
        wait_until(lambda: _state(p.pid) == psutil.STATUS_STOPPED, timeout=60)
        assert signals.send_signal(p.pid, ct, signal.SIGCONT, tid=worker_tid)[0]
        wait_until(lambda: _state(p.pid) != psutil.STATUS_STOPPED, timeout=60)
        # a thread that is not in the process
        ok, msg = signals.send_signal(p.pid, ct, signal.SIGTERM, tid=worker_tid + 100000)
        assert not ok and "has exited, not sent" in msg
        assert p.poll() is None
    finally:
        p.kill()
        p.wait(timeout=15)
        p.stdout.close()


def _run(folder, key, status="FINISHED", pid=None, ct=None, local=True, mtime=0.0, **data):
    d = {"format": P.PROGRESS_FORMAT, "run_name": key, "status": status, "updated_at": time.time()}
    if pid is not None:
        d["pid"] = pid
    if ct is not None:
        d["pid_create_time"] = ct
    d.update(data)
    return RunSnapshot(key=key, path=os.path.join(str(folder), key + ".json"), data=d, run_name=key,
                       status=status, reported_status=status, pid=pid, pid_create_time=ct, local=local,
                       host="h", mtime=mtime)


def test_signal_runs_rechecks_each(spawn, progress_dir):
    a = spawn(SLEEPER)
    b = spawn(SLEEPER)
    ra = _run(progress_dir, "a", "RUNNING", a.pid, _ct(a.pid))
    rb = _run(progress_dir, "b", "RUNNING", b.pid, _ct(b.pid) + 50)  # PID reused
    rc = _run(progress_dir, "c", "RUNNING")  # no pid
    sent, refused = signals.signal_runs([ra, rb, rc], signal.SIGTERM)
    assert sent == ["a"]
    assert [k for k, _ in refused] == ["b", "c"]
    assert refused[0][1].startswith("process changed, not sent")
    assert a.wait(timeout=15) == -signal.SIGTERM
    assert b.poll() is None
    text = signals.summarize_signal_runs(signal.SIGTERM, sent, refused)
    assert text.startswith("SIGTERM sent to 1 run; not sent to 2: b: process changed")


# ---------------------------------------------------------------------------
# log paths


def test_log_files_refuse_paths_outside(progress_dir, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (progress_dir / "link.log").symlink_to(outside)
    (progress_dir / "ok.log").write_text("fine")
    for bad in ["../../etc/passwd", str(outside), "link.log", "..", ".", 7]:
        run = _run(progress_dir, "r", logs={"stdout": bad, "stderr": "ok.log"})
        files = logs.log_files(str(progress_dir), run)
        real, shown, reason = files["stdout"]
        assert real is None
        assert reason.startswith("refused: stdout log ") and "not inside the progress folder" in reason
        assert files["stderr"][0] == os.path.realpath(progress_dir / "ok.log")
    # default names when the file has no logs entry
    files = logs.log_files(str(progress_dir), _run(progress_dir, "r"))
    assert files["stdout"][1] == "r.stdout.log" and files["stdout"][2] is None


# ---------------------------------------------------------------------------
# deletion


@pytest.fixture
def outside(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    (d / "victim.txt").write_text("keep me")
    (d / "sub").mkdir()
    (d / "sub" / "deep.txt").write_text("keep me too")
    return d


def _outside_intact(outside):
    return (outside / "victim.txt").read_text() == "keep me" and (outside / "sub" / "deep.txt").read_text() == "keep me too"


def test_delete_removes_the_runs_files_only(progress_dir, outside):
    f = progress_dir
    for name in ["r.json", "control_r.json", "r.stdout.log", "r.stderr.log", "other.json", "custom.log"]:
        (f / name).write_text("x")
    rd = f / "runs" / "r"
    rd.mkdir(parents=True)
    (rd / "ckpt.bin").write_text("weights")
    (rd / "escape").symlink_to(outside)  # a symlink inside the run folder to outside
    (rd / "victim_link").symlink_to(outside / "victim.txt")
    run = _run(f, "r", logs={"stdout": "custom.log", "stderr": "r.stderr.log"}, run_dir="runs/r")
    plan = delete.plan_delete(str(f), run)
    assert plan.refusal is None
    deleted, refused = delete.delete_run_files(str(f), run)
    assert refused == []
    real = os.path.realpath(f)
    assert sorted(os.path.relpath(p, real) for p in deleted) == sorted(
        ["r.json", "control_r.json", "r.stdout.log", "r.stderr.log", "custom.log", "runs/r"])
    assert sorted(os.listdir(f)) == ["other.json", "runs"]
    assert not rd.exists()
    assert _outside_intact(outside)


def test_delete_removes_the_history_file_the_run_names_and_no_other(progress_dir, outside):
    """A run whose usual history name was held by another user's file
    writes its history under another name (``history_file``): deleting the
    run removes that file too, but never a file of another run, one outside
    the folder or one that is not a history file."""
    f = progress_dir
    for name in ["r.json", ".r.3f2a.history.jsonl", "s.json", ".s.77.history.jsonl", "notes.txt"]:
        (f / name).write_text("x")
    run = _run(f, "r", history_file=".r.3f2a.history.jsonl")
    other = _run(f, "s", history_file=".s.77.history.jsonl")
    deleted, refused = delete.delete_run_files(str(f), run, [other])
    assert refused == []
    assert sorted(os.path.basename(p) for p in deleted) == [".r.3f2a.history.jsonl", "r.json"]
    for bad in [".s.77.history.jsonl", "notes.txt", "../outside/victim.txt", str(outside / "victim.txt")]:
        (f / "r.json").write_text("x")
        run = _run(f, "r", history_file=bad)
        deleted, refused = delete.delete_run_files(str(f), run, [other])
        assert [os.path.basename(p) for p in deleted] == ["r.json"], bad
    assert sorted(os.listdir(f)) == [".s.77.history.jsonl", "notes.txt", "s.json"]
    assert _outside_intact(outside)


def test_delete_removes_the_control_file_the_run_names_and_no_other(progress_dir, outside):
    """A run whose usual control name was held by another user's file reads
    one of its own (``control_file``): deleting the run removes that file
    and the usual one, never a name outside the run's own form."""
    f = progress_dir
    own = "control_r.0123456789abcdef.json"
    for name in ["r.json", "control_r.json", own, "s.json", "control_s.json", "control_s.fedcba9876543210.json", "notes.txt"]:
        (f / name).write_text("x")
    run = _run(f, "r", control_file=own)
    other = _run(f, "s", control_file="control_s.fedcba9876543210.json")
    deleted, refused = delete.delete_run_files(str(f), run, [other])
    assert refused == []
    assert sorted(os.path.basename(p) for p in deleted) == ["control_r.0123456789abcdef.json", "control_r.json", "r.json"]
    for bad in ["control_s.fedcba9876543210.json", "notes.txt", "control_r.json.bak", "control_r.XYZ.json",
                "../outside/victim.txt", str(outside / "victim.txt")]:
        (f / "r.json").write_text("x")
        run = _run(f, "r", control_file=bad)
        deleted, refused = delete.delete_run_files(str(f), run, [other])
        assert [os.path.basename(p) for p in deleted] == ["r.json"], bad
    assert sorted(os.listdir(f)) == ["control_s.fedcba9876543210.json", "control_s.json", "notes.txt", "s.json"]
    assert _outside_intact(outside)


@pytest.mark.parametrize("bad", ["../outside/victim.txt", "../../outside/victim.txt", "ABS", "link", "other.json"])
def test_delete_never_follows_logs_outside(progress_dir, outside, bad):
    f = progress_dir
    (f / "r.json").write_text("x")
    (f / "other.json").write_text("another run")
    (f / "link").symlink_to(outside / "victim.txt")
    rel = str(outside / "victim.txt") if bad == "ABS" else bad
    run = _run(f, "r", logs={"stdout": rel, "stderr": rel})
    deleted, refused = delete.delete_run_files(str(f), run)
    assert [os.path.basename(p) for p in deleted] == ["r.json"]
    assert len(refused) == 2 and all("left alone" in r for r in refused)
    assert _outside_intact(outside)
    assert (f / "other.json").read_text() == "another run"
    assert (f / "link").is_symlink()


@pytest.mark.parametrize("bad", [".", "..", "../outside", "ABS", "rdlink", "sub/../..", "r.json"])
def test_delete_never_removes_run_dir_outside(progress_dir, outside, bad):
    f = progress_dir
    (f / "r.json").write_text("x")
    (f / "keep.json").write_text("keep")
    (f / "rdlink").symlink_to(outside)
    (f / "sub").mkdir()
    rel = str(outside) if bad == "ABS" else bad
    run = _run(f, "r", run_dir=rel)
    deleted, refused = delete.delete_run_files(str(f), run)
    assert [os.path.basename(p) for p in deleted] == ["r.json"]
    if bad != "r.json":
        assert refused and "left alone" in refused[0]
    assert _outside_intact(outside)
    assert (f / "keep.json").exists() and (f / "sub").is_dir() and (f / "rdlink").is_symlink()
    assert f.is_dir()


def test_default_log_symlink_is_unlinked_not_its_target(progress_dir, outside):
    f = progress_dir
    (f / "r.json").write_text("x")
    (f / "r.stdout.log").symlink_to(outside / "victim.txt")
    deleted, refused = delete.delete_run_files(str(f), _run(f, "r"))
    assert not os.path.lexists(f / "r.stdout.log")
    assert _outside_intact(outside)


def test_delete_refused_for_a_live_run(progress_dir, spawn):
    f = progress_dir
    p = spawn(SLEEPER)
    for name in ["r.json", "control_r.json", "r.stdout.log"]:
        (f / name).write_text("x")
    # even if the snapshot said the run was over, the process is checked now
    run = _run(f, "r", "FINISHED", p.pid, _ct(p.pid))
    deleted, refused = delete.delete_run_files(str(f), run)
    assert deleted == []
    assert len(refused) == 1 and refused[0].startswith("run r is live: process %d (python" % p.pid)
    assert sorted(os.listdir(f)) == ["control_r.json", "r.json", "r.stdout.log"]
    # the same PID with another create time is another process: not the run
    run = _run(f, "r", "KILLED", p.pid, _ct(p.pid) - 1000)
    deleted, refused = delete.delete_run_files(str(f), run)
    assert len(deleted) == 3 and refused == []
    assert p.poll() is None


def test_delete_keeps_the_progress_file_of_a_run_that_took_the_name_while_the_run_folder_went(progress_dir,
                                                                                              monkeypatch):
    # the check that the file is the one read was made once, before a big
    # run folder's removal: a new run of the name started meanwhile lost
    # its progress file, the last thing deleted
    f = progress_dir
    (f / "r.json").write_text("{}")
    (f / "runs" / "r").mkdir(parents=True)
    (f / "runs" / "r" / "ckpt").write_text("x")
    run = _run(f, "r", run_dir="runs/r", mtime=os.stat(f / "r.json").st_mtime)
    real = delete.fsafe.rmtree_beneath

    def slow_rmtree(*a, **kw):  # a new run writes its file while the tree goes
        (f / "r.json").write_text('{"new": 1}')
        os.utime(f / "r.json", (time.time() + 5, time.time() + 5))
        return real(*a, **kw)

    monkeypatch.setattr(delete.fsafe, "rmtree_beneath", slow_rmtree)
    deleted, refused = delete.delete_run_files(str(f), run)
    assert (f / "r.json").read_text() == '{"new": 1}'
    assert not any(d.endswith("r.json") for d in deleted)
    assert any("r.json" in r and "written again since" in r for r in refused)

def test_delete_refused_when_a_new_run_of_the_name_started_since_it_was_read(progress_dir):
    """Delete acts on the run as ttop last read it: an ended run whose name a
    new run took since (a sweep's next run, a restart; the confirmation was
    open, or the snapshot a cycle old) lost the new run's progress file,
    logs and history. A progress file written again since it was read is
    now left alone, and nothing else is deleted."""
    from ttop.monitor import TrainingMonitor

    f = progress_dir
    with TrainingMonitor(folder=str(f), run_name="r", interval=0.05, handle_signals=False, gpu=False,
                         capture_output=True) as m:
        m.update_metrics(loss=1.0)
    os.utime(f / "r.json", (time.time() - 100, time.time() - 100))
    # the old run's process is gone (the file may name this test's own
    # process, with its create time when the writer had it: live)
    gone = subprocess.Popen(["true"])
    gone.wait()
    old = dict(json.loads((f / "r.json").read_text()), pid=gone.pid, pid_create_time=None)
    ended = _run(f, "r", mtime=os.stat(f / "r.json").st_mtime, **old)
    with TrainingMonitor(folder=str(f), run_name="r", interval=0.05, handle_signals=False, gpu=False,
                         capture_output=True) as m:
        m.update_metrics(loss=2.0)
        print("the new run's line", flush=True)
        wait_until(lambda: b"the new run's line" in (f / "r.stdout.log").read_bytes())
        def listing():  # (the live writer's temporary files come and go)
            return sorted(n for n in os.listdir(f) if not n.endswith(".tmp"))

        names = listing()
        deleted, refused = delete.delete_run_files(str(f), ended)
        assert deleted == []
        assert len(refused) == 1 and "written again since" in refused[0]
        assert listing() == names and "r.json" in names and "r.stdout.log" in names
        assert json.loads((f / "r.json").read_text())["pid"] == os.getpid()
    # read again once the new run ended and its process is gone (here: the
    # test's process runs on, so the file is given a PID that has exited)
    data = dict(json.loads((f / "r.json").read_text()), pid=gone.pid, pid_create_time=None)
    now = _run(f, "r", mtime=os.stat(f / "r.json").st_mtime, **data)
    deleted, refused = delete.delete_run_files(str(f), now)
    assert refused == [] and "r.json" not in os.listdir(f)


def test_delete_refused_for_a_remote_running_run(progress_dir):
    (progress_dir / "r.json").write_text("x")
    run = _run(progress_dir, "r", "RUNNING", 1, 1.0, local=False)
    deleted, refused = delete.delete_run_files(str(progress_dir), run)
    assert deleted == [] and "cannot be checked from here" in refused[0]
    assert (progress_dir / "r.json").exists()


# ---------------------------------------------------------------------------
# control edits


def _control(folder, key):
    return json.loads((folder / ("control_%s.json" % key)).read_text())


def test_edits_are_cumulative_until_acknowledged(progress_dir):
    f = progress_dir
    data = {"variables": {"lr": 0.1, "bs": 32}, "control_seq": 0, "started_at": time.time() - 10}
    assert control.write_edit(str(f), "r", data, "lr", 0.01) == (1, {"lr": 0.01})
    assert control.write_edit(str(f), "r", data, "bs", 64) == (2, {"lr": 0.01, "bs": 64})
    assert _control(f, "r") == {"format": "ttop.control/1", "seq": 2, "variables": {"lr": 0.01, "bs": 64}, "run": "r"}
    assert control.edit_state(data, 2, "lr") == ("pending", "")
    assert control.unacknowledged(str(f), "r", data) == (2, {"lr": 0.01, "bs": 64})
    # acknowledged: the next edit carries only itself
    data = dict(data, control_seq=2)
    assert control.edit_state(data, 2, "lr") == ("applied", "")
    assert control.unacknowledged(str(f), "r", data) == (None, {})
    assert control.write_edit(str(f), "r", data, "lr", 0.5) == (3, {"lr": 0.5})
    # refused: the run names the variable in control_error
    data = dict(data, control_seq=3, control_error="lr: expected float, got str 'x'")
    assert control.edit_state(data, 3, "lr") == ("refused", "lr: expected float, got str 'x'")
    assert control.edit_state(data, 3, "bs") == ("applied", "")
    # a file the run could not use acknowledges nothing: edit 3, acknowledged
    # before it, stays applied (the run says so without moving control_seq)
    data = dict(data, control_error="control file ignored: invalid JSON")
    assert control.edit_state(data, 3, "bs") == ("applied", "")


_EDITOR = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ttop.levers import control
# the lock's wait, not its time-out, is under test: a loaded machine may hold
# one editor off the CPU for longer than the 1 s after which edits go on unlocked
control.LOCK_WAIT = 600.0
folder, name, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
data = {"variables": {"lr": 0.1, "bs": 1}, "control_seq": 0, "started_at": time.time() - 10}
sys.stdin.readline()  # both start together
for i in range(n):
    seq, written = control.write_edit(folder, "r", data, name, i)
    print(seq, sorted(written.items()), flush=True)
"""


def test_two_ttops_editing_one_run_at_once_never_share_a_seq(progress_dir):
    """Two editors (two users' ttops) writing edits of one run at the same
    time: each edit gets its own seq and carries the other's unacknowledged
    edit, so none is replaced by the other's yet shown as applied."""
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", _EDITOR, str(ROOT), str(progress_dir), name, str(n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name in ("lr", "bs")]
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e.decode() for _, e in outs]
    seqs = [[int(line.split(" ", 1)[0]) for line in out.decode().splitlines()] for out, _ in outs]
    assert [len(s) for s in seqs] == [n, n]
    assert len(set(seqs[0]) | set(seqs[1])) == 2 * n  # no seq written twice
    final = _control(progress_dir, "r")
    assert final["seq"] == 2 * n
    assert final["variables"] == {"lr": n - 1, "bs": n - 1}  # nothing unacknowledged was dropped


def test_an_edit_keeps_a_pending_signal_request(progress_dir):
    f = progress_dir
    data = {"variables": {"lr": 0.1}, "control_seq": 0, "started_at": time.time() - 10}
    assert control.write_signal_request(str(f), "r", data, "SIGTERM", "tree") == 1
    assert control.write_edit(str(f), "r", data, "lr", 0.5) == (1, {"lr": 0.5})
    assert _control(f, "r")["signal"] == {"name": "SIGTERM", "target": "tree", "seq": 1}


def test_control_file_of_an_earlier_run_is_not_merged(progress_dir):
    f = progress_dir
    P.write_control(str(f), "r", 7, {"lr": 9.0})
    old = time.time() - 3600
    os.utime(f / "control_r.json", (old, old))
    data = {"variables": {"lr": 0.1, "bs": 1}, "control_seq": 0, "started_at": time.time() - 5}
    assert control.unacknowledged(str(f), "r", data) == (None, {})
    assert control.write_edit(str(f), "r", data, "bs", 2) == (8, {"bs": 2})


def test_variable_types():
    data = {"variables": {"lr": 1, "flag": True, "name": "x", "odd": [1]}, "variable_types": {"lr": "float", "bad": "list"}}
    assert control.variable_type(data, "lr") == "float"
    assert control.variable_type(data, "flag") == "bool"
    assert control.variable_type(data, "name") == "str"
    assert control.variable_type(data, "odd") is None
    assert control.variable_type(data, "missing") is None


READER = textwrap.dedent(
    """
    import json, sys, time
    path, seconds = sys.argv[1], float(sys.argv[2])
    reads = bad = 0
    end = time.time() + seconds
    while time.time() < end:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            continue
        reads += 1
        try:
            obj = json.loads(raw)
            assert obj["variables"]["blob"] == "x" * 20000 + str(obj["seq"])
        except Exception:
            bad += 1
    print(reads, bad)
    """
)


def test_concurrent_reader_never_sees_a_half_written_control_file(progress_dir, spawn):
    f = progress_dir
    path = f / "control_r.json"
    reader = spawn([sys.executable, "-c", READER, str(path), "2.0"], stdout=subprocess.PIPE, text=True)
    seq = 0
    deadline = time.monotonic() + 2.5
    while reader.poll() is None and time.monotonic() < deadline + 30:
        seq += 1
        P.write_control(str(f), "r", seq, {"blob": "x" * 20000 + str(seq)})
    out, _ = reader.communicate(timeout=30)
    reads, bad = map(int, out.split())
    assert seq > 10 and reads > 10
    assert bad == 0
    assert not [n for n in os.listdir(f) if n.endswith(".tmp")]


def test_a_delete_cut_short_leaves_the_run_listed_to_be_deleted_again(progress_dir, spawn):
    """ttop killed in the middle of a delete (a big run folder takes a while):
    the progress file went first, so the run left ttop while its logs and
    run folder stayed, with no run to delete them from. The progress file
    now goes last. (The child stops after its first removal, and is killed.)"""
    f = progress_dir
    for name in ["r.stdout.log", "r.stderr.log", "control_r.json"]:
        (f / name).write_text("x")
    (f / "runs" / "r").mkdir(parents=True)
    (f / "runs" / "r" / "ckpt.bin").write_text("weights")
    doc = {"format": P.PROGRESS_FORMAT, "run_name": "r", "status": "FINISHED", "updated_at": time.time(),
           "logs": {"stdout": "r.stdout.log", "stderr": "r.stderr.log"}, "run_dir": "runs/r"}
    (f / "r.json").write_text(json.dumps(doc))
    child = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from ttop import fsafe
        from ttop.collect import Collector
        from ttop.levers import delete
        real = fsafe.unlink_beneath
        def unlink_then_wait(*args, **kw):
            real(*args, **kw)
            print("removed one", flush=True)
            sys.stdin.readline()  # killed here
        fsafe.unlink_beneath = unlink_then_wait
        snap = Collector(sys.argv[2], gpu=False, tpu=False).collect()
        delete.delete_run_files(sys.argv[2], snap.run("r"), snap.runs)
    """)
    p = spawn([sys.executable, "-c", child, str(ROOT), str(f)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"removed one\n"
    p.kill()
    p.wait(timeout=30)
    p.stdin.close()
    p.stdout.close()
    assert (f / "r.json").exists()  # still listed: c deletes the rest
    from ttop.collect import Collector

    snap = Collector(str(f), gpu=False, tpu=False).collect()
    deleted, refused = delete.delete_run_files(str(f), snap.run("r"), snap.runs)
    assert refused == [] and sorted(os.listdir(f)) == ["runs"] and not (f / "runs" / "r").exists()


MOUNTED = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, %r)
    from ttop import progress as P
    from ttop.collect.snapshot import RunSnapshot
    from ttop.levers import delete

    folder = sys.argv[1]
    d = {"format": P.PROGRESS_FORMAT, "run_name": "r", "status": "FINISHED", "updated_at": time.time(),
         "run_dir": "runs/r"}
    run = RunSnapshot(key="r", path=os.path.join(folder, "r.json"), data=d, run_name="r", status="FINISHED",
                      reported_status="FINISHED", local=True, host="h")
    deleted, refused = delete.delete_run_files(folder, run)
    print("dataset:", sorted(os.listdir(os.path.join(folder, "runs", "r", "data"))))
    print("refused:", refused)
    """
) % str(ROOT)


def _delete_with_a_mount_in_the_run_folder(tmp_path, mount):
    """Delete run ``r`` in a mount namespace where the shell line ``mount``
    has mounted something at its ``data`` folder ("$1"; "$5" is the folder
    ``dataset``); returns the progress folder and what the child printed."""
    from conftest import mount_namespace

    ns = mount_namespace()
    f = tmp_path / "progress"
    data = f / "runs" / "r" / "data"
    data.mkdir(parents=True)
    (f / "r.json").write_text("{}")
    (f / "runs" / "r" / "ckpt.bin").write_text("weights")
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "train.bin").write_text("images")
    script = tmp_path / "child.py"
    script.write_text(MOUNTED)
    shell = mount + ' && exec "$2" "$3" "$4"'
    r = subprocess.run(ns + ["sh", "-c", shell, "sh", str(data), sys.executable, str(script), str(f), str(dataset)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return f, r.stdout


def test_delete_never_goes_into_a_file_system_mounted_in_the_run_folder(tmp_path):
    # a dataset mounted inside the run's folder (a container volume, an NFS
    # share, a tmpfs): the walk went into it and deleted the dataset, a
    # folder outside the progress folder that only appeared inside it
    f, stdout = _delete_with_a_mount_in_the_run_folder(
        tmp_path, 'mount -t tmpfs tmpfs "$1" && echo images > "$1/train.bin"')
    out = stdout.splitlines()
    assert out[0] == "dataset: ['train.bin']", stdout
    assert "another file system mounted here" in out[1], stdout
    assert not (f / "runs" / "r" / "ckpt.bin").exists() and not (f / "r.json").exists()  # the run's own files go


def test_delete_never_goes_into_a_bind_mount_in_the_run_folder(tmp_path):
    # a folder of the same file system bind-mounted inside the run's folder
    # has its parent's device: told apart by its mount, it is left alone
    f, stdout = _delete_with_a_mount_in_the_run_folder(tmp_path, 'mount --bind "$5" "$1"')
    out = stdout.splitlines()
    assert out[0] == "dataset: ['train.bin']", stdout
    assert "another file system mounted here" in out[1], stdout
    assert (tmp_path / "dataset" / "train.bin").read_text() == "images"
    assert not (f / "runs" / "r" / "ckpt.bin").exists() and not (f / "r.json").exists()  # the run's own files go