"""snapshot_to_dict: the documented, stable keys of ``--once --json``."""
from __future__ import annotations

import json
import re
from pathlib import Path

from ttop.collect.snapshot import (
    Budgets,
    GpuDevice,
    HostInfo,
    ProcInfo,
    RunResources,
    RunSnapshot,
    SkippedFile,
    Snapshot,
    ThreadInfo,
    TpuChip,
)
from ttop.sinks import jsonout
from ttop.sinks.jsonout import snapshot_to_dict

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

# The contract, spelled out here on purpose: changing a key must fail a test.
EXPECTED_TOP = [
    "format", "seq", "taken_at", "folder", "folder_error", "folders", "cycle_seconds", "host", "budgets",
    "gpus", "gpu_error", "tpus", "tpu_error", "skipped", "notices", "counts", "metric_columns", "columns", "health_counts",
    "cost_total", "hosts", "runs",
]
EXPECTED_RUN = [
    "key", "path", "folder", "run_name", "status", "reported_status", "status_inferred", "status_reason",
    "host", "local", "alive", "stale", "stale_reason", "file_error", "dropped_keys", "pid",
    "pid_create_time", "heartbeat_age", "started_at", "updated_at", "ended_at", "phase", "error",
    "epoch", "total_epochs", "batch", "total_batches", "train_batch", "train_total_batches",
    "val_batch", "val_total_batches", "rate", "times", "metrics", "metric_trends", "variables", "control_seq",
    "control_error", "logs", "links", "gpu_note", "owner_uid", "owner", "ownership_note",
    "health", "health_reason", "gpu_utilization", "cost", "cost_projected", "resources", "processes", "ranks",
]
EXPECTED_PROCESS = [
    "pid", "ppid", "name", "create_time", "depth", "status", "cmdline", "cpu_percent", "rss_bytes",
    "num_threads", "gpu_memory_bytes", "gpu_indices", "tpu_memory_bytes", "error", "threads",
]


def full_snapshot():
    thread = ThreadInfo(tid=11, user_time=1.5, system_time=0.25, cpu_percent=3.0)
    proc = ProcInfo(pid=10, ppid=1, name="python", create_time=123.5, depth=0, status="running", cmdline="python train.py",
                    cpu_percent=99.5, rss_bytes=2 << 30, num_threads=3, gpu_memory_bytes=1 << 30, gpu_indices=(0,), threads=(thread,))
    run = RunSnapshot(
        key="r1", path="/p/r1.json",
        data={"format": "ttop.progress/1", "run_name": "r1 \u4e2d", "status": "RUNNING", "updated_at": 5.0, "phase": "train",
              "epoch": 2, "total_epochs": 10, "batch": 7, "total_batches": 100, "rate": 3.5,
              "metrics": {"loss": "NaN", "acc": 0.5}, "variables": {"lr": 0.1},
              "times": {"run": {"elapsed": 10.0, "remaining": None, "total": None}}, "history": {"loss": [1, 2]}},
        run_name="r1 \u4e2d", status="KILLED", reported_status="RUNNING", status_inferred=True, status_reason="process 10 is gone",
        host="box", alive=False, pid=10, pid_create_time=123.5, heartbeat_age=1.0,
        resources=RunResources(cpu_percent=float("inf"), rss_bytes=5, num_procs=1, num_threads=3, source="local"),
        processes=(proc,),
    )
    return Snapshot(
        seq=3, taken_at=1700000000.5, folder="/p", runs=(run,), skipped=(SkippedFile("bad.json", "invalid JSON"),),
        host=HostInfo(hostname="box", cpu_count=2, cpu_percent=12.0, mem_total=100, mem_used=50, load_avg=(0.1, 0.2, 0.3)),
        gpus=(GpuDevice(index=0, name="H200", memory_used=1, memory_total=2, errors={"fan": "NotSupported"}),),
        tpus=(TpuChip(index=0, device_id=7, memory_used=1, memory_total=2, duty_cycle=50.0),),
        budgets=Budgets(cpus=2.0, ram_bytes=100, gpu_bytes=None),
    )


def test_metric_columns_and_trends_match_the_table():
    d = snapshot_to_dict(full_snapshot())
    assert d["metric_columns"] == ["loss", "acc"]
    # loss is NaN: no trend; acc has no history
    assert d["runs"][0]["metric_trends"] == {"loss": None, "acc": None}


def test_keys_are_exactly_the_documented_ones():
    d = snapshot_to_dict(full_snapshot())
    assert list(d) == EXPECTED_TOP
    assert d["format"] == "ttop.snapshot/1"
    run = d["runs"][0]
    assert list(run) == EXPECTED_RUN
    assert list(run["resources"]) == list(jsonout.RESOURCE_KEYS) == [
        "cpu_percent", "rss_bytes", "gpu_memory_bytes", "tpu_memory_bytes", "num_procs", "num_threads", "sampled_at", "source",
        "ram_measure", "ram_sampled_at"]
    assert list(run["processes"][0]) == EXPECTED_PROCESS
    assert list(run["processes"][0]["threads"][0]) == ["tid", "name", "user_time", "system_time", "cpu_percent"]
    assert list(d["host"]) == ["hostname", "cpu_count", "cpu_percent", "mem_total", "mem_used", "load_avg"]
    assert list(d["budgets"]) == ["cpus", "ram_bytes", "gpu_bytes"]
    assert list(d["gpus"][0]) == list(jsonout.GPU_KEYS)
    assert list(d["tpus"][0]) == ["index", "device_id", "memory_used", "memory_total", "duty_cycle"]
    assert d["skipped"] == [{"name": "bad.json", "reason": "invalid JSON"}]


def test_values_and_strict_json():
    d = snapshot_to_dict(full_snapshot())
    text = json.dumps(d, allow_nan=False)  # raises on NaN/Infinity floats
    back = json.loads(text)
    run = back["runs"][0]
    assert run["status"] == "KILLED" and run["status_inferred"] is True and run["reported_status"] == "RUNNING"
    assert run["metrics"] == {"loss": "NaN", "acc": 0.5}
    assert run["resources"]["cpu_percent"] == "Infinity"
    assert run["epoch"] == 2 and run["total_batches"] == 100 and run["rate"] == 3.5
    assert run["processes"][0]["gpu_indices"] == [0]
    assert run["processes"][0]["threads"][0]["tid"] == 11
    assert "history" not in run
    assert back["counts"] == {"KILLED": 1}
    assert back["host"]["load_avg"] == [0.1, 0.2, 0.3]
    assert back["gpus"][0]["errors"] == {"fan": "NotSupported"}
    # ASCII-only output survives any locale and round-trips the name
    assert jsonout.dumps_snapshot(full_snapshot()).isascii()
    assert json.loads(jsonout.dumps_snapshot(full_snapshot()))["runs"][0]["run_name"] == "r1 \u4e2d"


def test_missing_everything_still_has_every_key():
    bare = RunSnapshot(key="k", path="/p/k.json", data={}, run_name="k", status="RUNNING", reported_status="RUNNING")
    d = snapshot_to_dict(Snapshot(seq=1, taken_at=0.0, folder="/p", runs=(bare,)))
    assert list(d) == EXPECTED_TOP and d["host"] is None and d["budgets"] is None
    run = d["runs"][0]
    assert list(run) == EXPECTED_RUN
    assert run["metrics"] == {} and run["times"] == {} and run["epoch"] is None and run["processes"] == []
    json.dumps(d, allow_nan=False)


def test_odd_file_values_never_break_the_output():
    data = {"metrics": {"x": float("-inf"), 3: [float("nan")]}, "variables": ["not", "a", "dict"], "epoch": object()}
    r = RunSnapshot(key="k", path="/p/k.json", data=data, run_name="k", status="RUNNING", reported_status="RUNNING")
    d = snapshot_to_dict(Snapshot(seq=1, taken_at=0.0, folder="/p", runs=(r,)))
    run = json.loads(json.dumps(d, allow_nan=False))["runs"][0]
    assert run["metrics"] == {"x": "-Infinity", "3": ["NaN"]}
    assert run["variables"] == {}
    assert isinstance(run["epoch"], str)


def test_every_key_is_documented():
    doc = DOC.read_text(encoding="utf-8")
    section = doc[doc.index("## `--once --json`"):]
    documented = set()
    for m in re.finditer(r"^\s*[|-]\s*(.*)$", section, re.M):
        first_cell = re.split(r" \u2014 |\s\|", m.group(1))[0]  # "- `a`, `b` — text" or "| `a` | text |"
        documented.update(re.findall(r"`([a-z_]+)`", first_cell))
    everything = (set(EXPECTED_TOP) | set(EXPECTED_RUN) | set(EXPECTED_PROCESS) | set(jsonout.RESOURCE_KEYS)
                  | set(jsonout.HOST_KEYS) | set(jsonout.BUDGET_KEYS) | set(jsonout.GPU_KEYS) | set(jsonout.TPU_KEYS)
                  | set(jsonout.THREAD_KEYS) | set(jsonout.SKIPPED_KEYS) | set(jsonout.FLEET_KEYS)
                  | set(jsonout.FOLDER_KEYS))
    missing = sorted(everything - documented)
    assert not missing, "keys not documented in docs/cli.md: %s" % missing


def test_health_verdict_and_counts():
    from ttop import record

    snap = full_snapshot()
    run = record.replace(snap.runs[0], status="RUNNING", health="CRIT", health_reason="loss is NaN",
                              gpu_utilization=12.0)
    other = record.replace(run, key="r2", health="OK", health_reason=None)
    d = snapshot_to_dict(record.replace(snap, runs=(run, other)))
    assert d["health_counts"] == {"CRIT": 1, "OK": 1}
    assert (d["runs"][0]["health"], d["runs"][0]["health_reason"], d["runs"][0]["gpu_utilization"]) == (
        "CRIT", "loss is NaN", 12.0)
    assert d["runs"][1]["health_reason"] is None
