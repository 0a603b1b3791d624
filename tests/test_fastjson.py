"""The collector's fast parse (ttop.collect.fastjson: orjson) gives what
``json.loads`` gives (an integer beyond 64 bits as the nearest float), or
leaves the bytes to it: checked against each other on random JSON, torn and
altered bytes, and the cases where the two differ."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttop.collect import fastjson
from ttop.collect.scanread import parse_file
from ttop.progress import parse_progress

pytest.importorskip("orjson")
fastjson.enable()


def same(a, b) -> bool:
    """Equal, of the same classes throughout, dict keys in the same order,
    NaN equal to NaN, -0.0 not equal to 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def _int64(text: str):
    """json's integer, or the nearest float beyond 64 bits (what orjson gives)."""
    n = int(text)
    return n if -2**63 <= n < 2**64 else float(text)


def check(raw: bytes) -> bool:
    """The property; True where the fast parse took the bytes."""
    got = fastjson.parse(raw)
    if got is fastjson.NOT_PARSED:
        return False
    want = json.loads(raw.decode("utf-8"), parse_int=_int64)  # must not raise: orjson took it
    assert same(got, want), (raw, got, want)
    return True


ints = (st.integers(-10**6, 10**6) | st.integers(-2**66, 2**66)
        | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**19, -10**18, 10**30]))
floats = st.floats(allow_nan=True, allow_infinity=True) | st.floats(1e-5, 1e-2) | st.floats(-1e-3, 1e-3)
scalars = st.none() | st.booleans() | ints | floats | st.text(max_size=8)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=5), max_leaves=25)
edits = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["0", "9", ".", "-", "e", "E", "+", "1" * 20,
                                                                    '"', ",", "]", "}", " ", "\x00", "\\"])),
                 max_size=3)


@settings(max_examples=600, deadline=None)
@given(value=values, ensure_ascii=st.booleans(), indent=st.sampled_from([None, 1]), edits=edits)
def test_the_fast_parse_gives_what_json_gives_or_leaves_the_bytes_to_it(value, ensure_ascii, indent, edits):
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    for at, piece in edits:  # torn, invalid, or another value
        at %= len(text) + 1
        text = text[:at] + piece + text[at:]
    check(text.encode("utf-8", "surrogatepass"))  # (a lone surrogate unescaped: not UTF-8)


@pytest.mark.parametrize("raw", [
    b"[1e400]", b"[-1e400]", b"[NaN]", b"[Infinity]", b'{"a":"\\ud800"}', b'{"a":"\xff"}', b"", b"  ",
    b"[" * 2000 + b"]" * 2000, b"[1" + b"0" * 400 + b"]", b"\xef\xbb\xbf{}",
])
def test_what_orjson_refuses_is_left_to_json(raw):
    assert fastjson.parse(raw) is fastjson.NOT_PARSED


@pytest.mark.parametrize("raw", [
    b'{"lr":0.00029999999999999997,"t":0.0012345678901234567}',  # fractions of 20 and 19 digits
    b'{"ns":1700000000123456789,"big":18446744073709551615,"neg":-9223372036854775808}',  # within 64 bits
    b'{"a":1,"b":[1.5e-07,-2.5e+300,-0.0,0],"a":"x"}', b'{"e":"\\u00e9\\ud83d\\ude00\\u0000"}',
])
def test_common_values_take_the_fast_parse_and_equal_json(raw):
    assert check(raw)
    assert fastjson.parse(raw) == json.loads(raw)  # (within 64 bits: json's values exactly)


def test_an_integer_beyond_64_bits_is_read_as_the_nearest_float():
    got = fastjson.parse(b'{"a":18446744073709551616,"b":-9223372036854775809,"c":[123456789012345678901234]}')
    assert got == {"a": 2.0**64, "b": -(2.0**63), "c": [1.2345678901234568e23]}
    assert [type(v) for v in (got["a"], got["b"], got["c"][0])] == [float, float, float]


def test_a_progress_file_parsed_fast_is_what_the_plain_parse_gives():
    doc = {"format": "ttop.progress/1", "run_name": "r", "status": "RUNNING", "updated_at": 1.7e9, "batch": 3,
           "epoch": 3, "metrics": {"loss": 0.5, "lr": 0.00029999999999999997},
           "history": {"loss": [0.1 * t for t in range(50)]}, "resources": {"rss_bytes": 1 << 30}}
    for d in (doc, dict(doc, metrics={"loss": float("nan")}), dict(doc, status="NOPE")):
        raw = json.dumps(d).encode()
        data, dropped, error = parse_file(raw, None, False, False)[:3]
        try:
            want, want_dropped = parse_progress(raw)
        except Exception as e:
            assert data is None and error == str(e)
        else:
            assert json.dumps(data) == json.dumps(want) and list(dropped) == list(want_dropped) and error is None


def test_the_first_look_does_not_import_orjson_and_a_full_cycle_does(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(
        {"format": "ttop.progress/1", "run_name": "r", "status": "RUNNING", "updated_at": 1.7e9}))
    code = textwrap.dedent("""
        import sys
        from ttop.collect.collector import Collector
        c = Collector(sys.argv[1], interval=2.0, gpu=False, tpu=False)
        snap = c.first_look()
        print(len(snap.runs), "orjson" in sys.modules)
        snap = c.collect()
        print(len(snap.runs), "orjson" in sys.modules)
        c.stop()
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=root,
                         timeout=120)
    assert out.stdout.split("\n")[:2] == ["1 False", "1 True"], out.stderr


def test_an_integer_field_beyond_64_bits_is_dropped_as_of_the_wrong_class():
    raw = json.dumps({"format": "ttop.progress/1", "run_name": "r", "status": "RUNNING", "updated_at": 1.7e9,
                      "epoch": 2**70, "batch": 3, "metrics": {"tokens": 2**70}}).encode()
    data, dropped, error = parse_file(raw, None, False, False)[:3]
    assert error is None and "epoch" not in data and "epoch" in dropped
    assert data["batch"] == 3 and data["metrics"] == {"tokens": 2.0**70}


def test_a_history_file_reads_the_same_with_the_fast_parse_and_without(tmp_path, monkeypatch):
    from ttop.collect.history import HistoryReader
    from ttop.monitor.history import MetricLog

    log = MetricLog(str(tmp_path), "r", lambda m: None)
    for tick in range(30):
        for step in range(tick * 50, tick * 50 + 50):
            log.queue.append((step, {"loss": float("nan") if step == 777 else 1.0 / (1 + step), "acc": step * 1e-4}))
        log.drain({})
        log.flush(1000.0 + tick)
    big = "1" + "0" * 400
    with open(tmp_path / "r.history.jsonl", "a") as f:  # hand-written lines: bad ones, an integer beyond 64 bits
        f.write('not json\n%s\n{"t":%s,"d":{"loss":[[9000,0.4]]}}\n{"t":9001,"d":{"loss":[[9001,%d]]}}\n'
                % ("[" * 5000, big, 2**70))

    def read():
        r = HistoryReader(str(tmp_path), "r.history.jsonl")
        cols = r.poll()
        return {k: (c.x, c.y, c.t, c.lo, c.hi, c.flagged) for k, c in cols.items()}, r.bad_lines

    fast = read()
    monkeypatch.setattr(fastjson, "_orjson_loads", None)
    plain = read()
    assert fast == plain and fast[1] == 3 and fast[0]["loss"][1][-1] == 2.0**70
