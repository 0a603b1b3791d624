"""Real unprivileged users for the trust tests (the tests run as root).

``users(n)`` is a pytest fixture factory: ``make_users`` creates ``n`` users
with ``useradd`` (names unique per test process), yields them as
:class:`User` objects and removes them with ``userdel`` afterwards. Helpers
run commands as a user with ``su`` (a real login-less shell session) or start
processes with ``subprocess.Popen(user=...)`` (setuid in the child).
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from typing import List

import pytest


class User:
    def __init__(self, name: str) -> None:
        pw = pwd.getpwnam(name)
        self.name = name
        self.uid = pw.pw_uid
        self.gid = pw.pw_gid

    def sh(self, script: str, *args: str, input: bytes = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``sh -c script args...`` as this user (through su)."""
        return subprocess.run(["su", self.name, "-s", "/bin/sh", "-c", script, "--", "sh"] + list(args),
                              input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=check,
                              timeout=60)

    def write(self, path: str, data: bytes) -> None:
        """Write ``path`` as this user: temp file then rename (atomic)."""
        self.sh('cat > "$1.tmp" && mv -f "$1.tmp" "$1"', path, input=data)

    def popen(self, args: List[str], **kw) -> subprocess.Popen:
        kw.setdefault("start_new_session", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(args, user=self.uid, group=self.gid, extra_groups=[], **kw)


def _run_retry(args: List[str]) -> None:
    # /etc/passwd is locked while another useradd/userdel runs: retry
    for _ in range(100):
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode == 0:
            return
        if b"lock" not in r.stderr.lower() and r.returncode not in (10,):
            raise RuntimeError("%s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
        time.sleep(0.1)
    raise RuntimeError("%s: /etc/passwd stayed locked" % " ".join(args))


def create_users(n: int) -> List[User]:
    base = "tt%d" % os.getpid()
    out = []
    for i in range(n):
        name = "%s%s" % (base, "bcdefgh"[i])
        try:
            pwd.getpwnam(name)
        except KeyError:
            _run_retry(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
        out.append(User(name))
    return out


def remove_users(users: List[User]) -> None:
    for u in users:
        try:
            _run_retry(["userdel", u.name])
        except RuntimeError:
            pass


@pytest.fixture(scope="module")
def three_users():
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd")
    us = create_users(3)
    try:
        yield us
    finally:
        remove_users(us)


@pytest.fixture
def shared_dir():
    """A world-writable folder with the sticky bit (like /tmp), outside
    pytest's root-only temp folder so that other users can reach it."""
    d = tempfile.mkdtemp(prefix="ttop-shared-", dir="/tmp")
    os.chmod(d, 0o1777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
