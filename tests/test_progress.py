import json
import math
import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttop import progress as P
from ttop.levers import control as C


def good(**kw):
    d = {"format": P.PROGRESS_FORMAT, "run_name": "r", "status": "RUNNING", "updated_at": 1.0}
    d.update(kw)
    return json.dumps(d).encode()


def test_parse_minimal_and_drops_wrong_optional_types():
    data, dropped = P.parse_progress(good(epoch="3", batch=4, rate=True, pid=12))
    assert data["batch"] == 4 and data["pid"] == 12
    assert "epoch" not in data and "rate" not in data
    assert sorted(dropped) == ["epoch", "rate"]


@pytest.mark.parametrize(
    "raw,reason",
    [
        (b"", "empty"),
        (b"\xff\xfe{", "UTF-8"),
        (b'{"format": "ttop.progress/1"', "invalid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (good(format="other/1"), "format"),
        (good(status="DANCING"), "status"),
        (good(updated_at="now"), "updated_at"),
        (b"[" * 100000, "JSON"),
    ],
)
def test_parse_rejects_with_reason(raw, reason):
    with pytest.raises(P.ProgressError) as e:
        P.parse_progress(raw)
    assert reason in str(e.value)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("ok-run_1", "ok-run_1"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("a/b\x00c\x1b[31m", "a_b_c_[31m"),
        ("..", "run"),
        ("control_x", "run_control_x"),
        ("", "run"),
    ],
)
def test_sanitize_run_name(name, expected):
    out = P.sanitize_run_name(name)
    assert out == expected
    assert "/" not in out and "\x00" not in out and not out.startswith(".")


def test_sanitize_replaces_exactly_control_characters_and_separators():
    # every character of the first planes, one at a time between letters:
    # C0, DEL, C1 and both slashes become "_", all else is kept
    import re

    unsafe = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
    for cp in list(range(0x3000)) + [0xFEFF, 0x10FFFF]:
        name = "a%sb" % chr(cp)
        assert P.sanitize_run_name(name) == unsafe.sub("_", name), hex(cp)


def test_sanitize_caps_length_on_character_boundary():
    out = P.sanitize_run_name("\u00e9" * 500)
    assert len(out.encode()) <= P.MAX_RUN_NAME_BYTES
    out.encode("utf-8")  # whole characters only


def test_json_safe_non_finite_and_objects():
    class Scalar:
        def item(self):
            return float("nan")

    out = P.dumps({"a": math.inf, "b": -math.inf, "c": Scalar(), "d": object(), "e": (1, 2)})
    back = json.loads(out)
    assert back["a"] == "Infinity" and back["b"] == "-Infinity" and back["c"] == "NaN"
    assert isinstance(back["d"], str) and back["e"] == [1, 2]
    assert math.isnan(P.number_or_none("NaN"))


def test_write_json_atomic_leaves_no_temp(tmp_path):
    path = tmp_path / "r.json"
    P.write_json_atomic(str(path), {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    assert os.listdir(tmp_path) == ["r.json"]
    # readable by others (as open() would create it under umask 022), not mkstemp's 0600
    mode = os.stat(path).st_mode & 0o777
    assert mode == 0o666 & ~_umask() and mode & 0o044


def _umask():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))


def test_atomic_write_follows_no_planted_link_and_survives_a_stale_temp(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    folder = tmp_path / "f"
    folder.mkdir()
    os.symlink(str(victim), str(folder / P.temp_name("r.json")))
    P.write_json_atomic(str(folder / "r.json"), {"x": 1})
    assert victim.read_text() == "keep"
    assert json.loads((folder / "r.json").read_text()) == {"x": 1}
    assert os.listdir(folder) == ["r.json"]


def test_atomic_writes_from_threads_never_mix(tmp_path):
    path = str(tmp_path / "r.json")
    errors = []

    def writer(n):
        try:
            for i in range(200):
                P.write_json_atomic(path, {"n": n, "i": i, "pad": "x" * (1000 * n)})
        except Exception as e:  # pragma: no cover - the failure being tested
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["pad"] == "x" * (1000 * doc["n"])
    assert os.listdir(tmp_path) == ["r.json"]


def test_resolve_inside(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.log").write_text("x")
    outside = tmp_path / "secret"
    outside.write_text("s")
    os.symlink(outside, folder / "link.log")
    assert P.resolve_inside(str(folder), "a.log") == str((folder / "a.log").resolve())
    for bad in ["../secret", str(outside), "link.log", "", ".", "a\x00b", "x\ud800.log", None, 5]:
        assert P.resolve_inside(str(folder), bad) is None


def test_filenames():
    assert P.is_progress_filename("run.json")
    for name in ["control_run.json", ".run.json.abc.tmp", ".json", "run.stdout.log", "run.json.tmp"]:
        assert not P.is_progress_filename(name)


def test_control_roundtrip_and_typing(tmp_path):
    P.write_control(str(tmp_path), "r", 3, {"lr": 0.1})
    with open(P.control_path(str(tmp_path), "r"), "rb") as f:
        seq, variables = P.parse_control(f.read())
    assert seq == 3 and variables == {"lr": 0.1}
    assert P.coerce_value("float", 1) == 1.0 and isinstance(P.coerce_value("float", 1), float)
    with pytest.raises(P.ProgressError):
        P.coerce_value("int", 1.5)
    with pytest.raises(P.ProgressError):
        P.coerce_value("int", True)
    with pytest.raises(P.ProgressError) as e:
        C.parse_typed_text("float", "abc")
    assert "not a float" in str(e.value)
    assert C.parse_typed_text("bool", "False") is False


def test_huge_integers_never_raise():
    # a metric or time that is an int beyond the float range (or beyond the
    # digits json.dumps will write) must not break readers or the writer
    assert P.number_or_none(10**400) == math.inf and P.number_or_none(-(10**400)) == -math.inf
    back = json.loads(P.dumps({"a": 10**5000, "b": -(10**5000), "c": 10**400}))
    assert back == {"a": "Infinity", "b": "-Infinity", "c": 10**400}


def _big(which):
    """ints around json_safe's cap (14000 bits) and json's limit (4300 digits)"""
    return {"cap": 2**14000, "over": -(2**14001), "limit": 10**4300 - 1, "past": 10**5000}[which]


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(["cap", "over", "limit", "past"]).map(_big),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
)
_keys = st.one_of(st.text(max_size=4), st.integers(-3, 3), st.booleans(), st.none(), st.floats(allow_nan=False))
_values = st.recursive(
    _scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.tuples(kids, kids), st.dictionaries(_keys, kids, max_size=4)),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=6), _values, max_size=6))
def test_dumps_writes_what_json_dumps_writes_of_json_safe(obj):
    # dumps skips json_safe's copy when nothing needs converting: the text
    # must be the same as the long way's, whatever the values
    assert P.dumps(obj) == json.dumps(P.json_safe(obj), allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def test_dumps_converts_what_is_nested_past_json_safes_depth():
    deep = [1.0]
    for _ in range(12):
        deep = [deep]
    obj = {"deep": deep, "key": {True: 1, None: 2, 3: {"x": float("nan")}}}
    assert P.dumps(obj) == json.dumps(P.json_safe(obj), allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(P.dumps(obj))["key"] == {"True": 1, "None": 2, "3": {"x": "NaN"}}


def _checked(obj):
    """check_progress of a copy: (data, dropped) or the error's text."""
    try:
        data, dropped = P.check_progress(dict(obj))
    except P.ProgressError as e:
        return str(e)
    return data, sorted(dropped)


_SHAPE_DOC = {"format": P.PROGRESS_FORMAT, "run_name": "r", "status": "RUNNING", "updated_at": 1.5,
              "pid": 7, "pid_create_time": 2.5, "heartbeat_interval": 1.0, "rate": 3.0, "batch": 4,
              "metrics": {"loss": 1.0}, "phase": None, "custom": "anything"}


@pytest.mark.parametrize("change", [
    {"rate": math.nan}, {"rate": math.inf}, {"pid_create_time": -math.inf}, {"updated_at": math.nan},
    {"heartbeat_interval": 10 ** 400}, {"updated_at": 10 ** 400},  # ints beyond the float range
    {"rate": 1e308, "pid_create_time": 1e308},  # finite values whose sum overflows
    {"rate": math.inf, "pid_create_time": -math.inf},  # a sum of NaN
    {"status": "DANCING"}, {"run_name": ""}, {"format": "other/1"}, {"rate": 5, "updated_at": 2},
])
def test_check_progress_of_a_known_shape_equals_the_whole_check(change):
    # the first file of a shape takes the whole check and is remembered;
    # the next one with the same keys and classes takes the short way
    P._SHAPES.clear()
    assert _checked(_SHAPE_DOC) == (_SHAPE_DOC, [])
    doc = dict(_SHAPE_DOC, **change)
    short = _checked(doc)
    P._SHAPES.clear()
    assert short == _checked(doc)
    if isinstance(short, str):
        return
    assert short[1] or all(math.isfinite(doc[k]) for k in ("rate", "pid_create_time", "heartbeat_interval"))


def test_check_progress_short_way_with_ints_beyond_the_float_range_whose_sum_is_finite():
    # numbers written as ints: 10**400 and -10**400 add up to 0, yet
    # neither is a float's value; the whole check drops both
    P._SHAPES.clear()
    doc = dict(_SHAPE_DOC, updated_at=1, rate=2, pid_create_time=3, heartbeat_interval=1)
    assert _checked(doc) == (doc, [])
    evil = dict(doc, rate=10 ** 400, pid_create_time=-10 ** 400)
    short = _checked(evil)
    P._SHAPES.clear()
    assert short == _checked(evil)
    assert short[1] == ["pid_create_time", "rate"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({k: st.one_of(st.floats(), st.integers(min_value=-10 ** 320, max_value=10 ** 320),
                                           st.none(), st.booleans())
                              for k in ("updated_at", "pid_create_time", "heartbeat_interval", "rate")}))
def test_check_progress_short_way_never_differs(values):
    P._SHAPES.clear()
    _checked(_SHAPE_DOC)
    doc = dict(_SHAPE_DOC, **values)
    short = _checked(doc)
    P._SHAPES.clear()
    assert short == _checked(doc)
    if not isinstance(short, str):
        assert all(v is None or math.isfinite(v) for k, v in short[0].items()
                   if k in ("updated_at", "pid_create_time", "heartbeat_interval", "rate"))


def test_check_progress_shape_takes_its_hint_only_for_the_same_keys_and_classes():
    # a file's last version's shape is looked at first (even one no longer
    # among the known shapes); another layout or class is checked as before
    P._SHAPES.clear()
    first = P.check_progress_shape(dict(_SHAPE_DOC))
    assert first[2] is None  # the first of its shape: checked whole, remembered
    shape = P.check_progress_shape(dict(_SHAPE_DOC))[2]
    assert shape is not None
    P._SHAPES.clear()
    assert P.check_progress_shape(dict(_SHAPE_DOC), shape, True)[2] is shape
    other = {k: v for k, v in _SHAPE_DOC.items() if k != "custom"}
    assert P.check_progress_shape(other, shape, True)[2] is not shape
    floats = dict(_SHAPE_DOC, batch=4.0)  # the same keys, a value of another class: not that shape
    assert P.check_progress_shape(floats, shape, True)[2] is not shape
    # a number that is not finite, in a value not from orjson (finite not claimed), is still caught
    data, dropped, got = P.check_progress_shape(dict(_SHAPE_DOC, rate=math.nan), shape)
    assert got is None and dropped == ["rate"]
