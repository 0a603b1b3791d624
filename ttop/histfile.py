"""The metric history file (``<run>.history.jsonl``): format and the bounded
in-memory model that both its writer (:mod:`ttop.monitor.history`) and its
reader (:mod:`ttop.collect.history`) keep.

The file is JSON Lines, UTF-8, appended to by the run's writer thread once per
tick, and now and then replaced whole (atomically) by a compacted copy. Lines:

* ``{"format": "ttop.history/1", ...}``: the first line (more keys may follow).
* ``{"t": T, "d": {NAME: [ENTRY, ...], ...}}``: what one tick added. ``T`` is
  the wall-clock time of the tick. An ``ENTRY`` is either a point
  ``[STEP, VALUE]`` or a bucket ``[STEP0, STEP1, LO, HI, LAST, BAD]`` (the
  values of steps STEP0..STEP1: their finite minimum and maximum, ``null``
  when none is finite; the last value; ``BAD`` 1 when one of them was NaN or
  infinite, else 0).
* ``{"m": NAME, "e": [[STEP0, STEP1, T, LO, HI, LAST, BAD], ...]}``: a
  metric's whole series in a compacted file (each entry with its own time).

Values are numbers (as Python's ``repr`` writes them) or the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
``STEP`` counts the batches (``start_batch`` / ``track``, every phase) since
the run started. A reader ignores a last line without its newline (torn by a
crash or still being written) and any line it cannot parse.

Bounds. Each metric keeps the last :data:`RECENT` entries as they were
written (full resolution: one point per ``update_metrics`` call when a tick
saw at most :data:`TICK_POINTS` of them, else that many buckets), and older
entries in at most :data:`OLD` buckets of about equal width in steps: when
there are more, the width grows and neighbours are merged (min of mins, max
of maxes, NaN flags or-ed), so a spike or a single NaN anywhere in the run
stays visible. At most :data:`MAX_METRICS`
metrics are kept. The writer compacts the file once
:data:`COMPACT_BYTES` were appended since the last compaction, so its size
stays below ``COMPACT_BYTES + metrics x (RECENT + OLD) x ENTRY_BYTES`` plus one
tick's line (see :func:`size_bound`).
"""
from __future__ import annotations

import json
import math
from bisect import bisect_left
from functools import lru_cache
from itertools import islice as _islice
from itertools import repeat
from operator import eq, getitem, itemgetter
from operator import le as _le
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

FORMAT = "ttop.history/1"
SUFFIX = ".history.jsonl"
RECENT = 1000
OLD = 1000
TICK_POINTS = 16
MAX_METRICS = 64
COMPACT_BYTES = 1024 * 1024
#: Upper bound of one compacted entry's JSON text (7 numbers of at most 24
#: characters each, commas and brackets).
ENTRY_BYTES = 7 * 25 + 3

#: An entry: (step0, step1, t, lo, hi, last, bad). lo / hi are NaN when the
#: bucket has no finite value.
Entry = Tuple[float, float, float, float, float, float, bool]


class Columns(NamedTuple):
    """A metric's entries as parallel lists (for a chart): ``x`` the last
    step of each entry, ``t`` its time, ``y`` its last value, ``lo`` / ``hi``
    its finite min / max (NaN: none), ``flagged`` the indices of entries
    holding a NaN or an infinity."""

    x: List[float]
    t: List[float]
    y: List[float]
    lo: List[float]
    hi: List[float]
    flagged: List[int]


def columns(entries: List[Entry]) -> Columns:
    return Columns([e[1] for e in entries], steady_times([e[2] for e in entries]), [e[5] for e in entries],
                   [e[3] for e in entries], [e[4] for e in entries], [i for i, e in enumerate(entries) if e[6]])


def steady_times(ts: List[float]) -> List[float]:
    """Wall times of the writer's ticks made non-decreasing for a time axis:
    where its clock was set back (an NTP step, a VM resumed), the later
    points move on from the earlier ones instead of before them (a chart by
    time drew the whole run in its first column)."""
    if all(map(_le, ts, _islice(ts, 1, None))):  # the usual case, at C speed
        return ts
    out: List[float] = []
    last = -math.inf
    shift = 0.0
    for t in ts:
        v = t + shift
        if v < last:  # set back: continue from the point before
            shift += last - v
            v = last
        out.append(v)
        last = v
    return out


def history_name(run_name: str) -> str:
    return run_name + SUFFIX


def size_bound(metrics: int) -> int:
    """The documented upper bound of the file's size in bytes for a run
    with ``metrics`` metrics (not counting one tick's line)."""
    return COMPACT_BYTES + max(1, metrics) * ((RECENT + OLD) * ENTRY_BYTES + 200) + 200


def _enc(x: float) -> Any:
    if x - x == 0:
        return x
    if x != x:
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def _enc_lohi(x: float) -> Any:
    return None if x != x else _enc(x)


def _dec(v: Any) -> float:
    if isinstance(v, bool):
        return math.nan
    if isinstance(v, (int, float)):
        return float(v)
    if v == "Infinity":
        return math.inf
    if v == "-Infinity":
        return -math.inf
    return math.nan  # "NaN", null, anything else


def _dec_lohi(v: Any) -> float:
    return math.nan if v is None else _dec(v)


def bucket_of(steps: List[float], values: List[float], t: float) -> Entry:
    """One bucket over parallel lists of steps and float values."""
    total = sum(values)
    if total - total == 0:  # all finite (the common case: no Python loop)
        return (steps[0], steps[-1], t, min(values), max(values), values[-1], False)
    fin = [v for v in values if v - v == 0]
    lo = min(fin) if fin else math.nan
    hi = max(fin) if fin else math.nan
    return (steps[0], steps[-1], t, lo, hi, values[-1], len(fin) != len(values))


@lru_cache(maxsize=16)
def cuts(n: int, k: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Where :func:`buckets` cuts ``n`` values into ``k``: each bucket's
    first index and its end (exclusive), empty buckets left out."""
    cuts = [(n * j // k, n * (j + 1) // k) for j in range(k)]
    cuts = [(a, b) for a, b in cuts if b > a]
    return tuple(a for a, _ in cuts), tuple(b for _, b in cuts)


def finite_columns(steps: Sequence[Any], values: List[Any], k: int) -> Tuple[List[Any], List[Any], List[Any], List[Any], List[Any]]:
    """The columns of :func:`buckets` for ``values`` that are all finite
    numbers: each bucket's first and last step, its ``min()``, ``max()`` and
    last value (the very objects those give: of equal values, the first).

    Each bucket's values are sorted (a copy, stable) instead of going through
    ``min()`` and ``max()``: a list of floats (or of small ints) sorts with
    direct comparisons, a fraction of the generic ones ``min()`` and
    ``max()`` make, and a monotonic stretch is one run. The first value
    sorted is ``min()``'s; the first of the greatest, found by bisection,
    is ``max()``'s."""
    starts, ends = cuts(len(values), k)
    segs = list(map(values.__getitem__, map(slice, starts, ends)))
    for seg in segs:
        seg.sort()
    lasts = list(map((-1).__add__, ends))
    his = list(map(getitem, segs, map(bisect_left, segs, map(itemgetter(-1), segs))))
    return (list(map(steps.__getitem__, starts)), list(map(steps.__getitem__, lasts)),
            list(map(itemgetter(0), segs)), his, list(map(values.__getitem__, lasts)))


def buckets(steps: Sequence[float], values: List[float], k: int, t: float, total: Optional[float] = None) -> List[Entry]:
    """``values`` (floats, with their ``steps``) cut into ``k`` buckets of
    about equal length (:func:`bucket_of` each; one finiteness check for all
    of them in the common case, then :func:`finite_columns`; ``total``:
    ``sum(values)`` when the caller has it)."""
    if total is None:
        total = sum(values)
    if total - total == 0:  # all finite: each bucket's min and max at C speed
        s0, s1, lo, hi, last = finite_columns(steps, values, k)
        return list(zip(s0, s1, repeat(t), lo, hi, last, repeat(False)))
    starts, ends = cuts(len(values), k)
    return [bucket_of(list(steps[a:b]), values[a:b], t) for a, b in zip(starts, ends)]


def merge(a: Entry, b: Entry) -> Entry:
    # comparisons, not min() / max() calls: this runs for every entry that
    # leaves the recent part (NaN: no finite value, the other side wins)
    lo, blo = a[3], b[3]
    if blo < lo or lo != lo:
        lo = blo
    hi, bhi = a[4], b[4]
    if bhi > hi or hi != hi:
        hi = bhi
    return (a[0], b[1], b[2], lo, hi, b[5], a[6] or b[6])


class MetricModel:
    """One metric's bounded series: ``old`` buckets then ``recent`` entries.

    Entries leaving ``recent`` join the last old bucket while it spans less
    than :attr:`width` steps, else start a new one. When there are more than
    :data:`OLD` buckets, the width becomes the old range divided by
    ``OLD / 2`` (at least twice the previous one) and neighbours are merged
    again, so old buckets stay about equally wide whatever the run's length."""

    __slots__ = ("old", "recent", "version", "width")

    def __init__(self) -> None:
        self.old: List[Entry] = []
        self.recent: List[Entry] = []
        self.version = 0
        self.width = 0.0

    def add(self, entries: Iterable[Entry]) -> None:
        self.recent.extend(entries)
        self.version += 1
        extra = len(self.recent) - RECENT
        if extra > 0:
            old = self.old
            w = self.width
            for e in self.recent[:extra]:
                if old and w > 0 and e[1] - old[-1][0] < w:
                    old[-1] = merge(old[-1], e)
                else:
                    old.append(e)
            del self.recent[:extra]
            while len(self.old) > OLD:
                self._rebucket()

    def _rebucket(self) -> None:
        o = self.old
        span = o[-1][1] - o[0][0]
        self.width = w = max(self.width * 2, span / (OLD // 2), 1.0)
        out: List[Entry] = []
        for e in o:
            if out and e[1] - out[-1][0] < w:
                out[-1] = merge(out[-1], e)
            else:
                out.append(e)
        self.old = out

    def entries(self) -> List[Entry]:
        return self.old + self.recent

    def __len__(self) -> int:
        return len(self.old) + len(self.recent)


class HistoryModel:
    """All metrics of one history file."""

    def __init__(self) -> None:
        self.metrics: Dict[str, MetricModel] = {}

    def metric(self, name: str) -> Optional[MetricModel]:
        m = self.metrics.get(name)
        if m is None and len(self.metrics) < MAX_METRICS:
            m = self.metrics[name] = MetricModel()
        return m

    def add_line(self, obj: Any) -> bool:
        """Apply one parsed line; False when it is not a line of this format."""
        return self.add_lines([obj]) == 0

    def add_lines(self, objs: Iterable[Any]) -> int:
        """Apply parsed lines in order; the number of lines that are not
        lines of this format. Each metric's entries of all the lines are
        converted and added together (column-wise, at C speed where the
        lines are as the writer writes them)."""
        bad = 0
        # per metric, in order: ("m", entries) or ("d", raw entries, their times)
        parts: Dict[str, List[Tuple[str, List[Any], List[float]]]] = {}
        for obj in objs:
            if not isinstance(obj, dict):
                bad += 1
            elif "d" in obj:
                t = obj.get("t")
                d = obj.get("d")
                if isinstance(t, bool) or not isinstance(t, (int, float)) or not isinstance(d, dict) or not _float_ok(t):
                    bad += 1
                    continue
                t = float(t)
                for name, ents in d.items():
                    if not isinstance(name, str) or type(ents) is not list:
                        continue
                    ps = parts.setdefault(name, [])
                    if ps and ps[-1][0] == "d":
                        ps[-1][1].extend(ents)
                        ps[-1][2].extend([t] * len(ents))
                    else:
                        ps.append(("d", list(ents), [t] * len(ents)))
            elif "m" in obj:
                name, ents = obj.get("m"), obj.get("e")
                if not isinstance(name, str) or type(ents) is not list:
                    bad += 1
                    continue
                parts.setdefault(name, []).append(("m", ents, []))
            elif "format" not in obj:
                bad += 1
        for name, ps in parts.items():
            m = self.metric(name)
            if m is None:
                continue
            for kind, ents, ts in ps:
                try:
                    m.add(_full_entries(ents) if kind == "m" else _tick_entries_of(ents, ts))
                except OverflowError:  # an int beyond the float range: each entry alone, that one left out
                    for i, e in enumerate(ents):
                        try:
                            m.add(_full_entries([e]) if kind == "m" else _tick_entries_of([e], ts[i:i + 1]))
                        except OverflowError:
                            bad += 1
        return bad

    def dump_lines(self, header: Dict[str, Any]) -> List[str]:
        """The compacted file's lines (each ending in a newline)."""
        head = dict(header)
        head["format"] = FORMAT
        out = [json.dumps(head, separators=(",", ":"), allow_nan=False) + "\n"]
        for name, m in self.metrics.items():
            ents = m.entries()
            text = _entries_text(ents) if type(name) is str else None
            if text is not None:
                out.append('{"m":%s,"e":%s}\n' % (_name_text(name), text))
                continue
            rows = [[e[0], e[1], round(e[2], 3), e[3], e[4], e[5], 0] if not e[6]  # all finite: valid JSON as is
                    else [_enc(e[0]), _enc(e[1]), round(e[2], 3), _enc_lohi(e[3]), _enc_lohi(e[4]), _enc(e[5]), 1]
                    for e in ents]
            out.append(json.dumps({"m": name, "e": rows}, separators=(",", ":"), allow_nan=False) + "\n")
        return out


def _entries_text(ents: List[Entry]) -> Optional[str]:
    """A compacted line's ``"e"`` array as :meth:`HistoryModel.dump_lines`'s
    ``json.dumps`` writes it, for entries of int steps and finite floats
    (None for any other: NaN, infinities, float steps), with fewer float
    texts made: ``repr`` of a float is most of a compaction's work, and the
    same object is often several values of an entry (a monotonic stretch:
    its last value is its minimum or maximum) or of neighbouring ones (the
    time of one tick's entries, a metric that does not change)."""
    if not ents:
        return "[]"
    s0, s1, t, lo, hi, last, bad = zip(*ents)
    if (any(bad) or set(map(type, s0 + s1)) != _INT or set(map(type, t)) != _FLOAT
            or set(map(type, lo + hi + last)) != _FLOAT):
        return None
    total = sum(lo + hi + last)
    if total - total != 0:  # a NaN not flagged: json.dumps raises, as it would
        return None
    tt: List[str] = []
    prev: Any = None
    text = ""
    for x in t:
        if x is not prev:
            prev, text = x, repr(round(x, 3))
        tt.append(text)
    tlo: List[str] = []
    prev = None
    for x in lo:
        if x is not prev:
            prev, text = x, repr(x)
        tlo.append(text)
    thi = [a if h is x else repr(h) for x, h, a in zip(lo, hi, tlo)]
    tlast = [a if z is x else (b if z is h else repr(z)) for x, h, z, a, b in zip(lo, hi, last, tlo, thi)]
    return "[[%s]]" % "],[".join(map(",".join, zip(map(repr, s0), map(repr, s1), tt, tlo, thi, tlast, repeat("0"))))


def _float_ok(v: Any) -> bool:
    """``float(v)`` does not raise (an int beyond the float range would)."""
    try:
        float(v)
    except OverflowError:
        return False
    return True


def _num_ok(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


def _f(v: Any) -> float:
    return v if type(v) is float else _dec(v)


def _fl(v: Any) -> float:
    return v if type(v) is float else _dec_lohi(v)


_NUMS = frozenset((int, float))
_LIST = frozenset((list,))
_FLOAT = frozenset((float,))


def _floats(col: Sequence[Any]) -> List[float]:
    """A column of values as floats (``"NaN"`` / ``"Infinity"`` understood)."""
    types = set(map(type, col))
    if types <= _FLOAT:
        return list(col)
    if types <= _NUMS:
        return list(map(float, col))
    return [_f(v) for v in col]


def _lohis(col: Sequence[Any]) -> List[float]:
    """A column of bucket minima / maxima as floats (``null``: NaN)."""
    types = set(map(type, col))
    if types <= _FLOAT:
        return list(col)
    if types <= _NUMS:
        return list(map(float, col))
    return [_fl(v) for v in col]


def _steps_ok(*cols: Sequence[Any]) -> bool:
    return all(set(map(type, c)) <= _NUMS for c in cols)


def _tick_entries_of(ents: List[Any], ts: List[float]) -> List[Entry]:
    """Entries of tick lines (``ts``: the time of each), column-wise when
    they are all buckets or all finite points; one by one otherwise."""
    if ents and set(map(type, ents)) == _LIST:
        lens = set(map(len, ents))
        if lens == {6}:
            s0, s1, lo, hi, last, bad = zip(*ents)
            if _steps_ok(s0, s1):
                return list(zip(s0, s1, ts, _lohis(lo), _lohis(hi), _floats(last), map(eq, bad, repeat(1))))
        elif lens == {2}:
            st, vs = zip(*ents)
            vals = _floats(vs)
            total = sum(vals)
            if _steps_ok(st) and total - total == 0:
                return list(zip(st, st, ts, vals, vals, vals, repeat(False)))
    out: List[Entry] = []
    i = 0
    while i < len(ents):  # one tick's run of entries at a time
        t = ts[i]
        j = i + 1
        while j < len(ents) and ts[j] == t:
            j += 1
        out.extend(_tick_entries(ents[i:j], t))
        i = j
    return out


def _tick_entries(ents: List[Any], t: float) -> List[Entry]:
    out: List[Entry] = []
    for x in ents:
        if type(x) is not list:
            continue
        n = len(x)
        if n == 2 and _num_ok(x[0]):
            v = _f(x[1])
            fin = v - v == 0
            out.append((x[0], x[0], t, v if fin else math.nan, v if fin else math.nan, v, not fin))
        elif n == 6 and _num_ok(x[0]) and _num_ok(x[1]):
            out.append((x[0], x[1], t, _fl(x[2]), _fl(x[3]), _f(x[4]), x[5] == 1))
    return out


def _full_entries(ents: List[Any]) -> List[Entry]:
    if ents and set(map(type, ents)) == _LIST and set(map(len, ents)) == {7}:  # column-wise
        a, b, t, lo, hi, last, bad = zip(*ents)
        if _steps_ok(a, b, t):
            return list(zip(a, b, t, _lohis(lo), _lohis(hi), _floats(last), map(eq, bad, repeat(1))))
    out: List[Entry] = []
    for x in ents:
        if type(x) is not list or len(x) != 7:
            continue
        a, b, t, lo, hi, last, bad = x
        if _num_ok(a) and _num_ok(b) and _num_ok(t):
            out.append((a, b, t, _fl(lo), _fl(hi), _f(last), bad == 1))
    return out


def _row(ents: List[Entry]) -> List[Any]:
    """A metric's entries in a tick line, as JSON values (points where a
    bucket holds one step's single value; NaN and infinities as strings)."""
    if not any(e[6] for e in ents):  # no NaN / inf: every number is already valid JSON
        return [[e[0], e[5]] if e[0] == e[1] and e[3] == e[4] == e[5] else [e[0], e[1], e[3], e[4], e[5], 0]
                for e in ents]
    row: List[Any] = []
    for e in ents:
        if not e[6]:  # no NaN / inf in it: every number is already valid JSON
            row.append([e[0], e[5]] if e[0] == e[1] and e[3] == e[4] == e[5] else [e[0], e[1], e[3], e[4], e[5], 0])
        elif e[0] == e[1] and (e[3] == e[4] == e[5] or (e[6] and e[3] != e[3])):
            row.append([_enc(e[0]), _enc(e[5])])
        else:
            row.append([_enc(e[0]), _enc(e[1]), _enc_lohi(e[3]), _enc_lohi(e[4]), _enc(e[5]), 1 if e[6] else 0])
    return row


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


_INT_FLOAT = frozenset((int, float))
_INT = frozenset((int,))


#: the last buckets' steps (ints) and their text: the same for every metric of a tick
_last_steps: Tuple[Any, List[str]] = ((), [])


def _steps_text(s0: Tuple[Any, ...], s1: Tuple[Any, ...]) -> List[str]:
    """``"STEP0,STEP1"`` of each bucket (ints or floats), made once for all
    the metrics that a tick's updates gave together."""
    global _last_steps
    steps = s0 + s1
    texts: List[str]
    if set(map(type, steps)) != _INT:  # 1.0 == 1: only ints are kept, and their text
        return list(map("%r,%r".__mod__, zip(s0, s1)))
    last = _last_steps  # one read: another monitor's thread may replace it
    if last[0] == steps:
        return last[1]
    texts = list(map("%r,%r".__mod__, zip(s0, s1)))
    _last_steps = (steps, texts)
    return texts


def _row_text(ents: List[Entry]) -> str:
    """``_dumps(_row(ents))``, with each float's text made once where one
    object is a bucket's minimum, maximum and last value at once (a
    monotonic stretch: its last value is its minimum or its maximum; a
    metric that did not change, a learning rate: one object throughout):
    ``repr`` of a float is the dearest step of a tick's line. Entries
    holding a NaN or an infinity, or numbers that are not plain ints and
    floats, go through :func:`_row`. A metric given once in the tick (a
    batch per second or slower: every metric of every tick) is one point,
    written straight away."""
    if len(ents) == 1:
        a, b, _, x, y, z, flag = ents[0]
        if x is z and y is z and a == b and type(z) is float and type(a) is int and type(b) is int and not flag and z - z == 0:
            return "[[%r,%r]]" % (a, z)
    elif not ents:
        return "[]"
    s0, s1, _, lo, hi, last, bad = zip(*ents)
    vals = lo + hi + last
    total = sum(vals) if not any(bad) and set(map(type, s0 + s1)) <= _INT_FLOAT and set(map(type, vals)) <= _FLOAT else None
    if total is None or total - total != 0:  # json.dumps would raise for a NaN or an infinity
        return _dumps(_row(ents))
    k = len(ents)
    x = lo[0]
    if x and vals.count(x) == 3 * k:  # one value throughout (equal floats write alike, but 0.0 and -0.0)
        tlo = thi = tlast = [repr(x)] * k
    else:
        tlo = list(map(repr, lo))
        thi = [a if h is lo_ else repr(h) for lo_, h, a in zip(lo, hi, tlo)]
        tlast = [a if z is lo_ else (b if z is h else repr(z)) for lo_, h, z, a, b in zip(lo, hi, last, tlo, thi)]
    if not any(map(eq, s0, s1)):  # no entry of a single step: all buckets
        return "[[%s]]" % "],[".join(map(",".join, zip(_steps_text(s0, s1), tlo, thi, tlast, repeat("0"))))
    t0 = list(map(repr, s0))
    return "[%s]" % ",".join(
        "[%s,%s]" % (a, tz) if a0 == a1 and lo_ == h == z else "[%s,%s,%s,%s,%s,0]" % (a, repr(a1), tl, th, tz)
        for a0, a1, lo_, h, z, a, tl, th, tz in zip(s0, s1, lo, hi, last, t0, tlo, thi, tlast))


@lru_cache(maxsize=256)
def _name_text(name: str) -> str:
    return json.dumps(name)


def tick_line(t: float, per_metric: Dict[str, List[Entry]]) -> str:
    """The line one tick appends (entries as points where a bucket holds one
    step's single value): ``json.dumps({"t": round(t, 3), "d": {name:
    _row(entries), ...}}, separators=(",", ":"), allow_nan=False)``, made
    one metric at a time (:func:`_row_text`)."""
    if not all(type(name) is str for name in per_metric):
        return _dumps({"t": round(t, 3), "d": {name: _row(ents) for name, ents in per_metric.items()}}) + "\n"
    r = round(t, 3)
    return '{"t":%s,"d":{%s}}\n' % (repr(r) if type(r) is float and r - r == 0 else _dumps(r), ",".join(
        "%s:%s" % (_name_text(name), _row_text(ents)) for name, ents in per_metric.items()))
