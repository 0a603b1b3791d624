"""Cost: run time priced per machine-hour and per GPU-hour (ttop.collect.cost),
through the collector, --json, the CSV files and the table."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from ttop.cli import parse_args
from ttop.collect import Collector
from ttop.collect.cost import Prices, run_cost, run_seconds
from ttop.progress import write_json_atomic


def test_prices_and_run_time():
    p = Prices(machine=2.0, gpu=3.0, hosts={"big": 10.0})
    assert p.hourly("box", 2) == 8.0 and p.hourly("big", 1) == 13.0 and p.hourly(None, 0) == 2.0
    assert not Prices().any and Prices(hosts={"a": 1.0}).any
    d = {"times": {"run": {"elapsed": 3600.0, "remaining": 1800.0}}, "started_at": 0.0}
    assert run_seconds(d, "RUNNING", 10.0, 99999.0) == (3610.0, 1800.0)  # + the heartbeat's age
    assert run_seconds(d, "FINISHED", 10.0, 99999.0) == (3600.0, None)
    assert run_seconds({"started_at": 100.0, "ended_at": 400.0}, "FAILED", None, 9e9) == (300.0, None)
    assert run_seconds({"started_at": 100.0, "updated_at": 200.0}, "KILLED", None, 9e9) == (100.0, None)
    assert run_seconds({"started_at": 100.0}, "RUNNING", None, 700.0) == (600.0, None)
    assert run_seconds({}, "RUNNING", None, 1.0) == (None, None)
    assert run_seconds({"times": {"run": {"elapsed": float("nan")}}}, "RUNNING", None, 1.0) == (None, None)


@pytest.mark.parametrize("status, gpus, expected", [
    ("RUNNING", 0, (2.0, 3.0)),  # 1 h so far + 0.5 h left at 2/h
    ("RUNNING", 2, (8.0, 12.0)),
    ("FINISHED", 1, (5.0, 5.0)),
])
def test_run_cost(status, gpus, expected):
    d = {"times": {"run": {"elapsed": 3600.0, "remaining": 1800.0}}}
    assert run_cost(d, status, 0.0, 0.0, "box", gpus, Prices(machine=2.0, gpu=3.0)) == pytest.approx(expected)
    assert run_cost({"times": {"run": {"elapsed": 3600.0}}}, "RUNNING", 0.0, 0.0, "box", 0, Prices(machine=1.0)) == (1.0, None)


def doc(name, status, elapsed, remaining=None, host="elsewhere", **extra):
    now = time.time()
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": now, "host": host,
         "times": {"run": {"elapsed": elapsed, "remaining": remaining}}, "resources": {"gpu_memory_bytes": 1 << 30}}
    d.update(extra)
    return d


def test_collector_json_and_csv(progress_dir, tmp_path):
    write_json_atomic(str(progress_dir / "a.json"), doc("a", "RUNNING", 3600.0, 3600.0))
    write_json_atomic(str(progress_dir / "b.json"), doc("b", "FINISHED", 1800.0, host="big",
                                                         resources={"gpu_memory_bytes": 0}))
    c = Collector(str(progress_dir), gpu=False, tpu=False, prices=Prices(machine=1.0, gpu=2.0, hosts={"big": 4.0}))
    for _ in range(3):  # the ended run settles: its cost stays
        s = c.collect()
    a, b = s.run("a"), s.run("b")
    assert a.cost == pytest.approx(3.0, rel=1e-3) and a.cost_projected == pytest.approx(6.0, rel=1e-3)  # 1 + 2 x 1 GPU
    assert b.cost == b.cost_projected == pytest.approx(2.0)  # half an hour at 4/h, no GPU
    assert Collector(str(progress_dir), gpu=False, tpu=False).collect().run("a").cost is None

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "ttop", str(progress_dir), "--once", "--json", "--price-hour", "1",
                          "--price-gpu-hour", "2", "--price-host", "big=4"], capture_output=True, text=True, env=env,
                         timeout=60)
    d = json.loads(out.stdout)
    runs = {r["key"]: r for r in d["runs"]}
    assert runs["b"]["cost"] == pytest.approx(2.0) and runs["a"]["cost_projected"] == pytest.approx(6.0, rel=1e-3)
    assert d["cost_total"]["cost"] == pytest.approx(5.0, rel=1e-3)
    assert d["cost_total"]["projected"] == pytest.approx(8.0, rel=1e-3)

    text = subprocess.run([sys.executable, "-m", "ttop", str(progress_dir), "--once", "--price-hour", "1"],
                          capture_output=True, text=True, env=dict(env, COLUMNS="300"), timeout=60).stdout
    assert "Cost 1.50 (projected 2.50)" in text  # 1 h + 0.5 h so far; 2 h + 0.5 h in all
    title = next(l for l in text.splitlines() if l.startswith("Run Name"))
    assert " Cost " in title and "1.00/2.00" in next(l for l in text.splitlines() if l.startswith("a "))

    from ttop.sinks.csv import CsvSink

    sink = CsvSink(str(tmp_path / "csv"), 0.05)
    sink.write(s)
    sink.close()
    with open(tmp_path / "csv" / "a_matrix.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["cost"]) == pytest.approx(3.0, rel=1e-3) and row["health"] == "OK"
    with open(tmp_path / "csv" / "b_overall.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["cost"]) == pytest.approx(2.0) and float(row["cost_projected"]) == pytest.approx(2.0)


def test_stale_run_cost_stops_at_its_last_heartbeat(progress_dir):
    """A RUNNING run whose heartbeat stopped (a dead host, a killed writer
    elsewhere) is not known to run on: its run time, and so its cost, are
    counted up to its last heartbeat and stop growing, and it has no
    projection (its time left is not believed either)."""
    assert run_seconds({"times": {"run": {"elapsed": 3600.0, "remaining": 60.0}}}, "RUNNING", 7200.0, 0.0,
                       stale=True) == (3600.0, None)
    assert run_seconds({"started_at": 100.0, "updated_at": 400.0}, "RUNNING", 9e3, 9e9, stale=True) == (300.0, None)
    path = progress_dir / "gone.json"
    write_json_atomic(str(path), doc("gone", "RUNNING", 3600.0, 3600.0))
    old = time.time() - 6 * 3600  # seen for the first time: its age is its file's
    os.utime(path, (old, old))
    c = Collector(str(progress_dir), gpu=False, tpu=False, prices=Prices(machine=1.0))
    first = c.collect().run("gone")
    assert first.stale
    assert first.cost == pytest.approx(1.0) and first.cost_projected is None  # 1 h reported, not 7 h
    time.sleep(0.05)
    assert c.collect().run("gone").cost == first.cost


def test_price_options():
    args = parse_args(["f", "--price-hour", "1.5", "--price-host", "gpu-box=7", "--price-host", "a=b=2"])
    assert args.prices == Prices(machine=1.5, gpu=0.0, hosts={"gpu-box": 7.0, "a=b": 2.0})
    assert parse_args(["f"]).prices is None
    for bad in (["--price-hour", "-1"], ["--price-host", "x"], ["--price-host", "x=-2"], ["--price-gpu-hour", "nan"]):
        with pytest.raises(SystemExit) as e:
            parse_args(["f"] + bad)
        assert e.value.code == 2


def test_a_huge_cost_is_written_short():
    # a run reporting times.run.elapsed = 1e300 (its own claim) costs 5.6e296
    # at 2 an hour: the header and the Cost cell printed all 297 digits
    from ttop.view.health import money

    assert money(5.555555555555556e+296) == "5.56e+296"
    assert money(999_999_999.0) == "999999999" and money(1e9) == "1e+09"
    assert money(1234.4) == "1234" and money(0.5) == "0.50" and money(float("nan")) == "-"
