"""A run's resources summed over its processes (``totals``), against the
sums written out one figure at a time, for random process lists."""
from __future__ import annotations

import random

from ttop.collect.snapshot import ProcInfo
from ttop.collect.totals import totals


def _sum(values):
    vals = [v for v in values if v is not None]
    return sum(vals) if vals else None


def _reference(procs, sampled_at, pss, clock_now):
    rss_total = _sum(p.rss_bytes for p in procs)
    measure, ram_at = "rss", sampled_at
    if pss:
        ram, have, oldest = 0, 0, None
        for p in procs:
            got = pss.get(p.pid)
            if got is not None:
                ram, have = ram + got[0], have + 1
                oldest = got[1] if oldest is None else min(oldest, got[1])
            elif p.rss_bytes is not None:
                ram += p.rss_bytes
        rss_total = ram
        measure = "pss" if have == sum(1 for p in procs if p.rss_bytes is not None) else "pss+rss"
        if oldest is not None and clock_now is not None:
            ram_at = sampled_at - max(0.0, clock_now - oldest)
    return dict(cpu_percent=_sum(p.cpu_percent for p in procs), rss_bytes=rss_total,
                gpu_memory_bytes=_sum(p.gpu_memory_bytes for p in procs),
                tpu_memory_bytes=_sum(p.tpu_memory_bytes for p in procs), num_procs=len(procs),
                num_threads=_sum(p.num_threads for p in procs), sampled_at=sampled_at, source="local",
                ram_measure=measure if rss_total is not None else None,
                ram_sampled_at=ram_at if rss_total is not None else None)


def test_totals_are_the_sums_of_each_figure():
    rng = random.Random(5)
    for _ in range(2000):
        procs = [ProcInfo(pid=100 + i, ppid=1, name="p", create_time=1.0, depth=0, status="sleeping",
                          cpu_percent=rng.choice((None, 0.0, 12.5, 99.9)),
                          rss_bytes=rng.choice((None, 0, 4096, 3 << 30)),
                          num_threads=rng.choice((None, 1, 8)),
                          gpu_memory_bytes=rng.choice((None, None, 1 << 30)),
                          tpu_memory_bytes=rng.choice((None, None, 1 << 29)))
                 for i in range(rng.randrange(0, 6))]
        pss = None
        if rng.random() < 0.6:
            pss = {p.pid: (rng.choice((1 << 20, 5 << 20)), rng.choice((10.0, 20.0, 30.0)))
                   for p in procs if p.rss_bytes is not None and rng.random() < 0.7}
        now = rng.choice((None, 40.0, 5.0))
        got = totals(procs, 100.0, pss, now)
        want = _reference(procs, 100.0, pss, now)
        assert {k: getattr(got, k) for k in want} == want
