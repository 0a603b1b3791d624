"""CsvSink on hand-made snapshots: real files in a temp folder, loaded back
with the csv module and pandas."""
from __future__ import annotations

import csv
import math
import os
import shutil

import pandas as pd
import pytest

from ttop import record
from ttop.collect.snapshot import RunResources, RunSnapshot, Snapshot
from ttop.sinks import csv as csvsink
from ttop.sinks.csv import MATRIX_COLUMNS, OVERALL_COLUMNS, CsvSink


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def run(key, status="RUNNING", metrics=None, cpu=10.0, rss=1000, threads=4, inferred=False, **data):
    d = {
        "format": "ttop.progress/1",
        "run_name": data.pop("run_name", key),
        "status": status,
        "updated_at": 1.0,
        "phase": "train",
        "epoch": 1,
        "batch": 5,
        "total_batches": 100,
        "rate": 2.5,
        "started_at": 1700000000.0,
    }
    d.update(data)
    if metrics is not None:
        d["metrics"] = metrics
    return RunSnapshot(
        key=key,
        path="/x/%s.json" % key,
        data=d,
        run_name=d["run_name"],
        status=status,
        reported_status="RUNNING" if inferred else status,
        status_inferred=inferred,
        status_reason="process 1 is gone" if inferred else None,
        resources=RunResources(cpu_percent=cpu, rss_bytes=rss, gpu_memory_bytes=None, num_procs=1, num_threads=threads, source="local"),
    )


def snap(seq, runs, t=None):
    return Snapshot(seq=seq, taken_at=1700000000.0 + (t if t is not None else seq * 2), folder="/x", runs=tuple(runs))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows, path
    width = len(rows[0])
    for r in rows[1:]:
        assert len(r) == width, (path, r)
    return rows


def load_all(csv_dir):
    """Every .csv file loads with csv (rectangular) and pandas."""
    frames = {}
    for name in sorted(os.listdir(csv_dir)):
        if name.endswith(".csv"):
            p = os.path.join(csv_dir, name)
            read_csv(p)
            frames[name] = pd.read_csv(p)
    return frames


def test_matrix_and_overall_rows(tmp_path):
    clock = Clock()
    sink = CsvSink(str(tmp_path / "out"), 2.0, clock=clock)
    assert sink.maybe_write(snap(1, [run("a", metrics={"loss": 1.5}, cpu=10.0, rss=1000)]))
    clock.t += 2
    assert sink.maybe_write(snap(2, [run("a", metrics={"loss": 0.5}, cpu=30.0, rss=3000)]))
    sink.close()
    frames = load_all(str(tmp_path / "out"))
    assert set(frames) == {"a_matrix.csv", "a_overall.csv"}
    m = frames["a_matrix.csv"]
    assert list(m.columns) == list(MATRIX_COLUMNS) + ["metric_loss"]
    assert list(m["metric_loss"]) == [1.5, 0.5]
    assert list(m["cpu_percent"]) == [10.0, 30.0]
    assert list(m["status"]) == ["RUNNING", "RUNNING"]
    assert m["time"][0] == "2023-11-14T22:13:22.000+00:00"
    assert pd.to_datetime(m["time"]).dt.tz is not None
    o = frames["a_overall.csv"]
    assert list(o.columns) == list(OVERALL_COLUMNS)
    assert len(o) == 1
    row = o.iloc[0]
    assert row["samples"] == 2
    assert row["cpu_percent_min"] == 10 and row["cpu_percent_mean"] == 20 and row["cpu_percent_max"] == 30
    assert row["rss_bytes_max"] == 3000
    assert math.isnan(row["gpu_memory_bytes_mean"])  # never known: empty cells
    assert row["status"] == "RUNNING"
    assert row["start_timestamp"] == 1700000000.0
    assert row["duration"] == pytest.approx(4.0)


def test_interval_and_same_snapshot_are_not_written_twice(tmp_path):
    clock = Clock()
    sink = CsvSink(str(tmp_path), 5.0, clock=clock)
    s1 = snap(1, [run("a")])
    assert sink.maybe_write(s1)
    clock.t += 10
    assert not sink.maybe_write(s1)  # same snapshot
    clock.t += 0
    assert sink.maybe_write(snap(2, [run("a")]))
    clock.t += 2
    assert not sink.maybe_write(snap(3, [run("a")]))  # too soon
    clock.t += 3
    assert sink.maybe_write(snap(4, [run("a")]))
    assert len(read_csv(str(tmp_path / "a_matrix.csv"))) == 1 + 3
    assert not sink.maybe_write(None)


def test_new_metric_mid_run_widens_the_header(tmp_path):
    clock = Clock()
    sink = CsvSink(str(tmp_path), 1.0, clock=clock)
    for i, metrics in enumerate([{"loss": 1.0}, {"loss": 0.9}, {"loss": 0.8, "val_acc": 0.7}, {"loss": 0.7, "val_acc": 0.75, "lr": 0.01}]):
        clock.t += 1
        assert sink.maybe_write(snap(i + 1, [run("a", metrics=metrics)]))
    m = load_all(str(tmp_path))["a_matrix.csv"]
    assert list(m.columns)[len(MATRIX_COLUMNS):] == ["metric_loss", "metric_val_acc", "metric_lr"]
    assert list(m["metric_loss"]) == [1.0, 0.9, 0.8, 0.7]
    assert m["metric_val_acc"].isna().tolist() == [True, True, False, False]
    assert m["metric_lr"].tolist()[3] == 0.01
    # no temp file left behind
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_nonfinite_and_odd_metric_values(tmp_path):
    sink = CsvSink(str(tmp_path), 1.0, clock=Clock())
    metrics = {"nan": float("nan"), "inf": "Infinity", "ninf": "-Infinity", "text": 'a,"b"\nc', "flag": True, "n": None, "weird\nname": 3}
    sink.write(snap(1, [run("a", metrics=metrics)]))
    rows = read_csv(str(tmp_path / "a_matrix.csv"))
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1]))
    assert row["metric_nan"] == "nan"
    assert row["metric_inf"] == "inf" and row["metric_ninf"] == "-inf"
    assert row["metric_text"] == 'a,"b" c'  # one line; quoting done by csv
    assert row["metric_flag"] == "1" and row["metric_n"] == ""
    assert row["metric_weird name"] == "3"
    m = pd.read_csv(tmp_path / "a_matrix.csv")
    assert math.isnan(m["metric_nan"][0]) and m["metric_inf"][0] == math.inf


def test_ended_run_gets_one_final_row_and_restart_appends(tmp_path):
    clock = Clock()
    out = str(tmp_path)
    sink = CsvSink(out, 1.0, clock=clock)
    for seq in (1, 2):
        clock.t += 1
        sink.maybe_write(snap(seq, [run("a", cpu=10.0 * seq), run("old", status="FINISHED", ended_at=1700000100.0)]))
    clock.t += 1
    sink.maybe_write(snap(3, [run("a", status="KILLED", inferred=True, cpu=None), run("old", status="FINISHED", ended_at=1700000100.0)]))
    clock.t += 1
    sink.maybe_write(snap(4, [run("a", status="KILLED", inferred=True, cpu=None)]))
    sink.close()
    a = read_csv(os.path.join(out, "a_matrix.csv"))
    assert [r[2] for r in a[1:]] == ["RUNNING", "RUNNING", "KILLED"]
    assert a[-1][3] == "1"  # status_inferred
    assert len(read_csv(os.path.join(out, "old_matrix.csv"))) == 2
    o = pd.read_csv(os.path.join(out, "old_overall.csv")).iloc[0]
    assert o["status"] == "FINISHED" and o["end_timestamp"] == 1700000100.0 and o["duration"] == 100.0
    oa = pd.read_csv(os.path.join(out, "a_overall.csv")).iloc[0]
    assert oa["status"] == "KILLED" and oa["status_inferred"] == 1 and oa["samples"] == 3
    assert oa["status_reason"] == "process 1 is gone"

    # a second ttop on the same folder: ended runs get no new rows, a running
    # one appends and its summary continues from the rows already there
    clock2 = Clock()
    sink2 = CsvSink(out, 1.0, clock=clock2)
    sink2.maybe_write(snap(1, [run("a", status="KILLED", inferred=True), run("old", status="FINISHED", ended_at=1700000100.0), run("b", cpu=5.0)], t=100))
    clock2.t += 1
    sink2.maybe_write(snap(2, [run("a", cpu=50.0), run("b", cpu=7.0)], t=102))  # "a" restarted under the same name
    sink2.close()
    a = read_csv(os.path.join(out, "a_matrix.csv"))
    assert [r[2] for r in a[1:]] == ["RUNNING", "RUNNING", "KILLED", "RUNNING"]
    assert len(read_csv(os.path.join(out, "old_matrix.csv"))) == 2
    oa = pd.read_csv(os.path.join(out, "a_overall.csv")).iloc[0]
    assert oa["samples"] == 4 and oa["cpu_percent_max"] == 50 and oa["status"] == "RUNNING"
    load_all(out)


def test_torn_tail_from_elsewhere_is_dropped_on_restart(tmp_path):
    path = tmp_path / "a_matrix.csv"
    header = ",".join(MATRIX_COLUMNS)
    good = "2023-11-14T22:13:22.000+00:00,1700000002.000,RUNNING,0,train,1,5,100,2.5,10.0,1000,,1,4"
    path.write_text(header + "\n" + good + "\n" + "2023-11-14T22:13:24.000+00:00,17000", encoding="utf-8")
    sink = CsvSink(str(tmp_path), 1.0, clock=Clock())
    sink.write(snap(5, [run("a", cpu=20.0)]))
    rows = read_csv(str(path))
    assert len(rows) == 3 and rows[1][1] == "1700000002.000" and rows[2][1] == "1700000010.000"
    assert pd.read_csv(tmp_path / "a_overall.csv").iloc[0]["samples"] == 2


def test_file_names_stay_inside_csv_dir(tmp_path):
    out = tmp_path / "out"
    sink = CsvSink(str(out), 1.0, clock=Clock())
    keys = ["..evil", "control_x", "tab\there", "a" * 300, "a" * 301]
    sink.write(snap(1, [run(k) for k in keys]))
    names = sorted(os.listdir(out))
    assert len(names) == 2 * len(keys)  # long names that collide after truncation stay apart
    for n in names:
        assert not n.startswith(".") and "\t" not in n and len(n.encode()) <= 255
        assert os.path.dirname(os.path.realpath(out / n)) == os.path.realpath(out)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    load_all(str(out))


def test_errors_are_reported_and_other_runs_still_written(tmp_path):
    (tmp_path / "bad_matrix.csv").mkdir()  # cannot be opened as a file
    errors = []
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=Clock())
    sink.write(snap(1, [run("bad"), run("good")]))
    assert len(errors) == 1 and "bad" in errors[0]
    assert sink.last_error == errors[0]
    assert len(read_csv(str(tmp_path / "good_matrix.csv"))) == 2


def test_a_planted_fifo_or_link_is_refused_without_hanging_or_following(tmp_path):
    import threading
    os.mkfifo(str(tmp_path / "fifo_matrix.csv"))
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    errors = []
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=Clock())
    sink.write(snap(1, [run("link")]))  # link_matrix.csv created and loaded
    os.unlink(str(tmp_path / "link_matrix.csv"))
    os.symlink(str(target), str(tmp_path / "link_matrix.csv"))  # planted between two writes
    t = threading.Thread(target=sink.write, args=(snap(2, [run("fifo"), run("link"), run("good")]),), daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():
        os.close(os.open(str(tmp_path / "fifo_matrix.csv"), os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the CSV sink blocked on a FIFO")
    assert target.read_text() == "keep\n"
    assert len(errors) == 2 and len(read_csv(str(tmp_path / "good_matrix.csv"))) == 2


def test_a_hard_link_renamed_over_a_matrix_file_is_not_appended_to(tmp_path):
    """Another user of a CSV folder without the sticky bit renames over
    a_matrix.csv a hard link to a file of ttop's user (where the kernel lets
    them: fs.protected_hardlinks=0), say root's ~/.bashrc: the next row,
    whose phase cell is the run's text (``x; sh evil; #``), was appended
    to it. A file with other hard links is never appended to: the matrix is
    written whole again under its name."""
    target = tmp_path / "bashrc"
    target.write_text("keep\n")
    errors = []
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=Clock())
    sink.write(snap(1, [run("a")]))
    os.link(str(target), str(tmp_path / "swap"))
    os.replace(str(tmp_path / "swap"), str(tmp_path / "a_matrix.csv"))
    for seq in (2, 3):
        sink.write(snap(seq, [run("a", phase="x; sh evil; #")]))
    assert target.read_text() == "keep\n"
    assert os.stat(str(tmp_path / "a_matrix.csv")).st_nlink == 1
    assert len(read_csv(str(tmp_path / "a_matrix.csv"))) == 3 and errors == []  # header, rows 2 and 3: none lost since


def test_csv_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OSError):
        CsvSink(str(f), 1.0)
    with pytest.raises(ValueError):
        CsvSink(str(tmp_path), 0)


def test_short_write_is_truncated_back(tmp_path, monkeypatch):
    errors = []
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=Clock())
    sink.write(snap(1, [run("a")]))
    before = (tmp_path / "a_matrix.csv").read_bytes()
    real_write = os.write
    monkeypatch.setattr(csvsink.os, "write", lambda fd, data: real_write(fd, data[:10]))
    sink.write(snap(2, [run("a")]))
    monkeypatch.undo()
    assert (tmp_path / "a_matrix.csv").read_bytes() == before
    assert errors and "short write" in errors[0]
    sink.write(snap(3, [run("a")]))
    assert len(read_csv(str(tmp_path / "a_matrix.csv"))) == 3


def test_first_row_on_a_full_disk_leaves_no_empty_file(tmp_path, monkeypatch):
    import errno

    errors = []
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=Clock())

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csvsink.os, "write", full)
    sink.write(snap(1, [run("a")]))
    real_write = os.write
    monkeypatch.setattr(csvsink.os, "write", lambda fd, data: real_write(fd, data[:10]))
    sink.write(snap(2, [run("b")]))
    monkeypatch.undo()
    assert errors and not (tmp_path / "a_matrix.csv").exists() and not (tmp_path / "b_matrix.csv").exists()
    sink.write(snap(3, [run("a"), run("b")]))
    assert len(read_csv(str(tmp_path / "a_matrix.csv"))) == 2 and len(read_csv(str(tmp_path / "b_matrix.csv"))) == 2  # header + row


def test_overall_is_throttled_but_exact_on_status_change_and_close(tmp_path):
    clock = Clock()
    sink = CsvSink(str(tmp_path), 1.0, clock=clock, overall_every=10.0)
    overall = tmp_path / "a_overall.csv"

    def samples():
        return int(pd.read_csv(overall)["samples"][0])

    sink.maybe_write(snap(1, [run("a")]))
    assert samples() == 1  # first row: summary written at once
    for seq in range(2, 6):
        clock.t += 2
        sink.maybe_write(snap(seq, [run("a")]))
    assert samples() == 1  # 8 s later: not yet rewritten
    clock.t += 2
    sink.maybe_write(snap(6, [run("a")]))
    assert samples() == 6  # 10 s: rewritten
    clock.t += 1
    sink.maybe_write(snap(7, [run("a")]))
    assert samples() == 6
    clock.t += 1
    sink.maybe_write(snap(8, [run("a", status="FAILED")]))
    assert samples() == 8 and pd.read_csv(overall)["status"][0] == "FAILED"  # status change: at once
    clock.t += 1
    sink.maybe_write(snap(9, [run("b")]))
    sink.close()
    assert samples() == 8 and int(pd.read_csv(tmp_path / "b_overall.csv")["samples"][0]) == 1
    assert not sink.maybe_write(snap(10, [run("b")]))  # closed


def test_stale_temp_file_or_planted_link_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(str(victim), str(out / (".a_overall.csv.%d.tmp" % os.getpid())))
    sink = CsvSink(str(out), 1.0, clock=Clock())
    sink.write(snap(1, [run("a")]))
    assert victim.read_text() == "precious"
    assert int(pd.read_csv(out / "a_overall.csv")["samples"][0]) == 1
    assert sorted(os.listdir(out)) == ["a_matrix.csv", "a_overall.csv"]


def test_silent_stale_run_gets_no_copies_of_its_last_row(tmp_path):
    from ttop import record

    clock = Clock()
    sink = CsvSink(str(tmp_path), 1.0, clock=clock)
    live = run("remote", updated_at=10.0)
    sink.maybe_write(snap(1, [live]))
    stale = record.replace(live, stale=True, stale_reason="no heartbeat for 5 min")
    for seq in range(2, 6):
        clock.t += 1
        sink.maybe_write(snap(seq, [stale]))
    assert len(read_csv(str(tmp_path / "remote_matrix.csv"))) == 1 + 1
    clock.t += 1
    sink.maybe_write(snap(6, [run("remote", updated_at=99.0)]))  # it speaks again
    assert len(read_csv(str(tmp_path / "remote_matrix.csv"))) == 1 + 2
    # a local process that is alive but stopped reporting (hung?) keeps its rows
    hung = record.replace(run("local", updated_at=5.0), stale=True, alive=True)
    for seq in range(7, 10):
        clock.t += 1
        sink.maybe_write(snap(seq, [hung]))
    assert len(read_csv(str(tmp_path / "local_matrix.csv"))) == 1 + 3


def test_temp_files_of_a_killed_ttop_are_removed_at_start(tmp_path):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / (".a_matrix.csv.%d.tmp" % dead.pid)
    live = tmp_path / (".a_overall.csv.%d.tmp" % os.getppid())  # a live process: left alone
    other = tmp_path / ".unrelated.tmp"
    for p in (stale, live, other):
        p.write_text("half")
    CsvSink(str(tmp_path), 1.0)
    assert not stale.exists() and live.exists() and other.exists()


def test_metric_columns_are_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(csvsink, "MAX_METRIC_COLUMNS", 3)
    errors = []
    clock = Clock()
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=clock)
    for step in range(6):
        clock.t += 1
        sink.maybe_write(snap(step + 1, [run("a", metrics={"step%d" % i: i for i in range(step + 1)})]))
    rows = read_csv(str(tmp_path / "a_matrix.csv"))
    assert rows[0][len(MATRIX_COLUMNS):] == ["metric_step0", "metric_step1", "metric_step2"]
    assert len(rows) == 7
    assert len(errors) == 1 and "more than 3 metrics" in errors[0]


def test_a_foreign_file_under_a_matrix_name_is_kept_aside(tmp_path):
    foreign = tmp_path / "a_matrix.csv"
    foreign.write_bytes(b"someone else's data, not ours\x00\x01")
    errors = []
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=Clock())
    sink.write(snap(1, [run("a")]))
    kept = [n for n in os.listdir(tmp_path) if n.startswith("a_matrix.csv.unrecognised-")]
    assert len(kept) == 1 and (tmp_path / kept[0]).read_bytes() == b"someone else's data, not ours\x00\x01"
    assert len(read_csv(str(foreign))) == 2
    assert len(errors) == 1 and "not a ttop matrix file" in errors[0]


def test_another_users_file_under_a_csv_name_is_not_adopted(three_users, shared_dir):
    """A CSV folder others can write: a stranger's file planted under a run's
    matrix name (a valid-looking one, writable by all; or a sparse 20 GB
    file) is neither read, nor adopted into the summary, nor appended to:
    it is kept aside unread and ttop's own file starts afresh."""
    mallory = three_users[0]
    planted = ",".join(MATRIX_COLUMNS) + "\n" + ",".join(["x", "1", "RUNNING"] + [""] * (len(MATRIX_COLUMNS) - 3)) + "\n"
    mallory.sh('cat > "$1" && chmod 666 "$1"', os.path.join(shared_dir, "a_matrix.csv"), input=planted.encode())
    errors = []
    sink = CsvSink(shared_dir, 1.0, on_error=errors.append, clock=Clock())
    sink.write(snap(1, [run("a")]))
    sink.close()
    mine = os.path.join(shared_dir, "a_matrix.csv")
    assert os.stat(mine).st_uid == os.geteuid() and len(read_csv(mine)) == 2
    assert pd.read_csv(os.path.join(shared_dir, "a_overall.csv")).iloc[0]["samples"] == 1
    kept = [n for n in os.listdir(shared_dir) if n.startswith("a_matrix.csv.unrecognised-")]
    with open(os.path.join(shared_dir, kept[0])) as f:
        assert len(kept) == 1 and f.read() == planted
    assert any("owned by %s" % mallory.name in e for e in errors), errors


def test_text_a_spreadsheet_would_run_is_neutralised(tmp_path):
    formula = '=HYPERLINK("http://x","click")'
    r = run("f", run_name=formula, phase="+cmd|' /C calc'!A0",
            metrics={"note": "@SUM(A1:A9)", "dash": "-2+3", "neg": -1.5, "negtext": "-2", "ok": "fine"})
    r = record.replace(r, status_reason="=1+1")
    sink = CsvSink(str(tmp_path), 1.0, clock=Clock())
    sink.write(snap(1, [r]))
    sink.close()
    m = read_csv(str(tmp_path / "f_matrix.csv"))
    row = dict(zip(m[0], m[1]))
    assert row["phase"] == "'+cmd|' /C calc'!A0"
    assert row["metric_note"] == "'@SUM(A1:A9)" and row["metric_dash"] == "'-2+3"
    # numbers stay numbers, negative or not (a string is text, even "-2"); plain text is untouched
    assert row["metric_neg"] == "-1.5" and row["metric_negtext"] == "'-2" and row["metric_ok"] == "fine"
    o = read_csv(str(tmp_path / "f_overall.csv"))
    summary = dict(zip(o[0], o[1]))
    assert summary["run_name"] == "'" + formula and summary["status_reason"] == "'=1+1"
    assert pd.read_csv(tmp_path / "f_overall.csv")["run_name"][0] == "'" + formula


def test_cell_neutralises_every_formula_lead():
    for lead in ("=", "+", "-", "@", "\t", "\r"):
        out = csvsink.cell(lead + "cmd")
        assert out.startswith("'"), (lead, out)
    assert csvsink.cell("a=b") == "a=b" and csvsink.cell(-3) == "-3" and csvsink.cell(float("-inf")) == "-inf"


def test_a_vanished_csv_folder_is_recreated(tmp_path):
    out = tmp_path / "out"
    errors = []
    clock = Clock()
    sink = CsvSink(str(out), 1.0, on_error=errors.append, clock=clock)
    sink.write(snap(1, [run("a", metrics={"loss": 1.0})]))
    shutil.rmtree(out)
    clock.t += 2
    sink.write(snap(2, [run("a", metrics={"loss": 0.5})]))
    rows = read_csv(str(out / "a_matrix.csv"))
    assert rows[0][: len(MATRIX_COLUMNS)] == list(MATRIX_COLUMNS) and rows[0][-1] == "metric_loss"
    assert len(rows) == 2 and rows[1][-1] == "0.5"
    assert [e for e in errors if "re-created" in e] and not [e for e in errors if "cannot write" in e], errors
    sink.close()
    assert pd.read_csv(out / "a_overall.csv")["samples"][0] == 1  # the summary of what the folder holds


def test_close_reports_whether_the_final_summaries_were_written(tmp_path):
    errors = []
    sink = CsvSink(str(tmp_path), 1.0, on_error=errors.append, clock=Clock())
    sink.write(snap(1, [run("a"), run("b")]))
    sink.write(snap(2, [run("a"), run("b")]))
    (tmp_path / "a_overall.csv").unlink()
    (tmp_path / "a_overall.csv").mkdir()  # the summary cannot be replaced
    assert sink.close() is False
    assert any("a_overall.csv" in e for e in errors)
    ok = CsvSink(str(tmp_path / "fine"), 1.0, clock=Clock())
    ok.write(snap(1, [run("c")]))
    assert ok.close() is True


def test_a_new_run_under_a_reused_name_gets_its_own_files(tmp_path):
    # run "rr" finishes; a new run starts under the same name (another
    # started_at, another PID) while ttop keeps writing: its rows must not
    # be appended to the earlier run's, nor its summary count them
    clock = Clock()
    out = str(tmp_path)
    errors = []
    sink = CsvSink(out, 1.0, clock=clock, on_error=errors.append)
    first = dict(started_at=1700000000.0, pid=100, pid_create_time=1699999999.5)
    second = dict(started_at=1700000500.0, pid=200, pid_create_time=1700000499.5)
    clock.t += 1
    sink.maybe_write(snap(1, [run("rr", cpu=90.0, metrics={"loss": 100.0}, **first)]))
    clock.t += 1
    sink.maybe_write(snap(2, [run("rr", status="FINISHED", cpu=None, metrics={"loss": 99.0}, ended_at=1700000010.0,
                                  **first)]))
    for seq in (3, 4, 5):
        clock.t += 1
        # a writer may give its create time only from its second write on: still one run
        this = dict(second, pid_create_time=None) if seq == 3 else second
        sink.maybe_write(snap(seq, [run("rr", cpu=10.0, metrics={"loss": 1.0}, **this)], t=600 + seq))
    sink.close()
    now = read_csv(os.path.join(out, "rr_matrix.csv"))
    assert [r[2] for r in now[1:]] == ["RUNNING"] * 3  # the new run's rows only
    o = pd.read_csv(os.path.join(out, "rr_overall.csv")).iloc[0]
    assert o["samples"] == 3 and o["cpu_percent_max"] == 10 and o["start_timestamp"] == 1700000500.0
    # the earlier run's files are kept, whole, under a name telling its start
    before = [n for n in os.listdir(out) if n.startswith("rr.") and n.endswith("_matrix.csv")]
    assert before == ["rr.20231114T221320_matrix.csv"], os.listdir(out)
    old = read_csv(os.path.join(out, before[0]))
    assert [r[2] for r in old[1:]] == ["RUNNING", "FINISHED"]
    oo = pd.read_csv(os.path.join(out, "rr.20231114T221320_overall.csv")).iloc[0]
    assert oo["samples"] == 2 and oo["status"] == "FINISHED" and oo["cpu_percent_max"] == 90
    assert len(errors) == 1 and "rr.20231114T221320_matrix.csv" in errors[0]
    load_all(out)


def test_resource_figures_near_the_float_range_top_are_summarised(tmp_path):
    # a run's own report (a run on another host) of 1e308 bytes, twice: the
    # summary's sum overflowed to inf and int(inf) raised, so the summary
    # stopped being written and --headless ended with an internal error
    clock = Clock()
    sink = CsvSink(str(tmp_path), 1.0, clock=clock, overall_every=0.0)
    for i in range(1, 4):
        clock.t += 2
        sink.write(snap(i, [run("big", cpu=1e308, rss=1e308), run("ok", rss=1000 * i)]))
    assert sink.close() is True and sink.last_error is None
    big = dict(zip(*read_csv(os.path.join(str(tmp_path), "big_overall.csv"))))
    assert big["samples"] == "3"
    assert float(big["rss_bytes_mean"]) == 1e308 and float(big["cpu_percent_max"]) == 1e308
    ok = dict(zip(*read_csv(os.path.join(str(tmp_path), "ok_overall.csv"))))
    assert ok["samples"] == "3" and ok["rss_bytes_mean"] == "2000"


def test_rows_are_written_as_the_csv_module_writes_them():
    # rows of cells with and without what needs quotes (comma, quote, line
    # breaks, NUL), one field or several, text or not: the text of the
    # files is the csv module's, byte for byte (or its error)
    import io
    import random

    from ttop.sinks.csvfiles import _csv_text

    def reference(rows):
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        return buf.getvalue()

    rng = random.Random(2026)
    pool = ["", "a", "1.5", ",", '"', "\n", "\r", " ", "\t", "x y", "\u00e9", "\u2028", ";", "'", "a,b", 'q"q',
            "nan", "-1", "=1", "\x00", "\\", "\x1b", 7, None, 2.5]
    for _ in range(3000):
        rows = [[pool[rng.randrange(len(pool))] if rng.random() < 0.2 else
                 "".join(str(rng.choice(pool[:22])) for _ in range(rng.randrange(0, 4)))
                 for _ in range(rng.randrange(0, 6))] for _ in range(rng.randrange(0, 4))]
        try:
            want = reference(rows)
        except csv.Error:
            with pytest.raises(csv.Error):
                _csv_text(rows)
            continue
        assert _csv_text(rows) == want, rows


def test_a_csv_folder_through_another_users_link_is_refused(three_users, shared_dir, tmp_path):
    # --csv-dir in a shared folder: another user's symbolic link there (put
    # before ttop started, or swapped for the folder while it writes) had
    # ttop write its CSV files, and clear what look like its temp files,
    # wherever the link pointed; the rule of --events now holds
    from ttop import cli
    from ttop.cliargs import parse_args

    eve = three_users[0]
    target = tmp_path / "target"  # root's: eve cannot write it
    target.mkdir()
    planted = os.path.join(shared_dir, "stats")
    eve.sh('ln -s "$1" "$2"', str(target), planted)
    with pytest.raises(cli.UsageError, match="symbolic link made by %s in a folder others can write" % eve.name):
        cli.make_sink(parse_args(["x", "--headless", "--csv-dir", planted + "/sub"]), None)
    assert os.listdir(str(target)) == []
    # a folder of eve's, swapped for such a link while ttop writes
    folder = os.path.join(shared_dir, "team")
    eve.sh('mkdir -m 777 "$1"', folder)
    sink = CsvSink(folder, 1.0, clock=Clock())
    sink.write(snap(1, [run("a")]))
    assert sorted(os.listdir(folder)) == ["a_matrix.csv", "a_overall.csv"]
    eve.sh('mv "$1" "$1.old" && ln -s "$2" "$1"', folder, str(target))
    sink.write(snap(2, [run("a")]))
    sink.close()
    assert os.listdir(str(target)) == []
    assert "symbolic link made by %s" % eve.name in (sink.last_error or "")


def test_a_folder_at_a_csv_name_is_refused_once_with_a_clear_reason(three_users, shared_dir):
    # a folder another user made under a run's CSV names (a shared CSV
    # folder): the error was "[Errno 21] Is a directory: 4" (a descriptor
    # number for a name, another at each write), so --headless, which says
    # a message again only every 100 times, printed it at every write
    import io

    from ttop.sinks.headless import ErrorReporter

    eve = three_users[0]
    eve.sh('mkdir "$1" "$2"', os.path.join(shared_dir, "a_matrix.csv"), os.path.join(shared_dir, "a_overall.csv"))
    stream = io.StringIO()
    clock = Clock()
    sink = CsvSink(shared_dir, 1.0, on_error=ErrorReporter(stream), clock=clock)
    for seq in range(1, 4):
        clock.t += 5
        sink.maybe_write(snap(seq, [run("a"), run("b")]))
    sink.close()
    assert len(read_csv(os.path.join(shared_dir, "b_matrix.csv"))) == 4  # the other run's rows
    errors = stream.getvalue().splitlines()
    assert len(errors) == 1, errors
    assert "a_matrix.csv" in errors[0] and "not a regular file" in errors[0], errors


def test_metric_names_alike_once_made_one_line_keep_their_own_columns(tmp_path):
    # "a\tb" and "a b" both read "metric_a b" once made one-line: each value
    # keeps a column of its own (the second "metric_a b#2"), none overwrites
    # the other, and the next rows (and a restart) keep them apart the same way
    out = str(tmp_path)
    sink = CsvSink(out, 1.0, clock=Clock())
    sink.write(snap(1, [run("a", metrics={"a b": 1.0, "a\tb": 2.0, "loss": 0.5})]))
    sink.write(snap(2, [run("a", metrics={"a b": 3.0, "a\tb": 4.0, "loss": 0.4})]))
    sink.close()
    sink = CsvSink(out, 1.0, clock=Clock())
    sink.write(snap(3, [run("a", metrics={"a b": 5.0, "a\tb": 6.0, "loss": 0.3})]))
    rows = read_csv(str(tmp_path / "a_matrix.csv"))
    assert rows[0][len(MATRIX_COLUMNS):] == ["metric_a b", "metric_a b#2", "metric_loss"]
    got = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert [(r["metric_a b"], r["metric_a b#2"], r["metric_loss"]) for r in got] == [
        ("1.0", "2.0", "0.5"), ("3.0", "4.0", "0.4"), ("5.0", "6.0", "0.3")]
