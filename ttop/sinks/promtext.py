"""The ``/metrics`` page written from a snapshot in one pass, cheaply.

``prometheus_client``'s ``generate_latest`` over
:class:`~ttop.sinks.prometheus.SnapshotMetrics` builds a sample object per
value and formats and escapes every label of every sample again each cycle:
with 1,000 runs (25,000 series) that is most of a second of the one
interpreter lock the collector thread needs too. :class:`PageWriter` writes
the same bytes (a test compares them with ``generate_latest``'s, byte for
byte; numbers go through ``prometheus_client``'s own ``floatToGoString``):
each run's label text is built once, and a run whose file, status and
resources did not change since the last page keeps its lines, only its
heartbeat age written again.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from ..progress import number_or_none
from .prometheus import _HEARTBEAT, RUN_FAMILIES, SnapshotMetrics, _Family, _label, key_label, run_owner, run_values


def _esc(value: str) -> str:
    """A label value as the text format writes it (UTF-8-safe, escaped)."""
    v = _label(value)
    if "\\" in v or "\n" in v or '"' in v:
        v = v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return v


def _header(name: str, doc: str) -> str:
    return "# HELP %s %s\n# TYPE %s gauge\n" % (name, doc.replace("\\", "\\\\").replace("\n", "\\n"), name)


def family_text(f: _Family, fmt: Callable[[float], str]) -> str:
    """One family as ``generate_latest`` writes it (labels sorted by name)."""
    out = [_header(f.name, f.doc)]
    order = sorted(range(len(f.labels)), key=lambda i: f.labels[i])
    for labels, value in f.samples:
        if order:
            ls = ",".join('%s="%s"' % (f.labels[i], _esc(labels[i])) for i in order)
            out.append("%s{%s} %s\n" % (f.name, ls, fmt(value)))
        else:
            out.append("%s %s\n" % (f.name, fmt(value)))
    return "".join(out)


class _Entry:
    __slots__ = ("run", "labels", "data", "resources", "state", "frags", "base", "hb")

    def __init__(self, run: Any, labels: Tuple[str, ...], state: Tuple[Any, ...], frags: List[str], base: str,
                 hb: str) -> None:
        self.run = run
        self.labels = labels
        self.data = run.data
        self.resources = run.resources
        self.state = state
        self.frags = frags  # per family (the heartbeat's empty: it changes every cycle)
        self.base = base
        self.hb = hb  # the heartbeat line


class PageWriter:
    """Writes the page of a snapshot; keeps each exported run's lines for
    the next page (not thread-safe: one render at a time)."""

    def __init__(self) -> None:
        self._runs: Dict[str, _Entry] = {}
        self._order: List[str] = []  # the runs of the last page, in order
        # the last page's per-run families, encoded: before the heartbeat
        # column (its header included) and after it
        self._pre = b""
        self._post = b""
        #: runs whose lines were reused / written afresh by the last render
        self.reused = 0
        self.written = 0

    def render(self, metrics: SnapshotMetrics, snapshot: Any) -> bytes:
        from prometheus_client.utils import floatToGoString as slow

        def floatToGoString(value: float) -> str:  # noqa: N802 - prometheus_client's name
            x = float(value)  # NaN and infinities fail the test below
            # below 1e6 Go and Python write a float alike: floatToGoString returns repr
            return repr(x) if -1e6 < x < 1e6 else slow(x)

        head = "".join(family_text(f, floatToGoString) for f in metrics.families(snapshot, with_runs=False))
        runs = metrics.exported_runs(snapshot)
        keep: Dict[str, _Entry] = {}
        self.reused = self.written = 0
        entries = [self._entry(run, floatToGoString, keep) for run in runs]
        self._runs = keep
        order = [run.key for run in runs]
        hb = "".join([e.hb for e in entries]).encode("utf-8")
        if self.written or order != self._order:
            # the heartbeat slot of each run's frags is empty: its own column
            columns = ["".join(col) for col in zip(*[e.frags for e in entries])] if entries \
                else [""] * len(RUN_FAMILIES)
            text = [_header(name, doc) + column for (name, doc, _extra), column in zip(RUN_FAMILIES, columns)]
            self._pre = ("".join(text[:_HEARTBEAT]) + _header(*RUN_FAMILIES[_HEARTBEAT][:2])).encode("utf-8")
            self._post = "".join(text[_HEARTBEAT + 1:]).encode("utf-8")
            self._order = order
        # else: the same runs, none rewritten: only the heartbeat column is new
        return head.encode("utf-8") + self._pre + hb + self._post

    def _entry(self, run: Any, fmt: Callable[[float], str], keep: Dict[str, _Entry]) -> _Entry:
        key = run.key
        e = self._runs.get(key)
        if e is not None and e.run is run:  # an archived run: the very same snapshot object
            keep[key] = e
            self.reused += 1
            return e
        labels = (run.run_name, run.host or "", run_owner(run), key)
        state = (run.status, run.status_inferred, run.stale, run.health, run.file_error)
        if e is not None and e.labels == labels and e.data is run.data and e.resources is run.resources \
                and e.state == state:
            e.hb = self._line(_HEARTBEAT, e.base, run.heartbeat_age, fmt)
            e.run = run
            keep[key] = e
            self.reused += 1
            return e
        name, host, owner, _ = labels
        a = 'host="%s",key="%s"' % (_esc(host), _esc(key_label(key)))
        b = 'owner="%s",run="%s"' % (_esc(owner), _esc(name))
        base = "{" + a + "," + b  # labels sorted by name: host, key, (name), owner, run, (status)
        parts: List[List[str]] = [[] for _ in RUN_FAMILIES]
        for i, extra, value in run_values(run):
            number = None if value is None else number_or_none(value)
            if number is None:
                continue
            if extra is None:
                ls = base + "}"
            elif RUN_FAMILIES[i][2] == "status":
                ls = base + ',status="' + _esc(extra) + '"}'
            else:  # "name": between key and owner
                ls = "{" + a + ',name="' + _esc(extra) + '",' + b + "}"
            parts[i].append(RUN_FAMILIES[i][0] + ls + " " + fmt(number) + "\n")
        frags = ["".join(p) for p in parts]
        hb, frags[_HEARTBEAT] = frags[_HEARTBEAT], ""
        e = keep[key] = _Entry(run, labels, state, frags, base, hb)
        self.written += 1
        return e

    @staticmethod
    def _line(i: int, base: str, value: Optional[float], fmt: Callable[[float], str]) -> str:
        number = None if value is None else number_or_none(value)
        return "" if number is None else RUN_FAMILIES[i][0] + base + "} " + fmt(number) + "\n"
