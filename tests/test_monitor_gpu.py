"""GPU memory in ``resources``, through NVML. There is no GPU here, so NVML is
the fake ``pynvml`` in tests/fakes replaying what an H200 really returned
(tests/fixtures/nvml-h200.json); everything else (the monitor process, its
thread, its file) is real."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

FAKES = ROOT / "tests" / "fakes"
RECORDED_BYTES = 3869245440  # what the recorded CUDA process (PID 489) held

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    folder, mode = sys.argv[1], sys.argv[2]
    if mode in ("mine", "lost"):
        os.environ["TTOP_FAKE_NVML_PID_MAP"] = "489:%d" % os.getpid()  # the recorded process is this one
    from ttop import TrainingMonitor

    def resources(m, pred):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with open(m.path) as f:
                    r = json.load(f).get("resources")
            except (OSError, ValueError):
                r = None
            if r and pred(r):
                return r
            time.sleep(0.02)
        raise SystemExit("timeout waiting for resources")

    with TrainingMonitor(folder=folder, run_name=mode, interval=0.05, resource_interval=0.05) as m:
        r = resources(m, lambda r: True)
        print(json.dumps(r["gpu_memory_bytes"]), flush=True)
        if mode == "lost":
            os.environ["TTOP_FAKE_NVML_PHASE"] = "lost"  # the GPU falls off the bus
            t = time.time()
            r = resources(m, lambda r: r["sampled_at"] > t + 0.2)
            print(json.dumps(r["gpu_memory_bytes"]), flush=True)
            time.sleep(0.3)
        import pynvml
        print("nvmlInit calls", pynvml.init_calls, flush=True)
    """
)


@pytest.fixture
def run(tmp_path, progress_dir):
    fixture = json.loads((ROOT / "tests" / "fixtures" / "nvml-h200.json").read_text())
    # the recording, plus one injected failure: the GPU lost while the run goes on
    fixture["calls"]["lost:nvmlDeviceGetComputeRunningProcesses[0]"] = [{"error": "NVMLError_GpuIsLost", "msg": "GPU is lost"}]
    fixture_path = tmp_path / "nvml.json"
    fixture_path.write_text(json.dumps(fixture))
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    def _run(mode, **extra_env):
        env = dict(os.environ, PYTHONPATH="%s:%s" % (FAKES, ROOT), TTOP_FAKE_NVML_FIXTURE=str(fixture_path))
        env["TTOP_FAKE_NVML_PHASE"] = "busy"
        env.update(extra_env)
        r = subprocess.run(
            [sys.executable, str(script), str(progress_dir), mode], env=env, capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines(), r.stderr

    return _run


def test_gpu_memory_of_its_own_process(run):
    out, err = run("mine")
    assert out == [str(RECORDED_BYTES), "nvmlInit calls 1"] and err == ""


def test_gpu_memory_of_other_processes_is_not_attributed(run):
    out, err = run("other")  # PID 489 is not in this process tree
    assert out == ["0", "nvmlInit calls 1"] and err == ""


def test_no_driver_means_null_quietly_and_one_init(run):
    out, err = run("nodriver", TTOP_FAKE_NVML_INIT_ERROR="DriverNotLoaded")
    assert out == ["null", "nvmlInit calls 1"] and err == ""


def test_nvml_error_later_disables_gpu_sampling_with_one_line(run):
    out, err = run("lost")
    assert out == [str(RECORDED_BYTES), "null", "nvmlInit calls 1"]
    assert err.splitlines() == ["ttop: GPU memory sampling disabled after an NVML error: GPU is lost"]
