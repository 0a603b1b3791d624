"""The run detail / comparison screen renderer (pure) and the resource rings."""
from __future__ import annotations

import math

import pytest

from ttop.collect.rings import ResourceRings
from ttop.collect.snapshot import GpuDevice, ProcInfo, RunResources, RunSnapshot, Snapshot
from ttop.view import roles as R
from ttop.view.chart import Series
from ttop.view.detail import DetailModel, DetailState, chart_list, render_detail
from ttop.view.text import line_width


def run(key, **data):
    d = {"format": "ttop.progress/1", "run_name": key, "status": "RUNNING", "phase": "train", "epoch": 2,
         "total_epochs": 10, "train_batch": 120, "train_total_batches": 500, "rate": 12.3,
         "times": {"run": {"remaining": 725}}, "links": {"wandb": "https://wandb.ai/x"}}
    d.update(data)
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=d, run_name=key, status="RUNNING",
                       reported_status="RUNNING", host="vm", pid=1234, owner="alice")


def text(lines):
    return ["".join(t for t, _ in l) for l in lines]


def model(**kw):
    ys = [2 * math.exp(-i / 30) + 0.1 for i in range(100)]
    m = DetailModel(runs=[run("resnet")],
                    metrics={"resnet": {"acc": Series("acc", [1 - y / 3 for y in ys]), "loss": Series("loss", ys)}},
                    resources={"resnet": {"cpu": Series("cpu", [50.0, 60.0], t=[0.0, 2.0])}},
                    variables=[("lr", "0.01", "pending #2 (0.02)", R.NOTICE)],
                    output=[("stdout", "epoch 2 loss 0.3"), ("stderr", "warning: x")])
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def test_80x24_header_charts_variables_output_footer():
    f = render_detail(model(), DetailState(), 80, 24)
    t = text(f.lines)
    assert len(t) == 24 and all(line_width(l) == 80 for l in f.lines)
    assert t[0].startswith("resnet  RUNNING  train  epoch 2/10  batch 120/500  rate 12.3/s  ETA 12m05s")
    assert t[1].startswith("host vm  PID 1234  owner alice  wandb https://wandb.ai/x")
    assert t[2].startswith("loss  last 0.1738")  # loss-like metrics first
    assert "acc  last" in t[2]
    assert any(l.startswith("CPU %  last 60") for l in t)
    assert any(l.startswith("Variables") and "Output" in l for l in t)
    assert any("lr = 0.01  pending #2 (0.02)" in l for l in t)
    assert any("E warning: x" in l for l in t)
    assert t[-1].startswith("x by step  l lin  +/- zoom all")


def test_40x10_keeps_one_chart_and_the_footer():
    t = text(render_detail(model(), DetailState(), 40, 10).lines)
    assert len(t) == 10 and t[0].startswith("resnet  RUNNING")
    assert t[1].startswith("loss  last")
    assert t[-1].startswith("x by step")
    assert not any("Variables" in l for l in t)


def test_too_small_says_so():
    t = text(render_detail(model(), DetailState(), 39, 10).lines)
    assert t[0].startswith("ttop needs at least 40x10")


def test_zoom_and_log_reach_the_charts():
    t = text(render_detail(model(), DetailState(zoom=4, log=True, x_by="time"), 120, 24).lines)
    assert "(log)" in t[2]
    assert "\u2514" + "50" in "".join(t)  # the last 50 of 100 points
    assert t[-1].startswith("x by time  l log  +/- zoom last 50")


def test_compare_overlays_runs_with_a_legend_and_markers_without_colour():
    a = run("run-a")
    b = run("run-b")
    m = DetailModel(runs=[a, b], metrics={"run-a": {"loss": Series("loss", [3.0, 2.0, 1.0])},
                                          "run-b": {"loss": Series("loss", [1.0, 2.0, 3.0])}},
                    color=False)
    t = text(render_detail(m, DetailState(), 80, 24).lines)
    assert t[0].startswith("compare 2 runs")
    assert t[1].startswith("* run-a  + run-b")
    plot = "\n".join(t[3:8])
    assert "*" in plot and "+" in plot
    titles = [title for title, _ in chart_list(m)]
    assert titles == ["loss"]


def test_a_run_that_left_the_folder():
    t = text(render_detail(model(runs=[], missing=["resnet"]), DetailState(), 80, 24).lines)
    assert t[0].startswith("the run left the folder")


def test_resource_rings_keep_runs_present_and_are_bounded():
    rings = ResourceRings(size=3)
    proc = ProcInfo(pid=1, ppid=0, name="python", create_time=1.0, depth=0, gpu_indices=(0,))
    for seq in range(5):
        r = RunSnapshot(key="a", path="/p/a.json", data={}, run_name="a", status="RUNNING", reported_status="RUNNING",
                        resources=RunResources(cpu_percent=float(seq), rss_bytes=10, source="local"), processes=(proc,))
        snap = Snapshot(seq=seq, taken_at=100.0 + seq, folder="/p", runs=(r,),
                        gpus=(GpuDevice(index=0, name="g", utilization=40 + seq),))
        rings.feed(snap)
        rings.feed(snap)  # the same snapshot twice counts once
    s = rings.samples("a")
    assert [x.cpu_percent for x in s] == [2.0, 3.0, 4.0]
    assert [x.gpu_util for x in s] == [42.0, 43.0, 44.0]
    rings.feed(Snapshot(seq=9, taken_at=200.0, folder="/p", runs=()))
    assert rings.samples("a") == []


def test_odd_progress_data_never_breaks_the_header():
    r = run("odd", times={"run": 5}, links={"wandb": 3, "x": "y"}, epoch="two", rate="fast")
    t = text(render_detail(model(runs=[r]), DetailState(), 80, 24).lines)
    assert t[0].startswith("odd  RUNNING  train  epoch -/10  batch 120/500  rate -  ETA -")
    assert "x y" in t[1]


@pytest.mark.parametrize("health", [True, False])
def test_the_monitor_keeps_resource_samples_only_where_the_collector_keeps_none(spawn, progress_dir, health):
    """The detail screen charts the collector's recent samples; the monitor
    keeps a ring of its own only with health checks off (no samples there)."""
    import json
    import sys

    import psutil

    from ttop.collect import Collector
    from ttop.ui.app import App
    from ttop.ui.detail import DetailScreen

    p = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    doc = {"format": "ttop.progress/1", "run_name": "job", "status": "RUNNING", "updated_at": 1e9,
           "heartbeat_interval": 1e6, "pid": p.pid, "pid_create_time": psutil.Process(p.pid).create_time()}
    (progress_dir / "job.json").write_text(json.dumps(doc))
    c = Collector(str(progress_dir), gpu=False, tpu=False, health=None if health else False)
    app = App(c)
    try:
        for _ in range(3):
            c.collect()
            app._take_snapshot()
            app._feed_rings(app.snapshot)  # as the loop does after each paint
        if health:  # (the ring is not even made)
            assert app.rings is None and len(c.recent.samples("job")) == 3
        else:
            assert c.recent is None and len(app.rings.samples("job")) == 3
        charts = DetailScreen(["job"], color=False).model(app).resources["job"]
        assert [len(s.y) for s in charts.values()][:2] == [2, 3], charts  # CPU % from the second look, RAM
    finally:
        app.close()


def test_a_run_with_metrics_and_no_history_shows_them_in_its_detail(ttop_term, progress_dir):
    """A progress file written by hand or by another tool, with ``metrics``
    but no history: the table showed loss and acc, and the detail screen
    said "no metrics or resources reported yet"."""
    import json
    import time

    doc = {"format": "ttop.progress/1", "run_name": "plain", "status": "RUNNING", "host": "elsewhere",
           "updated_at": time.time(), "heartbeat_interval": 3600, "metrics": {"loss": 0.25, "acc": "NaN", "note": "warm"}}
    (progress_dir / "plain.json").write_text(json.dumps(doc))
    t = ttop_term(progress_dir, cols=100, rows=24)
    t.wait_for(lambda t: t.row_of("plain ") is not None, msg="the run never showed")
    t.press("ENTER")
    t.wait_for("loss  last 0.25", msg="no chart of the reported loss")
    assert "acc  last NaN" in t.text and "no metrics" not in t.text and "note" not in t.text


def test_the_error_a_run_ended_with_shows_in_the_footer_and_its_detail(ttop_term, progress_dir):
    """A script that raised in its ``with`` block ends FAILED with the error
    in its file ("RuntimeError: ..."): the curses monitor said FAILED and
    nowhere why (not in the table, the footer or the detail screen; only
    --json had it), unless the output was captured and happened to show
    the traceback."""
    import subprocess
    import sys

    from conftest import ROOT

    script = ("import sys; sys.path.insert(0, %r)\n"
              "from ttop import TrainingMonitor\n"
              "with TrainingMonitor(folder=%r, run_name='boom', gpu=False) as m:\n"
              "    m.start_batch()\n"
              "    raise RuntimeError('loss diverged at step 7')\n" % (str(ROOT), str(progress_dir)))
    p = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 1 and b"loss diverged" in p.stderr
    t = ttop_term(progress_dir, cols=100, rows=24)
    t.wait_for(lambda t: t.row_of("boom ") is not None, msg="the run never showed")
    t.wait_for("boom: FAILED: RuntimeError: loss diverged at step 7", msg="the footer does not say why it failed")
    t.press("ENTER")
    t.wait_for("error RuntimeError: loss diverged at step 7", msg="the detail screen does not say why it failed")
