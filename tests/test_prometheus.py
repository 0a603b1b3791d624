"""The Prometheus endpoint (``--serve``): series built from the snapshot,
bounded label sets, real HTTP scrapes parsed with prometheus_client's own
parser, the CLI wiring, and (when the Debian package is installed) a real
Prometheus server scraping ttop."""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_cli_support import ROOT

from ttop import record
from ttop.collect.collector import Collector
from ttop.collect.snapshot import (
    GpuDevice,
    HostInfo,
    RunResources,
    RunSnapshot,
    Snapshot,
)
from ttop.progress import write_json_atomic
from ttop.sinks.jsonout import snapshot_to_dict
from ttop.sinks.prometheus import (
    ENDED_RETENTION,
    MetricsPage,
    ServeError,
    SnapshotMetrics,
    parse_serve,
    progress_fraction,
    serve,
)


def _run(key: str, status: str, ended_at: Any = None, **data: Any) -> RunSnapshot:
    doc = {"format": "ttop.progress/1", "run_name": key, "status": status, "updated_at": 1000.0,
           "ended_at": ended_at}
    doc.update(data)
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=doc, run_name=key, status=status,
                       reported_status=status, host="h1",
                       resources=RunResources(cpu_percent=50.0, rss_bytes=2048, num_procs=2, num_threads=7))


def _snap(*runs: RunSnapshot, seq: int = 1) -> Snapshot:
    return Snapshot(seq=seq, taken_at=1000.0, folder="/p", runs=tuple(runs), host=HostInfo("h1", 2, 10.0, 100, 50),
                    gpus=(GpuDevice(index=0, name="NVIDIA H200", uuid="GPU-1", memory_used=10, memory_total=100,
                                    utilization=42, power_mw=71_000),))


def _samples(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples, series: str, **labels: str) -> float:
    hits = [v for (n, ls), v in samples.items()
            if n == series and all(dict(ls).get(k) == v2 for k, v2 in labels.items())]
    assert len(hits) == 1, (series, labels, hits)
    return hits[0]


# -- pure parts ---------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("9100", ("127.0.0.1", 9100)),
    (":9100", ("127.0.0.1", 9100)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:9100", ("::1", 9100)),
    ("localhost:1", ("localhost", 1)),
])
def test_parse_serve(text, expected):
    assert parse_serve(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "0", "70000", "::1:9100", "host:", "1.2.3.4:-5"])
def test_parse_serve_refuses(text):
    with pytest.raises(ServeError):
        parse_serve(text)


def test_progress_fraction():
    assert progress_fraction({"epoch": 3, "total_epochs": 4, "train_batch": 50, "train_total_batches": 100}) == 0.625
    assert progress_fraction({"batch": 30, "total_batches": 120}) == 0.25
    assert progress_fraction({"status": "FINISHED"}) == 1.0
    assert progress_fraction({"epoch": 1}) is None
    assert progress_fraction({"batch": 5, "total_batches": 0}) is None


def test_series_carry_run_labels_metrics_devices_and_nan():
    run = _run("a", "RUNNING", epoch=2, total_epochs=4, batch=10, total_batches=40, train_batch=10,
               train_total_batches=40, rate=12.5, times={"run": {"elapsed": 30.0, "remaining": 90.0}},
               metrics={"loss": 0.25, "acc": "NaN", "note": "text"})
    page = MetricsPage(lambda: _snap(run))
    s = _samples(page.page().decode())
    assert _value(s, "ttop_run_status", run="a", status="RUNNING") == 1
    assert _value(s, "ttop_run_status", run="a", status="FAILED") == 0
    assert _value(s, "ttop_run_progress_ratio", run="a", host="h1") == pytest.approx((1 + 0.25) / 4)
    assert _value(s, "ttop_run_rate_batches_per_second", run="a") == 12.5
    assert _value(s, "ttop_run_eta_seconds", run="a") == 90.0
    assert _value(s, "ttop_metric", run="a", name="loss") == 0.25
    assert math.isnan(_value(s, "ttop_metric", run="a", name="acc"))
    assert not [k for k in s if k[0] == "ttop_metric" and dict(k[1]).get("name") == "note"]
    assert _value(s, "ttop_run_cpu_percent", run="a") == 50.0
    assert _value(s, "ttop_run_memory_bytes", run="a") == 2048
    assert _value(s, "ttop_gpu_utilization_percent", gpu="0", name="NVIDIA H200") == 42
    assert _value(s, "ttop_gpu_power_watts", gpu="0") == 71.0
    assert _value(s, "ttop_runs", status="RUNNING") == 1


def test_a_stale_run_keeps_its_status_but_not_its_last_resources_on_the_page():
    silent = record.replace(_run("silent", "RUNNING", rate=3.0), stale=True)  # remote: alive unknown
    hung = record.replace(_run("hung", "RUNNING"), stale=True, alive=True, local=True)  # measured here
    s = _samples(MetricsPage(lambda: _snap(silent, hung)).page().decode())
    assert _value(s, "ttop_run_stale", run="silent") == 1
    assert _value(s, "ttop_run_status", run="silent", status="RUNNING") == 1
    for series in ("ttop_run_cpu_percent", "ttop_run_memory_bytes", "ttop_run_processes", "ttop_run_threads",
                   "ttop_run_rate_batches_per_second"):
        assert not [k for k in s if k[0] == series and dict(k[1]).get("run") == "silent"], series
    assert _value(s, "ttop_run_cpu_percent", run="hung") == 50.0
    assert _value(s, "ttop_run_memory_bytes", run="hung") == 2048


def test_a_non_utf8_run_or_metric_name_does_not_break_the_page():
    bad = _run("bad\udcff", "RUNNING", metrics={"lo\udcffss": 1.0})
    page = MetricsPage(lambda: _snap(bad, _run("good", "RUNNING")))
    s = _samples(page.page().decode())
    assert _value(s, "ttop_run_status", run="good", status="RUNNING") == 1
    assert _value(s, "ttop_metric", run="bad?", name="lo?ss") == 1.0


def test_control_characters_of_a_run_never_reach_the_page_raw():
    # names come from files anyone who can write the folder wrote; the page is
    # read with curl in terminals and by line-based parsers
    evil = _run("k", "RUNNING", metrics={"lo\x1b[5mss": 1.0})
    evil = record.replace(evil, run_name="a\x1b]0;x\x07\rb\x9bc\nd", host="h\x1bP+q\x1b\\")
    page = MetricsPage(lambda: _snap(evil, _run("good", "RUNNING"))).page().decode()
    assert not [ch for ch in page if (ch < " " and ch != "\n") or "\x7f" <= ch <= "\x9f"]
    s = _samples(page)
    assert _value(s, "ttop_run_status", run="a?]0;x??b?c\nd", status="RUNNING") == 1
    assert _value(s, "ttop_metric", key="k", name="lo?[5mss") == 1.0
    assert _value(s, "ttop_run_status", key="k", host="h?P+q?\\", status="RUNNING") == 1
    assert _value(s, "ttop_run_status", run="good", status="RUNNING") == 1


def test_bidi_and_zero_width_characters_of_a_run_never_reach_the_page_raw(tmp_path):
    """A run name with a right-to-left override (U+202E) or an isolate
    (U+2066) turns the rest of the line around in the terminal that curls
    the page (the table and the CSV files show them as ``?``); a line
    separator (U+2028) splits it for line-based readers."""
    folder = tmp_path / "progress"
    folder.mkdir()
    write_json_atomic(str(folder / "r.json"), {
        "format": "ttop.progress/1", "run_name": "\u202eevil\u2066x\u2028y", "status": "RUNNING",
        "updated_at": time.time(), "metrics": {"lo\u200bss": 1.0}})
    c = Collector(str(folder), gpu=False, tpu=False, notify=False)
    c.collect()
    text = MetricsPage(lambda: c.latest).page().decode()
    c.stop()
    assert not [ch for ch in text if ch in "\u202e\u2066\u2028\u200b"]
    s = _samples(text)
    assert _value(s, "ttop_run_status", run="?evil?x?y", status="RUNNING") == 1
    assert _value(s, "ttop_metric", key="r", name="lo?ss") == 1.0


def test_a_run_with_a_great_many_metrics_gets_a_bounded_number_of_series(tmp_path):
    # a file anyone who can write the folder wrote, or per-class metrics of a
    # 10,000-class model: one run must not put 100,000 series on the page
    # (Prometheus's sample_limit fails the whole scrape; every series is a
    # time series kept in its database)
    from ttop.sinks.prometheus import MAX_RUN_METRICS

    folder = tmp_path / "progress"
    folder.mkdir()
    metrics = {"loss": 0.5}
    metrics.update(("class_%05d" % i, i * 0.5) for i in range(20000))
    write_json_atomic(str(folder / "many.json"), {
        "format": "ttop.progress/1", "run_name": "many", "status": "RUNNING", "updated_at": time.time(),
        "host": "elsewhere", "heartbeat_interval": 60, "metrics": metrics})
    c = Collector(str(folder), gpu=False, tpu=False, notify=False)
    try:
        snap = c.collect()
    finally:
        c.stop()
    s = _samples(MetricsPage(lambda: snap).page().decode())
    names = [dict(ls)["name"] for (n, ls) in s if n == "ttop_metric"]
    assert len(names) == MAX_RUN_METRICS == 256
    assert names[:2] == ["loss", "class_00000"]  # the first ones, in the file's order
    assert _value(s, "ttop_run_status", run="many", status="RUNNING") == 1


def test_ints_beyond_the_float_range_do_not_break_the_page():
    big = _run("big", "RUNNING", epoch=10 ** 400, total_epochs=10 ** 401, train_batch=1, train_total_batches=2,
               batch=10 ** 400, metrics={"loss": 10 ** 400})
    page = MetricsPage(lambda: _snap(big))
    s = _samples(page.page().decode())
    assert _value(s, "ttop_run_epoch", run="big") == math.inf
    assert _value(s, "ttop_run_batch", run="big") == math.inf
    assert _value(s, "ttop_metric", run="big", name="loss") == math.inf
    assert not [k for k in s if k[0] == "ttop_run_progress_ratio"]


def test_ended_runs_leave_the_endpoint_after_the_retention():
    now = [5000.0]
    old = _run("old", "FINISHED", ended_at=5000.0 - ENDED_RETENTION - 1)  # ended before ttop started
    fresh = _run("fresh", "FAILED", ended_at=4990.0)
    future = _run("skewed", "FINISHED", ended_at=5000.0 + 3600)  # a host whose clock runs ahead
    live = _run("live", "RUNNING")
    m = SnapshotMetrics(lambda: None, clock=lambda: now[0])
    snap = _snap(old, fresh, future, live)
    assert sorted(r.key for r in m.exported_runs(snap)) == ["fresh", "live", "skewed"]
    now[0] += ENDED_RETENTION - 5  # fresh ended 605 s ago now; skewed was first seen ended 595 s ago
    assert sorted(r.key for r in m.exported_runs(snap)) == ["live", "skewed"]
    now[0] += 10
    assert sorted(r.key for r in m.exported_runs(snap)) == ["live"]
    # a run that is rewritten as RUNNING (same name, new run) is back at once
    assert sorted(r.key for r in m.exported_runs(_snap(_run("fresh", "RUNNING"), live))) == ["fresh", "live"]


def test_page_is_rendered_once_per_snapshot():
    snaps = [_snap(_run("a", "RUNNING"), seq=1)]
    page = MetricsPage(lambda: snaps[-1])
    first = page.page()
    assert page.page() is first  # the cached bytes, not a new render
    snaps.append(_snap(_run("a", "RUNNING"), _run("b", "RUNNING"), seq=2))
    second = page.page()
    assert second is not first and b'run="b"' in second


# -- real HTTP -------------------------------------------------------------------


def _open(url: str, timeout: float = 10.0) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:  # e.g. a server still starting: close its socket
        e.close()
        raise


def _get(url: str, timeout: float = 10.0) -> str:
    with _open(url, timeout) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def test_scrape_over_http_equals_the_json_snapshot_of_the_same_cycle(tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    now = time.time()
    write_json_atomic(str(folder / "train-a.json"), {
        "format": "ttop.progress/1", "run_name": "train-a", "status": "RUNNING", "updated_at": now,
        "host": "elsewhere", "epoch": 2, "total_epochs": 5, "batch": 7, "total_batches": 70,
        "train_batch": 7, "train_total_batches": 70, "rate": 3.5,
        "times": {"run": {"elapsed": 100.0, "remaining": 400.0, "total": 500.0}},
        "metrics": {"loss": 0.125, "val/acc": 0.5},
        "resources": {"cpu_percent": 150.0, "rss_bytes": 123456, "num_procs": 3, "num_threads": 9,
                      "gpu_memory_bytes": 4096},
    })
    write_json_atomic(str(folder / "done.json"), {
        "format": "ttop.progress/1", "run_name": "done", "status": "FINISHED", "updated_at": now, "ended_at": now})
    collector = Collector(str(folder), interval=60, gpu=False, tpu=False)
    server, page = serve(collector, "127.0.0.1", 0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        snap = collector.collect()
        text = _get("http://127.0.0.1:%d/metrics" % port)
    finally:
        server.shutdown()
        server.server_close()
        page.stop()
    s = _samples(text)
    doc = snapshot_to_dict(snap)
    assert _value(s, "ttop_snapshot_seq") == doc["seq"]
    run = next(r for r in doc["runs"] if r["key"] == "train-a")
    labels = {"run": "train-a", "host": "elsewhere"}
    assert _value(s, "ttop_run_epoch", **labels) == run["epoch"]
    assert _value(s, "ttop_run_epochs_total", **labels) == run["total_epochs"]
    assert _value(s, "ttop_run_batch", **labels) == run["batch"]
    assert _value(s, "ttop_run_batches_total", **labels) == run["total_batches"]
    assert _value(s, "ttop_run_rate_batches_per_second", **labels) == run["rate"]
    assert _value(s, "ttop_run_eta_seconds", **labels) == run["times"]["run"]["remaining"]
    assert _value(s, "ttop_run_heartbeat_age_seconds", **labels) == pytest.approx(run["heartbeat_age"])
    assert _value(s, "ttop_metric", name="loss", **labels) == run["metrics"]["loss"]
    assert _value(s, "ttop_metric", name="val/acc", **labels) == run["metrics"]["val/acc"]
    assert _value(s, "ttop_run_cpu_percent", **labels) == run["resources"]["cpu_percent"]
    assert _value(s, "ttop_run_memory_bytes", **labels) == run["resources"]["rss_bytes"]
    assert _value(s, "ttop_run_gpu_memory_bytes", **labels) == run["resources"]["gpu_memory_bytes"]
    assert _value(s, "ttop_run_processes", **labels) == run["resources"]["num_procs"]
    assert _value(s, "ttop_run_status", status=run["status"], **labels) == 1
    assert _value(s, "ttop_run_progress_ratio", **labels) == pytest.approx((1 + 7 / 70) / 5)
    for status, n in doc["counts"].items():
        assert _value(s, "ttop_runs", status=status) == n
    assert _value(s, "ttop_run_status", run="done", status="FINISHED") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(fn, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = fn()
            if got:
                return got
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last))


def _ttop(*args: str, **kw: Any) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "ttop", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True, **kw)


def _stop(proc: subprocess.Popen) -> Tuple[str, str]:
    if proc.poll() is None:
        proc.terminate()
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out, err


def _write_running(folder, name: str, **extra: Any) -> None:
    doc = {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": time.time(),
           "host": "otherhost", "batch": 25, "total_batches": 100}
    doc.update(extra)
    write_json_atomic(os.path.join(str(folder), name + ".json"), doc)


def test_headless_serve_only_binds_loopback_and_writes_no_csv(tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    _write_running(folder, "r1")
    port = _free_port()
    proc = _ttop(str(folder), "--headless", "--serve", str(port), "-i", "0.2", cwd=str(tmp_path))
    try:
        text = _wait_for(lambda: _get("http://127.0.0.1:%d/metrics" % port), what="the endpoint")
        assert _value(_samples(text), "ttop_run_progress_ratio", run="r1") == 0.25
        # bound to loopback only: the machine's other addresses are refused
        conns = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True)
        if conns.returncode == 0 and conns.stdout.strip():
            assert "127.0.0.1:%d" % port in conns.stdout
            assert "0.0.0.0:%d" % port not in conns.stdout and "*:%d" % port not in conns.stdout
    finally:
        out, err = _stop(proc)
    assert proc.returncode == 0, err
    assert "serving Prometheus metrics on http://127.0.0.1:%d/metrics" % port in err
    assert not (tmp_path / "train").exists()  # --serve without CSV options writes no CSV


def test_headless_serve_on_ipv6_names_a_url_that_works(tmp_path):
    """The "serving ... on URL" line puts an IPv6 address in brackets, so
    the URL it prints can be pasted (http://::1:9100/metrics cannot)."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError as e:
        pytest.skip("::1 cannot be bound here: %s" % e)
    folder = tmp_path / "progress"
    folder.mkdir()
    _write_running(folder, "r1")
    proc = _ttop(str(folder), "--headless", "--serve", "[::1]:%d" % port, "-i", "0.2", cwd=str(tmp_path))
    url = "http://[::1]:%d/metrics" % port
    try:
        _wait_for(lambda: _get(url), what="the endpoint")
    finally:
        _out, err = _stop(proc)
    assert "serving Prometheus metrics on %s;" % url in err


def test_serve_with_csv_options_writes_both(tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    _write_running(folder, "r1")
    port = _free_port()
    proc = _ttop(str(folder), "--headless", "--serve", "127.0.0.1:%d" % port, "--csv-dir", str(tmp_path / "csv"),
                 "-i", "0.2")
    try:
        _wait_for(lambda: _get("http://127.0.0.1:%d/metrics" % port), what="the endpoint")
        _wait_for(lambda: (tmp_path / "csv" / "r1_matrix.csv").exists(), what="the CSV")
    finally:
        _stop(proc)
    assert proc.returncode == 0


def test_port_in_use_is_a_usage_error(tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        proc = _ttop(str(folder), "--headless", "--serve", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and "cannot serve metrics on 127.0.0.1:%d" % port in err


def test_bad_serve_values_exit_2(tmp_path):
    for bad in (["--serve", "http"], ["--once", "--serve", "9100"]):
        proc = _ttop(str(tmp_path), *bad)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, (bad, err)
        assert "--serve" in err


# -- a real Prometheus server ---------------------------------------------------------

PROMETHEUS = shutil.which("prometheus")


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="the prometheus server is not installed (Debian package 'prometheus')")
def test_real_prometheus_scrapes_ttop_and_answers_promql(tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    _write_running(folder, "promrun", batch=30, total_batches=120)
    port, prom_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ttop\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % port)
    ttop = _ttop(str(folder), "--headless", "--serve", str(port), "-i", "0.5")
    prom = subprocess.Popen([PROMETHEUS, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % prom_port], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        query = urllib.parse.urlencode({"query": 'ttop_run_progress_ratio{run="promrun"}'})

        def progress():
            doc = json.loads(_get_json("http://127.0.0.1:%d/api/v1/query?%s" % (prom_port, query)))
            result = doc["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        assert _wait_for(progress, timeout=60, what="Prometheus to scrape ttop") == 0.25
    finally:
        _stop(prom)
        _stop(ttop)


def _get_json(url: str) -> str:
    with _open(url) as r:
        return r.read().decode()


EXAMPLES = ROOT / "examples" / "prometheus"


def test_grafana_dashboard_uses_only_series_the_endpoint_serves():
    import re

    dash = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    used = {name for e in exprs for name in re.findall(r"\bttop_[a-z_]+", e)}
    served = {f.name for f in SnapshotMetrics(lambda: None).families(_snap(_run("a", "RUNNING")))}
    assert used and used <= served, used - served


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package 'prometheus') is not installed")
def test_example_scrape_config_is_valid():
    r = subprocess.run(["promtool", "check", "config", str(EXAMPLES / "prometheus.yml")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# -- the page writer ---------------------------------------------------------------


def _reference(snap: Snapshot, clock: Any) -> bytes:
    """prometheus_client's own rendering of the same families."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotMetrics(lambda: snap, clock=clock))
    return generate_latest(registry)


def test_page_writer_writes_what_generate_latest_writes_byte_for_byte():
    from ttop.sinks.promtext import PageWriter

    odd = _run('we"ird\\na\nme', "RUNNING", epoch=2, total_epochs=4, rate=1.5, times={"run": {"remaining": 9.0}},
               metrics={"loss": 0.25, 'a"b\\c\nd': float("nan"), "big": 10 ** 400, "neg": float("-inf")})
    odd = record.replace(odd, resources=RunResources(rss_bytes=3 << 30, cpu_percent=1e-7, num_procs=1234567),
                              heartbeat_age=-0.5)  # numbers Go writes with exponents, and a tiny one
    snap = _snap(odd, _run("bad\udcff", "RUNNING", metrics={"lo\udcffss": 1.0}), _run("done", "FAILED", ended_at=990.0),
                 _run("x", "RUNNING", epoch=True, batch=-3))
    clock = lambda: 1000.0  # noqa: E731
    writer = PageWriter()
    assert writer.render(SnapshotMetrics(lambda: snap, clock=clock), snap) == _reference(snap, clock)
    # the next snapshot: the same runs (lines reused) and one changed
    changed = record.replace(snap.runs[3], data=dict(snap.runs[3].data, epoch=3), heartbeat_age=4.0)
    moved = [record.replace(r, heartbeat_age=7.5) for r in snap.runs[:3]]
    snap2 = record.replace(snap, seq=2, runs=tuple(moved) + (changed,))
    page = writer.render(SnapshotMetrics(lambda: snap2, clock=clock), snap2)
    assert (writer.reused, writer.written) == (3, 1)
    assert page == _reference(snap2, clock)
    assert b'ttop_run_heartbeat_age_seconds{host="h1",key="done",owner="",run="done"} 7.5' in page
    # nothing rewritten: the page's other columns are kept whole, the heartbeats written again
    snap3 = record.replace(snap2, seq=3, runs=tuple(record.replace(r, heartbeat_age=9.0) for r in snap2.runs))
    page = writer.render(SnapshotMetrics(lambda: snap3, clock=clock), snap3)
    assert (writer.reused, writer.written) == (4, 0) and page == _reference(snap3, clock)
    hb = [ln for ln in page.splitlines() if ln.startswith(b"ttop_run_heartbeat_age_seconds{")]
    assert len(hb) == 4 and all(ln.endswith(b"} 9.0") for ln in hb)


def test_two_runs_sharing_name_host_and_owner_are_two_label_sets(tmp_path):
    a, b = tmp_path / "a" / "progress", tmp_path / "b" / "progress"
    for d in (a, b):
        d.mkdir(parents=True)
    for d, key, epoch in ((a, "exp", 1), (b, "exp", 2), (a, "exp-copy", 3)):
        write_json_atomic(str(d / (key + ".json")), {"format": "ttop.progress/1", "run_name": "exp", "status": "RUNNING",
                                                     "updated_at": time.time(), "host": "node-1", "epoch": epoch})
    c = Collector([str(a), str(b)], gpu=False, tpu=False, notify=False)
    c.collect()
    page = MetricsPage(lambda: c.latest)
    text = page.page().decode()
    c.stop()
    seen = set()
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            ident = (smp.name, tuple(sorted(smp.labels.items())))
            assert ident not in seen, "duplicate label set %r" % (ident,)
            seen.add(ident)
    s = _samples(text)
    assert {_value(s, "ttop_run_epoch", run="exp", key=k) for k in ("a/exp", "b/exp", "a/exp-copy")} == {1, 2, 3}


def test_names_that_differ_only_where_the_page_cannot_show_them_are_still_two_label_sets(tmp_path):
    """File names are anyone's choice who can write the folder: a\\x01.json
    and a\\x02.json (or two names that are not UTF-8) were both key "a?",
    two runs under one label set; so were two metrics "x\\x01", "x\\x02" of
    one run."""
    folder = tmp_path / "progress"
    folder.mkdir()
    names = [b"a\x01", b"a\x02", b"a\xff", b"a\xfe", b"a?"]
    for raw in names:
        doc = {"format": "ttop.progress/1", "run_name": "same", "status": "RUNNING", "updated_at": time.time(),
               "metrics": {"x\x01": 1.0, "x\x02": 2.0}}
        with open(os.path.join(os.fsencode(str(folder)), raw + b".json"), "w") as f:
            json.dump(doc, f)
    c = Collector(str(folder), gpu=False, tpu=False, notify=False)
    c.collect()
    text = MetricsPage(lambda: c.latest).page().decode()
    c.stop()
    seen = set()
    statuses = 0
    for fam in text_string_to_metric_families(text):
        for smp in fam.samples:
            ident = (smp.name, tuple(sorted(smp.labels.items())))
            assert ident not in seen, "duplicate label set %r" % (ident,)
            seen.add(ident)
            if smp.name == "ttop_run_status" and smp.labels["status"] == "RUNNING":
                statuses += smp.value
            if smp.name == "ttop_metric":
                assert smp.value == 1.0  # the first of the two names the page shows alike
    assert statuses == len(names)


def test_an_idle_client_connection_is_closed(tmp_path, monkeypatch):
    # each connection holds a server thread: a local user opening idle
    # connections (a request never finished) made them pile up for ever
    from ttop.sinks import prometheus

    monkeypatch.setattr(prometheus, "CLIENT_TIMEOUT", 0.5)
    collector = Collector(str(tmp_path), interval=60, gpu=False, tpu=False)
    server, page = serve(collector, "127.0.0.1", 0)
    try:
        port = server.server_address[1]
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
        idle.settimeout(60)
        assert idle.recv(4096) == b""  # closed by the server
        idle.close()
        collector.collect()
        assert "ttop_snapshot_seq" in _get("http://127.0.0.1:%d/metrics" % port)
    finally:
        server.shutdown()
        server.server_close()
        page.stop()


def test_connections_beyond_the_limit_are_answered_at_once_without_a_thread(tmp_path, monkeypatch):
    """Each connection held a server thread until its request came (10 s
    between two reads): a local user sending a byte now and then on
    thousands of connections had root's ttop hold thousands of threads (the
    machine's PIDs and memory). Beyond MAX_CLIENTS at once a connection is
    answered 503 and closed by the accepting thread; once the others end, a
    scrape is served again."""
    import threading

    from conftest import wait_until
    from ttop.sinks import prometheus

    monkeypatch.setattr(prometheus, "CLIENT_TIMEOUT", 300.0)  # held until the test closes them
    monkeypatch.setattr(prometheus, "MAX_CLIENTS", 4, raising=False)

    def handlers():  # (named after their target only from Python 3.10: counted by it)
        return sum(1 for t in threading.enumerate()
                   if getattr(getattr(t, "_target", None), "__name__", "") == "process_request_thread")

    collector = Collector(str(tmp_path), interval=60, gpu=False, tpu=False)
    server, page = serve(collector, "127.0.0.1", 0)
    port = server.server_address[1]
    held = []
    try:
        base = handlers()
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
            held.append(s)
        wait_until(lambda: handlers() >= base + 4)
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(30)
        answer = extra.recv(4096)
        extra.close()
        assert answer.startswith(b"HTTP/1.0 503 "), answer
        assert handlers() == base + 4
        for s in held:
            s.close()
        held = []
        wait_until(lambda: handlers() == base)
        collector.collect()
        assert "ttop_snapshot_seq" in _get("http://127.0.0.1:%d/metrics" % port)
    finally:
        for s in held:
            s.close()
        server.shutdown()
        server.server_close()
        page.stop()


def test_a_connection_that_trickles_bytes_is_cut_after_its_time(tmp_path, monkeypatch):
    """A client sending a byte now and then is never idle for the
    per-read timeout: MAX_CLIENTS such connections held every slot for as
    long as they went on, and Prometheus got 503 for good. A connection
    lasts at most CLIENT_TIMEOUT seconds in all."""
    import threading

    from conftest import wait_until
    from ttop.sinks import prometheus

    monkeypatch.setattr(prometheus, "CLIENT_TIMEOUT", 1.0)
    monkeypatch.setattr(prometheus, "MAX_CLIENTS", 4, raising=False)
    collector = Collector(str(tmp_path), interval=60, gpu=False, tpu=False)
    server, page = serve(collector, "127.0.0.1", 0)
    port = server.server_address[1]
    stop = threading.Event()
    cut = []

    def trickle() -> None:
        s = socket.create_connection(("127.0.0.1", port))
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
            while not stop.wait(0.2):  # a header byte every 0.2 s, for ever
                s.sendall(b"X")
        except OSError:
            cut.append(s)  # the server cut it (reset or closed)
        finally:
            s.close()

    threads = [threading.Thread(target=trickle, daemon=True) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(cut) == 4, timeout=60)
        collector.collect()
        assert "ttop_snapshot_seq" in _get("http://127.0.0.1:%d/metrics" % port)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        server.shutdown()
        server.server_close()
        page.stop()


def test_long_names_of_a_run_put_a_bounded_page_on_the_endpoint(tmp_path):
    # anyone who can write the folder chooses the run, host and metric names:
    # a 130 kB file with a 100,000-character run name and 256 metrics put
    # 26 MB on the page (the name on each of its series), a 4 MiB one 1 GB
    from ttop.sinks.prometheus import MAX_LABEL

    folder = tmp_path / "progress"
    folder.mkdir()
    metrics = {"loss": 0.5, "m" * 50000 + "a": 1.0, "m" * 50000 + "b": 2.0}
    metrics.update(("c%03d" % i, float(i)) for i in range(300))
    _write_running(folder, "long", run_name="N" * 100000, host="H" * 100000, metrics=metrics)
    _write_running(folder, "K" * 200, run_name="k")
    port = _free_port()
    proc = _ttop(str(folder), "--headless", "--serve", str(port), "-i", "0.2", cwd=str(tmp_path))
    try:
        text = _wait_for(lambda: (lambda t: t if 'run="k"' in t and "ttop_metric" in t else None)(
            _get("http://127.0.0.1:%d/metrics" % port)), what="the endpoint")
    finally:
        _stop(proc)
    assert len(text) < 1000000
    fams = list(text_string_to_metric_families(text))  # still a page Prometheus reads
    values = [v for f in fams for smp in f.samples for v in smp.labels.values()]
    assert values and max(len(v) for v in values) <= MAX_LABEL
    s = _samples(text)
    cut = "N" * (MAX_LABEL - 1) + "\u2026"
    assert _value(s, "ttop_run_status", run=cut, status="RUNNING") == 1
    assert _value(s, "ttop_metric", key="long", name="loss") == 0.5
    # two names alike once cut: the first one only, as for names shown alike
    assert [dict(ls)["name"][-1:] for (n, ls) in s if n == "ttop_metric" and dict(ls)["name"].startswith("mmm")] == ["\u2026"]
    assert _value(s, "ttop_metric", key="long", name="m" * (MAX_LABEL - 1) + "\u2026") == 1.0
    assert _value(s, "ttop_run_status", run="k", key="K" * 200, status="RUNNING") == 1
    # a key longer than a label (a long folder tag before the name) is cut and
    # keeps its digest within the bound: two such keys are two label sets
    from ttop.sinks.prometheus import key_label

    a, b = key_label("T" * 100 + "/" + "K" * 200 + "a"), key_label("T" * 100 + "/" + "K" * 200 + "b")
    assert len(a) == len(b) == MAX_LABEL and a != b
