"""A control file another user planted under a run's control name: the run
refuses it (not its owner's), and ttop, writing an edit or a signal request
for the run, must not carry the stranger's edits into its own file, which
the run would accept. Real users, real files."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from test_monitor_trust import user_python

from conftest import ROOT
from ttop.collect import Collector
from ttop.levers import control
from ttop.monitor.control import ControlPoller


def _victim(b, folder):
    doc = {"format": "ttop.progress/1", "run_name": "vic", "status": "RUNNING", "updated_at": time.time(),
           "started_at": time.time() - 5, "heartbeat_interval": 60, "variables": {"lr": 0.1, "pause": False},
           "variable_types": {"lr": "float", "pause": "bool"}, "control_seq": 0}
    b.write(os.path.join(folder, "vic.json"), json.dumps(doc).encode())
    snap = Collector(folder, gpu=False, tpu=False).collect()
    (run,) = [r for r in snap.runs if r.key == "vic"]
    assert run.owner_uid == b.uid
    return run


def _plant(c, folder, name="control_vic.json", **extra):
    doc = {"format": "ttop.control/1", "seq": 7, "variables": {"pause": True}}
    doc.update(extra)
    c.write(os.path.join(folder, name), json.dumps(doc).encode())


def test_a_strangers_control_file_is_not_carried_into_an_edit(three_users, shared_dir):
    b, c = three_users[0], three_users[1]
    run = _victim(b, shared_dir)
    _plant(c, shared_dir)
    # the run itself refuses the stranger's file
    got = ControlPoller(os.path.join(shared_dir, "control_vic.json"), uid=b.uid).poll()
    assert got is not None and got[2] is not None and "owned by" in got[2]
    # nothing of it shows as an edit of this run
    assert control.current_control(run.folder, run.stem, run.data, owner_uid=run.owner_uid) == (None, {})
    # an edit written by ttop's user holds that edit only
    seq, written = control.write_edit(run.folder, run.stem, run.data, "lr", 0.02, owner_uid=run.owner_uid)
    assert written == {"lr": 0.02}
    path = os.path.join(shared_dir, "control_vic.json")
    with open(path) as f:
        doc = json.load(f)
    assert doc["variables"] == {"lr": 0.02} and doc["seq"] == seq
    # which the run accepts: the stranger's pause never reaches it
    got = ControlPoller(path, uid=b.uid).poll()
    assert got is not None and got[2] is None and got[1] == {"lr": 0.02}


def test_a_strangers_control_file_is_not_carried_into_a_signal_request(three_users, shared_dir):
    b, c = three_users[0], three_users[1]
    run = _victim(b, shared_dir)
    _plant(c, shared_dir)
    control.write_signal_request(run.folder, run.stem, run.data, "SIGUSR1", owner_uid=run.owner_uid)
    with open(os.path.join(shared_dir, "control_vic.json")) as f:
        doc = json.load(f)
    assert doc["variables"] == {} and doc["seq"] == 0 and doc["signal"]["name"] == "SIGUSR1"


def test_a_control_name_that_is_a_link_is_not_followed(three_users, shared_dir, tmp_path):
    b, c = three_users[0], three_users[1]
    run = _victim(b, shared_dir)
    # root's own file elsewhere, reached through a link the stranger made
    secret = tmp_path / "root-only.json"
    secret.write_text(json.dumps({"format": "ttop.control/1", "seq": 9, "variables": {"pause": True}}))
    os.chmod(str(tmp_path), 0o755)
    c.sh('ln -s "$1" "$2"', str(secret), os.path.join(shared_dir, "control_vic.json"))
    assert control.current_control(run.folder, run.stem, run.data, owner_uid=run.owner_uid) == (None, {})
    seq, written = control.write_edit(run.folder, run.stem, run.data, "lr", 0.02, owner_uid=run.owner_uid)
    assert written == {"lr": 0.02} and seq == 1


#: Run as a user: an edit and a signal request for run "vic" of the folder
#: argv[1] (of the user of uid argv[2]), each printing "written" or
#: "refused: <reason>".
WRITE_EDIT_AND_SIGNAL = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, %r)
    from ttop.levers import control
    data = json.load(open(sys.argv[1] + "/vic.json"))
    for write in (lambda: control.write_edit(sys.argv[1], "vic", data, "lr", 0.5, owner_uid=int(sys.argv[2])),
                  lambda: control.write_signal_request(sys.argv[1], "vic", data, "SIGUSR1",
                                                       owner_uid=int(sys.argv[2]))):
        try:
            write()
            print("written")
        except OSError as e:
            print("refused:", e.strerror)
    """
    % str(ROOT)
)


def test_a_control_name_another_user_holds_is_said_plainly(three_users, shared_dir):
    """In a sticky folder a stranger's file under the run's control name
    cannot be replaced by the run's owner: the edit fails, and the reason
    names whose file it is (not a bare "Operation not permitted")."""
    b, c = three_users[0], three_users[1]
    run = _victim(b, shared_dir)
    _plant(c, shared_dir)
    script = WRITE_EDIT_AND_SIGNAL
    p = b.popen([user_python(b), "-c", script, shared_dir, str(run.owner_uid)], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 2, out
    for line in lines:
        assert line.startswith("refused: ") and "control_vic.json" in line and c.name in line, line


def test_an_applied_edit_stays_applied_when_a_later_control_file_is_ignored(progress_dir):
    """Edit #1 is applied; then a control file the run cannot use appears
    (another user's, or broken: here broken). The run says "control file
    ignored: ..." without acknowledging anything new: that is not a refusal
    of edit #1, which the editor must keep showing as applied."""
    from conftest import wait_until
    from ttop.monitor import TrainingMonitor

    path = str(progress_dir / "r.json")

    def data():
        with open(path) as f:
            return json.load(f)

    m = TrainingMonitor(folder=str(progress_dir), run_name="r", interval=0.05, gpu=False, handle_signals=False,
                        variables={"lr": 0.1})
    m.start_phase("train")
    try:
        seq, _ = control.write_edit(str(progress_dir), "r", data(), "lr", 0.5)
        wait_until(lambda: data().get("control_seq") == seq)
        assert control.edit_state(data(), seq, "lr") == ("applied", "")
        (progress_dir / "control_r.json").write_text("{not json")
        wait_until(lambda: (data().get("control_error") or "").startswith("control file ignored"))
        assert data()["control_seq"] == seq and m.variables["lr"] == 0.5
        assert control.edit_state(data(), seq, "lr") == ("applied", "")
    finally:
        m.set_finished()


def test_what_ttop_writes_for_a_swapped_in_file_is_refused_by_the_run_it_was_not_for(three_users, shared_dir):
    """A folder without the sticky bit: eve renames her own progress file
    over alice's vic.json, and root's ttop shows "run vic, user eve". An
    edit or a signal request root then makes lands in control_vic.json,
    root's file, which alice's run would take: it names the user it is for,
    and alice's writer and her stop guard refuse it."""
    from ttop.monitor import _stopguard

    alice, eve = three_users[0], three_users[1]
    os.chmod(shared_dir, 0o777)
    run = _victim(eve, shared_dir)  # eve's file under alice's run's name
    path = os.path.join(shared_dir, "control_vic.json")
    control.write_signal_request(run.folder, run.stem, run.data, "SIGTERM", owner_uid=run.owner_uid)
    seq, written = control.write_edit(run.folder, run.stem, run.data, "lr", 5.0, owner_uid=run.owner_uid)
    assert os.stat(path).st_uid == os.geteuid() and written == {"lr": 5.0}
    got = ControlPoller(path, uid=alice.uid).poll()
    assert got is not None and got[:2] == (None, None), got
    assert "written for the run of uid %d, not for this run's user (uid %d)" % (eve.uid, alice.uid) in got[2]
    assert _stopguard.request(path, alice.uid, 0) is None
    # the run it was written for takes it
    got = ControlPoller(path, uid=eve.uid).poll()
    assert got is not None and got[2] is None and got[:2] == (seq, {"lr": 5.0})
    assert _stopguard.request(path, eve.uid, 0) == ("SIGTERM", "main", 1)
    # and ttop, reading the file for alice's run, does not take eve's edits as alice's
    assert control.current_control(run.folder, run.stem, run.data, owner_uid=alice.uid) == (None, {})


def test_a_run_in_a_rootless_container_takes_a_file_written_for_its_user(three_users, shared_dir):
    """A run in a user namespace (a rootless container) is root inside and
    its user outside, where ttop saw its progress file: the file ttop wrote
    for that user is the run's; one written for another user is not."""
    import shutil

    import pytest

    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    alice, eve = three_users[0], three_users[1]
    probe = alice.sh("unshare -U -r id -u", check=False)
    if probe.returncode != 0 or probe.stdout.strip() != b"0":
        pytest.skip("user namespaces are not permitted here: %s" % probe.stderr.decode(errors="replace"))
    doc = {"format": "ttop.control/1", "seq": 3, "variables": {"lr": 0.5},
           "signal": {"name": "SIGUSR1", "target": "main", "seq": 1}}
    check = (
        "import sys; sys.path.insert(0, %r)\n"
        "from ttop.monitor.control import ControlPoller\n"
        "from ttop.monitor import _stopguard\n"
        "p = sys.argv[1]\n"
        "got = ControlPoller(p).poll()\n"
        "print(got[2] is None and got[:2] == (3, {'lr': 0.5}), _stopguard.request(p, 0, 0) is not None)\n" % str(ROOT))
    results = []
    for owner in (alice, eve):
        name = "control_%s.json" % owner.name
        alice.write(os.path.join(shared_dir, name), json.dumps(dict(doc, run_owner_uid=owner.uid)).encode())
        r = alice.sh('unshare -U -r "$1" -c "$2" "$3"', user_python(alice), check, os.path.join(shared_dir, name))
        results.append(r.stdout.decode().split())
    assert results == [["True", "True"], ["False", "False"]], results


def test_ttop_in_a_rootless_container_names_the_runs_user_as_seen_outside(three_users, shared_dir):
    """ttop in a user namespace sees its own user's files as root's: what
    it writes names that user as the run outside sees itself."""
    import shutil

    import pytest

    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    alice = three_users[0]
    probe = alice.sh("unshare -U -r id -u", check=False)
    if probe.returncode != 0 or probe.stdout.strip() != b"0":
        pytest.skip("user namespaces are not permitted here")
    write = ("import sys; sys.path.insert(0, %r)\n"
             "from ttop.progress import write_control\n"
             "write_control(sys.argv[1], 'inside', 1, {'lr': 0.5}, owner_uid=0)\n" % str(ROOT))
    alice.sh('unshare -U -r "$1" -c "$2" "$3"', user_python(alice), write, shared_dir)
    path = os.path.join(shared_dir, "control_inside.json")
    with open(path) as f:
        assert json.load(f)["run_owner_uid"] == alice.uid
    got = ControlPoller(path, uid=alice.uid).poll()  # alice's run outside takes it
    assert got is not None and got[2] is None and got[:2] == (1, {"lr": 0.5})


def test_ttop_of_another_user_writes_no_control_file_the_run_would_refuse(three_users, shared_dir):
    """ttop run by c (not root) on b's run wrote control_vic.json as c: the
    run refused it ("owned by c"), and in the sticky folder the file stayed
    c's, so b's own ttop could no longer edit or signal b's run. Nothing is
    written now, and the reason says whose run it is."""
    b, c = three_users[0], three_users[1]
    run = _victim(b, shared_dir)
    script = WRITE_EDIT_AND_SIGNAL + textwrap.dedent(
        """
        # what the editor, k and l say before anything is typed or confirmed
        print("written" if control.writer_refusal(int(sys.argv[2])) is None
              else "refused: " + control.writer_refusal(int(sys.argv[2])))
        """
    )
    for user, expect in ((c, "refused: the run is %s's" % b.name), (b, "written")):
        p = user.popen([user_python(user), "-c", script, shared_dir, str(run.owner_uid)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        lines = out.splitlines()
        assert len(lines) == 3 and all(line.startswith(expect) for line in lines), (user.name, out)
        if user is c:
            assert not os.path.lexists(os.path.join(shared_dir, "control_vic.json"))
    assert os.stat(os.path.join(shared_dir, "control_vic.json")).st_uid == b.uid


def test_a_progress_file_naming_another_runs_control_file_is_not_followed(three_users, shared_dir):
    """``control_vic.<16 hex>.json``, the other name a run ``vic`` may give
    (``control_file``), is also the usual control file of a run named
    ``vic.<16 hex>``. Another user's run ``vic`` giving that name must not
    have ttop (root) write that run's file: the run would refuse it (written
    for another user's run), and its own user could not replace a root's file
    in this sticky folder. The name is taken only while a file of the run's
    user (or root) is there, as the run makes its own before it gives it."""
    b, c = three_users[0], three_users[1]
    now = time.time()
    doc = {"format": "ttop.progress/1", "status": "RUNNING", "updated_at": now, "started_at": now - 5,
           "heartbeat_interval": 60, "variables": {"lr": 0.1}, "variable_types": {"lr": "float"}, "control_seq": 0}
    other = "control_vic.0123456789abcdef.json"
    b.write(os.path.join(shared_dir, "vic.0123456789abcdef.json"),
            json.dumps(dict(doc, run_name="vic.0123456789abcdef")).encode())
    c.write(os.path.join(shared_dir, "vic.json"), json.dumps(dict(doc, run_name="vic", control_file=other)).encode())
    snap = Collector(shared_dir, gpu=False, tpu=False).collect()
    (run,) = [r for r in snap.runs if r.key == "vic"]
    assert run.owner_uid == c.uid
    control.write_edit(run.folder, run.stem, run.data, "lr", 0.5, owner_uid=run.owner_uid)
    control.write_signal_request(run.folder, run.stem, run.data, "SIGUSR1", owner_uid=run.owner_uid)
    assert not os.path.lexists(os.path.join(shared_dir, other))
    with open(os.path.join(shared_dir, "control_vic.json")) as f:
        assert json.load(f)["variables"] == {"lr": 0.5}
    _plant(b, shared_dir, name=other)  # b's run's own file: left as it is
    control.write_edit(run.folder, run.stem, run.data, "lr", 0.25, owner_uid=run.owner_uid)
    assert os.stat(os.path.join(shared_dir, other)).st_uid == b.uid
    # c's own other name, made by c's run: taken
    mine = "control_vic.fedcba9876543210.json"
    _plant(c, shared_dir, name=mine, seq=0, variables={})
    c.write(os.path.join(shared_dir, "vic.json"), json.dumps(dict(doc, run_name="vic", control_file=mine)).encode())
    (run,) = [r for r in Collector(shared_dir, gpu=False, tpu=False).collect().runs if r.key == "vic"]
    seq, _ = control.write_edit(run.folder, run.stem, run.data, "lr", 0.125, owner_uid=run.owner_uid)
    with open(os.path.join(shared_dir, mine)) as f:
        assert json.load(f)["variables"] == {"lr": 0.125}


_TWO_RUNS = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from ttop import TrainingMonitor
    with TrainingMonitor(folder=sys.argv[2], run_name=sys.argv[3], interval=0.2) as m:
        m.track_variables({"lr": 0.1})
        m.start_phase("train", total_batches=10 ** 6)
        t0 = time.time()
        while time.time() - t0 < 120:
            m.start_batch()
            time.sleep(0.01)
""")


def _doc(path):
    with open(path) as f:
        return json.load(f)


def test_a_control_file_renamed_over_another_runs_is_refused(three_users, shared_dir, spawn):
    """A folder without the sticky bit: root's ttop edits alice's run a and
    asks it for SIGTERM; eve renames control_a.json (root's file, naming
    alice's uid) over control_b.json. Alice's run b must take neither the
    edit nor the request (nor ttop, editing b, carry them over): the file
    names the run it was written for."""
    from conftest import wait_until

    alice, eve = three_users[0], three_users[2]
    os.chmod(shared_dir, 0o777)
    py = user_python(alice)
    procs = [spawn([py, "-c", _TWO_RUNS, str(ROOT), shared_dir, name], user=alice.uid, group=alice.gid,
                   extra_groups=[]) for name in ("a", "b")]

    def runs():
        snap = Collector(shared_dir, gpu=False, tpu=False).collect()
        # (past their first write, which comes before track_variables)
        got = {r.key: r for r in snap.runs if r.status == "RUNNING" and "lr" in (r.data.get("variables") or {})}
        return got if {"a", "b"} <= set(got) else None

    got = wait_until(runs, timeout=60)
    a, b = got["a"], got["b"]
    control.write_edit(a.folder, a.stem, a.data, "lr", 0.5, owner_uid=a.owner_uid)
    wait_until(lambda: (lambda got: got is not None and got["a"].data["variables"]["lr"] == 0.5)(runs()), timeout=30)
    eve.sh('mv "$1/control_a.json" "$1/control_b.json"', shared_dir)
    b_path = os.path.join(shared_dir, "b.json")
    wait_until(lambda: "written for run" in (_doc(b_path).get("control_error") or ""), timeout=30)
    # ttop editing b does not carry a's edit over into b's own file
    assert control.current_control(b.folder, b.stem, b.data, owner_uid=b.owner_uid) == (None, {})
    # a's signal request, answered, then renamed over b's file: b stays
    a = runs()["a"]
    seq = control.write_signal_request(a.folder, a.stem, a.data, "SIGTERM", owner_uid=a.owner_uid)
    assert procs[0].wait(timeout=60) is not None
    eve.sh('mv "$1/control_a.json" "$1/control_b.json"', shared_dir)
    after = time.time() + 1.0
    # b's writer polls its control file at each heartbeat (0.2 s): wait for a few
    data = wait_until(lambda: (lambda d: d if d["updated_at"] > after else None)(_doc(b_path)), timeout=30)
    assert procs[1].poll() is None and data["status"] == "RUNNING", data
    assert data["variables"]["lr"] == 0.1 and data.get("signal_ack") is None
    assert "written for run \"a\", not for this run \"b\"" in data["control_error"]
    # nor would b's stop guard (were b stopped) deliver it
    from ttop.monitor import _stopguard

    path = os.path.join(shared_dir, "control_b.json")
    assert _stopguard.request(path, alice.uid, 0, "b") is None
    assert _stopguard.request(path, alice.uid, 0, "a") == ("SIGTERM", "main", seq)


def test_an_earlier_runs_control_file_put_back_is_refused(three_users, shared_dir, spawn):
    """A folder without the sticky bit: root's ttop asked alice's run c for
    SIGTERM, and c ended. Eve sets control_c.json (root's file) aside and,
    once alice starts c again, puts it back: a rename keeps its time, which
    is before the new run started, and the new c must not take the old
    request."""
    from conftest import wait_until
    from ttop.monitor import _stopguard

    alice, eve = three_users[0], three_users[2]
    os.chmod(shared_dir, 0o777)
    py = user_python(alice)
    path = os.path.join(shared_dir, "c.json")

    def start():
        return spawn([py, "-c", _TWO_RUNS, str(ROOT), shared_dir, "c"], user=alice.uid, group=alice.gid,
                     extra_groups=[])

    first = start()

    def running():
        snap = Collector(shared_dir, gpu=False, tpu=False).collect()
        r = snap.run("c")
        return r if r is not None and r.status == "RUNNING" and r.pid is not None else None

    c = wait_until(running, timeout=60)
    control.write_signal_request(c.folder, c.stem, c.data, "SIGTERM", owner_uid=c.owner_uid)
    assert first.wait(timeout=60) is not None and _doc(path)["status"] == "CANCELED"
    eve.sh('mv "$1/control_c.json" "$1/.aside"', shared_dir)
    time.sleep(2.5)  # (the new run starts more than the writer's slack, 1 s, after the old file's time)
    second = start()
    wait_until(lambda: running() is not None and running().pid == second.pid, timeout=60)
    eve.sh('mv "$1/.aside" "$1/control_c.json"', shared_dir)
    data = wait_until(lambda: (lambda d: d if "written before this run started" in (d.get("control_error") or "")
                               else None)(_doc(path)), timeout=30)
    assert second.poll() is None and data["status"] == "RUNNING" and data.get("signal_ack") is None, data
    # nor would its stop guard deliver it
    started = data["started_at"]  # (the file's time is more than 1.5 s before: a second's slack)
    assert _stopguard.request(os.path.join(shared_dir, "control_c.json"), alice.uid, 0, "c", started) is None
    assert _stopguard.request(os.path.join(shared_dir, "control_c.json"), alice.uid, 0, "c") is not None


_AHEAD = textwrap.dedent("""
    import sys, time
    _real = time.time
    time.time = lambda: _real() + 600.0  # this host's clock runs 10 min ahead of the file system's
    sys.path.insert(0, sys.argv[1])
    from ttop import TrainingMonitor
    with TrainingMonitor(folder=sys.argv[2], run_name="ahead", interval=0.1, gpu=False) as m:
        m.track_variables({"lr": 0.1})
        print("ready", flush=True)
        while True:
            m.start_batch()
            time.sleep(0.02)
""")


def test_a_writer_whose_clock_runs_ahead_takes_the_control_files_of_its_run(tmp_path, spawn):
    """A run on a host whose clock is 10 min ahead of the file server's (the
    control files ttop writes into the shared folder carry the server's
    time): an edit and a SIGTERM request made a moment after it started are
    its own, not an earlier run's, and are applied."""
    from conftest import wait_until

    folder = str(tmp_path)
    p = spawn([sys.executable, "-c", _AHEAD, str(ROOT), folder], stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ready"
    path = os.path.join(folder, "ahead.json")
    data = _doc(path)
    assert data["started_at"] > time.time() + 500  # (the writer's clock)
    control.write_edit(folder, "ahead", data, "lr", 0.5)
    data = wait_until(lambda: (lambda d: d if d["variables"].get("lr") == 0.5 or d.get("control_error") else None)(_doc(path)),
                      timeout=30)
    assert data["variables"]["lr"] == 0.5 and data.get("control_error") is None, data
    control.write_signal_request(folder, "ahead", data, "SIGTERM")
    assert p.wait(timeout=30) == -signal.SIGTERM
    data = _doc(path)
    assert (data["status"], data["signal_ack"]["ok"]) == ("CANCELED", True), data


def test_the_refusal_for_roots_run_names_root_once(three_users):
    """ttop of a user (not root) on a run of root's said "it takes a control
    file only from root or root, not from b" in the editor, k and l."""
    b = three_users[0]
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from ttop.levers import control\n"
              "print(control.writer_refusal(0)); print(control.writer_refusal(%d))\n" % (str(ROOT), three_users[1].uid))
    p = b.popen([user_python(b), "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.splitlines() == [
        "the run is root's: it takes a control file only from root, not from %s" % b.name,
        "the run is %s's: it takes a control file only from %s or root, not from %s" % (
            three_users[1].name, three_users[1].name, b.name)]
