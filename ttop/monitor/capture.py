"""Opt-in output capture: the script's stdout/stderr tee'd into log files
while still reaching the console.

Two mechanisms:

* **fd level** (the default whenever ``sys.stdout.fileno()`` is 1 and
  ``sys.stderr.fileno()`` is 2): file descriptor 1 (2) is replaced with the
  write end of a pipe (``dup2``); a daemon thread reads the pipe and writes
  every chunk both to the original descriptor (the console) and to the log.
  Everything that writes to fd 1/2 is captured: Python's ``print``, C
  extensions, ``os.system`` and subprocesses started after capture began
  (they inherit the pipe).
* **Python level** (fallback when there is no usable descriptor, e.g. a
  notebook's stream object): ``sys.stdout`` / ``sys.stderr`` are replaced by
  a tee object. Only output written through those Python objects is
  captured.

Stopping restores the original descriptors (or objects) and waits until
everything written so far has been copied to the console and the logs; it
does not wait for end-of-file, which never comes while a child process still
holds the pipe: such children keep being tee'd by the daemon thread, which
closes the log when the last of them closes the pipe.
"""
from __future__ import annotations

import fcntl
import os
import select
import struct
import sys
import termios
import threading
import time
from typing import IO, Any, List, Optional

_active_lock = threading.Lock()
_active: Optional["OutputCapture"] = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _FdTee:
    """fd-level tee of one descriptor (1 or 2).

    The pump thread reads the pipe only while holding ``lock``, so
    :meth:`drain` can tell "everything written so far has been copied" (no
    unread bytes while it holds the lock) without waiting for end-of-file,
    which never comes while a child process still holds the pipe.
    """

    def __init__(self, fd: int, stream: Any, log_path: str) -> None:
        self.fd = fd
        self.stream = stream
        self.log = open(log_path, "wb", buffering=0)
        self.saved: Optional[int] = None
        self.r: Optional[int] = None
        self.lock = threading.Lock()
        self.thread: Optional[threading.Thread] = None
        self.console_ok = True

    def start(self) -> None:
        _flush(self.stream)
        self.saved = os.dup(self.fd)
        r, w = os.pipe()
        try:
            os.dup2(w, self.fd)  # inheritable: children write into the pipe
        except BaseException:
            os.close(r)
            os.close(w)
            os.close(self.saved)
            self.saved = None
            raise
        os.close(w)
        self.r = r
        self.thread = threading.Thread(
            target=self._pump, args=(r, self.saved), name="ttop-capture-%d" % self.fd, daemon=True
        )
        self.thread.start()

    def _pump(self, r: int, saved: int) -> None:
        log = self.log
        log_ok = True
        poller = select.poll()
        poller.register(r, select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            while True:
                try:
                    poller.poll()
                except InterruptedError:  # pragma: no cover - PEP 475 retries
                    continue
                with self.lock:
                    try:
                        data = os.read(r, 65536)
                    except BlockingIOError:  # pragma: no cover
                        continue
                    except OSError:
                        break
                    if not data:
                        break
                    if self.console_ok:
                        try:
                            _write_all(saved, data)
                        except OSError:
                            self.console_ok = False  # console gone: keep logging
                    if log_ok:
                        try:
                            log.write(data)
                        except (OSError, ValueError):
                            log_ok = False
        finally:
            with self.lock:
                self.r = None
                for fd in (r, saved):
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                try:
                    log.close()
                except OSError:
                    pass

    def restore(self) -> None:
        """Put the original descriptor back (closes our write end of the
        pipe; children started meanwhile may still hold theirs)."""
        if self.saved is None:
            return
        _flush(self.stream)
        try:
            os.dup2(self.saved, self.fd)
        except OSError:
            pass
        self.saved = None  # the pump closes it when the pipe ends

    def drain(self, deadline: float) -> bool:
        """Wait until every byte written to the pipe so far has been copied
        to the console and the log (or ``deadline`` passes)."""
        while True:
            with self.lock:
                r = self.r
                if r is None:
                    return True
                try:
                    left = struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0\0\0\0"))[0]
                except OSError:
                    return True
                if left == 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


class _StreamTee:
    """Python-level tee: stands in for ``sys.stdout`` / ``sys.stderr``."""

    def __init__(self, stream: Any, log: IO[bytes]) -> None:
        self._stream = stream
        self._log = log
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        # the stream is None when the process started with the fd closed:
        # print() then writes nowhere, and must not raise
        n = self._stream.write(s) if self._stream is not None else None
        try:
            with self._lock:
                self._log.write(s.encode("utf-8", "replace"))
        except (OSError, ValueError):
            pass
        return n if n is not None else len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            if self._stream is not None:
                self._stream.flush()
        finally:
            try:
                self._log.flush()
            except (OSError, ValueError):
                pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _PyTee:
    def __init__(self, name: str, log_path: str) -> None:
        self.name = name
        self.log = open(log_path, "wb", buffering=0)
        self.original: Any = None
        self.tee: Optional[_StreamTee] = None

    def start(self) -> None:
        self.original = getattr(sys, self.name)
        self.tee = _StreamTee(self.original, self.log)
        setattr(sys, self.name, self.tee)

    def restore(self) -> None:
        if self.tee is not None and getattr(sys, self.name) is self.tee:
            setattr(sys, self.name, self.original)
        _flush(self.original)
        try:
            self.log.close()
        except OSError:
            pass

    def drain(self, deadline: float) -> bool:
        return True


def _flush(stream: Any) -> None:
    try:
        if stream is not None:
            stream.flush()
    except Exception:
        pass


def _fd_usable(stream: Any, fd: int) -> bool:
    try:
        if stream is None or stream.fileno() != fd:
            return False
        os.fstat(fd)
        return True
    except Exception:
        return False


class OutputCapture:
    """Tee stdout and stderr into ``stdout_path`` / ``stderr_path``.

    ``mode`` is ``"fd"`` or ``"python"`` once started (see module docs). Only
    one capture is active per process: starting a second one stops the first.
    """

    def __init__(self, stdout_path: str, stderr_path: str) -> None:
        self.paths = (stdout_path, stderr_path)
        self.mode: Optional[str] = None
        self._tees: List[Any] = []
        self._pid = os.getpid()

    def start(self) -> None:
        global _active
        with _active_lock:
            previous = _active
            _active = None
        if previous is not None:
            previous.stop()
        tees: List[Any] = []
        try:
            if _fd_usable(sys.stdout, 1) and _fd_usable(sys.stderr, 2):
                self.mode = "fd"
                tees = [_FdTee(1, sys.stdout, self.paths[0]), _FdTee(2, sys.stderr, self.paths[1])]
            else:
                self.mode = "python"
                tees = [_PyTee("stdout", self.paths[0]), _PyTee("stderr", self.paths[1])]
            for tee in tees:
                tee.start()
                self._tees.append(tee)
        except BaseException:
            self.stop()
            for tee in tees:
                if tee not in self._tees:
                    try:
                        tee.log.close()
                    except OSError:
                        pass
            raise
        with _active_lock:
            _active = self

    def stop(self, timeout: float = 2.0) -> bool:
        """Restore the console and wait (up to ``timeout`` s) until what was
        written so far reached the console and the logs; False on timeout.
        Child processes that still hold the pipe keep being tee'd (into the
        logs and the console) by the daemon thread until they close it."""
        global _active
        if os.getpid() != self._pid:  # a forked child: not ours to restore
            return True
        with _active_lock:
            if _active is self:
                _active = None
        tees, self._tees = self._tees, []
        for tee in tees:
            try:
                tee.restore()
            except Exception:
                pass
        deadline = time.monotonic() + timeout
        ok = True
        for tee in tees:
            try:
                ok = tee.drain(deadline) and ok
            except Exception:
                ok = False
        return ok

    @property
    def active(self) -> bool:
        return bool(self._tees)
