"""The column chooser (``m``) driven for real in a pseudo-terminal against
demo runs: hiding CPU takes it out of the table, and it stays out after ttop
is quit and started again with the same config folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import demo_runs
from ptyharness import TtopTerm

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo_job.py"
RUNS = ("col-a", "col-b")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("columns") / "progress"
    d.mkdir()
    args = ["--epochs", "1000", "--batches", "400", "--batch-time", "0.05", "--workers", "1", "--interval", "0.3"]
    with demo_runs(d, {n: args for n in RUNS}):
        yield d


def title(t: TtopTerm) -> str:
    y = t.row_of("Run Name")
    return t.line(y) if y is not None else ""


def start(ttop_term, folder, env, *args, cols=250, rows=20) -> TtopTerm:
    t = ttop_term(folder, *args, cols=cols, rows=rows, env=env)
    t.wait_for(lambda t: all(t.row_of(n + " ") is not None for n in RUNS), msg="the runs never showed")
    t.wait_for(lambda t: " loss" in title(t), msg="no metric column")
    return t


def cursor_line(t: TtopTerm) -> str:
    """The chooser's cursor row (reversed; the title row above it may be
    reversed too, without colour)."""
    for y in range(1, t.rows):
        if t.is_reverse_row(y, 1, 4):
            return t.line(y)
    return ""


@pytest.mark.slow
def test_chooser_hides_cpu_and_it_stays_hidden_after_a_restart(ttop_term, folder, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    t = start(ttop_term, folder, env, rows=40)  # the whole list fits: no scrolling
    t.wait_for(lambda t: " CPU " in title(t) and " RAM " in title(t))
    t.press("m")
    t.wait_for(lambda t: t.line(0).startswith("Columns: "), msg="the chooser never opened")
    t.wait_for(lambda t: cursor_line(t).startswith(" [x] Host"))
    y = t.wait_for(lambda t: t.row_of("[x] CPU "))
    t.press(*["DOWN"] * (y - 1))
    t.wait_for(lambda t: "[x] CPU " in cursor_line(t))
    t.press(" ")
    t.wait_for(lambda t: "[ ] CPU " in cursor_line(t))
    t.press("ENTER")
    t.wait_for("columns saved to")
    t.wait_for(lambda t: " RAM " in title(t) and " CPU " not in title(t), msg="CPU still in the table")
    saved = json.loads((tmp_path / "xdg" / "ttop" / "config.json").read_text())
    assert "-cpu" in saved["columns"]
    t.press("q")
    assert t.wait_exit() == 0

    t2 = start(ttop_term, folder, env, rows=40)
    t2.wait_for(lambda t: " RAM " in title(t) and " GPU " in title(t))
    assert " CPU " not in title(t2)
    # --columns overrides the saved choice for one launch, and leaves it alone
    t3 = start(ttop_term, folder, env, "--columns", "status,rate,loss,cpu")
    t3.wait_for(lambda t: title(t).split() == ["Run", "Name", "Status", "Rate", "loss", "CPU"])
    assert "-cpu" in json.loads((tmp_path / "xdg" / "ttop" / "config.json").read_text())["columns"]


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (40, 10), (20, 5)])
def test_chooser_small_terminals_no_colour_ascii(ttop_term, folder, tmp_path, size):
    cols, rows = size
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "NO_COLOR": "1"}
    t = ttop_term(folder, "--ascii", cols=cols, rows=rows, env=env)
    t.wait_for(lambda t: t.row_of(RUNS[0][:8]) is not None or "needs at least" in t.text)
    t.press("m")
    t.wait_for(lambda t: t.line(0).startswith("Columns"), msg="the chooser never opened")
    t.wait_for(lambda t: cursor_line(t).startswith(" ["))
    t.press("END", " ", "-", "PGUP", "+")
    t.wait_for(lambda t: "[" in cursor_line(t))
    assert all(ch.isascii() for ch in t.text)
    if rows >= 10:
        t.wait_for("Enter")
    t.resize(20, 5)
    t.wait_for(lambda t: t.line(0).startswith("Columns"))
    t.press("ESC")
    t.wait_for(lambda t: not t.line(0).startswith("Columns"))
    assert not (tmp_path / "xdg" / "ttop" / "config.json").exists()  # Esc: nothing saved
    t.press("q")
    assert t.wait_exit() == 0
