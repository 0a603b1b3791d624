"""The main screen: the run table and its keys.

All drawing goes through the pure renderer (:func:`ttop.view.screen.main_frame`);
this class only turns keys into new :class:`~ttop.view.state.ViewState` values
and pushes the other screens (help, and the lever screens of
``ttop.ui.levers``).
"""
from __future__ import annotations

from ..view.ranks import rank_unsignalable
from ..view.screen import main_frame
from ..view.state import ViewState
from ..view.table import COLUMNS, filtered_runs, max_offset, metric_column, sort_keys
from ..view.text import Line, clean
from .screen import AppContext, Screen, Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

_MOVE_KEYS = ("UP", "DOWN", "PGUP", "PGDN", "HOME", "END")
#: Levers that act on the selected run, by key (functions of ``ttop.ui.levers``,
#: imported with the first lever: it brings psutil and the lever screens,
#: which the first screen does without); ``k`` (the selected row's process)
#: and ``l`` (every RUNNING run in the filter) take other arguments.
_ROW_LEVERS = {"e": "open_editor", "o": "open_output", "c": "open_delete"}
_LEVER_KEYS = frozenset(_ROW_LEVERS) | {"k", "l"}


class MainScreen(Screen):
    def __init__(self, ascii: bool = False, columns: Any = None, check_metrics: Tuple[str, ...] = ()) -> None:
        self.state = ViewState(ascii=ascii, columns=columns)
        self._check_metrics = check_metrics  # --columns names taken as metrics: checked on the first runs
        self._rows: List[Any] = []
        self._sel = -1
        self._page = 10
        self._paused_snapshot: Any = None
        self._refresh_seq: Optional[int] = None
        self._requests: Dict[str, Tuple[int, str]] = {}  # run key -> (seq, signal) asked through its control file

    # -- drawing -------------------------------------------------------------

    def snapshot(self, ctx: AppContext) -> Any:
        if self.state.paused and self._paused_snapshot is not None:
            return self._paused_snapshot
        return ctx.snapshot

    def render(self, ctx: AppContext, width: int, height: int) -> List[Line]:
        snap = self.snapshot(ctx)
        m = ctx.current_message()
        st = self.state
        if m is not None:
            st = st.with_(message=m[0], message_error=m[1])
        elif st.message is not None:
            st = st.with_(message=None, message_error=False)
        alerts = ctx.alert_count
        if alerts != st.alerts:
            st = st.with_(alerts=alerts)
        frame = main_frame(snap, st, width, height)
        if frame.table is not None:
            self._rows = frame.table.rows
            self._sel = frame.table.selected
            self._page = frame.body_height
            if frame.table.top != self.state.top or max(0, self._sel) != self.state.sel_index:
                self.state = self.state.with_(top=frame.table.top, sel_index=max(0, self._sel))
        return frame.lines

    def prepare(self, ctx: AppContext, snapshot: Any, width: int, height: int) -> None:
        # the frame as the UI thread will draw it (the message and the alert
        # count only touch the header and footer, which are cheap)
        if not self.state.paused:
            st = self.state
            if ctx.alert_count != st.alerts:
                st = st.with_(alerts=ctx.alert_count)
            main_frame(snapshot, st, width, height)

    def _remote_requested(self, run_key: str, seq: int, name: str) -> None:
        self._requests[run_key] = (seq, name)

    def _follow_requests(self, ctx: AppContext, snap: Any) -> None:
        """Say when a run answers a signal request (pending -> applied / refused)."""
        from ..levers.control import signal_state

        for key, (seq, name) in list(self._requests.items()):
            run = snap.run(key)
            if run is None:
                del self._requests[key]
                continue
            state, result = signal_state(run.data, seq)
            if state != "pending":
                del self._requests[key]
                ctx.notify("run %s: %s %s%s" % (clean(run.run_name), name, state, (": " + clean(result)) if result else ""),
                           error=state == "refused")

    def on_snapshot(self, ctx: AppContext) -> None:
        snap = ctx.snapshot
        if self._check_metrics and snap is not None and snap.runs:
            from ..view.columns import check_metrics
            from ..view.metrics import default_metrics

            problem = check_metrics(self._check_metrics, default_metrics(snap.runs, 500))
            self._check_metrics = ()
            if problem:
                ctx.notify("--columns: " + problem, error=True)
        if self._requests and snap is not None:
            self._follow_requests(ctx, snap)
        if self.state.refreshing and snap is not None and (self._refresh_seq is None or snap.seq > self._refresh_seq):
            self.state = self.state.with_(refreshing=False)
            if self.state.paused:  # r while paused: show that one new snapshot
                self._paused_snapshot = snap

    # -- keys ------------------------------------------------------------------

    def typing(self) -> bool:
        return self.state.editing_filter

    def on_key(self, key: str, ctx: AppContext) -> bool:
        st = self.state
        if st.editing_filter:
            return self._filter_key(key, ctx)
        if key in _MOVE_KEYS:
            self._move(key)
        elif key == "LEFT":
            self.state = st.with_(col_offset=max(0, st.col_offset - 1))
        elif key == "RIGHT":
            self.state = st.with_(col_offset=min(max_offset(self.snapshot(ctx), st), st.col_offset + 1))
        elif key == "s":
            self.state = st.next_status_filter()
        elif key == "f":
            self.state = st.with_(editing_filter=True, filter_buffer=st.name_filter)
        elif key == "ESC":
            sel = st.selected
            if sel is not None and sel[0] != "run":
                sel = ("run", sel[1])
            self.state = st.with_(status_filter=None, name_filter="", filter_buffer="", col_offset=0, top=0,
                                  expanded=frozenset(), selected=sel)
        elif key == "t":
            self._toggle_expand(ctx)
        elif key in ("<", ">"):
            self._sort_step(-1 if key == "<" else 1, ctx)
        elif key == "ENTER":
            self._open_detail(ctx)
        elif key == " ":
            self._toggle_mark(ctx)
        elif key == "C":
            self._open_compare(ctx)
        elif key == "m":
            self._open_columns(ctx)
        elif key == "I":
            if st.sort_key is not None:
                self.state = st.with_(sort_reverse=not st.sort_reverse)
                ctx.notify("sort: %s" % self._sort_description())
        elif key == "r":
            snap = ctx.snapshot
            self._refresh_seq = snap.seq if snap is not None else None
            self.state = st.with_(refreshing=True)
            ctx.refresh_now()
        elif key == "p":
            if st.paused:
                self._paused_snapshot = None
                self.state = st.with_(paused=False)
            else:
                self._paused_snapshot = ctx.snapshot
                self.state = st.with_(paused=True)
        elif key == "H":
            from .hosts import HostsScreen

            ctx.push(HostsScreen(self._show_host))
        elif key in ("h", "?", "F1"):
            from .help_screen import HelpScreen

            ctx.push(HelpScreen(ascii=st.ascii))
        elif key in _LEVER_KEYS:
            self._lever(key, ctx)
        elif key in ("q", "CTRL_C"):
            ctx.quit()
        else:
            return False
        return True

    def _show_host(self, host: str) -> None:
        """The hosts screen's Enter: the table shows that host's runs."""
        from ..view.table import HOST_FILTER
        from ..view.text import clean

        # exactly that host (gpu-1 is not gpu-10), by its name as shown
        self.state = self.state.with_(name_filter=HOST_FILTER + "=" + clean(host), filter_buffer="", top=0)

    # -- sorting, marks, detail and compare screens -----------------------------

    def _sort_step(self, step: int, ctx: AppContext) -> None:
        st = self.state
        keys = sort_keys(self.snapshot(ctx), st)
        i = keys.index(st.sort_key) if st.sort_key in keys else -1
        i = max(-1, min(len(keys) - 1, i + step))
        self.state = st.with_(sort_key=keys[i] if i >= 0 else None, sort_reverse=False)
        ctx.notify("sort: %s" % self._sort_description())

    def _sort_description(self) -> str:
        from ..view.table import TEXT_SORTS

        key = self.state.sort_key
        if key is None:
            return "the folder's order"
        if key == "name":
            title = "Run Name"
        elif key.startswith("m:"):
            title = metric_column(key[2:]).title
        else:
            title = next((c.title for c in COLUMNS if c.key == key), key)
        text = key in TEXT_SORTS
        first = ("Z-A" if text else "lowest first") if self.state.sort_reverse else ("A-Z" if text else "highest first")
        return "%s, %s (I inverts)" % (title, first)

    def _toggle_mark(self, ctx: AppContext) -> None:
        row = self.selected_row()
        if row is None:
            return
        marked = set(self.state.marked)
        key = row.run.key
        if key in marked:
            marked.discard(key)
        else:
            marked.add(key)
        self.state = self.state.with_(marked=frozenset(marked))
        ctx.notify("%d run%s marked (C compares them)" % (len(marked), "" if len(marked) == 1 else "s"))

    def _open_detail(self, ctx: AppContext) -> None:
        row = self.selected_row()
        if row is None:
            ctx.notify("no run selected", error=True)
            return
        from .detail import DetailScreen

        ctx.push(DetailScreen([row.run.key], ascii=self.state.ascii))

    def _open_compare(self, ctx: AppContext) -> None:
        snap = self.snapshot(ctx)
        keys = [r.key for r in (snap.runs if snap is not None else ()) if r.key in self.state.marked]
        if len(keys) < 2:
            ctx.notify("mark at least two runs with Space first", error=True)
            return
        from .detail import DetailScreen

        ctx.push(DetailScreen(keys, ascii=self.state.ascii))

    def _open_columns(self, ctx: AppContext) -> None:
        from .columns import open_chooser

        snap = self.snapshot(ctx)
        ctx.push(open_chooser(snap, self.state, filtered_runs(snap, self.state), self._apply_columns))

    def _apply_columns(self, choice: Any, ctx: AppContext) -> None:
        """The chooser's Enter: the table shows ``choice`` (a hidden sort
        column ends the sort) and the config file keeps it."""
        from .columns import save_choice

        st = self.state.with_(columns=choice, col_offset=0)
        if st.sort_key is not None and st.sort_key not in sort_keys(self.snapshot(ctx), st):
            st = st.with_(sort_key=None, sort_reverse=False)
        self.state = st
        save_choice(choice, ctx)

    def _filter_key(self, key: str, ctx: AppContext) -> bool:
        st = self.state
        if key == "CTRL_C":
            ctx.quit()
        elif key == "ENTER":
            self.state = st.with_(editing_filter=False, name_filter=st.filter_buffer.strip(), filter_buffer="", top=0)
        elif key == "ESC":
            self.state = st.with_(editing_filter=False, filter_buffer="")
        elif key == "BACKSPACE":
            self.state = st.with_(filter_buffer=st.filter_buffer[:-1])
        elif key == "CTRL_U":
            self.state = st.with_(filter_buffer="", top=0)
        elif len(key) == 1 and key.isprintable():
            if len(st.filter_buffer) < 200:
                self.state = st.with_(filter_buffer=st.filter_buffer + key, top=0)
        return True

    def _move(self, key: str) -> None:
        rows = self._rows
        if not rows:
            return
        cur = max(0, self._sel)
        page = max(1, self._page)
        new = {"UP": cur - 1, "DOWN": cur + 1, "PGUP": cur - page, "PGDN": cur + page,
               "HOME": 0, "END": len(rows) - 1}[key]
        new = max(0, min(len(rows) - 1, new))
        self._sel = new
        self.state = self.state.with_(selected=rows[new].id)

    def selected_row(self) -> Any:
        if 0 <= self._sel < len(self._rows):
            return self._rows[self._sel]
        return None

    def _toggle_expand(self, ctx: AppContext) -> None:
        row = self.selected_row()
        if row is None:
            return
        key = row.run.key
        expanded = self.state.expanded ^ {key}
        self.state = self.state.with_(expanded=frozenset(expanded), selected=("run", key))
        if key in expanded:
            ctx.refresh_now()  # its thread rows are sampled from now on (see wants_threads)

    def wants_threads(self, key: str) -> bool:
        """The collector samples the threads of the runs shown expanded only."""
        return key in self.state.expanded

    # -- levers (screens written in ttop.ui.levers) ----------------------------

    def target(self) -> Optional[Target]:
        row = self.selected_row()
        if row is None:
            return None
        run = row.run
        rk = row.rank
        if row.kind == "rank" and rk.rank != 0:  # another rank's process, when it is this host's and the run's
            ok = rk.local and rk.alive and rk.pid is not None
            return Target("proc", run.key, rk.pid, rk.pid_create_time, name="rank %d" % rk.rank) if ok else None
        if row.kind in ("run", "rank"):
            if run.pid is None:
                return None
            return Target("run", run.key, run.pid, run.pid_create_time, name=clean(run.run_name))
        p = row.proc
        if row.kind == "proc":
            return Target("proc", run.key, p.pid, p.create_time, name=clean(p.name))
        return Target("thread", run.key, p.pid, p.create_time, tid=row.thread.tid, name=clean(p.name))

    def running_in_filter(self, ctx: AppContext) -> List[str]:
        return [r.key for r in filtered_runs(self.snapshot(ctx), self.state) if r.status == "RUNNING"]

    def filter_description(self) -> str:
        st = self.state
        parts = []
        if st.status_filter:
            parts.append("status " + st.status_filter)
        if st.name_filter:
            parts.append("name contains %r" % clean(st.name_filter))
        return "(filter: %s)" % ", ".join(parts) if parts else "(no filter)"

    def _lever(self, key: str, ctx: AppContext) -> None:
        from . import levers

        row = self.selected_row()
        screen: Optional[Screen]
        if key == "l":
            keys = self.running_in_filter(ctx)
            if not keys:
                ctx.notify("no RUNNING runs in the filter", error=True)
                return
            screen = levers.open_signal_all(ctx, keys, self.filter_description(), self._remote_requested)
        elif key == "k":
            target = self.target()
            if target is None and row is not None and row.kind == "rank":
                ctx.notify(rank_unsignalable(row.rank), error=True)
                return
            if target is None:
                ctx.notify("nothing to signal: no row selected or the run has no PID", error=True)
                return
            screen = levers.open_signal(ctx, target, self._remote_requested)
        else:
            if row is None:
                ctx.notify("no run selected", error=True)
                return
            screen = getattr(levers, _ROW_LEVERS[key])(ctx, row.run.key)
        if screen is not None:
            ctx.push(screen)
