"""The lever screens with a small AppContext holding a real Snapshot, real
files and real processes (no curses: the rendered lines are asserted)."""
from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from conftest import wait_until
from ttop import progress as P
from ttop.collect.snapshot import ProcInfo, RunResources, RunSnapshot, Snapshot
from ttop.ui import levers
from ttop.ui.screen import AppContext, Target
from ttop.view.text import line_width

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]
NAME = psutil.Process().name()  # what psutil calls a process of this interpreter
ME = pwd.getpwuid(os.getuid()).pw_name  # the user the test processes run as


class Ctx(AppContext):
    def __init__(self, folder, runs=()):
        self.folder = str(folder)
        self.stack = []
        self.notices = []
        self.refreshes = 0
        self.snapshot = Snapshot(seq=1, taken_at=time.time(), folder=str(folder), runs=tuple(runs))

    def push(self, screen):
        self.stack.append(screen)

    def pop(self):
        self.stack.pop()

    def notify(self, message, error=False):
        self.notices.append((message, error))

    def refresh_now(self):
        self.refreshes += 1

    def quit(self):
        pass

    def set_runs(self, runs):
        self.snapshot = Snapshot(seq=self.snapshot.seq + 1, taken_at=time.time(), folder=self.folder, runs=tuple(runs))
        for s in self.stack:
            s.on_snapshot(self)

    def text(self, width=100, height=30):
        lines = self.stack[-1].render(self, width, height)
        return "\n".join("".join(t for t, _ in line).rstrip() for line in lines)

    def keys(self, *keys):
        for k in keys:
            assert self.stack, "no screen left for key %r" % k
            self.stack[-1].on_key(k, self)


def make_run(folder, key, status="RUNNING", pid=None, ct=None, **data):
    d = {"format": P.PROGRESS_FORMAT, "run_name": key, "status": status, "updated_at": time.time(),
         "started_at": time.time() - 60}
    if pid is not None:
        d.update(pid=pid, pid_create_time=ct)
    d.update(data)
    procs = ()
    if pid is not None:
        try:
            name = psutil.Process(pid).name()
        except psutil.Error:
            name = "python3"
        procs = (ProcInfo(pid=pid, ppid=1, name=name, create_time=ct or 0.0, depth=0),)
    return RunSnapshot(key=key, path=os.path.join(str(folder), key + ".json"), data=d, run_name=key, status=status,
                       reported_status=status, pid=pid, pid_create_time=ct, host="h", local=True,
                       resources=RunResources(cpu_percent=12.0, rss_bytes=300 * 2 ** 20, num_procs=1, num_threads=4),
                       processes=procs, heartbeat_age=1.0)


VARS = {"variables": {"lr": 0.001, "epochs": 10, "tag": "base", "amp": True},
        "variable_types": {"lr": "float", "epochs": "int", "tag": "str", "amp": "bool"}, "control_seq": 0}


# ---------------------------------------------------------------------------
# editor


def test_editor_writes_inf_typed_on_purpose(progress_dir):
    run = make_run(progress_dir, "exp", pid=4242, ct=1.0, **VARS)
    ctx = Ctx(progress_dir, [run])
    ctx.push(levers.open_editor(ctx, "exp"))
    ctx.keys("ENTER", *" -Inf ", "ENTER")
    assert "not written" not in ctx.text()
    assert json.loads((progress_dir / "control_exp.json").read_text())["variables"] == {"lr": "-Infinity"}


def test_editor_pages_through_many_variables(progress_dir):
    """PgUp / PgDn move the editor's selection by the rows shown (a run
    tracking one lr per parameter group has dozens); they jumped to the
    first and the last variable, as Home and End do."""
    names = ["lr_group_%02d" % i for i in range(60)]
    run = make_run(progress_dir, "many", variables={n: 0.1 for n in names}, variable_types={n: "float" for n in names})
    ctx = Ctx(progress_dir, [run])
    ctx.push(levers.open_editor(ctx, "many"))

    def selected(height=20):
        (line,) = [ln for ln in ctx.text(height=height).splitlines() if ln.startswith("> ")]
        return line.split()[1]

    assert selected() == "lr_group_00"
    ctx.keys("PGDN")
    page = names.index(selected())
    assert 5 <= page < 20, page  # one screen's rows, not the end
    ctx.keys("PGDN")
    assert selected() == names[2 * page]
    ctx.keys("PGUP")
    assert selected() == names[page]
    ctx.keys("END")
    assert selected() == "lr_group_59"
    ctx.keys("PGDN")
    assert selected() == "lr_group_59"
    ctx.keys("PGUP", "HOME")
    assert selected() == "lr_group_00"


def test_editor_lists_validates_writes_and_tracks_state(progress_dir):
    run = make_run(progress_dir, "exp", pid=4242, ct=1.0, **VARS)
    ctx = Ctx(progress_dir, [run])
    ctx.push(levers.open_editor(ctx, "exp"))
    text = ctx.text()
    assert "Variables of run exp" in text
    assert "PID 4242  RUNNING  CPU 12%  RAM 300M  procs 1  threads 4" in text
    assert "> lr" in text and "float  0.001" in text
    assert "epochs  int" in text.replace("    ", "  ") or "int    10" in text
    # "abc" for a float is refused on the spot, nothing written
    ctx.keys("ENTER", "a", "b", "c", "ENTER")
    assert "lr (float) not written: 'abc' is not a float" in ctx.text()
    # a number beyond the float range is refused too, not written as Infinity
    ctx.keys("CTRL_U", *"1e999", "ENTER")
    assert "lr (float) not written: '1e999' is beyond the float range (type inf for infinity)" in ctx.text()
    ctx.keys("CTRL_U", *"-1E400", "ENTER")
    assert "'-1E400' is beyond the float range" in ctx.text()
    assert not (progress_dir / "control_exp.json").exists()
    # fix it: Ctrl+U clears the field, as in a shell
    ctx.keys("CTRL_U", *"0.01", "ENTER")
    ctrl = json.loads((progress_dir / "control_exp.json").read_text())
    assert ctrl == {"format": "ttop.control/1", "seq": 1, "variables": {"lr": 0.01}, "run": "exp"}
    text = ctx.text()
    assert "lr = 0.01 written to the control file (seq 1)" in text
    assert "pending #1 (0.01)" in text
    # a second edit before the run acknowledged: both in the file, in order
    ctx.keys("DOWN", "ENTER", *"20", "ENTER")
    ctrl = json.loads((progress_dir / "control_exp.json").read_text())
    assert ctrl["seq"] == 2 and ctrl["variables"] == {"lr": 0.01, "epochs": 20}
    assert "pending #2 (0.01)" in ctx.text() and "pending #2 (20)" in ctx.text()
    # the run acknowledges: applied, with its new values and a new PID row (live)
    data = dict(VARS, variables=dict(VARS["variables"], lr=0.01, epochs=20), control_seq=2)
    ctx.set_runs([make_run(progress_dir, "exp", pid=4243, ct=1.0, **data)])
    text = ctx.text()
    assert "applied #2 (0.01)" in text and "applied #2 (20)" in text
    assert "PID 4243" in text
    # a refused edit shows the run's reason
    ctx.keys("UP", "UP", "DOWN", "DOWN", "ENTER", *"new", "ENTER")  # tag (str)
    data2 = dict(data, control_seq=3, control_error="tag: refused by the training script")
    ctx.set_runs([make_run(progress_dir, "exp", pid=4243, ct=1.0, **data2)])
    assert "refused #3: tag: refused by the training script" in ctx.text()
    # bool validation and Esc cancels an edit
    ctx.keys("DOWN", "ENTER", *"maybe", "ENTER")
    assert "'maybe' is not a bool (true/false)" in ctx.text()
    ctx.keys("ESC")
    assert "edit of amp cancelled" in ctx.text()
    ctx.keys("ESC")
    assert ctx.stack == []


def test_editor_reopened_shows_pending_edits(progress_dir):
    run = make_run(progress_dir, "exp", pid=1, ct=1.0, **VARS)
    P.write_control(str(progress_dir), "exp", 5, {"lr": 0.5})
    ctx = Ctx(progress_dir, [run])
    ctx.push(levers.open_editor(ctx, "exp"))
    assert "pending #5 (0.5)" in ctx.text()


def test_editor_read_only_when_not_running(progress_dir):
    run = make_run(progress_dir, "done", status="FINISHED", **VARS)
    ctx = Ctx(progress_dir, [run])
    ctx.push(levers.open_editor(ctx, "done"))
    assert "read-only: the run is FINISHED; edits need a RUNNING run" in ctx.text()
    ctx.keys("ENTER")
    assert ctx.stack[-1].editing is None
    assert not (progress_dir / "control_done.json").exists()
    # a run that stops while an edit is being typed: nothing written
    run = make_run(progress_dir, "r", **VARS)
    ctx = Ctx(progress_dir, [run])
    ctx.push(levers.open_editor(ctx, "r"))
    ctx.keys("ENTER", *"1.5")
    ctx.set_runs([make_run(progress_dir, "r", status="KILLED", **VARS)])
    ctx.keys("ENTER")
    assert "nothing written" in ctx.text()
    assert not (progress_dir / "control_r.json").exists()


# ---------------------------------------------------------------------------
# output viewer


def test_output_viewer_pages_follows_and_searches(progress_dir):
    (progress_dir / "job.stdout.log").write_bytes(
        b"".join(b"step %d \x1b[32mok\x1b[0m\n" % i for i in range(500)) + b"eta 10%\reta 99%\n")
    (progress_dir / "job.stderr.log").write_bytes(b"warning: something\n")
    ctx = Ctx(progress_dir, [make_run(progress_dir, "job")])
    ctx.push(levers.open_output(ctx, "job"))
    text = ctx.text(height=12)
    assert "Output of run job \u00b7 stdout \u00b7 no wrap" in text
    assert "stdout \u00b7 job.stdout.log" in text and "follow" in text
    assert text.splitlines()[-3] == "eta 99%"
    assert "step 499 ok" in text and "\x1b" not in text
    ctx.keys("HOME")
    assert ctx.text(height=12).splitlines()[2] == "step 0 ok"
    ctx.keys("PGDN")
    assert ctx.text(height=12).splitlines()[2] == "step 7 ok"
    ctx.keys("/", *"STEP 42", "ENTER")  # upper case: case-sensitive, not found
    assert "not found: STEP 42" in ctx.text(height=12)
    ctx.keys("/", *"step 42", "ENTER")
    assert ctx.text(height=12).splitlines()[2] == "step 42 ok"
    ctx.keys("n")
    assert ctx.text(height=12).splitlines()[2] == "step 420 ok"
    ctx.keys("N")
    assert ctx.text(height=12).splitlines()[2] == "step 42 ok"
    ctx.keys("END")
    assert "follow" in ctx.text(height=12)
    ctx.keys("s")
    text = ctx.text(height=12)
    assert "warning: something" in text and "\u00b7 stderr \u00b7" in text
    ctx.keys("s")
    text = ctx.text(height=14)
    assert "two panes" in text and "warning: something" in text and "eta 99%" in text


def test_output_viewer_refuses_logs_outside_the_folder(progress_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    (progress_dir / "link.log").symlink_to(secret)
    for bad in ["../secret.txt", str(secret), "link.log", "../../etc/passwd"]:
        run = make_run(progress_dir, "r", logs={"stdout": bad, "stderr": bad})
        ctx = Ctx(progress_dir, [run])
        ctx.push(levers.open_output(ctx, "r"))
        for _ in range(3):
            text = ctx.text(width=200).replace("\n", " ")
            assert "TOP SECRET" not in text and "root:" not in text
            assert "refused: " in text and "is not inside the progress folder" in text
            assert bad in text
            ctx.keys("s")


def test_output_viewer_wrap_and_horizontal_scroll(progress_dir):
    (progress_dir / "w.stdout.log").write_text("A" * 50 + "B" * 50 + "\n")
    ctx = Ctx(progress_dir, [make_run(progress_dir, "w")])
    ctx.push(levers.open_output(ctx, "w"))
    assert ctx.text(width=60, height=8).splitlines()[2] == "A" * 50 + "B" * 10
    ctx.keys("RIGHT")
    lines = ctx.text(width=60, height=8).splitlines()
    assert lines[2] == "A" * 42 + "B" * 18 and "col 8" in lines[1]
    ctx.keys("w")
    lines = ctx.text(width=60, height=8).splitlines()
    assert "\u00b7 wrap" in lines[0]
    assert lines[2] == "A" * 50 + "B" * 10 and lines[3] == "B" * 40


# ---------------------------------------------------------------------------
# signals


def test_signal_menu_confirms_and_sends(progress_dir, spawn):
    p = spawn(SLEEPER)
    ct = psutil.Process(p.pid).create_time()
    ctx = Ctx(progress_dir, [make_run(progress_dir, "job", pid=p.pid, ct=ct)])
    ctx.push(levers.open_signal(ctx, Target("run", "job", p.pid, ct, name="job")))
    text = ctx.text()
    assert "Signal PID %d (%s, run job, user %s)" % (p.pid, NAME, ME) in text
    for name in ("SIGTERM", "SIGINT", "SIGKILL", "SIGHUP", "SIGSTOP", "SIGCONT", "SIGUSR1", "SIGUSR2"):
        assert name in text
    ctx.keys("5")  # SIGSTOP
    assert "Send SIGSTOP to PID %d (%s, run job, user %s)?" % (p.pid, NAME, ME) in ctx.text()
    ctx.keys("n")
    assert ctx.stack == [] and ctx.notices[-1] == ("cancelled", False)
    assert psutil.Process(p.pid).status() != psutil.STATUS_STOPPED
    ctx.push(levers.open_signal(ctx, Target("run", "job", p.pid, ct, name="job")))
    ctx.keys("DOWN", "DOWN", "DOWN", "DOWN", "ENTER", "y")
    assert ctx.stack == []
    assert ctx.notices[-1] == ("sent SIGSTOP to PID %d (%s, user %s)" % (p.pid, NAME, ME), False)
    wait_until(lambda: psutil.Process(p.pid).status() == psutil.STATUS_STOPPED, timeout=60)
    ctx.push(levers.open_signal(ctx, Target("run", "job", p.pid, ct, name="job")))
    ctx.keys("6", "y")
    wait_until(lambda: psutil.Process(p.pid).status() != psutil.STATUS_STOPPED, timeout=60)
    # PID reused between the snapshot and the key press: refused
    ctx.push(levers.open_signal(ctx, Target("run", "job", p.pid, ct + 30, name="job")))
    ctx.keys("3", "y")
    assert ctx.notices[-1][1] is True and ctx.notices[-1][0].startswith("process changed, not sent")
    assert p.poll() is None


def test_remote_run_is_signalled_through_its_control_file_and_unknown_create_time_refused(progress_dir):
    remote = make_run(progress_dir, "far", pid=os.getpid(), ct=psutil.Process().create_time())
    remote = type(remote)(**dict(remote.__dict__, local=False, host="otherhost"))
    ctx = Ctx(progress_dir, [remote])
    menu = levers.open_signal(ctx, Target("run", "far", remote.pid, remote.pid_create_time))
    assert menu is not None and "run far (on host otherhost" in menu.title and "through its control file" in menu.title
    # a container on this host with its own PID namespace: named as such, not as "host <this host>"
    boxed = type(remote)(**dict(remote.__dict__, key="boxed", run_name="boxed", host=socket.gethostname()))
    ctx = Ctx(progress_dir, [boxed])
    menu = levers.open_signal(ctx, Target("run", "boxed", boxed.pid, boxed.pid_create_time))
    assert menu is not None and "in another PID namespace (a container?)" in menu.title
    # an ended remote run: nobody there to answer
    ended = type(remote)(**dict(remote.__dict__, status="FINISHED"))
    ctx = Ctx(progress_dir, [ended])
    assert levers.open_signal(ctx, Target("run", "far", remote.pid, remote.pid_create_time)) is None
    assert "not running with a live heartbeat" in ctx.notices[-1][0]
    local = make_run(progress_dir, "near", pid=os.getpid(), ct=None)
    ctx = Ctx(progress_dir, [local])
    assert levers.open_signal(ctx, Target("run", "near", os.getpid(), None)) is None
    assert "no create time" in ctx.notices[-1][0]


def test_a_remote_request_that_cannot_be_written_is_a_notice_not_a_crash(progress_dir):
    """A remote run's control file keeps an unacknowledged edit whose name
    came from a "\\ud800" escape: the request cannot be written with it, and
    k and l say so instead of raising out of the key handler (which ended
    ttop)."""
    remote = make_run(progress_dir, "far", pid=os.getpid(), ct=psutil.Process().create_time(), control_seq=0)
    remote = type(remote)(**dict(remote.__dict__, local=False, host="otherhost"))
    (progress_dir / "control_far.json").write_bytes(
        b'{"format": "ttop.control/1", "seq": 3, "variables": {"l\\ud800r": 0.5}}')
    ctx = Ctx(progress_dir, [remote])
    ctx.push(levers.open_signal(ctx, Target("run", "far", remote.pid, remote.pid_create_time)))
    ctx.keys("1", "y")
    assert ctx.notices[-1][1] and "SIGTERM not requested: cannot write the control file" in ctx.notices[-1][0]
    ctx = Ctx(progress_dir, [remote])
    ctx.push(levers.open_signal_all(ctx, ["far"], "(no filter)"))
    ctx.keys("1", "y")
    assert ctx.notices[-1][1] and "far: cannot write its control file" in ctx.notices[-1][0]
    assert json.loads((progress_dir / "control_far.json").read_text())["seq"] == 3  # left as it was


def test_signal_thread_says_what_it_does(progress_dir, spawn):
    p = spawn(SLEEPER)
    ct = psutil.Process(p.pid).create_time()
    ctx = Ctx(progress_dir, [make_run(progress_dir, "job", pid=p.pid, ct=ct)])
    ctx.push(levers.open_signal(ctx, Target("thread", "job", p.pid, ct, tid=p.pid, name="python3")))
    text = ctx.text(width=300)
    assert "Signal thread %d of PID %d (%s, run job, user %s)" % (p.pid, p.pid, NAME, ME) in text
    assert "Python runs its handlers in the main thread" in text
    ctx.keys("1")
    assert "whole process" in ctx.text(width=300)
    ctx.keys("y")
    assert ctx.notices[-1] == ("sent SIGTERM to thread %d of PID %d (%s, user %s)" % (p.pid, p.pid, NAME, ME), False)
    assert p.wait(timeout=15) == -signal.SIGTERM


def test_signal_all_states_count_and_filter(progress_dir, spawn):
    procs = [spawn(SLEEPER) for _ in range(3)]
    runs = [make_run(progress_dir, "r%d" % i, pid=p.pid, ct=psutil.Process(p.pid).create_time()) for i, p in enumerate(procs)]
    # r2's PID was reused: its snapshot create time is stale
    runs[2] = make_run(progress_dir, "r2", pid=procs[2].pid, ct=runs[2].pid_create_time - 5)
    ctx = Ctx(progress_dir, runs)
    ctx.push(levers.open_signal_all(ctx, ["r0", "r1", "r2"], "(filter: name contains 'r')"))
    assert "Signal 3 RUNNING runs (filter: name contains 'r')" in ctx.text(width=120)
    ctx.keys("1")
    assert "Send SIGTERM to 3 RUNNING runs (filter: name contains 'r')?" in ctx.text(width=120)
    ctx.keys("y")
    msg, err = ctx.notices[-1]
    assert msg.startswith("SIGTERM sent to 2 runs; not sent to 1: r2: process changed, not sent") and err
    assert procs[0].wait(timeout=15) == -signal.SIGTERM and procs[1].wait(timeout=15) == -signal.SIGTERM
    assert procs[2].poll() is None


# ---------------------------------------------------------------------------
# delete


def test_delete_confirm_with_y_and_cancel(progress_dir):
    for n in ("gone.json", "control_gone.json", "gone.stdout.log", "keep.json"):
        (progress_dir / n).write_text("x")
    ctx = Ctx(progress_dir, [make_run(progress_dir, "gone", status="FINISHED")])
    ctx.push(levers.open_delete(ctx, "gone"))
    text = ctx.text()
    assert "Delete these files of run gone?" in text
    assert "gone.json" in text and "control_gone.json" in text and "gone.stdout.log" in text
    assert "type y to delete, any other key cancels" in text
    ctx.keys("n")
    assert ctx.notices[-1] == ("delete cancelled, nothing touched", False)
    assert len(os.listdir(progress_dir)) == 4
    ctx.push(levers.open_delete(ctx, "gone"))
    ctx.keys("y")
    assert ctx.notices[-1] == ("deleted 3 paths of run gone", False)
    assert os.listdir(progress_dir) == ["keep.json"]


def test_delete_removes_a_multi_rank_jobs_rank_files_too(progress_dir):
    """The hidden rank files of a multi-rank job are the run's files: left
    behind, a killed rank's would show as a dead rank of the next run of
    that name. Another run's rank files stay."""
    names = ("job.json", ".job.rank1.json", ".job.rank12.json", ".jobx.rank1.json", ".job.rank1.json.bak",
             ".job.rankx.json", "other.json")
    for n in names:
        (progress_dir / n).write_text("x")
    ctx = Ctx(progress_dir, [make_run(progress_dir, "job", status="FINISHED")])
    ctx.push(levers.open_delete(ctx, "job"))
    text = ctx.text(width=120)
    assert ".job.rank1.json" in text and ".job.rank12.json" in text and ".jobx" not in text
    ctx.keys("y")
    assert ctx.notices[-1] == ("deleted 3 paths of run job", False)
    assert sorted(os.listdir(progress_dir)) == [".job.rank1.json.bak", ".job.rankx.json", ".jobx.rank1.json", "other.json"]


def test_delete_refused_for_live_run(progress_dir, spawn):
    p = spawn(SLEEPER)
    (progress_dir / "live.json").write_text("x")
    run = make_run(progress_dir, "live", pid=p.pid, ct=psutil.Process(p.pid).create_time())
    ctx = Ctx(progress_dir, [run])
    ctx.push(levers.open_delete(ctx, "live"))
    text = ctx.text()
    assert "Cannot delete run live" in text and "is live: process %d" % p.pid in text
    ctx.keys("y")
    assert ctx.stack == [] and (progress_dir / "live.json").exists()


def test_delete_of_a_run_whose_process_exited_unreaped(progress_dir, spawn):
    """A run whose process was killed while its parent (a launcher that does
    not wait) has not reaped it yet: the table shows it KILLED ("process
    has exited"), and delete goes ahead; it said the run "is live: process
    ... still runs" of the zombie, as long as the parent lived."""
    p = spawn([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    ct = psutil.Process(p.pid).create_time()
    p.stdin.close()  # it exits; this test, its parent, does not wait for it yet
    wait_until(lambda: psutil.Process(p.pid).status() == psutil.STATUS_ZOMBIE)
    (progress_dir / "dead.json").write_text("x")
    for run in (make_run(progress_dir, "dead", pid=p.pid, ct=ct), make_run(progress_dir, "dead", pid=p.pid, ct=None)):
        ctx = Ctx(progress_dir, [run])
        ctx.push(levers.open_delete(ctx, "dead"))
        text = ctx.text(width=120)
        assert "Cannot delete" not in text and "dead.json" in text, text
    ctx.keys("y")
    assert not (progress_dir / "dead.json").exists()


def test_output_viewer_interleaves_by_arrival_while_open(progress_dir):
    out = progress_dir / "job.stdout.log"
    err = progress_dir / "job.stderr.log"
    out.write_text("old out\n")
    err.write_text("old err\n")
    ctx = Ctx(progress_dir, [make_run(progress_dir, "job")])
    ctx.push(levers.open_output(ctx, "job"))
    ctx.keys("s", "s", "s")
    text = ctx.text(height=12)
    assert "by arrival" in text and "(no new output since the viewer opened)" in text
    with open(err, "a") as f:
        f.write("err 1\n")
    ctx.set_runs(ctx.snapshot.runs)  # a refresh: the files are polled
    with open(out, "a") as f:
        f.write("out 1\nout 2 partial")
    ctx.set_runs(ctx.snapshot.runs)
    with open(err, "a") as f:
        f.write("err 2\n")
    with open(out, "a") as f:
        f.write(" done\n")
    body = ctx.text(height=12).splitlines()[2:7]
    assert body == ["[err] err 1", "[out] out 1", "[out] out 2 partial done", "[err] err 2", ""]
    assert "old out" not in ctx.text(height=12)
    ctx.keys("/", *"OUT 2", "ENTER")
    assert "not found: OUT 2" in ctx.text(height=12)
    ctx.keys("HOME", "/", *"err 2", "ENTER")
    lines = ctx.text(height=12).splitlines()
    assert "(4 lines)" in lines[1] and "[err] err 2" in lines  # scrolled, not following
    ctx.keys("END")
    assert "(follow)" in ctx.text(height=12).splitlines()[1]
    # truncation is said, then the new file is read from its start
    out.write_text("fresh\n")
    lines = ctx.text(height=12).splitlines()
    assert any("stdout was truncated or replaced" in ln for ln in lines)
    assert "[out] fresh" in lines


@pytest.mark.parametrize("size", [(1, 1), (5, 2), (10, 3), (20, 5), (40, 8), (80, 24)])
def test_every_lever_screen_renders_at_any_size(progress_dir, size):
    w, h = size
    (progress_dir / "r.stdout.log").write_text("hello \u4e16\u754c\n" * 50)
    (progress_dir / "r.json").write_text("x")
    ctx = Ctx(progress_dir, [make_run(progress_dir, "r", pid=os.getpid(), ct=1.0, **VARS)])
    screens = [levers.open_editor(ctx, "r"), levers.open_output(ctx, "r"),
               levers.open_signal(ctx, Target("thread", "r", os.getpid(), 1.0, tid=os.getpid())),
               levers.open_signal_all(ctx, ["r"], "(no filter)"), levers.open_delete(ctx, "r")]
    for s in screens:
        lines = s.render(ctx, w, h)
        if not s.modal:  # full screens fill exactly the terminal; dialogs are cropped by the app
            assert len(lines) == h
            assert all(line_width(ln) == w for ln in lines), [ln for ln in lines if line_width(ln) != w]


def test_editor_reopened_shows_last_outcome_but_not_an_earlier_runs_file(progress_dir):
    data = dict(VARS, control_seq=4, control_error="refused lr: expected float, got str 'x'")
    P.write_control(str(progress_dir), "exp", 4, {"lr": "x"})
    ctx = Ctx(progress_dir, [make_run(progress_dir, "exp", pid=1, ct=1.0, **data)])
    ctx.push(levers.open_editor(ctx, "exp"))
    assert "refused #4: refused lr: expected float, got str 'x'" in ctx.text(width=140)
    # the same file, but older than the run: from an earlier run, not shown
    old = time.time() - 3600
    os.utime(progress_dir / "control_exp.json", (old, old))
    ctx = Ctx(progress_dir, [make_run(progress_dir, "exp", pid=1, ct=1.0, **data)])
    ctx.push(levers.open_editor(ctx, "exp"))
    assert "#4" not in ctx.text(width=140)


def test_small_dialogs_keep_the_prompt_and_the_selected_signal_in_view(progress_dir):
    # a 60x12 terminal: the thread note and the wrapped menu do not fit;
    # the selected signal and the confirmation prompt must still be shown
    ctx = Ctx(progress_dir, [make_run(progress_dir, "r", pid=os.getpid(), ct=1.0)])
    ctx.push(levers.open_signal(ctx, Target("thread", "r", os.getpid(), 1.0, tid=os.getpid())))
    for _ in range(5):
        ctx.keys("DOWN")
    lines = ctx.text(width=60, height=12).splitlines()
    assert len(lines) <= 12
    assert any("6 SIGCONT" in ln for ln in lines), lines
    ctx.keys("DOWN", "DOWN")
    assert any("8 SIGUSR2" in ln for ln in ctx.text(width=60, height=12).splitlines())
    ctx.keys("HOME")
    assert any("1 SIGTERM" in ln for ln in ctx.text(width=60, height=12).splitlines())
    ctx.keys("ENTER")
    lines = ctx.text(width=60, height=12).splitlines()
    assert "Send SIGTERM to thread" in lines[1]
    assert "y: send, any other key: cancel" in lines[-2], lines


def test_log_and_run_dir_paths_no_file_system_can_hold_are_refused_not_a_crash(progress_dir):
    # "\ud800" in the JSON is a lone surrogate: no path can be encoded from it
    (progress_dir / "odd.stderr.log").write_text("err line\n")
    ctx = Ctx(progress_dir, [make_run(progress_dir, "odd", status="FINISHED", logs={"stdout": "x\ud800.log"},
                                      run_dir="d\ud800")])
    ctx.push(levers.open_output(ctx, "odd"))
    assert "refused: stdout log" in ctx.text()
    ctx.stack.clear()
    ctx.push(levers.open_delete(ctx, "odd"))
    text = ctx.text(width=200)
    assert "not touched: stdout log" in text and "not touched: run_dir" in text
    assert "odd.stderr.log" in text


def test_editor_survives_a_variable_name_that_cannot_be_written(progress_dir):
    # "l\ud800r" came from a JSON escape: it cannot be encoded into the control file
    data = {"variables": {"l\ud800r": 0.1}, "variable_types": {"l\ud800r": "float"}, "control_seq": 0}
    ctx = Ctx(progress_dir, [make_run(progress_dir, "r", pid=os.getpid(), ct=psutil.Process().create_time(), **data)])
    ctx.push(levers.open_editor(ctx, "r"))
    ctx.keys("ENTER", "2", "ENTER")
    assert "could not write the control file" in ctx.text(width=200)
    assert not (progress_dir / "control_r.json").exists()


@pytest.mark.parametrize("pid", [-1, 0, 2 ** 31, 2 ** 64])
def test_a_pid_no_process_can_have_is_refused_not_a_crash(progress_dir, pid):
    # another user of the folder writes pid -1 (which kill() would send to
    # every process) or a number too large for a system call, with a create time
    run = make_run(progress_dir, "odd")
    run = type(run)(**dict(run.__dict__, pid=pid, pid_create_time=5.0,
                           data=dict(run.data, pid=pid, pid_create_time=5.0)))
    ctx = Ctx(progress_dir, [run])
    assert levers.open_signal(ctx, Target("run", "odd", pid, 5.0, name="odd")) is None
    assert ctx.notices[-1] == ("cannot signal run odd: pid %d in its progress file is not a process id" % pid, True)
    from ttop.levers import signals
    assert signals.send_signal(pid, 5.0, signal.SIGTERM) == (False, "not sent: %d is not a process id" % pid)
    assert signals.signal_runs([run], signal.SIGTERM) == ([], [("odd", "pid %d in its progress file is not a process id" % pid)])


@pytest.mark.parametrize("pid", [-1, 2 ** 31, 2 ** 64])
@pytest.mark.parametrize("ct", [None, 5.0])
def test_delete_plans_for_a_pid_no_process_can_have(progress_dir, pid, ct):
    # psutil.pid_exists(2**31) raises OverflowError: the plan must not
    from ttop.levers.delete import plan_delete
    P.write_json_atomic(os.path.join(str(progress_dir), "odd.json"), {})
    run = make_run(progress_dir, "odd")
    run = type(run)(**dict(run.__dict__, pid=pid, pid_create_time=ct,
                           data=dict(run.data, pid=pid, pid_create_time=ct)))
    plan = plan_delete(str(progress_dir), run)
    assert plan.refusal is None and plan.files == [os.path.join(str(progress_dir), "odd.json")]


def test_a_confirmation_cut_to_fit_a_tiny_terminal_does_not_take_y(progress_dir, spawn):
    # at 20x5 the box cannot show the PID, run and user a signal goes to:
    # y must not send what the user could not see
    p = spawn(SLEEPER)
    ct = psutil.Process(p.pid).create_time()
    ctx = Ctx(progress_dir, [make_run(progress_dir, "job", pid=p.pid, ct=ct)])
    ctx.push(levers.open_signal(ctx, Target("run", "job", p.pid, ct, name="job")))
    ctx.keys("5")  # SIGSTOP
    small = ctx.text(width=20, height=5)
    assert "PID %d" % p.pid not in small and "enlarge" in small, small
    ctx.keys("y")
    assert ctx.stack == [] and ctx.notices[-1][1] is True and "too small" in ctx.notices[-1][0]
    time.sleep(0.3)
    assert psutil.Process(p.pid).status() != psutil.STATUS_STOPPED
    # the same at a size that shows it all: sent
    ctx.push(levers.open_signal(ctx, Target("run", "job", p.pid, ct, name="job")))
    ctx.keys("5")
    assert "PID %d" % p.pid in ctx.text()
    ctx.keys("y")
    wait_until(lambda: psutil.Process(p.pid).status() == psutil.STATUS_STOPPED, timeout=60)
    os.kill(p.pid, signal.SIGCONT)
