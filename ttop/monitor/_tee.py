"""The output-capture sidecar: a small process that copies pipes to the
console and to log files until every writer has closed them.

Started by :mod:`ttop.monitor.capture` as ``python -I -S _tee.py CTL
R:CONSOLE:LOG ...`` with the descriptors passed down (standard library only,
no ``site``: a few MB of memory). For each ``R:CONSOLE:LOG`` triple it reads
the pipe ``R`` and writes every byte to ``CONSOLE`` (the descriptor the
script's fd 1 or 2 had before capture) and then to ``LOG``. It exits when all
pipes reached end-of-file, that is when the training process and every child
that inherited the pipes have closed them or died. It never exits earlier:
SIGINT, SIGTERM and SIGHUP are ignored, so a Ctrl+C to the process group or
the death of the training process (whatever killed it) leaves it to drain
what was written before.

Control protocol, over ``CTL``, one end of a Unix socket pair whose other
end only the monitor process holds (a socket, so that the monitor's write to
an ended sidecar gives EPIPE and never SIGPIPE, whatever the script did with
that signal):

* at start the sidecar forks once and the first process exits, so the
  sidecar is not a child of the training process (a ``wait()`` there can
  never reap it); it writes ``ready <pid>\\n``;
* each byte ``s`` asks for a sync: the sidecar copies every byte
  that is in the pipes at that moment, then answers ``d\\n`` while pipes
  are still open (children still hold them);
* when every pipe has ended and all was copied, it writes ``e\\n`` and
  exits (also the answer to an ``s`` that found every pipe ended). A sidecar
  whose ``CTL`` closes without ``e`` died before it finished: killed by
  hand or by the OOM killer;
* end-of-file on ``CTL`` (the monitor stopped capturing, or died) means
  nothing: the sidecar goes on until the pipes end.

A console that fails (closed terminal, EPIPE) is dropped and the log goes
on; a log that fails is dropped and the console goes on, except for want
of space (ENOSPC, EDQUOT): that output is lost to the log, the next is
tried again, and a line marks the gap once the log takes writes again.
"""
import errno
import os
import select
import signal
import sys
import time

CHUNK = 1 << 20
COALESCE = 0.002  # s; see the main loop


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:  # a console someone made non-blocking
            select.select([], [fd], [], 1.0)
            continue
        view = view[n:]


#: a log write failing with these is retried with the next output: space may come back
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class _Stream:
    __slots__ = ("r", "outs", "log", "lost")

    def __init__(self, r, console, log):
        self.r = r
        self.outs = [fd for fd in (console, log) if fd >= 0]
        self.log = log
        self.lost = 0  # bytes the full disk kept out of the log since it last took a write

    def copy(self, data):
        for fd in list(self.outs):
            try:
                if fd == self.log:
                    self._to_log(data)
                else:
                    _write_all(fd, data)
            except (OSError, ValueError):
                self.outs.remove(fd)
                _close(fd)

    def _to_log(self, out):
        """Append to the log; a full disk (or quota) costs this output, not
        every later one: the gap is marked in the log once it takes writes again."""
        data = out
        if self.lost:
            data = b"\n[ttop: %d bytes of output not written to this log: no space left on device]\n" % self.lost + out
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.log, view):]
        except OSError as e:
            if e.errno not in _FULL:
                raise
            # the gap marked already (the mark went out whole) counts no more
            self.lost = len(view) if len(view) <= len(out) else self.lost + len(out)
            return
        self.lost = 0

    def close(self):
        _close(self.r)
        for fd in self.outs:
            _close(fd)
        self.outs = []


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def _send(fd, data):
    if fd >= 0:
        try:
            _write_all(fd, data)
        except OSError:  # the monitor has gone: nobody to answer
            pass


def main(argv):
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGTTOU"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    ctl = int(argv[1])
    streams = {}
    for spec in argv[2:]:
        r, console, log = (int(x) for x in spec.split(":"))
        os.set_blocking(r, False)
        streams[r] = _Stream(r, console, log)
    if os.fork():
        os._exit(0)
    _send(ctl, b"ready %d\n" % os.getpid())
    poller = select.poll()
    for r in streams:
        poller.register(r, select.POLLIN)
    poller.register(ctl, select.POLLIN)

    def pump(stream, until_empty):
        """Copy what the pipe holds; False at end-of-file."""
        while True:
            try:
                data = os.read(stream.r, CHUNK)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                return False
            stream.copy(data)
            if not until_empty:
                return True

    def end(stream):
        poller.unregister(stream.r)
        del streams[stream.r]
        stream.close()

    while streams:
        for fd, _events in poller.poll():
            if fd == ctl:
                try:
                    req = os.read(ctl, 64)
                except OSError:
                    req = b""
                if not req:
                    poller.unregister(ctl)
                    _close(ctl)
                    ctl = -1
                    continue
                if b"s" in req:
                    for stream in list(streams.values()):
                        if not pump(stream, True):
                            end(stream)
                    if streams:
                        _send(ctl, b"d\n")
            elif fd in streams:
                stream = streams[fd]
                if not pump(stream, False):
                    end(stream)
                    continue
                # a fast writer sends small pieces (8 KiB from Python's
                # buffer): let them gather for 2 ms instead of waking for
                # each; a quarter of the CPU time, same bytes, and at most
                # 2 ms later on the console
                time.sleep(COALESCE)
    _send(ctl, b"e\n")
    _close(ctl)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
