"""The first screen: the runs are painted from their files before anything
is sampled (processes, GPUs, CPU %), and what that needs (psutil, NVML, the
lever screens) is imported only after it.

The pty test holds the collector's first full cycle in NVML for as long as it
likes: the fake NVML (tests/fakes/pynvml.py) reads its recording from a FIFO
that the test writes only once it has checked the first screen, as a slow
driver holds ``nvmlInit`` on a real machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
FAKES = ROOT / "tests" / "fakes"
FIXTURE = ROOT / "tests" / "fixtures" / "nvml-h200.json"
WRITER = ROOT / "tests" / "fakes" / "progress_writer.py"


@pytest.fixture
def live_folder(tmp_path, spawn):
    d = tmp_path / "progress"
    d.mkdir()
    spawn([sys.executable, str(WRITER), "--folder", str(d), "--name", "live-a", "--interval", "0.3"])
    wait_until(lambda: (d / "live-a.json").exists(), timeout=30)
    (d / "done-b.json").write_text(json.dumps({
        "format": "ttop.progress/1", "run_name": "done-b", "status": "FINISHED", "updated_at": 1.0e9,
        "epoch": 2, "total_epochs": 2}))
    return d


def _row(t, name):
    y = t.row_of(name + " ")
    return t.line(y) if y is not None else ""


def test_first_screen_shows_the_runs_before_their_processes_are_looked_up(ttop_term, live_folder, tmp_path):
    fifo = tmp_path / "nvml-recording"
    os.mkfifo(str(fifo))
    env = {"PYTHONPATH": "%s%s%s" % (FAKES, os.pathsep, ROOT), "TTOP_FAKE_NVML_FIXTURE": str(fifo)}
    t = ttop_term(live_folder, interval="0.5", cols=330, rows=20, env=env)  # wide: CPU in view
    try:
        # the collector's first full cycle waits in NVML: this screen stays
        t.wait_for(lambda t: "looking up processes and devices" in t.text and "\u2026" in _row(t, "live-a"),
                   msg="no first screen with pending resources")
        header = t.line(0)
        assert "RAM [" in header and "CPU [" in header  # the host from /proc, CPU % still unknown
        live = _row(t, "live-a")
        assert "RUNNING" in live and "done-b" in t.text and "FINISHED" in _row(t, "done-b")
        head = t.line(t.row_of("Run Name"))
        cpu_x = head.index("CPU")
        assert "\u2026" in live[cpu_x - 3:cpu_x + 4], (head, live)  # CPU pending, not "-"
        assert "Health" in head and "\u2026" in live[head.index("Health"):head.index("Health") + 6]
        assert "GPU0" not in t.text and "GPU: looking up" in t.text  # a line kept for the devices
    finally:
        def feed():
            with open(str(fifo), "w") as f:  # unblocks the collector's first cycle
                f.write(FIXTURE.read_text())

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
    # then the full cycle: processes looked up, GPUs read, the notice gone
    t.wait_for(lambda t: "GPU0" in t.text and "looking up processes" not in t.text
               and "\u2026" not in _row(t, "live-a") and "%" in _row(t, "live-a"),
               timeout=30, msg="the first full cycle never showed")
    feeder.join(timeout=10)
    t.press("q")
    assert t.wait_exit() == 0


def test_the_first_screen_imports_no_psutil_nvml_or_lever_screens(live_folder):
    # done-b settled a while ago: read by the first look and kept compact
    # (archived), as a run that ended minutes before the launch is
    os.utime(str(live_folder / "done-b.json"), (time.time() - 30, time.time() - 30))
    # everything the monitor does up to its first paint, in a fresh interpreter
    code = """if True:
        import sys
        from ttop import cli
        from ttop.ui import app, main_screen
        from ttop.view.screen import render_main
        from ttop.view.state import ViewState
        collector = cli.make_collector(cli.parse_args([sys.argv[1]]))
        snap = collector.first_look()
        lines = render_main(snap, ViewState(), 330, 20)
        assert any("live-a" in "".join(t for t, _ in line) for line in lines)
        print(" ".join(sorted(sys.modules)))
        collector.collect()  # a full cycle brings them
        print(" ".join(sorted(sys.modules)))
    """
    env = dict(os.environ, PYTHONPATH="%s%s%s" % (FAKES, os.pathsep, ROOT))
    out = subprocess.run([sys.executable, "-c", code, str(live_folder)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, full = (set(line.split()) for line in out.stdout.splitlines())
    deferred = {"psutil", "pynvml", "ttop.collect.procs", "ttop.collect.gpu", "ttop.collect.tpu", "ttop.ui.levers",
                "ttop.levers.signals", "ttop.ui.output", "ttop.ui.editor", "ttop.collect.recent", "ttop.collect.health",
                "traceback", "shutil", "socket", "hashlib",
                # the snapshot and view types are records (ttop.record), not dataclasses
                "dataclasses", "inspect",
                # a plain launch is read without argparse (ttop.cli._quick_args)
                "argparse", "gettext",
                # typing names are imported for the type checker only (TYPE_CHECKING = False)
                "typing",
                # the files are parsed with json's C scanner (ttop.jsonvalues.loads), the
                # locale and signal handlers set with the C modules under locale and signal,
                # and threading comes with the collector thread
                "json", "locale", "signal", "threading", "contextlib",
                # run names are sanitised with str.translate, and the first screen's
                # few non-ASCII marks measured without text patterns (ttop.view.text)
                "re", "enum",
                # nor a cache or wraps from functools, nor SimpleNamespace from types
                # (ttop.cliargs); Mapping comes from _collections_abc, which the
                # interpreter has loaded, not through the collections package
                "functools", "types", "collections",
                # operator's Python half (its C module, _operator, is used) and struct
                # (inotify's events are first decoded after the first screen)
                "operator", "struct"}
    # what the interpreter itself loads before any of ttop's code (site's
    # hooks: on Python 3.9 an editable install's importlib.util brings typing)
    bare = subprocess.run([sys.executable, "-c", "import sys; print(' '.join(sorted(sys.modules)))"], env=env,
                          capture_output=True, text=True, timeout=120).stdout.split()
    assert not (deferred & first) - set(bare), (deferred & first) - set(bare)
    assert {"psutil", "pynvml", "ttop.collect.procs", "ttop.collect.recent", "threading"} <= full


def test_cyclic_gc_is_off_until_the_first_full_cycle_is_published(live_folder):
    # as the monitor wires it (ttop.cli.run_ui_mode): off from the start,
    # through the first look, back on once the collector publishes a cycle
    code = """if True:
        import gc, sys
        from ttop import cli
        paused = cli._GcAfterFirstCycle()
        states = [gc.isenabled()]
        collector = cli.make_collector(cli.parse_args([sys.argv[1]]))
        collector.add_listener(paused)
        collector.first_look()
        states.append(gc.isenabled())
        frozen = gc.get_freeze_count()
        collector.collect()
        states.append(gc.isenabled())
        # what start-up made is out of the later collections from here on,
        # and the young generation collected after more new containers
        states.append(gc.get_freeze_count() > frozen + 10000)
        from ttop.collect.readfile import PROCESS_GC_YOUNG
        states.append(gc.get_threshold()[0] == PROCESS_GC_YOUNG)
        paused.restore()
        states.append(gc.isenabled())
        gc.disable()
        cli._GcAfterFirstCycle().restore()  # off before: left off
        states.append(gc.isenabled())
        gc.unfreeze()
        gc.enable()
        gc.set_threshold(700, 10, 10)
        ended = cli._GcAfterFirstCycle()
        ended.restore()  # the monitor ended before a cycle: nothing frozen, the threshold kept
        states.append(gc.isenabled() and gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10))
        headless = cli._GcAfterFirstCycle(pause=False)  # --headless: collection stays on, the freeze alone
        on = gc.isenabled()
        headless()
        states.append(on and gc.isenabled() and gc.get_freeze_count() > 10000)
        print(states)
    """
    env = dict(os.environ, PYTHONPATH="%s%s%s" % (FAKES, os.pathsep, ROOT))
    out = subprocess.run([sys.executable, "-c", code, str(live_folder)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "[False, False, True, True, True, True, False, True, True]"


def test_the_interpreter_starts_without_an_import_hook_for_ttop(tmp_path):
    # installed as the README says (pip install -e .), ttop is found through a
    # plain folder in a .pth file: setuptools' import hook for flat layouts
    # would import pathlib, importlib.util and re at every start of Python
    # in the environment, before ttop's first line
    from importlib import metadata

    # (a build in the checkout leaves an egg-info there, without direct_url.json)
    urls = [json.loads(d.read_text("direct_url.json") or "{}") for d in metadata.distributions(name="ttop-monitor")]
    if not any(u.get("dir_info", {}).get("editable") and u.get("url") == ROOT.as_uri() for u in urls):
        pytest.skip("ttop is not installed here with pip install -e from this checkout")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", "import sys; print(' '.join(sys.modules))"], cwd=str(tmp_path),
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    hooks = [m for m in out.stdout.split() if m.startswith("__editable__") and "ttop" in m]
    assert not hooks, hooks


JSON_TEXTS = [
    '{"a": 1, "b": [1.5, -2e3, true, false, null], "c": {"d": "\\u00e9\\n"}}', "  [1, 2]\n\t ", "0", '"s"',
    '{"x": NaN, "y": Infinity, "z": -Infinity}', "1" * 30, "1e400", '{"a": 1, "a": 2}',
    # not one JSON value: json.loads's own error
    "", "   ", "{", '{"a": 1} x', '{"a": 1}{}', "[1,]", '"\x01"', '\ufeff{"a": 1}', "nan", '{"a": "\\ud800"}',
    "[" * 100000 + "]" * 100000, '{"a": 01}', "[1] \x0c",
]


@pytest.mark.parametrize("text", JSON_TEXTS, ids=range(len(JSON_TEXTS)))
def test_files_are_parsed_as_json_loads_parses_them(text):
    # the first screen reads the files without importing json
    from ttop.jsonvalues import loads

    def outcome(f):
        try:
            return "ok", repr(f(text))
        except RecursionError:
            return "deep", None
        except ValueError as e:
            return type(e).__name__, str(e)

    assert outcome(loads) == outcome(json.loads)


def test_a_file_that_is_not_json_says_why_before_json_is_imported():
    """In a fresh process (the monitor before any file is written, or
    --once), json.decoder is not imported yet: the C scanner cannot raise
    its error then. The reason must still be json.loads's."""
    code = ("import sys; from ttop.jsonvalues import loads\n"
            "assert 'json.decoder' not in sys.modules\n"
            "try:\n    loads('{not json')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n"
            "import json\n"
            "try:\n    json.loads('{not json')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    ours, theirs = out.stdout.splitlines()
    assert ours == theirs and ours.startswith("JSONDecodeError "), (out.stdout, out.stderr)
