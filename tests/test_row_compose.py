"""A run's table row made in one pass (``compose.run_line``, with its fitted
cells kept per column shape) against the row made cell by cell and fitted
afresh: random runs, layouts, widths, marks and selections."""
from __future__ import annotations

import math
import random

from ttop import record
from ttop.collect.snapshot import RunResources, RunSnapshot, Snapshot
from ttop.view import roles as R
from ttop.view.compose import compose_row, row_plan, run_cells, run_line
from ttop.view.state import ViewState
from ttop.view.table import (
    COLUMNS,
    Row,
    _layout,
    _name_text,
    cell_role,
    cell_text,
    health_column,
    metric_column,
    render_table,
    row_role,
)
from ttop.view.text import clean, fit

STATUSES = ("RUNNING", "RUNNING", "FINISHED", "FAILED", "KILLED")
TIMES = (None, 0.0, 5.5, 59.999, 725.0, 3725.0, 3 * 86400.0 + 7, 1e12, math.nan, math.inf, -3.0, "soon", True, 42)
METRICS = (None, 1.5, 0.000123, 123456789.0, math.nan, -math.inf, "best", True, 3)


def _run(rng: random.Random, i: int) -> RunSnapshot:
    status = rng.choice(STATUSES)
    reported = status if rng.random() < 0.8 else "RUNNING"
    times = {sec: {k: rng.choice(TIMES) for k in ("elapsed", "remaining", "total", "last")}
             for sec in ("run", "epoch", "train", "validation") if rng.random() < 0.8}
    metrics = {m: rng.choice(METRICS) for m in ("loss", "acc", "l\u00e9") if rng.random() < 0.8}
    history = {m: [rng.choice((0.5, 1.0, 2.0, 1.5, "x")) for _ in range(rng.randrange(0, 14))] for m in metrics}
    data = {"format": "ttop.progress/1", "run_name": "r%d" % i, "status": reported, "updated_at": 1.0,
            "phase": rng.choice(("train", "validation", None, 7, "\u00e9val\tx")),
            "epoch": rng.choice((None, 1, 12345678, -1, 2.5)), "total_epochs": rng.choice((None, 3, 10 ** 9)),
            "train_batch": rng.choice((None, 5, 999999)), "train_total_batches": rng.choice((None, 500)),
            "rate": rng.choice((None, 0.01, 1.2878, 12.3, 5000.0, math.nan, "fast")),
            "times": times, "metrics": metrics, "history": history,
            "links": {"wandb": rng.choice(("https://wandb.ai/x/y", "\x1b[31mred", None))}}
    res = RunResources(cpu_percent=rng.choice((None, 0.0, 99.6, 1e6)), rss_bytes=rng.choice((None, 1, 3 << 30)),
                       num_procs=rng.choice((None, 3)), num_threads=rng.choice((None, 17)),
                       source=rng.choice(("local", "local", "pending")))
    return RunSnapshot(key="k%d" % i, path="/p/k%d.json" % i, data=data, run_name=data["run_name"], status=status,
                       reported_status=reported, status_inferred=status != reported, stale=rng.random() < 0.2,
                       resources=res, pid=rng.choice((None, 4242)))


def _reference(run, layout, name, name_role, base, nw, width_, ell, stale, sel):
    """The row as compose_row makes it from each cell's text and role."""
    cells = [(clean(cell_text(col, Row("run", ("run", run.key), run))), cell_role(col, run, base)) for col, _w in layout]
    return compose_row(name, name_role, cells, layout, nw, width_, ell, stale, sel)


def test_run_line_matches_the_row_made_cell_by_cell():
    rng = random.Random(20260514)
    cols = list(COLUMNS) + [health_column(), metric_column("loss"), metric_column("l\u00e9", ascii=True)]
    for trial in range(400):
        rng.shuffle(cols)
        ell = rng.choice(("\u2026", "..."))
        width_ = rng.randrange(20, 260)
        nw = rng.randrange(1, 33)
        grown = {"epoch": rng.randrange(7, 26)} if rng.random() < 0.5 else None
        layout = _layout(cols, rng.randrange(0, 4), width_ - nw, rng.randrange(9, 40), grown)
        getters = [(col.run, col.status_colored, col.cell_role, None) for col, _w in layout]
        plan = row_plan(getters, layout, ell)
        for i in range(5):
            run = _run(rng, trial * 5 + i)
            base = row_role(Row("run", ("run", run.key), run))
            name = _name_text(Row("run", ("run", run.key), run))
            name_role = R.MARK if rng.random() < 0.2 else R.NORMAL
            stale, sel = run.stale, rng.random() < 0.2
            got = run_line(run, base, name, name_role, plan, i, nw, width_, ell, stale, sel)
            assert got == _reference(run, layout, name, name_role, base, nw, width_, ell, stale, sel)
            # and as run_cells + compose_row make it
            assert got == compose_row(name, name_role, run_cells(run, base, getters, i), layout, nw, width_, ell,
                                      stale, sel)


def test_fitted_cells_are_kept_per_width_alignment_and_ellipsis():
    # the same text in columns of other shapes, one after the other: each fitted for its own
    rng = random.Random(7)
    for _ in range(300):
        text = rng.choice(("12m05s", "1.2878/s", "\u2713 ok", "a-much-longer-cell-text", ""))
        w = rng.randrange(1, 12)
        align = rng.choice("<>")
        ell = rng.choice(("\u2026", "..."))
        col = record.replace(COLUMNS[0], align=align)
        plan = row_plan([(lambda r, t=text: t, False, None, None)], [(col, w)], ell)
        line = run_line(None, R.NORMAL, "n", R.NORMAL, plan, 0, 1, 1 + w + 1, ell)
        assert "".join(t for t, _ in line) == "n" + " " + fit(text, w, align, ell)


def test_table_rows_follow_each_snapshot():
    # a sequence of snapshots whose runs change at random: the rows drawn
    # with every cache warm are the rows drawn with every cache emptied
    from ttop.view import compose, table

    rng = random.Random(99)
    state = ViewState()
    try:
        _table_sequence(rng, state, compose, table)
    finally:  # the next tests' snapshots start at seq 1 again: they are newer than nothing drawn
        for kept in (table._LINES, table._GROWN):
            kept.clear()
            kept.seq = None


def _table_sequence(rng, state, compose, table):
    for seq in range(1, 60):
        runs = tuple(_run(rng, i) for i in range(rng.randrange(1, 8)))
        snap = Snapshot(seq=seq, taken_at=1.0, folder="/p", runs=runs)
        width_ = rng.choice((80, 120, 200))
        st = state.with_(col_offset=rng.randrange(0, 3), ascii=rng.random() < 0.3)
        warm = render_table(snap, st, width_, 20).lines
        for kept in (compose._FITTED_BY, compose._FITTED):
            kept.clear()
        table._LINES.clear()
        table._GROWN.clear()
        assert render_table(snap, st, width_, 20).lines == warm
