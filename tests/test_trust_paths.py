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
from ttop.collect import Collector
from ttop.levers.logs import log_files
from ttop.logfile import ArrivalLog, LogPager

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
    inside = refused = 0
    for _ in range(RACE_ROUNDS):
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
    inside = refused = 0
    for _ in range(RACE_ROUNDS):
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
