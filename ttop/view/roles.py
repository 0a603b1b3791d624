"""Style roles: the names the pure renderer attaches to text segments.

The renderer never knows colours. Each segment of a :data:`ttop.view.text.Line`
carries one of the role names below; ``ttop.ui.colors`` maps them to curses
attributes and ``ttop.sinks.once`` to ANSI SGR codes.

A role may carry modifiers after ``+``: ``+sel`` (the selected row: drawn
reversed), ``+dim`` (stale data). ``split(role)`` returns the base role and the
set of modifiers.

Status roles, one per thing a user must tell apart at a glance:

``loading``, ``train``, ``validation``, ``running`` (RUNNING in another or no
phase), ``finished``, ``failed``, ``canceled``, ``killed`` (the run reported
KILLED), ``killed_inferred`` (ttop inferred it: the process is gone; the
status text carries a ``*`` and the footer a legend).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import FrozenSet, Optional, Tuple

NORMAL = "normal"
DIM = "dim"
TITLE = "title"  # column titles of the table, screen titles
HEADER = "header"  # host / device lines
LABEL = "label"  # "CPU", "RAM", "GPU0" labels in the header
BAR_LOW = "bar_low"  # filled part of a bar, < 60 %
BAR_MID = "bar_mid"  # 60 - 90 %
BAR_HIGH = "bar_high"  # >= 90 %
BAR_EMPTY = "bar_empty"
FOOTER = "footer"
KEY = "key"  # a key name in hints / help
NOTICE = "notice"
ERROR = "error"
PAUSED = "paused"
PROC = "proc"  # [P] rows
THREAD = "thread"  # [T] rows
FILTER = "filter"  # the name-filter prompt
CHART = "chart"  # the curve of a single-series chart
TREND_UP = "trend_up"  # a metric rising over its recent window
TREND_DOWN = "trend_down"  # a metric falling over its recent window
MARK = "mark"  # a run marked for comparison
HEALTH_OK = "health_ok"  # health verdicts (ttop.view.health)
HEALTH_WARN = "health_warn"
HEALTH_CRIT = "health_crit"
#: Overlaid series of a comparison chart, one colour each (and, without
#: colour, one marker each: see ``ttop.view.chart.MARKERS``).
SERIES = ("series0", "series1", "series2", "series3", "series4", "series5")

LOADING = "loading"
TRAIN = "train"
VALIDATION = "validation"
RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CANCELED = "canceled"
KILLED = "killed"
KILLED_INFERRED = "killed_inferred"

STATUS_ROLES = (LOADING, TRAIN, VALIDATION, RUNNING, FINISHED, FAILED, CANCELED, KILLED, KILLED_INFERRED)

ALL = (
    NORMAL, DIM, TITLE, HEADER, LABEL, BAR_LOW, BAR_MID, BAR_HIGH, BAR_EMPTY, FOOTER, KEY,
    NOTICE, ERROR, PAUSED, PROC, THREAD, FILTER, CHART, TREND_UP, TREND_DOWN, MARK,
    HEALTH_OK, HEALTH_WARN, HEALTH_CRIT,
) + SERIES + STATUS_ROLES

SEL = "sel"
STALE = "dim"


def with_mod(role: str, mod: str) -> str:
    return role + "+" + mod


def split(role: str) -> Tuple[str, FrozenSet[str]]:
    if "+" not in role:
        return role, frozenset()
    base, *mods = role.split("+")
    return base, frozenset(mods)


def status_role(status: str, phase: Optional[str], inferred: bool = False) -> str:
    """The role of a run row from its effective status and phase."""
    if status == "RUNNING":
        p = (phase or "").strip().lower()
        if p in ("loading", "load", "setup", "starting"):
            return LOADING
        if p in ("train", "training"):
            return TRAIN
        if p in ("validation", "val", "validate", "eval", "evaluation"):
            return VALIDATION
        return RUNNING
    if status == "FINISHED":
        return FINISHED
    if status == "FAILED":
        return FAILED
    if status == "CANCELED":
        return CANCELED
    if status == "KILLED":
        return KILLED_INFERRED if inferred else KILLED
    return NORMAL
