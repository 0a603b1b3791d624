"""The levers end to end: ``python -m ttop FOLDER`` in a real pseudo-terminal
(tests/ptyharness.py) against real runs (examples/demo_job.py and small real
writer processes). Each test presses the screen's keys and asserts on the
screen and on the effect: the control file written and obeyed, the process
signalled, the files deleted."""
from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from conftest import wait_until
from ptyharness import TtopTerm
from ttop.levers import control
from ttop.progress import write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo_job.py"

# A real run: rewrites its progress file every 0.3 s with its own PID and
# create time; SIGTERM's default action ends it.
WRITER = textwrap.dedent(
    """
    import os, socket, sys, time
    sys.path.insert(0, %r)
    import psutil
    from ttop.progress import write_json_atomic
    folder, name = sys.argv[1], sys.argv[2]
    me = psutil.Process()
    started = time.time()
    while True:
        write_json_atomic(os.path.join(folder, name + ".json"), {
            "format": "ttop.progress/1", "run_name": name, "status": "RUNNING",
            "updated_at": time.time(), "started_at": started, "host": socket.gethostname(),
            "pid": me.pid, "pid_create_time": me.create_time(), "heartbeat_interval": 0.3,
            "phase": "train"})
        time.sleep(0.3)
    """ % str(ROOT)
)


def _ended(folder: Path, name: str, status: str = "FINISHED", **extra) -> None:
    now = time.time()
    doc = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": now - 50,
           "started_at": now - 500, "ended_at": now - 50}
    doc.update(extra)
    write_json_atomic(str(folder / (name + ".json")), doc)


def _kill_all(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _start_writer(spawn, folder: Path, name: str):
    p = spawn([sys.executable, "-c", WRITER, str(folder), name])
    wait_until(lambda: (folder / (name + ".json")).exists(), timeout=30)
    return p


def _progress(folder: Path, name: str) -> dict:
    return json.loads((folder / (name + ".json")).read_text())


def _start(ttop_term, folder, first: str, **kw) -> TtopTerm:
    t = ttop_term(folder, cols=kw.pop("cols", 120), rows=kw.pop("rows", 30), **kw)
    t.wait_for("Run Name", msg="the table never showed")
    t.wait_for(first + " ", msg="the run never showed")
    return t


# ---------------------------------------------------------------------------
# a live demo job shared by the editor and output viewer tests


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("levers") / "progress"
    folder.mkdir()
    args = [sys.executable, str(DEMO), "--folder", str(folder), "--name", "demo", "--epochs", "100000",
            "--batches", "20", "--val-batches", "2", "--batch-time", "0.05", "--workers", "0", "--interval", "0.3"]
    p = subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, cwd=str(ROOT))
    try:
        wait_until(lambda: (folder / "demo.json").exists() and "lr" in _progress(folder, "demo").get("variables", {}),
                   timeout=60)
        yield folder
    finally:
        _kill_all([p])


def test_editor_edit_is_validated_written_applied_and_obeyed(ttop_term, demo):
    t = _start(ttop_term, demo, "demo")
    t.press("e")
    t.wait_for("Variables of run demo")
    t.wait_for("> lr ")
    pid = _progress(demo, "demo")["pid"]
    assert "PID %d  RUNNING" % pid in t.text
    # a float that is not a float: refused on the spot, nothing written
    t.press("ENTER", "abc", "ENTER")
    t.wait_for("lr (float) not written: 'abc' is not a float")
    assert not (demo / "control_demo.json").exists()
    # the real edit
    t.press("DELETE", "0.125", "ENTER")
    t.wait_for("lr = 0.125 written to the control file (seq 1)")
    t.wait_for("applied #1 (0.125)")
    wait_until(lambda: _progress(demo, "demo")["variables"]["lr"] == 0.125, timeout=60)
    assert _progress(demo, "demo")["control_seq"] == 1
    # the editor stays live: the value column and control seq follow the run
    t.wait_for(lambda t: "float  0.125" in t.text and "control seq 1" in t.text)
    # the demo loop really uses the new learning rate
    log = demo / "demo.stdout.log"

    def obeyed():
        text = log.read_text(errors="replace")
        i = text.find("variable lr changed: 0.01 -> 0.125")
        return i >= 0 and " lr 0.125" in text[i:]

    wait_until(obeyed, timeout=30)
    # an int edit that the run refuses would show refused; a bool edit applies
    t.press("DOWN", "DOWN", "ENTER", "yes", "ENTER")
    t.wait_for("applied #2 (true)")
    t.wait_for(lambda t: "bool   true" in t.text)
    t.press("ENTER", "false", "ENTER")
    t.wait_for("applied #3 (false)")
    t.press("ESC")
    t.wait_for("Run Name")


def test_two_quick_edits_are_both_applied_in_order(demo):
    """Against the real TrainingMonitor of the demo job: two edits written
    back to back (the run has acknowledged neither) are both applied, and of
    two edits to one variable the later wins."""
    data = _progress(demo, "demo")
    s1, v1 = control.write_edit(str(demo), "demo", data, "batch_size", 16)
    s2, v2 = control.write_edit(str(demo), "demo", data, "lr", 0.03)
    s3, v3 = control.write_edit(str(demo), "demo", data, "lr", 0.04)
    assert (s2, s3) == (s1 + 1, s1 + 2)
    assert v3 == {"batch_size": 16, "lr": 0.04}

    def applied():
        d = _progress(demo, "demo")
        return d.get("control_seq") == s3 and d["variables"]["lr"] == 0.04 and d["variables"]["batch_size"] == 16

    wait_until(applied, timeout=60)
    assert not _progress(demo, "demo").get("control_error")
    log = demo / "demo.stdout.log"

    def announced():
        # the run prints each change after it is applied (and so after it may
        # be in the progress file), and its output reaches the log after that
        text = log.read_text(errors="replace")
        lr = re.findall(r"variable lr changed: \S+ -> (\S+)", text)
        return "variable batch_size changed: 32 -> 16" in text and lr[-1:] == ["0.04"] and text

    text = wait_until(announced, timeout=60)
    lr_changes = re.findall(r"variable lr changed: \S+ -> (\S+)", text)
    # in order: 0.03 (if the run saw it at all) before 0.04, never after
    tail = lr_changes[lr_changes.index("0.125") + 1:] if "0.125" in lr_changes else lr_changes
    assert tail in (["0.04"], ["0.03", "0.04"])


def test_output_viewer_follow_home_end_search_stream(ttop_term, demo):
    t = _start(ttop_term, demo, "demo", rows=20)
    t.press("o")
    t.wait_for("Output of run demo \u00b7 stdout \u00b7 no wrap")
    t.wait_for("demo.stdout.log")
    t.wait_for(lambda t: "follow" in t.line(1))
    # follow mode: new lines keep arriving at the bottom
    last = [ln for ln in t.display[2:18] if ln.strip()][-1]
    t.wait_for(lambda t: [ln for ln in t.display[2:18] if ln.strip()][-1] != last, timeout=60)
    t.press("HOME")
    t.wait_for(lambda t: "0%" in t.line(1) and "follow" not in t.line(1))
    t.wait_for(lambda t: t.line(2).startswith("run demo (pid "))  # the page may arrive after the status line
    # a scrolled view stays put while the log grows
    first = t.line(2)
    time.sleep(1.5)
    assert t.line(2) == first
    t.press("/", "loading data", "ENTER")
    t.wait_for(lambda t: t.line(2).startswith("loading data with 0 worker"))
    t.press("/", "no such text anywhere", "ENTER")
    t.wait_for("not found: no such text anywhere")
    t.press("END")
    t.wait_for(lambda t: "follow" in t.line(1))
    t.press("s")
    t.wait_for("Output of run demo \u00b7 stderr")
    t.press("s")
    t.wait_for("stdout + stderr (two panes)")
    t.press("s")
    t.wait_for("· by arrival")
    t.wait_for("[out] epoch ", timeout=60)  # the live job's new lines, labelled
    t.press("ESC")
    t.wait_for("Run Name")


def test_output_viewer_refuses_logs_outside(ttop_term, tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    secret = tmp_path / "secret.log"
    secret.write_text("TOP SECRET LINE\n")
    (folder / "link.log").symlink_to(secret)
    _ended(folder, "a-dotdot", logs={"stdout": "../../etc/passwd", "stderr": "../secret.log"})
    _ended(folder, "b-abs", logs={"stdout": str(secret), "stderr": "/etc/passwd"})
    _ended(folder, "c-link", logs={"stdout": "link.log", "stderr": "link.log"})
    t = _start(ttop_term, folder, "a-dotdot", cols=140)
    for name, bad in [("a-dotdot", "../../etc/passwd"), ("b-abs", str(secret)), ("c-link", "link.log")]:
        t.press("o")
        t.wait_for("Output of run %s" % name)
        t.wait_for("refused: stdout log '%s' is not inside the progress folder" % bad)
        t.press("s")
        t.wait_for("refused: stderr log")
        assert "TOP SECRET" not in t.text and "root:" not in t.text
        t.press("ESC", "DOWN")
        t.wait_for("Run Name")


# ---------------------------------------------------------------------------
# signals


@pytest.mark.slow
def test_signal_menu_stop_cont_reuse_and_term(ttop_term, tmp_path, spawn):
    folder = tmp_path / "progress"
    folder.mkdir()
    p = _start_writer(spawn, folder, "sig")
    name = psutil.Process(p.pid).name()
    t = _start(ttop_term, folder, "sig")
    t.wait_for("RUNNING")
    t.press("k")
    t.wait_for("Signal PID %d (%s, run sig, user %s)" % (p.pid, name, pwd.getpwuid(os.getuid()).pw_name))
    t.press("5")
    t.wait_for("Send SIGSTOP to PID %d (%s, run sig, user %s)?" % (p.pid, name, pwd.getpwuid(os.getuid()).pw_name))
    t.press("y")
    t.wait_for("sent SIGSTOP to PID %d" % p.pid)
    wait_until(lambda: psutil.Process(p.pid).status() == psutil.STATUS_STOPPED, timeout=60)
    # the run's file now claims another create time: the PID was "reused"
    doc = _progress(folder, "sig")
    doc["pid_create_time"] = doc["pid_create_time"] + 100.0
    write_json_atomic(str(folder / "sig.json"), doc)
    t.wait_for(lambda t: "KILLED" in t.text or "RUNNING" not in t.text, timeout=60)
    t.press("k")
    t.wait_for("Signal PID %d" % p.pid)
    t.press("6", "y")
    t.wait_for("process changed, not sent")
    time.sleep(0.5)
    assert psutil.Process(p.pid).status() == psutil.STATUS_STOPPED  # never signalled
    # the real create time again: SIGCONT goes through
    doc["pid_create_time"] = psutil.Process(p.pid).create_time()
    write_json_atomic(str(folder / "sig.json"), doc)
    t.wait_for("RUNNING", timeout=60)
    t.press("k")
    t.wait_for("Signal PID %d" % p.pid)
    t.press("6", "y")
    t.wait_for("sent SIGCONT to PID %d" % p.pid)
    wait_until(lambda: psutil.Process(p.pid).status() != psutil.STATUS_STOPPED, timeout=60)
    # n cancels; then SIGTERM ends the run
    t.press("k", "1", "n")
    t.wait_for("cancelled")
    assert p.poll() is None
    t.press("k", "1")
    t.wait_for("Send SIGTERM to PID %d" % p.pid)
    t.press("y")
    assert p.wait(timeout=15) == -signal.SIGTERM
    t.wait_for("sent SIGTERM to PID %d" % p.pid)


def test_signal_a_thread_row(ttop_term, tmp_path, spawn):
    folder = tmp_path / "progress"
    folder.mkdir()
    p = _start_writer(spawn, folder, "thr")
    t = _start(ttop_term, folder, "thr")
    t.press("t")
    t.wait_for("[T]")
    t.press("DOWN")  # the [P] row
    t.wait_for(lambda t: any(ln.startswith("  [P]") for ln in t.display))
    t.press("DOWN")  # its first [T] row
    time.sleep(0.3)
    t.press("k")
    t.wait_for("Signal thread ")
    t.wait_for("Python runs its")
    t.press("5", "y")
    t.wait_for("sent SIGSTOP to thread ")
    # a stop sent to one thread stops the whole process
    wait_until(lambda: psutil.Process(p.pid).status() == psutil.STATUS_STOPPED, timeout=60)
    os.kill(p.pid, signal.SIGCONT)


def test_l_signals_every_running_run_in_the_filter(ttop_term, tmp_path, spawn):
    folder = tmp_path / "progress"
    folder.mkdir()
    alphas = [_start_writer(spawn, folder, n) for n in ("alpha-1", "alpha-2")]
    beta = _start_writer(spawn, folder, "beta-1")
    _ended(folder, "alpha-old")
    t = _start(ttop_term, folder, "alpha-1")
    t.wait_for("beta-1 ")
    t.press("f", "alpha", "ENTER")
    t.wait_for(lambda t: t.row_of("beta-1 ") is None)
    t.press("l")
    t.wait_for("Signal 2 RUNNING runs (filter: name contains 'alpha')")
    t.press("1")
    t.wait_for("Send SIGTERM to 2 RUNNING runs (filter: name contains 'alpha')?")
    t.press("y")
    for a in alphas:
        assert a.wait(timeout=15) == -signal.SIGTERM
    t.wait_for("SIGTERM sent to 2 runs")
    assert beta.poll() is None


# ---------------------------------------------------------------------------
# delete


def test_delete_with_y_removes_files_other_key_keeps_them(ttop_term, tmp_path, spawn):
    folder = tmp_path / "progress"
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    _ended(folder, "b-old", run_dir="runs/b-old", logs={"stdout": "b-old.stdout.log", "stderr": "../outside.txt"})
    (folder / "b-old.stdout.log").write_text("out\n")
    (folder / "control_b-old.json").write_text("{}")
    (folder / "runs" / "b-old").mkdir(parents=True)
    (folder / "runs" / "b-old" / "ckpt").write_text("w")
    (folder / "runs" / "b-old" / "escape").symlink_to(outside)
    _ended(folder, "a-keep")
    live = _start_writer(spawn, folder, "c-live")
    t = _start(ttop_term, folder, "a-keep", cols=140)
    t.press("DOWN")
    t.press("c")
    t.wait_for("Delete these files of run b-old?")
    t.wait_for("runs/b-old/ (folder, with everything in it)")
    t.wait_for("not touched: stderr log '../outside.txt'")
    t.press("x")
    t.wait_for("delete cancelled, nothing touched")
    assert (folder / "b-old.json").exists() and (folder / "runs" / "b-old" / "ckpt").exists()
    t.press("c")
    t.wait_for("type y to delete")
    t.press("y")
    t.wait_for("deleted 4 paths of run b-old")
    assert sorted(os.listdir(folder)) == ["a-keep.json", "c-live.json", "runs"]
    assert outside.read_text() == "keep"
    t.wait_for(lambda t: t.row_of("b-old ") is None)
    # a live run is refused with the reason
    t.wait_for("c-live ")
    t.press("DOWN")
    time.sleep(0.3)
    t.press("c")
    t.wait_for("Cannot delete run c-live")
    t.wait_for("is live: process %d" % live.pid)
    t.press("y")
    t.wait_gone("Cannot delete run")
    assert (folder / "c-live.json").exists() and live.poll() is None


def test_output_viewer_shows_escapes_and_binary_safely(ttop_term, tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    _ended(folder, "esc")
    (folder / "esc.stdout.log").write_bytes(
        b"first line\n"
        b"\x1b[2J\x1b[Hcleared?\n"                       # clear screen + home
        b"\x1b[31mred text\x1b[0m plain\n"
        b"\x1b]0;evil title\x07after osc\n"
        b"epoch 1: 10%\repoch 1: 55%\repoch 1: 100%\n"
        b"bin \x00\x01\x02\xff\xfe\x9b[31m end\n"
        b"tab\there\n" + b"L" * 300 + b"R\n")
    t = _start(ttop_term, folder, "esc", cols=100, rows=20)
    t.press("o")
    t.wait_for("Output of run esc")
    t.wait_for("first line")
    t.wait_for("tab     here")
    t.wait_quiet()
    lines = t.display
    assert lines[0].startswith("Output of run esc")  # nothing cleared or moved the screen
    assert lines[2].startswith("first line")
    assert lines[3].startswith("cleared?")
    y = 4
    assert lines[y].startswith("red text plain")
    assert all(c.fg == "default" for c in t.row_cells(y)[:8])  # the colour code was not passed on
    assert lines[5].startswith("after osc") and "evil" not in t.text
    assert lines[6].rstrip() == "epoch 1: 100%"
    assert lines[7].startswith("bin ???\ufffd\ufffd\ufffd[31m end")
    assert lines[8].startswith("tab     here")
    assert lines[9] == "L" * 100  # no wrap: cut at the edge
    t.press("w")
    t.wait_for("\u00b7 wrap")
    t.wait_for(lambda t: t.line(11) == "L" * 100 and t.line(12).rstrip() == "R")


def test_what_is_typed_past_a_field_stays_in_view(ttop_term, tmp_path):
    # the editor's value field (30 cells at most) and the output viewer's
    # search showed the start of what was typed: past the field's width the
    # keys typed went on out of sight (the editor's cursor stood still)
    folder = tmp_path / "progress"
    folder.mkdir()
    write_json_atomic(str(folder / "far.json"), {
        "format": "ttop.progress/1", "run_name": "far", "status": "RUNNING", "updated_at": time.time(),
        "host": "elsewhere", "heartbeat_interval": 600, "variables": {"tag": "x"}})
    (folder / "far.stdout.log").write_text("a line\n")
    t = ttop_term(folder, cols=80, rows=16)
    t.wait_for("far")
    t.press("e")
    t.wait_for("Variables of run far")
    t.press("ENTER")
    typed = "/data/checkpoints/experiment-42/" + "x" * 20 + "-END"
    t.send(typed)
    t.wait_for(lambda t: "-END_" in t.text, msg="the end of the value typed is not shown")
    assert "\u2026" in t.line(t.row_of("-END_"))  # and its start is marked cut
    t.press("ESC")
    t.wait_gone("-END_")
    t.press("ESC")
    t.wait_for("Run Name")
    t.press("o")
    t.wait_for("a line")
    t.press("/")
    t.send("q" * 100 + "-TAIL")
    t.wait_for(lambda t: "-TAIL_" in t.text, msg="the end of the search typed is not shown")
    t.press("ESC")
    t.press("ESC")
    t.press("q")
    assert t.wait_exit() == 0
