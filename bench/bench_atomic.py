"""Benchmark the atomic writer every ttop file goes through
(:func:`ttop.progress.write_json_atomic`: temp file, write, rename) against a
plain, non-atomic rewrite of the same file (``open(path, "w")``), measured in
the same run, interleaved.

The document is a progress file of about 40 kB (150 metrics and a 30 kB
variable), as the atomic-writes test writes under SIGKILL. Prints the median
per write of each and the ratio; PASS if atomic <= 3x plain (the price of a
reader never seeing half a file).

    python bench/bench_atomic.py [--writes 2000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ttop.progress import dumps, write_json_atomic  # noqa: E402

DOC = {
    "format": "ttop.progress/1",
    "run_name": "atomic",
    "status": "RUNNING",
    "updated_at": 1795670000.5,
    "metrics": {"metric_%03d" % k: k * 0.001 for k in range(150)},
    "variables": {"lr": 0.1, "note": "y" * 30000},
}


def plain(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(obj))


def per_write(fn, path: str, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        DOC["updated_at"] = 1795670000.5 + i
        fn(path, DOC)
    return (time.perf_counter() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="ttop-bench-atomic-")
    try:
        path = os.path.join(folder, "atomic.json")
        res = {"atomic": [], "plain": []}
        for _ in range(a.rounds):
            res["atomic"].append(per_write(write_json_atomic, path, a.writes))
            res["plain"].append(per_write(plain, path, a.writes))
        with open(path, encoding="utf-8") as f:
            assert json.load(f)["run_name"] == "atomic"
        assert os.listdir(folder) == ["atomic.json"], "no temp file left"
        at, pl = statistics.median(res["atomic"]), statistics.median(res["plain"])
        ratio = at / pl if pl else float("inf")
        print("one %d kB progress file written %d times, median of %d rounds:" % (len(dumps(DOC)) // 1000, a.writes, a.rounds))
        print("  write_json_atomic: %.1f us per write" % (at * 1e6))
        print("  plain open/write:  %.1f us per write" % (pl * 1e6))
        print("  ratio %.2fx (target <= 3x): %s" % (ratio, "PASS" if ratio <= 3.0 else "FAIL"))
        return 0 if ratio <= 3.0 else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
