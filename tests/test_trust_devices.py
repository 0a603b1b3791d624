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
