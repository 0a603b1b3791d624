"""A live file whose history is very short (a run's first versions) takes
the plain parse, not the lazy one (ttop.collect.lazyjson.PLAIN_HISTORY):
the same data, dropped keys and errors as either, its history a dict."""
from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttop.collect import lazyjson
from ttop.collect.lazyjson import LazyObject, parse_progress_lazy
from ttop.progress import ProgressError, parse_progress

numbers = st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
series = st.lists(numbers | st.none() | st.just("x"), max_size=12)


def _parse(fn, raw):
    try:
        data, dropped = fn(raw)
    except ProgressError as e:
        return "error", str(e)
    h = data.get("history")
    data = dict(data, history=dict(h)) if isinstance(h, Mapping) else data  # (a LazyObject: the dict it stands for)
    return json.dumps(data, sort_keys=True), sorted(dropped)


@settings(max_examples=300, deadline=None)
@given(history=st.dictionaries(st.sampled_from(["loss", "acc", "history", "a\\u00e9"]), series, max_size=3)
       | st.just([]) | st.just("x"),
       after=st.sampled_from([{}, {"resources": {"cpu_percent": 9.5, "rss_bytes": 1 << 30}}, {"note": "history"}]),
       status=st.sampled_from(["RUNNING", "FINISHED"]), indent=st.sampled_from([None, 1]),
       flip=st.none() | st.tuples(st.integers(0, 4000), st.sampled_from('"],1x [{:')))
def test_a_short_history_parsed_plainly_is_what_the_lazy_parse_and_the_plain_one_give(history, after, status, indent,
                                                                                       flip):
    d = {"format": "ttop.progress/1", "run_name": "r", "status": status, "updated_at": 1.7e9, "batch": 3,
         "metrics": {"loss": 0.5}, "history": history}
    d.update(after)
    text = json.dumps(d, indent=indent)
    if flip is not None:  # a byte changed: torn, invalid, or another value
        at, c = flip
        at %= len(text)
        text = text[:at] + c + text[at + 1:]
    raw = text.encode()
    want = _parse(parse_progress, raw)
    assert _parse(parse_progress_lazy, raw) == want  # (the default threshold)
    was, lazyjson.PLAIN_HISTORY = lazyjson.PLAIN_HISTORY, 0
    try:
        assert _parse(parse_progress_lazy, raw) == want  # every history lazily
    finally:
        lazyjson.PLAIN_HISTORY = was


def test_only_the_shortest_histories_take_the_plain_parse():
    def history_of(n):
        d = {"format": "ttop.progress/1", "run_name": "r", "status": "RUNNING", "updated_at": 1.7e9,
             "history": {"loss": [0.125 * t for t in range(n)]}}
        raw = json.dumps(d).encode()
        return len(raw) - raw.index(b'"history"'), parse_progress_lazy(raw)[0]["history"]

    short, h = history_of(3)
    assert short < lazyjson.PLAIN_HISTORY and type(h) is dict and h == {"loss": [0.0, 0.125, 0.25]}
    longer, h = history_of(60)
    assert lazyjson.PLAIN_HISTORY <= longer < lazyjson.SHORT_HISTORY and isinstance(h, LazyObject)
    assert h == {"loss": [0.125 * t for t in range(60)]}


@pytest.mark.parametrize("raw", [b"", b"{}", b'{"history": {}}', b"[1]", b"\xff"])
def test_odd_short_files_give_the_plain_parse_s_error(raw):
    assert _parse(parse_progress_lazy, raw) == _parse(parse_progress, raw)
