"""Opt-in output capture: the script's stdout/stderr copied into log files
while still reaching the console, with nothing lost when the script crashes.

Two mechanisms:

* **fd level** (the default whenever ``sys.stdout.fileno()`` is 1 and
  ``sys.stderr.fileno()`` is 2): file descriptors 1 and 2 are replaced with
  the write ends of pipes (``dup2``). A **sidecar process**
  (:mod:`ttop.monitor._tee`, ``python -I -S``, standard library only, a few
  MB) reads the pipes and writes every byte to the original descriptors (the
  console) and to the logs. Everything that writes to fd 1/2 is captured:
  Python's ``print``, C extensions, ``os.system``, subprocesses started after
  capture began (they inherit the pipes), and the last words of a dying
  process (faulthandler's traceback of a SIGSEGV, a C ``abort()`` message).
* **Python level** (fallback when there is no usable descriptor, e.g. a
  notebook's stream object): ``sys.stdout`` / ``sys.stderr`` are replaced by
  a tee object that writes to the stream and to the log in the same call.
  Only output written through those Python objects is captured.

Why a process and not a thread: a thread that copies the pipes dies with the
training process. Whatever it had not copied yet when the process was
SIGKILLed, aborted, crashed or left through ``os._exit`` was lost from the
console and the log alike, exactly the output that explains the crash. The
sidecar is a separate process that reads until end-of-file, which comes only
when every writer (the script and any child still holding the pipes) has
closed them or died, so every byte written before a crash reaches both. It
ignores SIGINT, SIGTERM and SIGHUP (a Ctrl+C reaches the whole process group)
and forks once at start, so it is not a child of the script (``os.wait()`` in
the script never sees it). The cost is one short-lived interpreter start at
``start()`` and one extra copy of the bytes through a pipe.

If the sidecar is killed while capture is on, a watchdog thread puts the
console back on fd 1/2, says so on stderr and copies the pipes itself
(:mod:`ttop.monitor.takeover`): what was left in them, and what is still
written to them (a write begun before the switch, child processes holding
them) until every writer has closed them; stopping waits, bounded, until
what was written so far has been copied. Until the switch the script's
writes queue in the pipes (this process keeps a read end: they never fail
with EPIPE).

Stopping restores the original descriptors (or objects) and waits, bounded,
until everything written so far has reached the console and the logs (a
sync request to the sidecar); it does not wait for end-of-file, which never
comes while a child process still holds the pipes: the sidecar keeps copying
their output, after the script ended too, and exits when they close it.

Log files are opened without following symbolic links, relative to the
folder's descriptor, in append mode: a symlink, FIFO, device, directory, a
file with other hard links or a file owned by another user at the log path
turns capture off for the run, with a one-line message on stderr; the script
goes on with its output on the console as without capture. Another user's
entry at the name (a sticky folder: it cannot be replaced) is left alone and
the log takes a hidden name nobody can guess instead (:func:`_unsquatted`). A log that
already holds output (an ended run of the same name) is kept; a separator
line ``--- ttop: run started <time> pid <pid> ---`` marks where this run
begins.

When fd 1 was a terminal, ``COLUMNS`` and ``LINES`` (if unset) are set to its
size while capturing, so progress bars (tqdm) drawn into the pipe have the
terminal's width rather than a pipe's default.
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import IO, Any, List, Optional, Tuple

from .takeover import PipeCopier

#: held through each start and stop (two threads starting at once each took the other's pipe for the console)
_active_lock = threading.RLock()
_active: Optional["OutputCapture"] = None


def _new_lock_in_child() -> None:  # a thread of the parent may have held it at the fork
    global _active_lock
    _active_lock = threading.RLock()


os.register_at_fork(after_in_child=_new_lock_in_child)

SIDECAR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_tee.py")
PIPE_SIZE = 1 << 20  # fewer wake-ups of the sidecar; the default (64 KiB) where refused
START_TIMEOUT = 10.0
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class CaptureError(OSError):
    """A log file that cannot be opened safely, or a sidecar that does not
    start. :meth:`OutputCapture.start` reports it on stderr and leaves the
    console as it was."""


def _describe(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_log(path: str) -> int:
    """Open (create) the log at ``path`` for appending, without following a
    symbolic link at its last component, relative to the folder's descriptor.
    Returns the descriptor (close-on-exec); raises :class:`CaptureError` with
    a clear message for a symlink, a non-regular file, a file with other
    hard links or one owned by another user. A log that already holds bytes
    gets a separator line saying a new run starts here."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise CaptureError(e.errno, "cannot open the folder %s (%s)" % (folder, e.strerror)) from None
    try:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
        try:
            fd = os.open(name, flags, 0o644, dir_fd=dfd)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise CaptureError(e.errno, "%s is a symbolic link; it was not followed" % path) from None
            if e.errno in (errno.ENXIO, errno.EISDIR):
                try:
                    what = _describe(os.stat(name, dir_fd=dfd, follow_symlinks=False))
                except OSError:
                    what = "not a regular file"
                raise CaptureError(e.errno, "%s is %s" % (path, what)) from None
            raise CaptureError(e.errno, "cannot open %s (%s)" % (path, e.strerror)) from None
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise CaptureError(errno.EINVAL, "%s is %s" % (path, _describe(st)))
        if st.st_nlink != 1:
            raise CaptureError(errno.EMLINK, "%s has %d hard links (other names for the same file)" % (path, st.st_nlink))
        if st.st_uid != os.geteuid():
            raise CaptureError(
                errno.EPERM, "%s is owned by uid %d, not by this process (uid %d)" % (path, st.st_uid, os.geteuid())
            )
        os.set_blocking(fd, True)
        if st.st_size > 0:
            try:
                last = os.pread(fd, 1, st.st_size - 1)
            except OSError:
                last = b"\n"
            stamp = datetime.now().astimezone().isoformat(timespec="seconds")
            line = "--- ttop: run started %s pid %d ---\n" % (stamp, os.getpid())
            os.write(fd, (b"" if last == b"\n" else b"\n") + line.encode())
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unsquatted(path: str) -> str:
    """``path``, or where another user's entry holds that name (a sticky
    folder: it cannot be replaced, and a link or a FIFO there would turn
    capture off) a hidden name nobody can guess beside it, said once on
    stderr; the progress file's ``logs`` names the one used."""
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return path
    if uid == os.geteuid():
        return path
    folder, name = os.path.split(path)
    stem, dot, suffix = name.rpartition(".")  # run.stdout.log -> .run.stdout.<hex>.log
    new = os.path.join(folder, ".%s.%s.%s" % (stem, os.urandom(6).hex(), suffix) if dot else ".%s.%s" % (name, os.urandom(6).hex()))
    try:
        import pwd

        who = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        who = "uid %d" % uid
    _report("%s belongs to %s, another user, and cannot be replaced; output is captured to %s instead" % (
        path, who, os.path.basename(new)))
    return new


def _close(fd: Optional[int]) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


class _Sidecar:
    """fd-level capture of descriptors 1 and 2 through the sidecar process.

    A watchdog thread reads the sidecar's answers; if the sidecar ends while
    capture is on (killed by hand, the OOM killer), it puts the console back
    on fd 1/2, says so on stderr and copies what was left in the pipes. This
    process keeps a read end of each pipe so that, until then, writes queue
    in the pipe instead of failing with EPIPE in the training loop.
    """

    def __init__(self, streams: List[Any], logs: List[int]) -> None:
        self.streams = streams  # sys.stdout, sys.stderr (flushed around dup2)
        self.logs = logs  # kept for a take-over, as are the read ends
        self.readers: List[int] = []
        self.saved: List[int] = []
        self.ctl: Optional[socket.socket] = None  # to the sidecar: requests, answers
        self.pid: Optional[int] = None
        self._buf = b""
        self._env_set: List[Tuple[str, str]] = []
        self._cond = threading.Condition()
        self._acks = 0
        self._gone = False
        self._ended = False  # the sidecar said it ended (b"e"): its exit is no death
        self._restored = False
        self._copier: Optional[PipeCopier] = None

    def start(self) -> None:
        theirs = -1
        writers: List[int] = []
        try:
            for s in self.streams:
                _flush(s)
            self.saved = [os.dup(1), os.dup(2)]
            for _ in (1, 2):
                r, w = os.pipe()
                self.readers.append(r)
                writers.append(w)
                try:
                    fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
                except OSError:
                    pass
            self.ctl, sock = socket.socketpair()
            theirs = sock.detach()
            specs = ["%d:%d:%d" % (self.readers[i], self.saved[i], self.logs[i]) for i in (0, 1)]
            if not sys.executable:
                raise CaptureError(errno.ENOENT, "no Python interpreter to run the capture process (sys.executable is empty)")
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", SIDECAR, str(theirs)] + specs,
                    stdin=subprocess.DEVNULL,
                    stdout=self.saved[0],
                    stderr=self.saved[1],
                    pass_fds=[theirs] + self.readers + self.saved + self.logs,
                    close_fds=True,
                )
            except OSError as e:
                raise CaptureError(e.errno, "cannot start the capture process %s (%s)" % (sys.executable, e.strerror)) from None
            try:
                proc.wait(START_TIMEOUT)  # the first process exits once the sidecar forked
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _close(theirs)
            theirs = -1
            line = self._read_line(time.monotonic() + START_TIMEOUT)
            if not line.startswith(b"ready "):
                raise CaptureError(errno.ECHILD, "the capture process did not start (exit status %s)" % proc.returncode)
            self.pid = int(line.split()[1])
            self._set_terminal_size()
            for s in self.streams:
                _flush(s)
            os.dup2(writers[0], 1)  # inheritable: children write into the pipes
            os.dup2(writers[1], 2)
            threading.Thread(target=self._watch, name="ttop-capture-watch", daemon=True).start()
        except BaseException:
            _close(theirs)
            self._restored = True
            self._finish()
            raise
        finally:
            for fd in writers:
                _close(fd)

    def _set_terminal_size(self) -> None:
        try:
            if not os.isatty(self.saved[0]):
                return
            size = os.get_terminal_size(self.saved[0])
        except OSError:
            return
        # COLUMNS/LINES: shutil.get_terminal_size, tqdm up to 4.67, rich,
        # click...; TQDM_NCOLS: tqdm >= 4.66 imported after this point or in
        # a child process (tqdm draws cols - 1 on a terminal)
        for name, value in (("COLUMNS", size.columns), ("LINES", size.lines), ("TQDM_NCOLS", size.columns - 1)):
            if value > 0 and not os.environ.get(name):
                os.environ[name] = str(value)
                self._env_set.append((name, str(value)))

    def _read_line(self, deadline: Optional[float]) -> bytes:
        """One line from the sidecar (b"" at end-of-file or deadline)."""
        while b"\n" not in self._buf:
            ctl = self.ctl
            if ctl is None:
                return b""
            try:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return b""
                    ready, _, _ = select.select([ctl], [], [], left)
                    if not ready:
                        continue
                data = ctl.recv(256)
            except OSError:
                data = b""
            if not data:
                return b""
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def _watch(self) -> None:
        """Count the sidecar's answers; take over if it ends too early."""
        while True:
            line = self._read_line(None)
            if line:
                with self._cond:
                    self._acks += 1
                    self._ended = line == b"e"  # every pipe ended and was copied: it exits
                    self._cond.notify_all()
                continue
            with self._cond:
                self._gone = True
                if not self.readers:  # finished (or never started)
                    self._cond.notify_all()
                    return
                # killed (by hand, the OOM killer) unless it said it ended,
                # whether or not stopping had begun: what it had read is lost
                died = not self._ended
                if not self._restored:
                    self._put_back()
                copier = self._copier = PipeCopier(list(zip(self.readers, self.saved, self.logs)))
                self.saved, self.logs, self.readers = [], [], []
                self._cond.notify_all()
            copier.run(
                (lambda: _report(
                    "the output capture process (pid %s) ended; output goes to the console only from here on" % self.pid
                )) if died else lambda: None
            )
            return

    def _put_back(self) -> None:
        self._restored = True
        for s in self.streams:
            _flush(s)
        for fd, saved in zip((1, 2), self.saved):
            try:
                os.dup2(saved, fd)
            except OSError:
                pass
        for name, value in self._env_set:
            if os.environ.get(name) == value:
                del os.environ[name]
        self._env_set = []

    def restore(self) -> None:
        """Put the original descriptors back (closes our write ends of the
        pipes; children started meanwhile may still hold theirs)."""
        with self._cond:
            if not self._restored:
                self._put_back()

    def drain(self, deadline: float) -> bool:
        """Wait until every byte written to the pipes so far has reached the
        console and the logs (or ``deadline`` passes)."""
        try:
            with self._cond:
                if self.ctl is None:
                    return True
                want = self._acks + 1
                sent = False
                if not self._gone:
                    try:
                        self.ctl.send(b"s", socket.MSG_NOSIGNAL)
                        sent = True
                    except OSError:  # the sidecar has ended: the watchdog copies what it left
                        pass
                while not self._gone and not (sent and self._acks >= want):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                copier = self._copier  # set with _gone: the watchdog copies what is left
            return copier.wait_copied(deadline) if copier is not None else True
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._cond:
            for fd in self.saved + self.logs + self.readers:
                _close(fd)
            self.saved, self.logs, self.readers = [], [], []
            if self.ctl is not None:
                try:
                    self.ctl.shutdown(socket.SHUT_RDWR)  # wakes the watchdog
                except OSError:
                    pass
                self.ctl.close()
                self.ctl = None


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
    def __init__(self, name: str, log_fd: int) -> None:
        self.name = name
        self.log = os.fdopen(log_fd, "ab", buffering=0)
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


def _report(message: str) -> None:
    """One line on the console's stderr, whatever sys.stderr is."""
    try:
        os.write(2, ("ttop: " + message + "\n").encode("utf-8", "replace"))
    except OSError:
        try:
            print("ttop: " + message, file=sys.__stderr__)
        except Exception:
            pass


class OutputCapture:
    """Tee stdout and stderr into ``stdout_path`` / ``stderr_path``.

    ``mode`` is ``"fd"`` or ``"python"`` once started (see module docs), or
    None when capture could not start; ``error`` then says why (it was also
    written on stderr). Only one capture is active per process: starting a
    second one stops the first. ``sidecar_pid`` is the copying process in fd
    mode.
    """

    def __init__(self, stdout_path: str, stderr_path: str) -> None:
        self.paths = (stdout_path, stderr_path)
        self.mode: Optional[str] = None
        self.error: Optional[str] = None
        self.sidecar_pid: Optional[int] = None
        self._tees: List[Any] = []
        self._pid = os.getpid()

    def start(self) -> None:
        """Start capturing. A log path that cannot be used safely (symlink,
        FIFO, another user's file...) or a sidecar that cannot start does not
        raise: capture stays off, ``error`` says why and a line on stderr
        too, and output reaches the console as without capture."""
        global _active
        with _active_lock:  # one start or stop at a time (see _active_lock)
            previous = _active
            _active = None
            if previous is not None:
                previous.stop()
            logs: List[int] = []
            try:
                try:
                    self.paths = (_unsquatted(self.paths[0]), _unsquatted(self.paths[1]))
                    for path in self.paths:
                        logs.append(open_log(path))
                    if _fd_usable(sys.stdout, 1) and _fd_usable(sys.stderr, 2):
                        tee = _Sidecar([sys.stdout, sys.stderr], logs)
                        logs = []  # the sidecar object owns them now
                        tee.start()
                        self._tees = [tee]
                        self.sidecar_pid = tee.pid
                        self.mode = "fd"
                    else:
                        names = ("stdout", "stderr")
                        tees = [_PyTee(names[i], logs[i]) for i in (0, 1)]
                        logs = []
                        for t in tees:
                            t.start()
                            self._tees.append(t)
                        self.mode = "python"
                except CaptureError as e:
                    self.stop()
                    self.mode = None
                    self.error = "output capture is off: %s" % e.strerror
                    _report(self.error + " (output goes to the console only)")
                    return
                except BaseException:
                    self.stop()
                    raise
            finally:
                for fd in logs:
                    _close(fd)
            _active = self

    def stop(self, timeout: float = 2.0) -> bool:
        """Restore the console and wait (up to ``timeout`` s) until what was
        written so far reached the console and the logs; False on timeout.
        Child processes that still hold the pipes keep being copied (into the
        logs and the console) by the sidecar until they close them."""
        global _active
        if os.getpid() != self._pid:  # a forked child: not ours to restore
            return True
        with _active_lock:  # one start or stop at a time
            return self._stop(timeout)

    def _stop(self, timeout: float) -> bool:
        global _active
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
