"""TPUs through libtpuinfo, for real: a C library with the same ABI, built with gcc."""
from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import time

import psutil
import pytest

from conftest import wait_until
from ttop.collect import Collector, TpuChip
from ttop.collect import tpu as tpu_mod
from ttop.collect.tpu import TpuInfoSource
from ttop.progress import write_json_atomic

HERE = os.path.dirname(os.path.abspath(__file__))
STUB_C = os.path.join(HERE, "fakes", "tpuinfo_stub.c")
GiB = 1 << 30


def build(tmp_dir, source, name):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot build the libtpuinfo stand-in")
    out = os.path.join(str(tmp_dir), name)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", out, source], check=True, timeout=120,
                   capture_output=True)
    return out


@pytest.fixture(scope="module")
def stub_lib(tmp_path_factory):
    return build(tmp_path_factory.mktemp("tpu"), STUB_C, "libtpuinfo.so")


@pytest.fixture
def state(tmp_path, monkeypatch):
    path = tmp_path / "tpu-state.txt"
    monkeypatch.setenv("TTOP_TPU_STUB_STATE", str(path))

    def set_state(chips, metrics_rc=0, pids_rc=0, count=None):
        lines = ["%d %d %d" % (len(chips) if count is None else count, metrics_rc, pids_rc)]
        lines += ["%d %d %d %f %d" % c for c in chips]
        path.write_text("\n".join(lines) + "\n")

    return set_state


def test_chips_and_per_process_hbm_mapped_onto_a_run(stub_lib, state, spawn, progress_dir):
    p = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    write_json_atomic(str(progress_dir / "tpujob.json"),
                      {"format": "ttop.progress/1", "run_name": "tpujob", "status": "RUNNING",
                       "updated_at": time.time(), "pid": p.pid, "pid_create_time": ct})
    other = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    wait_until(lambda: psutil.Process(other.pid).create_time(), timeout=60)
    # chips 0 and 1 held by the run's process, chip 2 by a process of no run, chip 3 idle
    state([(100, 3 * GiB, 16 * GiB, 87.5, p.pid), (101, 2 * GiB, 16 * GiB, 80.0, p.pid),
           (102, 1 * GiB, 16 * GiB, 10.0, other.pid), (103, 0, 16 * GiB, 0.0, 0)])
    c = Collector(str(progress_dir), gpu=False, tpu=TpuInfoSource(stub_lib))
    s = c.collect()
    assert s.tpu_error is None
    assert s.tpus[0] == TpuChip(index=0, device_id=100, memory_used=3 * GiB, memory_total=16 * GiB,
                                duty_cycle=87.5)
    assert [t.device_id for t in s.tpus] == [100, 101, 102, 103]
    assert s.tpus[3].duty_cycle == 0.0 and s.tpus[3].memory_used == 0
    assert s.notices == ()
    r = s.run("tpujob")
    assert r.processes[0].tpu_memory_bytes == 5 * GiB
    assert r.resources.tpu_memory_bytes == 5 * GiB
    # values change between cycles; the process lets go of chip 1
    state([(100, 4 * GiB, 16 * GiB, 99.0, p.pid), (101, 0, 16 * GiB, 0.0, 0)])
    s = c.collect()
    assert [t.memory_used for t in s.tpus] == [4 * GiB, 0]
    assert s.run("tpujob").resources.tpu_memory_bytes == 4 * GiB


def test_library_errors_become_tpu_error(stub_lib, state, progress_dir):
    src = TpuInfoSource(stub_lib)
    state([], count=-3)
    s = src.sample()
    assert s.error == "libtpuinfo error -3 (tpu_chip_count)" and s.chips == []
    state([(1, 1, 2, 3.0, 0)], metrics_rc=-5)
    assert src.sample().error == "libtpuinfo error -5 (tpu_metrics)"
    state([(1, GiB, 2 * GiB, 3.0, os.getpid())], pids_rc=-2)
    s = src.sample()
    assert s.chips[0].memory_used == GiB and s.pid_memory == {}
    assert s.error == "libtpuinfo error -2 (tpu_pids): per-process TPU memory unavailable"
    state([])
    s = src.sample()
    assert s.error is None and s.chips == []
    snap = Collector(str(progress_dir), gpu=False, tpu=src).collect()
    assert snap.tpus == () and snap.tpu_error is None


def test_library_path_from_environment(stub_lib, state, monkeypatch, progress_dir):
    state([(7, GiB, 8 * GiB, 50.0, 0)])
    monkeypatch.setenv("TTOP_LIBTPUINFO", stub_lib)
    s = Collector(str(progress_dir), gpu=False).collect()  # the default TPU source
    assert s.tpu_error is None and [t.device_id for t in s.tpus] == [7]


def test_missing_library(monkeypatch, progress_dir):
    monkeypatch.delenv("TTOP_LIBTPUINFO", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    s = Collector(str(progress_dir), gpu=False).collect()
    assert s.tpu_error == "libtpuinfo not found" and s.tpus == ()
    monkeypatch.setenv("TTOP_LIBTPUINFO", "/nonexistent/libtpuinfo.so")
    err = TpuInfoSource().sample().error
    assert err.startswith("libtpuinfo not found: cannot load /nonexistent/libtpuinfo.so")


def test_missing_library_is_not_searched_every_cycle(monkeypatch):
    looked = []
    monkeypatch.delenv("TTOP_LIBTPUINFO", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: looked.append(name))
    now = [0.0]
    src = TpuInfoSource(clock=lambda: now[0])
    for _ in range(30):
        src.sample()
        now[0] += 1.0
    assert looked == ["tpuinfo"]
    # find_library runs programs: its answer is kept longer than the retry interval
    now[0] += tpu_mod.RETRY_SECONDS
    src.sample()
    assert looked == ["tpuinfo"]
    monkeypatch.setenv("TTOP_LIBTPUINFO", "/nonexistent/libtpuinfo.so")  # a path set meanwhile is tried
    now[0] += tpu_mod.RETRY_SECONDS
    assert src.sample().error.startswith("libtpuinfo not found: cannot load /nonexistent/libtpuinfo.so")
    monkeypatch.delenv("TTOP_LIBTPUINFO")
    now[0] += tpu_mod.FIND_SECONDS
    src.sample()
    assert looked == ["tpuinfo", "tpuinfo"]


def test_library_without_the_abi(tmp_path):
    src = tmp_path / "partial.c"
    src.write_text("int tpu_chip_count(void) { return 1; }\n")
    lib = build(tmp_path, str(src), "libpartial.so")
    err = TpuInfoSource(lib).sample().error
    assert err.startswith("libtpuinfo at %s is incomplete" % lib) and "tpu_pids" in err


def test_tpu_pids_of_another_namespace_are_not_attributed(stub_lib, state, spawn, progress_dir):
    from ttop.collect.collector import TPU_PIDNS_NOTE

    p = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    ct = wait_until(lambda: psutil.Process(p.pid).create_time(), timeout=60)
    write_json_atomic(str(progress_dir / "tpujob.json"),
                      {"format": "ttop.progress/1", "run_name": "tpujob", "status": "RUNNING",
                       "updated_at": time.time(), "pid": p.pid, "pid_create_time": ct})
    absent = max(psutil.pids()) + 100000  # e.g. a host PID seen from inside a container
    state([(100, 3 * GiB, 16 * GiB, 87.5, p.pid), (101, 2 * GiB, 16 * GiB, 80.0, absent)])
    s = Collector(str(progress_dir), gpu=False, tpu=TpuInfoSource(stub_lib)).collect()
    assert s.notices == (TPU_PIDNS_NOTE,)
    assert len(s.tpus) == 2 and s.run("tpujob").resources.tpu_memory_bytes is None
