"""Metric columns and sorting in the main table (pure view)."""
from __future__ import annotations

from ttop.collect.snapshot import RunResources, RunSnapshot, Snapshot
from ttop.view import metrics as M
from ttop.view import roles as R
from ttop.view.state import ViewState
from ttop.view.table import columns_for, render_table, sort_runs, visible_rows


def run(key, status="RUNNING", data=None, **kw):
    d = {"format": "ttop.progress/1", "run_name": key, "status": status, "updated_at": 1000.0, "phase": "train"}
    d.update(data or {})
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=d, run_name=key, status=status,
                       reported_status=status, status_inferred=False, stale=False, **kw)


def snap(runs):
    return Snapshot(seq=1, taken_at=1000.0, folder="/p", runs=tuple(runs))


def text(line):
    return "".join(t for t, _ in line)


def test_default_metrics_loss_like_first_then_most_reported():
    runs = [run("a", data={"metrics": {"acc": 0.5, "lr": 0.1, "zeta": 1}}),
            run("b", data={"metrics": {"acc": 0.6, "val_loss": 2.0, "lr": 0.1}}),
            run("c", data={"metrics": {"train/loss": 1.0, "acc": 0.7}})]
    assert M.default_metrics(runs) == ["train/loss", "val_loss", "acc"]
    assert M.default_metrics([run("x")]) == []


def test_trend_against_the_recent_window():
    def r(latest, hist):
        return run("r", data={"metrics": {"loss": latest}, "history": {"loss": hist}})
    assert M.trend(r(0.5, [1.0, 1.0, 1.0, 1.0, 0.5]), "loss") == "down"
    assert M.trend(r(2.0, [1.0, 1.0, 1.0, 2.0]), "loss") == "up"
    assert M.trend(r(1.001, [1.0, 1.0, 1.0, 1.001]), "loss") == "flat"
    assert M.trend(r(0.5, [1.0, 0.5]), "loss") is None  # too few points
    assert M.trend(r("NaN", [1.0, 1.0, 1.0, None]), "loss") is None
    assert M.metric_text(r(0.5, [1.0, 1.0, 1.0, 1.0, 0.5]), "loss") == "0.5\u2193"
    assert M.metric_text(r(0.5, [1.0, 1.0, 1.0, 1.0, 0.5]), "loss", ascii=True) == "0.5v"


def test_metric_columns_after_rate_with_trend_and_nan_highlighted():
    runs = [run("good", data={"rate": 2.0, "metrics": {"loss": 0.25}, "history": {"loss": [1.0, 0.9, 0.8, 0.25]}}),
            run("bad", data={"rate": 1.0, "metrics": {"loss": "NaN"}})]
    s = snap(runs)
    st = ViewState(col_offset=4)  # Rate is the 5th scrollable column
    keys = [c.key for c in columns_for(s, st)]
    assert keys[keys.index("rate") + 1] == "m:loss"
    tf = render_table(s, st, 40, 5, select=False)
    assert text(tf.lines[0]).split()[:5] == ["Run", "Name", "<", "Rate", "loss"]
    assert text(tf.lines[1]).split()[:3] == ["good", "2.00/s", "0.25\u2193"]
    nan_row = tf.lines[2]
    assert ("       NaN", R.ERROR) in nan_row or any(t.strip() == "NaN" and r == R.ERROR for t, r in nan_row)


def test_sort_numbers_as_numbers_durations_as_durations_unknown_last():
    runs = [run("a", data={"rate": 9.0, "times": {"run": {"elapsed": 59}}}),
            run("b", data={"rate": 10.5, "times": {"run": {"elapsed": 3600}}}),
            run("c", data={"times": {"run": {"elapsed": 600}}}),  # no rate
            run("d", data={"rate": 100.0}),  # no elapsed
            run("e", status="FINISHED", data={"rate": 1000.0})]  # an ended run has no live rate
    cols = columns_for(snap(runs))
    names = lambda rs: [r.key for r in rs]  # noqa: E731
    assert names(sort_runs(runs, "rate", False, cols)) == ["d", "b", "a", "c", "e"]
    assert names(sort_runs(runs, "rate", True, cols)) == ["a", "b", "d", "c", "e"]
    assert names(sort_runs(runs, "run_elapsed", False, cols)) == ["b", "c", "a", "d", "e"]
    assert names(sort_runs(runs, "name", False, cols)) == ["a", "b", "c", "d", "e"]
    assert names(sort_runs(runs, "name", True, cols)) == ["e", "d", "c", "b", "a"]
    assert names(sort_runs(runs, "status", False, cols)) == ["e", "a", "b", "c", "d"]


def test_sort_by_metric_and_by_resources():
    runs = [run("a", data={"metrics": {"loss": 0.5}}, resources=RunResources(rss_bytes=10)),
            run("b", data={"metrics": {"loss": "NaN"}}, resources=RunResources(rss_bytes=3 << 30)),
            run("c", data={"metrics": {"loss": 2.0}}, resources=RunResources(rss_bytes=5 << 20))]
    cols = columns_for(snap(runs))
    assert [r.key for r in sort_runs(runs, "m:loss", False, cols)] == ["c", "a", "b"]
    assert [r.key for r in sort_runs(runs, "ram", False, cols)] == ["b", "c", "a"]


def test_sort_on_any_column_survives_ints_beyond_the_float_range():
    big = 10 ** 400
    runs = [run("big", data={"epoch": big, "total_epochs": big, "batch": big, "total_batches": big, "rate": big,
                             "metrics": {"loss": big}, "times": {"run": {"elapsed": big, "remaining": big}}}),
            run("ok", data={"epoch": 1, "total_epochs": 2, "batch": 1, "total_batches": 2, "rate": 1.0,
                            "metrics": {"loss": 0.5}, "times": {"run": {"elapsed": 1, "remaining": 1}}})]
    cols = columns_for(snap(runs))
    for key in ["name"] + [c.key for c in cols]:
        assert sorted(r.key for r in sort_runs(runs, key, False, cols)) == ["big", "ok"], key
    assert [r.key for r in sort_runs(runs, "rate", False, cols)] == ["ok", "big"]  # beyond range: unknown, last


def test_sorted_table_marks_the_column_and_keeps_the_selection():
    runs = [run("slow", data={"rate": 1.0}), run("fast", data={"rate": 50.0}), run("mid", data={"rate": 5.0})]
    st = ViewState(sort_key="rate", selected=("run", "slow"), col_offset=4)
    rows = visible_rows(snap(runs), st)
    assert [r.run.key for r in rows] == ["fast", "mid", "slow"]
    tf = render_table(snap(runs), st, 40, 5)
    assert "Rate\u25bc" in text(tf.lines[0])
    assert tf.selected == 2 and text(tf.lines[3]).startswith("slow")
    tf = render_table(snap(runs), st.with_(sort_reverse=True, ascii=True), 40, 5)
    assert "Rate^" in text(tf.lines[0])
    assert [r.run.key for r in tf.rows] == ["slow", "mid", "fast"] and tf.selected == 0
