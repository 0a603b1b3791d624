"""Benchmark a collector cycle over malformed progress files against the same
number of good ones, measured in the same run.

A folder of N malformed files (torn writes, wrong or missing required keys,
invalid UTF-8, JSON that is not an object, noise, nesting too deep for the
parser, non-finite literals; the kinds the fuzz test generates) and a folder
of N good files. Each cycle is a fresh :class:`ttop.collect.Collector` (no
stat cache), so every file is opened and parsed. Every malformed file must be
reported in ``Snapshot.skipped``.

Prints the median cycle of each folder and the ratio malformed/good; PASS if
the ratio is <= 2 (a bad file must not cost much more than a good one).

    python bench/bench_malformed.py [--files 10000] [--cycles 5]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ttop.collect import Collector  # noqa: E402

BASE = {
    "format": "ttop.progress/1",
    "run_name": "bench",
    "status": "RUNNING",
    "updated_at": 1795670000.5,
    "host": "elsewhere",  # remote: no process lookups, the scan is what is measured
    "pid": 1234,
    "epoch": 3,
    "metrics": {"loss": 0.25, "acc": "NaN"},
    "resources": {"rss_bytes": 10, "cpu_percent": 1.5},
}


def malformed(rng: random.Random) -> bytes:
    base = json.dumps(BASE).encode()
    kind = rng.randrange(8)
    if kind == 0:
        return base[: rng.randrange(len(base))]
    if kind == 1:
        d = dict(BASE)
        d[rng.choice(["format", "run_name", "status", "updated_at"])] = rng.choice([None, 3, "", "running", [1], {}])
        return json.dumps(d).encode()
    if kind == 2:
        d = dict(BASE)
        del d[rng.choice(["format", "run_name", "status", "updated_at"])]
        return json.dumps(d).encode()
    if kind == 3:
        pos = rng.randrange(len(base) + 1)
        return base[:pos] + bytes([rng.choice([0xC0, 0xC1, 0xF5, 0xF8, 0xFE, 0xFF])]) + base[pos:]
    if kind == 4:
        return json.dumps(rng.choice([[1, 2], "text", 3.5, None, True])).encode()
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 48)))
    if kind == 6:
        n = rng.randrange(2000, 20000)
        return b"[" * n + b"]" * n
    return base.replace(b"1795670000.5", rng.choice([b"NaN", b"Infinity", b"-Infinity"]))


def fill(folder: str, n: int, bad: bool) -> None:
    rng = random.Random(1234)
    good = json.dumps(BASE).encode()
    for i in range(n):
        with open(os.path.join(folder, "f%05d.json" % i), "wb") as f:
            f.write(malformed(rng) if bad else good)


def cycle(folder: str) -> tuple:
    t0 = time.perf_counter()
    snap = Collector(folder, interval=1.0, gpu=False, tpu=False).collect()
    return time.perf_counter() - t0, snap


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--cycles", type=int, default=5)
    a = ap.parse_args()
    scratch = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = tempfile.mkdtemp(prefix="ttop-bench-malformed-", dir=scratch)
    try:
        bad_dir, good_dir = os.path.join(root, "bad"), os.path.join(root, "good")
        os.mkdir(bad_dir)
        os.mkdir(good_dir)
        fill(bad_dir, a.files, True)
        fill(good_dir, a.files, False)
        times = {"malformed": [], "good": []}
        skipped = 0
        for _ in range(a.cycles):  # interleaved, so load from others hits both alike
            dt, snap = cycle(bad_dir)
            good_runs = {r.key for r in snap.runs}
            assert len(snap.skipped) + len(good_runs) == a.files, "every file is a run or skipped with a reason"
            assert all(s.reason.strip() for s in snap.skipped)
            skipped = len(snap.skipped)
            times["malformed"].append(dt)
            dt, snap = cycle(good_dir)
            assert len(snap.runs) == a.files
            times["good"].append(dt)
        bad, good = statistics.median(times["malformed"]), statistics.median(times["good"])
        ratio = bad / good if good else float("inf")
        ok = ratio <= 2.0
        print("collector cycle over %d files (fresh Collector, median of %d):" % (a.files, a.cycles))
        print("  malformed: %.0f ms (%d skipped with a reason, the rest good by chance)" % (bad * 1000, skipped))
        print("  good:      %.0f ms" % (good * 1000))
        print("  ratio malformed/good %.2fx (target <= 2x): %s" % (ratio, "PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
