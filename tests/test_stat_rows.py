"""Stat lines read again are not taken apart again (``procfs._ROWS``): the
row of a line seen before against the line parsed afresh, over random
sequences of lines of real processes, changed here and there, with two boot
times."""
from __future__ import annotations

import os
import random

from ttop.collect import procfs


def _lines():
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit():
            try:
                with open("/proc/%s/stat" % n, "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
    return out


def _changed(rng, raw):
    rp = raw.rindex(b")")
    fields = raw[rp + 2:].split(b" ")
    i = rng.choice((0, 1, 7, 9, 11, 12, 17, 19, 21, 30))
    if i == 0:
        fields[0] = rng.choice((b"S", b"R", b"Z", b"D"))
    elif i < len(fields):
        fields[i] = str(int(fields[i]) + rng.choice((1, 7, 100))).encode()
    return raw[:rp + 2] + b" ".join(fields)


def test_a_stat_line_read_again_gives_the_row_parsed_afresh(tmp_path):
    rng = random.Random(11)
    lines = _lines()[:50]
    assert lines
    proc = os.open(str(tmp_path), os.O_RDONLY)  # a stand-in for /proc: <n>/stat under it
    try:
        os.mkdir(str(tmp_path / "1"))
        procfs._ROWS.clear()
        for _ in range(2000):
            raw = rng.choice(lines)
            if rng.random() < 0.5:
                raw = _changed(rng, raw)
                lines.append(raw)
            if rng.random() < 0.05:
                raw = b"garbage" + raw[rng.randrange(len(raw)):]
            boot = rng.choice((1000.0, 1000.5))
            with open(str(tmp_path / "1" / "stat"), "wb") as f:
                f.write(raw)
            assert procfs._stat_row(proc, "1", boot) == procfs.parse_stat(raw, boot)
    finally:
        os.close(proc)


def test_parents_of_new_ids_name_the_living_and_skip_the_ended(spawn):
    # real processes: one started and reaped (its ID gone), one alive, a
    # thread of this process (found by its own ID though /proc does not list it)
    import subprocess
    import sys
    import threading

    old = procfs.last_pid()
    assert old is not None
    gone = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL)
    gone.wait()
    alive = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    started, stop = threading.Event(), threading.Event()
    tid = []

    def run():
        tid.append(threading.get_native_id())
        started.set()
        stop.wait()

    t = threading.Thread(target=run)
    t.start()
    try:
        started.wait()
        new = procfs.last_pid()
        proc = os.open("/proc", os.O_RDONLY)
        try:
            got = procfs.parents_of_new(proc, old, new, 1 << 20)
        finally:
            os.close(proc)
    finally:
        stop.set()
        t.join()
    assert got is not None
    ids = dict(got)
    assert ids.get(alive.pid) == os.getpid()
    assert gone.pid not in ids
    assert tid[0] in ids  # a thread's stat holds its process's parent
    assert ids[tid[0]] == os.getppid()
