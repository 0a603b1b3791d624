"""The curses monitor, driven for real: ``python -m ttop FOLDER`` in a
pseudo-terminal (tests/ptyharness.py), against a folder with live demo jobs
(examples/demo_job.py) and a set of ended runs. Every key has a test that
presses it and asserts on the screen."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import wait_until
from ptyharness import TtopTerm
from ttop.progress import write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo_job.py"
LIVE = ("live-a", "live-b", "live-c")
ENDED = [("old-%02d" % i, st) for i, st in enumerate(["FINISHED", "FAILED", "CANCELED", "KILLED"] * 8)]


def _start_live(folder: Path, name: str, epochs: int = 1000) -> subprocess.Popen:
    args = [sys.executable, str(DEMO), "--folder", str(folder), "--name", name, "--epochs", str(epochs),
            "--batches", "40", "--val-batches", "8", "--batch-time", "0.1", "--workers", "1",
            "--work", "2000", "--interval", "0.3"]
    return subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait(timeout=10)


def _ended_doc(name: str, status: str) -> dict:
    now = time.time()
    return {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": now - 100,
            "started_at": now - 4000, "ended_at": now - 100, "phase": "train", "epoch": 3, "total_epochs": 3,
            "train_batch": 500, "train_total_batches": 500, "host": socket.gethostname(),
            "times": {"run": {"elapsed": 3900, "remaining": 0, "total": 3900}},
            "links": {"wandb": "https://wandb.ai/team/project/runs/" + name}}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("ui") / "progress"
    d.mkdir()
    for name, st in ENDED:
        write_json_atomic(str(d / (name + ".json")), _ended_doc(name, st))
    procs = [_start_live(d, n) for n in LIVE]
    try:
        wait_until(lambda: all((d / (n + ".json")).exists() for n in LIVE), timeout=30)
        yield d
    finally:
        for p in procs:
            _kill(p)


def start(ttop_term, folder, *args, **kw) -> TtopTerm:
    t = ttop_term(folder, *args, **kw)
    t.wait_for("Run Name", msg="the table never showed")
    t.wait_for(LIVE[0], msg="the live run never showed")
    # the whole folder read and the first full cycle drawn (the first screen
    # may show the live runs alone, before their processes were looked up)
    t.wait_for(lambda t: "%d killed" % (len(ENDED) // 4) in t.text and "looking up" not in t.text,
               msg="the folder was never read whole")
    return t


def selected_name(t: TtopTerm):
    """Name (first word) of the row drawn reversed, or None."""
    for y in range(t.rows):
        if t.is_reverse_row(y, 0, 4):
            line = t.line(y)
            if line.strip() and not line.startswith("Run Name"):
                return line.split()[0]
    return None


def table_names(t: TtopTerm):
    names = []
    for line in t.display:
        w = line.split()[:1]
        if w and (w[0].startswith("old-") or w[0].startswith("live-")):
            names.append(w[0])
    return names


ALL_SORTED = sorted([n for n, _ in ENDED] + list(LIVE))


# ---------------------------------------------------------------------------
# the main table


def test_main_screen_shows_runs_header_and_footer(ttop_term, folder):
    t = start(ttop_term, folder, cols=150, rows=50)
    t.wait_for(lambda t: set(LIVE) <= set(table_names(t)))
    t.wait_for("3 running")
    text = t.text
    assert "Run Name" in text and "Status" in text and "Batch" in text
    assert "CPU [" in t.line(0) and "RAM [" in t.line(0)
    assert "q quit" in t.line(t.rows - 1)
    y = t.row_of("old-01 ")
    assert "FAILED" in t.line(y) and "1h05m" in t.line(y)
    y = t.row_of("live-a ")
    assert "RUNNING" in t.line(y)
    # first row selected (reversed), ended runs coloured by status
    assert selected_name(t) == ALL_SORTED[0]
    x = t.line(t.row_of("old-01 ")).index("FAILED")
    assert t.cell(x, t.row_of("old-01 ")).fg == "red"


def test_down_up_move_selection(ttop_term, folder):
    t = start(ttop_term, folder)
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[0])
    t.press("DOWN")
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[1])
    t.press("DOWN", "DOWN")
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[3])
    t.press("UP")
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[2])


def test_pgdn_pgup_end_home(ttop_term, folder):
    t = start(ttop_term, folder, rows=20)
    first_body = t.row_of("Run Name") + 1
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[0])
    t.press("PGDN")
    # a page down: the selection lands on the last table line, the view scrolled
    t.wait_for(lambda t: selected_name(t) not in (None, ALL_SORTED[0]) and t.line(first_body).split()[0] != ALL_SORTED[0])
    page = ALL_SORTED.index(selected_name(t))
    assert page >= 5
    t.press("PGUP")
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[0] and t.line(first_body).startswith(ALL_SORTED[0]))
    t.press("END")
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[-1])
    assert ALL_SORTED[0] not in table_names(t)
    t.press("HOME")
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[0])


@pytest.mark.slow
def test_left_right_scroll_columns_name_stays(ttop_term, folder):
    t = start(ttop_term, folder, cols=80)
    hdr = t.row_of("Run Name")
    assert "Status" in t.line(hdr) and "CPU" not in t.line(hdr)
    # one column at a time, each drawn before the next key, up to the last
    # column (after Rate come up to 3 metric columns: loss, val_loss, acc as
    # the runs report them): keys sent ahead of a slow screen would scroll
    # past CPU. Drawn: the footer's "cols A-B/N" says A one more (the header
    # may not change: a metric column a run reports meanwhile shifts it back)
    def first_col(t):
        m = re.search(r"\bcols (\d+)-\d+/\d+", t.line(t.rows - 2))
        return int(m.group(1)) if m else None

    for _ in range(25):
        if "Wandb URL" in t.line(hdr):
            break
        before = t.wait_for(first_col, msg="no 'cols A-B/N' in the footer")
        t.press("RIGHT")
        t.wait_for(lambda t, before=before: "Wandb URL" in t.line(hdr) or (first_col(t) or 0) > before,
                   msg="RIGHT did not scroll")
    t.wait_for(lambda t: "CPU" in t.line(hdr) and "Status" not in t.line(hdr) and "Wandb URL" in t.line(hdr))
    assert t.line(hdr).startswith("Run Name")
    assert "live-a" in t.text  # the name column stayed
    for _ in range(14):
        t.press("RIGHT")
    # scrolled to the end: the selected run's full link, in the column and the footer
    for _ in range(ALL_SORTED.index("old-00")):
        t.press("DOWN")
    t.wait_for("wandb: https://wandb.ai/team/project/runs/old-00")
    assert "https://wandb.ai/team/project/runs/old-00" in t.line(t.row_of("old-00 "))
    for _ in range(30):
        t.press("LEFT")
    t.wait_for(lambda t: "Status" in t.line(hdr))


@pytest.mark.slow
def test_s_cycles_status_filter(ttop_term, folder):
    t = start(ttop_term, folder, rows=50)
    t.press("s")
    t.wait_for("status=RUNNING")
    t.wait_for(lambda t: set(table_names(t)) == set(LIVE))
    t.press("s")
    t.wait_for("status=FINISHED")
    t.wait_for(lambda t: set(table_names(t)) == {n for n, st in ENDED if st == "FINISHED"})
    for st in ("CANCELED", "FAILED", "KILLED"):
        t.press("s")
        t.wait_for("status=" + st)
        t.wait_for(lambda t, st=st: set(table_names(t)) == {n for n, s in ENDED if s == st})
    t.press("s")
    t.wait_gone("status=")
    t.wait_for(lambda t: len(table_names(t)) == len(ALL_SORTED))


@pytest.mark.slow
def test_f_name_filter_live_enter_and_esc(ttop_term, folder):
    t = start(ttop_term, folder, rows=50)
    t.press("f")
    t.wait_for("Filter:")
    t.send("old-1")
    t.wait_for("Filter: old-1")
    # applied live while typing
    t.wait_for(lambda t: table_names(t) == sorted(n for n, _ in ENDED if "old-1" in n))
    t.press("ENTER")
    t.wait_gone("Filter:")
    t.wait_for("name~old-1")
    assert table_names(t) == sorted(n for n, _ in ENDED if "old-1" in n)
    # f again, Esc cancels the edit and keeps the confirmed filter
    t.press("f")
    t.wait_for("Filter: old-1")
    t.send("9")
    t.wait_for(lambda t: table_names(t) == ["old-19"])
    t.press("ESC")
    t.wait_gone("Filter:")
    t.wait_for(lambda t: table_names(t) == sorted(n for n, _ in ENDED if "old-1" in n))
    # Backspace while typing
    t.press("f", "BACKSPACE", "BACKSPACE", "BACKSPACE", "BACKSPACE", "BACKSPACE", "l", "i", "ENTER")
    t.wait_for(lambda t: set(table_names(t)) == set(LIVE))


@pytest.mark.slow
def test_esc_clears_filters_and_resets_view(ttop_term, folder):
    t = start(ttop_term, folder, rows=50, cols=120)
    t.press("s", "s", "f", "0", "ENTER", "RIGHT", "RIGHT")
    t.wait_for("status=FINISHED")
    t.wait_for("name~0")
    hdr = t.row_of("Run Name")
    t.wait_for(lambda t: "Run Name <" in t.line(hdr))
    t.press("ESC")
    t.wait_gone("status=FINISHED")
    t.wait_gone("name~0")
    t.wait_for(lambda t: "Status" in t.line(hdr) and "<" not in t.line(hdr))
    t.wait_for(lambda t: len(table_names(t)) == len(ALL_SORTED))


@pytest.mark.slow
def test_selection_follows_run_across_refresh_and_filters(ttop_term, folder):
    t = start(ttop_term, folder, rows=50)
    target = "old-12"
    for _ in range(ALL_SORTED.index(target)):
        t.press("DOWN")
    t.wait_for(lambda t: selected_name(t) == target)
    # a new run sorting before it appears: the same run stays selected
    extra = folder / "old-00a.json"
    write_json_atomic(str(extra), _ended_doc("old-00a", "FINISHED"))
    try:
        t.wait_for("old-00a")
        t.wait_quiet(0.3)
        assert selected_name(t) == target
        # filter that keeps it, then filter that hides it, then clear: back on it
        t.press("f", "1", "ENTER")
        t.wait_for("name~1")
        t.wait_for(lambda t: selected_name(t) == target)
        t.press("s", "s", "s", "s")  # FAILED... old-12 is CANCELED
        t.wait_for("status=FAILED")
        t.wait_for(lambda t: selected_name(t) != target)
        t.press("ESC")
        t.wait_for(lambda t: selected_name(t) == target)
    finally:
        extra.unlink()


def test_t_expands_into_process_and_thread_rows(ttop_term, folder):
    t = start(ttop_term, folder, rows=60, cols=150)
    for _ in range(ALL_SORTED.index("live-a")):
        t.press("DOWN")
    t.wait_for(lambda t: selected_name(t) == "live-a")
    t.press("t")
    t.wait_for("[P]")
    t.wait_for("[T]")
    y = t.row_of("[P]")
    assert t.line(y).startswith("  [P] ")  # indented under its run
    pid = int(t.line(y).split()[1])
    assert "live-a" in " ".join(psutil.Process(pid).cmdline())  # the run's real main process
    ty = t.row_of("[T]")
    assert t.line(ty).startswith("    [T] ") or t.line(ty).startswith("      [T] ")
    tid = int(t.line(ty).split()[1])
    assert os.path.exists("/proc/%d/task/%d" % (tid, tid)) or any(
        os.path.exists("/proc/%d/task/%d" % (p.pid, tid)) for p in psutil.process_iter())
    # the run's row stays selected; t again collapses
    assert selected_name(t) == "live-a"
    t.press("t")
    t.wait_gone("[P]")
    t.wait_gone("[T]")


def _batch_cell(t: TtopTerm, name: str) -> str:
    y = t.row_of(name + " ")
    return t.line(y)[:70] if y is not None else ""


def _position(epoch, phase, batch):
    """Where a demo run is, as one increasing number (train, then validation,
    per epoch)."""
    return (int(epoch) * 2 + (0 if str(phase).startswith("train") else 1)) * 10000 + int(batch)


def _shown_position(t: TtopTerm, name: str):
    cell = _batch_cell(t, name)
    words = cell.split()
    nums = re.findall(r"(\d+)/\d+", cell)
    if len(words) < 3 or len(nums) < 2:
        return None
    return _position(nums[0], words[2], nums[1])


def _file_position(folder, name):
    data = json.loads((folder / (name + ".json")).read_text())
    if not isinstance(data.get("epoch"), int) or not isinstance(data.get("batch"), int):
        return None
    return _position(data["epoch"], data.get("phase"), data["batch"])


def test_r_refreshes_now(ttop_term, folder):
    # a long interval: without r the screen keeps the first cycle's view for 60 s
    t = start(ttop_term, folder, interval="60")
    # past the first look at the files: the first full cycle is on screen
    t.wait_gone("looking up processes")
    shown = _shown_position(t, "live-a") or 0  # none while the run is still loading
    # the run moves on in its file while the screen keeps what the first cycle read
    ahead = wait_until(lambda: (_file_position(folder, "live-a") or 0) > shown and _file_position(folder, "live-a"),
                       timeout=30)
    t.press("r")
    # only a cycle started by r can show where the file was when r was pressed
    t.wait_for(lambda t: (_shown_position(t, "live-a") or 0) >= ahead, msg="r did not refresh")
    assert b"refreshing" in bytes(t.raw)


@pytest.mark.slow
def test_p_pauses_and_resumes(ttop_term, folder):
    t = start(ttop_term, folder)
    t.press("p")
    t.wait_for("PAUSED")
    frozen = _batch_cell(t, "live-a")
    time.sleep(2.0)  # several collector cycles at -i 0.5
    assert _batch_cell(t, "live-a") == frozen, t.dump()
    assert "PAUSED" in t.text
    t.press("p")
    t.wait_gone("PAUSED")
    t.wait_for(lambda t: _batch_cell(t, "live-a") != frozen)


@pytest.mark.parametrize("key", ["h", "?"])
def test_help_screen(ttop_term, folder, key):
    t = start(ttop_term, folder, rows=40)
    t.press(key)
    t.wait_for("ttop keys")
    for k in ("q / Ctrl+C", "Home / End", "signal all RUNNING runs", "KILLED*", "stale"):
        t.wait_for(k)
    t.press("x")  # any other key closes
    t.wait_gone("ttop keys")
    t.wait_for("Run Name")


# ---------------------------------------------------------------------------
# quitting and the terminal


def _shell(folder, *extra, env=None, cols=100, rows=30):
    # the shell survives a Ctrl+C (trap) and reports how ttop left the
    # terminal; it then keeps the terminal open, so that what it printed is
    # read before the last process on the terminal's side closes it (output
    # written just before that close was once not seen by the reader)
    cmd = ("trap : INT; %s -m ttop %s -i 0.5 %s; echo EXIT=$?; stty -a; echo DONE; exec sleep 60"
           % (sys.executable, folder, " ".join(extra)))
    return TtopTerm(["/bin/sh", "-c", cmd], cols=cols, rows=rows, env=env)


def _ttop_child(t: TtopTerm) -> psutil.Process:
    def find():
        for c in psutil.Process(t.proc.pid).children(recursive=True):
            if "ttop" in " ".join(c.cmdline()):
                return c
        return None
    return wait_until(find, timeout=60)


def _restored(t: TtopTerm, status: int) -> None:
    t.wait_for("DONE")
    text = "\n".join(t.display)
    assert "EXIT=%d" % status in text, t.dump()
    flags = text.split()
    assert "echo" in flags and "icanon" in flags and "-echo" not in flags, t.dump()
    raw = bytes(t.raw)
    assert b"\x1b[?25h" in raw  # the cursor was made visible again


@pytest.mark.parametrize("key,status", [("q", 0), ("CTRL_C", 0)])
def test_quit_restores_terminal(folder, key, status):
    t = _shell(folder)
    try:
        t.wait_for("live-a")
        t.press(key)
        _restored(t, status)
    finally:
        t.close()


def test_ctrl_s_is_a_key_not_a_frozen_terminal(folder):
    """A stray Ctrl+S stopped the terminal's output (IXON, kept by cbreak
    mode): the screen froze and ttop's next write blocked, so q did nothing
    until Ctrl+Q. It is a key now (ignored); the shell gets IXON back."""
    t = _shell(folder)
    try:
        t.wait_for("live-a")
        t.send(b"\x13")  # Ctrl+S (XOFF)
        t.press("q")
        _restored(t, 0)
        assert "ixon" in "\n".join(t.display).split(), t.dump()
    finally:
        t.close()


def test_sigterm_restores_terminal(folder):
    t = _shell(folder)
    try:
        t.wait_for("live-a")
        _ttop_child(t).send_signal(signal.SIGTERM)
        _restored(t, 143)
    finally:
        t.close()


def test_resize_shrink_and_grow(ttop_term, folder):
    t = start(ttop_term, folder, cols=120, rows=30)
    t.resize(40, 10)
    t.wait_for(lambda t: t.line(0).startswith(os.uname().nodename[:5]) or "CPU" in t.line(0))
    t.wait_for(lambda t: "Run Name" in t.text and "q quit" in t.line(9))
    assert all(len(l) == 40 for l in t.display)
    t.resize(30, 8)
    t.wait_for(lambda t: (t.line(0).rstrip() + " " + t.line(1).rstrip()) == "ttop needs at least 40x10 (now 30x8)")
    t.resize(120, 30)
    t.wait_for(lambda t: "Run Name" in t.text and "q quit" in t.line(29) and "Status" in t.text)
    t.wait_gone("ttop needs")
    # still responsive
    t.press("DOWN")
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[1])


def test_no_color_is_monochrome(ttop_term, folder):
    t = start(ttop_term, folder, env={"NO_COLOR": "1"}, rows=45)
    # the selected row still stands out (reverse), failed runs still bold;
    # polled: on a busy machine a repaint can be caught half written
    def failed_bold(t):
        y = t.row_of("old-01 ")
        return y is not None and "FAILED" in t.line(y) and t.cell(t.line(y).index("FAILED"), y).bold

    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[0] and failed_bold(t),
               msg="no reversed first row and bold FAILED")
    t.wait_quiet(0.3)
    for y in range(t.rows):  # no colour code is ever sent: any moment will do
        for c in t.row_cells(y):
            assert c.fg == "default" and c.bg == "default", (y, c, t.dump())


def test_eight_colours_distinguish_statuses(ttop_term, folder):
    t = start(ttop_term, folder, rows=45)
    t.wait_quiet(0.3)
    seen = {}
    for name, st in ENDED[:4]:
        y = t.row_of(name + " ")
        c = t.cell(t.line(y).index(st), y)
        seen[st] = (c.fg, c.bold, c.underscore)
    assert len(set(seen.values())) == 4, seen


def test_ascii_option(ttop_term, folder):
    t = start(ttop_term, folder, "--ascii", rows=40)
    t.wait_for("CPU [")
    t.wait_quiet(0.3)
    assert all(line.isascii() for line in t.display), t.dump()
    assert "#" in t.line(0) or "." in t.line(0)


def test_non_utf8_locale_falls_back_to_ascii(ttop_term, folder):
    """Under LC_ALL=C Python runs in UTF-8 mode (PEP 540) but curses draws
    in the C library's locale, ASCII: the bars, marks and arrows came out
    blank (curses draws what it cannot encode as nothing), not as their
    ASCII forms."""
    t = start(ttop_term, folder, env={"LANG": "C", "LC_ALL": "C"}, rows=40)
    t.wait_for("CPU [")
    t.wait_quiet(0.3)
    assert all(line.isascii() for line in t.display), t.dump()
    assert re.search(r"CPU \[[#.]{4,}\]", t.line(0)), t.dump()  # the bar, not blanks


def test_bad_names_do_not_break_the_screen(ttop_term, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    names = {"wide": "\u5b66\u7fd2\u5b9f\u9a13-\u65e5\u672c\u8a9e-\u30c6\u30b9\u30c8-\u5927\u304d\u306a\u30e2\u30c7\u30eb",
             "ctrl": "evil\x1b[2J\x1b]0;pwned\x07\r\nname\x1b[31m", "long": "L" * 180}
    for key, name in names.items():
        doc = _ended_doc(name, "FAILED")
        doc["rate"] = "NaN"
        doc["epoch"] = 10 ** 15
        write_json_atomic(str(d / (key + ".json")), doc)
    t = ttop_term(d, cols=80, rows=12)
    t.wait_for("Run Name")
    t.wait_for("evil")
    t.wait_for("\u5b66\u7fd2")
    t.wait_quiet(0.3)
    raw = bytes(t.raw)
    assert b"\x1b[2J" not in raw and b"pwned\x07" not in raw and b"\x1b]0;" not in raw
    assert t.line(t.row_of("evil")).startswith("evil  name ")  # escapes dropped, newline -> space
    assert "LLLLLLL" in t.text and "L" * 40 not in t.text
    assert t.row_of("q quit") == 11


@pytest.mark.slow
def test_thousand_runs_end_home(ttop_term, tmp_path):
    d = tmp_path / "many"
    d.mkdir()
    for i in range(1000):
        write_json_atomic(str(d / ("run-%04d.json" % i)), _ended_doc("run-%04d" % i, "FINISHED"))
    t = ttop_term(d, cols=100, rows=30)
    t.wait_for("run-0000")
    t.wait_for(lambda t: "1000 finished" in t.text and "looking up" not in t.text)  # the first full cycle
    page = sum(1 for line in t.display if line.startswith("run-"))  # the table's height
    t.press("END")
    t.wait_for(lambda t: selected_name(t) == "run-0999")
    t.press("HOME")
    t.wait_for(lambda t: selected_name(t) == "run-0000")
    # a burst of page downs: every one is answered, each a page further
    for _ in range(30):
        t.press("PGDN")
    t.wait_for(lambda t: selected_name(t) == "run-%04d" % min(999, 30 * page))


@pytest.mark.slow
def test_lever_keys_never_crash(ttop_term, folder):
    t = start(ttop_term, folder)
    for key in ("e", "o", "k", "l", "c"):
        t.press(key)
        time.sleep(0.2)
        t.press("ESC")
        time.sleep(0.2)
    t.press("q")
    t.wait_for(lambda t: not t.proc.isalive(), msg="q did not quit after the lever keys")
    assert t.wait_exit() == 0


def test_inferred_killed_is_distinct_from_reported(ttop_term, tmp_path):
    d = tmp_path / "killed"
    d.mkdir()
    write_json_atomic(str(d / "reported.json"), _ended_doc("reported", "KILLED"))
    p = _start_live(d, "victim")
    try:
        t = ttop_term(d, cols=100, rows=20)
        t.wait_for(lambda t: t.row_of("victim ") is not None and "RUNNING" in t.line(t.row_of("victim ")))
    finally:
        _kill(p)  # SIGKILL: the run cannot report anything
    t.wait_for("KILLED*", timeout=30)
    t.wait_for("* inferred: process gone")
    yv, yr = t.row_of("victim "), t.row_of("reported ")
    xv, xr = t.line(yv).index("KILLED*"), t.line(yr).index("KILLED")
    assert "KILLED*" not in t.line(yr)
    cv, cr = t.cell(xv, yv), t.cell(xr, yr)
    assert (cv.fg, cv.bold, cv.underscore, cv.reverse) != (cr.fg, cr.bold, cr.underscore, cr.reverse)


CRASH = """
import sys
from ttop.collect import Collector
from ttop.ui import main_screen
from ttop.ui.app import run_ui
orig = main_screen.MainScreen.on_key
def on_key(self, key, ctx):
    if key == "X":
        raise RuntimeError("boom from a key handler")
    return orig(self, key, ctx)
main_screen.MainScreen.on_key = on_key
sys.exit(run_ui(Collector(sys.argv[1], interval=0.5)))
"""


@pytest.mark.parametrize("debug", [False, True])
def test_exception_restores_terminal_and_reports_one_line(folder, debug):
    env = {"TTOP_DEBUG": "1"} if debug else None
    cmd = "trap : INT; %s -c '%s' %s; echo EXIT=$?; stty -a; echo DONE; exec sleep 60" % (sys.executable, CRASH, folder)
    t = TtopTerm(["/bin/sh", "-c", cmd], cols=120, rows=40, env=env)
    try:
        t.wait_for("live-a")
        t.press("X")
        t.wait_for("DONE")
        text = t.text
        assert "EXIT=1" in text
        assert "ttop: error: RuntimeError: boom from a key handler" in text
        assert ("Traceback" in text) == debug
        flags = text.split()
        assert "echo" in flags and "icanon" in flags, t.dump()
    finally:
        t.close()


def test_monochrome_terminal_without_colours(ttop_term, folder):
    # vt100 has no colours: has_colors() is false, roles fall back to attributes
    t = start(ttop_term, folder, env={"TERM": "vt100"}, rows=45)
    t.wait_quiet(0.3)
    for y in range(t.rows):
        for c in t.row_cells(y):
            assert c.fg == "default" and c.bg == "default", (y, c, t.dump())
    assert selected_name(t) == ALL_SORTED[0]
    t.send(b"\x1bOB")  # vt100's Down key (application cursor mode)
    t.wait_for(lambda t: selected_name(t) == ALL_SORTED[1])


def _exits_in_shell(folder, term):
    """ttop started by a shell on a TERM it cannot drive; the shell prints
    its exit status, then keeps the terminal open (as _shell does): what
    ttop printed just before it exited is read before the terminal's last
    writer closes it."""
    cmd = "%s -m ttop %s; echo EXIT=$?; exec sleep 60" % (sys.executable, folder)
    return TtopTerm(["/bin/sh", "-c", cmd], cols=100, rows=10, env={"TERM": term})


def test_unknown_terminal_gives_one_clear_line(folder):
    t = _exits_in_shell(folder, "no-such-terminal")
    try:
        t.wait_for("EXIT=")
        assert "EXIT=1" in t.text, t.dump()
        assert "ttop: cannot drive this terminal (TERM=no-such-terminal)" in t.text
        assert "Traceback" not in t.text
    finally:
        t.close()


def test_dumb_terminal_gives_one_clear_line(folder):
    """TERM=dumb has no cursor addressing: curses there only streams blanks."""
    t = _exits_in_shell(folder, "dumb")
    try:
        t.wait_for("EXIT=")
        assert "EXIT=1" in t.text, t.dump()
        assert "ttop: cannot drive this terminal (TERM=dumb): it cannot move the cursor" in t.text
    finally:
        t.close()


def test_needs_a_terminal(folder):
    p = subprocess.run([sys.executable, "-m", "ttop", str(folder)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, cwd=str(ROOT))
    assert p.returncode == 2
    assert p.stdout == b""
    assert b"needs a terminal" in p.stderr and b"Traceback" not in p.stderr


def _static_term(ttop_term, tmp_path):
    """ttop at -i 60 over 12 ended runs, once its first full cycle (after
    the first screen) has been drawn and the terminal went quiet."""
    d = tmp_path / "static"
    d.mkdir()
    for name, st in ENDED[:12]:
        write_json_atomic(str(d / (name + ".json")), _ended_doc(name, st))
    t = ttop_term(d, interval="60", cols=120, rows=30)
    t.wait_for(lambda t: "old-11" in t.text and "looking up" not in t.text)
    t.wait_quiet(0.5)
    return t


@pytest.mark.slow
def test_no_output_when_nothing_changed_and_small_updates(ttop_term, tmp_path):
    t = _static_term(ttop_term, tmp_path)
    n = len(t.raw)
    time.sleep(2.0)
    assert len(t.raw) == n, "output while nothing changed: %r" % bytes(t.raw[n:])
    t.press("DOWN")
    t.wait_for(lambda t: selected_name(t) == "old-01")
    t.wait_quiet(0.3)
    # only the two rows whose highlight changed were rewritten (a full screen is ~4 KB)
    assert len(t.raw) - n < 700, len(t.raw) - n


@pytest.mark.slow
def test_a_changed_row_goes_out_whole(ttop_term, tmp_path):
    """A row that changed is sent whole, left to right, not as pieces
    between cursor moves: its unchanged name, left of the changed batch,
    goes out again."""
    t = _static_term(ttop_term, tmp_path)
    doc = _ended_doc("old-05", ENDED[5][1])
    doc["train_batch"] = 250
    write_json_atomic(str(tmp_path / "static" / "old-05.json"), doc)
    n = len(t.raw)
    t.press("r")
    t.wait_for(lambda t: "250/500" in t.text)
    t.wait_quiet(0.3)
    out = t.output(n)
    assert b"old-05" in out and b"old-04" not in out, out


@pytest.mark.slow
def test_screen_after_bursts_of_keys_equals_a_full_redraw(ttop_term, folder):
    """Keys racing new snapshots (each changed line sent whole): once
    paused and quiet, what the terminal shows is what Ctrl+L draws anew."""
    import random

    t = start(ttop_term, folder, interval="0.3", cols=140, rows=20)
    rnd = random.Random(5)
    for _ in range(6):
        for _ in range(rnd.randint(5, 30)):
            t.press(rnd.choice(["RIGHT", "LEFT", "DOWN", "UP", "PGDN", "PGUP"]))
            if rnd.random() < 0.3:
                time.sleep(rnd.random() * 0.05)
        t.press("p")
        t.wait_for("PAUSED")
        t.wait_quiet(0.5)
        before = t.display
        t.press("CTRL_L")
        t.wait_quiet(0.5)
        assert t.display == before
        t.press("p")
        t.wait_gone("PAUSED")


def _writes(pid: int) -> int:
    """Write system calls made so far by process ``pid`` (all its threads)."""
    with open("/proc/%d/io" % pid) as f:
        return int(next(line for line in f if line.startswith("syscw:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/<pid>/io")
def test_a_frame_goes_out_in_a_few_writes(ttop_term, tmp_path):
    """A screen drawn anew (the help screen over the table: every line
    changes) reaches the terminal in a few writes, not one per place the
    cursor moves to."""
    t = _static_term(ttop_term, tmp_path)
    before, n = _writes(t.proc.pid), len(t.raw)
    t.press("?")
    t.wait_for("ttop keys")
    t.wait_quiet(0.5)
    assert t.raw.count(b"\x1b[", n) > 20  # the cursor moved all over the screen
    assert _writes(t.proc.pid) - before <= 3


def test_r_while_paused_shows_one_new_snapshot(ttop_term, folder):
    t = start(ttop_term, folder, interval="60")
    t.press("p")
    t.wait_for("PAUSED")
    shown = _shown_position(t, "live-a") or 0  # none while the run is still loading
    # the live run moves on in its file while the paused screen keeps its view
    ahead = wait_until(lambda: (_file_position(folder, "live-a") or 0) > shown and _file_position(folder, "live-a"),
                       timeout=30)
    t.press("r")
    t.wait_for(lambda t: (_shown_position(t, "live-a") or 0) >= ahead, msg="r while paused showed no new snapshot")
    assert "PAUSED" in t.text


def test_resize_storm_then_correct_screen(ttop_term, folder):
    t = start(ttop_term, folder, cols=100, rows=30)
    t.press("h")
    t.wait_for("ttop keys")
    for cols, rows in [(60, 12), (20, 5), (1, 1), (200, 60), (40, 10), (39, 9), (150, 20), (45, 11)] * 2:
        t.resize(cols, rows)
        time.sleep(0.02)
    t.wait_for("ttop keys")
    t.press("x")
    t.resize(90, 24)
    t.wait_for(lambda t: "Run Name" in t.text and t.line(23).startswith("q quit") and "live-a" in t.text)
    assert t.proc.isalive()
    assert all(len(line) == 90 for line in t.display)


def test_gpu_header_and_unattributable_gpu_memory_from_replayed_nvml(ttop_term, tmp_path):
    """NVML cannot exist here: the recorded H200 answers are replayed by
    tests/fakes/pynvml.py. The recorded CUDA process is mapped onto a live
    demo run's PID, but that process has no /dev/nvidiaN open, so the
    collector refuses to attribute the memory and the UI says why."""
    d = tmp_path / "gpu"
    d.mkdir()
    p = _start_live(d, "on-gpu")
    try:
        wait_until(lambda: (d / "on-gpu.json").exists(), timeout=30)
        import json
        pid = wait_until(lambda: json.loads((d / "on-gpu.json").read_text()).get("pid"), timeout=30)
        env = {"PYTHONPATH": str(ROOT / "tests" / "fakes"), "TTOP_FAKE_NVML_PHASE": "busy",
               "TTOP_FAKE_NVML_PID_MAP": "489:%d" % pid}
        t = ttop_term(d, cols=160, rows=16, env=env)
        t.wait_for("GPU0 NVIDIA H200")
        line = t.line(t.row_of("GPU0"))
        assert "util [" in line and "] 100%" in line and "mem [" in line and "/140G" in line
        t.wait_for("GPU 0B/140G")  # the budget line: nothing attributed
        t.wait_for("NVML PIDs do not match this PID namespace")
        hdr = t.row_of("Run Name")
        # one press per scrollable column up to GPU (Health is one of them)
        for _ in range(18):
            t.press("RIGHT")
        t.wait_for(lambda t: " GPU " in t.line(hdr) + " ")
        t.wait_quiet()  # every RIGHT drawn: header and row come from the same, last frame
        end = t.line(hdr).index("    GPU") + 7  # right-aligned, 6 cells after a space
        row = t.line(t.row_of("on-gpu "))
        assert row[end - 6:end].strip() == "-", (t.line(hdr), row)
        assert row[end - 13:end - 7].strip().endswith("M"), (t.line(hdr), row)  # RAM, the column before, is known
    finally:
        _kill(p)


def test_sighup_exits_without_spinning(ttop_term, folder):
    t = start(ttop_term, folder)
    child = psutil.Process(t.proc.pid)
    child.send_signal(signal.SIGHUP)
    assert t.wait_exit() == 129


def test_closed_stdin_is_refused_with_one_line(folder):
    # the terminal stays on stdout, stdin is closed by the shell
    cmd = "%s -m ttop %s -i 0.5 <&-; echo EXIT=$?; exec sleep 60" % (sys.executable, folder)
    t = TtopTerm(["/bin/sh", "-c", cmd], cols=100, rows=20)
    try:
        t.wait_for("EXIT=")
        assert "EXIT=2" in t.text and "needs a terminal" in t.text
    finally:
        t.close()


def test_ctrl_z_suspends_and_fg_redraws(folder):
    t = TtopTerm(["/bin/bash", "--norc", "--noprofile", "-i"], cols=120, rows=30, env={"PS1": "PROMPT$ "})
    try:
        t.wait_for("PROMPT$")
        t.send("%s -m ttop %s -i 0.5\r" % (sys.executable, folder))
        t.wait_for("live-a")
        t.send(b"\x1a")  # Ctrl+Z
        t.wait_for("Stopped")
        t.send("clear; fg\r")
        t.wait_for(lambda t: "Run Name" in t.text and "q quit" in t.line(29) and "live-a" in t.text)
        t.press("DOWN")
        t.wait_for(lambda t: selected_name(t) == ALL_SORTED[1])
        t.press("q")
        t.wait_for(lambda t: t.line(29).startswith("PROMPT$") or "PROMPT$" in t.text.split("q quit")[-1])
        t.send("exit\r")
        assert t.wait_exit() == 0
    finally:
        t.close()



def test_ctrl_z_while_a_frame_is_written_still_suspends(folder):
    """Ctrl+Z typed while ttop is in the middle of writing a frame stops it
    all the same (ncurses ignores SIGTSTP for the whole of a doupdate, so
    the kernel dropped a Ctrl+Z that came then). The terminal's output is
    held with XOFF (Ctrl+S, after turning the flow control ttop leaves off
    back on) so that a frame's write blocks: Ctrl+Z comes while ttop is
    inside it."""
    import termios

    t = TtopTerm(["/bin/bash", "--norc", "--noprofile", "-i"], cols=120, rows=30, env={"PS1": "PROMPT$ "})
    try:
        t.wait_for("PROMPT$")
        t.send("%s -m ttop %s -i 0.5\r" % (sys.executable, folder))
        t.wait_for(lambda t: "live-a" in t.text and "q quit" in t.line(29))
        ttop = [p for p in psutil.Process(t.proc.pid).children() if "ttop" in " ".join(p.cmdline())][0]
        fd = os.open("/proc/%d/fd/1" % ttop.pid, os.O_RDWR | os.O_NOCTTY)
        try:
            attrs = termios.tcgetattr(fd)
            attrs[0] |= termios.IXON
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        finally:
            os.close(fd)
        t.send(b"\x13")  # XOFF: the terminal stops taking output
        t.press("DOWN")  # a frame to write (the next snapshot makes one too)
        # the main thread blocked writing to the held terminal
        wait_until(lambda: Path("/proc/%d/wchan" % ttop.pid).read_text() in ("n_tty_write", "wait_woken")
                   and ttop.status() == psutil.STATUS_SLEEPING, timeout=60)
        t.send(b"\x1a")  # Ctrl+Z
        t.send(b"\x11")  # XON
        t.wait_for("Stopped")
        t.send("clear; fg\r")
        t.wait_for(lambda t: "Run Name" in t.text and "q quit" in t.line(29) and "live-a" in t.text)
        t.press("q")
        t.wait_for(lambda t: "PROMPT$" in t.text.split("q quit")[-1])
        t.send("exit\r")
        assert t.wait_exit() == 0
    finally:
        t.close()


def test_ctrl_u_is_a_key_name():
    """Ctrl+U reaches the screens as CTRL_U (it clears the editor, filter and
    search fields), never as a raw control character."""
    from ttop.ui.app import normalise_key

    assert normalise_key("\x15", {}) == "CTRL_U"
    assert normalise_key("\x01", {}) is None


def test_a_stuck_collector_is_said_and_its_last_figures_not_passed_off_as_live(ttop_term, tmp_path):
    """NVML calls hang on a driver in a bad state (a GPU fallen off the bus;
    so do reads of a hung network folder): the collector thread waits in the
    call and publishes nothing. The monitor went on showing the last
    snapshot, a RUNNING run with its rate and heartbeat age, as if live,
    for as long as that lasted. It now says, once the data is late, that
    nothing new came and since when, and the figures come back with the
    collector."""
    d = tmp_path / "progress"
    d.mkdir()
    hang = tmp_path / "nvml-hangs"
    now = time.time()
    write_json_atomic(str(d / "far.json"), {
        "format": "ttop.progress/1", "run_name": "far", "status": "RUNNING", "updated_at": now,
        "host": "elsewhere", "heartbeat_interval": 600, "phase": "train", "rate": 2.5,
        "batch": 10, "total_batches": 100})
    # (the cycle would go on without the GPU after 5 s: waited for here as
    # long as a folder read that hangs would be)
    env = {"PYTHONPATH": str(ROOT / "tests" / "fakes"), "TTOP_FAKE_NVML_HANG_FILE": str(hang),
           "TTOP_DEVICE_TIMEOUT": "3600"}
    t = ttop_term(d, interval="0.2", cols=120, rows=16, env=env)
    t.wait_for("GPU0 NVIDIA H200")
    t.wait_for("far ")
    hang.write_text("")
    t.wait_for(lambda t: "no new data" in t.text, msg="a stuck collector went unsaid")
    assert "ttop's collector" in t.text
    hang.unlink()
    t.wait_gone("no new data")
    t.press("q")
    assert t.wait_exit() == 0


def test_a_hung_nvml_call_costs_the_gpu_lines_not_the_collector(ttop_term, tmp_path):
    """With the default bound, the cycle goes on without the GPU while an
    NVML call hangs: the runs stay current and the header says why the GPU
    is missing; once the call returns, the GPU is back."""
    d = tmp_path / "progress"
    d.mkdir()
    hang = tmp_path / "nvml-hangs"
    write_json_atomic(str(d / "far.json"), {
        "format": "ttop.progress/1", "run_name": "far", "status": "RUNNING", "updated_at": time.time(),
        "host": "elsewhere", "heartbeat_interval": 600, "phase": "train", "batch": 10, "total_batches": 100})
    env = {"PYTHONPATH": str(ROOT / "tests" / "fakes"), "TTOP_FAKE_NVML_HANG_FILE": str(hang),
           "TTOP_DEVICE_TIMEOUT": "1"}
    t = ttop_term(d, interval="0.2", cols=120, rows=16, env=env)
    t.wait_for("GPU0 NVIDIA H200")
    hang.write_text("")
    t.wait_for("NVML not responding")
    # the collector goes on: a new batch of the run shows meanwhile
    write_json_atomic(str(d / "far.json"), {
        "format": "ttop.progress/1", "run_name": "far", "status": "RUNNING", "updated_at": time.time(),
        "host": "elsewhere", "heartbeat_interval": 600, "phase": "train", "batch": 42, "total_batches": 100})
    t.wait_for(lambda t: "42/100" in t.text, msg="the collector stopped with the NVML call")
    assert "no new data" not in t.text and "NVML not responding" in t.text
    hang.unlink()
    t.wait_for("GPU0 NVIDIA H200")
    t.wait_gone("NVML not responding")
    t.press("q")
    assert t.wait_exit() == 0


def test_the_time_ttop_was_suspended_does_not_make_its_data_late(folder):
    # Ctrl+Z stops the collector with the monitor: at fg the snapshot is as
    # old as the suspension, yet nothing is stuck (the footer said "no new
    # data for 12s: ttop's collector is waiting on a call" until the next)
    t = TtopTerm(["/bin/bash", "--norc", "--noprofile", "-i"], cols=120, rows=30, env={"PS1": "PROMPT$ "})
    try:
        t.wait_for("PROMPT$")
        t.send("%s -m ttop %s -i 2\r" % (sys.executable, folder))
        t.wait_for("live-a")
        t.send(b"\x1a")  # Ctrl+Z
        t.wait_for("Stopped")
        time.sleep(11)  # past the 10 s after which data is late
        start = len(t.output())
        t.send("clear; fg\r")
        t.wait_for(lambda t: "Run Name" in t.text and "q quit" in t.line(29))
        time.sleep(1)
        assert b"no new data" not in t.output(start)
        t.press("q")
        t.wait_for(lambda t: "PROMPT$" in t.text.split("q quit")[-1])
        t.send("exit\r")
        assert t.wait_exit() == 0
    finally:
        t.close()
