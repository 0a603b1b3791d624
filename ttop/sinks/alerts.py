"""Alerts: one event per transition of a run, to a file and to a command.

:class:`TransitionTracker` compares each published snapshot with the one
before and returns the events (plain dicts, format ``ttop.event/1``):

* ``health``: a run's verdict got worse (OK -> WARN, OK -> CRIT,
  WARN -> CRIT) or came back to OK;
* ``status``: a run's status changed to FAILED, KILLED, CANCELED or FINISHED.

The first snapshot, and a run seen for the first time, only set the baseline:
starting ttop on a folder of old runs says nothing. A run first seen (or a
new run under a known name) already ended, whose file was last written after
the first snapshot, began and ended between two cycles: that is a ``status``
event with ``previous_status`` None; one that started after the first
snapshot and is first seen RUNNING with a WARN or CRIT verdict, a ``health``
event with ``previous_health`` None.

:class:`EventsFile` appends each event as one JSON line with a single
``write()`` on a descriptor opened once with ``O_APPEND``, so a ttop killed
at any moment leaves only whole lines. :class:`AlertCommand` runs a shell
command per event in a worker thread (the collector never waits for it), with
the event in environment variables, at most ``per_minute`` times a minute
for the runs of each owner;
a command that runs longer than ``timeout`` seconds is killed (its whole
process group). Failures are reported through ``on_error`` once per distinct
message. :class:`Alerts` ties them together as a collector listener.
"""
from __future__ import annotations

import errno
import json
import os
import queue
import signal
import stat
import subprocess
import threading
import time
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

from ..jsonvalues import _valid_unicode, ascii_json
from ..progress import json_safe
from ..ratelimit import PerKeyLimit
from ..view.footer import end_error
from ..view.text import clean

EVENT_FORMAT = "ttop.event/1"
#: Statuses whose arrival is an event.
END_STATUSES = ("FINISHED", "FAILED", "KILLED", "CANCELED")
_RANK = {None: -1, "OK": 0, "WARN": 1, "CRIT": 2}
#: Default limits of the alert command.
COMMAND_TIMEOUT = 10.0
COMMAND_PER_MINUTE = 10
QUEUE_SIZE = 100
#: Bytes of an alert command's stderr kept (its end): only its last line is
#: reported, and a command writing in a loop must not grow ttop.
STDERR_TAIL = 4096


def _message(ev: Dict[str, Any]) -> str:
    # one line without control characters: the name and reasons come from a
    # file anyone who can write the folder wrote, and the message is echoed
    # to terminals and appended to logs
    name = clean(ev.get("run_name") or ev.get("run"))
    if ev["event"] == "status":
        text = "%s: %s -> %s" % (name, ev.get("previous_status") or "new run", ev.get("status"))
        if ev.get("status_reason") or ev.get("error"):
            text += " (%s)" % clean(ev.get("status_reason") or ev["error"])
        return text
    if ev.get("health") == "OK":
        return "%s: health back to OK" % name
    return "%s: %s %s" % (name, ev.get("health"), clean(ev.get("reason") or ""))


class TransitionTracker:
    """Events between consecutive snapshots (see the module docstring)."""

    def __init__(self) -> None:
        self._last: Optional[Dict[str, Tuple[str, Optional[str], Any]]] = None
        self._since: Optional[float] = None  # when the first snapshot was taken

    def events(self, snapshot: Any) -> List[Dict[str, Any]]:
        runs = getattr(snapshot, "runs", ()) or ()
        now: Dict[str, Tuple[str, Optional[str], Any]] = {}
        out: List[Dict[str, Any]] = []
        last = self._last
        if last is None:
            self._since = getattr(snapshot, "taken_at", None)
        for r in runs:
            data = getattr(r, "data", None) or {}
            started = data.get("started_at")
            state = (r.status, getattr(r, "health", None), started)
            now[r.key] = state
            if last is None:
                continue
            prev = last.get(r.key)
            if prev is None or prev[2] != started:
                # a run first seen (or a new run under a known name: another
                # start) already ended: one that began and ended between two
                # cycles (a crash at start) is an event when it wrote its
                # file after ttop began watching; an old run read late (the
                # archive) or a baseline is not
                if r.status in END_STATUSES and self._since_first(data.get("updated_at")):  # written since
                    out.append(self._event(snapshot, r, "status", (None, None)))
                elif r.status == "RUNNING" and state[1] in ("WARN", "CRIT") and self._since_first(started):
                    # likewise a run started since, first seen unhealthy (a NaN
                    # loss from its first steps): it would stay so unsaid
                    out.append(self._event(snapshot, r, "health", (None, None)))
                continue
            if prev == state:
                continue
            status, health, _ = state
            pstatus, phealth, _ = prev
            if status != pstatus and status in END_STATUSES:
                out.append(self._event(snapshot, r, "status", prev))
            elif status == "RUNNING" and health != phealth and health is not None and phealth is not None and (
                    _RANK[health] > _RANK[phealth] or health == "OK"):
                out.append(self._event(snapshot, r, "health", prev))
        self._last = now
        return out

    def _since_first(self, at: Any) -> bool:
        """Is ``at`` (a file's ``started_at`` or ``updated_at``, on the
        writer's clock) a time at or after the first snapshot?"""
        return (self._since is not None and isinstance(at, (int, float)) and not isinstance(at, bool)
                and at >= self._since)

    @staticmethod
    def _event(snapshot: Any, r: Any, kind: str, prev: Tuple[Any, ...]) -> Dict[str, Any]:
        ev = {
            "format": EVENT_FORMAT,
            "time": json_safe(getattr(snapshot, "taken_at", None)),
            "event": kind,
            "run": r.key,
            "run_name": r.run_name,
            "host": r.host,
            "pid": r.pid,
            "status": r.status,
            "previous_status": prev[0],
            "status_reason": r.status_reason,
            "error": end_error(r) if kind == "status" else None,
            "health": getattr(r, "health", None),
            "previous_health": prev[1],
            "reason": getattr(r, "health_reason", None),
            "path": r.path,
        }
        ev["message"] = _message(ev)
        return ev


def event_line(ev: Dict[str, Any]) -> bytes:
    """One event as one line of strict, ASCII-only JSON."""
    def dump(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))

    safe = json_safe(ev)
    return (ascii_json(dump(safe), safe, dump) + "\n").encode("ascii")


def _check_link(path: str) -> None:
    """Raise OSError unless the symbolic link at ``path`` is ttop's user's or
    root's, in a folder of theirs that no one else may change (not writable
    by others, or sticky): a link another user put at FILE in a shared
    folder would have ttop append to whatever it names (``~/.bashrc``)."""
    me = os.geteuid()
    st = os.lstat(path)
    folder = os.stat(os.path.dirname(os.path.abspath(path)))
    mine = st.st_uid in (me, 0) and folder.st_uid in (me, 0)
    if not mine or (folder.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not folder.st_mode & stat.S_ISVTX):
        from ..collect.owners import user_name

        raise OSError(errno.ELOOP, "a symbolic link%s in a folder others can write: not followed" % (
            "" if st.st_uid in (me, 0) else " made by %s" % user_name(st.st_uid)), path)


def _check_links(path: str) -> str:
    """:func:`_check_link` of each link on the way from ``path`` (a link of
    ttop's user may name another user's link in a folder they can write);
    returns where the chain ends, to be opened without following a link:
    what is there may be swapped for one after this check."""
    for _ in range(40):
        if not os.path.islink(path):
            return path
        _check_link(path)
        path = os.path.join(os.path.dirname(os.path.abspath(path)), os.readlink(path))
    raise OSError(errno.ELOOP, "too many symbolic links", path)


class EventsFile:
    """Appends event lines to ``path`` (created 0600 if missing). Raises
    OSError at construction when it cannot be opened.

    Opened non-blocking: ttop never waits on it. A FIFO without a reader is
    refused at start (opening it would block until a reader came); a reader
    that stops reading makes writes fail (reported) instead of stalling the
    collector."""

    def __init__(self, path: str, on_error: Optional[Callable[[str], None]] = None) -> None:
        self.path = path
        self.on_error = on_error
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
        try:
            try:
                self.fd = os.open(path, flags | os.O_NOFOLLOW, 0o600)
            except OSError as e:  # ELOOP; some kernels say EACCES for a link with O_CREAT | O_NOFOLLOW
                if e.errno not in (errno.ELOOP, errno.EACCES) or not os.path.islink(path):
                    raise
                # a link: followed only where no one else could have put it there; the
                # file it leads to is opened by that name, never through a link put there since
                end = _check_links(path)
                try:
                    self.fd = os.open(end, flags | os.O_NOFOLLOW, 0o600)
                except OSError as e2:
                    if e2.errno in (errno.ELOOP, errno.EACCES) and os.path.islink(end):
                        raise OSError(errno.ELOOP, "%s became a symbolic link while it was checked: not followed" % end,
                                      path) from None
                    raise
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise OSError(errno.ENXIO, "a FIFO with no reader (start its reader first)", path) from None
            raise
        st = os.fstat(self.fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink != 1:  # another name for someone's file (a hard link)
            os.close(self.fd)
            raise OSError(errno.EMLINK, "a file with %d hard links (other names for it): not appended to" % st.st_nlink,
                          path)
        self.written = 0
        self.last_error: Optional[str] = None
        self._torn = False  # the file ends in part of a line that could not be taken back

    def write(self, ev: Dict[str, Any]) -> None:
        data = event_line(ev)
        if self._torn:
            data = b"\n" + data
        n = 0
        try:
            n = os.write(self.fd, data)  # one write per line: never a torn line
            while n < len(data):  # a short write (disk full): finish the line
                n += os.write(self.fd, data[n:])
            self.written += 1
            self._torn = False
        except OSError as e:
            if n:  # part of the line went out: take it back, or the next line would be glued to it
                try:
                    os.ftruncate(self.fd, os.fstat(self.fd).st_size - n)
                except OSError:  # a FIFO: the next line starts on a line of its own
                    self._torn = True
            self.last_error = "events file %s: %s" % (self.path, e.strerror or e)
            if self.on_error is not None:
                self.on_error(self.last_error)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


#: Longest text of an event in the alert command's environment, and of its
#: TTOP_EVENT_JSON: the kernel refuses to start a program with an
#: environment string over 128 KiB (E2BIG), and a run writes what it likes.
ENV_TEXT = 4096
ENV_JSON = 65536


def _env_event(ev: Dict[str, Any]) -> Dict[str, Any]:
    """``ev`` with its texts cut (ending with an ellipsis) until its line
    fits in :data:`ENV_JSON`; ``ev`` itself when it fits."""
    n = ENV_TEXT
    while True:
        cut = {k: v[:n - 1] + "\u2026" if isinstance(v, str) and len(v) > n else v for k, v in ev.items()}
        if n <= 64 or len(event_line(cut)) <= ENV_JSON:
            return cut
        n //= 2


def command_env(ev: Dict[str, Any], base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The alert command's environment: ``base`` (default: ttop's) plus the
    event's ``TTOP_*`` variables (an unknown value is an empty string; a
    text longer than the kernel takes cut, see :func:`_env_event`)."""
    env = dict(os.environ if base is None else base)
    ev = _env_event(ev)

    def s(v: Any) -> str:
        t = "" if v is None else str(v)
        try:
            os.fsencode(t)  # a name read from a non-UTF-8 file name goes back as its bytes
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape in a file
            t = _valid_unicode(t)
        return t

    env.update({
        "TTOP_EVENT": s(ev.get("event")),
        "TTOP_RUN": s(ev.get("run")),
        "TTOP_RUN_NAME": s(ev.get("run_name")),
        "TTOP_HOST": s(ev.get("host")),
        "TTOP_PID": s(ev.get("pid")),
        "TTOP_STATUS": s(ev.get("status")),
        "TTOP_PREVIOUS_STATUS": s(ev.get("previous_status")),
        "TTOP_HEALTH": s(ev.get("health")),
        "TTOP_PREVIOUS_HEALTH": s(ev.get("previous_health")),
        "TTOP_REASON": s(ev.get("reason") or ev.get("status_reason")),
        "TTOP_ERROR": s(ev.get("error")),
        "TTOP_MESSAGE": s(ev.get("message")),
        "TTOP_TIME": s(ev.get("time")),
        "TTOP_PATH": s(ev.get("path")),
        "TTOP_EVENT_JSON": event_line(ev).decode("ascii").rstrip("\n"),
    })
    return {k: v.replace("\0", "") for k, v in env.items()}


def _user(uid: int) -> str:
    from ..collect.owners import user_name

    return user_name(uid)


def _stderr_tail(p: subprocess.Popen, deadline: float) -> bytes:
    """Wait for ``p`` (until the monotonic ``deadline``, else
    ``subprocess.TimeoutExpired``) reading its stderr as it comes, and
    return the last :data:`STDERR_TAIL` bytes of it."""
    import selectors

    assert p.stderr is not None
    tail = b""
    with selectors.DefaultSelector() as sel:
        sel.register(p.stderr, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(p.args, 0)
            if sel.select(left):
                chunk = os.read(p.stderr.fileno(), 65536)
                if not chunk:
                    break
                tail = (tail + chunk)[-STDERR_TAIL:]
    p.stderr.close()
    p.wait(max(deadline - time.monotonic(), 0.001))
    return tail


class AlertCommand:
    """Runs ``/bin/sh -c CMD`` per event in one worker thread (see the module
    docstring). :meth:`submit` never blocks: beyond ``per_minute`` commands
    a minute, or with :data:`QUEUE_SIZE` waiting, events are dropped and
    counted in :attr:`dropped` (reported once per minute)."""

    def __init__(
        self,
        command: str,
        *,
        timeout: float = COMMAND_TIMEOUT,
        per_minute: int = COMMAND_PER_MINUTE,
        on_error: Optional[Callable[[str], None]] = None,
        clock: Callable[[], float] = time.monotonic,
        events_path: Optional[str] = None,
    ) -> None:
        self.command = command
        #: the events file that has every event (None: there is none)
        self.events_path = events_path
        self.timeout = float(timeout)
        self.per_minute = int(per_minute)
        self.on_error = on_error
        self.clock = clock
        self.ran = 0
        self.dropped = 0
        self.killed = 0
        self.failed = 0
        #: commands queued in the last minute, per run owner (uid)
        self._sent = PerKeyLimit(self.per_minute, 60.0)
        self._reported: Dict[str, bool] = {}
        self._drop_reported_at: Dict[Optional[int], float] = {}
        self._q: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue(QUEUE_SIZE)
        self._proc: Optional[subprocess.Popen] = None
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ttop-alert-cmd", daemon=True)
        self._thread.start()

    def _report(self, message: str) -> None:
        if message in self._reported:
            return
        self._reported[message] = True
        if self.on_error is not None:
            try:
                self.on_error(message)
            except Exception:
                pass

    def submit(self, ev: Dict[str, Any], owner: Optional[int] = None) -> bool:
        """Queue ``ev``; False when it was dropped (rate limit, full queue).
        ``owner``: the uid of the run's owner. Each owner has a
        ``per_minute`` of its own: in a folder shared with other users,
        theirs (a run flipping between two verdicts is an event each time)
        cannot use up the commands owed to the events of yours."""
        now = self.clock()
        if self._sent.full(owner, now):
            whose = "" if owner is None else " for runs of %s" % _user(owner)
            return self._drop(now, "more than %d a minute%s" % (self.per_minute, whose), owner)
        try:
            self._q.put_nowait(ev)
        except queue.Full:
            return self._drop(now, "%d waiting" % QUEUE_SIZE)
        self._sent.add(owner, now)
        return True

    def _drop(self, now: float, why: str, owner: Optional[int] = None) -> bool:
        self.dropped += 1
        if now - self._drop_reported_at.get(owner, -1e18) >= 60.0:
            self._drop_reported_at[owner] = now
            if self.on_error is not None:
                try:
                    kept = ("%s has them all" % clean(self.events_path) if self.events_path is not None
                            else "--events FILE would keep them all")
                    self.on_error("alert command: events not sent (%s); %s" % (why, kept))
                except Exception:
                    pass
        return False

    def _work(self) -> None:
        while True:
            ev = self._q.get()
            try:
                if ev is None or self._closing.is_set():
                    return
                self._run(ev)
            except Exception as e:  # never let the worker die
                self._report("alert command could not run: %s" % e)
            finally:
                self._q.task_done()

    def _run(self, ev: Dict[str, Any]) -> None:
        try:
            p = subprocess.Popen(["/bin/sh", "-c", self.command], env=command_env(ev), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                 close_fds=True)
        except OSError as e:
            self.failed += 1
            self._report("alert command could not start: %s" % (e.strerror or e))
            return
        self._proc = p
        try:
            err = _stderr_tail(p, time.monotonic() + self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(p)
            self.killed += 1
            self._report("alert command ran longer than %g s and was killed: %s" % (self.timeout, self.command))
            return
        finally:
            self._proc = None
        self.ran += 1
        if p.returncode != 0:
            self.failed += 1
            tail = (err or b"").decode("utf-8", "replace").strip().splitlines()
            # the tail may echo a run's name: never raw escape codes on ttop's stderr
            self._report("alert command failed (exit %s)%s" % (p.returncode, ": " + clean(tail[-1][:200]) if tail else ""))

    @staticmethod
    def _kill(p: subprocess.Popen) -> None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            try:
                p.kill()
            except OSError:
                pass
        try:  # its stderr is not read any more (a writer outside its group must not grow ttop)
            if p.stderr is not None:
                p.stderr.close()
            p.wait(timeout=5)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass

    def idle(self) -> bool:
        """Nothing queued or running (for tests and shutdown)."""
        return self._q.unfinished_tasks == 0

    def close(self, timeout: float = 2.0) -> None:
        """Stop the worker; a command still running is killed."""
        self._closing.set()
        p = self._proc
        if p is not None:
            self._kill(p)
        try:
            self._q.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)


class Alerts:
    """The events of each published snapshot, to an events file, an alert
    command and ``on_event`` callbacks (the monitor's footer and bell).
    ``listener(collector)`` returns the function to register with
    ``collector.add_listener``. Problems go to the ``on_error`` callbacks
    (stderr when headless, the footer in the monitor).

    Raises OSError when ``events_path`` cannot be opened for appending."""

    def __init__(
        self,
        events_path: Optional[str] = None,
        command: Optional[str] = None,
        *,
        timeout: float = COMMAND_TIMEOUT,
        per_minute: int = COMMAND_PER_MINUTE,
    ) -> None:
        self.tracker = TransitionTracker()
        self.on_event: List[Callable[[Dict[str, Any]], None]] = []
        self.on_error: List[Callable[[str], None]] = []
        self.count = 0
        self._seq: Optional[int] = None
        self._lock = threading.Lock()
        self.events_file = EventsFile(events_path, on_error=self.report) if events_path else None
        self.command = (AlertCommand(command, timeout=timeout, per_minute=per_minute, on_error=self.report,
                                     events_path=events_path) if command else None)

    def report(self, message: str) -> None:
        for fn in list(self.on_error):
            try:
                fn(message)
            except Exception:
                pass

    def feed(self, snapshot: Any) -> List[Dict[str, Any]]:
        """Process one snapshot (once per ``seq``); returns its events."""
        if snapshot is None:
            return []
        with self._lock:
            seq = getattr(snapshot, "seq", None)
            if seq is not None and seq == self._seq:
                return []
            self._seq = seq
            events = self.tracker.events(snapshot)
            owners = {r.key: getattr(r, "owner_uid", None) for r in getattr(snapshot, "runs", ())} \
                if events and self.command is not None else {}
            for ev in events:
                self.count += 1
                if self.events_file is not None:
                    self.events_file.write(ev)
                if self.command is not None:
                    self.command.submit(ev, owners.get(ev["run"]))
                for fn in list(self.on_event):
                    try:
                        fn(ev)
                    except Exception:
                        pass
            return events

    def listener(self, collector: Any) -> Callable[[], None]:
        def on_publish() -> None:
            self.feed(getattr(collector, "latest", None))

        return on_publish

    def close(self) -> None:
        if self.command is not None:
            self.command.close()
        if self.events_file is not None:
            self.events_file.close()


def stream_reporter(stream: Optional[IO[str]]) -> Callable[[str], None]:
    """Print ``ttop: <message>`` lines to ``stream`` (None: drop them)."""

    def report(message: str) -> None:
        if stream is None:
            return
        try:
            stream.write("ttop: %s\n" % message)
            stream.flush()
        except (OSError, ValueError):
            pass

    return report
