"""Polling the control file (``control_<run>.json``) off the hot path."""
from __future__ import annotations

import errno
import os
import stat
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..progress import (
    CONTROL_FORMAT,
    CONTROL_PREFIX,
    MAX_CONTROL_BYTES,
    MAX_PROGRESS_BYTES,
    PROGRESS_SUFFIX,
    ProgressError,
    coerce_value,
    control_name,
    dumps,
    parse_control_doc,
    parse_progress,
    type_name,
)
from .remote import ack, check_request


def _user(uid: int) -> str:
    try:
        import pwd

        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except (ImportError, KeyError):
        return "uid %d" % uid


def _run_of(path: str) -> str:
    """The run name of the usual control file name ``control_<run>.json``."""
    base = os.path.basename(path)
    if base.startswith(CONTROL_PREFIX) and base.endswith(PROGRESS_SUFFIX):
        return base[len(CONTROL_PREFIX): -len(PROGRESS_SUFFIX)]
    return base


#: Seconds a control file may seem older than the run (the file system's
#: clock behind this host's) and still be read.
STALE_SLACK = 1.0
#: How often a rank other than 0 looks for rank 0's other control file name.
ADOPT_EVERY = 3.0


class ControlPoller:
    """Re-reads the control file only when its inode, size, mtime or owner
    changed (one ``lstat`` per poll otherwise).

    The file is opened once, without following a symbolic link and without
    blocking (``O_NOFOLLOW | O_NONBLOCK``), and checked on that descriptor:
    it must be a regular file owned by the run's own user (``uid``, default
    this process's effective uid) or by root. Anyone else who can write the
    folder cannot change the run's variables; nor, by putting their own
    progress file under this run's name, have ttop write them a file this
    run would take (ttop names the user of the run it wrote for:
    ``run_owner_uid``).

    Another user's file (or link, or FIFO) under the name would keep the
    run's own ttop from writing there in a sticky folder (only a file's
    owner or root may replace it). The poller then creates a file of its
    own under a name with a random part, ``control_<run>.<hex>.json``,
    and reads that one instead (:attr:`path`, :attr:`own_name`: the name
    the progress file gives as ``control_file``, for ttop to write to).
    The other ranks of a multi-rank job (``job_file``: rank 0's progress
    file) read the name rank 0 gives there.

    :meth:`poll` returns None when nothing new is there, else ``(seq,
    variables, None)`` for a valid file or ``(None, None, reason)`` for one
    that cannot be used. It never raises. The file's raw ``signal`` request
    of the last valid read is kept in :attr:`signal`.
    """

    def __init__(self, path: str, uid: Optional[int] = None, job_file: Optional[str] = None) -> None:
        self.path = path
        #: the run's name, as its control file's usual name gives it (a file
        #: ttop wrote for another run is refused)
        self.run = _run_of(path)
        self.uid = os.geteuid() if uid is None else uid
        #: a rank other than 0 reads the job's control file: rank 0 chooses its
        #: other name and gives it in this progress file (``control_file``)
        self._job_file = job_file
        self._adopt_at = 0.0
        self._sig: Optional[Tuple[int, int, int, int]] = None
        self.signal: Any = None
        #: the name of the file read instead of another user's (None: the usual one)
        self.own_name: Optional[str] = None
        #: when the run started (:meth:`skip_existing`): a file written well
        #: before is an earlier run's, put back under the name, not read
        self.since: Optional[float] = None

    def started(self, own_file: str) -> None:
        """The run's first file (``own_file``) is written: its modification
        time, on the clock of the file system that also stamps the control
        files ttop writes, is when the run started. This host's clock is
        not: a host whose clock runs minutes ahead of the file server's
        (or of the host ttop runs on) would refuse every control file
        written in the run's first minutes as an earlier run's. Kept only
        when the file is this run's user's regular file."""
        try:
            st = os.lstat(own_file)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode) and st.st_uid == self.uid:
            self.since = st.st_mtime

    def set_path(self, path: str) -> None:
        """The run's control file is now ``path`` (the run was renamed)."""
        self.path, self.own_name, self._sig = path, None, None
        self.run = _run_of(path)

    def _stat(self) -> Optional[Tuple[int, int, int, int]]:
        try:
            st = os.lstat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_uid)

    def skip_existing(self) -> Optional[str]:
        """Treat whatever control file exists now (left by an earlier run of
        the same name) as already seen; another user's: read a name of this
        run's own from now on, and return the ``control_error`` that says so."""
        self._sig = sig = self._stat()
        self.since = time.time()  # until the run's first file gives the file system's time (:meth:`started`)
        if sig is None or sig[3] in (self.uid, 0):
            if sig is not None:  # its request, if any, is the earlier run's (see VariableControl.skip_existing)
                try:
                    self.signal = parse_control_doc(self._read(), self.uid, self.run)[2]
                except (OSError, ProgressError):
                    pass
            return None
        name = self._take_own_name()
        if name is None:
            self._sig = None  # (a rank other than 0: read again, to find rank 0's other name)
            return None
        return "control file ignored: owned by %s, not by this run's user %s or root; reading %s instead" % (
            _user(sig[3]), _user(self.uid), name)

    def _adopt(self) -> Optional[str]:
        """A rank other than 0: read the name rank 0 gives in its progress
        file (a file of this run's user or root, no link followed), if a
        file of this run's user or root is there; returns it, or None."""
        assert self._job_file is not None
        now = time.monotonic()
        if now < self._adopt_at:  # (rank 0's progress file may be megabytes: read at most every few seconds)
            return None
        self._adopt_at = now + ADOPT_EVERY
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            with os.fdopen(os.open(self._job_file, flags), "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode) or st.st_uid not in (self.uid, 0):
                    return None
                data, _ = parse_progress(f.read(MAX_PROGRESS_BYTES))
            folder, job = os.path.split(self._job_file)
            name = control_name(job[: -len(PROGRESS_SUFFIX)], data)
            st = os.lstat(os.path.join(folder, name))
        except (OSError, ProgressError):
            return None
        if name == os.path.basename(self.path) or not stat.S_ISREG(st.st_mode) or st.st_uid not in (self.uid, 0):
            return None
        self.path, self.own_name = os.path.join(folder, name), name
        # read at the next poll; as it was before this rank started (made by rank 0): seen
        old = self.since is not None and st.st_mtime < self.since - STALE_SLACK
        self._sig = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_uid) if old else None
        return name

    def _take_own_name(self) -> Optional[str]:
        """Create an empty control file of this run's user under a name
        with a random part and read it from now on (a rank other than 0:
        the one rank 0 made, :meth:`_adopt`); returns its name, or None when
        there is none (the folder is not writable; rank 0 gave none yet)."""
        if self.own_name is not None:
            return None
        if self._job_file is not None:
            return self._adopt()
        if self.uid != os.geteuid():
            return None  # (a file made now would not be the run's user's)
        folder, base = os.path.split(self.path)
        stem = base[: -len(PROGRESS_SUFFIX)]
        doc = dumps({"format": CONTROL_FORMAT, "seq": 0, "variables": {}}).encode("utf-8")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for _ in range(3):
            name = "%s.%s%s" % (stem, os.urandom(8).hex(), PROGRESS_SUFFIX)
            try:
                fd = os.open(os.path.join(folder, name), flags, 0o666)
            except FileExistsError:
                continue
            except OSError:
                return None
            try:
                os.write(fd, doc)
            finally:
                os.close(fd)
            self.path, self.own_name = os.path.join(folder, name), name
            self._sig = self._stat()
            return name
        return None

    def _read(self, fresh: bool = False) -> bytes:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ProgressError("it is a symbolic link (not followed)") from None
            raise
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ProgressError("not a regular file")
            if st.st_uid not in (self.uid, 0):
                raise ProgressError(
                    "owned by %s, not by this run's user %s or root" % (_user(st.st_uid), _user(self.uid))
                )
            if fresh and self.since is not None and st.st_mtime < self.since - STALE_SLACK:
                # (a rename keeps the time: another user in a folder without the sticky
                # bit set root's file of an earlier run of this name aside and put it back)
                raise ProgressError("written before this run started (an earlier run's file)")
            data = f.read(MAX_CONTROL_BYTES + 1)
        if len(data) > MAX_CONTROL_BYTES:
            raise ProgressError("file larger than %d bytes" % MAX_CONTROL_BYTES)
        return data

    def poll(self) -> Optional[Tuple[Optional[int], Optional[Dict[str, Any]], Optional[str]]]:
        sig = self._stat()
        if sig is None or sig == self._sig:
            if sig is None:
                self._sig = None
            return None
        self._sig = sig
        try:
            seq, variables, self.signal = parse_control_doc(self._read(fresh=True), self.uid, self.run)
        except ProgressError as e:
            name = None
            if sig[3] not in (self.uid, 0):
                name = self._take_own_name()
                if name is None and self._job_file is not None and self.own_name is None:
                    self._sig = None  # read again at the next poll: rank 0 may give its other name later
            return None, None, "control file ignored: %s%s" % (e, "; reading %s instead" % name if name else "")
        except FileNotFoundError:
            self._sig = None
            return None
        except Exception as e:  # permissions, I/O errors, anything odd
            return None, None, "control file ignored: %s: %s" % (type(e).__name__, e)
        return seq, variables, None


def apply_edit(
    values: Mapping[str, Any], variables: Dict[str, Any], var_types: Mapping[str, str]
) -> Tuple[List[Tuple[str, Any, Any]], List[str]]:
    """Apply an edit's ``values`` to the tracked ``variables`` (in place).

    Only tracked names with an editable type (``var_types``) are accepted,
    each value coerced by the type rule of :func:`ttop.progress.coerce_value`.
    Returns ``(changed, refused)``: ``(name, old, new)`` for each value that
    changed, and one ``"name: reason"`` per refused value."""
    refused: List[str] = []
    changed: List[Tuple[str, Any, Any]] = []
    for name, raw in values.items():
        if name not in variables:
            refused.append("%s: not a tracked variable" % name)
            continue
        t = var_types.get(name)
        if t is None:
            refused.append("%s: read-only (a %s)" % (name, type(variables[name]).__name__))
            continue
        try:
            new = coerce_value(t, raw)
        except ProgressError as e:
            refused.append("%s: %s" % (name, e))
            continue
        old = variables.get(name)
        variables[name] = new
        if not (old == new and type(old) is type(new)):
            changed.append((name, old, new))
    return changed, refused


def report(message: str) -> None:
    """One line on stderr; never raises."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except Exception:
        pass


class VariableControl:
    """The tracked variables and the edits ttop makes to them through the
    control file: what is editable, the last acknowledged ``seq`` and the
    ``control_error`` to write.

    ``variables`` is the monitor's live dict (edited in place); ``lock``
    guards it against the script's thread."""

    def __init__(self, path: str, variables: Dict[str, Any], lock: Any) -> None:
        self.poller = ControlPoller(path)
        self.variables = variables
        self.types: Dict[str, str] = {}
        self.seq = 0
        self.error: Optional[str] = None
        self._lock = lock
        self._callback_error_reported = False
        #: the last signal request seen (see :mod:`ttop.monitor.remote`)
        self.signal_seq = 0
        #: ``(seq, (name, target) or None, refusal or None)`` not handled yet
        self.pending_signal: Optional[Tuple[int, Optional[Tuple[str, str]], Optional[str]]] = None
        #: the ``signal_ack`` written to the progress file
        self.signal_ack: Optional[Dict[str, Any]] = None
        #: the stop guard started at the last SIGSTOP (a Popen), until it answered
        self.stop_guard: Any = None

    def track(self, variables: Mapping[str, Any]) -> None:
        """Register variables (see :meth:`TrainingMonitor.track_variables`)."""
        if not isinstance(variables, Mapping):
            raise TypeError("track_variables expects a dict, not %s" % type(variables).__name__)
        for name, value in variables.items():
            if not isinstance(name, str):
                raise TypeError("variable names must be strings, not %r" % (name,))
            if type_name(value) is None and callable(getattr(value, "item", None)):
                try:
                    value = value.item()
                except Exception:
                    pass
            t = type_name(value)
            with self._lock:
                if t is not None:
                    self.types[name] = t
                else:
                    self.types.pop(name, None)
                self.variables[name] = value

    def relink(self, variables: Any) -> None:
        """The monitor's ``variables`` now: a script that gave it a dict of
        its own (``monitor.variables = {...}``) has that one shown and
        edited from here on, its values typed as :meth:`track` types them."""
        if variables is self.variables or not isinstance(variables, dict):
            return
        types: Dict[str, str] = {}
        for name, value in list(variables.items()):  # (never raises: the writer thread calls this)
            t = type_name(value)
            if t is None:
                try:  # (numpy / torch scalars)
                    t = type_name(value.item()) if callable(getattr(value, "item", None)) else None
                except Exception:
                    pass
            if t is not None and isinstance(name, str):
                types[name] = t
        with self._lock:
            self.variables, self.types = variables, types

    def skip_existing(self) -> None:
        """:meth:`ControlPoller.skip_existing`, saying in :attr:`error` when
        another user's file made the run read a name of its own. A signal
        request in the file found is an earlier run's: seen, never delivered
        (ttop carries a request it takes for this run's into the file it
        writes: a file written less than a second before the run started,
        or later by a clock ahead of this host's)."""
        why = self.poller.skip_existing()
        if why is not None:
            self.error = why
        request = check_request(self.poller.signal, 0)
        if request is not None:
            self.signal_seq = request[0]
            # answered as refused, so that ttop asks this run above that seq (it
            # takes the file for an earlier run's and would start again at 1)
            raw = self.poller.signal if isinstance(self.poller.signal, dict) else {}
            self.signal_ack = ack(request[0], raw.get("name"), raw.get("target"), False,
                                  "refused: an earlier run's request, left in the control file", time.time())

    def poll(self, callback: Optional[Callable[[str, Any, Any], Any]], variables: Any = None) -> None:
        """Apply a new edit, if the control file has one, to ``variables``
        (the monitor's: see :meth:`relink`), then call ``callback(name, old,
        new)`` for each changed value (its exceptions are caught, added to
        :attr:`error` and reported once on stderr)."""
        if variables is not None:
            self.relink(variables)
        try:
            got = self.poller.poll()
        except Exception as e:  # pragma: no cover - poll never raises
            got = (None, None, "control file ignored: %s" % e)
        if got is None:
            return
        seq, values, reason = got
        if reason is not None:
            self.error = reason
            return
        assert seq is not None and values is not None
        request = check_request(self.poller.signal, self.signal_seq)
        if request is not None:
            self.signal_seq = request[0]
            self.pending_signal = request
        if seq <= self.seq:
            return
        with self._lock:
            changed, refused = apply_edit(values, self.variables, self.types)
            self.seq = seq
            self.error = ("refused " + "; ".join(refused)) if refused else None
        if callback is None:
            return
        for name, old, new in changed:
            try:
                callback(name, old, new)
            except (Exception, SystemExit) as e:  # sys.exit() there would end this thread, not the script
                msg = "on_variable_change(%r) raised %s: %s" % (name, type(e).__name__, e)
                if isinstance(e, SystemExit):
                    msg += " (the callback runs in ttop's writer thread: sys.exit() there does not end the script)"
                with self._lock:
                    self.error = msg if self.error is None else self.error + "; " + msg
                if not self._callback_error_reported:
                    self._callback_error_reported = True
                    report("ttop: " + msg)

    def refuse(self, message: str) -> None:
        """Add ``message`` to ``control_error``: an edit acknowledged when it
        was read, refused since by whoever applies it (e.g. an optimizer)."""
        with self._lock:
            self.error = message if not self.error else self.error + "; " + message

    def file_fields(self, variables: Any = None) -> Dict[str, Any]:
        """``variables`` (the monitor's: see :meth:`relink`),
        ``variable_types``, ``control_seq`` and ``control_error`` as
        written; called with the lock held."""
        if variables is not None:
            self.relink(variables)
        variables = dict(self.variables)
        var_types = {}
        for name, value in variables.items():
            vt = self.types.get(name) or type_name(value)
            if vt is not None:
                var_types[name] = vt
        return {
            "variables": variables,
            "variable_types": var_types,
            "control_seq": self.seq,
            "control_error": self.error,
            "signal_ack": dict(self.signal_ack) if self.signal_ack else None,
            "control_file": self.poller.own_name,
        }
