"""Benchmark the output viewer on a 1 GiB log of 10 million lines.

The log (cached in ``/tmp/ttop-bench-logview/``, created once and reused) has
lines of varied length (10 to ~200 bytes), some with ANSI colours, some
``\\r`` progress bars, one marker line near the start. Every measure goes
through the real screen (:class:`ttop.ui.output.OutputScreen`, keys and
``render`` at 200x50) with a fresh screen per repetition:

* first screen: open the viewer and render the last page (follow mode);
* Home: jump to the start and render;
* End: jump back to the end and render;
* PgUp from the end;
* search from the end for a marker near the start (wraps around);
* (info) a search for a string that is nowhere: each key press stops after
  half a second and ``n`` goes on; the number of presses and their time;

Baseline, measured in the same run: a naive "last page" that streams the
whole file through ``collections.deque(f, maxlen=50)`` (constant memory, reads
everything), as a viewer without an index or backward reads would.

RSS growth of this process over all viewer measures (``VmRSS`` from
``/proc/self/status``) must stay <= 20 MB; each viewer median <= 200 ms.
The file is in the page cache after its creation (numbers are warm-cache).

    python bench/bench_logview.py [--runs 7] [--path /tmp/ttop-bench-logview/big.log]
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ttop.collect.snapshot import RunSnapshot, Snapshot  # noqa: E402
from ttop.ui.output import OutputScreen  # noqa: E402
from ttop.ui.screen import AppContext  # noqa: E402

GIB = 1024 ** 3
N_LINES = 10_000_000
MARKER = "MARKER-near-the-start"
WIDTH, HEIGHT = 200, 50
LIMIT_S = 0.200
LIMIT_RSS = 20 * 1024 * 1024


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def make_log(path: str) -> None:
    """10 million lines, 1 GiB in total (the last line is padded to fit)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".part"
    block = 10_000
    templates = []
    for j in range(block):
        k = j % 10
        if k == 3:
            t = "\x1b[32mINFO\x1b[0m step %%d loss %%.4f %s" % ("x" * (j % 150))
        elif k == 7:
            t = "epoch %%d:  40%%%%|####      |\r epoch:  80%%%%|########  |\r done %%.4f %s" % ("y" * (j % 90))
        else:
            t = "batch %%d loss=%%.4f lr=0.01 %s" % ("z" * (j % 120))
        templates.append(t)
    written = 0
    n_blocks = N_LINES // block
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        for b in range(n_blocks):
            base = b * block
            lines = [templates[j] % (base + j, (base + j) * 1e-7) for j in range(block)]
            if b == 0:
                lines[1000] = "%s line 1000" % MARKER
            size = sum(len(x) for x in lines) + block
            # spread what this block lacks of its share of 1 GiB over its lines
            want = (GIB - written) // (n_blocks - b)
            extra, rest = divmod(max(0, want - size), block)
            if extra:
                lines = [x + " " + "." * (extra - 1) for x in lines]
            if rest:
                lines[-1] += "." * rest
            text = "\n".join(lines) + "\n"
            f.write(text)
            written += len(text)
    os.replace(tmp, path)


class Ctx(AppContext):
    def __init__(self, folder: str, key: str) -> None:
        self.folder = folder
        run = RunSnapshot(key=key, path=os.path.join(folder, key + ".json"),
                          data={"logs": {"stdout": key + ".log", "stderr": key + ".err"}},
                          run_name=key, status="RUNNING", reported_status="RUNNING")
        self.snapshot = Snapshot(seq=1, taken_at=time.time(), folder=folder, runs=(run,))

    def push(self, s):
        pass

    def pop(self):
        pass

    def notify(self, m, error=False):
        pass

    def refresh_now(self):
        pass

    def quit(self):
        pass


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(folder: str, key: str, runs: int):
    ctx = Ctx(folder, key)
    results = collections.OrderedDict((k, []) for k in ("first screen", "Home", "End", "PgUp from end", "search from end"))
    check = {}
    for _ in range(runs):
        box = {}

        def first(box=box):
            box["s"] = OutputScreen(ctx, key)
            box["lines"] = box["s"].render(ctx, WIDTH, HEIGHT)

        results["first screen"].append(timed(first))
        s = box["s"]
        check["last"] = "".join(t for t, _ in box["lines"][-3]).rstrip()

        def key_render(*keys, s=s, box=box):
            def go():
                for k in keys:
                    s.on_key(k, ctx)
                box["lines"] = s.render(ctx, WIDTH, HEIGHT)
            return go

        results["Home"].append(timed(key_render("HOME")))
        check["home"] = "".join(t for t, _ in box["lines"][2]).rstrip()
        results["End"].append(timed(key_render("END")))
        results["PgUp from end"].append(timed(key_render("PGUP")))
        s.on_key("END", ctx)
        s.render(ctx, WIDTH, HEIGHT)
        results["search from end"].append(timed(key_render("/", *MARKER, "ENTER")))
        check["search"] = "".join(t for t, _ in box["lines"][2]).rstrip()
    return results, check


def search_miss(folder: str, key: str):
    """A search for a string that is nowhere: each key press stops after the
    viewer's budget; returns (seconds per press, presses, total seconds)."""
    ctx = Ctx(folder, key)
    s = OutputScreen(ctx, key)
    s.render(ctx, WIDTH, HEIGHT)
    s.on_key("HOME", ctx)
    s.render(ctx, WIDTH, HEIGHT)
    times = []
    keys = ["/"] + list("no such text") + ["ENTER"]
    while True:
        times.append(timed(lambda keys=keys: [s.on_key(k, ctx) for k in keys]))
        msg = (s.message or ("", False))[0]
        if not msg.startswith("searched ") or len(times) > 200:
            break
        keys = ["n"]
    return times, msg


def baseline(path: str, runs: int):
    out = []
    for _ in range(runs):
        def naive():
            with open(path, "rb") as f:
                collections.deque(f, maxlen=HEIGHT)
        out.append(timed(naive))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--baseline-runs", type=int, default=3)
    ap.add_argument("--path", default="/tmp/ttop-bench-logview/big.log")
    args = ap.parse_args()
    path = args.path
    folder, name = os.path.split(path)
    key = name[:-4] if name.endswith(".log") else name
    if not (os.path.exists(path) and os.path.getsize(path) == GIB):
        print("creating %s (1 GiB, 10 million lines) ..." % path, flush=True)
        t0 = time.perf_counter()
        make_log(path)
        print("  created in %.1f s" % (time.perf_counter() - t0))
    else:
        print("reusing %s" % path)
    print("log: %d bytes" % os.path.getsize(path))
    # warm the first/last pages like any earlier run would (page cache)
    rss0 = rss()
    results, check = measure(folder, key, args.runs)
    miss, miss_msg = search_miss(folder, key)
    growth = rss() - rss0
    base = baseline(path, args.baseline_runs)
    base_med = statistics.median(base)
    ok = True
    print("\n%-18s %10s %10s  %s" % ("measure", "median", "max", "vs baseline / limit"))
    for k, v in results.items():
        med = statistics.median(v)
        verdict = "PASS" if med <= LIMIT_S else "FAIL"
        ok &= med <= LIMIT_S
        print("%-18s %8.2f ms %7.2f ms  %6.0fx faster than baseline; %s (<= %d ms)" % (
            k, med * 1000, max(v) * 1000, base_med / med if med > 0 else float("inf"), verdict, LIMIT_S * 1000))
    print("%-18s %8.2f ms %7.2f ms  (naive deque tail of the whole file, %d runs)" % (
        "baseline", base_med * 1000, max(base) * 1000, len(base)))
    print("info: search for a missing string: %d key presses of <= %.0f ms each (max %.0f ms), %.1f s in all; "
          "then %r" % (len(miss), max(miss[:-1] or miss) * 1000, max(miss) * 1000, sum(miss), miss_msg))
    verdict = "PASS" if growth <= LIMIT_RSS else "FAIL"
    ok &= growth <= LIMIT_RSS
    print("RSS growth over %d viewer runs and the missing-string search: %.1f MB  %s (<= 20 MB)" % (
        args.runs, growth / 1e6, verdict))
    print("checks: last line %r, Home %r, search %r" % (check["last"][:40], check["home"][:40], check["search"][:40]))
    good = check["home"].startswith("INFO step 0") or check["home"].startswith("batch 0 ")
    good &= check["search"].startswith(MARKER)
    if not good:
        print("FAIL: the viewer showed the wrong lines")
        ok = False
    print("OVERALL", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
