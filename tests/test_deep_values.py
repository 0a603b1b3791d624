"""Values nested about a thousand levels deep in a progress file.

Whoever can write the progress folder chooses the nesting of any value, and
orjson (the collector's parse) reads up to 1,024 levels, ``json`` up to the
recursion limit less its caller's depth: such a value reaches code that
writes it out again (``repr``, ``str``, ``json.dumps``) at a greater depth,
where Python raises RecursionError. It must never end ttop or stop a sink
for every run."""
from __future__ import annotations

import itertools
import json
import os
import time

from conftest import wait_until
from ttop.collect.collector import Collector
from ttop.levers.control import signal_state
from ttop.levers.delete import plan_delete
from ttop.levers.logs import log_files
from ttop.progress import ProgressError, parse_signal_request
from ttop.sinks.csv import CsvSink
from ttop.ui.editor import value_text

DEEP = "[" * 1020 + "1" + "]" * 1020


def _write(folder, name: str, extra: str, status: str = "RUNNING") -> None:
    head = '{"format":"ttop.progress/1","run_name":"%s","status":"%s","updated_at":%f,"host":"elsewhere"' % (
        name, status, time.time())
    (folder / (name + ".json")).write_text(head + ("," + extra if extra else "") + "}")


def _deep_folder(folder) -> None:
    _write(folder, "deepvars", '"variables":{"lr":%s},"variable_types":{"lr":"float"}' % DEEP)
    _write(folder, "deeplogs", '"logs":{"stdout":%s,"stderr":%s},"run_dir":%s' % (DEEP, DEEP, DEEP), "FINISHED")
    _write(folder, "deepmetric", '"metrics":{"loss":%s},"signal_ack":{"seq":1,"ok":true,"result":%s}' % (DEEP, DEEP))
    _write(folder, "zz-plain", '"metrics":{"loss":0.5}')


def test_levers_and_sinks_take_values_nested_too_deeply(progress_dir, tmp_path):
    _deep_folder(progress_dir)
    c = Collector(str(progress_dir), interval=0.5, archive=False)
    c.first_look()
    snap = c.collect()  # a full cycle: orjson reads the 1,020 levels
    keys = {r.key for r in snap.runs}
    assert {"deepvars", "deeplogs", "deepmetric", "zz-plain"} <= keys, keys

    # written out again, or said to be too deep where json.dumps refuses it (up to 3.12)
    text = value_text(snap.run("deepvars").data["variables"]["lr"])
    assert "nested too deeply" in text or text.startswith("[" * 1000), text[:80]
    logs = log_files(str(progress_dir), snap.run("deeplogs"))
    assert logs["stdout"][0] is None and "not inside the progress folder" in logs["stdout"][2]
    plan = plan_delete(str(progress_dir), snap.run("deeplogs"), snap.runs)
    assert any("not inside the progress folder" in s for s in plan.skipped)
    state, result = signal_state(snap.run("deepmetric").data, 1)
    assert state == "applied" and (result == "<list>" or result.startswith("[" * 40)), result[:80]
    try:
        parse_signal_request({"seq": 2, "name": json.loads("[" * 900 + "]" * 900)})
    except ProgressError as e:
        assert "unknown signal" in str(e)

    # the CSV sink writes the other runs' rows, cycle after cycle
    csv_dir = tmp_path / "csv"
    errors: list = []
    sink = CsvSink(str(csv_dir), interval=1.0, on_error=errors.append, clock=itertools.count(0, 10).__next__)
    on_publish = sink.listener(c)  # as --headless calls it: an exception is reported, not raised
    deep = progress_dir / "deepmetric.json"
    same = deep.read_bytes()
    for i in range(3):
        # the same bytes again (a writer's next heartbeat within the clock's
        # tick): read again, its sample is compared with the last one whole
        deep.write_bytes(same)
        os.utime(deep, ns=(time.time_ns(), time.time_ns() + (i + 1) * 10 ** 9))
        c.collect()  # a cycle that raised would publish nothing for any run
        on_publish()
    assert not errors, errors
    rows = (csv_dir / "zz-plain_matrix.csv").read_text().splitlines()
    assert len(rows) == 4, rows
    csv_text = (csv_dir / "deepmetric_matrix.csv").read_text()
    assert "<list>" in csv_text or "[" * 40 in csv_text


def test_the_monitor_shows_such_runs_and_stays_up(progress_dir, ttop_term):
    _write(progress_dir, "zz-plain", '"metrics":{"loss":0.5}')
    t = ttop_term(progress_dir, cols=120, rows=30)
    t.wait_for("zz-plain ", msg="the table never showed")
    _deep_folder(progress_dir)  # written now: read by a full cycle (orjson)
    t.wait_for("deeplogs ", msg="the deep runs never showed")
    t.press("f", *"deepvars", "ENTER")
    t.wait_gone("zz-plain ")
    t.press("ENTER")
    t.wait_for(lambda t: "nested too deeply" in t.text or "[" * 40 in t.text, msg="the detail screen's variables")
    t.press("e")
    t.wait_for("Variables of run deepvars", msg="the editor")
    t.press("ESC", "ESC", "ESC")
    t.press("f", *"deeplogs", "ENTER")
    t.wait_gone("deepvars ")
    t.press("o")
    t.wait_for("not inside the progress folder", msg="the output viewer")
    t.press("ESC")
    t.press("c")
    t.wait_for("not inside the progress folder", msg="the delete confirmation")
    t.press("n")
    wait_until(lambda: t.exit_status() is None and t.proc.isalive(), timeout=5)
    assert t.exit_status() is None, t.text()
    assert os.path.exists(progress_dir / "deeplogs.json")
