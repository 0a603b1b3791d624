"""The stop guard: delivers signal requests to a run that is stopped.

A run stopped with SIGSTOP through its control file cannot read that file any
more (every thread of the process is stopped), so before the writer stops
itself it starts this small process (``python -I -S _stopguard.py PID CONTROL
UID SEQ TARGET RUN SINCE``, standard library only). It polls the control file
every 0.2 s, reading it the way the writer does: opened without following a
symbolic link and without blocking, used only when it is a regular file owned
by ``UID`` or root, not written for another run than ``RUN`` nor more than a
second before ``SINCE`` (when the run started). The first request with a
sequence above ``SEQ`` is sent to ``PID`` (and, for target ``tree``, to its
descendants) and, unless it was another SIGSTOP, followed by SIGCONT so that
the run can act on it; before sending it writes the request's sequence number
on its stdout (a pipe to the writer), so the resumed writer, which finds the
same request in the control file, acknowledges it in the progress file
without sending it a second time. The guard exits after a request other than
SIGSTOP, when the process is no longer stopped (continued by anyone) or gone.
"""
import json
import os
import signal
import stat
import sys
import time

KNOWN = ("SIGTERM", "SIGINT", "SIGKILL", "SIGHUP", "SIGSTOP", "SIGCONT", "SIGUSR1", "SIGUSR2")


def state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2:raw.rfind(b")") + 3].decode("ascii", "replace")


def request(path, uid, last, run="", since=0.0):
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in (uid, 0) or st.st_size > 1 << 20:
            return None
        doc = json.loads(os.read(fd, 1 << 20).decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: nested too deeply (the writer ignores it too)
        return None
    finally:
        os.close(fd)
    if isinstance(doc, dict) and doc.get("run_owner_uid", uid) not in outside(uid):
        return None  # written for another user's run (see ttop.progress.parse_control_doc)
    if since and st.st_mtime < since - 1.0:
        return None  # an earlier run's file, put back under the name (as the writer's poller)
    if isinstance(doc, dict) and run and doc.get("run", run) != run:
        return None  # written for another run (renamed over this one's: as parse_control_doc)
    sig = doc.get("signal") if isinstance(doc, dict) else None
    if not isinstance(sig, dict):
        return None
    seq, name, target = sig.get("seq"), sig.get("name"), sig.get("target", "main")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= last or name not in KNOWN \
            or target not in ("main", "tree"):
        return None  # the writer refuses it once resumed
    return name, target, seq


def outside(uid):
    """``uid`` and what it is outside this user namespace (as
    ttop.progress.uid_seen_outside)."""
    out = [uid]
    try:
        with open("/proc/self/uid_map") as f:
            for line in f:
                inside, start, count = (int(x) for x in line.split())
                if inside <= uid < inside + count:
                    out.append(start + uid - inside)
    except (OSError, ValueError):
        pass
    return out


def descendants(pid):
    kids = {}  # type: dict
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry, "rb") as f:
                    raw = f.read()
                ppid = int(raw[raw.rfind(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def main():
    pid, path, uid, last, target = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    run = sys.argv[6] if len(sys.argv) > 6 else ""
    since = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    seen_stopped = False
    deadline = time.monotonic() + 10.0  # the writer stops itself right after starting the guard
    while True:
        st = state(pid)
        if st is None:
            return
        if st in ("T", "t"):
            seen_stopped = True
        elif seen_stopped or time.monotonic() > deadline:
            return  # continued by someone else (or never stopped)
        got = request(path, uid, last, run, since)
        if got is not None:
            name, tgt, seq = got
            try:  # tell the writer (before it resumes) that this request was delivered: it must not send it again
                sys.stdout.write("%d\n" % seq)
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
            # not this guard, a child of the run too: a SIGKILL or SIGUSR1 would end
            # it before the descendants listed after it, a SIGSTOP stop it for good
            me = os.getpid()
            pids = ([pid] + [p for p in descendants(pid) if p != me]) if tgt == "tree" or target == "tree" else [pid]
            for p in pids:
                for sig in ([getattr(signal, name)] + ([] if name in ("SIGSTOP", "SIGCONT") else [signal.SIGCONT])):
                    try:
                        os.kill(p, sig)
                    except OSError:
                        pass
            if name != "SIGSTOP":
                return
            last = seq  # still stopped: the next request (a SIGCONT) is still this guard's to deliver
        time.sleep(0.2)


if __name__ == "__main__":
    main()
