"""A terminal driven from outside, for the screen-latency benchmarks.

A private tmux server (its own socket) holds one pane of a fixed size; a
control-mode client (``tmux -C``) on pipes sends it commands and reads its
notifications. Each ``%output`` notification (the program in the pane wrote
something) triggers one ``capture-pane``, so the harness looks at the screen
when it changes instead of polling on a timer, and costs no process per look.

    with Tmux(cols=160, rows=50) as tm:
        t0 = time.perf_counter()
        tm.launch("exec top")                     # respawn the pane with it
        t = tm.wait_screen(lambda s: "PID" in s)  # time the screen first matched
        tm.send_keys("Down")

The pane is respawned for each program (tmux clears it), with
``escape-time 0`` and the server's default terminal type.
"""
from __future__ import annotations

import os
import queue
import shlex
import shutil
import subprocess
import threading
import time
from typing import Callable, List, Optional


class TmuxError(Exception):
    pass


class Tmux:
    def __init__(self, cols: int = 160, rows: int = 50, idle_cmd: str = "exec sleep 1000000") -> None:
        if shutil.which("tmux") is None:
            raise TmuxError("tmux is not installed")
        self.sock = "ttop-bench-%d" % os.getpid()
        self.idle_cmd = idle_cmd
        subprocess.run(["tmux", "-L", self.sock, "-f", "/dev/null", "new-session", "-d", "-s", "bench",
                        "-x", str(cols), "-y", str(rows), idle_cmd], check=True)
        subprocess.run(["tmux", "-L", self.sock, "set", "-g", "escape-time", "0"], check=True)
        subprocess.run(["tmux", "-L", self.sock, "set", "-g", "window-size", "manual"], check=True)
        # a program that exits leaves its pane (and the session) for the next
        subprocess.run(["tmux", "-L", self.sock, "set", "-g", "remain-on-exit", "on"], check=True)
        # buffered: reading the answers line by line from an unbuffered pipe
        # would cost a system call per byte
        self._proc = subprocess.Popen(["tmux", "-L", self.sock, "-C", "attach", "-t", "bench"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._results: "queue.Queue[List[str]]" = queue.Queue()
        self._output = threading.Event()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._results.get(timeout=30)  # the empty answer to the attach itself
        self._socket = self.cmd("display -p '#{socket_path}'")[0]
        self.cmd("refresh-client -C %d,%d" % (cols, rows))
        self.cmd("resize-window -t bench -x %d -y %d" % (cols, rows))

    # -- control mode ------------------------------------------------------------

    def _read(self) -> None:
        out = self._proc.stdout
        assert out is not None
        block: Optional[List[str]] = None
        for raw in out:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if block is not None:
                if line.startswith(("%end ", "%error ")):
                    self._results.put(block if line.startswith("%end") else ["%error"] + block)
                    block = None
                else:
                    block.append(line)
            elif line.startswith("%begin "):
                block = []
            elif line.startswith("%output ") or line.startswith("%extended-output "):
                self._output.set()
        self._results.put(["%exit"])

    def cmd(self, command: str, timeout: float = 30.0) -> List[str]:
        """Run one tmux command; its output lines."""
        with self._lock:
            stdin = self._proc.stdin
            assert stdin is not None
            stdin.write((command + "\n").encode())
            stdin.flush()
            try:
                res = self._results.get(timeout=timeout)
            except queue.Empty:
                raise TmuxError("tmux did not answer %r" % command) from None
        if res and res[0] == "%exit":
            raise TmuxError("tmux %r: the control client ended (the session is gone)" % command)
        if res and res[0] == "%error":
            raise TmuxError("tmux %r: %s" % (command, " ".join(res[1:])))
        return res

    def capture(self) -> str:
        return "\n".join(self.cmd("capture-pane -p -t bench"))

    def pane_pid(self) -> int:
        return int(self.cmd("display -p -t bench '#{pane_pid}'")[0])

    # -- programs ------------------------------------------------------------------

    def launch(self, command: str) -> int:
        """Respawn the pane with ``command`` (a shell line); returns its PID."""
        self._output.clear()
        self.cmd("respawn-pane -k -t bench %s" % shlex.quote(command))
        return self.pane_pid()

    def stop(self, timeout: float = 10.0) -> None:
        """Put the idle command back in the pane and wait until the program
        that ran there has gone."""
        pid = self.pane_pid()
        self.cmd("respawn-pane -k -t bench %s" % shlex.quote(self.idle_cmd))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                return
            time.sleep(0.01)

    def send_keys(self, *keys: str) -> None:
        self._output.clear()
        self.cmd("send-keys -t bench %s" % " ".join(shlex.quote(k) for k in keys))

    def wait_screen(self, pred: Callable[[str], bool], timeout: float = 30.0) -> float:
        """Look at the screen after each output until ``pred(text)``; returns
        the ``perf_counter()`` time of the look that matched."""
        seen = [""]

        def look() -> bool:
            seen[0] = self.capture()
            return pred(seen[0])

        return self.wait(look, timeout, lambda: "last screen:\n" + seen[0])

    def wait(self, look: Callable[[], bool], timeout: float = 30.0,
             why: Callable[[], str] = lambda: "") -> float:
        """Call ``look()`` after each output (and every 50 ms) until it is
        true; returns the ``perf_counter()`` time of the call that was."""
        deadline = time.monotonic() + timeout
        while True:
            self._output.clear()
            if look():
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise TmuxError("the screen never matched; " + why())
            self._output.wait(0.05)

    def close(self) -> None:
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except OSError:
            pass
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], stderr=subprocess.DEVNULL)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        try:  # the server is gone; its socket file stays otherwise
            os.unlink(self._socket)
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> "Tmux":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
