"""The footer: a status line (counts, PAUSED, the latest notice) and a key-hint
line (or the name-filter prompt while it is being typed)."""
from __future__ import annotations

from . import roles as R
from .state import ViewState
from .text import Line, Segment, clean, clip, crop_line, line_width, pad_line
from .text import width as text_width

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional, Sequence, Tuple

#: Key hints, most important first (cut from the end when narrow).
HINTS: Tuple[Tuple[str, str], ...] = (
    ("q", "quit"), ("h", "help"), ("s", "status"), ("f", "filter"), ("t", "expand"),
    ("e", "edit"), ("o", "output"), ("k", "signal"), ("r", "refresh"), ("p", "pause"),
    ("\u2190\u2192", "columns"), ("Enter", "detail"), ("<>", "sort"),
)


def skipped_notice(snapshot: Any, limit: int = 3) -> Optional[str]:
    sk = snapshot.skipped if snapshot is not None else ()
    if not sk:
        return None
    parts = ["%s (%s)" % (clean(s.name), clean(s.reason)) for s in sk[:limit]]
    more = ", +%d more" % (len(sk) - limit) if len(sk) > limit else ""
    return "%d file%s skipped: %s%s" % (len(sk), "" if len(sk) == 1 else "s", ", ".join(parts), more)


def snapshot_notice(snapshot: Any) -> Tuple[Optional[str], bool]:
    """The most important thing the snapshot has to say, and whether it is an
    error."""
    if snapshot is None:
        return "collecting...", False
    if snapshot.folder_error:
        return clean(snapshot.folder_error), True
    lost = [f.error for f in getattr(snapshot, "folders", ()) if f.error]
    if lost:  # several folders: one is gone, the others are shown
        return clean("; ".join(lost) + " (the other folders are watched)"), True
    s = skipped_notice(snapshot)
    if s:
        return s, True
    if snapshot.notices:
        return clean(snapshot.notices[-1]), False
    return None, False


def end_error(run: Any) -> Optional[str]:
    """The first line of the error a run ended with (FAILED, CANCELED: the
    writer's ``Type: message``, or which rank failed first), cleaned for the
    screen; None for a run still running or ended without one."""
    if run.status not in ("FAILED", "CANCELED"):
        return None
    err = run.data.get("error")
    if not isinstance(err, str) or not err.strip():
        return None
    return clean(err.strip().splitlines()[0])


def run_notice(run: Any) -> Tuple[Optional[str], bool]:
    """Why the selected run looks the way it does (inferred status, stale
    data, a file error, the error it ended with), or None."""
    if run is None:
        return None, False
    name = clean(run.run_name)
    own = getattr(run, "ownership_note", None)
    if own and not run.processes:
        return "%s: %s" % (name, clean(own)), True
    if run.status_inferred and run.status_reason:
        return "%s: %s* (%s)" % (name, run.status, clean(run.status_reason)), False
    if run.stale and run.stale_reason:
        return "%s: stale, %s" % (name, clean(run.stale_reason)), False
    if run.file_error:
        return "%s: %s" % (name, clean(run.file_error)), True
    err = end_error(run)
    if err:
        return "%s: %s: %s" % (name, run.status, err), run.status == "FAILED"
    if own:
        return "%s: %s" % (name, clean(own)), False
    return None, False


def counts_segments(snapshot: Any) -> List[Segment]:
    c = snapshot.counts() if snapshot is not None else {}
    segs: List[Segment] = []
    for status, role, label in (("RUNNING", R.TRAIN, "running"), ("FINISHED", R.FINISHED, "finished"),
                                ("FAILED", R.FAILED, "failed"), ("CANCELED", R.CANCELED, "canceled"),
                                ("KILLED", R.KILLED, "killed")):
        n = c.get(status, 0)
        if n or status in ("RUNNING", "FINISHED", "FAILED"):
            if segs:
                segs.append((" ", R.FOOTER))
            segs.append(("%d %s" % (n, label), role if n else R.FOOTER))
    return segs


def _pad(segs: Sequence[Segment], width: int, role: str = R.FOOTER) -> Line:
    return pad_line(segs, width, role)


def status_line(snapshot: Any, state: ViewState, width: int, shown: int, total: int,
                legend_inferred: bool = False, col_info: str = "", selected_run: Any = None,
                stale: int = 0) -> Line:
    ell = "..." if state.ascii else "\u2026"
    segs: List[Segment] = []
    if state.paused:
        segs.append(("PAUSED", R.PAUSED))
        segs.append((" ", R.FOOTER))
    if state.refreshing:
        segs.append(("refreshing" + ell, R.NOTICE))
        segs.append((" ", R.FOOTER))
    segs += counts_segments(snapshot)
    if stale:
        segs.append(("  %d stale" % stale, R.DIM))
    filt = []
    if state.status_filter:
        filt.append("status=" + state.status_filter)
    nf = state.effective_name_filter()
    if nf:
        filt.append("name~" + clean(nf))
    if filt or shown != total:
        segs.append(("  [%d/%d shown%s]" % (shown, total, ": " + " ".join(filt) if filt else ""), R.FILTER))
    if legend_inferred:
        segs.append(("  * inferred: process gone", R.KILLED_INFERRED))
    msg: Optional[str]
    if state.message:
        msg, err = state.message, state.message_error
    else:
        msg, err = run_notice(selected_run)
        if not msg:
            msg, err = snapshot_notice(snapshot)
    if msg and width - line_width(tuple(segs)) >= 12:
        used = line_width(tuple(segs))
        text = clip(clean(msg), max(0, width - used - 2), ell)
        segs.append(("  " + text, R.ERROR if err else R.NOTICE))
    if col_info and width - line_width(tuple(segs)) >= len(col_info) + 2:
        segs.append(("  " + col_info, R.FOOTER))
    return _pad(segs, width)


def hint_line(state: ViewState, width: int) -> Line:
    if state.editing_filter:
        cursor = "_" if state.ascii else "\u2581"
        typed = clean(state.filter_buffer)
        room = width - len("Filter: ") - 1  # the end of what is typed, where the cursor is, stays in view
        typed_w = text_width(typed)
        if typed_w > room > 1:
            ell = "..." if state.ascii else "\u2026"
            tail = crop_line(((typed, R.FILTER),), typed_w - (room - len(ell)), room - len(ell))
            typed = ell + "".join(t for t, _ in tail)
        segs: List[Segment] = [("Filter: ", R.KEY), (typed, R.FILTER), (cursor, R.FILTER),
                               ("   Enter confirm  Esc cancel", R.FOOTER)]
        return _pad(segs, width)
    segs = []
    for key, what in HINTS:
        if key == "\u2190\u2192" and state.ascii:
            key = "<>"
        if key == "s" and state.status_filter:
            what = "status:" + state.status_filter
        segs.append((key, R.KEY))
        segs.append((" " + what + "  ", R.FOOTER))
    return _pad(segs, width)
