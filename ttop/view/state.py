"""The main screen's view state: an immutable value, replaced on every key.

Row ids (``selected``) are tuples so they survive refreshes: ``("run", key)``,
``("proc", key, pid)``, ``("thread", key, pid, tid)``. The selection follows
the row id, never the row index: after a refresh or a filter change the same
run stays selected wherever it moved. When the selected row is filtered out
the renderer highlights the nearest row but ``selected`` is kept, so clearing
the filter brings the selection back.
"""
from __future__ import annotations

from ..record import FrozenRecord, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import FrozenSet, Optional, Tuple

    RowId = Tuple
else:
    RowId = tuple

#: The ``s`` key cycles through these (None = all).
STATUS_CYCLE: Tuple[Optional[str], ...] = (None, "RUNNING", "FINISHED", "CANCELED", "FAILED", "KILLED")



class ViewState(FrozenRecord):
    status_filter: Optional[str]
    name_filter: str
    editing_filter: bool  # the name filter prompt is open
    filter_buffer: str  # what is typed so far (applied live)
    selected: Optional[RowId]
    expanded: FrozenSet[str]  # run keys shown with [P]/[T] rows
    col_offset: int  # scrollable columns skipped (the name column stays)
    top: int  # first table row shown
    sel_index: int  # where the selection was last drawn (used if its row vanished)
    paused: bool
    refreshing: bool
    ascii: bool
    sort_key: Optional[str]  # "name" or a column key; None: the folder's order
    sort_reverse: bool  # ``I``: numbers ascending, text descending
    metrics: Optional[Tuple[str, ...]]  # metric columns; None: chosen from the runs
    columns: Optional[Tuple[Tuple[str, bool], ...]]  # the column choice (view/columns.py); None: the default
    marked: FrozenSet[str]  # run keys marked for comparison
    message: Optional[str]  # a notice for the footer (from the app)
    message_error: bool
    alerts: int  # events alerted so far (shown in the header)

    def __init__(self, status_filter: Optional[str] = None, name_filter: str = "", editing_filter: bool = False,
                 filter_buffer: str = "", selected: Optional[RowId] = None, expanded: FrozenSet[str] = frozenset(),
                 col_offset: int = 0, top: int = 0, sel_index: int = 0, paused: bool = False,
                 refreshing: bool = False, ascii: bool = False, sort_key: Optional[str] = None,
                 sort_reverse: bool = False, metrics: Optional[Tuple[str, ...]] = None,
                 columns: Optional[Tuple[Tuple[str, bool], ...]] = None, marked: FrozenSet[str] = frozenset(),
                 message: Optional[str] = None, message_error: bool = False, alerts: int = 0) -> None:
        self.__dict__.update(status_filter=status_filter, name_filter=name_filter, editing_filter=editing_filter,
                             filter_buffer=filter_buffer, selected=selected,
                             expanded=expanded, col_offset=col_offset, top=top,
                             sel_index=sel_index, paused=paused, refreshing=refreshing, ascii=ascii,
                             sort_key=sort_key, sort_reverse=sort_reverse, metrics=metrics, columns=columns,
                             marked=marked, message=message,
                             message_error=message_error, alerts=alerts)

    def effective_name_filter(self) -> str:
        return self.filter_buffer if self.editing_filter else self.name_filter

    def next_status_filter(self) -> "ViewState":
        i = STATUS_CYCLE.index(self.status_filter) if self.status_filter in STATUS_CYCLE else 0
        return replace(self, status_filter=STATUS_CYCLE[(i + 1) % len(STATUS_CYCLE)], top=0)

    def with_(self, **kw) -> "ViewState":
        return replace(self, **kw)
