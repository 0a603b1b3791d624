"""GPUs through NVML: the recorded H200 replayed through tests/fakes/pynvml.py,
the real pynvml on this driverless machine, and PID-namespace honesty."""
from __future__ import annotations

import ctypes.util
import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from conftest import wait_until
from ttop.collect import Collector
from ttop.collect import gpu as gpu_mod
from ttop.collect.gpu import PIDNS_NOTE, NvmlSource
from ttop.progress import write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FAKES = os.path.join(HERE, "fakes")
SLEEPER = [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'rb'); time.sleep(120)"]

H200_TOTAL = 150754820096
BUSY_PROC_BYTES = 3869245440


@pytest.fixture
def fake_nvml(monkeypatch):
    """Import tests/fakes/pynvml.py as ``pynvml`` (a fresh copy per test)."""
    for var in ("TTOP_FAKE_NVML_PHASE", "TTOP_FAKE_NVML_PID_MAP", "TTOP_FAKE_NVML_PROCS",
                "TTOP_FAKE_NVML_INIT_ERROR", "TTOP_FAKE_NVML_FIXTURE"):
        monkeypatch.delenv(var, raising=False)
    saved = sys.modules.pop("pynvml", None)
    sys.path.insert(0, FAKES)
    try:
        import pynvml

        assert pynvml.__file__.startswith(FAKES)
        yield pynvml
    finally:
        sys.path.remove(FAKES)
        sys.modules.pop("pynvml", None)
        if saved is not None:
            sys.modules["pynvml"] = saved


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def doc(name, pid, create_time, **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": "RUNNING", "updated_at": time.time(),
         "pid": pid, "pid_create_time": create_time}
    d.update(extra)
    return d


def gpu_process(spawn, tmp_path, index=0):
    """A real process holding ``<tmp>/dev/nvidia<index>`` open, as a CUDA process
    holds /dev/nvidiaN."""
    devdir = tmp_path / "dev"
    devdir.mkdir(exist_ok=True)
    dev = devdir / ("nvidia%d" % index)
    dev.write_bytes(b"")
    p = spawn(SLEEPER + [str(dev)])
    wait_until(lambda: any(f.path == str(dev) for f in psutil.Process(p.pid).open_files()), timeout=60)
    return p, psutil.Process(p.pid).create_time(), str(devdir / "nvidia")


def test_idle_device_from_the_recording(fake_nvml, progress_dir):
    c = Collector(str(progress_dir), gpu=NvmlSource(), tpu=False)
    s = c.collect()
    assert s.gpu_error is None
    (g,) = s.gpus
    assert g.index == 0 and g.name == "NVIDIA H200"
    assert g.uuid == "GPU-6b3a7fdf-4d5c-fd4f-68b1-48b8e7a3cbca"
    assert g.memory_used == 644939776 and g.memory_total == H200_TOTAL
    assert g.utilization == 0 and g.memory_utilization == 0
    assert g.temperature == 30 and g.power_mw == 77143 and g.power_limit_mw == 700000
    assert dict(g.errors) == {"fan_speed": "Not Supported"}  # one reason per field
    assert s.budgets.gpu_bytes == H200_TOTAL  # default GPU budget: the devices' memory
    assert s.notices == ()


def test_busy_process_memory_is_attributed_to_its_run(fake_nvml, spawn, tmp_path, progress_dir, monkeypatch):
    p, ct, prefix = gpu_process(spawn, tmp_path)
    write_json_atomic(str(progress_dir / "train.json"), doc("train", p.pid, ct))
    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "busy")
    monkeypatch.setenv("TTOP_FAKE_NVML_PID_MAP", "489:%d" % p.pid)
    c = Collector(str(progress_dir), gpu=NvmlSource(device_prefix=prefix), tpu=False)
    s = c.collect()
    (g,) = s.gpus
    assert g.memory_used == 4523425792 and g.utilization == 100 and g.temperature == 54
    r = s.run("train")
    assert r.alive and r.gpu_note is None and s.notices == ()
    assert r.processes[0].gpu_memory_bytes == BUSY_PROC_BYTES
    assert r.processes[0].gpu_indices == (0,)
    assert r.resources.gpu_memory_bytes == BUSY_PROC_BYTES
    # the process releases the GPU: nothing attributed any more
    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "after")
    s = c.collect()
    assert s.gpus[0].memory_used == 644939776 and s.gpus[0].temperature == 34
    r = s.run("train")
    assert r.processes[0].gpu_memory_bytes is None and r.resources.gpu_memory_bytes is None


def test_foreign_namespace_pids_are_not_attributed(fake_nvml, spawn, tmp_path, progress_dir, monkeypatch):
    """The pidns recording: NVML says PID 2 (namespace-local). Here PID 2 is an
    unrelated process with no GPU open, so nothing may be attributed."""
    p, ct, prefix = gpu_process(spawn, tmp_path)
    write_json_atomic(str(progress_dir / "train.json"), doc("train", p.pid, ct))
    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "busy")
    monkeypatch.setenv("TTOP_FAKE_NVML_PROCS", "pidns")
    c = Collector(str(progress_dir), gpu=NvmlSource(device_prefix=prefix), tpu=False)
    s = c.collect()
    assert PIDNS_NOTE in s.notices
    r = s.run("train")
    assert r.gpu_note == PIDNS_NOTE
    assert r.resources.gpu_memory_bytes is None and r.processes[0].gpu_memory_bytes is None
    assert r.processes[0].gpu_indices == (0,)  # still known from its open device file


def test_pid_absent_here_or_without_gpu_files_is_not_attributed(
        fake_nvml, spawn, tmp_path, progress_dir, monkeypatch):
    p, ct, prefix = gpu_process(spawn, tmp_path)
    plain = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    plain_ct = wait_until(lambda: psutil.Process(plain.pid).create_time(), timeout=60)
    write_json_atomic(str(progress_dir / "plain.json"), doc("plain", plain.pid, plain_ct))
    monkeypatch.setenv("TTOP_FAKE_NVML_PHASE", "busy")
    # a host PID that does not exist in this namespace
    absent = max(psutil.pids()) + 100000
    monkeypatch.setenv("TTOP_FAKE_NVML_PID_MAP", "489:%d" % absent)
    c = Collector(str(progress_dir), gpu=NvmlSource(device_prefix=prefix), tpu=False)
    s = c.collect()
    assert s.notices == (PIDNS_NOTE,)
    # a PID that exists but has no GPU device open: the coincidence is refused
    monkeypatch.setenv("TTOP_FAKE_NVML_PID_MAP", "489:%d" % plain.pid)
    s = c.collect()
    r = s.run("plain")
    assert s.notices == (PIDNS_NOTE,) and r.gpu_note == PIDNS_NOTE
    assert r.resources.gpu_memory_bytes is None and r.processes[0].gpu_indices == ()


def test_check_pid_namespace_tolerates_unreadable_fds():
    rows = {10: (1, 5.0, "x", "running")}
    assert gpu_mod.check_pid_namespace({10: 1}, rows, lambda pid, ct: None) == (True, None)
    assert gpu_mod.check_pid_namespace({10: 1}, rows, lambda pid, ct: ()) == (False, PIDNS_NOTE)
    assert gpu_mod.check_pid_namespace({11: 1}, rows, lambda pid, ct: (0,)) == (False, PIDNS_NOTE)
    assert gpu_mod.check_pid_namespace({}, rows) == (True, None)


def test_not_supported_is_asked_once_slow_values_cached(fake_nvml):
    clock = Clock()
    src = NvmlSource(clock=clock)
    for _ in range(20):
        s = src.sample()
        clock.t += 2.0
    assert s.devices[0].errors == {"fan_speed": "Not Supported"}
    calls = fake_nvml.calls
    assert calls["nvmlDeviceGetFanSpeed"] == 1
    assert calls["nvmlDeviceGetName"] == 1 and calls["nvmlDeviceGetUUID"] == 1
    assert calls["nvmlDeviceGetMemoryInfo"] == 20
    assert calls["nvmlDeviceGetEnforcedPowerLimit"] == 2  # TTL 30 s over 40 s
    assert "nvmlDeviceGetProcessUtilization" not in calls  # ~1.9 ms and useless when idle


def test_other_errors_are_per_field_and_retried(fake_nvml, monkeypatch):
    state = {"n": 0}

    def lost(handle, sensor):
        state["n"] += 1
        raise fake_nvml.NVMLError(fake_nvml.NVML_ERROR_GPU_IS_LOST)

    monkeypatch.setattr(fake_nvml, "nvmlDeviceGetTemperature", lost)
    src = NvmlSource()
    g = src.sample().devices[0]
    assert g.temperature is None and g.errors["temperature"] == "GPU is lost"
    assert g.memory_total == H200_TOTAL  # the other fields are unharmed
    src.sample()
    assert state["n"] == 2


def test_init_failure_is_one_reason_and_no_retry_storm(fake_nvml, monkeypatch, progress_dir):
    monkeypatch.setenv("TTOP_FAKE_NVML_INIT_ERROR", "DriverNotLoaded")
    clock = Clock()
    src = NvmlSource(clock=clock)
    c = Collector(str(progress_dir), gpu=src, tpu=False)
    for _ in range(50):
        s = c.collect()
        clock.t += 1.0
    assert s.gpu_error == "NVML not available: Driver Not Loaded" and s.gpus == ()
    assert fake_nvml.init_calls == 1
    clock.t += gpu_mod.RETRY_SECONDS
    c.collect()
    assert fake_nvml.init_calls == 2
    monkeypatch.delenv("TTOP_FAKE_NVML_INIT_ERROR")  # the driver came back
    clock.t += gpu_mod.RETRY_SECONDS
    s = c.collect()
    assert fake_nvml.init_calls == 3 and s.gpu_error is None and s.gpus[0].name == "NVIDIA H200"


def test_real_pynvml_without_a_driver(progress_dir):
    """The real nvidia-ml-py is installed, but this machine has no driver."""
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this machine has libnvidia-ml: NVML may really work here")
    sys.modules.pop("pynvml", None)
    src = NvmlSource()
    s = Collector(str(progress_dir), gpu=src, tpu=False).collect()
    import pynvml

    assert not pynvml.__file__.startswith(FAKES)
    assert s.gpu_error == "NVML not available: NVML Shared Library Not Found"
    assert s.gpus == () and s.budgets.gpu_bytes is None
    assert src.init_attempts == 1
    src.sample()
    assert src.init_attempts == 1


def test_pynvml_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    s = NvmlSource().sample()
    assert s.error == "NVML not available: pynvml (nvidia-ml-py) is not installed"


def test_fake_works_in_a_subprocess_and_ttop_import_stays_light(tmp_path, progress_dir):
    code = (
        "import sys, json\n"
        "import ttop, ttop.collect\n"
        "from ttop.collect import Collector\n"
        "c = Collector(sys.argv[1], tpu=False)\n"
        "light = 'pynvml' not in sys.modules\n"
        "s = c.collect()\n"
        "import pynvml\n"
        "print(json.dumps({'light': light, 'fake': pynvml.__file__, 'err': s.gpu_error,\n"
        "                  'used': [g.memory_used for g in s.gpus]}))\n"
    )
    env = dict(os.environ, PYTHONPATH=FAKES + os.pathsep + ROOT, TTOP_FAKE_NVML_PHASE="busy")
    out = subprocess.run([sys.executable, "-c", code, str(progress_dir)], env=env, capture_output=True,
                         timeout=60, check=True).stdout
    got = json.loads(out)
    assert got["light"] is True  # neither `import ttop` nor Collector() imports pynvml
    assert got["fake"].startswith(FAKES) and got["err"] is None and got["used"] == [4523425792]


def test_nvidia_device_indices_of_a_real_process(spawn, tmp_path):
    p, ct, prefix = gpu_process(spawn, tmp_path, index=3)
    assert gpu_mod.nvidia_device_indices(p.pid, prefix) == (3,)
    assert gpu_mod.nvidia_device_indices(os.getpid(), prefix) == ()
    assert gpu_mod.nvidia_device_indices(max(psutil.pids()) + 100000, prefix) is None


def test_fake_errors_match_the_real_module(fake_nvml):
    sys.path.remove(FAKES)
    saved = sys.modules.pop("pynvml")
    try:
        import pynvml as real

        assert not real.__file__.startswith(FAKES)
        for name in ("NotSupported", "NotFound", "LibraryNotFound", "DriverNotLoaded", "Uninitialized",
                     "NoPermission", "GpuIsLost"):
            fake_cls = getattr(fake_nvml, "NVMLError_" + name)
            real_cls = getattr(real, "NVMLError_" + name)
            assert fake_cls().value == real_cls(getattr(real, "NVML_ERROR_" + _const(name))).value
            assert str(fake_cls()) == str(real.NVMLError(fake_cls().value))
            assert isinstance(fake_nvml.NVMLError(fake_cls().value), fake_cls)
        assert fake_nvml.NVML_TEMPERATURE_GPU == real.NVML_TEMPERATURE_GPU
    finally:
        sys.modules["pynvml"] = saved
        sys.path.insert(0, FAKES)


def _const(name):
    return {"NotSupported": "NOT_SUPPORTED", "NotFound": "NOT_FOUND", "LibraryNotFound": "LIBRARY_NOT_FOUND",
            "DriverNotLoaded": "DRIVER_NOT_LOADED", "Uninitialized": "UNINITIALIZED",
            "NoPermission": "NO_PERMISSION", "GpuIsLost": "GPU_IS_LOST"}[name]
