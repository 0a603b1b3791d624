"""Shared fixtures: real folders, real processes (always reaped), and
``ttop_term``, ttop in a real pty (:mod:`ptyharness`)."""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EXAMPLES = ROOT / "examples"

# ttop's archive index (collect/archive.py) goes to this session's own cache
# folder, inherited by every ttop the tests start, never the user's
_CACHE = tempfile.mkdtemp(prefix="ttop-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, True)

# A test runner started in the background by a non-interactive shell (nohup,
# `cmd &` in a CI script) inherits SIGINT ignored, and every child then
# inherits that too: the Ctrl+C tests would send a signal nobody receives.
# A handler here is reset to the default in each child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _hypothesis_tables():
    """hypothesis works out its Unicode tables on first use when its cache
    folder is new (a fresh clone) and leaks a file object doing it. The
    leak's ResourceWarning, raised by a finalizer during whichever test runs
    next, would fail that test under ``filterwarnings = error``: work the
    tables out once, before the first test, with that warning ignored."""
    try:
        from hypothesis.internal import charmap
    except ImportError:
        return
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        charmap.charmap()
        charmap.intervals_from_codec("utf-8")
        gc.collect()


# fixtures defined in helper modules, registered for every test module
from ptyharness import ttop_term as ttop_term
from users import shared_dir as shared_dir
from users import three_users as three_users


@pytest.fixture(autouse=True)
def _own_config_home(tmp_path_factory, monkeypatch):
    """ttop reads its config file from $XDG_CONFIG_HOME/ttop: every test
    (and every ttop it starts) gets an empty one of its own, so a saved
    column choice never changes what another test sees."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))


@pytest.fixture
def progress_dir(tmp_path):
    d = tmp_path / "progress"
    d.mkdir()
    return d


@pytest.fixture
def spawn():
    """Start real subprocesses; every one is killed (its whole session) and
    reaped at teardown. ``spawn([...], **popen_kwargs) -> Popen``."""
    procs = []

    def _spawn(args, **kw):
        kw.setdefault("start_new_session", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(args, **kw)
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                p.kill()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # a test that failed while reading them leaves its pipes open: closed
        # here, not by the garbage collector in some later test (whose
        # unraisable-exception check would then fail)
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                f.close()


def mount_namespace():
    """The command prefix that runs a child in a mount namespace of its own
    (where it may mount a small tmpfs to fill); skips where there is none."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1)")
    ns = [unshare, "--mount"] if os.geteuid() == 0 else [unshare, "--user", "--map-root-user", "--mount"]
    probe = subprocess.run(ns + ["true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("cannot create a mount namespace here: %s" % probe.stderr.decode().strip())
    return ns


def wait_until(predicate, timeout=60.0, interval=0.05):
    """Poll ``predicate`` until it returns a truthy value; return it, or raise
    AssertionError after ``timeout`` seconds (generous: a slow, loaded
    machine may take many times what this one does; the wait ends as soon
    as the predicate holds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1fs" % timeout)
        time.sleep(interval)


def load_json(path):
    """The JSON document in the file ``path``, or None while it is missing
    or not whole (a reader polling a file another process writes)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def demo_runs(folder, runs):
    """Real ``examples/demo_job.py`` runs writing into ``folder``: ``runs``
    maps each run name to its extra arguments. Yields once every run's
    progress file exists; each run's whole session is killed afterwards."""
    procs = [subprocess.Popen([sys.executable, str(EXAMPLES / "demo_job.py"), "--folder", str(folder), "--name", name,
                               *args], start_new_session=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))
             for name, args in runs.items()]
    try:
        wait_until(lambda: all((Path(folder) / (n + ".json")).exists() for n in runs), timeout=30)
        yield folder
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait(timeout=10)
