"""``ttop FOLDER --headless``: the collector thread feeding the CSV sink, no UI.

Runs until SIGINT, SIGTERM or SIGHUP (unless SIGHUP is ignored, as under
``nohup``), then stops the collector, writes the final summaries and returns
0, or 1 if a final summary could not be written. When the progress folder
goes away (or comes back) one line says so on stderr; writing resumes when it
is back. A removed CSV folder is created again (one line says so). The main thread only sleeps on an
event (waking every 30 s to report a failed collector cycle, once per
distinct error); all work happens in the collector's thread, which calls the
sink after each published snapshot.
"""
from __future__ import annotations

import signal
import sys
import threading
from typing import IO, Any, Callable, Dict, Optional, Set

from ..view.text import clean
from .csv import CsvSink

_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
#: How often (s) the main thread looks at the collector's last error.
CHECK_EVERY = 30.0


class ErrorReporter:
    """Prints sink errors to a stream, each distinct message once per
    ``repeat_every`` occurrences, so a full disk does not flood the log."""

    def __init__(self, stream: IO[str], repeat_every: int = 100) -> None:
        self.stream = stream
        self.repeat_every = repeat_every
        self._seen: Dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self._lock:
            n = self._seen.get(message, 0)
            self._seen[message] = n + 1
            if n % self.repeat_every:
                return
            suffix = " (repeated %d times)" % n if n else ""
        try:
            self.stream.write("ttop: %s%s\n" % (message, suffix))
            self.stream.flush()
        except (OSError, ValueError):
            pass


def _say(stream: IO[str], message: str) -> None:
    if not message:
        return
    try:
        # one line without control characters: folder names (a glob's
        # matches) and run keys are chosen by whoever can write the folders
        stream.write("ttop: %s\n" % clean(message))
        stream.flush()
    except (OSError, ValueError):
        pass


#: At most this many skipped files are named in one cycle (then a count).
SAY_SKIPPED = 10


def _say_skipped(stream: IO[str], skipped: Any, said: Set[str]) -> None:
    """Name each progress file the collector skips (not JSON, another
    writer's format, ...) once, with why, while it stays skipped."""
    now = {f.name: f.reason for f in skipped}
    said.intersection_update(now)  # fixed, then broken again: said again
    new = [name for name in now if name not in said]
    for name in new[:SAY_SKIPPED]:
        _say(stream, "skipped %s: %s" % (name, now[name]))
    if len(new) > SAY_SKIPPED:
        _say(stream, "skipped %d more files (ttop --once --json FOLDER lists them, under \"skipped\")" % (len(new) - SAY_SKIPPED))
    said.update(new)


def run_headless(
    collector: Any,
    sink: Optional[CsvSink],
    *,
    stderr: Optional[IO[str]] = None,
    stop_event: Optional[threading.Event] = None,
    install_signals: bool = True,
    serving: Optional[str] = None,
) -> int:
    """Run ``collector`` with ``sink`` attached (None: no CSV, e.g. only the
    Prometheus endpoint at ``serving`` is wanted) until a stop signal (or
    ``stop_event``); then stop the collector, close the sink and return 0,
    or 1 if the sink's final summaries could not all be written.

    Must be called from the main thread when ``install_signals`` is true."""
    err = stderr if stderr is not None else sys.stderr
    stop = stop_event if stop_event is not None else threading.Event()
    received = []
    previous: Dict[int, Any] = {}

    def _handler(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    if install_signals:
        for name in _STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            current = signal.getsignal(signum)
            if name == "SIGHUP" and current is signal.SIG_IGN:
                continue  # nohup: keep ignoring hang-ups
            previous[signum] = current
            signal.signal(signum, _handler)
    closed_ok = False
    try:
        write_csv: Callable[[], None] = sink.listener(collector) if sink is not None else (lambda: None)
        folder_state: Dict[str, Any] = {"error": None}
        said: Set[str] = set()  # the skipped files named so far, while they stay skipped

        def listener() -> None:
            write_csv()
            # say when the progress folder goes away and when it is back
            snap = collector.latest
            # several folders: one gone is said too (the others go on)
            error = getattr(snap, "folder_error", None) or "; ".join(
                f.error for f in getattr(snap, "folders", ()) if f.error) or None
            if error != folder_state["error"]:
                was, folder_state["error"] = folder_state["error"], error
                _say(err, "progress folder: %s" % error if error else "progress folder is readable again" if was else "")
            skipped = getattr(snap, "skipped", None)
            if skipped or said:
                _say_skipped(err, skipped or (), said)

        collector.add_listener(listener)
        if hasattr(collector, "sample_threads"):
            collector.sample_threads = False  # no CSV column or metric shows threads: one read each saved
        try:
            doing = []
            if sink is not None:
                doing.append("writing CSV to %s every %g s" % (sink.csv_dir, sink.interval))
            if serving:
                doing.append("serving Prometheus metrics on %s" % serving)
            err.write("ttop: headless, %s; Ctrl+C to stop\n" % " and ".join(doing))
            err.flush()
        except (OSError, ValueError):
            pass
        collector.start()
        reported = None
        while not stop.wait(CHECK_EVERY):
            # the collector keeps going after a failed cycle; say so once
            error = getattr(collector, "last_error", None)
            if error is not None and error is not reported:
                reported = error
                report = (sink.on_error if sink is not None else None) or ErrorReporter(err)
                report("collector cycle failed: %s: %s" % (type(error).__name__, error))
    finally:
        try:
            collector.stop(timeout=5)
        finally:
            closed_ok = sink.close() if sink is not None else True
            for signum, handler in previous.items():
                try:
                    signal.signal(signum, handler)
                except (TypeError, ValueError, OSError):
                    pass
    if not closed_ok:
        _say(err, "the final CSV summaries were not all written (see above)")
        return 1
    return 0
