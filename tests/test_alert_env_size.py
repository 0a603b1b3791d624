"""The alert command runs whatever the length of what a run wrote: the
kernel refuses to start a program with an environment string longer than
128 KiB (E2BIG, "Argument list too long")."""
from __future__ import annotations

import json

from conftest import wait_until
from ttop.sinks.alerts import AlertCommand, command_env


def test_a_failed_runs_alert_runs_though_its_error_and_name_are_huge(tmp_path):
    """A progress file's error is any string (another writer than
    TrainingMonitor, which caps it, may put a whole tensor in it): with a
    300,000-character first line the command never started ("alert command
    could not start: Argument list too long"), and the run's failure reached
    no one but the events file."""
    out = tmp_path / "out.json"
    errors = []
    name = "r" + "\u4e2d" * 100000  # six bytes each once escaped in TTOP_EVENT_JSON
    ev = {"format": "ttop.event/1", "time": 1.5, "event": "status", "run": name, "run_name": name,
          "host": "box", "pid": 42, "status": "FAILED", "previous_status": "RUNNING", "status_reason": None,
          "error": "ValueError: " + "E" * 300000, "health": None, "previous_health": "OK", "reason": None,
          "path": "/p/%s.json" % name, "message": "%s: RUNNING -> FAILED (ValueError: %s)" % (name, "E" * 300000)}
    cmd = AlertCommand('printf "%%s" "$TTOP_EVENT_JSON" > %s' % out, on_error=errors.append)
    try:
        assert cmd.submit(ev)
        wait_until(cmd.idle, timeout=30)
    finally:
        cmd.close()
    assert errors == [] and cmd.ran == 1
    got = json.loads(out.read_text())
    assert got["status"] == "FAILED" and got["error"].startswith("ValueError: EEEE")
    assert got["run"].startswith("r\u4e2d\u4e2d") and got["pid"] == 42
    env = command_env(ev, base={})
    assert env["TTOP_STATUS"] == "FAILED" and env["TTOP_ERROR"].startswith("ValueError: EEE")
    assert env["TTOP_ERROR"].endswith("\u2026") and env["TTOP_RUN"].endswith("\u2026")
    # what fits is given whole
    small = dict(ev, run="r", run_name="r", error="ValueError: bad", message="r: RUNNING -> FAILED", path="/p/r.json")
    env = command_env(small, base={})
    assert (env["TTOP_RUN"], env["TTOP_ERROR"], env["TTOP_PATH"]) == ("r", "ValueError: bad", "/p/r.json")
    assert json.loads(env["TTOP_EVENT_JSON"]) == small
