"""Benchmark output capture: a script printing 100 MB as fast as it can.

The script (a real process) creates a ``TrainingMonitor`` with
``capture_output=True`` (peer: the same script with ``capture_output=False``)
and ``print``s 100 MB in lines of 100 bytes, then ends the run. Measured from
the benchmark: wall time from start until the process exited and its console
reached end-of-file (with capture: until the sidecar copied the last byte to
the console and the log). Two consoles:

* ``file``: stdout is a regular file (a batch job's output file);
* ``pipe``: stdout is a pipe that this benchmark reads (``| tee``, a job
  runner).

Runs alternate capture on/off; medians and the ratio on/off per console.
The sidecar's peak RSS and the CPU time of the script plus the sidecar come
from wait4() (this benchmark makes itself a child subreaper, so the sidecar,
which detaches from the script, is reaped here).

Targets: wall time with capture <= 1.3x without (each console); sidecar
RSS <= 20 MiB. Exit status 1 if one is missed.

    python bench/bench_capture.py [--runs 5] [--mb 100]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_RATIO = 1.3
LIMIT_RSS = 20 * 1024 * 1024

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder, capture, mb = sys.argv[1], sys.argv[2] == "on", int(sys.argv[3])
    line = "x" * 99
    with TrainingMonitor(folder=folder, run_name="bench", capture_output=capture, interval=60, gpu=False) as m:
        for _ in range(mb * 10000):
            print(line)
        if capture and m._capture.mode != "fd":
            sys.exit("capture mode %%s" %% m._capture.mode)
    """
    % ROOT
)


def become_subreaper() -> None:
    """Orphans of our children (the sidecar) become our children: we can
    wait for them and get their CPU time and peak RSS."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER) failed: %s" % os.strerror(ctypes.get_errno()))


def run_once(tmp: str, script: str, capture: bool, console: str, mb: int) -> Tuple[float, float, int]:
    """(wall s, CPU s of the script and the sidecar, sidecar peak RSS bytes)."""
    folder = os.path.join(tmp, "progress")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    out_path = os.path.join(tmp, "console.out")
    argv = [sys.executable, script, folder, "on" if capture else "off", str(mb)]
    want = mb * 10000 * 100
    got = [0]
    drain = None
    t0 = time.perf_counter()
    if console == "file":
        with open(out_path, "wb") as out:
            p = subprocess.Popen(argv, stdout=out, stdin=subprocess.DEVNULL)
    else:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)

        def read_all() -> None:
            assert p.stdout is not None
            while True:
                b = p.stdout.read1(1 << 20)
                if not b:
                    break
                got[0] += len(b)

        drain = threading.Thread(target=read_all)
        drain.start()
    cpu, sidecar_rss, rc = 0.0, 0, None
    while True:  # the script, then the sidecar once it copied the last byte
        try:
            pid, status, ru = os.wait4(-1, 0)
        except ChildProcessError:
            break
        cpu += ru.ru_utime + ru.ru_stime
        if pid == p.pid:
            rc = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
            p.returncode = rc
        else:
            sidecar_rss = max(sidecar_rss, ru.ru_maxrss * 1024)
    if drain is not None:
        drain.join()
    dt = time.perf_counter() - t0
    if console == "file":
        got[0] = os.path.getsize(out_path)
    if rc != 0:
        raise SystemExit("the script failed (%s)" % rc)
    if got[0] != want:
        raise SystemExit("console got %d bytes, expected %d" % (got[0], want))
    if capture:
        log = os.path.getsize(os.path.join(folder, "bench.stdout.log"))
        if log != want:
            raise SystemExit("log has %d bytes, expected %d" % (log, want))
        if not sidecar_rss:
            raise SystemExit("the sidecar was not seen")
    return dt, cpu, sidecar_rss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mb", type=int, default=100)
    args = ap.parse_args()
    ok = True
    become_subreaper()
    with tempfile.TemporaryDirectory(prefix="ttop-bench-capture-") as tmp:
        script = os.path.join(tmp, "printer.py")
        with open(script, "w") as f:
            f.write(SCRIPT)
        print("printing %d MB (lines of 100 bytes), %d runs each, medians" % (args.mb, args.runs))
        rss: List[int] = []
        for console in ("file", "pipe"):
            wall: Dict[bool, List[float]] = {True: [], False: []}
            cpu: Dict[bool, List[float]] = {True: [], False: []}
            for _ in range(args.runs):
                for capture in (False, True):
                    w, c, r = run_once(tmp, script, capture, console, args.mb)
                    wall[capture].append(w)
                    cpu[capture].append(c)
                    if capture:
                        rss.append(r)
            off, on = statistics.median(wall[False]), statistics.median(wall[True])
            ratio = on / off
            good = ratio <= LIMIT_RATIO
            ok = ok and good
            print(
                "console=%-4s wall: without capture %6.3f s, with %6.3f s, ratio %.2fx (target <= %.1fx) %s"
                % (console, off, on, ratio, LIMIT_RATIO, "ok" if good else "MISSED")
            )
            c_off, c_on = statistics.median(cpu[False]), statistics.median(cpu[True])
            print(
                "console=%-4s CPU (script + sidecar): without %6.3f s, with %6.3f s, ratio %.2fx (info)"
                % (console, c_off, c_on, c_on / c_off)
            )
        peak = max(rss)
        good = peak <= LIMIT_RSS
        ok = ok and good
        print(
            "sidecar peak RSS %.1f MiB (max of %d runs; target <= %d MiB) %s"
            % (peak / 2**20, len(rss), LIMIT_RSS // 2**20, "ok" if good else "MISSED")
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
