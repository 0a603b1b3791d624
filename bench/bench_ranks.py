"""What reading rank files adds to a collector cycle, against the same
collector with the rank reader switched off, in the same run.

Setup: a folder of 1,000 RUNNING runs of other hosts (no process lookups, so
the cycle is cheap and the rank reader's share shows), none with rank files,
plus one local two-rank job (two real processes, a rank file for rank 1).

* ranks: ``Collector.collect()`` as shipped (runs without rank files probed
  for one every ``PROBE_SECONDS``).
* ranks, probe every cycle: the same with ``PROBE_SECONDS = 0`` (the worst
  case: a failed open per RUNNING run per cycle).
* peer: the same collector with the rank reader returning nothing.

Cycles are interleaved; prints the medians and the ratios to the peer, and
exits non-zero when the shipped reader costs more than 10 % of the peer's
cycle or the worst case more than 50 %.

    python bench/bench_ranks.py [--cycles 40]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import psutil  # noqa: E402

from ttop.collect import Collector  # noqa: E402
from ttop.collect import ranks as ranks_mod  # noqa: E402
from ttop.progress import write_json_atomic  # noqa: E402

N_RUNS = 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=40)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="ttop-bench-ranks-")
    procs = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]) for _ in range(2)]
    try:
        now = time.time()
        for i in range(N_RUNS):
            write_json_atomic(os.path.join(folder, "far-%04d.json" % i), {
                "format": "ttop.progress/1", "run_name": "far-%04d" % i, "status": "RUNNING", "updated_at": now,
                "host": "other-host", "pid": 1000 + i, "heartbeat_interval": 3600})
        ct = [psutil.Process(p.pid).create_time() for p in procs]
        write_json_atomic(os.path.join(folder, "job.json"), {
            "format": "ttop.progress/1", "run_name": "job", "status": "RUNNING", "updated_at": now,
            "pid": procs[0].pid, "pid_create_time": ct[0], "heartbeat_interval": 3600})
        write_json_atomic(os.path.join(folder, ".job.rank1.json"), {
            "format": "ttop.rank/1", "run_name": "job", "rank": 1, "world_size": 2, "pid": procs[1].pid,
            "pid_create_time": ct[1], "status": "RUNNING", "updated_at": now})
        shipped = Collector(folder, gpu=False, tpu=False, health=False)
        worst = Collector(folder, gpu=False, tpu=False, health=False)
        peer = Collector(folder, gpu=False, tpu=False, health=False)
        for c in (shipped, worst, peer):
            c.collect()
            c.collect()  # the full cycle (the first may only paint the files)
        assert peer._ranks is not None
        peer._ranks.cycle = lambda *a, **kw: None  # type: ignore[method-assign]
        assert len(shipped.collect().run("job").ranks) == 2
        times = {"ranks": [], "ranks, probe every cycle": [], "peer (no rank reader)": []}
        probe = ranks_mod.PROBE_SECONDS
        for _ in range(args.cycles):
            for name, c in (("ranks", shipped), ("ranks, probe every cycle", worst), ("peer (no rank reader)", peer)):
                ranks_mod.PROBE_SECONDS = 0.0 if c is worst else probe
                t0 = time.perf_counter()
                c.collect()
                times[name].append(time.perf_counter() - t0)
        ranks_mod.PROBE_SECONDS = probe
        base = statistics.median(times["peer (no rank reader)"])
        print("collector cycle, %d RUNNING runs of other hosts + one local 2-rank job, %d cycles each:" % (
            N_RUNS, args.cycles))
        ratios = {}
        for name, ts in times.items():
            med = statistics.median(ts)
            ratios[name] = med / base
            print("  %-26s median %7.2f ms  ratio to peer %.3f" % (name, med * 1000, med / base))
        ok = ratios["ranks"] <= 1.10 and ratios["ranks, probe every cycle"] <= 1.50
        print("PASS" if ok else "FAIL", "(goal: shipped <= 1.10x the peer, probe every cycle <= 1.50x)")
        return 0 if ok else 1
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
