"""Benchmarks of the training view: chart rendering and opening a long run.

(a) Rendering the run detail screen with 4 metric charts of 100,000 points
    each at 200x50 (braille), median of ``--repeats`` renders. The series carry
    their block index (``ttop.view.chart.blocks_of``, built once per series, as
    a screen does when data arrives); the same render without it is printed
    too. Peer, same run: the main screen with 100 runs at 200x50. Target:
    <= 20 ms median.

(b) Opening the detail screen of a run whose history file holds 1,000,000
    steps of 5 metrics (written by the real writer, ``MetricLog``, 1,000
    updates per tick): a new ``HistoryReader`` reads the file and the first
    screen is rendered. Peer, same run: parsing the run's progress file.
    Target: first screen <= 200 ms. Printed against (a)'s peer too.

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

from ttop.collect.history import HistoryReader  # noqa: E402
from ttop.collect.snapshot import RunResources, RunSnapshot, Snapshot  # noqa: E402
from ttop.monitor.history import MetricLog  # noqa: E402
from ttop.view.chart import Series, blocks_of  # noqa: E402
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


def median_ms(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args(argv)
    failed = False

    # (a) ---------------------------------------------------------------------
    n = 100_000
    names = ("loss", "acc", "lr", "grad_norm")
    xs = list(range(n))
    metrics = {}
    for k, name in enumerate(names):
        ys = [math.exp(-i / (20000.0 * (k + 1))) + 0.05 * math.sin(i * 0.37) for i in range(n)]
        ys[n // 2 + k] = float("nan")
        metrics[name] = Series(name, ys, x=xs, blocks=blocks_of(ys))
    plain = {name: Series(name, s.y, x=xs) for name, s in metrics.items()}
    r = run("big")
    with_blocks = DetailModel(runs=[r], metrics={"big": metrics})
    without = DetailModel(runs=[r], metrics={"big": plain})
    snap = Snapshot(seq=1, taken_at=1.0, folder="/p", runs=tuple(run("run-%03d" % i) for i in range(100)))
    st = DetailState()
    detail = median_ms(lambda: render_detail(with_blocks, st, 200, 50), args.repeats)
    detail_plain = median_ms(lambda: render_detail(without, st, 200, 50), args.repeats)
    main_ms = median_ms(lambda: render_main(snap, ViewState(), 200, 50), args.repeats)
    ok = detail <= 20.0
    failed |= not ok
    print("ttop bench_chart: medians of %d renders at 200x50" % args.repeats)
    print("  detail screen, 4 charts x 100,000 points   %7.2f ms   %.2fx the main screen   target <= 20 ms  %s"
          % (detail, detail / main_ms, "PASS" if ok else "FAIL"))
    print("    the same without block index            %7.2f ms   %.2fx the main screen" % (detail_plain, detail_plain / main_ms))
    print("  peer: main screen, 100 runs               %7.2f ms" % main_ms)

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

        def open_first_screen():
            cols = HistoryReader(folder, log.name).poll()
            ser = {k: Series(k, c.y, x=c.x, t=c.t, lo=c.lo, hi=c.hi, flagged=c.flagged) for k, c in cols.items()}
            render_detail(DetailModel(runs=[rl], metrics={"long": ser}), DetailState(), 200, 50)

        def parse_progress():
            with open(prog, "rb") as f:
                json.loads(f.read())

        first = median_ms(open_first_screen, args.repeats)
        peer = median_ms(parse_progress, args.repeats)
    ok = first <= 200.0
    failed |= not ok
    print("  open a 1M-step history (5 metrics, file %d bytes, written in %.1f s by the writer)" % (size, write_s))
    print("    first screen (read + render)            %7.2f ms   %.1fx the main screen, %.0fx parsing its progress file"
          "   target <= 200 ms  %s" % (first, first / main_ms, first / peer, "PASS" if ok else "FAIL"))
    print("    peer: parse the progress file           %7.3f ms" % peer)
    print("overall: %s" % ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
