"""Alerts: transitions -> events file lines and alert commands, in process and
through ``ttop --headless`` with real runs and signals."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, wait_until
from ttop import record
from ttop.collect.snapshot import RunSnapshot, Snapshot
from ttop.sinks.alerts import AlertCommand, Alerts, EventsFile, TransitionTracker, command_env
from users import shared_dir, three_users  # noqa: F401 (fixtures)


def run(key, status="RUNNING", health="OK", reason=None):
    return RunSnapshot(key=key, path="/p/%s.json" % key, data={}, run_name=key, status=status,
                       reported_status=status, health=health, health_reason=reason, pid=42, host="box")


def snap(seq, *runs):
    return Snapshot(seq=seq, taken_at=1000.0 + seq, folder="/p", runs=tuple(runs))


def kinds(events):
    return [(e["run"], e["event"], e.get("previous_status"), e["status"], e.get("previous_health"), e["health"])
            for e in events]


def test_transitions_and_steady_state():
    t = TransitionTracker()
    assert t.events(snap(1, run("a"), run("b", "FAILED", None))) == []  # baseline
    assert t.events(snap(2, run("a"), run("b", "FAILED", None))) == []  # steady
    ev = t.events(snap(3, run("a", health="WARN", reason="stalled: x"), run("b", "FAILED", None)))
    assert kinds(ev) == [("a", "health", "RUNNING", "RUNNING", "OK", "WARN")]
    assert ev[0]["reason"] == "stalled: x" and ev[0]["message"] == "a: WARN stalled: x"
    assert t.events(snap(4, run("a", health="WARN", reason="stalled: y"))) == []  # same level: nothing
    assert kinds(t.events(snap(5, run("a", health="CRIT")))) == [("a", "health", "RUNNING", "RUNNING", "WARN", "CRIT")]
    assert t.events(snap(6, run("a", health="WARN"))) == []  # better but not OK: nothing
    assert kinds(t.events(snap(7, run("a", health="OK")))) == [("a", "health", "RUNNING", "RUNNING", "WARN", "OK")]
    ev = t.events(snap(8, run("a", "KILLED", None), run("new", "FAILED", None)))  # a new run: baseline only
    assert kinds(ev) == [("a", "status", "RUNNING", "KILLED", "OK", None)]
    assert t.events(snap(9, run("a", "KILLED", None))) == []
    t2 = TransitionTracker()
    t2.events(snap(1, run("c")))
    assert kinds(t2.events(snap(2, run("c", "FINISHED", None)))) == [("c", "status", "RUNNING", "FINISHED", "OK", None)]


def test_events_file_lines_and_env(tmp_path):
    path = tmp_path / "ev.jsonl"
    f = EventsFile(str(path))
    ev = {"event": "health", "run": "r\u00e9", "health": "CRIT", "reason": "loss is NaN", "x": float("nan")}
    f.write(ev)
    f.write(ev)
    f.close()
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert json.loads(lines[0]) == dict(ev, x="NaN")
    assert os.stat(path).st_mode & 0o777 == 0o600
    env = command_env(dict(ev, status="RUNNING", run_name="r"), base={})
    assert env["TTOP_RUN"] == "r\u00e9" and env["TTOP_HEALTH"] == "CRIT" and env["TTOP_REASON"] == "loss is NaN"
    assert env["TTOP_STATUS"] == "RUNNING" and env["TTOP_PID"] == "" and json.loads(env["TTOP_EVENT_JSON"])["run"] == "r\u00e9"
    with pytest.raises(OSError):
        EventsFile(str(tmp_path / "missing" / "ev.jsonl"))


def test_events_fifo_never_blocks(tmp_path):
    """--events naming a FIFO: refused at start without a reader (opening it
    for writing would block ttop for ever); with a reader that stops
    reading, a write fails and is reported instead of stalling."""
    fifo = str(tmp_path / "ev.fifo")
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="a FIFO with no reader"):
        EventsFile(fifo)
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    errors = []
    try:
        f = EventsFile(fifo, on_error=errors.append)
        ev = {"event": "status", "run": "r", "status": "FAILED", "pad": "x" * 1000}
        for _ in range(200):  # more than a pipe holds (64 KiB)
            f.write(ev)
        f.close()
        assert errors and "events file %s:" % fifo in errors[0]
        assert 0 < f.written < 200
        assert json.loads(os.read(rfd, 65536).split(b"\n")[0])["run"] == "r"
    finally:
        os.close(rfd)


def test_alert_command_one_line_per_event_hanging_killed_and_rate_limited(tmp_path):
    out = tmp_path / "out.txt"
    errors = []
    cmd = AlertCommand('echo "$TTOP_RUN $TTOP_STATUS $TTOP_HEALTH $TTOP_REASON" >> %s' % out, on_error=errors.append)
    try:
        for i in range(3):
            assert cmd.submit({"run": "r%d" % i, "status": "RUNNING", "health": "WARN", "reason": "why"})
        wait_until(cmd.idle, timeout=30)
        assert out.read_text().splitlines() == ["r0 RUNNING WARN why", "r1 RUNNING WARN why", "r2 RUNNING WARN why"]
        assert errors == [] and cmd.ran == 3
    finally:
        cmd.close()

    pidfile = tmp_path / "hang.pid"
    hang = AlertCommand("echo $$ > %s; exec sleep 600" % pidfile, timeout=0.5, on_error=errors.append)
    try:
        t0 = time.monotonic()
        hang.submit({"run": "a"})
        hang.submit({"run": "b"})
        assert hang.submit({"run": "c"}) is True  # submit never waits for the command
        assert time.monotonic() - t0 < 5
        wait_until(lambda: hang.killed == 3, timeout=60)
        pid = int(pidfile.read_text())
        wait_until(lambda: not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z",
                   timeout=60)
        assert [e for e in errors if "killed" in e] == [
            "alert command ran longer than 0.5 s and was killed: echo $$ > %s; exec sleep 600" % pidfile]  # once
    finally:
        hang.close()

    limited = AlertCommand("true", per_minute=2, on_error=errors.append)
    try:
        assert [limited.submit({"run": str(i)}) for i in range(4)] == [True, True, False, False]
        assert limited.dropped == 2 and sum("not sent" in e for e in errors) == 1
    finally:
        limited.close()


def test_failing_command_reported_once(tmp_path):
    errors = []
    cmd = AlertCommand("echo boom >&2; exit 3", on_error=errors.append)
    try:
        cmd.submit({"run": "a"})
        cmd.submit({"run": "b"})
        wait_until(lambda: cmd.ran == 2, timeout=30)
        assert errors == ["alert command failed (exit 3): boom"]
    finally:
        cmd.close()


def test_a_command_flooding_its_stderr_does_not_grow_ttop():
    """Only the last stderr line of a failed command is reported, but the
    whole stream was kept in memory until the command ended or was killed:
    a command writing to stderr in a loop (a verbose notifier, a script
    gone wrong) grew ttop by gigabytes in its 10 seconds (measured: 700 MB
    a second), on a machine whose training jobs the OOM killer may pick.
    Here 300 MB are written, then one last line: ttop keeps a tail."""
    script = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from conftest import wait_until\n"
        "from ttop.sinks.alerts import AlertCommand\n"
        "errors = []\n"
        "cmd = AlertCommand('yes | head -c 300000000 >&2; echo last words >&2; exit 3', timeout=600,"
        " on_error=errors.append)\n"
        "cmd.submit({'run': 'a'})\n"
        "wait_until(lambda: cmd.ran == 1 and cmd.idle(), timeout=300)\n"
        "cmd.close()\n"
        # VmHWM: this program's peak; ru_maxrss would hold the RSS of the
        # process it was started from (a big pytest: kept across exec)
        "print([int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0])\n"
        "print(errors)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(ROOT)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.path.join(str(ROOT), "tests")])))
    assert r.returncode == 0, r.stderr
    peak, errors = r.stdout.splitlines()
    assert errors == str(["alert command failed (exit 3): last words"])
    assert int(peak) < 150 * 2 ** 20, "ttop held %d MB of the command's stderr" % (int(peak) >> 20)


def test_failing_command_output_is_reported_without_escape_codes():
    """The command's last stderr line (which may echo a run name another user
    chose) reaches ttop's stderr or footer without terminal escapes."""
    errors = []
    cmd = AlertCommand('printf "%s\\n" "$TTOP_RUN" >&2; exit 3', on_error=errors.append)
    try:
        cmd.submit({"run": "a\x1b]0;title\x07b\x1b[2Jc\x07"})
        wait_until(lambda: cmd.ran == 1, timeout=30)
        assert errors == ["alert command failed (exit 3): abc?"]
    finally:
        cmd.close()


def test_alerts_feed_once_per_snapshot(tmp_path):
    a = Alerts(str(tmp_path / "ev.jsonl"))
    seen = []
    a.on_event.append(seen.append)
    a.feed(snap(1, run("a")))
    s2 = snap(2, run("a", "FAILED", None))
    assert len(a.feed(s2)) == 1 and a.feed(s2) == [] and a.count == 1 and len(seen) == 1
    a.close()
    assert len((tmp_path / "ev.jsonl").read_text().splitlines()) == 1


# -- through ttop --headless, real processes ---------------------------------------

WRITER = os.path.join(ROOT, "tests", "fakes", "progress_writer.py")


def ttop_headless(spawn, folder, tmp_path, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(tmp_path / "ttop.err", "wb") as err:
        return spawn([sys.executable, "-m", "ttop", str(folder), "--headless", "-i", "0.2", "--csv-dir",
                      str(tmp_path / "csv"), *extra], env=env, stdout=subprocess.DEVNULL, stderr=err)


def read_events(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def seen_running(matrix, health=None):
    """True once the headless CSV sink wrote a RUNNING row (with ``health``
    if given) to ``matrix``."""
    try:
        with open(matrix, newline="") as f:
            return any(row.get("status") == "RUNNING" and health in (None, row.get("health"))
                       for row in csv.DictReader(f))
    except OSError:
        return False


def test_sigkill_of_a_run_is_one_killed_event_and_one_command(spawn, progress_dir, tmp_path):
    events = tmp_path / "events.jsonl"
    out = tmp_path / "cmd.txt"
    job = spawn([sys.executable, WRITER, "--folder", str(progress_dir), "--name", "victim", "--interval", "0.2"])
    wait_until(lambda: (progress_dir / "victim.json").exists(), timeout=30)
    spawn([sys.executable, WRITER, "--folder", str(progress_dir), "--name", "calm", "--interval", "0.2"])
    ttop = ttop_headless(spawn, progress_dir, tmp_path, "--events", str(events),
                         "--alert-cmd", 'echo "$TTOP_RUN $TTOP_STATUS $TTOP_PREVIOUS_STATUS" >> %s' % out)
    # ttop has seen the victim RUNNING once its CSV has a RUNNING row: the alerts
    # listener runs before the CSV one, on the same snapshot
    wait_until(lambda: seen_running(tmp_path / "csv" / "victim_matrix.csv"), timeout=60)
    assert read_events(events) == [] and not out.exists()
    os.kill(job.pid, signal.SIGKILL)
    job.wait(timeout=10)
    ev = wait_until(lambda: read_events(events), timeout=30)
    wait_until(lambda: out.exists() and out.read_text(), timeout=30)
    time.sleep(1.0)  # more cycles: still one event
    ev = read_events(events)
    assert [(e["run"], e["event"], e["status"], e["previous_status"]) for e in ev] == [("victim", "status", "KILLED", "RUNNING")]
    assert out.read_text().splitlines() == ["victim KILLED RUNNING"]
    assert ttop.poll() is None


def test_events_file_survives_a_sigkill_of_ttop(spawn, progress_dir, tmp_path):
    events = tmp_path / "events.jsonl"
    ttop = ttop_headless(spawn, progress_dir, tmp_path, "--events", str(events))
    wait_until(lambda: (tmp_path / "ttop.err").exists() and (tmp_path / "ttop.err").read_text(), timeout=60)
    # short runs: each is seen RUNNING, then FINISHED (one event each) while ttop is killed
    for i in range(8):
        spawn([sys.executable, WRITER, "--folder", str(progress_dir), "--name", "w%d" % i, "--interval", "0.1",
               "--batches", "15"])
    wait_until(lambda: len(read_events(events)) >= 1, timeout=60)
    os.kill(ttop.pid, signal.SIGKILL)
    ttop.wait(timeout=10)
    data = events.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode("ascii").splitlines()
    for line in lines:
        ev = json.loads(line)
        assert ev["format"] == "ttop.event/1" and ev["status"] == "FINISHED"
    assert len({json.loads(line)["run"] for line in lines}) == len(lines)  # one event per run


def test_events_and_once_do_not_mix(progress_dir, tmp_path):
    p = subprocess.run([sys.executable, "-m", "ttop", str(progress_dir), "--once", "--events", str(tmp_path / "e")],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert p.returncode == 2 and "--once" in p.stderr.splitlines()[-1]
    p = subprocess.run([sys.executable, "-m", "ttop", str(progress_dir), "--headless", "--events",
                        str(tmp_path / "no" / "e")], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert p.returncode == 2 and "cannot append to events file" in p.stderr


def test_dataclass_fields_of_events_are_json():
    r = record.replace(run("a"), host=None)
    t = TransitionTracker()
    t.events(snap(1, r))
    ev = t.events(snap(2, record.replace(r, status="FINISHED", health=None)))
    assert json.loads(json.dumps(ev[0]))["host"] is None


def test_sigstop_then_sigcont_is_one_warn_and_one_ok_event(spawn, progress_dir, tmp_path):
    events = tmp_path / "events.jsonl"
    out = tmp_path / "cmd.txt"
    job = spawn([sys.executable, WRITER, "--folder", str(progress_dir), "--name", "paused", "--interval", "0.1"])
    wait_until(lambda: (progress_dir / "paused.json").exists(), timeout=30)
    ttop_headless(spawn, progress_dir, tmp_path, "--events", str(events), "--health", "stall_seconds=3",
                  "--health", "stall_batches=0", "--alert-cmd", 'echo "$TTOP_HEALTH $TTOP_REASON" >> %s' % out)
    # stopped before ttop's first look, the run would be WARN from the start: no event
    wait_until(lambda: seen_running(tmp_path / "csv" / "paused_matrix.csv", health="OK"), timeout=60)
    assert read_events(events) == []
    os.kill(job.pid, signal.SIGSTOP)
    try:
        ev = wait_until(lambda: read_events(events), timeout=30)
        assert [(e["event"], e["previous_health"], e["health"]) for e in ev] == [("health", "OK", "WARN")]
        assert ev[0]["reason"].startswith("stalled: process stopped, batch ")
    finally:
        os.kill(job.pid, signal.SIGCONT)
    ev = wait_until(lambda: len(read_events(events)) >= 2 and read_events(events), timeout=30)
    time.sleep(1.0)
    ev = read_events(events)
    assert [(e["previous_health"], e["health"]) for e in ev] == [("OK", "WARN"), ("WARN", "OK")]
    wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 2, timeout=30)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("WARN stalled: process stopped") and lines[1] == "OK "


def test_message_is_one_line_without_control_characters_whatever_the_run_writes():
    # a run name and a reason come from a file anyone who can write the
    # folder wrote: TTOP_MESSAGE ("one line for humans") is often echoed to a
    # terminal or appended to a log line by line
    t = TransitionTracker()
    name = "evil\x1b]0;owned\x07\x1b[2J\nttop: all runs OK\r"

    def r(status, reason=None):
        return record.replace(run("k", status, None), run_name=name, status_reason=reason)

    t.events(snap(1, r("RUNNING")))
    (ev,) = t.events(snap(2, r("KILLED", "process 4\n2 is gone\x1b[0m")))
    msg = command_env(ev, base={})["TTOP_MESSAGE"]
    assert msg == ev["message"]
    assert msg.isprintable(), repr(msg)
    assert msg == "evil ttop: all runs OK : RUNNING -> KILLED (process 4 2 is gone)"
    assert command_env(ev, base={})["TTOP_RUN_NAME"] == name  # the data itself stays as the run wrote it


def test_event_line_has_no_lone_surrogate():
    from ttop.sinks.alerts import event_line

    line = event_line({"event": "ended", "run": "bad\udcff", "run_name": "a\ud800b", "status": "FAILED"})
    ev = json.loads(line)
    assert ev["run"] == "bad\ufffd" and ev["run_name"] == "a\ufffdb"
    assert event_line({"run": "r1 \u4e2d \U0001f600"}) == b'{"run":"r1 \\u4e2d \\ud83d\\ude00"}\n'


def test_alert_command_runs_for_names_no_environment_can_hold_as_text(tmp_path):
    """A "\\ud800" escape in a progress file is a lone surrogate, which no
    environment variable can carry: the command still runs, with U+FFFD in
    its place; a name read from a non-UTF-8 file name goes as its own bytes."""
    out = tmp_path / "out.bin"
    errors = []
    cmd = AlertCommand('printf "%%s|%%s\\n" "$TTOP_RUN_NAME" "$TTOP_PATH" >> %s' % out, on_error=errors.append)
    try:
        assert cmd.submit({"run": "a", "run_name": "a\ud800b", "path": os.fsdecode(b"/p/caf\xe9.json")})
        wait_until(cmd.idle, timeout=30)
    finally:
        cmd.close()
    assert errors == [] and cmd.ran == 1
    assert out.read_bytes() == "a\ufffdb".encode() + b"|/p/caf\xe9.json\n"


EVENTS_CHILD = """
import json, os, sys
sys.path.insert(0, %r)
from ttop.sinks.alerts import EventsFile

folder = sys.argv[1]
path = os.path.join(folder, "events.jsonl")
f = EventsFile(path)
f.write({"event": "status", "run": "before"})
filler = os.path.join(folder, "filler")
with open(filler, "wb", buffering=0) as out:  # fill the disk
    try:
        while True:
            out.write(b"x" * 4096)
    except OSError:
        pass
for i in range(3):  # more than the file's last page holds: a part of one goes out
    f.write({"event": "status", "run": "while-full-%%d" %% i, "pad": "y" * 3000})
os.unlink(filler)
f.write({"event": "status", "run": "after"})
f.close()
with open(path, "rb") as fh:
    print(json.dumps([line.decode("utf-8", "replace") for line in fh]))
"""


def test_events_file_keeps_whole_lines_through_a_full_disk(tmp_path):
    """A real ENOSPC (a tmpfs in the child's own mount namespace): the event
    whose line went out in part left that part, and the first event after
    the disk had room again was glued to it: one bad line, that event lost."""
    from conftest import mount_namespace

    ns = mount_namespace()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(EVENTS_CHILD % str(ROOT))
    shell = 'mount -t tmpfs -o size=16k tmpfs "$1" && exec "$2" "$3" "$1"'
    r = subprocess.run(ns + ["sh", "-c", shell, "sh", str(mnt), sys.executable, str(script)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = json.loads(r.stdout)
    assert all(line.endswith("\n") for line in lines), lines
    runs = [json.loads(line)["run"] for line in lines]  # every line is a whole event
    assert runs[0] == "before" and runs[-1] == "after" and len(runs) < 5, runs


def test_events_file_named_by_another_users_link_is_not_followed(three_users, shared_dir, tmp_path):  # noqa: F811
    """--events FILE in a shared folder where another user put a symbolic
    link (or a hard link) first: ttop appended the events, whose run names
    that user chooses, to whatever the link named (root's ~/.bashrc: a run
    named "$(cmd)" ran at root's next login). Such a link is refused at
    start; a link of ttop's own user in its own folder is still followed."""
    c = three_users[1]
    target = tmp_path / "rc"
    target.write_text("# rc\n")
    os.chmod(str(tmp_path), 0o755)
    planted = os.path.join(shared_dir, "events.jsonl")
    c.sh('ln -s "$1" "$2"', str(target), planted)
    (tmp_path / "progress").mkdir()
    r = subprocess.run([sys.executable, "-m", "ttop", str(tmp_path / "progress"), "--headless", "--csv-dir",
                        str(tmp_path / "csv"), "--events", planted], capture_output=True, text=True, timeout=60,
                       cwd=str(ROOT))
    assert r.returncode == 2, r.stderr
    assert ("a symbolic link made by %s" % c.name) in r.stderr and "not followed" in r.stderr
    assert target.read_text() == "# rc\n"
    mine = tmp_path / "mine.jsonl"
    mine.symlink_to(tmp_path / "real.jsonl")
    f = EventsFile(str(mine))
    f.write({"event": "status", "run": "r"})
    f.close()
    assert json.loads((tmp_path / "real.jsonl").read_text())["run"] == "r"
    os.link(str(target), str(tmp_path / "other-name"))
    with pytest.raises(OSError, match="hard links"):
        EventsFile(str(tmp_path / "other-name"))
    assert target.read_text() == "# rc\n"


def test_events_file_own_link_to_another_users_link_is_not_followed(three_users, shared_dir, tmp_path):  # noqa: F811
    """ttop's user's own link naming a file in a folder others can write
    (group-writable, not sticky): another user's link there was followed to
    what it named, since only the first link of the chain was checked."""
    c = three_users[1]
    target = tmp_path / "rc"
    target.write_text("# rc\n")
    os.chmod(str(tmp_path), 0o755)
    os.chmod(shared_dir, 0o777)  # writable by others, not sticky
    planted = os.path.join(shared_dir, "events.jsonl")
    c.sh('ln -s "$1" "$2"', str(target), planted)
    mine = tmp_path / "mine.jsonl"
    mine.symlink_to(planted)
    with pytest.raises(OSError, match="made by %s" % c.name):
        EventsFile(str(mine))
    assert target.read_text() == "# rc\n"
    os.unlink(planted)
    f = EventsFile(str(mine))  # the file at the end of the chain, made where no link is
    f.write({"event": "status", "run": "r"})
    f.close()
    with open(planted) as fh:
        assert json.loads(fh.read())["run"] == "r"


def test_events_file_swapped_for_a_link_after_the_check_is_not_followed(three_users, shared_dir, tmp_path, monkeypatch):  # noqa: F811
    """ttop's user's own link names another user's file in a folder others
    can write (not sticky): that user swaps the file for a link to root's
    ~/.bashrc between ttop's check of the chain and its open. The file at
    the end of the chain is opened by its name without following a link."""
    from ttop.sinks import alerts

    c = three_users[1]
    target = tmp_path / "rc"
    target.write_text("# rc\n")
    os.chmod(str(tmp_path), 0o755)
    os.chmod(shared_dir, 0o777)  # writable by others, not sticky
    theirs = os.path.join(shared_dir, "events.jsonl")
    c.sh('touch "$1"', theirs)
    mine = tmp_path / "mine.jsonl"
    mine.symlink_to(theirs)
    check = alerts._check_links

    def check_then_swap(path):
        end = check(path)
        c.sh('ln -s "$1" "$2.new" && mv -f "$2.new" "$2"', str(target), theirs)  # between check and open
        return end

    monkeypatch.setattr(alerts, "_check_links", check_then_swap)
    with pytest.raises(OSError, match="became a symbolic link while it was checked"):
        EventsFile(str(mine))
    assert target.read_text() == "# rc\n"


def test_a_run_that_starts_and_fails_between_two_cycles_is_an_event(progress_dir, tmp_path):
    """A script that crashes at start (an import error, a bad argument) ends
    FAILED before the collector's next cycle: it was first seen ended and
    taken for a baseline, with no event and no alert command: the most common
    failure raised no alert. Run again under the same name and failing again,
    the same. Old ended runs stay quiet: those already there at the start and
    one whose file was last written before it (an old run read late)."""
    from ttop.collect import Collector

    def fail(name):
        script = ("import sys; sys.path.insert(0, %r)\n"
                  "from ttop import TrainingMonitor\n"
                  "with TrainingMonitor(folder=%r, run_name=%r, gpu=False):\n"
                  "    raise ImportError('no module named torch')\n" % (str(ROOT), str(progress_dir), name))
        p = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 1 and b"no module named torch" in p.stderr

    fail("old")
    old_late = json.loads((progress_dir / "old.json").read_text())
    col = Collector(str(progress_dir), gpu=False, tpu=False)
    alerts = Alerts(str(tmp_path / "events.jsonl"))
    assert alerts.feed(col.collect()) == []  # the baseline: a folder of old runs is quiet
    (progress_dir / "late.json").write_text(json.dumps(dict(old_late, run_name="late")))
    fail("crash")
    ev = alerts.feed(col.collect())
    assert [(e["run"], e["event"], e["previous_status"], e["status"]) for e in ev] == [("crash", "status", None, "FAILED")]
    assert ev[0]["message"] == "crash: new run -> FAILED (ImportError: no module named torch)"
    assert alerts.feed(col.collect()) == []  # steady
    fail("crash")  # the same name again: another start
    ev = alerts.feed(col.collect())
    assert [(e["run"], e["previous_status"], e["status"]) for e in ev] == [("crash", None, "FAILED")]
    assert [e["run"] for e in read_events(tmp_path / "events.jsonl")] == ["crash", "crash"]


def test_a_failed_runs_event_says_why_it_failed(progress_dir, tmp_path):
    """The event of a run that raised says why: its message (the alert
    command's TTOP_MESSAGE, the monitor's footer) and TTOP_ERROR carry the
    first line of the run's error; it said "job: RUNNING -> FAILED" alone."""
    from ttop.collect import Collector

    script = ("import sys; sys.path.insert(0, %r)\n"
              "from ttop import TrainingMonitor\n"
              "with TrainingMonitor(folder=%r, run_name='job', gpu=False, interval=0.1) as m:\n"
              "    m.start_batch()\n"
              "    sys.stdin.readline()\n"
              "    raise RuntimeError('CUDA out of memory\\nTried to allocate 2 GiB')\n" % (str(ROOT), str(progress_dir)))
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (progress_dir / "job.json").exists(), timeout=30)
        col = Collector(str(progress_dir), gpu=False, tpu=False)
        alerts = Alerts()
        assert alerts.feed(col.collect()) == [] and col.latest.runs[0].status == "RUNNING"
        p.stdin.write(b"go\n")
        p.stdin.close()
        assert p.wait(timeout=60) == 1
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    (ev,) = alerts.feed(col.collect())
    assert (ev["previous_status"], ev["status"], ev["error"]) == ("RUNNING", "FAILED", "RuntimeError: CUDA out of memory")
    assert ev["message"] == "job: RUNNING -> FAILED (RuntimeError: CUDA out of memory)"
    env = command_env(ev, base={})
    assert env["TTOP_ERROR"] == "RuntimeError: CUDA out of memory" and env["TTOP_MESSAGE"] == ev["message"]


def test_a_run_first_seen_unhealthy_after_the_start_is_an_event(progress_dir, tmp_path):
    """A run started after ttop's first cycle whose loss is NaN from its
    first steps (an lr far too high) is first seen CRIT: taken for a
    baseline, it raised no event while it stayed CRIT, all run long."""
    from ttop.collect import Collector

    col = Collector(str(progress_dir), gpu=False, tpu=False)
    alerts = Alerts()
    assert alerts.feed(col.collect()) == []
    script = ("import sys; sys.path.insert(0, %r)\n"
              "from ttop import TrainingMonitor\n"
              "with TrainingMonitor(folder=%r, run_name='nan', gpu=False, interval=0.1) as m:\n"
              "    m.start_batch()\n"
              "    m.update_metrics(loss=float('nan'))\n"
              "    sys.stdin.readline()\n" % (str(ROOT), str(progress_dir)))
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (progress_dir / "nan.json").exists() and '"NaN"' in (progress_dir / "nan.json").read_text(),
                   timeout=30)
        ev = alerts.feed(col.collect())
        assert [(e["run"], e["event"], e["status"], e["previous_health"], e["health"]) for e in ev] == [
            ("nan", "health", "RUNNING", None, "CRIT")]
        assert "NaN" in ev[0]["reason"]
        assert alerts.feed(col.collect()) == []  # steady
    finally:
        p.stdin.close()
        p.wait(timeout=60)
