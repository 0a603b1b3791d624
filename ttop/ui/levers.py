"""The levers of the main screen: each function returns the Screen to push
(or None after a notice when there is nothing to show).

=================  ======  =================================================
``open_editor``     ``e``   variable editor (:mod:`ttop.ui.editor`)
``open_output``     ``o``   output viewer (:mod:`ttop.ui.output`)
``open_signal``     ``k``   signal menu for a run / [P] process / [T] thread
``open_signal_all`` ``l``   signal every RUNNING run in the current filter
``open_delete``     ``c``   delete a run's files (type ``y`` to confirm)
=================  ======  =================================================

All process and file work is in :mod:`ttop.levers`; these screens only ask
and report.
"""
from __future__ import annotations

import os
from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple

from ..levers import delete as D
from ..levers import signals as S
from ..levers.control import writer_refusal
from ..view import roles as R
from ..view.text import clean
from .dialogs import ConfirmDialog, MenuDialog, MessageDialog
from .editor import EditorScreen
from .output import OutputScreen
from .screen import AppContext, Screen, Target

__all__ = ["open_editor", "open_output", "open_signal", "open_remote_signal", "open_signal_all", "open_delete"]


def _run(ctx: AppContext, key: str) -> Any:
    snap = ctx.snapshot
    return snap.run(key) if snap is not None else None


def open_editor(ctx: AppContext, run_key: str) -> Optional[Screen]:
    if _run(ctx, run_key) is None:
        ctx.notify("run %s is no longer in the folder" % clean(run_key), error=True)
        return None
    return EditorScreen(ctx, run_key)


def open_output(ctx: AppContext, run_key: str) -> Optional[Screen]:
    if _run(ctx, run_key) is None:
        ctx.notify("run %s is no longer in the folder" % clean(run_key), error=True)
        return None
    return OutputScreen(ctx, run_key)


# ---------------------------------------------------------------------------
# signals


def _runs(n: int, what: str = "") -> str:
    """``1 run``, ``2 runs``; with ``what``: ``1 RUNNING run``."""
    return "%d %s%s" % (n, what + " " if what else "", "run" if n == 1 else "runs")


def _signal_items() -> List[Tuple[str, str]]:
    return [(n, S.SIGNAL_HELP[n]) for n in S.SIGNAL_NAMES]


def _process_name(ctx: AppContext, target: Target) -> str:
    run = _run(ctx, target.run_key)
    if run is not None:
        for p in run.processes:
            if p.pid == target.pid:
                return clean(p.name) or "?"  # (a name of escape codes only cleans to nothing)
    if target.kind != "run" and target.name:
        return clean(target.name) or "?"
    return clean(S.process_name(target.pid)) or "?"


def describe_target(ctx: AppContext, target: Target) -> str:
    """``PID 1234 (python3, run foo, user alice)`` / ``thread 77 of PID 1234
    (...)``: the user is the process's real uid, read now."""
    run = _run(ctx, target.run_key)
    run_name = clean(run.run_name) if run is not None else clean(target.run_key)
    inner = "%s, run %s, user %s" % (_process_name(ctx, target), run_name, clean(S.process_user(target.pid)))
    if target.kind == "thread" and target.tid is not None:
        return "thread %d of PID %d (%s)" % (target.tid, target.pid, inner)
    return "PID %d (%s)" % (target.pid, inner)


def remote_signallable(run: Any) -> bool:
    """A run ttop cannot signal itself (another host or PID namespace) whose
    writer can answer a request: RUNNING with a live heartbeat, or stopped
    by a SIGSTOP it acknowledged (its stop guard delivers the next request,
    e.g. SIGCONT, though the heartbeat stopped with it)."""
    if run.local or run.status != "RUNNING":
        return False
    if not run.stale:
        return True
    ack = run.data.get("signal_ack")
    return isinstance(ack, Mapping) and ack.get("name") == "SIGSTOP" and ack.get("ok") is True and not run.file_error


def request_signal(run: Any, name: str, target: str = "main") -> int:
    """Write a request for signal ``name`` into ``run``'s control file, in
    the run's own folder; returns its seq (OSError when it cannot be written)."""
    from ..levers.control import write_signal_request

    return write_signal_request(run.folder, run.stem, run.data, name, target, owner_uid=run.owner_uid)


def open_remote_signal(ctx: AppContext, run: Any, on_request: Optional[Callable[[str, int, str], None]] = None
                       ) -> Optional[Screen]:
    """``k`` on a run ttop cannot signal itself (another host, another PID
    namespace): ask the run's own writer, through its control file."""
    if not remote_signallable(run):
        ctx.notify("cannot signal run %s %s: it is not running with a live heartbeat" % (
            clean(run.run_name), clean(S.where_else(run))), error=True)
        return None
    why = writer_refusal(run.owner_uid)
    if why is not None:
        ctx.notify("cannot ask run %s for a signal: %s" % (clean(run.run_name), clean(why)), error=True)
        return None
    where = clean(S.where_else(run))
    items = _signal_items() + [("SIGTERM tree", "SIGTERM to every process of the run (its own writer sends it)")]

    def chosen(index: int, ctx: AppContext) -> None:
        name, target = (S.SIGNAL_NAMES[index], "main") if index < len(S.SIGNAL_NAMES) else ("SIGTERM", "tree")
        body: List[Tuple[str, str]] = [
            ("Ask run %s (%s) to send %s to its %s?" % (clean(run.run_name), where, name,
                                                       "main process" if target == "main" else "whole process tree"),
             R.NORMAL),
            ("The request goes into its control file; the run's own writer checks it, answers, and sends it.", R.DIM),
        ]

        def yes(ctx: AppContext) -> None:
            try:
                seq = request_signal(run, name, target)
            except (OSError, ValueError) as e:  # ValueError: a kept edit no file can hold (a lone surrogate)
                ctx.notify("%s not requested: cannot write the control file: %s" % (
                    name, getattr(e, "strerror", None) or e), error=True)
                return
            ctx.notify("%s requested from run %s %s: pending until it answers" % (name, clean(run.run_name), where))
            if on_request is not None:
                on_request(run.key, seq, name)
            ctx.refresh_now()

        ctx.push(ConfirmDialog("Request %s" % name, body, yes, prompt="y: request, any other key: cancel"))

    owner = ", user %s" % clean(run.owner) if run.owner else ""
    return MenuDialog("Signal run %s (%s%s) through its control file" % (clean(run.run_name), where, owner), items, chosen)


def open_signal(ctx: AppContext, target: Target,
                on_request: Optional[Callable[[str, int, str], None]] = None) -> Optional[Screen]:
    notes: List[str] = []
    if target.kind == "thread":
        notes.append(S.THREAD_SIGNAL_NOTE)
    run = _run(ctx, target.run_key)
    if run is not None and not run.local:
        return open_remote_signal(ctx, run, on_request)
    if run is not None and target.kind == "run":
        why = S.signal_refusal(run)
        if why is not None:
            ctx.notify("cannot signal run %s: %s" % (clean(run.run_name), clean(why)), error=True)
            return None
    what = describe_target(ctx, target)
    owner = run.owner_uid if run is not None else None
    if target.create_time is None:
        ctx.notify("cannot signal %s: no create time known to check it is the same process" % what, error=True)
        return None

    def chosen(index: int, ctx: AppContext) -> None:
        name = S.SIGNAL_NAMES[index]
        sig = S.signal_number(name)
        body: List[Tuple[str, str]] = [("Send %s to %s?" % (name, what), R.NORMAL)]
        body.extend((n, R.DIM) for n in notes)
        body.append(("The process is re-checked (PID, create time and user) right before sending.", R.DIM))

        def yes(ctx: AppContext) -> None:
            ok, msg = S.send_signal(target.pid, target.create_time, sig, tid=target.tid if target.kind == "thread" else None,
                                    owner_uid=owner)
            ctx.notify(msg, error=not ok)
            ctx.refresh_now()

        ctx.push(ConfirmDialog("Send %s" % name, body, yes, prompt="y: send, any other key: cancel"))

    return MenuDialog("Signal %s" % what, _signal_items(), chosen, notes=notes)


def _askable(runs: Sequence[Any]) -> Tuple[List[Any], List[Tuple[str, str]]]:
    """``runs`` split into those ttop may ask through their control file and
    ``(key, why not)`` for the others (runs of another user, ttop not root)."""
    ok: List[Any] = []
    refused: List[Tuple[str, str]] = []
    for r in runs:
        why = writer_refusal(r.owner_uid)
        if why is None:
            ok.append(r)
        else:
            refused.append((r.key, why))
    return ok, refused


def open_signal_all(ctx: AppContext, run_keys: Sequence[str], description: str,
                    on_request: Optional[Callable[[str, int, str], None]] = None) -> Optional[Screen]:
    """``l``: one signal to every RUNNING run in the filter. Runs here get it
    from ttop (each re-checked); runs ttop cannot signal itself (another host
    or PID namespace) are asked through their control files, as ``k`` does,
    and ``on_request(key, seq, name)`` follows each answer."""
    keys = list(run_keys)
    if not keys:
        ctx.notify("no RUNNING runs to signal", error=True)
        return None
    count = len(keys)
    desc = clean(description)

    def chosen(index: int, ctx: AppContext) -> None:
        name = S.SIGNAL_NAMES[index]
        sig = S.signal_number(name)
        present = [r for r in (_run(ctx, k) for k in keys) if r is not None]
        remote = [r for r in present if remote_signallable(r)]
        targets, skipped = S.plan_signal_runs([r for r in present if not remote_signallable(r)])
        remote, refusals = _askable(remote)
        skipped = list(skipped) + refusals
        what = "%s %s" % (_runs(len(targets) + len(remote), "RUNNING"), desc)
        if remote:
            what += " (%d of them through %s)" % (
                len(remote), "its control file" if len(remote) == 1 else "their control files")
        body: List[Tuple[str, str]] = [("Send %s to %s?" % (name, what), R.NORMAL)]
        names = []
        for run in targets[:8]:
            pid, _ct = S.run_main_process(run)
            names.append("%s (PID %s, user %s)" % (clean(run.run_name), pid if pid is not None else "-",
                                                   clean(S.process_user(pid)) if pid is not None else "?"))
        if targets:
            body.append(("Runs: " + ", ".join(names) + (", +%d more" % (len(targets) - 8) if len(targets) > 8 else ""),
                         R.DIM))
        if remote:
            names = ["%s (%s)" % (clean(r.run_name), clean(S.where_else(r))) for r in remote[:8]]
            body.append(("Asked through the control file: " + ", ".join(names)
                         + (", +%d more" % (len(remote) - 8) if len(remote) > 8 else ""), R.DIM))
        for k, why in skipped[:8]:
            body.append(("Skipped: %s: %s" % (clean(k), clean(why)), R.DIM))
        if len(skipped) > 8:
            body.append(("Skipped: +%d more" % (len(skipped) - 8), R.DIM))
        if targets:
            body.append(("Each run's main process is re-checked (PID, create time and user) before sending.", R.DIM))
        if remote:
            body.append(("A run asked through its control file checks the request, answers, and sends it itself.", R.DIM))

        def yes(ctx: AppContext) -> None:
            runs = []
            missing: List[Tuple[str, str]] = []
            for k in keys:
                run = _run(ctx, k)
                if run is None:
                    missing.append((k, "gone from the folder"))
                else:
                    runs.append(run)
            asked = [r for r in runs if remote_signallable(r)]
            sent, refused = S.signal_runs([r for r in runs if not remote_signallable(r)], sig)
            asked, refusals = _askable(asked)
            refused += refusals
            requested = 0
            for r in asked:
                try:
                    seq = request_signal(r, name)
                except (OSError, ValueError) as e:  # ValueError: a kept edit no file can hold
                    refused.append((r.key, "cannot write its control file: %s" % (getattr(e, "strerror", None) or e)))
                    continue
                requested += 1
                if on_request is not None:
                    on_request(r.key, seq, name)
            refused = missing + refused
            text = S.summarize_signal_runs(sig, sent, refused)
            if asked:
                text += "; requested from %d run%s through the control file (pending until %s)" % (
                    requested, "" if requested == 1 else "s", "it answers" if requested == 1 else "they answer")
            ctx.notify(text, error=bool(refused))
            ctx.refresh_now()

        ctx.push(ConfirmDialog("Send %s to %s" % (name, _runs(len(targets) + len(remote))), body, yes,
                               prompt="y: send, any other key: cancel"))

    return MenuDialog("Signal %s %s" % (_runs(count, "RUNNING"), desc), _signal_items(), chosen)


# ---------------------------------------------------------------------------
# delete


def _all_runs(ctx: AppContext, run: Any) -> Sequence[Any]:
    """The runs of ``run``'s folder (several folders may be watched)."""
    snap = ctx.snapshot
    folder = run.folder
    return [r for r in snap.runs if r.folder == folder] if snap is not None else ()


def _rel(folder: str, path: str) -> str:
    root = os.path.realpath(folder)
    try:
        rel = os.path.relpath(path, root)
    except ValueError:
        rel = path
    return clean(rel)


def open_delete(ctx: AppContext, run_key: str) -> Optional[Screen]:
    run = _run(ctx, run_key)
    if run is None:
        ctx.notify("run %s is no longer in the folder" % clean(run_key), error=True)
        return None
    name = clean(run.run_name)
    plan = D.plan_delete(run.folder, run, _all_runs(ctx, run))
    if plan.refusal:
        return MessageDialog("Cannot delete run %s" % name, [clean(plan.refusal), "Nothing was deleted."], error=True)
    if not plan.paths:
        head = ("Nothing of run %s can be deleted: its files are left alone" % name if plan.skipped
                else "No files of this run are left.")
        return MessageDialog("Delete run %s" % name, [head] + [clean(s) for s in plan.skipped])
    body: List[Tuple[str, str]] = [("Delete these files of run %s?" % name, R.NORMAL)]
    for p in plan.files:
        body.append(("  " + _rel(run.folder, p), R.NORMAL))
    for d in plan.dirs:
        body.append(("  " + _rel(run.folder, d) + "/ (folder, with everything in it)", R.NORMAL))
    for s in plan.skipped:
        body.append(("  not touched: " + clean(s), R.DIM))

    def yes(ctx: AppContext) -> None:
        current = _run(ctx, run_key) or run
        deleted, refused = D.delete_run_files(current.folder, current, _all_runs(ctx, current))
        if deleted and not refused:
            ctx.notify("deleted %d path%s of run %s" % (len(deleted), "" if len(deleted) == 1 else "s", name))
        elif deleted:
            ctx.notify("deleted %d path%s of run %s; %s" % (len(deleted), "" if len(deleted) == 1 else "s", name,
                                                           "; ".join(clean(r) for r in refused)), error=True)
        else:
            ctx.notify("nothing deleted: %s" % "; ".join(clean(r) for r in refused), error=True)
        ctx.refresh_now()

    return ConfirmDialog("Delete run %s" % name, body, yes,
                         prompt="type y to delete, any other key cancels", cancel_message="delete cancelled, nothing touched")
