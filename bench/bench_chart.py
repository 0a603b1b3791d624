"""Benchmarks of the training view: chart rendering and opening a long run.

(a) Rendering the run detail screen with 4 metric charts of 100,000 points
    each at 200x50 (braille), median of ``--repeats`` renders:

    * steady: the same series again (the renderer keeps a block index of each
      long series, built at its first render);
    * live: one point appended to every series before each render (the index
      is extended, not rebuilt);
    * first render: new series each time (the index built in the render).

    Peers, same run: the main screen with 100 runs at 200x50, and plotext
    (when installed: ``pip install plotext``) drawing the same 4 series into
    a 200x50 figure (one draw). Target: steady and live <= 20 ms median.

(b) Opening the detail screen of a run whose history file holds 1,000,000
    steps of 5 metrics (written by the real writer, ``MetricLog``, 1,000
    updates per tick): a new ``HistoryReader`` reads the file and the first
    screen is rendered. Peer, same run: ``json.loads`` of every line of the
    same file (parsing alone, nothing built or drawn). Target: first screen
    <= 200 ms.

    python bench/bench_chart.py [--repeats 21]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ttop.collect import fastjson  # noqa: E402
from ttop.collect.history import HistoryReader  # noqa: E402
from ttop.collect.snapshot import RunResources, RunSnapshot, Snapshot  # noqa: E402
from ttop.monitor.history import MetricLog  # noqa: E402
from ttop.view.chart import Series  # noqa: E402
from ttop.view.detail import DetailModel, DetailState, render_detail  # noqa: E402
from ttop.view.screen import render_main  # noqa: E402
from ttop.view.state import ViewState  # noqa: E402


def run(key):
    d = {"format": "ttop.progress/1", "run_name": key, "status": "RUNNING", "updated_at": 1.0, "phase": "train",
         "epoch": 2, "total_epochs": 10, "train_batch": 120, "train_total_batches": 500, "rate": 12.3,
         "metrics": {"loss": 0.5, "acc": 0.9}, "history": {"loss": [1.0, 0.9, 0.8, 0.5]}}
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=d, run_name=key, status="RUNNING",
                       reported_status="RUNNING", host="vm", pid=1000,
                       resources=RunResources(cpu_percent=50.0, rss_bytes=1 << 30, source="local"))


def median_ms(fn, repeats, setup=None):
    out = []
    for _ in range(repeats):
        arg = setup() if setup is not None else None
        t0 = time.perf_counter()
        fn() if setup is None else fn(arg)
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e3


def plotext_ms(series, repeats):
    """plotext drawing the same series (2x2 subplots, braille markers) in a
    200x50 figure, or None with the reason. plotext 6 (``figure.signal``) or
    5 (``plt.plot``)."""
    try:
        import plotext as plt
    except Exception as e:
        return None, "%s: pip install plotext" % e.__class__.__name__
    fig = getattr(plt, "figure", None)

    def draw6():
        fig.clear()
        fig.plot_size(200, 50)
        fig.subplots(2, 2)
        for k, s in enumerate(series):
            sp = fig.subplot(k // 2 + 1, k % 2 + 1)
            sp.signal(s.x, s.y, marker="braille")
            sp.title(s.name)
        fig.build()

    def draw5():
        plt.clf()
        plt.plotsize(200, 50)
        plt.subplots(2, 2)
        for k, s in enumerate(series):
            plt.subplot(k // 2 + 1, k % 2 + 1)
            plt.plot(s.x, s.y, marker="braille")
            plt.title(s.name)
        plt.build()

    draw = draw6 if hasattr(fig, "signal") else draw5
    try:
        return median_ms(draw, 1), "plotext %s (one draw: it takes seconds)" % getattr(plt, "__version__", "")
    except Exception as e:
        return None, "%s: %s" % (e.__class__.__name__, e)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args(argv)
    failed = False

    # (a) ---------------------------------------------------------------------
    n = 100_000
    names = ("loss", "acc", "lr", "grad_norm")
    xs = list(range(n))
    raw = {}
    for k, name in enumerate(names):
        ys = [math.exp(-i / (20000.0 * (k + 1))) + 0.05 * math.sin(i * 0.37) for i in range(n)]
        ys[n // 2 + k] = float("nan")
        raw[name] = ys
    r = run("big")
    snap = Snapshot(seq=1, taken_at=1.0, folder="/p", runs=tuple(run("run-%03d" % i) for i in range(100)))
    st = DetailState()

    def fresh():  # new lists: nothing of them is known to the renderer
        return DetailModel(runs=[r], metrics={"big": {k: Series(k, list(v), x=list(xs)) for k, v in raw.items()}})

    steady_model = fresh()
    live_lists = {k: (list(xs), list(v)) for k, v in raw.items()}

    def grow():
        for lx, ly in live_lists.values():
            lx.append(lx[-1] + 1)
            ly.append(ly[-1] * 0.999)
        return DetailModel(runs=[r], metrics={"big": {k: Series(k, ly, x=lx) for k, (lx, ly) in live_lists.items()}})

    render_detail(steady_model, st, 200, 50)
    render_detail(grow(), st, 200, 50)
    rounds = {"steady": [], "live": [], "first": [], "main": []}
    for _ in range(args.repeats):  # interleaved, so that load hits them alike
        rounds["steady"].append(median_ms(lambda: render_detail(steady_model, st, 200, 50), 1))
        rounds["live"].append(median_ms(lambda m: render_detail(m, st, 200, 50), 1, grow))
        rounds["first"].append(median_ms(lambda m: render_detail(m, st, 200, 50), 1, fresh))
        rounds["main"].append(median_ms(lambda: render_main(snap, ViewState(), 200, 50), 1))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    main_ms = med["main"]
    pl_ms, pl_what = plotext_ms([Series(k, v, x=xs) for k, v in raw.items()], args.repeats)
    print("ttop bench_chart: medians of %d renders at 200x50 (interleaved)" % args.repeats)
    for key, label in (("steady", "steady (same series)"), ("live", "live (1 point more per series)")):
        ok = med[key] <= 20.0
        failed |= not ok
        print("  detail screen, 4 charts x 100,000 points, %-30s %7.2f ms   %5.2fx the main screen%s"
              "   target <= 20 ms  %s" % (label, med[key], med[key] / main_ms,
                                         ("   1/%.0f of plotext" % (pl_ms / med[key])) if pl_ms else "",
                                         "PASS" if ok else "FAIL"))
    print("  detail screen, 4 charts x 100,000 points, %-30s %7.2f ms   %5.2fx the main screen"
          % ("first render (index built)", med["first"], med["first"] / main_ms))
    print("  peer: main screen, 100 runs                                          %7.2f ms" % main_ms)
    if pl_ms is not None:
        print("  peer: %-62s %7.2f ms" % (pl_what + ", same 4 series, 200x50", pl_ms))
    else:
        print("  peer: plotext skipped (%s)" % pl_what)

    # (b) ---------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as folder:
        log = MetricLog(folder, "long", lambda m: None)
        step = 0
        t0 = time.perf_counter()
        for tick in range(1000):
            for _ in range(1000):
                step += 1
                loss = 1.0 / (1 + step * 1e-5)
                log.queue.append((step, {"loss": loss, "acc": 1 - loss, "lr": 0.1, "grad_norm": loss * 3, "tput": 5.0}))
            log.drain({})
            log.flush(1000.0 + tick)
        write_s = time.perf_counter() - t0
        size = os.path.getsize(log.path)
        prog = os.path.join(folder, "long.json")
        data = dict(run("long").data, history_file=log.name)
        with open(prog, "w") as f:
            json.dump(data, f)
        rl = RunSnapshot(key="long", path=prog, data=data, run_name="long", status="RUNNING",
                         reported_status="RUNNING", host="vm", pid=1000)

        fastjson.enable()  # as in the monitor, whose collector turns the fast parse on at its first full cycle

        def open_first_screen():
            cols = HistoryReader(folder, log.name).poll()
            ser = {k: Series(k, c.y, x=c.x, t=c.t, lo=c.lo, hi=c.hi, flagged=c.flagged) for k, c in cols.items()}
            render_detail(DetailModel(runs=[rl], metrics={"long": ser}), DetailState(), 200, 50)

        def parse_lines():
            with open(log.path, "rb") as f:
                for line in f.read().split(b"\n"):
                    if line:
                        json.loads(line)

        firsts, peers = [], []
        for _ in range(args.repeats):
            firsts.append(median_ms(open_first_screen, 1))
            peers.append(median_ms(parse_lines, 1))
        first, peer = statistics.median(firsts), statistics.median(peers)
    ok = first <= 200.0
    failed |= not ok
    print("  open a 1M-step history (5 metrics, file %d bytes, written in %.1f s by the writer)" % (size, write_s))
    print("    first screen (read + render)            %7.2f ms   %.2fx json.loads of its lines   target <= 200 ms  %s"
          % (first, first / peer, "PASS" if ok else "FAIL"))
    print("    peer: json.loads of every line          %7.2f ms" % peer)
    print("overall: %s" % ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
