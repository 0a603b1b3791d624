"""Shared by tests/test_integrations_*.py: run a training script that uses a
framework callback in a real subprocess, hand it an lr edit the way ttop's
editor writes it, and read its progress file."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, wait_until
from conftest import load_json as load
from ttop.levers.control import write_edit

#: A training script imports a framework (tens of seconds on a loaded CPU).
TIMEOUT = 600

#: Written by the drivers: wait at a marked step until ttop's edit is acknowledged.
DRIVER_PRELUDE = '''
import json, os, sys, time

FOLDER, MODE = sys.argv[1], sys.argv[2]
TRACE = []  # (step, lr the optimizer uses for this step)


def progress(run):
    try:
        with open(os.path.join(FOLDER, run + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def handshake(run):
    """Say 'ready' and block until the run has acknowledged a control edit
    and the test has read the progress file ('go')."""
    open(os.path.join(FOLDER, run + ".ready"), "w").close()
    go = os.path.join(FOLDER, run + ".go")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if os.path.exists(go):
            d = progress(run)
            if d and d.get("control_seq", 0) >= 1:
                return
        time.sleep(0.05)
    raise SystemExit("no edit acknowledged")


def dump_trace(run):
    with open(os.path.join(FOLDER, run + ".trace.json"), "w") as f:
        json.dump(TRACE, f)
'''


def need(module: str) -> None:
    """Skip the calling test module when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(
            "%s is not installed (pip install -e '.[integrations]' installs the frameworks)" % module,
            allow_module_level=True,
        )


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch", TOKENIZERS_PARALLELISM="false")
    e.pop("RANK", None)
    e.pop("LOCAL_RANK", None)
    e.pop("WORLD_SIZE", None)
    return e


def write_driver(tmp_path, body: str):
    path = tmp_path / "driver.py"
    path.write_text(DRIVER_PRELUDE + textwrap.dedent(body))
    return path


def start(spawn, tmp_path, driver, mode: str, *extra: str, **kw):
    folder = tmp_path / "progress"
    folder.mkdir(exist_ok=True)
    with open(tmp_path / ("%s.out" % mode), "w") as out:
        kw.setdefault("stdout", out)
        kw.setdefault("stderr", subprocess.STDOUT)
        p = spawn([sys.executable, str(driver), str(folder), mode] + list(extra), env=env(), cwd=str(tmp_path), **kw)
    return p, folder




def output(tmp_path, mode: str) -> str:
    try:
        return (tmp_path / ("%s.out" % mode)).read_text()[-3000:]
    except OSError:
        return ""


def edit_when_ready(p, folder, run: str, name: str, value):
    """Wait for the driver's 'ready' marker, write an edit as ttop's editor
    does, wait for the acknowledgement; return the progress data then."""
    ready = folder / (run + ".ready")
    wait_until(lambda: ready.exists() or p.poll() is not None, timeout=TIMEOUT)
    assert p.poll() is None, "driver ended before the edit point"
    data = load(folder / (run + ".json"))
    assert data is not None
    write_edit(str(folder), run, data, name, value)
    acked = wait_until(
        lambda: (lambda d: d if d and d.get("control_seq", 0) >= 1 else None)(load(folder / (run + ".json"))),
        timeout=TIMEOUT,
    )
    (folder / (run + ".go")).touch()
    return acked


def finish(p, tmp_path, mode: str, expect_rc=0) -> None:
    rc = p.wait(timeout=TIMEOUT)
    if expect_rc is not None:
        assert rc == expect_rc, output(tmp_path, mode)


def sigterm_when_running(p, folder, run: str):
    """Wait until the run shows training batches, then SIGTERM the driver."""
    ready = folder / (run + ".ready")
    wait_until(lambda: ready.exists() or p.poll() is not None, timeout=TIMEOUT)
    assert p.poll() is None, "driver ended before SIGTERM"
    os.kill(p.pid, signal.SIGTERM)
    p.wait(timeout=TIMEOUT)
    return load(folder / (run + ".json"))
