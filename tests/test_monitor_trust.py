"""The writer on a folder shared with other users: control files it accepts
(owner, no symbolic links), run names in use by live runs, and SIGTERM
when the script is PID 1 of its PID namespace (a container without init).
Real users (useradd), real processes, real namespaces."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, wait_until
from ttop import progress as P
from ttop.levers import control as C
from ttop.monitor import TrainingMonitor


def read(path):
    with open(path) as f:
        return json.load(f)


def field(path, key, pred, timeout=60):
    def check():
        try:
            d = read(path)
        except (OSError, ValueError):
            return None
        return d if pred(d.get(key)) else None

    return wait_until(check, timeout=timeout)


def user_python(user):
    """A Python interpreter ``user`` can run that imports this checkout's
    ttop (the test venv's may live in root's home)."""
    seen = []
    for cand in (sys.executable, os.path.realpath(sys.executable), getattr(sys, "_base_executable", None),
                 shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"):
        if not cand or cand in seen:
            continue
        seen.append(cand)
        r = user.sh('"$1" -c "import sys; sys.path.insert(0, sys.argv[1]); import ttop" "$2"', cand, str(ROOT),
                    check=False)
        if r.returncode == 0:
            return cand
    pytest.skip("no Python interpreter that user %s can run with this checkout (%s)" % (user.name, ", ".join(seen)))


def control_bytes(seq, variables):
    return json.dumps({"format": P.CONTROL_FORMAT, "seq": seq, "variables": variables}).encode()


# ---------------------------------------------------------------------------
# control files


@pytest.mark.parametrize("planted", ["file", "link"])
def test_control_file_of_another_user_is_refused(three_users, shared_dir, planted):  # noqa: F811
    """User b can write the shared folder: b's control file (or b's link to
    a file the run's user owns: links are never followed) changes nothing
    in A's run. In this sticky folder nor could A's own ttop replace b's
    file: the run makes a control file of its own, under a name with a
    random part, names it in its progress file, and takes edits there."""
    b = three_users[0]
    m = TrainingMonitor(folder=shared_dir, run_name="a-run", interval=0.05, handle_signals=False, gpu=False,
                        variables={"lr": 0.1})
    try:
        m.start_monitoring()
        usual = m.control_file
        assert usual == P.control_path(shared_dir, "a-run") and read(m.path)["control_file"] is None
        if planted == "file":
            b.write(usual, control_bytes(1, {"lr": 1e6}))
            assert os.stat(usual).st_uid == b.uid
            d = field(m.path, "control_error", lambda e: e is not None and "owned by" in e)
            assert "%s (uid %d)" % (b.name, b.uid) in d["control_error"] and "root" in d["control_error"]
        else:
            own = os.path.join(shared_dir, "own-control.json")
            P.write_json_atomic(own, json.loads(control_bytes(2, {"lr": 2e6})))
            b.sh('ln -s "$2" "$1"', usual, own)
            assert os.path.islink(usual)
            d = field(m.path, "control_error", lambda e: e is not None and "symbolic link" in e)
        assert d["control_seq"] == 0 and m.variables["lr"] == 0.1

        # the run reads a file of its own from now on, and says which
        mine = m.control_file
        assert os.path.dirname(mine) == shared_dir and mine != usual and os.stat(mine).st_uid == os.geteuid()
        assert d["control_file"] == os.path.basename(mine) == P.control_name("a-run", d)
        assert ("reading %s instead" % d["control_file"]) in d["control_error"]
        # where ttop writes the next edit (levers.control.write_edit)
        C.write_edit(shared_dir, "a-run", d, "lr", 0.5)
        d = field(m.path, "control_seq", lambda s: s == 1)
        assert d["control_error"] is None and m.variables["lr"] == 0.5
        assert os.lstat(usual).st_uid == b.uid  # b's planted entry untouched
    finally:
        m.set_canceled("test end")


def test_owner_edits_a_run_whose_control_name_another_user_took_first(three_users, shared_dir):  # noqa: F811
    """User c plants control_b-run.json in the sticky folder before b's run
    starts (c can guess run names). b's ttop (run as b, not root) could
    not replace c's file; b's edit and signal request still reach b's run,
    and deleting the ended run removes the run's own control file but not
    c's."""
    b, c = three_users[0], three_users[1]
    c.write(P.control_path(shared_dir, "b-run"), control_bytes(1, {"lr": 9.0}))
    script = textwrap.dedent(
        """
        import signal, sys, time
        sys.path.insert(0, %r)
        from ttop import TrainingMonitor
        signal.signal(signal.SIGUSR1, lambda *a: print("got SIGUSR1", flush=True))
        m = TrainingMonitor(folder=sys.argv[1], run_name="b-run", interval=0.05, gpu=False,
                            variables={"lr": 0.1}, handle_signals=False,
                            on_variable_change=lambda n, o, v: print("applied", v, flush=True))
        m.start_phase("train")
        while m.variables["lr"] != 0.25:
            m.start_batch()
            time.sleep(0.01)
        m.set_finished()
        """
        % str(ROOT)
    )
    edit = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, %r)
        from ttop.levers import control as C
        folder, what = sys.argv[1], sys.argv[2]
        data = json.load(open(folder + "/b-run.json"))
        if what == "signal":
            print(C.write_signal_request(folder, "b-run", data, "SIGUSR1", owner_uid=%d))
        else:
            print(C.write_edit(folder, "b-run", data, "lr", float(what), owner_uid=%d)[0])
        """
        % (str(ROOT), b.uid, b.uid)
    )
    py = user_python(b)
    p = b.popen([py, "-c", script, shared_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = os.path.join(shared_dir, "b-run.json")
        d = field(path, "control_file", lambda n: n is not None)
        assert d["status"] == "RUNNING" and d["control_file"].startswith("control_b-run.")
        mine = os.path.join(shared_dir, d["control_file"])
        assert os.stat(mine).st_uid == b.uid
        r = b.sh('"$1" -c "$2" "$3" 0.5', py, edit, shared_dir)
        assert r.stdout.split() == [b"1"], r.stderr
        field(path, "control_seq", lambda s: s == 1)
        r = b.sh('"$1" -c "$2" "$3" signal', py, edit, shared_dir)
        assert r.stdout.split() == [b"1"], r.stderr
        d = field(path, "signal_ack", lambda a: a is not None and a.get("seq") == 1 and a["result"].startswith("sent "))
        assert d["signal_ack"]["ok"] is True, d["signal_ack"]
        r = b.sh('"$1" -c "$2" "$3" 0.25', py, edit, shared_dir)
        assert r.stdout.split() == [b"2"], r.stderr
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert out.split("\n")[:-1] == ["applied 0.5", "got SIGUSR1", "applied 0.25"], (out, err)
        assert os.stat(P.control_path(shared_dir, "b-run")).st_uid == c.uid  # c's file: never replaced
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_control_file_owned_by_root_is_accepted_by_another_users_run(three_users, shared_dir):  # noqa: F811
    """A run of user b accepts edits from root's ttop (root-owned control
    files) and from b itself, and refuses user c's."""
    b, c = three_users[0], three_users[1]
    script = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, %r)
        from ttop import TrainingMonitor
        m = TrainingMonitor(folder=sys.argv[1], run_name="b-run", interval=0.05, gpu=False,
                            variables={"lr": 0.1},
                            on_variable_change=lambda n, o, v: print("applied", v, flush=True))
        m.start_phase("train")
        while m.variables["lr"] != 0.25:
            m.start_batch()
            time.sleep(0.01)
        m.set_finished()
        """
        % str(ROOT)
    )
    p = b.popen([user_python(b), "-c", script, shared_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = os.path.join(shared_dir, "b-run.json")
        field(path, "status", lambda s: s == "RUNNING")
        assert os.stat(path).st_uid == b.uid
        ctl = P.control_path(shared_dir, "b-run")
        c.write(ctl, control_bytes(1, {"lr": 9.0}))
        d = field(path, "control_error", lambda e: e is not None and c.name in e)
        assert "not by this run's user %s (uid %d) or root" % (b.name, b.uid) in d["control_error"]
        ctl = os.path.join(shared_dir, d["control_file"])  # the run's own file from now on (c's stays)
        P.write_control(shared_dir, "b-run", 2, {"lr": 0.5}, name=d["control_file"])  # root-owned
        d = field(path, "control_seq", lambda s: s == 2)
        assert d["control_error"] is None and d["variables"]["lr"] == 0.5
        os.unlink(ctl)
        b.write(ctl, control_bytes(3, {"lr": 0.25}))  # the run's own user
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert out.split() == ["applied", "0.5", "applied", "0.25"]
        assert read(path)["status"] == "FINISHED"
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


# ---------------------------------------------------------------------------
# SIGTERM as PID 1 of a PID namespace

PID1_CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    with TrainingMonitor(folder=sys.argv[1], run_name="pid1", interval=0.05, gpu=False) as m:
        try:
            print("pid", os.getpid(), flush=True)
            m.start_phase("train")
            while True:
                m.start_batch()
                time.sleep(0.01)
        finally:
            print("finally ran", flush=True)
    print("after the with block", flush=True)
    """
    % str(ROOT)
)


def _unshare_pid_ok():
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return "unshare --pid is not permitted here: %s" % r.stderr.strip()
    return None


def test_sigterm_as_pid_1_of_a_pid_namespace_ends_the_process(tmp_path, progress_dir, spawn):
    import psutil

    why = _unshare_pid_ok()
    if why:
        pytest.skip(why)
    script = tmp_path / "pid1.py"
    script.write_text(PID1_CHILD)
    p = spawn(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(script), str(progress_dir)],
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = str(progress_dir / "pid1.json")
    d = field(path, "batch", lambda b: b is not None and b >= 5)
    assert d["pid"] == 1 and d["status"] == "RUNNING"
    (child,) = psutil.Process(p.pid).children()  # the script, seen from outside the namespace
    child.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the script went on after SIGTERM as PID 1; file says %s" % read(path)["status"])
    assert p.returncode == 128 + signal.SIGTERM, err
    assert out.splitlines() == ["pid 1", "finally ran"]
    d = read(path)
    assert (d["status"], d["error"]) == ("CANCELED", "received SIGTERM")


# ---------------------------------------------------------------------------
# run names in use

HOLDER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    m = TrainingMonitor(folder=sys.argv[1], run_name="shared", interval=0.05, gpu=False, capture_output=True)
    m.start_phase("train")
    print("first run's line", flush=True)
    while True:
        m.start_batch()
        time.sleep(0.01)
    """
    % str(ROOT)
)


def _make(folder, **kw):
    kw.setdefault("interval", 0.05)
    kw.setdefault("handle_signals", False)
    kw.setdefault("gpu", False)
    return TrainingMonitor(folder=str(folder), **kw)


def test_a_name_in_use_by_a_live_run_is_refused(tmp_path, progress_dir, spawn):
    from ttop.monitor import RunNameInUseError

    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = spawn([sys.executable, str(script), str(progress_dir)], stdout=subprocess.DEVNULL)
    path = str(progress_dir / "shared.json")
    log = progress_dir / "shared.stdout.log"
    field(path, "batch", lambda b: b is not None and b >= 3)
    wait_until(lambda: b"first run's line" in log.read_bytes())
    before = log.read_bytes()

    second = _make(progress_dir, run_name="shared", capture_output=True)
    with pytest.raises(RunNameInUseError, match="PID %d" % holder.pid) as e:
        second.start_monitoring()
    assert e.value.pid == holder.pid and e.value.run_name == "shared"
    with pytest.raises(RunNameInUseError):
        with _make(progress_dir, run_name="shared"):
            pytest.fail("the with block must not run")
    # nothing of the first run was touched: its file, its log
    d = read(path)
    assert d["pid"] == holder.pid and d["status"] == "RUNNING"
    assert log.read_bytes().startswith(before)
    field(path, "batch", lambda b: b > d["batch"])  # and it goes on

    # opt-in: a free name is picked
    with _make(progress_dir, run_name="shared", name_conflict="suffix") as m:
        assert m.run_name == "shared-2" and m.path == str(progress_dir / "shared-2.json")
        assert m.control_file == P.control_path(str(progress_dir), "shared-2")
        with _make(progress_dir, run_name="shared", name_conflict="suffix") as m3:
            assert m3.run_name == "shared-3"  # shared-2 is live too (this process)
    assert read(str(progress_dir / "shared-2.json"))["status"] == "FINISHED"
    # an ended run's name is reused as is
    with _make(progress_dir, run_name="shared-2", name_conflict="suffix") as m:
        assert m.run_name == "shared-2"

    # the first run killed (its file still says RUNNING): the name is free
    holder.kill()
    holder.wait()
    assert read(path)["status"] == "RUNNING"
    with _make(progress_dir, run_name="shared") as m:
        assert m.run_name == "shared" and read(path)["pid"] == os.getpid()


def test_a_name_whose_file_is_another_users_is_taken(three_users, shared_dir):  # noqa: F811
    """In a shared (sticky) folder another user's progress file cannot be
    replaced, and it is their run's record: the name is taken, whatever
    the file says (here: an ended run, and a fake naming PID 1). The error
    says whose it is; name_conflict="suffix" picks a free name."""
    b, c = three_users[0], three_users[1]
    c.write(os.path.join(shared_dir, "base.json"), json.dumps(
        {"format": "ttop.progress/1", "run_name": "base", "status": "FINISHED", "updated_at": 1.0}).encode())
    import psutil

    fake = {"format": "ttop.progress/1", "run_name": "init", "status": "RUNNING", "updated_at": 1.0,
            "host": os.uname().nodename, "pid_namespace": P.pid_namespace(), "pid": 1,
            "pid_create_time": psutil.Process(1).create_time()}
    c.write(os.path.join(shared_dir, "init.json"), json.dumps(fake).encode())
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, %r)
        from ttop import TrainingMonitor
        from ttop.monitor import RunNameInUseError
        for name in ("base", "init"):
            try:
                with TrainingMonitor(folder=sys.argv[1], run_name=name, interval=0.05, gpu=False):
                    print("started", name)
            except RunNameInUseError as e:
                print("taken", name, e.pid, str(e) .replace(" ", "_"))
            except OSError as e:
                print("oserror", name, str(e).replace(" ", "_"))
            with TrainingMonitor(folder=sys.argv[1], run_name=name, interval=0.05, gpu=False,
                                 name_conflict="suffix") as m:
                print("suffix", name, m.run_name)
        """
        % str(ROOT)
    )
    p = b.popen([user_python(b), "-c", script, shared_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = [ln.split() for ln in out.splitlines()]
    assert [ln[:2] for ln in lines] == [["taken", "base"], ["suffix", "base"], ["taken", "init"], ["suffix", "init"]]
    assert lines[1][2] == "base-2" and lines[3][2] == "init-2"
    for ln in (lines[0], lines[2]):
        assert ln[2] == "None" and "belongs_to_%s" % c.name in ln[3], ln
        assert "live_run" not in ln[3]  # PID 1 is not c's: no live run of that name
    assert read(os.path.join(shared_dir, "base.json"))["status"] == "FINISHED"  # c's record untouched


def test_a_name_in_use_in_the_same_process_is_refused(progress_dir):
    from ttop.monitor import RunNameInUseError

    first = _make(progress_dir, run_name="twice")
    first.start_monitoring()
    try:
        with pytest.raises(RunNameInUseError, match="PID %d" % os.getpid()):
            _make(progress_dir, run_name="twice").start_phase("train")
    finally:
        first.set_finished()
    second = _make(progress_dir, run_name="twice")  # ended: free again
    second.start_monitoring()
    second.set_finished()


def test_a_reused_pid_or_another_host_does_not_hold_a_name(progress_dir, spawn):
    import psutil

    sleeper = spawn(["sleep", "60"])
    ct = psutil.Process(sleeper.pid).create_time()
    me = _make(progress_dir, run_name="probe")
    me.start_monitoring()
    me.set_finished()
    base = read(me.path)
    for name, changes, held in [
        ("live", {"pid": sleeper.pid, "pid_create_time": ct}, True),
        ("no-create-time", {"pid": sleeper.pid, "pid_create_time": None}, True),
        ("reused-pid", {"pid": sleeper.pid, "pid_create_time": ct - 5.0}, False),
        ("finished", {"pid": sleeper.pid, "pid_create_time": ct, "status": "FINISHED"}, False),
        ("other-host", {"pid": sleeper.pid, "pid_create_time": ct, "host": "elsewhere"}, False),
        ("other-ns", {"pid": sleeper.pid, "pid_create_time": ct, "pid_namespace": "pid:[1]"}, False),
    ]:
        data = dict(base, run_name=name, status="RUNNING", ended_at=None)
        data.update(changes)
        P.write_json_atomic(P.progress_path(str(progress_dir), name), data)
        m = _make(progress_dir, run_name=name, name_conflict="suffix")
        m.start_monitoring()
        m.set_finished()
        assert m.run_name == (name + "-2" if held else name), name


def test_suffix_fits_a_name_at_the_length_cap(progress_dir):
    from ttop.monitor.names import suffixed

    long = "x" * P.MAX_RUN_NAME_BYTES
    assert P.sanitize_run_name(long) == long
    s = suffixed(long, 12)
    assert s.endswith("-12") and len(s.encode()) <= P.MAX_RUN_NAME_BYTES


def test_a_temp_name_planted_by_another_user_does_not_stop_the_writes(three_users, shared_dir):  # noqa: F811
    """The atomic write's temp name (``.<file>.<pid>.tmp``) is predictable:
    another user of a sticky folder who creates it first cannot make every
    write of the run fail (the writer cannot remove their file)."""
    b, c = three_users[0], three_users[1]
    py = user_python(c)
    script = textwrap.dedent("""
        import os, sys
        sys.path.insert(0, sys.argv[1])
        from ttop.progress import temp_name, write_json_atomic
        path = os.path.join(sys.argv[2], "run.json")
        print(temp_name("run.json"), flush=True)
        sys.stdin.readline()  # the other user plants the name meanwhile
        write_json_atomic(path, {"n": 1})
        write_json_atomic(path, {"n": 2})
        print("written", flush=True)
    """)
    p = c.popen([py, "-c", script, str(ROOT), shared_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
    try:
        planted = os.path.join(shared_dir, p.stdout.readline().decode().strip())
        b.sh('echo mine > "$1"', planted)
        out, err = p.communicate(b"\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert out.strip() == b"written", err.decode()
    assert read(os.path.join(shared_dir, "run.json")) == {"n": 2}
    assert sorted(os.listdir(shared_dir)) == sorted([os.path.basename(planted), "run.json"])
    with open(planted) as f:
        assert f.read() == "mine\n"


#: A run of three batches with one metric, in the folder ``argv[2]`` (ttop's source at ``argv[1]``).
THREE_BATCHES = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from ttop.monitor import TrainingMonitor
    m = TrainingMonitor(folder=sys.argv[2], run_name="run", interval=0.05, handle_signals=False)
    m.start_monitoring()
    m.start_phase("train", total_batches=3)
    for i in range(3):
        m.start_batch()
        m.update_metrics(loss=1.0 / (i + 1))
    m.set_finished()
""")

def test_a_history_name_squatted_by_another_user_loses_no_curve(three_users, shared_dir):  # noqa: F811
    """Another user of a sticky folder who creates ``<run>.history.jsonl``
    first (a name anyone can guess) cannot make the run lose its metric
    history: it goes to a name nobody can guess, which the progress file's
    ``history_file`` names, with one line saying so; their file is left as
    it was."""
    b, c = three_users[0], three_users[1]
    squat = os.path.join(shared_dir, "run.history.jsonl")
    b.sh('echo mine > "$1"', squat)
    py = user_python(c)
    script = THREE_BATCHES
    r = c.popen([py, "-c", script, str(ROOT), shared_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = r.communicate(timeout=60)
    assert r.returncode == 0, err.decode()
    doc = read(os.path.join(shared_dir, "run.json"))
    name = doc["history_file"]
    assert name and name != "run.history.jsonl" and "/" not in name
    assert name.startswith(".run.") and name.endswith(".history.jsonl")
    assert os.stat(os.path.join(shared_dir, name)).st_uid == c.uid
    from ttop.collect.history import HistoryReader
    curves = HistoryReader(shared_dir, name, owner=c.uid).poll()
    assert curves["loss"].y == [1.0, 0.5, 1.0 / 3]
    assert ("%s belongs to %s, another user" % (squat, b.name)).encode() in err
    assert name.encode() in err
    with open(squat) as f:
        assert f.read() == "mine\n"


def test_log_names_squatted_by_another_user_lose_no_output(three_users, shared_dir):  # noqa: F811
    """Another user of a sticky folder who puts a link and a FIFO at
    ``<run>.stdout.log`` / ``<run>.stderr.log`` first (names anyone can
    guess) turned the run's output capture off: nothing of its output was
    kept. It goes to hidden names nobody can guess, which the progress
    file's ``logs`` names, with a line saying so; their entries stay as they were."""
    b, c = three_users[0], three_users[1]
    out_squat = os.path.join(shared_dir, "run.stdout.log")
    err_squat = os.path.join(shared_dir, "run.stderr.log")
    b.sh('ln -s /nonexistent/x "$1" && mkfifo "$2"', out_squat, err_squat)
    py = user_python(c)
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from ttop.monitor import TrainingMonitor
        with TrainingMonitor(folder=sys.argv[2], run_name="run", interval=0.05, capture_output=True, gpu=False) as m:
            print("to stdout", flush=True)
            print("to stderr", file=sys.stderr, flush=True)
    """)
    r = c.popen([py, "-c", script, str(ROOT), shared_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = r.communicate(timeout=60)
    assert r.returncode == 0, err.decode()
    assert b"to stdout" in out and b"to stderr" in err  # the console has it all the same
    logs = read(os.path.join(shared_dir, "run.json"))["logs"]
    assert logs and set(logs) == {"stdout", "stderr"}, logs
    for stream, text in (("stdout", "to stdout\n"), ("stderr", "to stderr\n")):
        name = logs[stream]
        assert name.startswith(".run.%s." % stream) and name.endswith(".log") and "/" not in name
        path = os.path.join(shared_dir, name)
        assert os.stat(path).st_uid == c.uid
        with open(path) as f:
            assert f.read() == text
        assert ("belongs to %s, another user" % b.name).encode() in err and name.encode() in err
    assert os.readlink(out_squat) == "/nonexistent/x" and stat.S_ISFIFO(os.lstat(err_squat).st_mode)


def test_a_control_name_another_user_held_before_the_start_is_reported(three_users, shared_dir):  # noqa: F811
    """Another user's FIFO already under the run's control name when it
    starts: the run reads a name of its own, and its ``control_error`` says
    why and which, as when the file comes later (it said nothing)."""
    b = three_users[0]
    usual = P.control_path(shared_dir, "pre-run")
    b.sh('mkfifo "$1"', usual)
    m = TrainingMonitor(folder=shared_dir, run_name="pre-run", interval=0.05, handle_signals=False, gpu=False,
                        variables={"lr": 0.1})
    try:
        m.start_monitoring()
        d = field(m.path, "control_file", lambda n: n is not None)
        assert m.control_file == os.path.join(shared_dir, d["control_file"]) != usual
        assert d["control_error"] == "control file ignored: owned by %s (uid %d), not by this run's user %s or root; " \
            "reading %s instead" % (b.name, b.uid, "root (uid 0)", d["control_file"])
        C.write_edit(shared_dir, "pre-run", d, "lr", 0.5)
        d = field(m.path, "control_seq", lambda s: s == 1)
        assert d["control_error"] is None and m.variables["lr"] == 0.5
    finally:
        m.set_finished()


@pytest.mark.parametrize("as_root", [False, True])
def test_a_history_name_squatted_with_a_folder_loses_no_curve(three_users, shared_dir, as_root):  # noqa: F811
    """The same with a folder at ``<run>.history.jsonl``: no file can be
    renamed over it (not even by root), and the run kept no metric history
    at all (``history_file`` null, the detail screen's charts empty)."""
    b, c = three_users[0], three_users[1]
    squat = os.path.join(shared_dir, "run.history.jsonl")
    b.sh('mkdir "$1"', squat)
    script = THREE_BATCHES
    argv = [sys.executable if as_root else user_python(c), "-c", script, str(ROOT), shared_dir]
    r = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) if as_root else \
        c.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = r.communicate(timeout=60)
    assert r.returncode == 0, err.decode()
    doc = read(os.path.join(shared_dir, "run.json"))
    name = doc["history_file"]
    assert name and name.startswith(".run.") and name.endswith(".history.jsonl"), (doc["history_file"], err)
    from ttop.collect.history import HistoryReader
    curves = HistoryReader(shared_dir, name, owner=0 if as_root else c.uid).poll()
    assert curves["loss"].y == [1.0, 0.5, 1.0 / 3]
    assert ("%s belongs to %s, another user" % (squat, b.name)).encode() in err
    assert os.path.isdir(squat) and os.listdir(squat) == []
