"""The variable editor (``e``): a run's tracked variables, edited in place.

Each edit is validated against the variable's type before anything is
written, then written to ``control_<run>.json`` (atomically, next ``seq``,
see :func:`ttop.levers.control.write_edit`). The edit shows as *pending* until the run
acknowledges its seq (``control_seq``), then *applied*, or *refused* with the
run's ``control_error``. The control file is the store: reopening the editor
shows edits still pending.

The screen renders from ``ctx.snapshot`` every time, so the run's PID, status
and resources stay live while it is open. A run that is not RUNNING is
read-only, and says so.
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .. import progress as P
from ..levers import control as C
from ..view import fmt
from ..view import roles as R
from ..view.text import Line, Segment, clean, clip_start, crop_line, fit, line_width
from ..view.text import width as text_width
from .screen import AppContext, Screen

#: What a float edit may spell to mean a non-finite value on purpose; any
#: other text that parses to one overflowed (``1e999``) and is refused.
NON_FINITE_SPELLINGS = ("inf", "infinity", "nan")


def value_text(value: Any) -> str:
    """A variable's value as the user would type it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
    except RecursionError:  # a list or object nested about a thousand deep (orjson reads 1,024)
        return "<%s nested too deeply>" % type(value).__name__


def _pad(segs: List[Segment], width: int, role: str = R.NORMAL) -> Line:
    line = crop_line(tuple(segs), 0, width)
    w = line_width(line)
    if w < width:
        line = line + ((" " * (width - w), role),)
    return line


class Edit:
    __slots__ = ("seq", "value", "state", "error")

    def __init__(self, seq: int, value: Any, state: str = "pending", error: str = "") -> None:
        self.seq = seq
        self.value = value
        self.state = state
        self.error = error


class EditorScreen(Screen):
    """Keys: Up/Down select (PgUp/PgDn a page, Home/End the first / last),
    Enter edit (Enter again writes, Esc cancels the edit), Esc or q closes."""

    modal = False

    def __init__(self, ctx: AppContext, run_key: str) -> None:
        self.key = run_key
        self.index = 0
        self.page = 1  # rows of variables the last frame showed (PgUp / PgDn move by it)
        self.editing: Optional[str] = None
        self.buffer = ""
        self.fresh = False  # the buffer holds the old value: the first key typed replaces it
        self.message: Optional[Tuple[str, bool]] = None
        self.edits: Dict[str, Edit] = {}
        run = self._run(ctx)
        if run is not None:
            self._reconstruct(ctx, run)

    # -- state --------------------------------------------------------------

    def _run(self, ctx: AppContext) -> Any:
        snap = ctx.snapshot
        return snap.run(self.key) if snap is not None else None

    def _reconstruct(self, ctx: AppContext, run: Any) -> None:
        """Edits found in the control file: pending ones (not acknowledged
        yet) and the last acknowledged edit's outcome."""
        data = run.data or {}
        seq, variables = C.current_control(run.folder, run.stem, data, owner_uid=run.owner_uid)
        if seq is None:
            return
        # pending (not acknowledged yet), or the outcome of the edit the run
        # acknowledged last
        if seq >= C.acked_seq(data):
            for name, value in variables.items():
                state, err = C.edit_state(data, seq, str(name), run.ranks)
                self.edits[str(name)] = Edit(seq, value, state, err)

    def _update_states(self, run: Any) -> None:
        data = run.data or {}
        for name, e in self.edits.items():
            if e.state == "pending":
                e.state, e.error = C.edit_state(data, e.seq, name, run.ranks)
            elif e.state == "applied":  # an optimizer may refuse it after the run read it
                state, err = C.edit_state(data, e.seq, name, run.ranks)
                if state == "refused":
                    e.state, e.error = state, err

    def on_snapshot(self, ctx: AppContext) -> None:
        run = self._run(ctx)
        if run is not None:
            self._update_states(run)

    @staticmethod
    def _names(run: Any) -> List[str]:
        variables = (run.data or {}).get("variables") if run is not None else None
        if not isinstance(variables, dict):
            return []
        return [str(n) for n in variables]

    @staticmethod
    def read_only_reason(run: Any) -> Optional[str]:
        if run is None:
            return "read-only: the run is gone from the folder"
        if run.status != P.RUNNING:
            why = run.status
            if run.status_inferred and run.status_reason:
                why += " (%s)" % clean(run.status_reason)
            return "read-only: the run is %s; edits need a RUNNING run" % why
        from ..levers.control import writer_refusal

        why = writer_refusal(run.owner_uid)
        return None if why is None else "read-only: %s" % clean(why)

    # -- rendering ----------------------------------------------------------

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        run = self._run(ctx)
        if run is not None:
            self._update_states(run)
        out: List[Line] = []
        name = clean(run.run_name) if run is not None else clean(self.key)
        out.append(_pad([("Variables of run %s" % name, R.TITLE)], width, R.TITLE))
        out.append(_pad(self._status_segments(run), width, R.HEADER))
        ro = self.read_only_reason(run)
        if ro:
            out.append(_pad([(ro, R.ERROR)], width))
        cerr = (run.data or {}).get("control_error") if run is not None else None
        if isinstance(cerr, str) and cerr.strip():
            out.append(_pad([("the run says: %s" % clean(cerr), R.ERROR)], width))
        out.append(_pad([], width))
        data = (run.data or {}) if run is not None else {}
        names = self._names(run)
        found = data.get("variables")
        variables: Mapping[str, Any] = found if isinstance(found, dict) else {}
        if names:
            self.index = max(0, min(self.index, len(names) - 1))
        name_w = max([text_width(clean(n)) for n in names] + [4])
        name_w = min(name_w, max(8, width // 4))
        val_w = max(12, min(30, (width - name_w - 12) // 2))
        out.append(_pad([("  " + fit("NAME", name_w) + "  " + fit("TYPE", 6) + " " + fit("VALUE", val_w) + " STATE", R.TITLE)],
                        width, R.TITLE))
        if not names:
            out.append(_pad([("  this run tracks no variables (TrainingMonitor.track(...) adds them)", R.DIM)], width))
        room = max(1, height - len(out) - 3)
        self.page = room
        first = max(0, self.index - room + 1)
        for i, n in enumerate(names[first:first + room], start=first):
            sel = i == self.index
            t = C.variable_type(data, n)
            row: List[Segment] = [
                ("> " if sel else "  ", R.NORMAL),
                (fit(clean(n), name_w), R.NORMAL),
                ("  ", R.NORMAL),
                (fit(t or "?", 6), R.DIM),
                (" ", R.NORMAL),
            ]
            if self.editing == n:
                shown = clip_start(clean(self.buffer), val_w - 1, "..." if ctx.ascii else "\u2026") + "_"
                row.append((fit(shown, val_w), R.FILTER))
            else:
                row.append((fit(clean(value_text(variables.get(n))), val_w), R.NORMAL))
            row.append((" ", R.NORMAL))
            row.extend(self._state_segments(n))
            line = _pad(row, width)
            if sel and self.editing is None:
                line = tuple((txt, R.with_mod(role, R.SEL)) for txt, role in line)
            out.append(line)
        while len(out) < height - 2:
            out.append(_pad([], width))
        msg = self.message
        if msg is None:
            msg = ctx.current_message()
        out.append(_pad([(clean(msg[0]), R.ERROR if msg[1] else R.NOTICE)] if msg else [], width))
        if self.editing is not None:
            hint = [("Enter", R.KEY), (" write  ", R.FOOTER), ("Esc", R.KEY), (" cancel  ", R.FOOTER),
                    ("typing replaces the old value; Backspace edits it; Ctrl+U clears", R.FOOTER)]
        else:
            hint = [("Up/Down" if ctx.ascii else "\u2191\u2193", R.KEY), (" select  ", R.FOOTER), ("Enter", R.KEY), (" edit  ", R.FOOTER),
                    ("Esc", R.KEY), (" back", R.FOOTER)]
        out.append(_pad(hint, width, R.FOOTER))
        return out[:height]

    def _status_segments(self, run: Any) -> List[Segment]:
        if run is None:
            return [("run %s is no longer in the folder" % clean(self.key), R.ERROR)]
        data = run.data or {}
        role = R.status_role(run.status, data.get("phase"), run.status_inferred)
        segs: List[Segment] = [("PID %s" % (run.pid if run.pid is not None else "-"), R.HEADER), ("  ", R.HEADER),
                               (run.status + ("*" if run.status_inferred else ""), role)]
        phase = data.get("phase")
        if isinstance(phase, str) and phase and run.status == P.RUNNING:
            segs.append(("  %s" % clean(phase), role))
        res = run.resources
        segs.append(("  CPU %s  RAM %s" % (fmt.percent(res.cpu_percent), fmt.size(res.rss_bytes)), R.HEADER))
        if res.gpu_memory_bytes:
            segs.append(("  GPU %s" % fmt.size(res.gpu_memory_bytes), R.HEADER))
        segs.append(("  procs %s  threads %s" % (fmt.count(res.num_procs), fmt.count(res.num_threads)), R.HEADER))
        if run.heartbeat_age is not None:
            segs.append(("  updated %s ago" % fmt.duration(run.heartbeat_age), R.DIM))
        segs.append(("  control seq %d" % C.acked_seq(data), R.DIM))
        return segs

    def _state_segments(self, name: str) -> List[Segment]:
        e = self.edits.get(name)
        if e is None:
            return []
        v = clean(value_text(e.value))
        if e.state == "pending":
            return [("pending #%d (%s)" % (e.seq, v), R.NOTICE)]
        if e.state == "applied":
            return [("applied #%d (%s)" % (e.seq, v), R.FINISHED)]
        return [("refused #%d: %s" % (e.seq, clean(e.error)), R.ERROR)]

    # -- keys ---------------------------------------------------------------

    def typing(self) -> bool:
        return self.editing is not None

    def on_key(self, key: str, ctx: AppContext) -> bool:
        run = self._run(ctx)
        if self.editing is not None:
            return self._edit_key(key, ctx, run)
        names = self._names(run)
        if key in ("ESC", "q"):
            ctx.pop()
            return True
        if key == "CTRL_C":
            return False
        if key == "UP":
            self.index = max(0, self.index - 1)
        elif key == "DOWN":
            self.index = min(max(0, len(names) - 1), self.index + 1)
        elif key == "PGUP":
            self.index = max(0, self.index - self.page)
        elif key == "PGDN":
            self.index = min(max(0, len(names) - 1), self.index + self.page)
        elif key == "HOME":
            self.index = 0
        elif key == "END":
            self.index = max(0, len(names) - 1)
        elif key in ("ENTER", "e"):
            if not names:
                self.message = ("no variables to edit", True)
                return True
            ro = self.read_only_reason(run)
            if ro:
                self.message = (ro, True)
                return True
            name = names[min(self.index, len(names) - 1)]
            if C.variable_type(run.data, name) is None:
                self.message = ("%s has a value of an unsupported type; it cannot be edited" % clean(name), True)
                return True
            self.editing = name
            self.buffer = value_text((run.data.get("variables") or {}).get(name))
            self.fresh = True
            self.message = None
        return True

    def _edit_key(self, key: str, ctx: AppContext, run: Any) -> bool:
        name = self.editing
        assert name is not None
        if key == "ESC":
            self.editing = None
            self.message = ("edit of %s cancelled" % clean(name), False)
            return True
        if key == "CTRL_C":
            self.editing = None
            return False
        if key == "ENTER":
            self._commit(ctx, run, name)
            return True
        if key == "BACKSPACE":
            self.buffer = self.buffer[:-1]
            self.fresh = False
        elif key in ("DELETE", "CTRL_U"):
            self.buffer = ""
            self.fresh = False
        elif len(key) == 1 and key.isprintable():
            if self.fresh:
                self.buffer = ""
                self.fresh = False
            if len(self.buffer) < 4096:
                self.buffer += key
        return True

    def _commit(self, ctx: AppContext, run: Any, name: str) -> None:
        ro = self.read_only_reason(run)
        if ro:
            self.editing = None
            self.message = (ro + "; nothing written", True)
            return
        t = C.variable_type(run.data, name)
        try:
            value = C.parse_typed_text(t or "", self.buffer)
            if t == "float" and not math.isfinite(value) and \
                    self.buffer.strip().lower().lstrip("+-") not in NON_FINITE_SPELLINGS:
                raise P.ProgressError("%r is beyond the float range (type inf for infinity)" % self.buffer.strip())
        except P.ProgressError as e:
            self.message = ("%s (%s) not written: %s" % (clean(name), t, e), True)
            return  # stay in the edit so it can be fixed
        try:
            seq, written = C.write_edit(run.folder, run.stem, run.data, name, value, owner_uid=run.owner_uid)
        except OSError as e:
            self.message = ("could not write the control file: %s" % (e.strerror or e), True)
            return
        except (UnicodeError, ValueError) as e:  # e.g. a name with a lone surrogate (a \ud800 escape)
            self.message = ("could not write the control file: %s" % e, True)
            return
        for n, v in written.items():
            self.edits[str(n)] = Edit(seq, v)
        self.editing = None
        self.message = ("%s = %s written to the control file (seq %d)" % (
            clean(name), clean(value_text(value)), seq), False)
        try:
            ctx.refresh_now()
        except Exception:
            pass
