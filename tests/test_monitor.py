"""TrainingMonitor in-process: the file it writes, phases and epochs, track(),
metric conversion, run-name sanitising, control edits, folder errors.

Every test works on a real folder and reads the real file the monitor's
background thread wrote."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, wait_until
from ttop import progress as P
from ttop.monitor import TrainingMonitor


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    # strict JSON: no NaN / Infinity literals
    return json.loads(raw, parse_constant=lambda c: pytest.fail("non-strict JSON constant %s" % c))


@pytest.fixture
def make(progress_dir):
    """TrainingMonitor factory (fast interval, no signal hooks); every monitor
    is ended at teardown so no thread outlives the test."""
    made = []

    def _make(**kw):
        kw.setdefault("folder", str(progress_dir))
        kw.setdefault("run_name", "run")
        kw.setdefault("interval", 0.05)
        kw.setdefault("handle_signals", False)
        kw.setdefault("gpu", False)
        m = TrainingMonitor(**kw)
        made.append(m)
        return m

    yield _make
    for m in made:
        if m.status == "RUNNING" and m._started:
            m.set_canceled("test teardown")


def field(m, key, pred, timeout=60):
    """Wait until the file's ``key`` satisfies ``pred``; return the data."""

    def check():
        try:
            d = read(m.path)
        except (OSError, ValueError):
            return None
        return d if pred(d.get(key)) else None

    return wait_until(check, timeout=timeout)


# ---------------------------------------------------------------------------
# the seed API


def test_seed_api_running_then_finished(progress_dir):
    out = progress_dir / "tutorial.json"
    monitor = TrainingMonitor(output_file=str(out), interval=0.05, handle_signals=False, gpu=False)
    assert monitor.run_name == "tutorial" and monitor.path == str(out)
    monitor.track_variables({"lr": 0.01, "batch_size": 32})
    assert not out.exists()  # nothing before start_monitoring
    monitor.start_monitoring()
    d = read(out)  # written synchronously by start_monitoring
    assert d["format"] == "ttop.progress/1" and d["status"] == "RUNNING" and d["run_name"] == "tutorial"
    assert d["pid"] == os.getpid() and d["host"] == os.uname().nodename
    assert d["variables"] == {"lr": 0.01, "batch_size": 32}
    assert d["variable_types"] == {"lr": "float", "batch_size": "int"}
    monitor.start_phase("train")
    for i in range(25):
        monitor.start_batch()
        monitor.update_metrics(loss=1.0 / (i + 1))
    d = field(monitor, "batch", lambda b: b == 25)
    assert d["phase"] == "train" and d["train_batch"] == 25 and d["metrics"] == {"loss": 0.04}
    monitor.end_phase()
    monitor.set_finished()
    d = read(out)  # written before set_finished returned
    assert d["status"] == "FINISHED" and d["ended_at"] >= d["started_at"]
    assert d["train_batch"] == 25 and d["phase"] is None and d["times"]["run"]["remaining"] == 0
    assert not monitor._thread.is_alive()
    time.sleep(0.2)
    assert read(out)["updated_at"] == d["updated_at"]  # nothing written after the end


def test_an_ended_monitor_refuses_to_start_again(make):
    # a sweep reusing one monitor: the second run would go unmonitored while
    # the file says FINISHED, so starting again is an error that says why
    m = make(run_name="sweep")
    with m:
        m.start_monitoring()  # while it runs: nothing happens
        m.update_metrics(loss=1.0)
    assert read(m.path)["status"] == "FINISHED"
    with pytest.raises(RuntimeError, match="already ended .*FINISHED.*new one for each run"):
        with m:
            pass
    with pytest.raises(RuntimeError, match="already ended"):
        m.start_monitoring()
    assert read(m.path)["status"] == "FINISHED"

def test_a_nested_with_block_leaves_the_run_to_the_outer_one(make):
    # the inner block's end wrote FINISHED while the outer one kept training
    m = make(run_name="nested")
    with m:
        with m:
            m.update_metrics(loss=2.0)
        assert m.status == "RUNNING"
        try:
            with m:
                raise KeyError("caught by the script")
        except KeyError:
            pass
        assert m.status == "RUNNING"
        m.update_metrics(loss=1.0)
    d = read(m.path)
    assert d["status"] == "FINISHED" and d["metrics"]["loss"] == 1.0

def test_an_exit_without_an_enter_does_not_end_the_run(make):
    # ExitStack.push(monitor) calls __exit__ alone: it wrote FINISHED for a
    # run that never started, and a later with-block then refused to start
    m = make(run_name="pushed")
    m.__exit__(None, None, None)
    assert not os.path.exists(m.path)
    with m:
        assert read(m.path)["status"] == "RUNNING"
    assert read(m.path)["status"] == "FINISHED"

def test_heartbeat_and_pid_create_time(make):
    import psutil

    m = make(run_name="beat")
    m.start_monitoring()
    first = read(m.path)["updated_at"]
    d = field(m, "updated_at", lambda t: t > first + 0.1)
    d = field(m, "pid_create_time", lambda t: t is not None)
    assert d["pid_create_time"] == pytest.approx(psutil.Process().create_time(), abs=0.02)
    assert d["heartbeat_interval"] == 0.05


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="boot-relative start times are read from /proc")
def test_pid_create_time_follows_a_clock_step(make, monkeypatch):
    # psutil's wall-clock create time is start-since-boot + the boot time,
    # which moves when the clock is stepped (NTP, date -s): the file must
    # keep matching what a reader computes now, or a live run looks KILLED
    from psutil import _pslinux

    from ttop.collect import Collector
    from ttop.monitor import resources

    m = make(run_name="step")
    m.start_phase("train")
    before = field(m, "pid_create_time", lambda t: t is not None)["pid_create_time"]
    real, real_offset = _pslinux.boot_time, resources._boot_offset
    # the step as the writer sees it: the boot time psutil reads, and the
    # wall clock less the boot clock (which tells the writer to read it again)
    monkeypatch.setattr(_pslinux, "boot_time", lambda: real() + 3.0)
    monkeypatch.setattr(resources, "_boot_offset", lambda: real_offset() + 3.0)
    field(m, "pid_create_time", lambda t: t is not None and abs(t - (before + 3.0)) < 0.02)
    run = Collector(os.path.dirname(m.path), gpu=False, tpu=False).collect().runs[0]
    assert (run.status, run.alive, run.status_inferred) == ("RUNNING", True, False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="boot-relative start times are read from /proc")
def test_the_boot_time_is_read_again_only_when_the_clock_moved(make, monkeypatch):
    from psutil import _pslinux

    from ttop.monitor import resources

    reads = []
    real = _pslinux.boot_time
    monkeypatch.setattr(_pslinux, "boot_time", lambda: reads.append(1) or real())
    offset = [1.7e9 + 0.5]  # half a second off a whole one: nothing to round
    monkeypatch.setattr(resources, "_boot_offset", lambda: offset[0])
    m = make(run_name="boot")
    m.start_phase("train")
    first = field(m, "pid_create_time", lambda t: t is not None)
    field(m, "updated_at", lambda t: t > first["updated_at"] + 0.3)  # several writes
    assert len(reads) <= 2  # psutil's own create_time() and the first refresh
    n = len(reads)
    offset[0] += 1.0  # the clock was stepped by a second
    wait_until(lambda: len(reads) > n, timeout=60)
    offset[0] = 1.7e9 + 0.999  # close to a whole second: read every time, never rounded the wrong way
    k = len(reads)
    wait_until(lambda: len(reads) > k + 2, timeout=60)


class FakeClock:
    """``clock=`` for TrainingMonitor: time moves only when the test says."""

    def __init__(self, mono=1000.0, wall=1.7e9):
        self.mono, self.wall = mono, wall

    def monotonic(self):
        return self.mono

    def time(self):
        return self.wall

    def advance(self, seconds):
        self.mono += seconds
        self.wall += seconds


def at(m, clock, **want):
    """The file as written at the clock's current time once it shows the
    ``want``ed values (the writer ticks at that time before it returns)."""

    def check():
        try:
            d = read(m.path)
        except (OSError, ValueError):
            return None
        return d if d["updated_at"] == clock.wall and all(d.get(k) == v for k, v in want.items()) else None

    return wait_until(check, timeout=60)


def test_epochs_validation_and_times(make):
    clock = FakeClock()
    m = make(total_epochs=3, clock=clock)
    m.start_monitoring()
    m.start_epoch(1)
    m.start_phase("train", total_batches=10)
    for _ in range(10):
        m.start_batch()
    clock.advance(2.0)
    assert at(m, clock)["rate"] == 5.0
    m.end_phase()
    m.start_phase("validation", total_batches=4)
    m.start_batch()
    m.start_batch()
    clock.advance(1.0)
    d = at(m, clock)
    assert (d["phase"], d["epoch"], d["total_epochs"]) == ("validation", 1, 3)
    assert (d["batch"], d["total_batches"]) == (2, 4)  # the current phase's own counter
    assert (d["train_batch"], d["train_total_batches"]) == (10, 10)
    assert (d["val_batch"], d["val_total_batches"], d["rate"]) == (2, 4, 2.0)
    t = d["times"]
    assert t["train"] == {"elapsed": 2.0, "remaining": 0.0, "total": 2.0}
    assert t["validation"] == {"elapsed": 1.0, "remaining": 1.0, "total": 2.0, "last": None}
    assert t["epoch"] == {"elapsed": 3.0, "remaining": 1.0, "total": 4.0}
    assert t["run"] == {"elapsed": 3.0, "remaining": 9.0, "total": 12.0}
    m.start_batch()
    m.start_batch()
    clock.advance(1.0)
    m.end_phase()
    m.start_epoch()  # numbering continues: 2
    m.start_phase("train", total_batches=10)
    for _ in range(3):
        m.start_batch()
    clock.advance(1.0)
    d = at(m, clock)
    t = d["times"]
    assert (d["epoch"], d["rate"], d["val_batch"]) == (2, 3.0, 4)  # val_batch kept from the finished phase
    assert t["validation"]["last"] == 2.0
    # 7 train batches at 3/s + one validation (2 s) + one more epoch (the mean: 4 s)
    assert t["epoch"] == {"elapsed": 1.0, "remaining": 4.333, "total": 5.333}
    assert t["run"] == {"elapsed": 5.0, "remaining": 8.333, "total": 13.333}
    clock.advance(1.0)
    m.set_finished()
    d = read(m.path)
    assert d["status"] == "FINISHED" and d["ended_at"] == clock.wall and d["started_at"] == clock.wall - 6.0
    assert d["times"]["epoch"] == {"elapsed": 2.0, "remaining": 0.0, "total": 2.0}
    assert d["times"]["run"] == {"elapsed": 6.0, "remaining": 0.0, "total": 6.0}


def test_phase_without_epochs_estimates_run_remaining(make):
    clock = FakeClock()
    m = make(clock=clock)
    m.start_phase("train", total_batches=100)
    for _ in range(10):
        m.start_batch()
    clock.advance(1.0)
    d = at(m, clock)
    assert d["rate"] == 10.0
    assert d["times"]["run"] == {"elapsed": 1.0, "remaining": 9.0, "total": 10.0}  # 90 batches at 10/s
    assert d["times"]["train"] == d["times"]["run"]


def test_train_resumes_after_mid_epoch_validation(make):
    """A framework validating mid-epoch (Lightning's val_check_interval, HF's
    eval steps) resumes the train phase: batch counter, Train Elapsed and
    rate go on; no jump."""
    clock = FakeClock()
    m = make(total_epochs=2, clock=clock)
    m.start_epoch(1)
    loader = list(range(10))
    seen = []
    for i in m.track(loader, phase="train"):
        seen.append(i)
        clock.advance(0.5)  # 2 batches/s
        if i == 3:
            d = at(m, clock, batch=4)
            assert (d["train_batch"], d["rate"]) == (4, 2.0)
            with m.phase("validation", total_batches=3):
                for _ in range(3):
                    m.start_batch()
                clock.advance(1.5)
                at(m, clock, val_batch=3)
            m.start_phase("train", resume=True)
            d = at(m, clock, phase="train")
            assert (d["phase"], d["batch"], d["train_batch"], d["train_total_batches"]) == ("train", 4, 4, 10)
            assert d["rate"] == 2.0  # not reset, not jumping
            assert d["times"]["train"] == {"elapsed": 2.0, "remaining": 3.0, "total": 5.0}
            assert d["times"]["validation"]["last"] == 1.5
        if i == 7:
            d = at(m, clock, batch=8)
            assert (d["batch"], d["rate"]) == (8, 2.0)
            assert d["times"]["train"] == {"elapsed": 4.0, "remaining": 1.0, "total": 5.0}
    assert seen == loader
    d = field(m, "phase", lambda p: p is None)  # the loop's end ended the resumed phase
    assert (d["train_batch"], d["times"]["train"]["elapsed"]) == (10, 5.0)


def test_epoch_base_zero_shows_one_based_epochs(make):
    m = make(total_epochs=3, epoch_base=0)
    m.start_epoch(0)
    assert field(m, "epoch", lambda e: e is not None)["epoch"] == 1
    m.start_epoch(2)
    d = field(m, "epoch", lambda e: e == 3)
    assert d["total_epochs"] == 3  # a count, not shifted
    with pytest.raises(ValueError, match="epoch_base"):
        make(run_name="other", epoch_base=2)
    m1 = make(run_name="one")  # the default: the numbers given are shown
    m1.start_epoch(0)
    assert field(m1, "epoch", lambda e: e is not None)["epoch"] == 0
    m1.start_epoch()
    field(m1, "epoch", lambda e: e == 1)


def test_track_uses_len_counts_and_ends_phase(make):
    m = make()
    seen = list(m.track(["a", "b", "c", "d", "e", "f", "g"], phase="train"))
    assert seen == list("abcdefg")
    d = field(m, "train_batch", lambda b: b == 7)
    assert d["phase"] is None and d["train_total_batches"] == 7
    # a generator has no len(): total unknown, still counted
    for _ in m.track((i for i in range(5)), phase="validation"):
        pass
    d = field(m, "val_batch", lambda b: b == 5)
    assert d["val_total_batches"] is None
    # break early: the phase still ends (generator closed), counters kept
    for i in m.track(range(100), phase="train", total=None):
        if i == 9:
            break
    d = field(m, "train_batch", lambda b: b == 10)
    assert d["phase"] is None and d["train_total_batches"] == 100
    # phase=None counts into the current phase
    m.start_phase("loading")
    for _ in m.track(range(3), phase=None):
        pass
    d = field(m, "batch", lambda b: b == 3)
    assert d["phase"] == "loading" and d["total_batches"] == 3


def test_batches_without_a_phase_show_as_train(make):
    m = make()
    m.start_monitoring()
    for _ in range(5):
        m.start_batch()
    d = field(m, "batch", lambda b: b == 5)
    assert d["phase"] == "train" and d["train_batch"] == 5
    m.start_batch()
    m.set_finished()
    d = read(m.path)
    assert d["train_batch"] == 6 and d["phase"] is None


def test_phase_context_manager(make):
    m = make()
    with m.phase("validation", total_batches=2):
        m.start_batch()
        field(m, "phase", lambda p: p == "validation")
    d = field(m, "times", lambda t: t["validation"]["last"] is not None)
    assert d["val_batch"] == 1 and d["phase"] is None


# ---------------------------------------------------------------------------
# metric values


def test_non_finite_and_numpy_metrics_keep_the_file_strict_json(make):
    np = pytest.importorskip("numpy")

    class Opaque:
        def __str__(self):
            return "opaque-object"

    m = make()
    m.start_monitoring()
    m.update_metrics(
        nan=float("nan"),
        up=float("inf"),
        down=-math.inf,
        f32=np.float32(0.5),
        i64=np.int64(7),
        npnan=np.float64("nan"),
        flag=True,
        text="warmup",
        obj=Opaque(),
        none=None,
    )
    m.update_metrics({"val/loss": 0.25})  # names that are not identifiers
    m.start_batch()
    d = field(m, "metrics", lambda x: x and "val/loss" in x)
    assert d["metrics"] == {
        "nan": "NaN",
        "up": "Infinity",
        "down": "-Infinity",
        "f32": 0.5,
        "i64": 7,
        "npnan": "NaN",
        "flag": True,
        "text": "warmup",
        "obj": "opaque-object",
        "none": None,
        "val/loss": 0.25,
    }
    h = d["history"]
    assert h["nan"][-1] is None and h["up"][-1] is None and h["f32"][-1] == 0.5 and h["text"][-1] is None
    with open(m.path, "rb") as f:
        P.parse_progress(f.read())  # and the readers' parser agrees


def test_history_is_bounded(make):
    m = make(history_size=5)
    m.start_phase("train")
    for i in range(12):
        m.start_batch()
        m.update_metrics(loss=float(i))
        field(m, "batch", lambda b, i=i: b == i + 1)
    d = read(m.path)
    assert len(d["history"]["loss"]) == 5 and d["history"]["loss"][-1] == 11.0


def test_metrics_whose_comparison_or_conversion_raises_never_stop_the_writer(make):
    class NoEq:  # like a numpy array: == cannot be turned into a bool
        def __eq__(self, other):
            raise ValueError("truth value is ambiguous")

        __hash__ = object.__hash__

        def __str__(self):
            return "noeq"

    m = make()
    m.start_phase("train")
    m.update_metrics(arr=NoEq(), huge=10**400, huger=10**5000, loss=1.0)
    m.start_batch()
    d = field(m, "batch", lambda b: b == 1)
    first = d["updated_at"]
    field(m, "updated_at", lambda t: t > first)  # heartbeat goes on
    m.update_metrics(arr=NoEq(), loss=0.5)
    d = field(m, "metrics", lambda x: x and x.get("loss") == 0.5)
    assert d["metrics"]["arr"] == "noeq" and d["metrics"]["huge"] == 10**400 and d["metrics"]["huger"] == "Infinity"
    assert m._thread.is_alive()
    m.set_finished()
    assert read(m.path)["status"] == "FINISHED"


# ---------------------------------------------------------------------------
# names and folders


ARRAY_STARTER = """
import sys
sys.path.insert(0, %r)
from ttop import TrainingMonitor
print("ready", flush=True)
sys.stdin.readline()  # the go, given to every starter at once
with TrainingMonitor(folder=sys.argv[1], run_name="array", name_conflict="suffix", capture_output=True,
                     interval=0.05, handle_signals=False, gpu=False) as m:
    print(m.run_name, flush=True)
    sys.stdin.readline()  # live until every starter has its name
""" % str(ROOT)


def test_runs_of_one_name_started_at_once_each_take_a_name_of_their_own(tmp_path):
    """A job array: four runs of one name start at the same moment. Each saw
    the name free (the check and the first write were apart by the output
    capture's start) and two or more took it, writing one file; the check
    and the first write now hold a lock on the folder."""
    procs = [subprocess.Popen([sys.executable, "-c", ARRAY_STARTER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        assert [p.stdout.readline() for p in procs] == ["ready\n"] * 4
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        names = [p.stdout.readline().strip() for p in procs]
        for p in procs:
            p.stdin.write("end\n")
            p.stdin.flush()
        assert [p.wait(timeout=60) for p in procs] == [0] * 4
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
            p.stdout.close()
    assert sorted(names) == ["array", "array-2", "array-3", "array-4"]
    assert sorted(read(str(tmp_path / (n + ".json")))["pid"] for n in names) == sorted(p.pid for p in procs)


@pytest.mark.parametrize(
    "name",
    ["../escape", "../../etc/evil", "a/b/c", "nul\x00byte", "esc\x1b[31mred", "..", "/abs/path", "control_x", "tab\tname"],
)
def test_run_names_never_write_outside_the_folder(tmp_path, name):
    folder = tmp_path / "deep" / "progress"
    folder.parent.mkdir()
    before = set(os.listdir(tmp_path)) | {"deep"}
    m = TrainingMonitor(folder=str(folder), run_name=name, interval=0.05, handle_signals=False, capture_output=False)
    m.start_monitoring()
    m.set_finished()
    assert set(os.listdir(tmp_path)) == before
    assert os.listdir(folder.parent) == ["progress"]
    files = os.listdir(folder)
    assert files == [m.run_name + ".json"]
    assert P.is_progress_filename(files[0]) and "/" not in m.run_name and "\x00" not in m.run_name
    assert not any(ord(c) < 32 for c in m.run_name)
    assert read(m.path)["run_name"] == m.run_name


def test_fractional_totals_and_a_spinning_interval_are_refused_at_the_call(make, tmp_path):
    """total_epochs=2.5 became 2 epochs without a word; interval=1e-9 was
    taken and the writer thread then rewrote the file without pause."""
    m = make()
    with pytest.raises(ValueError, match="total_batches must be a whole number, not 312.5"):
        m.start_phase("train", total_batches=312.5)
    with pytest.raises(ValueError, match="total_epochs must be a whole number"):
        m.start_epoch(1, total_epochs=2.5)
    m.start_phase("train", total_batches=312.0)  # a whole float is still a count
    d = field(m, "train_total_batches", lambda t: t == 312)
    assert isinstance(d["train_total_batches"], int)
    for bad in (1e-9, 0.0009, 0, -1, float("nan"), 3600):
        with pytest.raises(ValueError, match=r"interval must be a number of seconds from 0.001 up to \(not including\) 3600"):
            TrainingMonitor(folder=str(tmp_path), run_name="spin", interval=bad, handle_signals=False, gpu=False)
    TrainingMonitor(folder=str(tmp_path), run_name="fast", interval=0.001, handle_signals=False, gpu=False)


def test_output_file_seed_style_is_sanitised(tmp_path):
    m = TrainingMonitor(output_file=str(tmp_path / ".hidden.json"), handle_signals=False)
    assert m.folder == str(tmp_path) and m.run_name == "hidden"
    with pytest.raises(ValueError):
        TrainingMonitor(output_file=str(tmp_path / "a.json"), run_name="b")


def test_default_folder_and_run_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = TrainingMonitor(handle_signals=False)
    assert m.folder == str(tmp_path / "progress") and (tmp_path / "progress").is_dir()
    assert m.run_name.endswith("-%d" % os.getpid()) and P.sanitize_run_name(m.run_name) == m.run_name


def test_missing_parent_raises_clearly_at_construction(tmp_path):
    folder = tmp_path / "no" / "such" / "progress"
    with pytest.raises(FileNotFoundError) as e:
        TrainingMonitor(folder=str(folder))
    assert str(folder) in str(e.value) and "parent" in str(e.value)
    assert not (tmp_path / "no").exists()


def test_folder_that_is_a_file_raises(tmp_path):
    f = tmp_path / "progress"
    f.write_text("not a folder")
    with pytest.raises(NotADirectoryError) as e:
        TrainingMonitor(folder=str(f))
    assert str(f) in str(e.value)


def test_unwritable_folder_raises_at_construction(tmp_path):
    """A real permission denial. As root, the check runs in a child whose
    capabilities are dropped (setpriv), so the folder's mode applies."""
    import shutil

    folder = tmp_path / "progress"
    folder.mkdir()
    os.chmod(folder, 0o555)
    script = (
        "import sys\n"
        "from ttop import TrainingMonitor\n"
        "try:\n"
        "    TrainingMonitor(folder=sys.argv[1], run_name='x')\n"
        "except PermissionError as e:\n"
        "    print('PermissionError:', e)\n"
        "    sys.exit(3)\n"
    )
    cmd = [sys.executable, "-c", script, str(folder)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot be denied")
        cmd = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"] + cmd
    r = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "not writable" in r.stdout and str(folder) in r.stdout
    assert os.listdir(folder) == []


def test_import_ttop_stays_light():
    code = (
        "import sys, ttop\n"
        "heavy = ('curses', '_curses', 'pynvml', 'psutil')\n"
        "assert not [m for m in heavy if m in sys.modules], sys.modules.keys()\n"
        "TM = ttop.TrainingMonitor\n"
        "import ttop.monitor\n"
        "m = TM(folder=sys.argv[1], run_name='light')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(
            [sys.executable, "-c", code, d],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# variables and the control file


def test_variables_live_dict_and_types(make):
    np = pytest.importorskip("numpy")
    m = make(variables={"lr": np.float32(0.5)})
    m.track_variables({"batch_size": 32, "pause": False, "tag": "a", "layers": [1, 2]})
    assert m.variables["lr"] == 0.5 and type(m.variables["lr"]) is float
    m.start_monitoring()
    d = read(m.path)
    assert d["variable_types"] == {"lr": "float", "batch_size": "int", "pause": "bool", "tag": "str"}
    assert d["variables"]["layers"] == [1, 2]  # shown, read-only
    with pytest.raises(TypeError):
        m.track_variables([("lr", 1.0)])


def test_control_edit_applied_refused_and_acknowledged(make, progress_dir):
    changes = []
    m = make(on_variable_change=lambda n, o, v: changes.append((n, o, v)))
    m.track_variables({"lr": 0.1, "batch_size": 32, "pause": False, "tag": "x", "layers": [1]})
    m.start_monitoring()
    P.write_control(
        str(progress_dir), m.run_name, 1, {"lr": 1, "batch_size": "64", "pause": True, "nope": 3, "layers": [2]}
    )
    d = field(m, "control_seq", lambda s: s == 1)
    assert m.variables["lr"] == 1.0 and type(m.variables["lr"]) is float  # float accepts int
    assert m.variables["pause"] is True and m.variables["batch_size"] == 32 and m.variables["layers"] == [1]
    assert d["variables"]["lr"] == 1.0 and d["variables"]["batch_size"] == 32
    err = d["control_error"]
    assert "batch_size: expected int" in err and "nope: not a tracked variable" in err and "layers: read-only" in err
    assert "lr" not in err.replace("layers", "")  # an applied edit is not blamed
    wait_until(lambda: len(changes) == 2)
    assert sorted(changes) == [("lr", 0.1, 1.0), ("pause", False, True)]
    # a clean edit clears the error
    P.write_control(str(progress_dir), m.run_name, 2, {"batch_size": 64, "tag": "y"})
    d = field(m, "control_seq", lambda s: s == 2)
    assert d["control_error"] is None and m.variables["batch_size"] == 64 and m.variables["tag"] == "y"


def test_two_quick_edits_last_writer_wins_and_old_seq_ignored(make, progress_dir):
    m = make(interval=0.3)
    m.track_variables({"lr": 0.1, "batch_size": 32})
    m.start_monitoring()
    # both written before the next poll (ttop writes the pending edits cumulatively)
    P.write_control(str(progress_dir), m.run_name, 1, {"lr": 0.2})
    P.write_control(str(progress_dir), m.run_name, 2, {"lr": 0.3, "batch_size": 64})
    d = field(m, "control_seq", lambda s: s == 2)
    assert d["variables"] == {"lr": 0.3, "batch_size": 64}
    # an older seq is ignored
    P.write_control(str(progress_dir), m.run_name, 1, {"lr": 9.0})
    time.sleep(1.0)
    d = read(m.path)
    assert d["control_seq"] == 2 and m.variables["lr"] == 0.3


def test_stale_control_file_from_an_earlier_run_is_not_applied(make, progress_dir):
    P.write_control(str(progress_dir), "run", 5, {"lr": 9.0})
    m = make(variables={"lr": 0.1})
    m.start_monitoring()
    time.sleep(0.4)
    assert m.variables["lr"] == 0.1 and read(m.path)["control_seq"] == 0
    P.write_control(str(progress_dir), "run", 6, {"lr": 0.2})  # ttop's next edit
    field(m, "control_seq", lambda s: s == 6)
    assert m.variables["lr"] == 0.2


def _raw_control(progress_dir, data):
    # written in place, not atomically: the reader must cope with anything
    with open(P.control_path(str(progress_dir), "run"), "wb") as f:
        f.write(data)


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"garbage{{{", "invalid JSON"),
        (b'{"format": "ttop.control/1", "seq": 3, "variables": {"lr": 0.', "invalid JSON"),
        (b"", "empty"),
        (b"\xff\xfe\x00", "UTF-8"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"format": "ttop.control/1", "seq": "7", "variables": {}}', "seq"),
        (b'{"format": "ttop.control/1", "seq": 7, "variables": [1]}', "variables"),
        (b'{"format": "other/9", "seq": 7}', "format"),
        (b"[" * 200000, "JSON"),
        (b'{"format": "ttop.control/1", "seq": 7, "variables": {"pad": "' + b"x" * P.MAX_CONTROL_BYTES + b'"}}', "larger"),
    ],
    ids=["garbage", "truncated", "empty", "binary", "array", "seq-str", "vars-list", "format", "deep", "huge"],
)
def test_bad_control_files_never_raise_and_are_explained(make, progress_dir, raw, reason):
    m = make(variables={"lr": 0.1})
    m.start_phase("train")
    _raw_control(progress_dir, raw)
    # the file is written in place, so a poll may catch it half-written first
    # ("invalid JSON"); once it is complete the reason must be the right one
    d = field(m, "control_error", lambda e: e is not None and reason in e)
    assert d["control_seq"] == 0 and d["status"] == "RUNNING"
    for _ in range(5):  # the loop goes on
        m.start_batch()
    field(m, "batch", lambda b: b == 5)
    assert m._thread.is_alive()
    # a good file afterwards is applied
    P.write_control(str(progress_dir), "run", 1, {"lr": 0.5})
    d = field(m, "control_seq", lambda s: s == 1)
    assert d["control_error"] is None and m.variables["lr"] == 0.5


def test_fifo_as_control_file_never_blocks_the_writer(make, progress_dir):
    m = make(variables={"lr": 0.1})
    m.start_phase("train")
    os.mkfifo(P.control_path(str(progress_dir), "run"))  # opening it for reading would block
    d = field(m, "control_error", lambda e: e is not None and "not a regular file" in e)
    field(m, "updated_at", lambda t: t > d["updated_at"])  # the heartbeat goes on
    m.set_finished()
    # the writer thread ended within set_finished's wait for it (5 s): a
    # thread blocked opening the FIFO would still be there
    assert not m._thread.is_alive() and read(m.path)["status"] == "FINISHED"


def test_wrong_typed_edit_explained_with_variable_name(make, progress_dir):
    m = make(variables={"lr": 0.1, "steps": 10, "on": True})
    m.start_monitoring()
    P.write_control(str(progress_dir), "run", 1, {"steps": 2.5, "on": 1, "lr": "fast"})
    d = field(m, "control_seq", lambda s: s == 1)
    err = d["control_error"]
    assert "steps: expected int" in err and "on: expected bool" in err and "lr: expected float" in err
    assert m.variables == {"lr": 0.1, "steps": 10, "on": True}


def test_int_too_large_for_a_float_variable_is_refused_not_fatal(make, progress_dir):
    m = make(variables={"lr": 0.1})
    m.start_monitoring()
    _raw_control(progress_dir, b'{"format": "ttop.control/1", "seq": 1, "variables": {"lr": 1' + b"0" * 400 + b"}}")
    d = field(m, "control_seq", lambda s: s == 1)
    assert "lr: expected float" in d["control_error"] and m.variables["lr"] == 0.1
    assert m._thread.is_alive()
    P.write_control(str(progress_dir), "run", 2, {"lr": 0.5})
    d = field(m, "control_seq", lambda s: s == 2)
    assert d["control_error"] is None and m.variables["lr"] == 0.5


def test_callback_error_is_recorded_and_reported_once(make, progress_dir, capsys):
    def boom(name, old, new):
        raise ValueError("cannot apply %s" % name)

    m = make(variables={"lr": 0.1}, on_variable_change=boom)
    m.start_monitoring()
    for seq in (1, 2):
        P.write_control(str(progress_dir), "run", seq, {"lr": 0.1 * (seq + 1)})
        d = field(m, "control_seq", lambda s, seq=seq: s == seq)
        d = field(m, "control_error", lambda e: e is not None and "cannot apply" in e)
    assert "on_variable_change('lr') raised ValueError" in d["control_error"]
    assert m.variables["lr"] == pytest.approx(0.3)  # the value is applied all the same
    err = capsys.readouterr().err
    assert err.count("on_variable_change") == 1


# ---------------------------------------------------------------------------
# resources


def test_resources_cover_the_process_tree(make, spawn):
    m = make(resource_interval=0.1)
    kids = [spawn([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)]
    m.start_monitoring()
    d = field(m, "resources", lambda r: r is not None and r["num_procs"] >= 3)
    r = d["resources"]
    assert r["rss_bytes"] > 10 * 1024 * 1024 and r["num_threads"] >= 4 and r["cpu_percent"] >= 0
    assert r["gpu_memory_bytes"] is None  # gpu=False
    assert r["sampled_at"] == pytest.approx(time.time(), abs=30)
    for k in kids:
        k.kill()
        k.wait()
    field(m, "resources", lambda r: r is not None and r["num_procs"] == 1)


def test_absurd_totals_are_refused_at_the_call_and_the_writer_lives_on(make):
    """A total the writer cannot turn into a float (10**400) is refused where
    it is given, with a clear error; it never reaches the writer thread."""
    m = make()
    m.start_phase("train", total_batches=10)
    with pytest.raises(ValueError, match="at most 2\\*\\*53"):
        m.set_total_batches(10 ** 400)
    with pytest.raises(ValueError):
        m.start_phase("train", total_batches=10 ** 400)
    with pytest.raises(ValueError):
        m.start_epoch(1, total_epochs=10 ** 400)
    m.set_total_batches(2 ** 53)  # the largest allowed still works
    m.start_batch()
    d = field(m, "train_total_batches", lambda t: t == 2 ** 53)
    assert d["status"] == "RUNNING" and m._thread.is_alive()


def test_track_takes_a_len_beyond_any_total_as_unknown(make):
    """track() takes its total from len(): a sampler that never ends (a len
    of sys.maxsize, range(2**60)) is not a total the monitor can show, and
    the training loop must not get the ValueError a total given by hand
    gets. A float infinity given by hand is a ValueError, not OverflowError."""
    m = make()
    seen = []
    for b in m.track(range(2 ** 60), phase="train"):
        seen.append(b)
        if b == 2:
            break
    assert seen == [0, 1, 2]

    class Endless:
        def __len__(self):
            return sys.maxsize

        def __iter__(self):
            return iter(range(4))

    got = []
    for b in m.track(Endless(), phase="train"):
        got.append(b)
        if b == 1:
            d = field(m, "phase", lambda p: p == "train")
            assert d["train_total_batches"] is None
    assert got == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="at most 2\\*\\*53"):
        m.start_phase("train", total_batches=float("inf"))
