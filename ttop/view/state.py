"""The main screen's view state: an immutable value, replaced on every key.

Row ids (``selected``) are tuples so they survive refreshes: ``("run", key)``,
``("proc", key, pid)``, ``("thread", key, pid, tid)``. The selection follows
the row id, never the row index: after a refresh or a filter change the same
run stays selected wherever it moved. When the selected row is filtered out
the renderer highlights the nearest row but ``selected`` is kept, so clearing
the filter brings the selection back.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import FrozenSet, Optional, Tuple

#: The ``s`` key cycles through these (None = all).
STATUS_CYCLE: Tuple[Optional[str], ...] = (None, "RUNNING", "FINISHED", "CANCELED", "FAILED", "KILLED")

RowId = Tuple


@dataclass(frozen=True)
class ViewState:
    status_filter: Optional[str] = None
    name_filter: str = ""
    editing_filter: bool = False  # the name filter prompt is open
    filter_buffer: str = ""  # what is typed so far (applied live)
    selected: Optional[RowId] = None
    expanded: FrozenSet[str] = field(default_factory=frozenset)  # run keys shown with [P]/[T] rows
    col_offset: int = 0  # scrollable columns skipped (the name column stays)
    top: int = 0  # first table row shown
    sel_index: int = 0  # where the selection was last drawn (used if its row vanished)
    paused: bool = False
    refreshing: bool = False
    ascii: bool = False
    sort_key: Optional[str] = None  # "name" or a column key; None: the folder's order
    sort_reverse: bool = False  # ``I``: numbers ascending, text descending
    metrics: Optional[Tuple[str, ...]] = None  # metric columns; None: chosen from the runs
    columns: Optional[Tuple[Tuple[str, bool], ...]] = None  # the column choice (view/columns.py); None: the default
    marked: FrozenSet[str] = field(default_factory=frozenset)  # run keys marked for comparison
    message: Optional[str] = None  # a notice for the footer (from the app)
    message_error: bool = False
    alerts: int = 0  # events alerted so far (shown in the header)

    def effective_name_filter(self) -> str:
        return self.filter_buffer if self.editing_filter else self.name_filter

    def next_status_filter(self) -> "ViewState":
        i = STATUS_CYCLE.index(self.status_filter) if self.status_filter in STATUS_CYCLE else 0
        return replace(self, status_filter=STATUS_CYCLE[(i + 1) % len(STATUS_CYCLE)], top=0)

    def with_(self, **kw) -> "ViewState":
        return replace(self, **kw)
