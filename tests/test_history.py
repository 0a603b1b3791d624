"""The metric history file: the writer (ttop.monitor.history), the format and
bounded model (ttop.histfile) and the reader (ttop.collect.history)."""
from __future__ import annotations

import json
import math
import os

import pytest

from conftest import ROOT
from ttop import histfile as H
from ttop.collect.history import HistoryError, HistoryReader
from ttop.monitor.core import TrainingMonitor
from ttop.monitor.history import MetricLog
from ttop.view.chart import Series, render_chart

NAN = float("nan")


def series(cols, name):
    c = cols[name]
    return Series(name, c.y, x=c.x, t=c.t, lo=c.lo, hi=c.hi, flagged=c.flagged)


def text(lines):
    return ["".join(t for t, _ in l) for l in lines]


@pytest.mark.slow
def test_a_1m_step_run_with_5_metrics_stays_bounded_and_shows_a_nan_at_500123(tmp_path):
    log = MetricLog(str(tmp_path), "big", lambda m: None)
    latest = {}
    bound = H.size_bound(5)
    biggest = 0
    step = 0
    for tick in range(1000):  # 1,000 writer ticks of 1,000 batches each
        for _ in range(1000):
            step += 1
            loss = NAN if step == 500123 else 1.0 / (1 + step * 1e-5)
            log.queue.append((step, {"loss": loss, "acc": step * 1e-6, "lr": 0.1, "grad_norm": 1.0, "tput": 5.0}))
        log.drain(latest)
        log.flush(1000.0 + tick)
        biggest = max(biggest, os.path.getsize(log.path))
    assert biggest <= bound, (biggest, bound)
    assert latest["acc"] == pytest.approx(1.0)
    cols = HistoryReader(str(tmp_path), "big.history.jsonl").poll()
    assert sorted(cols) == ["acc", "grad_norm", "loss", "lr", "tput"]
    loss = cols["loss"]
    assert len(loss.x) <= H.RECENT + H.OLD
    assert loss.x[-1] == 1000000 and loss.x[0] <= 2000
    # exactly one entry holds the NaN, and it covers step 500,123
    assert len(loss.flagged) == 1
    i = loss.flagged[0]
    assert loss.x[i - 1] < 500123 <= loss.x[i]
    # the whole-run chart marks it where it is (the middle of the x axis)
    axis = text(render_chart([series(cols, "loss")], 80, 8))[-1]
    assert axis.count("!") == 1
    assert 0.45 < axis.index("!") / len(axis) < 0.56
    # the recent part is at full resolution for the last 500 points: per tick
    # of 1,000 updates, 64 buckets
    assert loss.x[-1] - loss.x[-2] <= 1000 // H.TICK_POINTS + 1


def test_a_spike_between_two_ticks_is_kept_as_the_bucket_max(tmp_path):
    log = MetricLog(str(tmp_path), "r", lambda m: None)
    for i in range(1, 5001):
        log.queue.append((i, {"loss": 1000.0 if i == 2345 else 1.0}))
    log.drain({})
    log.flush(1.0)
    cols = HistoryReader(str(tmp_path), "r.history.jsonl").poll()
    assert max(cols["loss"].hi) == 1000.0
    assert max(cols["loss"].y) == 1.0  # the bucket's last value hides it; its max does not
    assert text(render_chart([series(cols, "loss")], 40, 6))[0].startswith("loss  last 1  min 1  max 1000")


def test_metrics_keep_the_order_they_were_first_given_in(tmp_path):
    """Updates of one tick with different names (``loss`` alone, then many
    others): the latest values, which become the progress file's metrics and
    what is kept of them when they do not all fit, are in the order the names
    were first given, whatever the hash seed."""
    log = MetricLog(str(tmp_path), "r", lambda m: None)
    names = ["m%03d" % i for i in range(199, -1, -1)]
    log.queue.append((1, {"loss": 1.0}))
    log.queue.append((2, dict.fromkeys(names, 0.5)))
    log.queue.append((3, {"acc": 0.9, "loss": 0.5}))
    latest = {}
    log.drain(latest)
    assert list(latest) == ["loss"] + names + ["acc"]
    assert latest["loss"] == 0.5


def test_a_tick_of_thousands_of_names_is_folded_in_one_pass(tmp_path):
    """A name per update (a metric per sample or per step, beside ``loss``):
    the writer folded such a tick name by name over every update, quadratic
    under the run's lock (40,000 updates: minutes, where SIGTERM and the end
    of the run wait). Run in a child process so that a hang can be killed."""
    import subprocess
    import sys
    code = (
        "import sys; from ttop.monitor.history import MetricLog\n"
        "log = MetricLog(sys.argv[1], 'r', lambda m: None)\n"
        "items = []\n"
        "for i in range(40000):\n"
        "    items += [i + 1, {'loss': float(i + 1), 'sample%d' % i: 0.5}]\n"
        "latest = {}\n"
        "log.drain(latest, items)\n"
        "log.flush(1.0)\n"
        "names = list(latest)\n"
        "assert names[:3] == ['loss', 'sample0', 'sample1'] and names[-1] == 'sample9998', names[:3]\n"
        "assert len(names) == 10000 and latest['loss'] == 40000.0\n"  # (the first 10,000 names are kept)
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                             timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("folding 40,000 updates with a name each did not end")
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr
    c = HistoryReader(str(tmp_path), "r.history.jsonl").poll()
    assert c["loss"].lo[0] == 1.0 and c["loss"].x[-1] == c["loss"].y[-1] == 40000.0
    assert c["sample0"].x == [1.0] and c["sample1"].x == [2.0]


def test_a_fifo_renamed_over_the_history_file_does_not_hang_the_writer(tmp_path):
    import threading
    log = MetricLog(str(tmp_path), "r", lambda m: None)
    log.queue.append((1, {"loss": 1.0}))
    log.drain({})
    log.flush(1.0)
    path = str(tmp_path / "r.history.jsonl")
    os.mkfifo(str(tmp_path / "fifo"))
    os.replace(str(tmp_path / "fifo"), path)  # another user of a folder without the sticky bit
    log.queue.append((2, {"loss": 2.0}))
    log.drain({})
    t = threading.Thread(target=log.flush, args=(2.0,), daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # release the blocked open before failing
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        t.join(5)
        pytest.fail("flush blocked on a FIFO")
    assert log.error
    log.queue.append((3, {"loss": 3.0}))
    log.drain({})
    log.flush(3.0)  # written whole again, as a regular file
    assert os.path.isfile(path) and log.error is None
    assert HistoryReader(str(tmp_path), "r.history.jsonl").poll()["loss"].y == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("swapped", ["hard link", "foreign file"])
def test_a_file_swapped_in_under_the_history_name_is_not_appended_to(tmp_path, swapped):
    """Another user of a folder without the sticky bit renames over the
    history file a hard link to a file of the run's user (where the kernel
    lets them: fs.protected_hardlinks=0), or a file of their own: the writer
    appended its next lines to that file (a config of the run's user gained
    JSON lines; the user's own file made ttop refuse the run's charts). It
    now writes the history whole again under its name, as after a FIFO."""
    log = MetricLog(str(tmp_path), "r", lambda m: None)
    log.queue.append((1, {"loss": 1.0}))
    log.drain({})
    log.flush(1.0)
    path = str(tmp_path / "r.history.jsonl")
    other = tmp_path / "other.txt"
    other.write_text("keep me\n")
    if swapped == "hard link":
        os.link(str(other), str(tmp_path / "swap"))
    else:
        (tmp_path / "swap").write_text("")
        os.chown(str(tmp_path / "swap"), 65534, 65534)  # nobody's
    os.replace(str(tmp_path / "swap"), path)
    for step in (2, 3):
        log.queue.append((step, {"loss": float(step)}))
        log.drain({})
        log.flush(float(step))
    assert other.read_text() == "keep me\n"
    st = os.lstat(path)
    assert st.st_nlink == 1 and st.st_uid == os.geteuid()
    assert HistoryReader(str(tmp_path), "r.history.jsonl").poll()["loss"].y == [1.0, 2.0, 3.0]


def test_few_updates_per_tick_are_points_and_steps_go_on_across_phases(tmp_path):
    mon = TrainingMonitor(folder=str(tmp_path), run_name="ph", interval=0.05, gpu=False, handle_signals=False)
    mon.start_monitoring()
    with mon.phase("train"):
        for i in range(10):
            mon.start_batch()
            mon.update_metrics(loss=1.0 / (i + 1))
    with mon.phase("validation"):
        for _ in range(3):
            mon.start_batch()
            mon.update_metrics({"val_loss": 0.5})
    with mon.phase("train"):
        mon.start_batch()
        mon.update_metrics(loss=float("inf"))
    mon.set_finished()
    data = json.loads((tmp_path / "ph.json").read_text())
    assert data["history_file"] == "ph.history.jsonl"
    assert data["metrics"] == {"loss": "Infinity", "val_loss": 0.5}
    cols = HistoryReader(str(tmp_path), data["history_file"]).poll()
    assert cols["loss"].x == [float(s) for s in range(1, 11)] + [14.0]
    assert cols["val_loss"].x == [11.0, 12.0, 13.0]
    assert cols["loss"].flagged == [10] and math.isinf(cols["loss"].y[-1])


def test_a_metric_named_by_a_number_has_the_same_name_in_both_files(tmp_path):
    mon = TrainingMonitor(folder=str(tmp_path), run_name="num", interval=0.05, gpu=False, handle_signals=False)
    mon.start_monitoring()
    for i in range(3):
        mon.start_batch()
        mon.update_metrics({1: 2.0 + i})
    mon.set_finished()
    data = json.loads((tmp_path / "num.json").read_text())
    assert data["metrics"] == {"1": 4.0}
    cols = HistoryReader(str(tmp_path), data["history_file"]).poll()
    assert cols["1"].y == [2.0, 3.0, 4.0] and cols["1"].x == [1.0, 2.0, 3.0]


def test_reader_ignores_a_torn_last_line_and_reads_it_once_complete(tmp_path):
    p = tmp_path / "r.history.jsonl"
    p.write_text('{"format":"ttop.history/1"}\n{"t":1,"d":{"loss":[[1,0.5]]}}\n{"t":2,"d":{"loss":[[2,0.')
    r = HistoryReader(str(tmp_path), "r.history.jsonl")
    assert r.poll()["loss"].y == [0.5]
    assert r.bad_lines == 0
    with open(p, "a") as f:
        f.write('25]]}}\nnot json\n{"t":3,"d":{"loss":[[3,"NaN"],[4,5,0.1,0.2,0.15,1]]}}\n')
    c = r.poll()["loss"]
    assert c.x == [1.0, 2.0, 3.0, 5.0] and c.flagged == [2, 3]
    assert r.bad_lines == 1


def test_a_line_nested_too_deeply_is_one_bad_line_and_the_others_are_kept(tmp_path):
    p = tmp_path / "r.history.jsonl"
    p.write_text('{"format":"ttop.history/1"}\n{"t":1,"d":{"loss":[[1,0.5]]}}\n' + "[" * 100000 + "\n"
                 '{"t":2,"d":{"loss":[[2,0.25]]}}\n')
    r = HistoryReader(str(tmp_path), "r.history.jsonl")
    assert r.poll()["loss"].y == [0.5, 0.25]
    assert r.bad_lines == 1


def test_a_number_beyond_the_float_range_is_one_bad_line_and_the_others_are_kept(tmp_path):
    # a 400-digit int as a tick's time, a point's value, a bucket's minimum
    # (a hand-written file): float() of it raised OverflowError out of the
    # reader, and the run's chart showed none of the lines read with it
    big = "1" + "0" * 400
    p = tmp_path / "r.history.jsonl"
    p.write_text('{"format":"ttop.history/1"}\n{"t":1,"d":{"loss":[[1,0.5]]}}\n'
                 '{"t":%s,"d":{"loss":[[2,0.4]]}}\n{"t":3,"d":{"loss":[[3,%s]]}}\n'
                 '{"t":4,"d":{"loss":[[4,5,%s,0.1,0.1,0]]}}\n{"t":6,"d":{"loss":[[6,0.25]]}}\n' % (big, big, big))
    r = HistoryReader(str(tmp_path), "r.history.jsonl")
    assert r.poll()["loss"].y == [0.5, 0.25]
    assert r.bad_lines == 3
    # a compacted line's entry too
    p.write_text('{"format":"ttop.history/1"}\n{"m":"loss","e":[[1,1,1.0,0.5,0.5,0.5,0],[2,2,2.0,%s,0.1,0.1,0],'
                 '[3,3,3.0,0.25,0.25,0.25,0]]}\n' % big)
    r = HistoryReader(str(tmp_path), "r.history.jsonl")
    assert r.poll()["loss"].y == [0.5, 0.25] and r.bad_lines == 1


def test_reader_memory_stays_bounded_on_a_file_without_newlines(tmp_path, monkeypatch):
    """A history file that is one huge line (a sparse file of another user's
    making, 1 GB of zeros) must not be held whole: the line is dropped as
    bad and the lines after it are read."""
    from ttop.collect import history as CH

    monkeypatch.setattr(CH, "READ_MAX", 1 << 16)
    monkeypatch.setattr(CH, "LINE_MAX", 1 << 18, raising=False)
    p = tmp_path / "r.history.jsonl"
    with open(p, "wb") as f:
        f.write(b'{"format":"ttop.history/1"}\n')
        f.truncate(f.tell() + (1 << 22))  # 4 MiB of zeros, no newline: 64 polls
        f.seek(0, os.SEEK_END)
        f.write(b'\n{"t":1,"d":{"loss":[[1,0.5]]}}\n')
    r = HistoryReader(str(tmp_path), "r.history.jsonl")
    for _ in range(80):
        cols = r.poll()
        assert len(r._partial) <= CH.LINE_MAX
    assert cols["loss"].y == [0.5]
    assert r.bad_lines == 1


def test_reader_notices_a_compacted_replacement(tmp_path):
    log = MetricLog(str(tmp_path), "c", lambda m: None)
    r = HistoryReader(str(tmp_path), "c.history.jsonl")
    assert r.poll() == {}  # not written yet
    for tick in range(300):
        for k in range(100):
            s = tick * 100 + k + 1
            log.queue.append((s, {"loss": float(s)}))
        log.drain({})
        log.flush(float(tick))
        if tick % 37 == 0:
            r.poll()
    ino = os.stat(log.path).st_ino
    got = r.poll()["loss"]
    want = H.columns(log.model.metrics["loss"].entries())
    assert got.x[-H.RECENT:] == want.x[-H.RECENT:]  # the recent part, entry for entry
    assert got.x[0] <= 2 * want.x[0] and len(got.x) <= H.RECENT + H.OLD
    assert r._ino == ino


def test_reader_refuses_paths_outside_the_folder_and_non_files(tmp_path):
    (tmp_path / "sub").mkdir()
    outside = tmp_path / "secret.jsonl"
    outside.write_text('{"t":1,"d":{"x":[[1,1]]}}\n')
    os.symlink(str(outside), str(tmp_path / "sub" / "link.jsonl"))
    with pytest.raises(HistoryError):
        HistoryReader(str(tmp_path / "sub"), "../secret.jsonl").poll()
    with pytest.raises(HistoryError):
        HistoryReader(str(tmp_path / "sub"), "link.jsonl").poll()
    with pytest.raises(HistoryError):
        HistoryReader(str(tmp_path / "sub"), "/etc/passwd").poll()
    os.mkfifo(str(tmp_path / "sub" / "fifo.jsonl"))
    with pytest.raises(HistoryError):
        HistoryReader(str(tmp_path / "sub"), "fifo.jsonl").poll()


def test_an_update_appended_to_a_list_just_swapped_out_is_not_lost(tmp_path):
    log = MetricLog(str(tmp_path), "late", lambda m: None)
    first = [1, {"loss": 1.0}]  # the monitor's queue: n, values, n, values, ...
    latest = {}
    log.drain(latest, first)
    first.extend((2, {"loss": NAN}))  # the loop had loaded the old list before the swap
    log.drain(latest, [3, {"loss": 3.0}])
    log.flush(1.0)
    c = HistoryReader(str(tmp_path), "late.history.jsonl").poll()["loss"]
    assert c.x == [1.0, 2.0, 3.0] and c.flagged == [1]
    assert latest["loss"] == 3.0


def test_updates_racing_the_writer_are_each_recorded_once_in_order(tmp_path):
    # the loop's updates and the writer's swaps of the queue interleave
    # freely (a 10 ms tick, no lock on the hot path): every step is in the
    # file once, in order, with its own value, across a phase change too
    m = TrainingMonitor(folder=str(tmp_path), run_name="race", interval=0.01, handle_signals=False, gpu=False)
    m.start_monitoring()
    step = 0
    for phase in ("train", "validation"):
        m.start_phase(phase)
        for _ in range(15000):
            step += 1
            m.start_batch()
            m.update_metrics(loss=float(step))
    m.set_finished()
    c = HistoryReader(str(tmp_path), "race.history.jsonl").poll()["loss"]
    assert c.lo[0] == 1.0 and c.x[-1] == c.y[-1] == 30000.0
    assert c.y == c.x and c.hi == c.x  # each entry's last value is its last step's
    assert all(lo == prev + 1 for lo, prev in zip(c.lo[1:], c.x))  # no step lost, none twice
    assert m._metrics["loss"] == 30000.0


def test_lines_are_read_column_wise_as_they_would_be_one_by_one(tmp_path):
    lines = [
        {"format": H.FORMAT},
        {"m": "loss", "e": [[1, 4, 10.0, 0.5, 2.0, 1.0, 0], [5, 8, 11, None, None, "NaN", 1], [9, 9, 12, 1, 1, 1, 0]]},
        {"m": "odd", "e": [[1, 2, 3], [4, 5, 6.0, 1.0, 2.0, 1.5, 0]]},  # a short entry is skipped
        {"t": 13, "d": {"loss": [[10, 0.25], [11, "Infinity"]], "acc": [[10, 11, 0.1, 0.9, 0.5, 0]],
                        "grad": [[1, 5, 0.5, 2, 1.5, 0], [6, 9, None, None, "NaN", 1]], "lr": [[1, 0.1], [2, 1]]}},
        {"t": 14, "d": {"loss": [[12, 13, None, None, "NaN", 1], [14, 0.125]], "acc": [[12, 0.7]],
                        "grad": [[10, 12, 0.25, 0.5, "-Infinity", 1]], "lr": [[3, 0.05]]}},
        {"t": 15.5, "d": {"loss": [[15, 16, 0.5, 0.75, 0.5, 0]], "acc": [[13, 0.6], [14, 15, 0.1, 0.2, 0.2, 0]]}},
        {"t": True, "d": {}},  # not a tick line
        [1, 2],
    ]
    one_by_one = H.HistoryModel()
    bad = [one_by_one.add_line(obj) for obj in lines].count(False)
    together = H.HistoryModel()
    assert together.add_lines(lines) == bad == 2
    for name in ("loss", "acc", "odd", "grad", "lr"):
        a, b = one_by_one.metrics[name].entries(), together.metrics[name].entries()
        assert repr(a) == repr(b)  # NaN included
    assert [e[6] for e in together.metrics["loss"].entries()] == [False, True, False, False, True, True, False, False]


def test_the_progress_files_history_is_written_as_json_dumps_would():
    from ttop.monitor.series import MetricHistory
    from ttop.progress import dumps

    h = MetricHistory(4)
    for i, v in enumerate([0.1, NAN, 1e-05, 3, float("inf"), 2.5e300, -0.0, True]):
        h.sample({"loss": v, 'a"b\x01': i * 0.3, 7: "x", "\u00fc": None}, i)
    spliced = dumps({"a": 1, "history": h.as_json(), "z": [NAN]})
    assert spliced == dumps({"a": 1, "history": h.as_dict(), "z": [NAN]})
    assert json.loads(spliced)["history"]["loss"] == [None, 2.5e300, -0.0, 1.0]
    from ttop.progress import RawJSON

    for _ in range(2):  # the marks' text is made once, then kept: the same splice every time
        assert dumps({"h": RawJSON("[1]"), "x": "\x00", "g": RawJSON('{"a":2}')}) == '{"h":[1],"x":"\\u0000","g":{"a":2}}'
    # each series' text is kept between writes (a new point drops the oldest
    # one's text): the same as json.dumps after every sample, whatever the
    # size, with metrics that come later and points that do not move
    for size in (1, 2, 3, 100):
        h = MetricHistory(size)
        for i in range(2 * size + 3):
            metrics = {"loss": 1.0 / (i + 1), "lr": 0.01}
            if i >= 2:
                metrics["late"] = [NAN, 1e-300, 12345678.9][i % 3]
            h.sample(metrics, i // 2)  # some samples change nothing but a metric
            assert h.as_json() == dumps(h.as_dict())
        assert len(h.as_dict()["loss"]) == size


class _Item:
    """A numpy / torch scalar's stand-in: a number through ``.item()``."""

    def __init__(self, x):
        self.x = x

    def item(self):
        return self.x


@pytest.mark.parametrize("odd", [True, 3, _Item(2.5), "text", None, 10**400, float("nan")])
def test_a_tick_of_mixed_values_is_bucketed_as_their_floats(tmp_path, odd):
    # floats with one odd value among them, more than a tick's points: the
    # buckets are those of the values converted one by one (bools and ints
    # as floats, .item() used, what is no number left out with its step)
    from ttop.progress import json_safe, number_or_none

    vals = [5.0 + (i % 7) * 0.25 for i in range(40)]  # the odd value is its bucket's minimum
    vals[13] = odd
    log = MetricLog(str(tmp_path), "mixed", lambda m: None)
    for step, v in enumerate(vals, 1):
        log.queue.append((step, {"m": v}))
    log.drain({})
    log.flush(5.0)
    pairs = [(s, v if type(v) is float else number_or_none(json_safe(v))) for s, v in enumerate(vals, 1)]
    pairs = [(s, v) for s, v in pairs if v is not None]
    want = H.buckets([s for s, _ in pairs], [v for _, v in pairs], H.TICK_POINTS, 5.0)
    c = HistoryReader(str(tmp_path), "mixed.history.jsonl").poll()["m"]
    got = list(zip(c.x, c.lo, c.hi, c.y))
    assert len(got) == len(want)
    for (x, lo, hi, y), e in zip(got, want):
        assert x == e[1] and y == e[5] or (y != y and e[5] != e[5])
        assert (lo, hi) == (e[3], e[4]) or (lo != lo and e[3] != e[3])
    assert c.flagged == [i for i, e in enumerate(want) if e[6]]
    assert all(type(v) is float for v in c.y + c.lo + c.hi)


def test_a_tick_of_scalar_objects_is_converted_one_by_one_never_added_up(tmp_path):
    # torch tensors add up with a kernel launch each (on a GPU): a tick of
    # them is converted through .item(), not summed first
    added = []

    class Scalar(_Item):
        def __add__(self, other):
            added.append(1)
            return NotImplemented

        __radd__ = __add__

    log = MetricLog(str(tmp_path), "tensors", lambda m: None)
    for step in range(1, 41):
        log.queue.append((step, {"loss": Scalar(float(step))}))
    log.drain({})
    log.flush(5.0)
    c = HistoryReader(str(tmp_path), "tensors.history.jsonl").poll()["loss"]
    assert c.x[-1] == c.y[-1] == 40.0 and c.lo[0] == 1.0 and len(c.x) == H.TICK_POINTS
    assert added == []


def _mixed_runs(rng):
    """Value lists as a tick sees them: random, monotonic, one object
    throughout, equal objects, signed zeros, ints and bools among floats."""
    n = rng.choice([17, 31, 33, 100, 1000])
    c = 0.01
    return [
        [rng.random() for _ in range(n)],
        [2.0 * 0.999 ** i for i in range(n)],
        [1.0 - 0.999 ** i for i in range(n)],
        [c] * n,
        [float("0.01") for _ in range(n)],
        [rng.choice([0.0, -0.0]) for _ in range(n)],
        [rng.choice([0.0, -0.0, 0, False, 1, True, 1.0, 2, 2.0]) for _ in range(n)],
        [rng.choice([1.5, 1.5, 2.5, 0.5]) for _ in range(n)],
    ]


def test_buckets_pick_the_very_objects_min_and_max_pick():
    # each bucket's values are sorted rather than passed to min() and max():
    # of equal values (0.0 and -0.0, 1 and 1.0 and True) the same object is
    # picked, the first, as min() and max() pick it
    import random

    rng = random.Random(7)
    for _ in range(30):
        for vals in _mixed_runs(rng):
            steps = list(range(5, 5 + len(vals)))
            s0, s1, lo, hi, last = H.finite_columns(steps, vals, H.TICK_POINTS)
            n, k = len(vals), H.TICK_POINTS
            cuts = [(n * j // k, n * (j + 1) // k) for j in range(k)]
            assert len(lo) == k
            for (a, b), x0, x1, l, h, z in zip(cuts, s0, s1, lo, hi, last):
                seg = vals[a:b]
                assert (x0, x1) == (steps[a], steps[b - 1])
                assert l is min(seg) and h is max(seg) and z is seg[-1]
            assert vals == list(vals)  # the input is not reordered


def test_a_tick_of_one_value_throughout_is_bucketed_as_the_sorted_columns_bucket_it():
    # a learning rate: one count says so, no sum and no sort; the buckets are
    # finite_columns' (the very objects: of equal values the first), and any
    # other tick goes the general way
    from ttop.monitor.history import _constant_columns, _plain_buckets

    c = 0.01
    runs = [[c] * 40, [float("0.01") for _ in range(40)], [0.0, -0.0] * 20, [1.0, 1, True] * 13,
            [c] * 39 + [0.02], [c] * 39 + [NAN], [NAN] * 40, [float("inf")] * 40, [3] * 40, [c] * 1000]
    for vals in runs:
        steps = list(range(7, 7 + len(vals)))
        got = _plain_buckets(steps, vals, 5.0)
        if _constant_columns(steps, vals) is None:
            assert vals[0] != vals[0] or vals[0] - vals[0] != 0 or type(vals[0]) is not float or vals.count(vals[0]) < len(vals)
            continue
        s0, s1, lo, hi, last = H.finite_columns(steps, vals, H.TICK_POINTS)
        want = list(zip(s0, s1, [5.0] * len(s0), map(float, lo), map(float, hi), map(float, last), [False] * len(s0)))
        assert got == want
        for g, l, h, z in zip(got, lo, hi, last):
            if type(l) is float:
                assert g[3] is l and g[4] is h
            if type(z) is float:
                assert g[5] is z
    assert _constant_columns(list(range(40)), [c] * 40) is not None  # the fast way was taken
    assert _constant_columns(list(range(40)), [0.0, -0.0] * 20) is not None


def _entries_of(rng, vals, t):
    steps = [rng.choice([3, 7]) * i // 2 for i in range(len(vals))]  # repeated steps too
    if len(vals) <= H.TICK_POINTS:
        return [(s, s, t, v, v, v, False) if v - v == 0 else (s, s, t, NAN, NAN, v, True) for s, v in zip(steps, vals)]
    return H.buckets(steps, vals, H.TICK_POINTS, t)


def test_a_tick_line_is_written_as_json_dumps_writes_it():
    # the line is put together one metric at a time, each float's text made
    # once where one object is a bucket's min, max and last value: the text
    # is json.dumps's, whatever the entries
    import random

    rng = random.Random(11)
    floats_only = []
    for _ in range(40):
        per_metric = {}
        for i, vals in enumerate(_mixed_runs(rng)):
            vals = [float(v) for v in vals]
            if rng.random() < 0.3:
                vals = vals[:rng.choice([1, 2, 16])]  # points
            if rng.random() < 0.15:
                vals[rng.randrange(len(vals))] = rng.choice([NAN, float("inf"), -float("inf")])
            per_metric[rng.choice(["loss", "m%d" % i, "\u00fc/x", 'q"u'])] = _entries_of(rng, vals, 7.0)
        per_metric["ints"] = [(1, 4, 7.0, 2, 3, 3, False), (5, 5, 7.0, 1.0, 1.0, 1.0, False), (6, 6, 7.0, 2.0, 1.0, 1.0, False)]
        per_metric["empty"] = []
        t = 1.7e9 + rng.random()
        want = json.dumps({"t": round(t, 3), "d": {k: H._row(e) for k, e in per_metric.items()}},
                          separators=(",", ":"), allow_nan=False) + "\n"
        assert H.tick_line(t, per_metric) == want
        floats_only.append(json.loads(want))
    assert any(len(e) == 2 for line in floats_only for ents in line["d"].values() for e in ents)  # points were tried
    # the steps' text made for one metric is not taken for another's equal steps of another type
    ints, floats = [(1, 2, 1.0, 0.5, 0.75, 0.5, False)], [(1.0, 2.0, 1.0, 0.5, 0.75, 0.5, False)]
    assert H.tick_line(1.0, {"a": ints, "b": floats}) == '{"t":1.0,"d":{"a":[[1,2,0.5,0.75,0.5,0]],"b":[[1.0,2.0,0.5,0.75,0.5,0]]}}\n'
    with pytest.raises(ValueError):  # as json.dumps, never a NaN literal
        H.tick_line(1.0, {"x": [(1, 2, 1.0, NAN, NAN, 1.0, False)]})
    assert H.tick_line(1.0, {7: [(1, 1, 1.0, 0.5, 0.5, 0.5, False)]}) == '{"t":1.0,"d":{"7":[[1,0.5]]}}\n'
    # one entry (a metric given once in the tick): a point written straight
    # away where it is one, else as json.dumps writes the entry
    x = 0.1 + 0.2
    for ent in [(5, 5, 1.0, x, x, x, False), (5, 5, 1.0, -0.0, -0.0, -0.0, False), (5.0, 5.0, 1.0, x, x, x, False),
                (5, 5, 1.0, 3, 3, 3, False), (True, True, 1.0, x, x, x, False), (5, 5, 1.0, NAN, NAN, NAN, True),
                (5, 5, 1.0, 0.3, 0.3, float("0.3"), False), (4, 5, 1.0, x, x, x, False), (5, 5, 1.0, x, 2.0, x, False),
                (5, 5, 1.0, float("inf"), float("inf"), float("inf"), True)]:
        want = json.dumps({"t": 1.0, "d": {"m": H._row([ent])}}, separators=(",", ":"), allow_nan=False) + "\n"
        assert H.tick_line(1.0, {"m": [ent]}) == want


def test_bucketed_ticks_number_their_steps_on_from_the_ended_phases():
    # after a phase ended, a tick's steps are the batch counts plus the
    # batches of the ended phases, made only where a bucket reads them: the
    # entries are those of the steps written out, for a tick of one
    # update's names, of updates with different names, and of two drains
    # folded into one tick (the late arrival in the previous list)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        log = MetricLog(folder, "shift", lambda m: None)
        latest = {}
        q = []
        for n in range(1, 41):
            q.extend((n, {"a": float(n), "b": -float(n)}))
        q.extend((-1, 40))  # a phase of 40 batches ended
        for n in range(1, 101):
            q.extend((n, {"a": 0.5 * n, "b": float(n % 7)} if n % 3 else {"b": float(n % 7)}))
        log.drain(latest, q)
        q.extend((101, {"a": 99.0}))  # late, in the list swapped out before
        second = []
        log.drain(latest, second)
        second.extend((102, {"a": 98.0, "b": 1.0}))
        log.drain(latest, [103, {"a": 97.0}])
        log.flush(3.0)
        steps_a = list(range(1, 41)) + [40 + n for n in range(1, 101) if n % 3] + [141, 142, 143]
        vals_a = [float(n) for n in range(1, 41)] + [0.5 * n for n in range(1, 101) if n % 3] + [99.0, 98.0, 97.0]
        steps_b = list(range(1, 41)) + [40 + n for n in range(1, 101)] + [142]
        vals_b = [-float(n) for n in range(1, 41)] + [float(n % 7) for n in range(1, 101)] + [1.0]
        got = {k: m.entries() for k, m in log.model.metrics.items()}
        assert got["a"] == H.buckets(steps_a, vals_a, H.TICK_POINTS, 3.0)
        assert got["b"] == H.buckets(steps_b, vals_b, H.TICK_POINTS, 3.0)
        assert all(type(x) is int for e in got["a"] + got["b"] for x in e[:2])
        assert latest == {"a": 97.0, "b": 1.0}
        # one drain a tick: the steps are read where the buckets need them
        for t, nan_at in ((4.0, None), (5.0, 150)):
            vals = [float(n % 11) if n != nan_at else NAN for n in range(104, 204)]
            log.drain(latest, [x for n, v in zip(range(104, 204), vals) for x in (n, {"a": v})])
            log.flush(t)
            want = H.buckets([40 + n for n in range(104, 204)], vals, H.TICK_POINTS, t)
            got = log.model.metrics["a"].entries()[-H.TICK_POINTS:]
            assert [e[:3] + e[5:] for e in got] == [e[:3] + e[5:] for e in want]
            assert [e[3:5] for e in got if not e[6]] == [e[3:5] for e in want if not e[6]]
            assert sum(e[6] for e in got) == (nan_at is not None)


def _dumped_as_json_dumps(model, header):
    head = dict(header)
    head["format"] = H.FORMAT
    out = [json.dumps(head, separators=(",", ":"), allow_nan=False) + "\n"]
    for name, m in model.metrics.items():
        ents = [[e[0], e[1], round(e[2], 3), e[3], e[4], e[5], 0] if not e[6]
                else [H._enc(e[0]), H._enc(e[1]), round(e[2], 3), H._enc_lohi(e[3]), H._enc_lohi(e[4]), H._enc(e[5]), 1]
                for e in m.entries()]
        out.append(json.dumps({"m": name, "e": ents}, separators=(",", ":"), allow_nan=False) + "\n")
    return out


def test_a_compacted_file_is_written_as_json_dumps_writes_it(monkeypatch):
    # a compaction makes each float's text once where one object is several
    # values of an entry or of neighbouring ones: the text is json.dumps's,
    # whatever the entries (merged old buckets, NaN, constant metrics, -0.0,
    # float steps, int values, odd names)
    import random

    monkeypatch.setattr(H, "RECENT", 40)
    monkeypatch.setattr(H, "OLD", 12)
    rng = random.Random(5)
    for _ in range(12):
        model = H.HistoryModel()
        lr = 0.01
        for tick in range(rng.choice([1, 5, 30])):
            t = 1.7e9 + tick + rng.random()
            for i, vals in enumerate(_mixed_runs(rng)):
                vals = [float(v) for v in vals]
                if rng.random() < 0.1:
                    vals[rng.randrange(len(vals))] = rng.choice([NAN, float("inf"), -float("inf"), -0.0, 0.0])
                name = rng.choice(["loss", "m%d" % i, "\u00fc/x", 'q"u'])
                model.metric(name).add(_entries_of(rng, vals, t))
            model.metric("lr").add([(tick, tick, t, lr, lr, lr, False)] * rng.choice([1, 3]))
            if rng.random() < 0.3:
                model.metric("ints").add([(tick, tick + 1, t, 2, 3, 3, False), (tick + 1.0, tick + 1.0, t, 1.0, 1.0, 1.0, False)])
        assert model.dump_lines({"file": "x.history.jsonl"}) == _dumped_as_json_dumps(model, {"file": "x.history.jsonl"})
    assert any(len(m.old) for m in model.metrics.values())  # merged old buckets were tried
    empty = H.HistoryModel()
    empty.metric("a")
    assert empty.dump_lines({}) == _dumped_as_json_dumps(empty, {})
    with pytest.raises(ValueError):  # as json.dumps, never a NaN literal
        m = H.HistoryModel()
        m.metric("x").add([(1, 2, 1.0, NAN, NAN, 1.0, False)])
        m.dump_lines({})


def test_a_wall_clock_set_back_mid_run_keeps_the_time_axis_whole(tmp_path):
    """The writer's clock set back an hour half-way (an NTP step, a VM
    resumed): the history's later points had times before the earlier
    ones, and the detail chart by time drew the whole run in its first
    column, with +0s at both ends of its axis."""
    wall = [1_800_000_000.0]

    class Clock:
        @staticmethod
        def time():
            return wall[0]

        monotonic = staticmethod(__import__("time").monotonic)
        sleep = staticmethod(__import__("time").sleep)
        perf_counter = staticmethod(__import__("time").perf_counter)

    from conftest import wait_until

    m = TrainingMonitor(folder=str(tmp_path), run_name="r", interval=0.05, gpu=False, handle_signals=False,
                        clock=Clock)
    m.start_monitoring()
    m.start_phase("train", total_batches=100)
    reader = HistoryReader(str(tmp_path), "r" + H.SUFFIX)
    for b in range(40):
        m.start_batch()
        m.update_metrics(loss=1.0 / (b + 1))
        # each point written (by the writer's own tick) before the clock moves on
        want = 1.0 / (b + 1)
        wait_until(lambda want=want: "loss" in reader.poll() and reader.poll()["loss"].y[-1] == want, timeout=30)
        wall[0] += -3600.0 if b == 19 else 10.0
    m.set_finished()
    loss = HistoryReader(str(tmp_path), json.loads((tmp_path / "r.json").read_text())["history_file"]).poll()["loss"]
    assert all(a <= b for a, b in zip(loss.t, loss.t[1:]))
    assert loss.t[-1] - loss.t[0] >= 300  # 38 steps of 10 s forward, the hour back left out
    chart = render_chart([Series("loss", loss.y, x=loss.x, t=loss.t)], 80, 12, x_by="time")
    axis = "".join(text for text, _ in chart[-1])
    assert axis.rstrip().endswith("m20s"), axis  # 38 x 10 s
