"""What ownership checks and PSS cost a collector cycle, against a peer without
them measured in the same run.

Setup as ``bench_collect.py``: 1,000 progress files (990 finished or remote,
10 live local runs, each a real tree of 1 parent + 4 children), 10 files
rewritten before every measured cycle.

* ttop: ``Collector.collect()`` as shipped: each live run's file owner
  against its processes' real uids (``/proc/<pid>/status``, cached 5 s),
  claims resolved, PSS read for the multi-process trees on its budget.
* peer: the same code in the same process with those two switched off (no
  owner, so no uid reads or checks; no PSS, so the RSS sum).

Cycles alternate between the two. Prints both medians, the ratio and
PASS/FAIL against "ratio <= 1.2", plus how many smaps_rollup reads a cycle
made.

    python bench/bench_trust.py [--cycles 100]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psutil  # noqa: E402
from bench_collect import CHILDREN, N_FILES, N_LIVE, WRITER, run_doc  # noqa: E402

from ttop.collect import Collector  # noqa: E402
from ttop.progress import write_json_atomic  # noqa: E402


def peer(folder):
    """A collector with ownership checks and PSS switched off."""
    c = Collector(folder, interval=2.0)
    c._table.pss.get = lambda key, pid: None  # no PSS: the RSS sum
    static = c._static

    def no_owner(*a, **kw):
        st = static(*a, **kw)
        if st is not None:
            st.owner_uid = None  # no owner: no uid reads, no claim checks
        return st

    c._static = no_owner
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    args = ap.parse_args()
    me = socket.gethostname()
    folder = tempfile.mkdtemp(prefix="ttop-bench-")
    procs = []
    try:
        for i in range(N_FILES - N_LIVE):
            status = "FINISHED" if i % 10 else "RUNNING"
            host = me if status == "FINISHED" else "node-%d" % (i % 7)
            write_json_atomic(os.path.join(folder, "run%04d.json" % i), run_doc(i, host, status))
        live = []
        for k in range(N_LIVE):
            name = "live%02d" % k
            p = subprocess.Popen([sys.executable, WRITER, "--folder", folder, "--name", name,
                                  "--children", str(CHILDREN), "--interval", "3600"],
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            procs.append(p)
            live.append((name, p))
        deadline = time.monotonic() + 120
        ready = {}
        while len(ready) < N_LIVE:
            if time.monotonic() > deadline:
                raise SystemExit("live runs did not start")
            for name, p in live:
                try:
                    with open(os.path.join(folder, name + ".json")) as f:
                        d = json.load(f)
                    if len(psutil.Process(p.pid).children()) == CHILDREN:
                        ready[name] = d
                except (OSError, ValueError, psutil.Error):
                    pass
            time.sleep(0.1)

        def touch(batch):
            for name, d in ready.items():
                write_json_atomic(os.path.join(folder, name + ".json"), dict(d, updated_at=time.time(), batch=batch))

        c = Collector(folder, interval=2.0)
        b = peer(folder)
        for x in (c, b, c, b):
            x.collect()
        t_c, t_b = [], []
        reads0 = c._table.pss.total_reads
        for cycle in range(args.cycles):
            for x, out in ((c, t_c), (b, t_b)) if cycle % 2 else ((b, t_b), (c, t_c)):
                touch(cycle)
                t0 = time.perf_counter()
                snap = x.collect()
                out.append(time.perf_counter() - t0)
        lives = [r for r in snap.runs if r.key.startswith("live")]
        assert all(r.alive and r.resources.num_procs == 1 + CHILDREN for r in lives)
        full = c.collect()
        assert all(r.owner_uid == os.getuid() and r.ownership_note is None
                   for r in full.runs if r.key.startswith("live"))
        m_c, m_b = statistics.median(t_c) * 1000, statistics.median(t_b) * 1000
        print("setup: %d progress files, %d live runs x (1 + %d) processes, %d CPUs"
              % (N_FILES, N_LIVE, CHILDREN, psutil.cpu_count()))
        print("cycle with ownership + PSS: median %7.2f ms (min %.2f)" % (m_c, min(t_c) * 1000))
        print("peer without them:          median %7.2f ms (min %.2f)" % (m_b, min(t_b) * 1000))
        print("smaps_rollup reads per cycle: %.1f" % ((c._table.pss.total_reads - reads0) / args.cycles))
        ratio = m_c / m_b
        print("ratio (medians): %.3f, (minima): %.3f" % (ratio, min(t_c) / min(t_b)))
        print("%s  ratio <= 1.2" % ("PASS" if ratio <= 1.2 else "FAIL"))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass
            p.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
