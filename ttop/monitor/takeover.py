"""What the capture's watchdog does once the capture process has ended:
copy the pipes on to the console and the logs itself.

It reads until end-of-file, not until the pipes are empty: end-of-file
comes once every write end is closed, so it also copies what is written
after the console was put back on fd 1/2: a write the script began just
before the switch (its data lands in the pipe afterwards) and the output of
child processes that hold the pipes. :meth:`PipeCopier.wait_copied` tells
when everything written so far has been copied, so that stopping the
capture (and the script's exit after it) loses none of it. It runs on a
daemon thread: what child processes write after the script's process has
ended is no longer copied.
"""
from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
import threading
import time
from typing import Callable, Dict, List, Tuple

CHUNK = 1 << 20


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _queued(fd: int) -> int:
    """Bytes waiting in the pipe read by ``fd``."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])
    except OSError:
        return 0


class PipeCopier:
    """Copies each pipe ``(reader, console, log)`` to both descriptors until
    end-of-file, then closes the three. It owns them from the start."""

    def __init__(self, pipes: List[Tuple[int, int, int]]) -> None:
        # the log first: a console nobody reads (a full pipe) blocks the
        # write to it, and must not keep the bytes from the log
        self._open: Dict[int, Tuple[int, int]] = {r: (log, console) for r, console, log in pipes}
        self._cond = threading.Condition()
        self._busy = False
        self._reported = False  # run's report made: waiting for the copy waits for it too

    def run(self, report: Callable[[], None]) -> None:
        """Copy what is queued, call ``report``, then go on until every
        pipe has reached end-of-file."""
        for r in list(self._open):
            os.set_blocking(r, False)
            while self._copy(r):
                pass
        report()
        with self._cond:
            self._reported = True
            self._cond.notify_all()
        poller = select.poll()
        for r in self._open:
            poller.register(r, select.POLLIN)
        while self._open:
            for r, _ in poller.poll():
                if r in self._open and not self._copy(r, once=True):
                    poller.unregister(r)

    def _copy(self, r: int, once: bool = False) -> bool:
        """One read of ``r`` copied on. False when there is nothing more to
        read now (``once``: only at end-of-file, when ``r`` is closed)."""
        with self._cond:
            self._busy = True
        try:
            try:
                data = os.read(r, CHUNK)
            except BlockingIOError:
                return once
            except OSError:
                data = b""
            for fd in self._open[r]:
                try:
                    _write_all(fd, data)
                except OSError:
                    pass
            if data:
                return True
            with self._cond:
                for fd in (r,) + self._open.pop(r):
                    os.close(fd)
            return False
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def wait_copied(self, deadline: float) -> bool:
        """Wait until every byte written to the pipes so far has been copied
        (or ``deadline``, a ``time.monotonic()`` value, passes: False)."""
        with self._cond:
            while self._busy or not self._reported or any(_queued(r) for r in self._open):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True
