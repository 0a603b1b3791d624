"""No path trusted twice: the output viewer reads through descriptors opened
below the folder without following links, and re-checks a replaced file
before showing it. Real users, real swaps, real races (a flipper process of
another user swapping names while the viewer reads)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ttop import fsafe
from ttop.arrival import ArrivalLog
from ttop.collect import Collector
from ttop.levers.logs import log_files
from ttop.logfile import LogPager

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"SECRET-FROM-OUTSIDE"
INSIDE = b"inside line"
RACE_ROUNDS = 400


def shown_bytes(pager, height=20):
    pager.refresh()
    return b"\n".join(raw for _s, _e, raw in pager.visible(height))


@pytest.fixture
def outside():
    d = tempfile.mkdtemp(prefix="ttop-outside-", dir="/tmp")
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def flipper_as(outside):
    """Start tests/flipper.py as a user (the system's python3 where that user
    can run it, else as root: the race is the same); stopped at teardown."""
    started = []
    script = os.path.join(outside, "flipper.py")
    shutil.copy(os.path.join(HERE, "flipper.py"), script)
    os.chmod(script, 0o644)

    def start(user, *args):
        py = "/usr/bin/python3"
        kw = {}
        if user is not None and os.access(py, os.X_OK):
            p = user.popen([py, script] + list(args), stdout=subprocess.PIPE)
        else:
            p = subprocess.Popen([sys.executable, script] + list(args), stdout=subprocess.PIPE, **kw)
        started.append(p)
        assert p.stdout.readline().strip() == b"go"
        return p

    yield start
    for p in started:
        p.kill()
        p.wait()
        p.stdout.close()


def run_of(folder, key):
    return Collector(folder, gpu=False, tpu=False).collect().run(key)


def write_run(user, folder, key, **extra):
    import json

    d = {"format": "ttop.progress/1", "run_name": key, "status": "FINISHED", "updated_at": time.time()}
    d.update(extra)
    user.write(os.path.join(folder, key + ".json"), json.dumps(d).encode())


def test_log_swapped_for_a_symlink_while_the_viewer_is_open(three_users, shared_dir, outside):
    """Issue case 2: B swaps brun.stdout.log for a link to a file only root
    can read while root has the viewer open: root never sees it."""
    b = three_users[0]
    secret = os.path.join(outside, "shadow")
    with open(secret, "wb") as f:
        f.write(SECRET + b"\n")
    os.chmod(secret, 0o600)
    write_run(b, shared_dir, "brun")
    log = os.path.join(shared_dir, "brun.stdout.log")
    b.write(log, INSIDE + b"\n")
    run = run_of(shared_dir, "brun")
    real, _shown, reason = log_files(shared_dir, run)["stdout"]
    assert reason is None
    pager = LogPager(real, folder=shared_dir, owner=run.owner_uid)
    assert INSIDE in shown_bytes(pager)
    b.sh('ln -s "$1" "$2.new" && mv -f "$2.new" "$2"', secret, log)
    got = shown_bytes(pager)
    assert SECRET not in got and got == b""
    assert pager.file.error == "not shown: is a symbolic link (not followed)"
    # a hard link is a regular file: the owner check keeps it out
    os.unlink(log)
    os.link(secret, log)
    got = shown_bytes(pager)
    assert SECRET not in got
    assert pager.file.error == "not shown: owned by root, not by the run's owner %s" % b.name
    # the run's own file again: shown again (a replaced file, checked first)
    os.unlink(log)
    b.write(log, INSIDE + b" again\n")
    assert shown_bytes(pager) == INSIDE + b" again"


def test_fifo_under_a_log_name_does_not_hang(three_users, shared_dir):
    b = three_users[0]
    b.sh('mkfifo "$1"', os.path.join(shared_dir, "f.stdout.log"))
    pager = LogPager(os.path.join(shared_dir, "f.stdout.log"), folder=shared_dir, owner=b.uid)
    assert shown_bytes(pager) == b"" and pager.file.error == "not shown: not a regular file"


def test_race_file_flipped_with_a_symlink_never_shows_outside(three_users, shared_dir, outside, flipper_as):
    b = three_users[0]
    secret = os.path.join(outside, "b-secret")
    b.write(secret, SECRET + b"\n")  # B's own file outside: only the link check keeps it out
    log = os.path.join(shared_dir, "r.stdout.log")
    b.write(log, INSIDE + b"\n")
    flipper_as(b, "file", log, secret, INSIDE.decode() + "\n")
    long_lived = LogPager(log, folder=shared_dir, owner=b.uid)
    arrival = ArrivalLog([("stdout", log)], folder=shared_dir, owner=b.uid)
    inside = refused = rounds = 0
    while rounds < RACE_ROUNDS or not (inside and refused) and rounds < 50 * RACE_ROUNDS:
        rounds += 1
        for pager in (long_lived, LogPager(log, folder=shared_dir, owner=b.uid)):
            got = shown_bytes(pager)
            assert SECRET not in got
            inside += INSIDE in got
            refused += pager.file.error is not None
        arrival.poll()
        assert not any("SECRET" in text for _k, text in arrival.lines)
    assert inside > 0 and refused > 0  # the race really ran both ways


def test_race_folder_flipped_with_a_symlink_never_shows_outside(three_users, shared_dir, outside, flipper_as):
    b = three_users[0]
    evil = os.path.join(outside, "evil")
    b.sh('mkdir -p "$1"', evil)
    b.write(os.path.join(evil, "out.log"), SECRET + b"\n")
    logs = os.path.join(shared_dir, "logs")
    b.sh('mkdir -p "$1"', logs)
    b.write(os.path.join(logs, "out.log"), INSIDE + b"\n")
    b.sh('ln -s "$1" "$2"', evil, os.path.join(shared_dir, "logs.alt"))
    write_run(b, shared_dir, "d", logs={"stdout": "logs/out.log"})
    run = run_of(shared_dir, "d")
    real = log_files(shared_dir, run)["stdout"][0]
    assert real == os.path.join(shared_dir, "logs", "out.log")
    flipper_as(b, "dir", logs, os.path.join(shared_dir, "logs.alt"))
    long_lived = LogPager(real, folder=shared_dir, owner=run.owner_uid)
    inside = refused = rounds = 0
    while rounds < RACE_ROUNDS or not (inside and refused) and rounds < 50 * RACE_ROUNDS:
        rounds += 1
        for pager in (long_lived, LogPager(real, folder=shared_dir, owner=run.owner_uid)):
            got = shown_bytes(pager)
            assert SECRET not in got
            inside += INSIDE in got
            refused += pager.file.error is not None
    assert inside > 0 and refused > 0


def test_open_beneath_refuses_escapes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f").write_bytes(b"x")
    fd = fsafe.open_beneath(str(tmp_path), "sub/f")
    assert os.read(fd, 10) == b"x"
    os.close(fd)
    for bad in ("/etc/passwd", "../x", "sub/../../x", "", "a\x00b"):
        with pytest.raises(fsafe.Refused):
            fsafe.open_beneath(str(tmp_path), bad)
    (tmp_path / "ln").symlink_to(tmp_path / "sub")
    with pytest.raises(OSError):
        fsafe.open_beneath(str(tmp_path), "ln/f")
    with pytest.raises(fsafe.Refused):
        fsafe.open_beneath(str(tmp_path), "sub")


# ---------------------------------------------------------------------------
# delete


def _dir_fd_of(folder, *names):
    """A descriptor of whichever of ``names`` is a real folder right now (the
    flipper exchanges a folder and a link): the set-up never writes through
    the link."""
    while True:
        for n in names:
            try:
                return os.open(os.path.join(folder, n), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except OSError:
                continue


def _put(dfd, rel, data=b"x"):
    *dirs, base = rel.split("/")
    fd = os.dup(dfd)
    for d in dirs:
        try:
            os.mkdir(d, dir_fd=fd)
        except FileExistsError:
            pass
        nfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = nfd
    f = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=fd)
    os.write(f, data)
    os.close(f)
    os.close(fd)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _snapshot_tree(root):
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for n in files:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


def test_race_delete_never_touches_outside(three_users, shared_dir, outside, flipper_as):
    """Issue case 5: a folder swapped for a link to outside between plan and
    unlink. 300 deletes while another user's flipper exchanges them."""
    from ttop.levers.delete import delete_run_files

    b = three_users[0]
    evil = os.path.join(outside, "evil")
    os.mkdir(evil)
    efd = os.open(evil, os.O_RDONLY | os.O_DIRECTORY)
    for rel in ("x.stdout.log", "rd/victim.txt", "rd/deeper/victim2.txt", "keep.txt"):
        _put(efd, rel, b"CANARY " + rel.encode())
    os.close(efd)
    before = _snapshot_tree(outside)
    runs = os.path.join(shared_dir, "runs")
    os.mkdir(runs)
    os.symlink(evil, os.path.join(shared_dir, "runs.alt"))
    os.chown(runs, b.uid, b.gid)  # b's own names: b may exchange them in the sticky folder
    os.lchown(os.path.join(shared_dir, "runs.alt"), b.uid, b.gid)
    import json

    doc = {"format": "ttop.progress/1", "run_name": "x", "status": "FINISHED", "updated_at": time.time(),
           "logs": {"stdout": "runs/x.stdout.log"}, "run_dir": "runs/rd"}
    with open(os.path.join(shared_dir, "x.json"), "w") as f:
        json.dump(doc, f)
    run = run_of(shared_dir, "x")
    read_ns = os.stat(os.path.join(shared_dir, "x.json")).st_mtime_ns
    flipper_as(b, "dir", runs, os.path.join(shared_dir, "runs.alt"))
    deleted_any = rounds = 0
    while rounds < 300 or not deleted_any and rounds < 3000:
        rounds += 1
        dfd = _dir_fd_of(shared_dir, "runs", "runs.alt")
        for rel in ("x.stdout.log", "rd/victim.txt", "rd/deeper/victim2.txt"):
            _put(dfd, rel)
        os.close(dfd)
        with open(os.path.join(shared_dir, "x.json"), "w") as f:
            json.dump(doc, f)
        os.utime(os.path.join(shared_dir, "x.json"), ns=(read_ns, read_ns))  # the file as read (else refused)
        deleted, _refused = delete_run_files(shared_dir, run)
        deleted_any += len(deleted) > 1
        assert _snapshot_tree(outside) == before
    assert deleted_any > 0  # deletes did happen inside while the race ran


@pytest.fixture
def procs():
    started = []
    yield lambda p: started.append(p) or p
    for p in started:
        p.kill()
        p.wait()


def test_delete_leaves_what_other_runs_name(three_users, shared_dir, procs):
    """Issue case 6: two runs with run_dir "outputs"; a finished file naming a
    live run's logs and run folder."""
    import json

    from ttop.levers.delete import delete_run_files, plan_delete

    a = three_users[0]
    live = procs(a.popen(["sleep", "600"]))
    os.makedirs(os.path.join(shared_dir, "outputs"))
    with open(os.path.join(shared_dir, "outputs", "ckpt.pt"), "wb") as f:
        f.write(b"weights")
    os.makedirs(os.path.join(shared_dir, "live-dir"))
    with open(os.path.join(shared_dir, "live-dir", "state"), "wb") as f:
        f.write(b"live state")
    with open(os.path.join(shared_dir, "live.stdout.log"), "wb") as f:
        f.write(b"live output\n")
    import psutil

    now = time.time()
    docs = {
        "one": {"run_dir": "outputs", "status": "FINISHED"},
        "two": {"run_dir": "outputs", "status": "FINISHED"},
        "live": {"status": "RUNNING", "pid": live.pid, "pid_create_time": psutil.Process(live.pid).create_time(),
                 "run_dir": "live-dir", "heartbeat_interval": 600},
        "thief": {"status": "FINISHED", "logs": {"stdout": "live.stdout.log"}, "run_dir": "live-dir"},
    }
    for key, extra in docs.items():
        d = {"format": "ttop.progress/1", "run_name": key, "updated_at": now}
        d.update(extra)
        with open(os.path.join(shared_dir, key + ".json"), "w") as f:
            json.dump(d, f)
    for path in [os.path.join(shared_dir, n) for n in ("live.json",)]:
        os.chown(path, a.uid, a.gid)  # the live run is a's, like its process
    snap = Collector(shared_dir, gpu=False, tpu=False).collect()
    assert snap.run("live").alive is True
    plan = plan_delete(shared_dir, snap.run("one"), snap.runs)
    assert "run_dir 'outputs': shared with run two, not touched" in plan.skipped
    deleted, _refused = delete_run_files(shared_dir, snap.run("one"), snap.runs)
    assert os.path.join(shared_dir, "one.json") in deleted
    assert _read(os.path.join(shared_dir, "outputs", "ckpt.pt")) == b"weights"
    plan = plan_delete(shared_dir, snap.run("thief"), snap.runs)
    assert "stdout log 'live.stdout.log': shared with live run live, not touched" in plan.skipped
    assert "run_dir 'live-dir': shared with live run live, not touched" in plan.skipped
    delete_run_files(shared_dir, snap.run("thief"), snap.runs)
    assert not os.path.exists(os.path.join(shared_dir, "thief.json"))
    assert _read(os.path.join(shared_dir, "live.stdout.log")) == b"live output\n"
    assert _read(os.path.join(shared_dir, "live-dir", "state")) == b"live state"
    assert live.poll() is None


def test_delete_removes_only_what_the_run_owner_owns(three_users, shared_dir):
    """A run's file naming another user's file and folder as its log and
    run_dir: root deleting the run (root can remove anything in a sticky
    folder, its author cannot) leaves them alone and says why."""
    from ttop.levers.delete import delete_run_files, plan_delete

    b, c = three_users[0], three_users[1]
    c.sh('echo precious > "$1/notes.txt" && mkdir "$1/ckpt" && echo w > "$1/ckpt/model.pt"'
         ' && echo c-log > "$1/evil.stdout.log"', shared_dir)
    b.sh('mkdir "$1/bdir" && chmod 1777 "$1/bdir" && echo b > "$1/bdir/own"', shared_dir)
    c.sh('echo c-in-b > "$1/bdir/theirs"', shared_dir)
    write_run(b, shared_dir, "evil", logs={"stdout": "notes.txt"}, run_dir="ckpt")
    write_run(b, shared_dir, "evil2", run_dir="bdir")
    snap = Collector(shared_dir, gpu=False, tpu=False).collect()
    run = snap.run("evil")
    plan = plan_delete(shared_dir, run, snap.runs)
    assert plan.paths == [os.path.join(shared_dir, "evil.json")]
    who = "owned by %s, not by the run's owner %s: left alone" % (c.name, b.name)
    assert plan.skipped == ["evil.stdout.log: " + who, "stdout log 'notes.txt': " + who, "run_dir 'ckpt': " + who]
    deleted, _refused = delete_run_files(shared_dir, run, snap.runs)
    assert deleted == [os.path.join(shared_dir, "evil.json")]
    assert _read(os.path.join(shared_dir, "notes.txt")) == b"precious\n"
    assert _read(os.path.join(shared_dir, "ckpt", "model.pt")) == b"w\n"
    assert _read(os.path.join(shared_dir, "evil.stdout.log")) == b"c-log\n"
    # inside the run's own folder: its owner's entries go, another user's stay
    deleted, refused = delete_run_files(shared_dir, snap.run("evil2"), snap.runs)
    assert not os.path.exists(os.path.join(shared_dir, "bdir", "own"))
    assert _read(os.path.join(shared_dir, "bdir", "theirs")) == b"c-in-b\n"
    assert "bdir/theirs: owned by %s: left alone" % c.name in refused


def test_detail_charts_only_the_run_owners_history_file(three_users, shared_dir):
    """A run's file naming another user's metric history file as its own
    (``history_file``): the detail screen's reader refuses it, saying whose
    it is, and reads the owner's own file."""
    from ttop.collect.history import HistoryError, HistoryReader

    b, c = three_users[0], three_users[1]
    lines = b'{"format":"ttop.history/1"}\n{"t":1,"d":{"secret_loss":[[1,0.5]]}}\n'
    c.write(os.path.join(shared_dir, "c.history.jsonl"), lines)
    b.write(os.path.join(shared_dir, "b.history.jsonl"), lines.replace(b"secret_loss", b"loss"))
    write_run(b, shared_dir, "thief", history_file="c.history.jsonl")
    write_run(b, shared_dir, "b", history_file="b.history.jsonl")
    thief, own = run_of(shared_dir, "thief"), run_of(shared_dir, "b")
    with pytest.raises(HistoryError, match="c.history.jsonl is owned by %s, not by the run's owner %s" % (c.name, b.name)):
        HistoryReader(shared_dir, thief.data["history_file"], thief.owner_uid).poll()
    assert list(HistoryReader(shared_dir, own.data["history_file"], own.owner_uid).poll()) == ["loss"]
