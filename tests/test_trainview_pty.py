"""The training view, driven for real in a pseudo-terminal against demo runs
(examples/demo_job.py) of different speeds: sorting, the run detail screen
with its charts, and the comparison of marked runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import demo_runs
from ptyharness import TtopTerm

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo_job.py"
#: name -> seconds per batch (the names' order is not the speed order)
RUNS = {"a-slow": 0.3, "b-fast": 0.02, "c-mid": 0.08}


def _args(batch_time: float) -> list:
    return ["--epochs", "1000", "--batches", "400", "--val-batches", "4", "--batch-time", str(batch_time),
            "--workers", "1", "--work", "200", "--interval", "0.3"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("trainview") / "progress"
    d.mkdir()
    with demo_runs(d, {n: _args(bt) for n, bt in RUNS.items()}):
        yield d


def start(ttop_term, folder, **kw) -> TtopTerm:
    t = ttop_term(folder, **kw)
    t.wait_for("Run Name", msg="the table never showed")
    t.wait_for(lambda t: all(t.row_of(n + " ") is not None for n in RUNS), msg="the runs never showed")
    return t


def order(t: TtopTerm):
    names = []
    for line in t.display:
        w = line.split()[:1]
        if w and w[0].lstrip("*") in RUNS:
            names.append(w[0].lstrip("*"))
    return names


def test_sort_by_rate_puts_the_fastest_first_and_I_inverts(ttop_term, folder):
    t = start(ttop_term, folder, cols=120, rows=20)
    t.wait_for(lambda t: order(t) == ["a-slow", "b-fast", "c-mid"])
    # < / > walk the sort column: Run Name, Status, Health, Phase, Epoch, Batch, Rate
    for _ in range(7):
        t.press(">")
    t.wait_for("sort: Rate, highest first")
    t.wait_for(lambda t: order(t) == ["b-fast", "c-mid", "a-slow"], timeout=30)
    assert "Rate\u25bc" in t.line(t.row_of("Run Name"))
    t.press("I")
    t.wait_for("sort: Rate, lowest first")
    t.wait_for(lambda t: order(t) == ["a-slow", "c-mid", "b-fast"], timeout=30)


def _loss_axis_end(t: TtopTerm):
    """The last x label on the axis under the loss chart (or None)."""
    y = t.row_of("loss  last")
    if y is None:
        return None
    for yy in range(y + 1, t.rows):
        line = t.line(yy)
        if "\u2514" in line:
            axis = line.split("\u2514", 1)[1].split(" ")[0]
            digits = axis.split("\u2500")[-1]
            return int(digits) if digits.isdigit() else None
    return None


def test_enter_opens_the_detail_view_and_its_charts_grow(ttop_term, folder):
    t = start(ttop_term, folder, cols=100, rows=30)
    t.press("DOWN")  # b-fast
    t.wait_for(lambda t: t.selected_row() == t.row_of("b-fast "))
    t.press("ENTER")
    t.wait_for(lambda t: t.line(0).startswith("b-fast  RUNNING"), msg="the detail view never opened")
    t.wait_for("loss  last")
    assert "PID" in t.line(1) and "host" in t.line(1)
    first = t.wait_for(lambda t: _loss_axis_end(t))
    t.wait_for(lambda t: (_loss_axis_end(t) or 0) > first, timeout=30, msg="the loss chart never grew")
    assert "Variables" in t.text and "lr = " in t.text
    t.wait_for("CPU %  last", msg="no resource chart from the collector's recent samples")
    # keys: zoom, log, x by time
    t.press("+")
    t.wait_for("zoom last 500")
    t.press("l")
    t.wait_for(lambda t: "l log" in t.line(t.rows - 1))
    t.press("x")
    t.wait_for("x by time")
    t.press("ESC")
    t.wait_for("Run Name")


def test_detail_view_degrades_at_40x10(ttop_term, folder):
    t = start(ttop_term, folder, cols=40, rows=10)
    t.press("ENTER")
    t.wait_for(lambda t: t.line(0).startswith("a-slow"))
    t.wait_for(lambda t: any("last" in l for l in t.display[1:3]))
    assert "Esc" not in t.line(9) or "x by" in t.line(9)
    t.press("q")
    t.wait_for("Run Name")


def test_two_marked_runs_are_overlaid_without_colour(ttop_term, folder):
    t = ttop_term(folder, "--ascii", cols=100, rows=30, env={"NO_COLOR": "1"})
    t.wait_for(lambda t: all(t.row_of(n + " ") is not None for n in RUNS))
    t.press("C")
    t.wait_for("mark at least two runs")
    t.press(" ")
    t.wait_for("1 run marked")
    t.press("DOWN", " ")
    t.wait_for("2 runs marked")
    t.wait_for(lambda t: t.row_of("*a-slow") is not None and t.row_of("*b-fast") is not None)
    t.press("C")
    t.wait_for("compare 2 runs")
    # the legend: one marker per run, no colour needed
    t.wait_for(lambda t: "* a-slow  + b-fast" in t.line(1))
    t.wait_for(lambda t: t.row_of("loss ") is not None)
    t.press("x")  # by wall time both runs span the whole width (by step the slow one is short)
    t.wait_for("x by time")

    def plot(t):
        y = t.row_of("loss ")
        return "\n".join(t.line(yy)[9:40] for yy in range(y + 1, y + 5))

    t.wait_for(lambda t: "*" in plot(t) and "+" in plot(t), msg="both runs drawn, each with its marker")
