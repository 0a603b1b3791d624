"""The ``ttop`` command: argument errors, folder errors, ``--once`` and
``--once --json``, run as real subprocesses (``python -m ttop``)."""
from __future__ import annotations

import io
import json
import os
import re
import signal
import sys
import time

import pytest
from test_cli_support import ROOT, child_env, run_ttop, start_writer, ttop_cmd

from ttop import cli, cliargs
from ttop.progress import write_json_atomic

ESC = "\x1b"
SGR = re.compile(r"\x1b\[[0-9;]*m")


def assert_one_line_error(proc, needle, usage):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = [l for l in proc.stderr.splitlines() if l.startswith("ttop:")]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0], proc.stderr
    assert ("usage: ttop" in proc.stderr) == usage, proc.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["-i", "-1"], "interval must be a number > 0"),
        (["-i", "0"], "interval must be a number > 0"),
        (["--interval", "nan"], "interval must be a number > 0"),
        (["-i", "fast"], "interval must be a number"),
        (["-i", "0.001"], "at least 0.05"),
        (["--max-cpus", "0"], "max-cpus must be a number > 0"),
        (["--max-ram", "-2"], "max-ram must be a number > 0"),
        (["--max-gpu", "0"], "max-gpu must be a number > 0"),
        (["--max-ram", "1e300"], "max-ram must be at most"),
        (["--max-gpu", "1e308"], "max-gpu must be at most"),
        (["-i", "1e10"], "interval must be at most"),
        (["--csv-interval", "-5"], "csv-interval must be a number > 0"),
        (["--json"], "--json only works with --once"),
        (["--once", "--headless"], "cannot be combined"),
        (["--once", "--csv-dir", "x"], "do not apply to --once"),
        (["--no-such-option"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, needle, progress_dir):
    proc = run_ttop(str(progress_dir), *args)
    assert_one_line_error(proc, needle, usage=True)


@pytest.mark.parametrize("mode", [["--once"], ["--once", "--json"], ["--headless"], []])
def test_missing_folder_exits_2(mode, tmp_path):
    proc = run_ttop(str(tmp_path / "nope"), *mode, cwd=str(tmp_path))
    assert_one_line_error(proc, "does not exist", usage=False)
    assert not (tmp_path / "nope").exists()


@pytest.mark.slow
def test_closed_stderr_keeps_exit_codes_and_headless_working(tmp_path, progress_dir):
    import subprocess

    def closed_stderr(*args, **kw):
        cmd = " ".join("'%s'" % a for a in ttop_cmd(*args)) + " 2>&-"
        return subprocess.Popen(["sh", "-c", "exec " + cmd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                env=child_env(), **kw)

    assert closed_stderr(str(tmp_path / "nope"), "--once").wait(60) == 2
    write_json_atomic(str(progress_dir / "r.json"), {"format": "ttop.progress/1", "run_name": "r",
                                                      "status": "FINISHED", "updated_at": time.time()})
    csv_dir = tmp_path / "csv"
    p = closed_stderr(str(progress_dir), "--headless", "-i", "0.1", "--csv-dir", str(csv_dir))
    try:
        deadline = time.time() + 30
        while not (csv_dir / "r_matrix.csv").exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert p.poll() is None, "headless exited with %s" % p.returncode
        assert (csv_dir / "r_matrix.csv").exists()
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_once_to_a_full_disk_or_a_closed_stdout_says_so(progress_dir):
    """The output's fault, not an internal error: one line saying why."""
    import subprocess

    write_json_atomic(str(progress_dir / "r.json"), {"format": "ttop.progress/1", "run_name": "r",
                                                      "status": "FINISHED", "updated_at": time.time()})
    cmd = " ".join("'%s'" % a for a in ttop_cmd(str(progress_dir), "--once"))
    for redirect, reason in ((" >/dev/full", "No space left on device"), (" --json >/dev/full", "No space left on device"),
                             (" >&-", "standard output is closed")):
        p = subprocess.run(["sh", "-c", "exec " + cmd + redirect], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           env=child_env(), timeout=60, text=True)
        assert p.returncode == 1, p.stderr
        assert p.stderr == "ttop: cannot print the snapshot: %s\n" % reason


def test_file_instead_of_folder_and_csv_dir_exit_2(tmp_path, progress_dir):
    f = tmp_path / "file"
    f.write_text("not a folder")
    assert_one_line_error(run_ttop(str(f), "--once"), "is not a folder", usage=False)
    assert_one_line_error(run_ttop(str(f / "sub"), "--headless"), "does not exist", usage=False)
    # headless with a CSV folder that cannot be created
    proc = run_ttop(str(progress_dir), "--headless", "--csv-dir", str(f / "csv"))
    assert_one_line_error(proc, "cannot use CSV folder", usage=False)


def test_unreadable_folder_message(monkeypatch, tmp_path):
    # Tests run as root, which reads any folder: a permission error is
    # simulated at the one call that would raise it.
    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(cli.os, "scandir", denied)
    with pytest.raises(cli.UsageError, match="cannot read folder .*: Permission denied"):
        cli.check_folder(str(tmp_path))


def test_version_and_help():
    proc = run_ttop("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "ttop " + cli.__version__
    proc = run_ttop("--help")
    assert proc.returncode == 0
    for opt in ("--interval", "--max-cpus", "--max-ram", "--max-gpu", "--csv-interval", "--csv-dir", "--headless", "--once", "--json", "--ascii"):
        assert opt in proc.stdout


def test_internal_error_is_one_line_unless_debug(monkeypatch, capsys, progress_dir):
    def boom(args):
        raise RuntimeError("collector exploded")

    monkeypatch.setattr(cli, "make_collector", boom)
    monkeypatch.delenv("TTOP_DEBUG", raising=False)
    assert cli.main([str(progress_dir), "--once"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: collector exploded" in err
    monkeypatch.setenv("TTOP_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main([str(progress_dir), "--once"])


def test_once_width_and_color_rules(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.delenv("COLUMNS", raising=False)
    assert cli.once_width(pipe) == 100
    monkeypatch.setenv("COLUMNS", "61")
    assert cli.once_width(pipe) == 61
    for huge in ("100000000", "9" * 5000):  # laid out at that width it took gigabytes
        monkeypatch.setenv("COLUMNS", huge)
        assert cli.once_width(pipe) == 4096
    for bad in ("0", "\u00b2", "-5", "wide"):
        monkeypatch.setenv("COLUMNS", bad)
        assert cli.once_width(pipe) == 100
    monkeypatch.setenv("COLUMNS", "100000000")
    monkeypatch.setenv("LINES", "5000")
    cli.drop_huge_size_env()  # what curses would size its screens by
    assert "COLUMNS" not in os.environ and "LINES" not in os.environ
    monkeypatch.setenv("COLUMNS", "4096")
    cli.drop_huge_size_env()
    assert os.environ["COLUMNS"] == "4096"
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli.use_color(pipe) is False

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("TERM", "xterm")
    assert cli.use_color(Tty()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli.use_color(Tty()) is False


def _static_runs(folder):
    now = time.time()
    for name, status in [("alpha-run", "FINISHED"), ("beta_run", "FAILED"), ("gamma-" + "x" * 60, "CANCELED")]:
        write_json_atomic(os.path.join(folder, name + ".json"), {
            "format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": now,
            "epoch": 3, "total_epochs": 3, "batch": 10, "total_batches": 10, "metrics": {"loss": 0.25},
        })
    (folder / "broken.json").write_text("{not json")


def test_once_to_a_pipe_is_plain_and_fits(progress_dir):
    _static_runs(progress_dir)
    proc = run_ttop(str(progress_dir), "--once", env=child_env(COLUMNS=80, TERM="xterm-256color"))
    assert proc.returncode == 0, proc.stderr
    assert ESC not in proc.stdout
    assert "alpha-run" in proc.stdout and "beta_run" in proc.stdout and "gamma-" in proc.stdout
    for line in proc.stdout.splitlines():
        assert len(line) <= 80, repr(line)
    assert proc.stderr == ""


@pytest.mark.slow
def test_once_no_color_under_a_pty(progress_dir):
    ptyprocess = pytest.importorskip("ptyprocess")
    _static_runs(progress_dir)

    def run_in_pty(**env):
        p = ptyprocess.PtyProcess.spawn(ttop_cmd(str(progress_dir), "--once"), env=child_env(TERM="xterm-256color", **env), dimensions=(24, 100))
        chunks = []
        try:
            while True:
                try:
                    chunks.append(p.read(65536))
                except EOFError:
                    break
        finally:
            p.wait()
        return p.exitstatus, b"".join(chunks).decode("utf-8", "replace")

    status, out = run_in_pty(NO_COLOR="1")
    assert status == 0, out
    assert "alpha-run" in out
    assert not SGR.search(out), repr(out)
    status, out = run_in_pty()
    assert status == 0 and SGR.search(out), "a terminal without NO_COLOR gets colour: %r" % out


def test_once_json_keys_and_a_killed_run(progress_dir, spawn, tmp_path):
    from test_json import EXPECTED_RUN, EXPECTED_TOP

    writer = start_writer(spawn, progress_dir, ["live", "doomed"], tmp_path, period=0.2)
    writer_pid = writer.pid
    # a second writer we SIGKILL: its file keeps saying RUNNING
    victim = start_writer(spawn, tmp_path, ["victim"], tmp_path, period=0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    os.replace(tmp_path / "victim.json", progress_dir / "victim.json")
    (progress_dir / "bad.json").write_text("[1, 2")

    proc = run_ttop(str(progress_dir), "--once", "--json", "--max-ram", "2", "--max-cpus", "1.5")
    assert proc.returncode == 0, proc.stderr
    assert ESC not in proc.stdout
    doc = json.loads(proc.stdout)
    assert list(doc) == EXPECTED_TOP
    assert doc["format"] == "ttop.snapshot/1"
    assert doc["folder"] == os.path.realpath(progress_dir) or doc["folder"] == os.path.abspath(progress_dir)
    assert doc["budgets"]["ram_bytes"] == 2 * 2**30 and doc["budgets"]["cpus"] == 1.5
    runs = {r["key"]: r for r in doc["runs"]}
    assert set(runs) == {"live", "doomed", "victim"}
    for r in runs.values():
        assert list(r) == EXPECTED_RUN
    # one writer process keeps both files: one of the two runs holds it, the
    # other says so (docs/security.md)
    holders = [runs[k] for k in ("live", "doomed") if runs[k]["processes"]]
    assert len(holders) == 1
    live = holders[0]
    other = runs[({"live", "doomed"} - {live["key"]}).pop()]
    assert live["status"] == "RUNNING" and live["alive"] is True and live["status_inferred"] is False
    assert live["pid"] == writer_pid
    assert live["processes"][0]["pid"] == writer_pid
    assert live["resources"]["source"] == "local" and live["resources"]["rss_bytes"] > 0
    assert isinstance(live["metrics"]["loss"], float)
    assert other["alive"] is True and other["resources"]["rss_bytes"] is None
    assert "held by run %s" % live["key"] in other["ownership_note"]
    v = runs["victim"]
    assert v["status"] == "KILLED" and v["reported_status"] == "RUNNING" and v["status_inferred"] is True
    assert v["alive"] is False and v["status_reason"]
    assert doc["counts"] == {"RUNNING": 2, "KILLED": 1}
    assert [s["name"] for s in doc["skipped"]] == ["bad.json"]


@pytest.mark.slow
def test_python_dash_m_and_console_script_agree(progress_dir):
    _static_runs(progress_dir)
    script = os.path.join(os.path.dirname(sys.executable), "ttop")
    if not os.path.exists(script):
        pytest.skip("console script not installed")
    import subprocess

    a = subprocess.run([script, str(progress_dir), "--once", "--json"], capture_output=True, text=True, timeout=60, env=child_env(), cwd=str(ROOT))
    b = run_ttop(str(progress_dir), "--once", "--json")
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    ka = [r["key"] for r in json.loads(a.stdout)["runs"]]
    kb = [r["key"] for r in json.loads(b.stdout)["runs"]]
    assert ka == kb == sorted(["alpha-run", "beta_run", "gamma-" + "x" * 60])


FAKES = ROOT / "tests" / "fakes"
BUSY_BYTES = 3869245440  # what the recorded H200 reported for its one CUDA process


def nvml_env(pid):
    """Env for a ttop child that sees the recorded H200 (tests/fakes/pynvml.py)
    with the recorded CUDA process reported as ``pid``."""
    env = child_env(TTOP_FAKE_NVML_PHASE="busy", TTOP_FAKE_NVML_PID_MAP="489:%d" % pid)
    env["PYTHONPATH"] = str(FAKES) + os.pathsep + env["PYTHONPATH"]
    return env


def test_once_json_with_the_recorded_h200(progress_dir, spawn, tmp_path):
    """NVML cannot exist here: the recorded H200 is replayed by
    tests/fakes/pynvml.py, its CUDA process mapped onto our writer's PID. That
    process has no /dev/nvidiaN open, so the collector refuses to attribute
    the memory; the JSON shows the GPU, no GPU memory for the run, and why."""
    writer = start_writer(spawn, progress_dir, ["gpu-run"], tmp_path, period=0.2)
    proc = run_ttop(progress_dir, "--once", "--json", "--max-gpu", "100", env=nvml_env(writer.pid))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["gpu_error"] is None
    assert len(doc["gpus"]) == 1 and "H200" in doc["gpus"][0]["name"]
    assert doc["gpus"][0]["memory_total"] > 100 * 10**9 and doc["gpus"][0]["memory_used"] > BUSY_BYTES
    assert doc["gpus"][0]["errors"] == {"fan_speed": "Not Supported"}
    assert doc["budgets"]["gpu_bytes"] == 100 * 2**30
    run = doc["runs"][0]
    assert run["alive"] is True
    assert run["resources"]["gpu_memory_bytes"] is None and run["processes"][0]["gpu_memory_bytes"] is None
    assert run["gpu_note"] and run["gpu_note"] in doc["notices"]


def _parser_args(argv):
    """What the argparse parser makes of ``argv`` (the quick path off)."""
    quick = cliargs._quick_args
    cliargs._quick_args = lambda argv: None
    try:
        return cli.parse_args(argv)
    finally:
        cliargs._quick_args = quick


@pytest.mark.parametrize("argv", [
    [], ["runs"], ["a", "b c", "d/*"], ["runs", "-i", "0.5"], ["-i", "3", "runs"], ["-i0.25", "x"],
    ["--interval", "7"], ["--interval=1e3", "x", "y"], ["-i", "2", "-i", "0.05"], ["x", "--interval", " 4 "],
])
def test_a_plain_launch_is_read_without_the_parser_as_the_parser_reads_it(argv):
    quick = cliargs._quick_args(list(argv))
    assert quick is not None, argv
    assert vars(quick) == vars(_parser_args(list(argv)))
    assert vars(cli.parse_args(list(argv))) == vars(quick)


@pytest.mark.parametrize("argv", [
    ["--help"], ["-h"], ["--once"], ["x", "--ascii"], ["--int", "2"], ["-i", "0.01"], ["-i", "nan"],
    ["-i", "-1"], ["-i"], ["-i="], ["-i=2"], ["--interval="], ["--", "-x"], ["-"], [""], ["x", "-i", "1e10"],
    ["--columns", "-cpu"], ["-i", "fast"],
])
def test_anything_else_goes_to_the_parser(argv):
    assert cliargs._quick_args(list(argv)) is None


def test_the_quick_defaults_are_the_parsers():
    args = vars(_parser_args(["x"]))
    assert {k: args[k] for k in cliargs.QUICK_DEFAULTS} == cliargs.QUICK_DEFAULTS
    assert set(args) == set(cliargs.QUICK_DEFAULTS) | {"folder", "folders", "interval", "health_config", "prices"}


@pytest.mark.parametrize("argv,folders,once", [
    (["--once", "--", "--once"], ["--once"], True),
    (["--", "-i"], ["-i"], False),
    (["-i", "3", "--", "-i", "b"], ["-i", "b"], False),
    (["a", "--once", "--", "-x", "--", "c"], ["a", "-x", "--", "c"], True),
    (["--", "x"], ["x"], False),
])
def test_folders_after_a_double_dash_are_folders_whatever_they_look_like(argv, folders, once):
    args = cli.parse_args(list(argv))
    assert args.folders == folders and args.once is once


def test_once_of_a_folder_named_like_an_option(tmp_path):
    folder = tmp_path / "--once"
    folder.mkdir()
    write_json_atomic(str(folder / "flagged.json"), {"format": "ttop.progress/1", "run_name": "flagged",
                                                     "status": "FINISHED", "updated_at": time.time()})
    (tmp_path / "progress").mkdir()  # the default folder, empty: not the one asked for
    proc = run_ttop("--once", "--", "--once", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "flagged" in proc.stdout


def test_once_prints_without_the_gpu_when_nvml_hangs(progress_dir, spawn, tmp_path):
    """An NVML call that never returns (a driver in a bad state, a GPU
    fallen off the bus: nvidia-smi hangs too) kept ``--once`` from ever
    printing. The cycle waits for the GPU a bounded time and goes on
    without it, saying why."""
    writer = start_writer(spawn, progress_dir, ["gpu-run"], tmp_path, period=0.2)
    hang = tmp_path / "hang"
    hang.write_text("")
    env = nvml_env(writer.pid)
    env.update(TTOP_FAKE_NVML_HANG_FILE=str(hang), TTOP_DEVICE_TIMEOUT="1")
    proc = run_ttop(progress_dir, "--once", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["gpus"] == [] and doc["gpu_error"].startswith("NVML not responding: a call has not returned for ")
    assert [r["run_name"] for r in doc["runs"]] == ["gpu-run"] and doc["runs"][0]["alive"] is True
