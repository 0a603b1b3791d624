"""The key list: the single source for the help screen (``h`` / ``?``) and the
documentation (``docs/ui.md``)."""
from __future__ import annotations

from typing import List, Tuple

from . import roles as R
from .text import Line, clean, fit

#: (keys, description), in the order shown.
KEYS: Tuple[Tuple[str, str], ...] = (
    ("Up / Down", "move the selection one row"),
    ("PgUp / PgDn", "move the selection one page"),
    ("Home / End", "first / last row"),
    ("Left / Right", "scroll the columns (the run name stays)"),
    ("s", "cycle the status filter: all, RUNNING, FINISHED, CANCELED, FAILED, KILLED"),
    ("f", "name filter: type to filter live, Enter confirms, Esc cancels; host:NAME filters by host (any host containing NAME; host:=NAME exactly that host; a multi-rank job is on each of its ranks' hosts)"),
    ("H", "hosts: runs, CPU, RAM, GPU, last heartbeat and clock skew per host; Enter shows that host's runs (host:=NAME)"),
    ("Esc", "clear the filters and reset the view"),
    ("t", "expand / collapse the selected run into [R] ranks, [P] processes and [T] threads"),
    ("< / >", "sort by the column left / right of the current one (before the name: the folder's order)"),
    ("I", "invert the sort order"),
    ("Enter", "run detail: header, metric charts, resources, variables, output (Esc back)"),
    ("Space", "mark / unmark the selected run for comparison"),
    ("C", "compare the marked runs: one chart per metric, runs overlaid"),
    ("m", "columns: show, hide (Space) and reorder (- / +) every column, metrics included; Enter saves"),
    ("e", "edit variables of the selected run"),
    ("o", "output viewer (stdout / stderr) of the selected run"),
    ("k", "signal the selected row (run, [P] process or [T] thread)"),
    ("l", "signal all RUNNING runs in the filter"),
    ("c", "delete the selected run's files (asks first)"),
    ("r", "refresh now"),
    ("p", "pause / resume refreshing"),
    ("Ctrl+L", "clear the terminal and draw the whole screen again"),
    ("h / ?", "this help"),
    ("q / Ctrl+C", "quit"),
)

LEGEND: Tuple[Tuple[str, str, str], ...] = (
    ("loading", R.LOADING, "RUNNING, loading data / setting up"),
    ("train", R.TRAIN, "RUNNING, training batches"),
    ("validation", R.VALIDATION, "RUNNING, validation batches"),
    ("running", R.RUNNING, "RUNNING, any other phase"),
    ("FINISHED", R.FINISHED, "ended normally"),
    ("FAILED", R.FAILED, "ended with an error"),
    ("CANCELED", R.CANCELED, "stopped by the user"),
    ("KILLED", R.KILLED, "the run reported it was killed"),
    ("KILLED*", R.KILLED_INFERRED, "inferred by ttop: the process is gone"),
    ("dim row", R.DIM, "stale: no heartbeat lately, or the file turned unreadable"),
)


def help_lines(width: int, ascii: bool = False) -> List[Line]:
    """Every line of the help screen (the caller scrolls / crops them)."""
    ell = "..." if ascii else "\u2026"
    kw = 16
    out: List[Line] = [((fit("ttop keys  (Up/Down scroll, any other key closes)", width, "<", ell), R.TITLE),)]
    out.append(((" " * width, R.NORMAL),))
    for keys, desc in KEYS:
        out.append(((fit("  " + keys, kw, "<", ell), R.KEY), (fit(" " + desc, max(0, width - kw), "<", ell), R.NORMAL)))
    out.append(((" " * width, R.NORMAL),))
    out.append(((fit("Colours", width, "<", ell), R.TITLE),))
    for label, role, desc in LEGEND:
        out.append(((fit("  " + label, kw, "<", ell), role), (fit(" " + desc, max(0, width - kw), "<", ell), R.NORMAL)))
    return [tuple((clean(t), r) for t, r in line) for line in out]


def markdown() -> str:
    """The key list as a Markdown table (for docs/ui.md)."""
    rows = ["| key | action |", "| --- | --- |"]
    rows += ["| `%s` | %s |" % (k, d) for k, d in KEYS]
    return "\n".join(rows)
