"""Who may claim which process: a run is its progress file's owner's, and
only holds that user's processes (docs/security.md). Real users, real files
written by them, real processes running as them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import psutil
import pytest

from conftest import wait_until
from ttop.collect import Collector
from ttop.sinks.jsonout import run_to_dict, snapshot_to_dict


def doc(name, pid, ctime, status="RUNNING", **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": time.time(),
         "pid": pid, "pid_create_time": ctime, "heartbeat_interval": 60}
    d.update(extra)
    return json.dumps(d).encode()


def collect(folder):
    return Collector(folder, gpu=False, tpu=False).collect()


@pytest.fixture
def procs():
    started = []

    def track(p):
        started.append(p)
        return p

    yield track
    for p in started:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                p.kill()
        p.wait(timeout=10)


def ctime(pid):
    return psutil.Process(pid).create_time()


def children_of(pid, n):
    return wait_until(lambda: len(psutil.Process(pid).children()) >= n and psutil.Process(pid).children())


def test_file_of_one_user_naming_another_users_process_gets_nothing(three_users, shared_dir, procs):
    b, c = three_users[0], three_users[1]
    victim = procs(c.popen(["sleep", "600"]))
    b.write(os.path.join(shared_dir, "innocent-run.json"), doc("innocent-run", victim.pid, ctime(victim.pid)))
    run = collect(shared_dir).run("innocent-run")
    assert run.owner_uid == b.uid and run.owner == b.name
    assert run.processes == ()
    assert run.resources.source == "none" and run.resources.rss_bytes is None
    assert run.ownership_note == "pid %d belongs to %s, not to the file's owner %s" % (victim.pid, c.name, b.name)
    assert run.alive is None
    d = run_to_dict(run)
    assert d["owner"] == b.name and d["owner_uid"] == b.uid and d["processes"] == []
    assert d["ownership_note"] == run.ownership_note


def test_pid_1_claims_nothing(three_users, shared_dir):
    b = three_users[0]
    b.write(os.path.join(shared_dir, "init.json"), doc("init", 1, ctime(1)))
    run = collect(shared_dir).run("init")
    assert run.processes == () and run.resources.num_procs is None
    assert run.ownership_note.startswith("pid 1 belongs to root, not to the file's owner %s" % b.name)


def test_root_owned_file_naming_pid_1_gets_pid_1_alone(shared_dir):
    with open(os.path.join(shared_dir, "init.json"), "wb") as f:
        f.write(doc("init", 1, ctime(1)))
    run = collect(shared_dir).run("init")
    assert [p.pid for p in run.processes] == [1]  # every orphan of the machine is not this run's


def test_other_user_cannot_steal_a_worker(three_users, shared_dir, procs):
    a, b = three_users[0], three_users[1]
    main = procs(a.popen(["sh", "-c", "sleep 600 & sleep 600 & wait"]))
    workers = children_of(main.pid, 2)
    a.write(os.path.join(shared_dir, "a-run.json"), doc("a-run", main.pid, ctime(main.pid)))
    w = workers[0]
    b.write(os.path.join(shared_dir, "b-steal.json"), doc("b-steal", w.pid, w.create_time()))
    snap = collect(shared_dir)
    a_run, b_run = snap.run("a-run"), snap.run("b-steal")
    assert sorted(p.pid for p in a_run.processes) == sorted([main.pid] + [x.pid for x in workers])
    assert a_run.ownership_note is None and a_run.alive is True
    assert b_run.processes == () and b_run.ownership_note.startswith("pid %d belongs to %s" % (w.pid, a.name))


def test_same_owner_files_naming_one_process_one_holds_it(three_users, shared_dir, procs):
    a = three_users[0]
    main = procs(a.popen(["sleep", "600"]))
    ct = ctime(main.pid)
    now = time.time()
    # one script, three runs: an ended one, then two running (the later one is its current run)
    a.write(os.path.join(shared_dir, "a-done.json"), doc("a-done", main.pid, ct, status="FINISHED",
                                                         started_at=now - 5, ended_at=now - 4))
    a.write(os.path.join(shared_dir, "b-current.json"), doc("b-current", main.pid, ct, started_at=now - 10))
    a.write(os.path.join(shared_dir, "c-older.json"), doc("c-older", main.pid, ct, started_at=now - 20))
    c = Collector(shared_dir, gpu=False, tpu=False)
    for _ in range(2):  # the same holder every cycle
        snap = c.collect()
        cur = snap.run("b-current")
        assert [p.pid for p in cur.processes] == [main.pid] and cur.ownership_note is None
        for other in (snap.run("a-done"), snap.run("c-older")):
            assert other.processes == () and other.resources.source == "none"
            assert other.ownership_note == "shared: pid %d is held by run b-current: its processes and resources are shown there" % main.pid
            assert other.alive is True  # its process lives: it is only counted once


def test_child_of_another_user_is_not_counted(three_users, shared_dir, procs):
    c = three_users[1]
    # a root job whose helper drops to user c: the helper is c's, not the run's
    main = procs(subprocess.Popen(
        ["sh", "-c", "su %s -s /bin/sh -c 'exec sleep 600' & sleep 600 & wait" % c.name],
        start_new_session=True, stdin=subprocess.DEVNULL))

    def c_proc():
        for p in psutil.Process(main.pid).children(recursive=True):
            try:
                if p.uids().real == c.uid:
                    return p
            except psutil.Error:
                pass
        return None

    theirs = wait_until(c_proc)
    try:
        with open(os.path.join(shared_dir, "root-run.json"), "wb") as f:
            f.write(doc("root-run", main.pid, ctime(main.pid)))
        run = collect(shared_dir).run("root-run")
    finally:
        theirs.kill()  # su may start it in a session of its own
    pids = [p.pid for p in run.processes]
    assert main.pid in pids and theirs.pid not in pids
    assert "belongs to %s, not to the file's owner root" % c.name in run.ownership_note


def test_symlink_to_someone_elses_file_is_the_links_makers_claim(three_users, shared_dir, procs):
    a, b = three_users[0], three_users[1]
    main = procs(a.popen(["sleep", "600"]))
    private = os.path.join(shared_dir, "a-private")
    a.sh('mkdir -p "$1"', private)
    a.write(os.path.join(private, "a.json"), doc("a", main.pid, ctime(main.pid)))
    b.sh('ln -s "$1" "$2"', os.path.join(private, "a.json"), os.path.join(shared_dir, "b-link.json"))
    run = collect(shared_dir).run("b-link")
    assert run.owner == b.name and run.processes == ()


def test_symlink_to_a_file_its_maker_cannot_read_is_not_read(three_users, shared_dir):
    """ttop often runs as root, and what it shows leaves the screen (the
    --serve page on localhost, CSV files): a link made by B to a file only A
    can read must not show its contents as B's run."""
    a, b = three_users[0], three_users[1]
    private = os.path.join(shared_dir, "a-secret")
    a.sh('mkdir -m 700 "$1"', private)
    a.write(os.path.join(private, "s.json"), doc("TOPSECRET", 1, 0.0, status="FINISHED"))
    a.sh('mkdir -m 755 "$1" && touch "$1/x" && chmod 600 "$1/x"', os.path.join(shared_dir, "a-open"))
    a.write(os.path.join(shared_dir, "a-open", "mine.json"), doc("mine", 1, 0.0, status="FINISHED"))
    a.sh('chmod 600 "$1"', os.path.join(shared_dir, "a-open", "mine.json"))
    b.sh('ln -s "$1" "$2" && ln -s "$3" "$4"', os.path.join(private, "s.json"), os.path.join(shared_dir, "b-link.json"),
         os.path.join(shared_dir, "a-open", "mine.json"), os.path.join(shared_dir, "b-link2.json"))
    snap = collect(shared_dir)
    assert snap.run("b-link") is None and snap.run("b-link2") is None
    reasons = {s.name: s.reason for s in snap.skipped}
    why = "symbolic link by %s to a file %s cannot read: not read" % (b.name, b.name)
    assert reasons == {"b-link.json": why, "b-link2.json": why}
    assert "TOPSECRET" not in json.dumps(snapshot_to_dict(snap))
    # the same links made by A, who can read them, are A's runs
    a.sh('ln -s "$1" "$2"', os.path.join(private, "s.json"), os.path.join(shared_dir, "a-link.json"))
    assert collect(shared_dir).run("a-link").run_name == "TOPSECRET"


def test_symlink_to_an_unreadable_file_that_is_no_progress_file_tells_nothing_of_it(three_users, shared_dir):
    """Why a file is not a progress file quotes it (its ``format``, its
    ``status``, where its JSON breaks): for B's link to a file only A can
    read, the reason is the link's, never the file's."""
    a, b = three_users[0], three_users[1]
    private = os.path.join(shared_dir, "a-secret")
    a.sh('mkdir -m 700 "$1"', private)
    a.write(os.path.join(private, "conf.json"), b'{"format": "TOPSECRET-1", "x": 1}')
    a.write(os.path.join(private, "st.json"), doc("r", 1, 0.0, status="TOPSECRET-2"))
    a.write(os.path.join(private, "bad.json"), b'{"TOPSECRET-3": [1, 2,, 3]}')
    for name in ("conf", "st", "bad"):
        b.sh('ln -s "$1" "$2"', os.path.join(private, name + ".json"), os.path.join(shared_dir, "b-%s.json" % name))
    snap = collect(shared_dir)
    why = "symbolic link by %s to a file %s cannot read: not read" % (b.name, b.name)
    assert {s.name: s.reason for s in snap.skipped} == {"b-conf.json": why, "b-st.json": why, "b-bad.json": why}
    assert "TOPSECRET" not in json.dumps(snapshot_to_dict(snap))


def test_no_signal_for_a_process_the_run_does_not_hold(three_users, shared_dir, procs):
    from test_levers import Ctx

    from ttop.levers import signals as S
    from ttop.ui import levers
    from ttop.ui.screen import Target

    b, c = three_users[0], three_users[1]
    victim = procs(c.popen(["sleep", "600"]))
    mine = procs(b.popen(["sleep", "600"]))
    b.write(os.path.join(shared_dir, "innocent-run.json"), doc("innocent-run", victim.pid, ctime(victim.pid)))
    b.write(os.path.join(shared_dir, "b-own.json"), doc("b-own", mine.pid, ctime(mine.pid)))
    snap = collect(shared_dir)
    run = snap.run("innocent-run")
    note = "pid %d belongs to %s, not to the file's owner %s" % (victim.pid, c.name, b.name)
    assert S.signal_refusal(run) == note
    # the UI: k on the run is refused; l lists what it skips and why before asking
    ctx = Ctx(shared_dir, snap.runs)
    assert levers.open_signal(ctx, Target("run", "innocent-run", victim.pid, ctime(victim.pid))) is None
    assert ctx.notices[-1] == ("cannot signal run innocent-run: " + note, True)
    ctx.push(levers.open_signal_all(ctx, ["innocent-run", "b-own"], "(no filter)"))
    ctx.keys("1")
    text = "\n".join(t for t, _role in ctx.stack[-1].lines)
    assert "Send SIGTERM to 1 RUNNING run (no filter)?" in text
    assert "b-own (PID %d, user %s)" % (mine.pid, b.name) in text
    assert "Skipped: innocent-run: " + note in text
    ctx.keys("y")
    assert mine.wait(timeout=15) == -signal.SIGTERM
    assert victim.poll() is None
    # asked directly, the send re-checks the user right before sending
    ok, msg = S.send_signal(victim.pid, ctime(victim.pid), signal.SIGTERM, owner_uid=b.uid)
    assert not ok and msg == "not sent: PID %d runs as %s, not as the run's owner %s" % (victim.pid, c.name, b.name)
    assert victim.poll() is None


def test_l_does_not_list_a_run_without_a_create_time_as_one_it_signals(three_users, shared_dir, procs):
    """A file naming a PID without ``pid_create_time`` (here another user's
    process, as a stranger's file would) cannot be checked: the send refuses
    it, so the confirmation of ``l`` must not list it among the runs it
    signals (as "PID n, user c"), nor count it."""
    from test_levers import Ctx

    from ttop.levers import signals as S
    from ttop.ui import levers

    b, c = three_users[0], three_users[1]
    victim = procs(c.popen(["sleep", "600"]))
    mine = procs(b.popen(["sleep", "600"]))
    b.write(os.path.join(shared_dir, "no-ctime.json"), doc("no-ctime", victim.pid, None))
    b.write(os.path.join(shared_dir, "b-own.json"), doc("b-own", mine.pid, ctime(mine.pid)))
    snap = collect(shared_dir)
    why = S.signal_refusal(snap.run("no-ctime"))
    assert why is not None and "create time" in why
    ctx = Ctx(shared_dir, snap.runs)
    ctx.push(levers.open_signal_all(ctx, ["no-ctime", "b-own"], "(no filter)"))
    ctx.keys("6")  # SIGCONT
    text = "\n".join(t for t, _role in ctx.stack[-1].lines)
    assert "Send SIGCONT to 1 RUNNING run (no filter)?" in text
    assert "no-ctime (PID" not in text and "Skipped: no-ctime: " + why in text
    ctx.keys("y")
    assert ctx.notices[-1][0].startswith("SIGCONT sent to 1 run; not sent to 1: no-ctime: ")


THREAD_NAMER = r"""
import ctypes, threading, time
libc = ctypes.CDLL(None)
named = threading.Event()
def work():
    libc.prctl(15, b"loader-worker", 0, 0, 0)  # PR_SET_NAME: what pthread_setname_np does for itself
    named.set()
    time.sleep(600)
threading.Thread(target=work, daemon=True).start()
named.wait(60)  # "ready" only once the thread is named (start() returns before that)
print("ready", flush=True)
time.sleep(600)
"""


def test_thread_rows_show_the_thread_name(tmp_path, spawn):
    import sys

    from ttop.collect.snapshot import Snapshot
    from ttop.view.state import ViewState
    from ttop.view.table import _name_text, visible_rows

    p = spawn([sys.executable, "-c", THREAD_NAMER], stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ready"
    p.stdout.close()
    folder = tmp_path / "progress"
    folder.mkdir()
    (folder / "t.json").write_bytes(doc("t", p.pid, ctime(p.pid)))
    run = collect(str(folder)).run("t")
    names = {t.tid: t.name for t in run.processes[0].threads}
    assert names[p.pid] == "python3" or names[p.pid].startswith("python")
    assert "loader-worker" in names.values()
    assert "loader-worker" in [t["name"] for t in run_to_dict(run)["processes"][0]["threads"]]
    rows = visible_rows(Snapshot(seq=1, taken_at=time.time(), folder=str(folder), runs=(run,)),
                        ViewState(expanded=frozenset(["t"])))
    worker = [tid for tid, n in names.items() if n == "loader-worker"][0]
    assert "[T] %d loader-worker" % worker in [_name_text(r).strip() for r in rows if r.kind == "thread"]


def test_another_users_live_run_is_not_killed_where_proc_hides_it(three_users, shared_dir, procs):
    """/proc mounted with hidepid (a hardened or shared login node) hides
    other users' processes: ttop run by one user showed another user's live
    run as KILLED* ("process N is gone"), raised a KILLED alert for it, and
    delete took it for dead. kill(pid, 0) still tells such a process exists
    (EPERM, not ESRCH): whether the run lives cannot be told, and it stays as
    its file says. A run whose process is really gone is still KILLED."""
    import sys

    from conftest import ROOT, mount_namespace

    b, c = three_users[0], three_users[1]
    live = procs(b.popen(["sleep", "600"]))
    dead = procs(b.popen(["sleep", "600"]))
    dead_ct = ctime(dead.pid)
    os.killpg(dead.pid, signal.SIGKILL)
    dead.wait(timeout=10)
    b.write(os.path.join(shared_dir, "live.json"), doc("live", live.pid, ctime(live.pid)))
    b.write(os.path.join(shared_dir, "dead.json"), doc("dead", dead.pid, dead_ct))
    # the collector runs as c, in a mount namespace whose /proc hides other
    # users' processes (everything imported, and a first cycle made, as root:
    # c may not read this interpreter's packages)
    script = ("import os, sys, tempfile\n"
              "sys.path.insert(0, %r)\n"
              "from ttop.collect import Collector\n"
              "from ttop.levers.signals import process_alive\n"
              "Collector(tempfile.mkdtemp(), gpu=False, tpu=False).collect()\n"
              "os.setgroups([]); os.setgid(int(sys.argv[3])); os.setuid(int(sys.argv[2]))\n"
              "snap = Collector(sys.argv[1], gpu=False, tpu=False).collect()\n"
              "for key in ('live', 'dead'):\n"
              "    r = snap.run(key)\n"
              "    print(key, r.status, r.status_inferred, r.alive, process_alive(r.pid, r.pid_create_time))\n"
              % str(ROOT))
    ns = mount_namespace()
    p = subprocess.run(ns + ["sh", "-c", 'mount -t proc -o hidepid=2 proc /proc && exec "$@"', "sh",
                             sys.executable, "-c", script, shared_dir, str(c.uid), str(c.gid)],
                       capture_output=True, timeout=120, text=True)
    if p.returncode != 0 and "mount" in p.stderr:
        pytest.skip("cannot mount /proc with hidepid here: %s" % p.stderr.strip())
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["live RUNNING False None None", "dead KILLED True False False"], p.stdout


@pytest.mark.parametrize("swap", ['rm "$1" && echo "{}" > "$1.t" && mv "$1.t" "$1"', 'rm "$1"'])
def test_link_swapped_after_the_read_still_hides_what_it_led_to(three_users, shared_dir, monkeypatch, swap):
    """B's link to a file only A can read, replaced by B's own regular file
    (or removed) between the read through the link and the look at who made
    the link: the name's owner now (B), not the owner of the file read (A),
    is the run's owner (a removed name: no run), so A's file is not shown."""
    from ttop.collect import scanread

    a, b = three_users[0], three_users[1]
    private = os.path.join(shared_dir, "a-secret")
    a.sh('mkdir -m 700 "$1"', private)
    a.write(os.path.join(private, "s.json"), doc("TOPSECRET", 1, 0.0, status="FINISHED"))
    link = os.path.join(shared_dir, "b-link.json")
    b.sh('ln -s "$1" "$2"', os.path.join(private, "s.json"), link)
    real = scanread.read_progress_at

    def read_then_swap(dfd, name, limit):
        got = real(dfd, name, limit)
        b.sh(swap, link)
        return got

    monkeypatch.setattr(scanread, "read_progress_at", read_then_swap)
    snap = collect(shared_dir)
    assert snap.run("b-link") is None
    assert "TOPSECRET" not in json.dumps(snapshot_to_dict(snap))
