"""The control-edit protocol: writing a variable change for a running job and
following whether the job applied it.

A control file is written atomically with the next ``seq``, cumulatively while
earlier edits are still unacknowledged, so two quick edits are both applied,
in order.
"""
from __future__ import annotations

import errno
import os
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Set, Tuple

from .. import fsafe
from .. import progress as P


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "uid %d" % uid


def writer_refusal(owner_uid: Optional[int]) -> Optional[str]:
    """Why ttop's user writes no control file for a run of ``owner_uid``
    (None: it may). The run takes one only from its own user or root."""
    me = os.geteuid()
    if owner_uid is None or me in (0, owner_uid):
        return None
    whom = "root" if owner_uid == 0 else "%s or root" % _user(owner_uid)
    return "the run is %s's: it takes a control file only from %s, not from %s" % (_user(owner_uid), whom, _user(me))


def control_file_name(folder: str, key: str, data: Mapping[str, Any], owner_uid: Optional[int] = None) -> str:
    """The name of the run's control file: :func:`ttop.progress.control_name`,
    the name its progress file gives only while a file of the run's user
    (``owner_uid``) or root is there (the run creates its own under that name
    before it gives it). A name of that form is also the usual control file of
    a run named ``<run>.<hex>``: another user's progress file giving it would
    have ttop (run by root) write that run's file, which it would refuse, and
    its own user could no longer replace in a sticky folder."""
    name = P.control_name(key, data)
    usual = P.CONTROL_PREFIX + key + P.PROGRESS_SUFFIX
    if name == usual or owner_uid is None:
        return name
    try:
        uid = os.lstat(os.path.join(folder, name)).st_uid
    except OSError:
        return usual
    return name if uid in (owner_uid, 0) else usual


def _write(folder: str, key: str, data: Mapping[str, Any], seq: int, variables: Mapping[str, Any],
           signal: Optional[Mapping[str, Any]] = None, owner_uid: Optional[int] = None) -> None:
    """:func:`ttop.progress.write_control` for the run of ``owner_uid``
    (the file names it: a run of another user, whose file was swapped in
    under this name since, refuses it); a refusal to replace the file
    says whose it is (a sticky folder lets only its owner or root replace
    it), not a bare "Operation not permitted". Nothing is written for a run
    of another user unless ttop runs as root: the run takes a control file
    only from its own user or root, and in a sticky folder the file left
    behind would keep that user's own ttop from writing theirs."""
    why = writer_refusal(owner_uid)
    if why is not None:
        raise PermissionError(errno.EPERM, why)
    name = control_file_name(folder, key, data, owner_uid)
    try:
        P.write_control(folder, key, seq, variables, signal=signal, owner_uid=owner_uid, name=name)
    except PermissionError as e:
        try:
            uid = os.lstat(os.path.join(folder, name)).st_uid
        except OSError:
            raise e from None
        if uid == os.geteuid():
            raise
        raise PermissionError(e.errno, "%s is %s's: in this folder only they or root may replace it" % (
            name, _user(uid)), os.path.join(folder, name)) from None


#: Longest wait for another ttop's edit of the same folder to finish.
LOCK_WAIT = 1.0


def _folder_lock(folder: str) -> Any:
    """An exclusive ``flock`` on the progress folder while a control file is
    read, merged and written: two ttops editing one run at once (two users,
    two terminals) then never write the same seq, one's edit replaced by the
    other's yet shown as applied. Waits at most :data:`LOCK_WAIT`
    (:func:`ttop.fsafe.folder_lock`)."""
    return fsafe.folder_lock(folder, LOCK_WAIT)


def _trusted(owner_uid: Optional[int]) -> Set[int]:
    """Whose control file counts: the run's owner's or root's (the ones the
    run itself accepts, see :class:`ttop.monitor.control.ControlPoller`),
    and ttop's own user's (what it wrote earlier)."""
    uids = {0, os.geteuid()}
    if owner_uid is not None:
        uids.add(owner_uid)
    return uids


def read_control(folder: str, key: str, owner_uid: Optional[int] = None,
                 data: Optional[Mapping[str, Any]] = None) -> Tuple[Optional[int], Dict[str, Any], Optional[str]]:
    """The run's control file as ``(seq, variables, error)``: seq None when
    there is none (or it is unreadable or not a file the run would accept:
    then ``error`` says why). ``owner_uid``: the run's owner; ``data``: its
    progress data (which may name another file, :func:`ttop.progress.control_name`)."""
    seq, variables, error, _mtime, _signal = _read_control(folder, control_file_name(folder, key, data or {}, owner_uid), owner_uid,
                                                           key)
    return seq, variables, error


def _read_control(folder: str, name: str, owner_uid: Optional[int] = None, run: Optional[str] = None
                  ) -> Tuple[Optional[int], Dict[str, Any], Optional[str], Optional[float], Any]:
    # opened without following a link or blocking on a FIFO, and used only
    # when the run would accept it: another user's file planted under the
    # name, or one written for another run renamed over it, must not be
    # carried into the file ttop writes (which the run accepts)
    try:
        fd = fsafe.open_beneath(folder, name)
    except FileNotFoundError:
        return None, {}, None, None, None
    except OSError as e:
        return None, {}, "control file unreadable: %s" % fsafe.describe(e), None, None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if st.st_uid not in _trusted(owner_uid):
            return None, {}, "control file ignored: owned by %s, not by the run's owner" % _user(st.st_uid), None, None
        raw = f.read(P.MAX_CONTROL_BYTES + 1)
    mtime = st.st_mtime
    if len(raw) > P.MAX_CONTROL_BYTES:
        return None, {}, "control file unreadable: file larger than %d bytes" % P.MAX_CONTROL_BYTES, None, None
    try:
        seq, variables, signal = P.parse_control_doc(raw, owner_uid, run)
    except P.ProgressError as e:
        return None, {}, "control file unreadable: %s" % e, mtime, None
    return seq, dict(variables), None, mtime, signal


def current_control(folder: str, key: str, data: Mapping[str, Any], owner_uid: Optional[int] = None
                    ) -> Tuple[Optional[int], Dict[str, Any]]:
    """The run's control file as ``(seq, variables)`` if it is readable and
    belongs to this run, else ``(None, {})``. A control file older than the
    run's start (left by an earlier run of the same name) does not count, nor
    does one another user than the run's owner (``owner_uid``), root or
    ttop's own user wrote."""
    seq, variables, _signal = _current_doc(folder, key, data, owner_uid)
    return (None, {}) if seq is None else (seq, variables)


def _current_doc(folder: str, key: str, data: Mapping[str, Any], owner_uid: Optional[int] = None
                 ) -> Tuple[Optional[int], Dict[str, Any], Any]:
    """:func:`current_control` and the file's raw ``signal`` value (None:
    none), all read from one descriptor: a file swapped in between by
    another user never has its request carried into the one ttop writes."""
    seq, variables, _err, mtime, signal = _read_control(folder, control_file_name(folder, key, data, owner_uid), owner_uid, key)
    if seq is None:
        return None, {}, None
    started = data.get("started_at")
    if isinstance(started, (int, float)) and not isinstance(started, bool) and mtime is not None:
        if mtime < started - 1.0:
            return None, {}, None
    return seq, variables, signal


def unacknowledged(folder: str, key: str, data: Mapping[str, Any], owner_uid: Optional[int] = None
                   ) -> Tuple[Optional[int], Dict[str, Any]]:
    """The edits in the control file the run has not acknowledged yet:
    ``(seq, variables)``, or ``(None, {})`` (see :func:`current_control`)."""
    seq, variables = current_control(folder, key, data, owner_uid)
    if seq is None or seq <= acked_seq(data):
        return None, {}
    return seq, variables


def acked_seq(data: Mapping[str, Any]) -> int:
    v = data.get("control_seq")
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def variable_type(data: Mapping[str, Any], name: str) -> Optional[str]:
    """A tracked variable's control type: ``variable_types[name]`` else the
    type of its current value."""
    types = data.get("variable_types")
    if isinstance(types, Mapping):
        t = types.get(name)
        if t in P.VARIABLE_TYPES:
            return t
    variables = data.get("variables")
    if isinstance(variables, Mapping) and name in variables:
        return P.type_name(variables[name])
    return None


def write_edit(folder: str, key: str, data: Mapping[str, Any], name: str, value: Any,
               owner_uid: Optional[int] = None) -> Tuple[int, Dict[str, Any]]:
    """Write one edit to the run's control file; returns ``(seq, variables
    written)``.

    Next seq = max(seq of the existing control file, the run's
    ``control_seq``) + 1. While the existing file is not yet acknowledged
    (its seq > ``control_seq``, and it is not older than the run) its
    variables are kept and the new edit merged in, so quick successive edits
    are all applied, in order; a signal request in it stays. A file the run
    would not accept (another user's than ``owner_uid``, the run's owner, or
    root's) is not carried over. The read, merge and write hold a lock on
    the folder (:func:`_folder_lock`), so edits of two ttops at once are
    merged too, never given the same seq. Raises OSError if the file cannot
    be written.
    """
    acked = acked_seq(data)
    with _folder_lock(folder):
        seq, _old, _err = read_control(folder, key, owner_uid, data)
        cur_seq, cur_vars, signal = _current_doc(folder, key, data, owner_uid)
        variables: Dict[str, Any] = {}
        if cur_seq is not None and cur_seq > acked:  # not yet acknowledged: carried over
            variables.update(cur_vars)
        variables.pop(name, None)
        variables[name] = value
        new_seq = max(seq or 0, acked) + 1
        # a signal request in the file stays (the run acts on a request once, by its own seq)
        try:
            P.parse_signal_request(signal)
        except P.ProgressError:
            signal = None
        _write(folder, key, data, new_seq, variables, signal=signal, owner_uid=owner_uid)
    return new_seq, variables


def parse_typed_text(type_: str, text: str) -> Any:
    """Parse what a user typed in the editor into a value of ``type_``, or raise
    :class:`ttop.progress.ProgressError` ("abc" is not a float)."""
    t = text.strip()
    if type_ == "str":
        return text
    if type_ == "bool":
        low = t.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise P.ProgressError("%r is not a bool (true/false)" % t)
    if type_ == "int":
        try:
            return int(t, 10)
        except ValueError:
            raise P.ProgressError("%r is not an int" % t) from None
    if type_ == "float":
        try:
            return float(t)
        except ValueError:
            raise P.ProgressError("%r is not a float" % t) from None
    raise P.ProgressError("variable of unsupported type %s" % type_)


def edit_state(data: Mapping[str, Any], seq: int, name: str, ranks: Sequence[Any] = ()) -> Tuple[str, str]:
    """The state of edit ``seq`` of variable ``name`` given the run's latest
    progress data: ``("pending", "")``, ``("applied", "")`` or
    ``("refused", control_error)``. When a later edit was already acknowledged
    with an error, the error is blamed on this variable only if it names it.

    ``ranks`` (a multi-rank job's :class:`~ttop.collect.snapshot.RankSnapshot`
    list): the edit is applied once every running rank acknowledged it,
    and refused (``"rank k: why"``) when one of them refused it."""
    acked = acked_seq(data)
    if acked < seq:
        return "pending", ""
    why = _refusal(acked, data.get("control_error"), seq, name, data)
    if why is not None:
        return "refused", why
    for rk in ranks:
        if rk.rank == 0 or rk.status != P.RUNNING or rk.alive is False:
            continue
        if rk.control_seq < seq:
            return "pending", ""
        why = _refusal(rk.control_seq, rk.control_error, seq, name, data)
        if why is not None:
            return "refused", "rank %d: %s" % (rk.rank, why)
    return "applied", ""


#: How a run reports a control file it could not use at all (another
#: user's, a link, not JSON): it acknowledged nothing with it.
IGNORED_PREFIX = "control file ignored"


def _refusal(acked: int, err: Any, seq: int, name: str, data: Mapping[str, Any]) -> Optional[str]:
    if isinstance(err, str) and err.strip():
        err = err.strip()
        if err.startswith(IGNORED_PREFIX):  # about a later file, not a refusal of an acknowledged edit
            return None
        if _mentions(err, name):
            return err
        if acked == seq and not _mentions_any(err, data):
            return err
    return None


def _mentions(text: str, name: str) -> bool:
    return re.search(r"(?<![\w])%s(?![\w])" % re.escape(name), text) is not None


def _mentions_any(text: str, data: Mapping[str, Any]) -> bool:
    variables = data.get("variables")
    if not isinstance(variables, Mapping):
        return False
    return any(_mentions(text, str(n)) for n in variables)


# ---------------------------------------------------------------------------
# signal requests (runs ttop cannot signal directly: another host, another
# PID namespace)


def signal_acked(data: Mapping[str, Any]) -> int:
    """The seq of the last signal request the run acknowledged (0: none)."""
    ack = data.get("signal_ack")
    seq = ack.get("seq") if isinstance(ack, Mapping) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def write_signal_request(folder: str, key: str, data: Mapping[str, Any], name: str,
                         target: str = "main", owner_uid: Optional[int] = None) -> int:
    """Ask the run's own writer to send signal ``name`` to its main process
    or its process tree (``target``); returns the request's seq.

    The control file keeps its variable edits (seq and variables unchanged,
    so nothing is applied twice) and gains ``signal: {name, target, seq}``,
    seq = max(the file's last request, the run's ``signal_ack.seq``) + 1.
    Raises OSError if the file cannot be written."""
    with _folder_lock(folder):
        # a file left by an earlier run, or another user's, does not count
        cur_seq, variables, old_signal = _current_doc(folder, key, data, owner_uid)
        seq = acked_seq(data) if cur_seq is None else cur_seq
        last = old_signal.get("seq") if isinstance(old_signal, dict) else None
        last = last if isinstance(last, int) and not isinstance(last, bool) else 0
        new = max(last, signal_acked(data)) + 1
        _write(folder, key, data, seq, variables, signal={"name": name, "target": target, "seq": new}, owner_uid=owner_uid)
    return new


def signal_state(data: Mapping[str, Any], seq: int) -> Tuple[str, str]:
    """The state of signal request ``seq`` given the run's latest progress
    data: ``("pending", "")``, ``("applied", result)`` or ``("refused", result)``."""
    ack = data.get("signal_ack")
    if not isinstance(ack, Mapping) or signal_acked(data) < seq:
        return "pending", ""
    result = ack.get("result") or ""
    if not isinstance(result, str):
        result = P._short_str(result)
    if signal_acked(data) > seq:
        return "applied", "superseded by a later request"
    return ("applied" if ack.get("ok") is True else "refused"), result
