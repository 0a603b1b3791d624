"""A stand-in training job for the collector tests and benchmark.

Writes ``<folder>/<name>.json`` (format ``ttop.progress/1``) with only
``ttop.progress.write_json_atomic`` every ``--interval`` seconds, with its own
PID, create time, host name and a self-sampled ``resources`` block, and keeps
``--children`` child processes (the last ``--busy`` of them spin, the others
sleep; the first has ``--grandchildren`` children of its own)
and ``--threads`` extra threads alive until it is killed. ``--batches N``
stops after N batches with status FINISHED.

Extra keys (ignored by readers): ``children`` (the child PIDs) and
``ready`` (true once every child has started).

    python progress_writer.py --folder DIR --name run1 --children 4 --busy 1
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository root

import psutil  # noqa: E402

from ttop.progress import PROGRESS_FORMAT, write_json_atomic  # noqa: E402

BUSY = "while True:\n    pass\n"
IDLE = "import time\nwhile True:\n    time.sleep(3600)\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folder", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--children", type=int, default=0)
    ap.add_argument("--grandchildren", type=int, default=0, help="children of the first child")
    ap.add_argument("--busy", type=int, default=0, help="the last N children spin the CPU")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--batches", type=int, default=0)
    ap.add_argument("--host", default=None, help="default: socket.gethostname()")
    ap.add_argument("--open", default=None, help="keep this file open (read-only)")
    ap.add_argument("--pad", type=int, default=0, help="bytes of padding metric text")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    me = psutil.Process()
    kept = open(args.open, "rb") if args.open else None  # noqa: F841 (kept open on purpose)
    kids = []
    for i in range(args.children):
        code = BUSY if i >= args.children - args.busy else IDLE
        if i == 0 and args.grandchildren:
            inner = (
                "import subprocess, sys, time\n"
                "ps = [subprocess.Popen([sys.executable, '-c', %r]) for _ in range(%d)]\n"
                "%s" % (IDLE, args.grandchildren, code)
            )
            kids.append(subprocess.Popen([sys.executable, "-c", inner]))
        else:
            kids.append(subprocess.Popen([sys.executable, "-c", code]))
    stop = threading.Event()
    for _ in range(args.threads):
        threading.Thread(target=stop.wait, daemon=True).start()

    path = os.path.join(args.folder, args.name + ".json")
    started = time.time()
    batch = 0
    me.cpu_percent(None)
    while True:
        batch += 1
        now = time.time()
        try:
            tree = [me] + me.children(recursive=True)
            rss = sum(p.memory_info().rss for p in tree)
            nthreads = sum(p.num_threads() for p in tree)
        except psutil.Error:
            rss, nthreads, tree = None, None, [me]
        done = args.batches and batch >= args.batches
        doc = {
            "format": PROGRESS_FORMAT,
            "run_name": args.name,
            "status": "FINISHED" if done else "RUNNING",
            "updated_at": now,
            "started_at": started,
            "host": args.host or socket.gethostname(),
            "pid": me.pid,
            "pid_create_time": me.create_time(),
            "heartbeat_interval": args.interval,
            "phase": "train",
            "epoch": 1,
            "total_epochs": 10,
            "batch": batch,
            "total_batches": 1000,
            "rate": 1.0 / args.interval,
            "metrics": {"loss": 1.0 / batch, "note": "x" * args.pad},
            "resources": {
                "cpu_percent": me.cpu_percent(None),
                "rss_bytes": rss,
                "num_procs": len(tree),
                "num_threads": nthreads,
                "sampled_at": now,
            },
            "children": [k.pid for k in kids],
            "ready": True,
        }
        if done:
            doc["ended_at"] = now
        write_json_atomic(path, doc)
        if done:
            break
        time.sleep(args.interval)
    for k in kids:
        k.kill()
        k.wait()


if __name__ == "__main__":
    main()
