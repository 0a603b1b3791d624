"""The collector's per-file shortcuts give what the plain path gives.

Two collectors watch one folder on one clock, cycle for cycle, while random
writers rewrite its files: mostly only their numbers (the heartbeat, the
counters, the metrics, now and then a new resources sample), sometimes
more: an identity value (status, host, pid, its create time, the run's
name, its start, the heartbeat interval) changed, or the same value of
another class (1, 1.0, True), keys added or taken out, a value of the wrong
type, NaN, an int beyond the float range, a torn file, an end status and
back, a writer gone silent for a while. The first collector takes each
file's next version in place where only its numbers moved, skips the class
comparison for a version of the same known shape, checks a file of a known
shape by its shape, and makes snapshots and reported resources without
keyword calls, and a fresh remote run's snapshot from its template's
defaults. The second one does none of that: every version makes its
run's record again, every file is checked whole, every snapshot and sample
of resources goes through the records' constructors. Every run of every
snapshot, its recent samples and its verdict must be equal."""
from __future__ import annotations

import json
import math
import os
import random
import socket
import time

from ttop import progresscheck as PC
from ttop.collect import runs as R
from ttop.collect.collector import Collector
from ttop.collect.snapshot import RunResources

HOSTS = ("node-a", "node-b")


def _reference_resources(data):
    """The file's resources sample, as ttop made it through the constructor."""
    res = data.get("resources")
    if not isinstance(res, dict):
        return RunResources()
    cpu = R._num(res.get("cpu_percent"))
    return RunResources(
        cpu_percent=float(cpu) if cpu is not None and cpu >= 0 else None,
        rss_bytes=_ref_int(res.get("rss_bytes")), gpu_memory_bytes=_ref_int(res.get("gpu_memory_bytes")),
        tpu_memory_bytes=_ref_int(res.get("tpu_memory_bytes")), num_procs=_ref_int(res.get("num_procs")),
        num_threads=_ref_int(res.get("num_threads")), sampled_at=_ref_num(res.get("sampled_at")), source="reported",
        ram_measure=R._measure(res.get("ram_measure")) if res.get("rss_bytes") is not None else None)


def _ref_num(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return value if math.isfinite(value) else None
    except OverflowError:
        return None


def _ref_int(value):
    v = _ref_num(value)
    return int(v) if v is not None and v >= 0 else None


class _NoShapes(dict):
    """progresscheck._SHAPES while the plain collector runs: no shape is known."""

    def get(self, key, default=None):
        return default


class _Plain:
    """The plain path, for the duration of one cycle of the second collector."""

    def __enter__(self):
        self.saved = (R._Static.renew, PC._SHAPES, R._FAST_NEW, R.reported_resources)
        R._Static.renew = lambda *a, **k: False
        PC._SHAPES = _NoShapes()
        R._FAST_NEW = False
        R.reported_resources = _reference_resources

    def __exit__(self, *exc):
        R._Static.renew, PC._SHAPES, R._FAST_NEW, R.reported_resources = self.saved


def _doc(rng, i, tick):
    doc = {"format": "ttop.progress/1", "run_name": "run%d" % i, "status": "RUNNING", "host": rng.choice(HOSTS),
           "updated_at": 1.7e9 + tick, "pid": 1, "pid_create_time": 1.0, "started_at": 1.6e9,
           "heartbeat_interval": 1.0, "phase": "train", "epoch": 1, "batch": tick, "total_batches": 100,
           "rate": 2.5, "metrics": {"loss": 1.0 / (tick + 1), "acc": 0.5},
           "history": {"loss": [1.0 / (t + 1) for t in range(max(0, tick - 5), tick)]},
           "resources": {"cpu_percent": 50.0, "rss_bytes": 1 << 20, "num_procs": 2, "sampled_at": 1.7e9}}
    if i % 3 == 0:  # the per-phase counters too
        doc.update(train_batch=tick, val_batch=0)
    if i % 4 == 1:  # a heartbeat in whole seconds, written as an int
        doc["updated_at"] = int(doc["updated_at"])
    return doc


def _step(rng, doc, tick):
    """The file's next version: mostly only its numbers moved."""
    d = dict(doc)
    d["updated_at"] = 1.7e9 + tick + rng.choice((0.0, 0.0, 0.5))
    if doc["updated_at"].__class__ is int:
        d["updated_at"] = int(d["updated_at"])
    if "train_batch" in doc:
        d["train_batch"] = tick if rng.random() < 0.9 else doc["train_batch"]
        d["val_batch"] = rng.choice((doc["val_batch"], tick // 2))
    d["batch"] = tick if rng.random() < 0.9 else doc["batch"]
    d["metrics"] = {"loss": rng.choice((1.0 / (tick + 1), 0.001, 9.0)), "acc": 0.5}
    if rng.random() < 0.3:  # a new resources sample (a writer samples less often than it writes)
        d["resources"] = dict(doc.get("resources", {}), cpu_percent=float(rng.randint(0, 400)), sampled_at=1.7e9 + tick)
    r = rng.random()
    if r < 0.2:  # an identity value the same, of another class (1 == 1.0 == True)
        d[rng.choice(("pid", "pid", "pid_create_time", "heartbeat_interval", "started_at"))] = rng.choice((1, 1.0, True))
    elif r < 0.4:  # more than the numbers
        key, value = rng.choice((
            ("status", "FINISHED"), ("status", "RUNNING"), ("status", "FAILED"), ("host", rng.choice(HOSTS)),
            ("host", None), ("pid", 7), ("pid", 7.0), ("pid", True), ("pid", None), ("pid_create_time", 5),
            ("pid_create_time", 5.0), ("pid_create_time", True), ("run_name", "renamed"), ("started_at", 1.6e9 + 1),
            ("started_at", 1600000000), ("heartbeat_interval", 1), ("heartbeat_interval", 3.0),
            ("heartbeat_interval", True), ("epoch", "one"), ("epoch", 1.0), ("rate", None), ("rate", True),
            ("pid_namespace", 4026531836), ("metrics", {"loss": "NaN"}), ("phase", 3), ("extra", [1, 2]),
            ("rate", math.nan), ("rate", -math.inf), ("epoch", 10 ** 400), ("total_batches", -(10 ** 400)),
        ))
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
    elif r < 0.45:
        d.pop(rng.choice(("phase", "epoch", "rate", "history", "resources", "total_batches")), None)
    return d


def _write(path, doc, torn=False):
    text = json.dumps(doc)
    with open(path + ".tmp", "w") as f:
        f.write(text[: len(text) // 2] if torn else text)
    os.replace(path + ".tmp", path)


def _same(a, b):
    """Two snapshots' runs equal, field by field (data as JSON text, the others as their reprs)."""
    assert [r.key for r in a.runs] == [r.key for r in b.runs]
    assert [(s.name, s.reason) for s in a.skipped] == [(s.name, s.reason) for s in b.skipped]
    for x, y in zip(a.runs, b.runs):
        for name in type(x)._fields:
            u, v = getattr(x, name), getattr(y, name)
            if name == "data":
                u, v = json.dumps(dict(u.items()), sort_keys=True), json.dumps(dict(v.items()), sort_keys=True)
            else:  # (1 == 1.0 == True: their reprs differ)
                u, v = repr(u), repr(v)
            assert u == v, (x.key, name, u, v)


def test_the_shortcuts_give_what_the_plain_path_gives(tmp_path):
    assert socket.gethostname() not in HOSTS
    folder = str(tmp_path)
    now = [time.time()]
    fast = Collector(folder, interval=2.0, gpu=False, tpu=False, clock=lambda: now[0])
    plain = Collector(folder, interval=2.0, gpu=False, tpu=False, clock=lambda: now[0])
    stale = set()
    try:
        for seed in range(6):
            rng = random.Random(seed)
            docs = {i: _doc(rng, i, 0) for i in range(4)}
            for i, d in docs.items():
                _write(os.path.join(folder, "s%d-r%d.json" % (seed, i)), d)
            for tick in range(1, 21):
                for i in docs:
                    if i == 3 and 6 <= tick < 14:  # a writer gone silent (stale after 10 s), then back
                        continue
                    if rng.random() < 0.8:  # a writer may miss a cycle
                        docs[i] = _step(rng, docs[i], tick)
                        _write(os.path.join(folder, "s%d-r%d.json" % (seed, i)), docs[i], torn=rng.random() < 0.04)
                time.sleep(0.06)  # past the scanner's racy-mtime window
                now[0] += 2.0
                a = fast.collect()
                with _Plain():
                    b = plain.collect()
                _same(a, b)
                stale |= {r.key for r in a.runs if r.stale}
                for run in a.runs:
                    assert fast.recent.samples(run.key) == plain.recent.samples(run.key), run.key
    finally:
        fast.stop()
        plain.stop()
    assert len(stale) >= 6  # the silent writers' runs went stale on the way


def test_reported_resources_equal_the_constructor_s(tmp_path):
    rng = random.Random(5)
    values = (None, True, False, 0, 1, -1, 7.5, -2.0, 1 << 62, (1 << 62) + 1, 10 ** 400, -(10 ** 400), math.nan,
              math.inf, "3", [1], {"a": 1})
    keys = ("cpu_percent", "rss_bytes", "gpu_memory_bytes", "tpu_memory_bytes", "num_procs", "num_threads",
            "sampled_at", "ram_measure")
    for _ in range(3000):
        res = {k: rng.choice(values + ("pss", "rss", "pss+rss")) for k in keys if rng.random() < 0.7}
        data = {"resources": res} if rng.random() < 0.95 else {"resources": rng.choice(values)}
        got, want = R.reported_resources(data), _reference_resources(data)
        assert got == want and list(got.__dict__) == list(want.__dict__), data


def test_the_nan_rule_s_sum_finds_what_the_loop_over_metrics_finds():
    """assess sums a sample's metrics first (numbers only, all finite:
    nothing to find); the verdict is the one of a look at every metric."""
    from ttop.collect.health import NON_FINITE_TEXT, Sample, assess

    rng = random.Random(3)
    values = (0.5, 1, 0, True, None, "NaN", "Infinity", "-Infinity", "nan", "inf", "-inf", "x", math.nan, math.inf,
              -math.inf, 10 ** 400, -(10 ** 400), 1e308, [1], {"a": 1})
    for _ in range(5000):
        metrics = {k: rng.choice(values) for k in "abcd" if rng.random() < 0.7}
        bad = sorted(k for k, v in metrics.items() if (
            isinstance(v, float) and not math.isfinite(v) or isinstance(v, str) and v in NON_FINITE_TEXT))
        found = [f for f in assess([Sample(t=1.0, status="RUNNING", metrics=metrics)]).findings if f.rule == "nan"]
        assert [f.reason.split(" is ")[0] for f in found] == bad[:1], metrics
