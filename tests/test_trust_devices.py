"""A name in the shared folder that leads to a device is never opened.

Opening a device can act by itself: a terminal opened by a process without
one becomes its controlling terminal (whose owner can then send it SIGINT or
SIGHUP by typing or hanging up), a watchdog starts, a tape rewinds. Another
user can point a progress name at one between the collector's ``stat`` and
its ``open``; the read step itself must refuse it without opening it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, os, sys
    from ttop.collect.readfile import read_progress_at
    from ttop.progress import ProgressError
    folder = sys.argv[1]
    out = {}
    dfd = os.open(folder, os.O_RDONLY)
    for name in sys.argv[2:]:
        try:
            data, st, linked = read_progress_at(dfd, name, 1 << 20)
            out[name] = ["read", data.decode(), linked]
        except ProgressError as e:
            out[name] = ["refused", str(e), None]
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
        out["controlling terminal"] = True
    except OSError:
        out["controlling terminal"] = False
    print(json.dumps(out))
""")


@pytest.mark.skipif(not hasattr(os, "openpty") or not sys.platform.startswith("linux"), reason="Linux ptys")
def test_a_link_to_a_terminal_is_refused_without_becoming_the_controlling_terminal(tmp_path):
    master, slave = os.openpty()
    try:
        pts = os.ttyname(slave)
        os.close(slave)  # a terminal no session holds: the first session leader to open it would get it
        (tmp_path / "run.json").write_text('{"a": 1}')
        os.symlink(pts, str(tmp_path / "tty.json"))
        os.symlink("run.json", str(tmp_path / "link.json"))
        # the collector as a service runs it: a session leader without a terminal
        p = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), "tty.json", "link.json"],
                           stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True, timeout=60,
                           check=True)
    finally:
        os.close(master)
    got = json.loads(p.stdout)
    assert got["tty.json"] == ["refused", "not a regular file", None]
    assert got["controlling terminal"] is False
    assert got["link.json"] == ["read", '{"a": 1}', True]  # a link to a regular file is read as before


HISTORY_CHILD = textwrap.dedent("""
    import os, sys
    from ttop.collect.history import HistoryError, HistoryReader
    folder, rel, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    read = refused = 0
    for _ in range(rounds):
        try:
            HistoryReader(folder, rel).poll()
            read += 1
        except HistoryError:
            refused += 1
        try:
            os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
            print("controlling terminal after", read + refused, "polls")
            break
        except OSError:
            pass
    else:
        print("read", read > 0, "refused", refused > 0)
""")


@pytest.mark.skipif(not hasattr(os, "openpty") or not sys.platform.startswith("linux"), reason="Linux ptys")
def test_race_history_folder_flipped_with_a_link_to_the_terminals_never_opens_one(tmp_path):
    """The detail screen's history file ``d/N``, its folder ``d`` exchanged
    again and again with a link to ``/dev/pts`` (where ``N`` is a terminal):
    the reader never opens the terminal (a reader without one would make it
    its controlling terminal)."""
    flipper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flipper.py")
    master, slave = os.openpty()
    flip = None
    try:
        pts = os.ttyname(slave)
        os.close(slave)
        folder = tmp_path / "progress"
        (folder / "d").mkdir(parents=True)
        num = os.path.basename(pts)
        (folder / "d" / num).write_text('{"format":"ttop.history/1"}\n{"t":1,"d":{"loss":[[1,0.5]]}}\n')
        os.symlink(os.path.dirname(pts), str(folder / "d.alt"))
        flip = subprocess.Popen([sys.executable, flipper, "dir", str(folder / "d"), str(folder / "d.alt")],
                                stdout=subprocess.PIPE)
        assert flip.stdout.readline().strip() == b"go"
        p = subprocess.run([sys.executable, "-c", HISTORY_CHILD, str(folder), "d/" + num, "5000"],
                           stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True, timeout=600,
                           check=True, text=True)
    finally:
        if flip is not None:
            flip.kill()
            flip.wait()
            flip.stdout.close()
        os.close(master)
    assert p.stdout.strip() == "read True refused True"
