"""Helpers shared by the CLI / headless tests (no tests here): a real writer
process that keeps progress files of several runs fresh, and ways to run
``python -m ttop``."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent

# A stand-in training job: one process keeping N progress files fresh (its own
# PID and create time, so the collector sees the runs alive). Every
# `--new-metric-every` ticks a new metric appears, or one (extra0) once the
# file `--new-metric-when` names exists (tests a column added mid-run).
WRITER = textwrap.dedent(
    r"""
    import argparse, os, signal, sys, time
    sys.path.insert(0, sys.argv[1])
    import psutil
    from ttop.progress import write_json_atomic
    ap = argparse.ArgumentParser()
    ap.add_argument("root"); ap.add_argument("folder"); ap.add_argument("names", nargs="+")
    ap.add_argument("--period", type=float, default=0.1)
    ap.add_argument("--new-metric-every", type=int, default=0)
    ap.add_argument("--new-metric-when", default="")
    a = ap.parse_args()
    me = psutil.Process()
    ctime = me.create_time()
    started = time.time()
    tick = 0
    stop = []
    extra = False
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    def doc(name, status):
        metrics = {"loss": 1.0 / (tick + 1), "acc": min(1.0, tick / 100.0)}
        if a.new_metric_every:
            for j in range(tick // a.new_metric_every):
                metrics["extra%d" % j] = float(j)
        if extra:
            metrics["extra0"] = 0.0
        return {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": time.time(),
                "started_at": started, "pid": os.getpid(), "pid_create_time": ctime,
                "phase": "train", "epoch": tick // 50, "total_epochs": 100, "batch": tick % 50,
                "total_batches": 50, "rate": 10.0, "metrics": metrics, "heartbeat_interval": 1.0}
    while not stop:
        extra = extra or bool(a.new_metric_when and os.path.exists(a.new_metric_when))
        for n in a.names:
            d = doc(n, "RUNNING")
            write_json_atomic(os.path.join(a.folder, n + ".json"), d)
        if tick == 0:
            open(os.path.join(a.folder, ".ready"), "w").close()
        tick += 1
        time.sleep(a.period)
    for n in a.names:
        d = doc(n, "CANCELED"); d["ended_at"] = time.time()
        write_json_atomic(os.path.join(a.folder, n + ".json"), d)
    """
)


def start_writer(spawn, folder, names, tmp_path, period=0.1, new_metric_every=0, new_metric_when=None):
    script = Path(tmp_path) / "writer.py"
    script.write_text(WRITER, encoding="utf-8")
    args = [sys.executable, str(script), str(ROOT), str(folder), *names, "--period", str(period)]
    if new_metric_every:
        args += ["--new-metric-every", str(new_metric_every)]
    if new_metric_when:
        args += ["--new-metric-when", str(new_metric_when)]
    p = spawn(args)
    ready = Path(folder) / ".ready"
    from conftest import wait_until

    wait_until(lambda: ready.exists() or p.poll() is not None, timeout=60)
    assert p.poll() is None, "writer died"
    return p


def child_env(**extra):
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env.pop("NO_COLOR", None)
    env.pop("TTOP_DEBUG", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def ttop_cmd(*args):
    return [sys.executable, "-m", "ttop", *[str(a) for a in args]]


def run_ttop(*args, timeout=60, env=None, cwd=None):
    return subprocess.run(
        ttop_cmd(*args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or child_env(),
        cwd=cwd,
    )


def read_csv_dir(csv_dir):
    """Read every .csv in csv_dir with csv, checking that every row is as wide
    as the header and the file ends in a newline; return {name: rows}."""
    tables = {}
    for name in sorted(os.listdir(csv_dir)):
        if not name.endswith(".csv"):
            continue
        path = os.path.join(csv_dir, name)
        with open(path, "rb") as f:
            raw = f.read()
        assert raw.endswith(b"\n"), "%s does not end with a newline: %r" % (name, raw[-80:])
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows, name
        for row in rows[1:]:
            assert len(row) == len(rows[0]), "%s: torn row %r" % (name, row)
        tables[name] = rows
    return tables


def load_csv_dir(csv_dir):
    """:func:`read_csv_dir`, then every file loaded with pandas too; return
    {name: DataFrame}."""
    frames = {}
    for name, rows in read_csv_dir(csv_dir).items():
        frames[name] = pd.read_csv(os.path.join(csv_dir, name))
        assert len(frames[name]) == len(rows) - 1
    return frames
