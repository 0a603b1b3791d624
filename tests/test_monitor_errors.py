"""Write failures mid-run, for real: the folder removed under a running job,
a full disk (ENOSPC on a tiny tmpfs) and writes refused by the kernel
(RLIMIT_FSIZE: EFBIG). The training loop carries on; the error is reported
once on stderr, and the recovery once."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT, mount_namespace, wait_until
from ttop import TrainingMonitor

CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    mode, folder, flag = sys.argv[1], sys.argv[2], sys.argv[3]
    with TrainingMonitor(folder=folder, run_name="job", interval=0.05, gpu=False) as m:
        m.start_phase("train")
        n = 0
        def batches(count):
            global n
            for _ in range(count):
                m.start_batch()
                m.update_metrics(loss=1.0 / (n + 1))
                n += 1
                time.sleep(0.01)
        batches(10)
        if mode == "diskfull":
            filler = os.path.join(folder, "filler")
            with open(filler, "wb", buffering=0) as f:  # fill the disk
                try:
                    while True:
                        f.write(b"x" * 4096)
                except OSError as e:
                    print("disk full:", e.strerror, flush=True)
            batches(50)
            os.unlink(filler)
            batches(30)
        elif mode == "fsize":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64, hard))  # every write now fails: EFBIG
            batches(50)
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            batches(30)
        else:
            open(flag, "w").close()  # tell the test to remove the folder
            while os.path.exists(flag):  # it removes the flag once done
                batches(1)
            batches(30)
    if mode == "diskfull":
        import json
        with open(os.path.join(folder, "job.json")) as f:
            d = json.load(f)
        print("final", d["status"], d["train_batch"], sorted(os.listdir(folder)), flush=True)
    print("loop done, batches", n, flush=True)
    """
    % str(ROOT)
)


def run_child(tmp_path, spawn, folder, mode):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    flag = tmp_path / "flag"
    p = spawn(
        [sys.executable, str(script), mode, str(folder), str(flag)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return p, flag


def test_folder_removed_mid_run(tmp_path, spawn):
    folder = tmp_path / "progress"
    folder.mkdir()
    p, flag = run_child(tmp_path, spawn, folder, "remove")
    wait_until(flag.exists, timeout=30)
    removed = False
    for _ in range(50):  # the writer may drop a temp file in between
        try:
            shutil.rmtree(folder)
            removed = True
            break
        except FileNotFoundError:
            removed = True
            break
        except OSError:
            continue
    # not "folder does not exist": the writer may already have re-created it
    assert removed
    flag.unlink()
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "loop done, batches" in out
    n = int(out.split()[-1])
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ttop:") and str(folder) in lines[0], err
    with open(folder / "job.json") as f:
        d = json.load(f)
    assert d["status"] == "FINISHED" and d["train_batch"] == n


def test_write_errors_reported_once_and_recovered(tmp_path, spawn):
    folder = tmp_path / "progress"
    folder.mkdir()
    p, _flag = run_child(tmp_path, spawn, folder, "fsize")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.strip() == "loop done, batches 90"  # the loop never saw an exception
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2, err
    assert lines[0].startswith("ttop: cannot write %s" % (folder / "job.json")) and "File too large" in lines[0]
    assert "retrying" in lines[0]
    assert lines[1] == "ttop: %s written again" % (folder / "job.json")
    with open(folder / "job.json") as f:
        d = json.load(f)
    assert d["status"] == "FINISHED" and d["train_batch"] == 90
    assert sorted(os.listdir(folder)) == ["job.history.jsonl", "job.json"]  # failed temp files were removed


def test_disk_full_reported_once_and_recovered(tmp_path):
    """A real ENOSPC: the child runs in its own mount namespace with the
    progress folder on a 256 kB tmpfs, fills it, then frees it."""
    ns = mount_namespace()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    shell = 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3" diskfull "$1" "$1/flag"'
    r = subprocess.run(
        ns + ["sh", "-c", shell, "sh", str(mnt), sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "disk full: No space left on device"
    assert out[1] == "final FINISHED 90 ['job.history.jsonl', 'job.json']"  # no temp file left behind
    assert out[2] == "loop done, batches 90"
    path = os.path.join(str(mnt), "job.json")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, r.stderr
    assert lines[0].startswith("ttop: cannot write %s: [Errno 28] No space left on device" % path)
    assert lines[1] == "ttop: %s written again" % path
    assert os.listdir(mnt) == []  # the tmpfs lived only in the child's namespace


CAPTURE_CHILD = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder, console = sys.argv[1], sys.argv[2]

    def on_console(text, where=None):  # the sidecar copies to the console, then to the log
        deadline = time.monotonic() + 30
        while text not in open(where or console).read():
            assert time.monotonic() < deadline, text
            time.sleep(0.01)

    with TrainingMonitor(folder=folder, run_name="job", capture_output=True, gpu=False) as m:
        print("before the disk filled", flush=True)
        on_console("before", os.path.join(folder, "job.stdout.log"))  # in the log before the disk fills
        filler = os.path.join(folder, "filler")
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        print("said while the disk was full " + "x" * 10000, flush=True)  # more than the log's last page holds
        on_console("while")
        print("the next chunk: the one before went to the log (or failed)", flush=True)
        on_console("next chunk")
        os.unlink(filler)
        print("after the disk had room again", flush=True)
    print("log:", open(os.path.join(folder, "job.stdout.log")).read().replace(chr(10), "|"), file=sys.stderr)
    """
) % str(ROOT)


def test_captured_output_reaches_the_log_again_once_the_disk_has_room(tmp_path):
    """A log write that failed for want of space (a real ENOSPC, on a tmpfs
    in the child's own mount namespace) dropped the log for the rest of the
    run: everything printed after the disk had room again was lost."""
    ns = mount_namespace()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CAPTURE_CHILD)
    console = tmp_path / "console"
    shell = 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3" "$1" "$4" > "$4"'
    r = subprocess.run(ns + ["sh", "-c", shell, "sh", str(mnt), sys.executable, str(script), str(console)],
                       stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "after the disk had room again" in console.read_text()
    log = r.stderr.split("log: ", 1)[1].rstrip("\n").split("|")
    assert "before the disk filled" in log and log[-2:] == ["after the disk had room again", ""], log
    gap = [line for line in log if line.startswith("[ttop: ")]
    assert len(gap) == 1 and gap[0].endswith("bytes of output not written to this log: no space left on device]"), log
    assert "said while the disk was full " + "x" * 10000 not in log  # at most the part that fitted


def test_metric_named_with_a_lone_surrogate_is_written(tmp_path):
    # a metric named after a file whose name is not UTF-8 (os.fsdecode gives
    # "\udcff"): UTF-8 cannot hold it, every write failed and the run stayed
    # as first written (RUNNING, no metrics) while training went on; a
    # variable of that name made start_monitoring raise
    folder = tmp_path / "progress"
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(
        """
        import os, sys
        sys.path.insert(0, %r)
        from ttop import TrainingMonitor
        name = os.fsdecode(b"loss_\\xff")
        with TrainingMonitor(folder=sys.argv[1], run_name="job", interval=0.05, gpu=False,
                             variables={name: 0.1}) as m:
            m.start_phase("train")
            for i in range(5):
                m.start_batch()
                m.update_metrics({name: 1.0 / (i + 1), "acc": 0.5})
        """ % str(ROOT)))
    p = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    d = json.loads((folder / "job.json").read_bytes().decode("utf-8"))
    assert d["status"] == "FINISHED" and d["train_batch"] == 5
    assert d["metrics"] == {"loss_\ufffd": 0.2, "acc": 0.5} and d["variables"] == {"loss_\ufffd": 0.1}
    history = [json.loads(x) for x in (folder / "job.history.jsonl").read_bytes().decode("utf-8").splitlines()]
    # the history file too, under the name the progress file gives (a chart of it is found)
    assert sorted(x["m"] for x in history if "m" in x) == ["acc", "loss_\ufffd"], history


@pytest.mark.parametrize("same_names", [True, False])
def test_metric_names_that_are_not_strings_are_one_metric_with_their_text(tmp_path, same_names):
    # update_metrics({1: a, "1": b}): both went into one history series, two
    # points per batch out of order (1, 2, 3, 1, 2, 3); now one metric "1",
    # the later value of each update (as a dict of the texts would keep)
    folder = tmp_path / "progress"
    m = TrainingMonitor(folder=str(folder), run_name="job", interval=60, gpu=False, handle_signals=False)
    m.start_phase("train")
    for i in range(3):
        m.start_batch()
        m.update_metrics({1: 0.5 + i, "1": 0.75 + i, "acc": 0.25})
        if not same_names:  # (updates with different names take the other way through the writer)
            m.update_metrics(lr=0.1)
    m.set_finished()
    d = json.loads((folder / "job.json").read_text())
    assert d["metrics"]["1"] == 2.75
    lines = [json.loads(x) for x in (folder / "job.history.jsonl").read_text().splitlines()[1:]]
    series = [x["e"] for x in lines if x.get("m") == "1"]
    assert len(series) == 1 and [(e[0], e[5]) for e in series[0]] == [(1, 0.75), (2, 1.75), (3, 2.75)], lines


FULL_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, %r)
    from ttop import TrainingMonitor

    folder = sys.argv[1]
    try:
        with TrainingMonitor(folder=folder, run_name="job", interval=0.05, gpu=False) as m:
            m.start_phase("train", total_batches=100)
            for i in range(20):
                m.start_batch()
                m.update_metrics(loss=1.0 / (i + 1))
            time.sleep(0.3)
            with open(os.path.join(folder, "checkpoint.pt"), "wb", buffering=0) as f:
                while True:  # the checkpoint fills the disk: OSError, out of the block
                    f.write(b"x" * 4096)
    except OSError as e:
        print("raised:", e.strerror)
    d = json.load(open(os.path.join(folder, "job.json")))
    print("file:", d["status"], d["train_batch"], (d["error"] or "").splitlines()[0])
    print("left:", sorted(n for n in os.listdir(folder) if n != "checkpoint.pt"))
    """
) % str(ROOT)


def test_a_run_failing_on_a_full_disk_says_so_in_its_file(tmp_path):
    # the disk fills (checkpoints, most often) and the script fails with
    # ENOSPC: the FAILED status and its error could not be written (a temp
    # file needs blocks the disk no longer has), so the file went on saying
    # RUNNING and ttop showed KILLED* "process gone", the error nowhere. The
    # file is rewritten in the blocks it holds when no temp file can be made
    ns = mount_namespace()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(FULL_CHILD)
    shell = 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3" "$1"'
    r = subprocess.run(ns + ["sh", "-c", shell, "sh", str(mnt), sys.executable, str(script)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "raised: No space left on device"
    assert out[1] == "file: FAILED 20 OSError: [Errno 28] No space left on device", r.stdout + r.stderr
    assert out[2] == "left: ['job.history.jsonl', 'job.json']"  # no temp file left behind


def test_a_folder_made_by_another_process_meanwhile_is_taken(tmp_path, monkeypatch):
    """Two ranks (or two threads) starting at once, the folder missing: the
    one that found it missing and then found it existing (made by the other
    in between) raised 'progress folder is not a directory'. The folder's
    first look is made to miss it here, as when the other made it just
    after."""
    from ttop.monitor import files

    folder = tmp_path / "progress"
    folder.mkdir()  # made by the other, after this one looked
    real = os.path.isdir
    looked = []

    def isdir_late(path):
        if os.fspath(path) == str(folder) and not looked:
            looked.append(path)
            return False
        return real(path)

    monkeypatch.setattr(files.os.path, "isdir", isdir_late)
    files.check_folder(str(folder))  # no error: the folder is there
    assert looked
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        files.check_folder(str(tmp_path / "a-file"))
