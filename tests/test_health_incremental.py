"""A live remote run's verdict, worked out cycle by cycle from what changed
(the running minima, the verdict kept while only the time moves, the file's
history checked only where it is new, the check of a file of a known shape),
equals the verdict of a full pass over the run's samples, and its data the
plain parse of its file, whatever the writer does next: appends, rewrites or
truncates its history, writes NaN, starts a new run under the same name,
sends its heartbeats out of order, stalls or goes silent."""
from __future__ import annotations

import json
import math
import os
import time

import pytest

from ttop import progress as P
from ttop.collect.collector import Collector
from ttop.collect.health import HealthConfig, assess

CONFIG = HealthConfig(diverge_warmup=3, stall_seconds=6.0, stall_batches=1.0)


def _doc(tick, *, loss, history, batch=None, updated=None, started=1.0, pid=7):
    return {"format": "ttop.progress/1", "run_name": "r", "status": "RUNNING", "host": "elsewhere",
            "updated_at": 1.7e9 + tick if updated is None else updated, "started_at": started, "pid": pid,
            "heartbeat_interval": 1.0, "batch": tick if batch is None else batch, "rate": 2.0,
            "metrics": {"loss": loss, "acc": 0.5}, "history": history}


def _steps():
    """(doc or None for no write this cycle, the rule expected to fire or None)."""
    hist = [1.0 / (t + 1) for t in range(30)]
    for tick in range(30, 36):  # steady: a sliding window of 20 points
        hist.append(1.0 / (tick + 1))
        yield _doc(tick, loss=1.0 / (tick + 1), history={"loss": hist[-20:], "acc": [0.5] * 3}), None
    # above 3x the lowest loss so far (1/36), not above 3x an older low (1/33): only right minima see it
    yield _doc(36, loss=3.2 / 36, history={"loss": hist[-19:] + [5.0], "acc": [0.5] * 3}), "diverging"
    yield _doc(37, loss=math.nan, history={"loss": hist[-18:] + [5.0, None], "acc": [0.5] * 3}), "nan"
    yield _doc(38, loss=0.02, history={"loss": hist[-17:] + [5.0, None, 0.02], "acc": [0.5] * 3}), None
    # a number of the file's that must be finite is not (dropped, as by the whole check)
    yield dict(_doc(38, loss=0.02, history={"loss": hist[-17:] + [5.0, None, 0.02], "acc": [0.5] * 3}),
               rate=math.inf, updated_at=1.7e9 + 38.5), None
    # the history rewritten: truncated, then other values in place of old ones
    yield _doc(39, loss=0.02, history={"loss": [0.02], "acc": [0.5] * 3}), None
    yield _doc(40, loss=0.02, history={"loss": [9.0, 0.02, 0.02], "acc": [0.5, 0.5, 0.6]}), None
    yield _doc(41, loss=0.02, history={"acc": [0.5], "loss": [9.0, 0.02, 0.02, 0.02]}), None  # keys swapped
    # a new point that is no JSON (the file unusable: its last good contents stay, marked), then a good one
    yield _doc(41, loss=0.02, history={"acc": [0.5], "loss": [9.0, 0.02, 0.02, 0.02, 0.02]}), None
    bad = json.dumps(_doc(41, loss=0.02, history={"acc": [0.5], "loss": [9.0, 0.02, 0.02, 0.02, 0.02]}))
    yield bad.replace("0.02]}", "0.02, 01]}"), None
    yield _doc(41, loss=0.02, history={"acc": [0.5], "loss": [9.0, 0.02, 0.02, 0.02, 0.02, 0.03]}), None
    # stalled: the heartbeat fresh, the batch unmoved
    for k in range(42, 48):
        yield _doc(k, loss=0.02, batch=41, history={"loss": [0.02] * 4, "acc": [0.5]}), (
            "stalled" if k >= 45 else None)
    # heartbeats out of order: an older updated_at after a newer one
    yield _doc(48, loss=0.02, updated=1.7e9 + 20, history={"loss": [0.02] * 5, "acc": [0.5]}), None
    yield _doc(49, loss=0.02, updated=1.7e9 + 10, history={"loss": [0.02] * 6, "acc": [0.5]}), None
    # a new run under the same name: its counters and history start again
    yield _doc(0, loss=3.0, started=2.0, pid=8, updated=1.7e9 + 50, history={"loss": [3.0], "acc": []}), None
    yield _doc(1, loss=2.9, started=2.0, pid=8, updated=1.7e9 + 51, history={"loss": [3.0, 2.9], "acc": []}), None
    # silent: no write while the clock moves on (the verdict kept, then the heartbeat lost)
    for _ in range(8):
        yield None, None


def test_each_cycles_verdict_and_data_equal_a_full_recompute(tmp_path):
    path = os.path.join(str(tmp_path), "r.json")
    now = [time.time()]
    c = Collector(str(tmp_path), interval=2.0, gpu=False, tpu=False, clock=lambda: now[0], health=CONFIG)
    fired = set()
    try:
        last = None
        for doc, rule in _steps():
            if doc is not None:
                _write(path, doc)
                last = doc if isinstance(doc, dict) else last
                time.sleep(0.06)  # past the scanner's racy-mtime window
            now[0] += 2.0
            run = c.collect().run("r")
            full = assess(c.recent.samples(run.key), CONFIG)  # a pass over every sample: nothing kept
            assert (run.health, run.health_reason) == (full.level, full.reason or None), doc
            rules = {f.rule for f in full.findings}
            if rule is not None:
                assert rule in rules, (rule, full)
            fired |= rules
            if isinstance(doc, str):  # no JSON: the whole parse refuses it too
                with open(path, "rb") as f, pytest.raises(P.ProgressError):
                    P.parse_progress(f.read())
                assert run.file_error and run.stale
            P._SHAPES.clear()  # the whole check, not the one of a known shape
            plain = P.parse_progress(json.dumps(last).encode())[0]
            got = dict(run.data.items())
            assert _text(dict(got.pop("history"))) == _text(plain.pop("history")) == _text(last["history"])
            assert _text(got) == _text(plain)
            for key, series in last["history"].items():  # the points the table's arrows take
                tail = run.data["history"].tail(key, 3) if hasattr(run.data["history"], "tail") else None
                assert tail is None or _text(tail) == _text(series[-3:])
    finally:
        c.stop()
    # every rule the series is meant to set off did fire on the way
    assert {"diverging", "nan", "stalled", "heartbeat"} <= fired


def _write(path, doc):
    """As a writer other than TrainingMonitor may: NaN and Infinity as JSON's
    extension spells them (TrainingMonitor writes them as strings)."""
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(doc))
    os.replace(path + ".tmp", path)


def _text(value):
    """JSON text, keys sorted: equal for equal values, NaN included."""
    return json.dumps(value, sort_keys=True)
