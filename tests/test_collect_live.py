"""Live files read again and again: a cycle runs without cyclic garbage
collection (one collection after it), a live file's ``history`` is checked
but parsed only when used, with the same result as the plain parse, and a
changed file's new values are what the next cycle shows."""
from __future__ import annotations

import gc
import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttop.collect import Collector, fastjson, lazyjson
from ttop.collect.lazyjson import LazyObject, parse_progress_lazy
from ttop.progress import ProgressError, parse_progress, write_json_atomic
from ttop.record import replace


@pytest.fixture(autouse=True, scope="module")
def _lazy_however_short():
    """These tests are of the lazy parse: a history of any length takes it
    (the plain parse of the shortest: test_collect_plain_short.py), and the
    fast parse (orjson: test_fastjson.py) is off, as where it is missing."""
    was, lazyjson.PLAIN_HISTORY = lazyjson.PLAIN_HISTORY, 0
    was_enable, was_loads = fastjson.enable, fastjson._orjson_loads
    fastjson.enable, fastjson._orjson_loads = (lambda: False), None
    yield
    lazyjson.PLAIN_HISTORY = was
    fastjson.enable, fastjson._orjson_loads = was_enable, was_loads


def _doc(name, tick, status="RUNNING", **extra):
    d = {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": 1.7e9 + tick,
         "host": "elsewhere", "batch": tick, "metrics": {"loss": 1.0 / (tick + 1)},
         "history": {"loss": [1.0 / (t + 1) for t in range(tick)], "acc": [None, 0.5]}}
    d.update(extra)
    return d


def _write_all(folder, n, tick, **extra):
    for i in range(n):
        write_json_atomic(os.path.join(folder, "r%04d.json" % i), _doc("r%04d" % i, tick, **extra))
    time.sleep(0.06)  # past the scanner's racy-mtime window


def test_a_cycle_of_many_files_runs_without_cyclic_gc_and_collects_once(tmp_path):
    _write_all(str(tmp_path), 1500, 5)
    c = Collector(str(tmp_path), gpu=False, tpu=False)
    starts = []

    def cb(phase, info):
        if phase == "start":
            starts.append(info["generation"])

    try:
        c.collect()
        _write_all(str(tmp_path), 1500, 6)  # every file changed: all read again
        assert gc.isenabled()
        gc.callbacks.append(cb)
        try:
            snap = c.collect()
        finally:
            gc.callbacks.remove(cb)
    finally:
        c.stop()
    assert len(snap.runs) == 1500 and gc.isenabled()
    # thousands of containers made: collections every few hundred without the pause
    assert len(starts) <= 1


def test_a_cycle_leaves_gc_off_when_the_program_turned_it_off(tmp_path):
    _write_all(str(tmp_path), 3, 1)
    c = Collector(str(tmp_path), gpu=False, tpu=False)
    gc.disable()
    try:
        c.collect()
        assert not gc.isenabled()
    finally:
        gc.enable()
        c.stop()


def test_a_live_file_changed_shows_its_new_values_and_history(tmp_path):
    folder = str(tmp_path)
    _write_all(folder, 3, 4)
    c = Collector(folder, gpu=False, tpu=False)
    try:
        c.collect()
        _write_all(folder, 3, 9)
        run = c.collect().runs[0]
        assert run.data["batch"] == 9 and run.data["metrics"]["loss"] == 0.1
        h = run.data["history"]
        assert isinstance(h, LazyObject)  # read again while live: parsed on use
        assert h == {"loss": [1.0 / (t + 1) for t in range(9)], "acc": [None, 0.5]}
        assert h["acc"] == [None, 0.5] and sorted(h) == ["acc", "loss"] and len(h) == 2
        from ttop.view.metrics import trend
        plain = replace(run, data=dict(run.data, history=json.loads(json.dumps(dict(h)))))
        assert trend(run, "loss") == trend(plain, "loss") is not None
        # ended: kept for long, parsed whole (and archived as usual)
        _write_all(folder, 3, 10, status="FINISHED")
        run = c.collect().runs[0]
        assert run.status == "FINISHED" and run.data["history"]["loss"][-1] == 0.1
        assert not isinstance(dict(run.data.items())["history"], LazyObject)
    finally:
        c.stop()


def test_an_unchanged_live_file_is_not_read_again(tmp_path):
    folder = str(tmp_path)
    _write_all(folder, 4, 2)
    c = Collector(folder, gpu=False, tpu=False)
    try:
        c.collect()
        _write_all(folder, 4, 3)
        first = c.collect()
        reads = c._scanner.total_reads
        again = c.collect()
        assert c._scanner.total_reads == reads
        assert [r.data for r in again.runs] == [r.data for r in first.runs]
        assert all(a.data is b.data for a, b in zip(again.runs, first.runs))
    finally:
        c.stop()


def _same(raw):
    try:
        want = parse_progress(raw)
    except ProgressError as e:
        with pytest.raises(ProgressError) as got:
            parse_progress_lazy(raw)
        assert str(got.value) == str(e)
        return None
    got = parse_progress_lazy(raw)
    assert got[1] == want[1]
    assert got[0] == want[0] and list(got[0]) == list(want[0])  # the same keys in the same order
    h = got[0].get("history")
    assert (h == want[0].get("history")) and (want[0].get("history") == h)
    _same_tails(raw, want[0].get("history"))
    return got


def _same_tails(raw, want):
    """Each series' last points from the text alone are the parsed ones,
    with nothing else parsed; a value that is not a list of numbers gives
    None (the caller parses it all)."""
    h = parse_progress_lazy(raw)[0].get("history")
    if not isinstance(h, LazyObject) or not isinstance(want, dict):
        return
    for key in list(want) + ["missing"]:
        for n in (0, 1, 2, 11, 1000):
            got = h.tail(key, n)
            series = want.get(key)
            numbers = type(series) is list and all(type(x) in (int, float) for x in series)
            if got is None:
                assert not numbers or n == 0, (key, n)
            else:
                assert numbers and json.dumps(got) == json.dumps(series[-n:]), (key, n, got)
    assert h._value is None  # nothing parsed whole


def test_lazy_parse_takes_the_plain_parse_for_anything_unusual():
    base = _doc("x", 3)
    text = json.dumps(base)
    assert isinstance(_same(text.encode())[0]["history"], LazyObject)
    cases = [
        text.replace('"history": {', '"history": {"bad": [1, 2,], '),  # invalid JSON inside
        text.replace('"history": {', '"history": {"n": [01], '),
        text.replace('"history": {', '"history": {"n": [NaN, Infinity, -Infinity, 1e999], '),
        text[:-1] + ', "history": {"later": [2]}}',  # a duplicate key: the last one counts
        text[:-1] + ', "history": "\\u0000ttop:history"}',  # a later duplicate spelling the mark
        text[:-1] + ', "hi\\u0073tory": 5}',  # the key spelt otherwise, of the wrong type: dropped
        text.replace('"metrics": {', '"metrics": {"history": {"nested": [1]}, '),  # first a nested one
        json.dumps(dict(base, history=[1, 2])),  # not an object: dropped
        json.dumps(dict(base, history=None)),
        json.dumps(dict(base, history={})),
        json.dumps(dict(base, rate="fast")),  # another key dropped
        json.dumps({"history": {"a": [1]}, "format": "ttop.progress/1"}),  # required keys missing
        json.dumps({k: v for k, v in base.items() if k != "history"}),
        json.dumps(base, indent=2),
        "[" + text + "]",
        text[: text.index('"history"') + 20],  # torn
        text.replace('"history": {', '"history" :\n {"\\u00e9\\n": [1]}, "x": {'),
        # series of every kind, spaced every way: the tails of the lists of numbers from the text alone
        text.replace('"history": {', '"history": { "s" : [ 1 ,2.5e3,\n-0, NaN , -Infinity ] , "e": [], '
                     '"t": ["a,b", 1], "b": [true, 1], "z": [null], "l": [[1, 2], 3], "o": {"x": [1]}, '
                     '"d": [9], "d": [1, 2, 3], "n": 5, "u": [1], "u": "x", '),
    ]
    for case in cases:
        _same(case.encode())
    assert _same(cases[3].encode())[0]["history"] == {"later": [2]}
    assert _same(cases[4].encode())[0].get("history") is None
    assert _same(b"\xff" + text.encode()) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(history=json_values, extra=st.dictionaries(st.sampled_from(["metrics", "history", "batch", "x"]), json_values,
                                                   max_size=3), cut=st.integers(0, 2000), indent=st.sampled_from([None, 1]))
def test_lazy_parse_equals_the_plain_parse(history, extra, cut, indent):
    d = _doc("fuzz", 2)
    d["history"] = history
    text = json.dumps(d, indent=indent)
    if extra:  # more keys after it, maybe a duplicate history
        text = text[:-1] + ", " + json.dumps(extra)[1:]
    _same(text.encode())
    _same(text.encode()[:cut])


def test_a_new_version_of_a_live_file_with_other_names_is_worked_out_anew(tmp_path):
    folder = str(tmp_path)
    path = os.path.join(folder, "r.json")

    def write(tick, **extra):
        write_json_atomic(path, _doc("r", tick, **extra))
        time.sleep(0.06)

    write(1, pid=7)
    c = Collector(folder, gpu=False, tpu=False)
    try:
        c.collect()
        write(2, pid=7)
        a = c.collect().runs[0]
        write(3, pid=7)
        b = c.collect().runs[0]  # only numbers moved
        assert (b.data["batch"], b.host, b.pid, b.run_name, b.mtime >= a.mtime) == (3, "elsewhere", 7, "r", True)
        write(4, pid=8, host="other", run_name="renamed", status="FAILED", pid_create_time=5)
        d = c.collect().runs[0]
        assert (d.host, d.pid, d.run_name, d.status, d.pid_create_time) == ("other", 8, "renamed", "FAILED", 5.0)
        write(5, pid=8, host="other", run_name="renamed", status="FAILED", pid_create_time=5.0)
        e = c.collect().runs[0]
        assert e.pid_create_time == 5.0 and e.data["batch"] == 5
        write(6, pid=8, host="other", run_name="renamed", status="FAILED", pid_create_time=True)  # wrong type
        f = c.collect().runs[0]
        assert f.pid_create_time is None and "pid_create_time" in f.dropped_keys
    finally:
        c.stop()


def test_a_live_file_next_version_equals_a_fresh_read_and_leaves_earlier_snapshots_as_they_were(tmp_path):
    folder = str(tmp_path)
    path = os.path.join(folder, "r.json")

    def write(tick, **extra):
        write_json_atomic(path, _doc("r", tick, pid=7, heartbeat_interval=1.0, **extra))
        time.sleep(0.06)

    write(1, resources={"cpu_percent": 50.0, "rss_bytes": 1 << 20, "sampled_at": 1.7e9})
    c = Collector(folder, gpu=False, tpu=False)
    try:
        c.collect()
        write(2, resources={"cpu_percent": 50.0, "rss_bytes": 1 << 20, "sampled_at": 1.7e9})
        a = c.collect().runs[0]
        a_fields = dict(vars(a))
        write(3, resources={"cpu_percent": 75.0, "rss_bytes": 2 << 20, "sampled_at": 1.7e9 + 5},
              rate="fast")
        b = c.collect().runs[0]
        assert dict(vars(a)) == a_fields and a.data["batch"] == 2  # published earlier: as it was
        fresh = Collector(folder, gpu=False, tpu=False)
        try:
            f = fresh.collect().runs[0]
        finally:
            fresh.stop()
        keep = ("heartbeat_age", "health", "health_reason")  # the age on each collector's own clock
        assert {k: v for k, v in vars(b).items() if k not in keep} == {
            k: v for k, v in vars(f).items() if k not in keep}
        assert (b.resources.cpu_percent, b.resources.rss_bytes, b.dropped_keys) == (75.0, 2 << 20, ("rate",))
        assert b.heartbeat_age < 1.0  # updated_at changed: a new heartbeat on ttop's clock
        write(3, resources={"cpu_percent": 75.0, "rss_bytes": 2 << 20, "sampled_at": 1.7e9 + 5}, rate=1.5)
        g = c.collect().runs[0]  # the same updated_at in a new version: no new heartbeat
        assert g.data["rate"] == 1.5 and g.dropped_keys == () and g.heartbeat_age >= b.heartbeat_age
    finally:
        c.stop()


def test_heartbeat_limit_is_the_longest_of_its_three_bounds():
    from ttop.collect.runs import heartbeat_limit

    def old(data, interval):
        hb = data.get("heartbeat_interval")
        hb = float(min(hb, 3600)) if isinstance(hb, (int, float)) and not isinstance(hb, bool) and hb > 0 else 0.0
        return max(3.0 * hb, 3.0 * interval, 10.0)  # a claimed interval counts up to an hour

    for hb in (None, True, False, 0, -1, 1, 2, 5, 5.5, 3599, 3600, 7200, 1e308, 10 ** 400, float("nan"), float("inf"),
               "5", [5]):
        for interval in (0.2, 2.0, 4.0, 5):
            got = heartbeat_limit({"heartbeat_interval": hb}, interval)
            assert got == old({"heartbeat_interval": hb}, interval), (hb, interval)


def test_change_notification_names_what_changed_and_leaves_hidden_names_out(tmp_path):
    from ttop.collect.notify import FolderWatch

    w = FolderWatch(str(tmp_path))
    try:
        for i in range(300):  # atomic writes: a hidden temporary file each, renamed over the name
            write_json_atomic(str(tmp_path / ("run%03d.json" % i)), {"i": i})
        (tmp_path / ".hidden.json").write_text("{}")
        (tmp_path / "plain.log").write_text("x")
        assert w.changes() == {"run%03d.json" % i for i in range(300)} | {"plain.log"}
        assert w.hidden == {".hidden.json"}  # (a rank's status file)
        os.rename(str(tmp_path / "run000.json"), str(tmp_path / "moved.json"))
        os.unlink(str(tmp_path / "run001.json"))
        assert w.changes() == {"run000.json", "moved.json", "run001.json"}
        assert w.changes() == set() and w.hidden == set()
    finally:
        w.close()


def test_change_notification_decodes_names_as_os_fsdecode_does(tmp_path):
    # the names of one read are decoded in one piece: each must come out as
    # os.fsdecode gives it alone (bytes that are not UTF-8 included), and the
    # hidden *.json names apart from the temporary files of atomic writes
    import random

    from ttop.collect.notify import FolderWatch, _decode

    rnd = random.Random(7)
    alphabet = [bytes([b]) for b in range(1, 256) if b != 47] + ["é".encode(), "名".encode(), "🙂".encode()]
    for _ in range(200):
        names = {b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))) for _ in range(rnd.randint(1, 8))}
        padded = {n + b"\0" * rnd.randint(1, 16) for n in names}
        assert _decode(padded) == {os.fsdecode(n) for n in names}
    w = FolderWatch(str(tmp_path))
    try:
        odd = [b"\xff\xfe.json", b"caf\xc3\xa9.json", b"\xe5\x90.json", b"a\x80b.log"]
        for n in odd:
            with open(os.path.join(os.fsencode(str(tmp_path)), n), "wb") as f:
                f.write(b"{}")
        write_json_atomic(str(tmp_path / ".r.rank1.json"), {})
        write_json_atomic(str(tmp_path / "x.json"), {})
        assert w.changes() == {os.fsdecode(n) for n in odd} | {"x.json"}
        assert w.hidden == {".r.rank1.json"}
    finally:
        w.close()


def test_the_ttop_process_s_young_gc_threshold_is_only_ever_raised():
    import gc

    from ttop.collect.readfile import PROCESS_GC_YOUNG, set_process_gc

    saved = gc.get_threshold()
    try:
        for before, after in (((700, 10, 10), (PROCESS_GC_YOUNG, 10, 10)), ((2000, 5, 7), (PROCESS_GC_YOUNG, 5, 7)),
                              ((0, 10, 10), (0, 10, 10)), ((50000, 10, 10), (50000, 10, 10))):
            gc.set_threshold(*before)
            set_process_gc()
            assert gc.get_threshold() == after, before
    finally:
        gc.set_threshold(*saved)


def test_change_notification_says_when_events_were_lost(tmp_path):
    # the watched folder itself removed (or moved): None, the caller lists again
    from ttop.collect.notify import FolderWatch

    folder = tmp_path / "p"
    folder.mkdir()
    w = FolderWatch(str(folder))
    try:
        (folder / "a.json").write_text("{}")
        assert w.changes() == {"a.json"} and not w.lost
        (folder / "a.json").unlink()
        folder.rmdir()
        assert w.changes() is None and w.lost
    finally:
        w.close()


def test_a_live_runs_trend_arrow_follows_each_new_file_without_parsing_its_whole_history(tmp_path):
    """The table's trend arrow of a live run comes from the last points of
    the series, read from the history's text as the collector checked it:
    each new version of the file gives its own arrow, and the rest of the
    history is never parsed for it."""
    from ttop.view.metrics import metric_text, trend

    path = os.path.join(str(tmp_path), "r.json")
    c = Collector(str(tmp_path), gpu=False, tpu=False)

    def cycle(loss, hist):
        write_json_atomic(path, _doc("r", 1, metrics={"loss": loss}, history={"loss": hist, "acc": [0.5] * 50}))
        time.sleep(0.06)  # past the scanner's racy-mtime window
        return c.collect().run("r")

    try:
        cycle(1.0, [1.0] * 50)  # read once: live from then on, its history kept as text
        slope = [float(i) for i in range(100)]
        for loss, hist, want in [(0.5, [1.0] * 40 + [0.5], "down"), (2.0, slope + [2.0], "down"),
                                 (200.0, slope + [200.0], "up"), (99.0, slope[:-11] + [99.0] * 11, "flat"),
                                 (7.0, [7.0, 7.0], None)]:
            r = cycle(loss, hist)
            h = r.data["history"]
            assert isinstance(h, LazyObject)
            assert trend(r, "loss") == want
            assert metric_text(r, "loss", ascii=True) == "%g%s" % (loss, {"up": "^", "down": "v", "flat": "="}.get(
                want, ""))
            assert h._value is None  # the history was not parsed whole for it
            assert trend(replace(r, data=dict(r.data, history=h.parsed())), "loss") == want  # as from the dict
    finally:
        c.stop()


numbers = st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
series_of = st.lists(numbers | st.none() | st.just("x"), max_size=8)


def _history_of(raw):
    return parse_progress_lazy(raw)[0]["history"]


def _same_as_fresh(raw, prev):
    """The parse of ``raw`` that checks only what changed since ``prev``
    (the last version's history) gives what the parse that checks all does."""
    try:
        want = parse_progress_lazy(raw)
    except ProgressError as e:
        with pytest.raises(ProgressError) as got_error:
            parse_progress_lazy(raw, prev)
        assert str(got_error.value) == str(e)
        return None
    got = parse_progress_lazy(raw, prev)
    assert got[1] == want[1] and got[0] == want[0] and list(got[0]) == list(want[0])
    h, w = got[0].get("history"), want[0].get("history")
    assert type(h) is type(w)
    if isinstance(h, LazyObject):
        assert (h._text, h._at, h._spans) == (w._text, w._at, w._spans)
        for key in json.loads(h._text):
            assert json.dumps(h.tail(key, 3)) == json.dumps(w.tail(key, 3))
    return h


@settings(max_examples=400, deadline=None)
@given(old=st.dictionaries(st.sampled_from(["loss", "acc", "lr", "a\\u00e9"]), series_of, max_size=4),
       gone=st.integers(0, 6), new=st.lists(st.lists(numbers | st.none(), max_size=4), min_size=4, max_size=4),
       indent=st.sampled_from([None, 1]), keys=st.sampled_from(["same", "renamed", "reversed", "one gone", "one more"]),
       flip=st.none() | st.tuples(st.booleans(), st.integers(0, 4000), st.sampled_from('"],1x [{:')),
       short=st.sampled_from([0, lazyjson.SHORT_HISTORY]))
def test_a_history_checked_against_the_last_version_equals_a_fresh_check(old, gone, new, indent, keys, flip, short):
    # short=0: every history is checked against the last version's (or
    # walked); the default: these short ones are checked whole in C
    was, lazyjson.SHORT_HISTORY = lazyjson.SHORT_HISTORY, short
    try:
        _check_against_last(old, gone, new, indent, keys, flip)
    finally:
        lazyjson.SHORT_HISTORY = was


def _check_against_last(old, gone, new, indent, keys, flip):
    d = _doc("r", 3)
    d["history"] = old
    prev = _history_of(json.dumps(d, indent=indent).encode())
    items = [(k, v[gone:] + more) for (k, v), more in zip(old.items(), new)]
    if keys == "renamed" and items:
        items[-1] = (items[-1][0][:-1] + "Z", items[-1][1])  # as long as it was
    elif keys == "reversed":
        items.reverse()
    elif keys == "one gone":
        items = items[1:]
    elif keys == "one more":
        items.insert(len(items) // 2, ("new", [1.5]))
    d["history"] = dict(items)
    text = json.dumps(d, indent=indent)
    if flip is not None:  # a byte changed (in the history or anywhere): torn, invalid, or another value
        inside, at, c = flip
        a = text.index('"history"') if inside else 0
        at = a + at % (len(text) - a)
        text = text[:at] + c + text[at + 1:]
    _same_as_fresh(text.encode(), prev)


def test_a_shifted_history_checks_only_its_new_points(monkeypatch):
    window = [round(0.1 * t, 3) for t in range(200)]  # (a long history: a short one is checked whole)
    d = _doc("r", 3)
    d["history"] = {"loss": window, "acc": window[::-1], "s": ["kept", "as", "it", "was"]}
    prev = _history_of(json.dumps(d).encode())
    walks = []
    real = lazyjson._walk
    monkeypatch.setattr(lazyjson, "_walk", lambda text, i: walks.append(i) or real(text, i))
    for shift, added in ((2, [7.5, float("nan")]), (0, [1]), (3, []), (0, [])):
        d["history"] = dict(d["history"], loss=d["history"]["loss"][shift:] + added,
                            acc=d["history"]["acc"][shift:] + added)
        prev = _same_as_fresh(json.dumps(d).encode(), prev)
        assert json.dumps(prev["loss"]) == json.dumps(d["history"]["loss"])
    n = len(walks)
    assert n == 4  # each fresh parse walks it, the one against the last version did not
    d["history"] = dict(d["history"], s=["changed"])  # not a list of numbers and changed: walked whole
    _same_as_fresh(json.dumps(d).encode(), prev)
    d["history"] = dict(d["history"], loss=d["history"]["loss"] + ["x"])
    _same_as_fresh(json.dumps(d).encode(), prev)
    assert len(walks) == n + 4


def test_a_short_history_is_checked_whole_and_its_lists_found_on_use(monkeypatch):
    walks = []
    real = lazyjson._walk
    monkeypatch.setattr(lazyjson, "_walk", lambda text, i: walks.append(i) or real(text, i))
    d = _doc("r", 3)
    d["history"] = {"loss": [0.5, 0.25, 1.0], "s": ["x"]}
    raw = json.dumps(d).encode()
    assert len(raw) - raw.index(b'"history"') < lazyjson.SHORT_HISTORY
    h = parse_progress_lazy(raw)[0]["history"]
    assert isinstance(h, LazyObject) and h._spans is None and walks == []  # checked whole, in C
    assert h.tail("loss", 2) == [0.25, 1.0] and len(walks) == 1  # its lists found on first use
    assert h.tail("s", 2) is None and h.tail("loss", 5) == [0.5, 0.25, 1.0] and len(walks) == 1
    assert h._value is None and h == {"loss": [0.5, 0.25, 1.0], "s": ["x"]}
    bad = raw.replace(b"[0.5, ", b"[0.5, , ")  # no JSON: the plain parse's error
    with pytest.raises(ProgressError) as e:
        parse_progress_lazy(bad)
    with pytest.raises(ProgressError) as want:
        parse_progress(bad)
    assert str(e.value) == str(want.value)


def test_tails_of_successive_versions_are_their_own_points():
    """The points read for one version's tail are reused by their text
    only: another version's points at the same places read as they are."""
    d = _doc("r", 3)
    seen = []
    for last in ("1.5", "2.5", "1e3", "-0", "NaN", "1.5", "7"):
        d["history"] = {"loss": [0.25] * 12 + ["@"]}
        raw = json.dumps(d).replace('"@"', last).encode()
        h = _history_of(raw)
        got = h.tail("loss", 11)
        assert json.dumps(got) == json.dumps([0.25] * 10 + [json.loads(last)]), (last, got)
        assert type(got[-1]) is type(json.loads(last))
        seen.append(got[-1])
    assert json.dumps(seen) == '[1.5, 2.5, 1000.0, 0, NaN, 1.5, 7]'
