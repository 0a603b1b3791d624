"""The run detail screen (Enter on a run) and the comparison screen (C with
marked runs): gathers the model and hands it to the pure renderer
(:func:`ttop.view.detail.render_detail`).

Where the data comes from:

* metric curves: the run's history file (``history_file`` in the progress
  file, read incrementally by :class:`ttop.collect.history.HistoryReader`,
  only while this screen is open), else the progress file's short
  ``history``;
* resource curves: the collector's ring of recent samples per run
  (:class:`ttop.collect.recent.RecentSamples`), or, when the collector keeps
  none (health checks off), the app's :class:`ttop.collect.rings.ResourceRings`
  fed from every snapshot while ttop runs;
* variables and their edit state: the progress file and the control file;
* output: the last lines of the run's stdout / stderr capture files.

Keys: ``x`` x axis by step / wall time, ``l`` log scale, ``+`` / ``-`` zoom
(whole run, last 500 / 200 / 100 / 50 points), Left / Right pan, Home / End
oldest / newest, Up / Down / PgUp / PgDn scroll the charts, ``e`` / ``o`` the
variable editor / output viewer of the run, Esc or ``q`` back.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..view import roles as R
from ..view.chart import ZOOMS, Series
from ..view.detail import DetailModel, DetailState, render_detail
from ..view.text import Line
from .screen import AppContext, Screen

OUTPUT_LINES = 12
#: At most this many latest-value charts (as many metrics as a history file keeps)
LATEST_MAX = 64
MiB = 1024.0 * 1024.0


def _num(v: Any) -> float:
    if isinstance(v, bool) or v is None:
        return math.nan
    if isinstance(v, (int, float)):
        try:
            return float(v)
        except OverflowError:  # an int beyond the float range (JSON has no limit)
            return math.inf if v > 0 else -math.inf
    if v == "Infinity":
        return math.inf
    if v == "-Infinity":
        return -math.inf
    return math.nan


def progress_history(data: Mapping[str, Any]) -> Dict[str, Series]:
    """The progress file's short ``history`` as series (no steps, no times;
    None, i.e. a value that was not a finite number, counts as NaN)."""
    h = data.get("history")
    out: Dict[str, Series] = {}
    if not isinstance(h, Mapping):
        return out
    for name, vals in h.items():
        if isinstance(name, str) and isinstance(vals, list):
            ys = [_num(v) for v in vals]
            out[name] = Series(name, ys)
    return out


def with_latest(series: Dict[str, Series], data: Mapping[str, Any]) -> Dict[str, Series]:
    """``series`` plus, for each numeric metric of the file's ``metrics``
    that has none (a file with no history: written by hand or another
    tool), its latest value as a series of one point: the screen must not
    say no metrics were reported while the table shows them."""
    metrics = data.get("metrics")
    if not isinstance(metrics, Mapping):
        return series
    left = LATEST_MAX
    for name, v in metrics.items():
        if isinstance(name, str) and name not in series and not isinstance(v, bool) and (
                isinstance(v, (int, float)) or v in ("NaN", "Infinity", "-Infinity")):
            series[name] = Series(name, [_num(v)])
            left -= 1
            if not left:
                break
    return series


def ring_series(samples: List[Any]) -> Dict[str, Series]:
    """Resource series by wall time; a sample without the value (unknown,
    not an error) is left out."""

    def ser(name: str, f: Any, scale: float = 1.0) -> Series:
        ts: List[float] = []
        ys: List[float] = []
        for s in samples:
            v = f(s)
            if v is not None:
                ts.append(s.t)
                ys.append(float(v) / scale)
        return Series(name, ys, t=ts)

    return {
        "cpu": ser("cpu", lambda s: s.cpu_percent),
        "ram": ser("ram", lambda s: s.rss_bytes, MiB),
        "gpu_mem": ser("gpu_mem", lambda s: s.gpu_memory_bytes, MiB),
        "gpu_util": ser("gpu_util", lambda s: getattr(s, "gpu_util", getattr(s, "gpu_utilization", None))),
    }


class DetailScreen(Screen):
    modal = False

    def __init__(self, keys: List[str], ascii: bool = False, color: Optional[bool] = None) -> None:
        self.keys = list(keys)
        self.ascii = ascii
        if color is None:
            from .colors import no_color_requested

            color = not no_color_requested()
        self.color = color
        self.state = DetailState()
        self._readers: Dict[str, Any] = {}
        self._series: Dict[str, Dict[str, Series]] = {}
        self._notes: Dict[str, str] = {}
        self._output: List[Tuple[str, str]] = []
        self._variables: List[Tuple[str, str, str, str]] = []
        self._fresh = True
        self._page_rows = 1
        self._total_rows = 1
        self._max_pan = 0

    # -- data -------------------------------------------------------------------

    def _runs(self, ctx: AppContext) -> Tuple[List[Any], List[str]]:
        snap = ctx.snapshot
        runs, missing = [], []
        for k in self.keys:
            r = snap.run(k) if snap is not None else None
            if r is None:
                missing.append(k)
            else:
                runs.append(r)
        return runs, missing

    def _metrics_of(self, ctx: AppContext, run: Any) -> Dict[str, Series]:
        rel = run.data.get("history_file")
        if isinstance(rel, str) and rel:
            reader = self._readers.get(run.key)
            try:
                if reader is None:
                    from ..collect.history import HistoryReader

                    reader = self._readers[run.key] = HistoryReader(run.folder, rel, run.owner_uid)
                cols = reader.poll()
                self._notes.pop(run.key, None)
                if cols:
                    return {name: Series(name, c.y, x=c.x, t=c.t, lo=c.lo, hi=c.hi, flagged=c.flagged)
                            for name, c in cols.items()}
            except Exception as e:  # a bad history file never takes the screen down
                self._notes[run.key] = "history: %s" % e
        return with_latest(progress_history(run.data), run.data)

    def _refresh(self, ctx: AppContext) -> None:
        runs, _ = self._runs(ctx)
        for run in runs:
            self._series[run.key] = self._metrics_of(ctx, run)
        if len(runs) == 1:
            run = runs[0]
            self._variables = self._variable_rows(ctx, run)
            self._output = self._output_tail(ctx, run)
        self._fresh = False

    def _variable_rows(self, ctx: AppContext, run: Any) -> List[Tuple[str, str, str, str]]:
        from .editor import value_text

        data = run.data
        variables = data.get("variables")
        if not isinstance(variables, Mapping):
            return []
        states: Dict[str, Tuple[str, str]] = {}
        try:
            from ..levers import control as C

            seq, edits = C.current_control(run.folder, run.stem, data, owner_uid=run.owner_uid)
            if seq is not None and seq >= C.acked_seq(data):
                for name, value in edits.items():
                    st, err = C.edit_state(data, seq, str(name), run.ranks)
                    states[str(name)] = (st, "%s #%d (%s)" % (st, seq, value_text(value)) if st != "refused"
                                         else "refused #%d: %s" % (seq, err))
        except Exception:
            pass
        rows = []
        for name in sorted(variables, key=str):
            got = states.get(str(name))
            role = {"pending": R.NOTICE, "applied": R.FINISHED, "refused": R.ERROR}.get(got[0], R.NORMAL) if got else R.NORMAL
            rows.append((str(name), value_text(variables[name]), got[1] if got else "", role))
        return rows

    def _output_tail(self, ctx: AppContext, run: Any) -> List[Tuple[str, str]]:
        try:
            from ..levers.logs import log_files
            from ..logfile import LogFile, display_text
        except Exception:
            return []
        out: List[Tuple[str, str]] = []
        try:
            files = log_files(run.folder, run)
        except Exception:
            return []
        for stream in ("stdout", "stderr"):
            real = files.get(stream, (None, "", None))[0]
            if real is None:
                continue
            try:
                f = LogFile(real, folder=run.folder or None, owner=run.owner_uid)
                f.refresh()
                starts = f.starts_before(f.size, OUTPUT_LINES)
                if starts:
                    for raw in f.lines_from(starts[0], OUTPUT_LINES):
                        out.append((stream, display_text(raw[2])))
            except OSError:
                continue
        err = [x for x in out if x[0] == "stderr"][-(OUTPUT_LINES // 3):]
        std = [x for x in out if x[0] == "stdout"]
        return std[-(OUTPUT_LINES - len(err)):] + err

    def model(self, ctx: AppContext) -> DetailModel:
        if self._fresh:
            self._refresh(ctx)
        runs, missing = self._runs(ctx)
        # the collector's per-run ring of recent samples where it keeps one,
        # else the app's own (health checks off)
        recent = getattr(getattr(ctx, "collector", None), "recent", None)
        rings = recent if recent is not None else getattr(ctx, "rings", None)
        resources = {}
        if rings is not None:
            for r in runs:
                resources[r.key] = ring_series(list(rings.samples(r.key)))
        notes = [self._notes[r.key] for r in runs if r.key in self._notes]
        return DetailModel(runs=runs, metrics={r.key: self._series.get(r.key, {}) for r in runs},
                           resources=resources, variables=self._variables, output=self._output,
                           notes=notes, missing=missing, color=self.color, ascii=self.ascii)

    # -- Screen -------------------------------------------------------------------

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        frame = render_detail(self.model(ctx), self.state, width, height)
        self._page_rows, self._total_rows, self._max_pan = frame.page_rows, frame.total_rows, frame.max_pan
        if self.state.pan > frame.max_pan:
            self.state = self.state.with_(pan=frame.max_pan)
        return frame.lines

    def on_snapshot(self, ctx: AppContext) -> None:
        self._fresh = True

    def on_key(self, key: str, ctx: AppContext) -> bool:
        st = self.state
        zoom = ZOOMS[st.zoom]
        step = max(1, (zoom or 0) // 4)
        if key in ("ESC", "q"):
            ctx.pop()
        elif key == "x":
            self.state = st.with_(x_by="time" if st.x_by == "step" else "step")
        elif key == "l":
            self.state = st.with_(log=not st.log)
        elif key in ("+", "="):
            self.state = st.with_(zoom=min(len(ZOOMS) - 1, st.zoom + 1), pan=0)
        elif key in ("-", "_"):
            self.state = st.with_(zoom=max(0, st.zoom - 1), pan=0)
        elif key == "LEFT":
            self.state = st.with_(pan=min(self._max_pan, st.pan + step))
        elif key == "RIGHT":
            self.state = st.with_(pan=max(0, st.pan - step))
        elif key == "HOME":
            self.state = st.with_(pan=self._max_pan)
        elif key == "END":
            self.state = st.with_(pan=0)
        elif key in ("UP", "DOWN", "PGUP", "PGDN"):
            n = {"UP": -1, "DOWN": 1, "PGUP": -self._page_rows, "PGDN": self._page_rows}[key]
            top = max(0, self._total_rows - self._page_rows)
            self.state = st.with_(scroll=max(0, min(top, st.scroll + n)))
        elif key in ("e", "o") and len(self.keys) == 1:
            from . import levers

            fn = levers.open_editor if key == "e" else levers.open_output
            screen = fn(ctx, self.keys[0])
            if screen is not None:
                ctx.push(screen)
        elif key == "r":
            ctx.refresh_now()
        else:
            return False
        return True
