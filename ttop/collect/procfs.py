"""Readers of ``/proc`` for the process table: one ``/proc/<pid>/stat`` read per
process (CPU times, thread count and RSS included), the threads of a process,
the real uid of a process, a walked table's rows as a mapping read on demand,
and the ``process_iter`` fallback elsewhere."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, AbstractSet, Dict, Iterator, List, Optional, Tuple

import psutil

if TYPE_CHECKING:
    from .procs import ProcessTable

# (ppid, create_time, name, status, cpu_seconds, num_threads, rss_bytes,
# page_faults); the last four are None where the table came from psutil (then
# psutil samples the first three of them). page_faults: minor + major faults
# so far (a page mapped in, or copied on write), which the PSS reads go by
_Row = Tuple[int, Optional[float], str, str, Optional[float], Optional[int], Optional[int], Optional[int]]


_HAVE_PROC = os.path.exists("/proc/self/stat")
#: ``/proc/<pid>/task/<tid>/children`` (CONFIG_PROC_CHILDREN, Linux 3.5+):
#: a process's children without listing every process of the machine
_HAVE_CHILDREN = _HAVE_PROC and os.path.exists("/proc/self/task/%d/children" % os.getpid())
try:
    _CLK_TCK = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
    _CLK_TCK = 100.0
try:
    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not Linux
    _PAGE = 4096
_STATES = {
    "R": psutil.STATUS_RUNNING,
    "S": psutil.STATUS_SLEEPING,
    "D": psutil.STATUS_DISK_SLEEP,
    "T": psutil.STATUS_STOPPED,
    "t": psutil.STATUS_TRACING_STOP,
    "Z": psutil.STATUS_ZOMBIE,
    "X": psutil.STATUS_DEAD,
    "x": psutil.STATUS_DEAD,
    "K": "wake-kill",
    "W": psutil.STATUS_WAKING,
    "I": psutil.STATUS_IDLE,
    "P": psutil.STATUS_PARKED,
}


def _proc_rows_linux() -> Optional[Dict[int, _Row]]:
    """The process table from ``/proc/<pid>/stat`` (one read per process,
    ~10x cheaper than ``process_iter``). Create times are computed as psutil
    does: start ticks / CLK_TCK + boot time. None if /proc cannot be read."""
    try:
        proc = os.open("/proc", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        return _read_rows(proc)
    finally:
        os.close(proc)


def _read_rows(proc: int) -> Optional[Dict[int, _Row]]:
    try:
        names = os.listdir(proc)
        boot = psutil.boot_time()
    except OSError:
        return None
    rows: Dict[int, _Row] = {}
    for n in names:
        if not n.isdigit():
            continue
        row = _stat_row(proc, n, boot)
        if row is not None:
            rows[int(n)] = row
    return rows


_O_RDONLY = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _stat_row(proc: int, n: str, boot: float) -> Optional[_Row]:
    """One process's row from ``/proc/<n>/stat`` (``proc``: an fd of
    /proc); None when it is gone or unreadable."""
    try:
        fd = os.open(n + "/stat", _O_RDONLY, dir_fd=proc)
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:  # gone, or not readable
        return None
    return row_of(raw, boot)


def row_of(raw: bytes, boot: float) -> Optional[_Row]:
    """:func:`parse_stat` of a stat line, remembered for the lines read lately."""
    got = _ROWS.get(raw)
    if got is not None and got[0] == boot:
        return got[1]
    row = parse_stat(raw, boot)
    if len(_ROWS) >= ROWS_KEPT:
        _ROWS.clear()
    _ROWS[raw] = (boot, row)
    return row


#: The rows of the stat lines read lately, by the line (with the boot time
#: they were worked out with): an idle process's line reads the same from
#: cycle to cycle, and is not taken apart again.
_ROWS: Dict[bytes, Tuple[float, Optional[_Row]]] = {}
ROWS_KEPT = 1024


def parse_stat(raw: bytes, boot: float) -> Optional[_Row]:
    """The row of a ``/proc/<pid>/stat`` line (None: not one)."""
    try:
        lp = raw.index(b"(")
        rp = raw.rindex(b")")
        fields = raw[rp + 2:].split(None, 22)  # up to rss (21): the other ~30 fields are not split off
        return (
            int(fields[1]),
            int(fields[19]) / _CLK_TCK + boot,
            raw[lp + 1:rp].decode("utf-8", "replace"),
            _STATES.get(fields[0].decode("ascii", "replace"), ""),
            (int(fields[11]) + int(fields[12])) / _CLK_TCK,  # utime + stime, seconds
            int(fields[17]),  # num_threads
            int(fields[21]) * _PAGE,  # rss
            int(fields[7]) + int(fields[9]),  # minflt + majflt
        )
    except (ValueError, IndexError):
        return None


def _fds_kept(most: int = 256) -> int:
    """At most ``most``, and an eighth of the open files this process may
    have (the table keeps two such sets: a quarter)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):  # pragma: no cover - not Linux
        return 64
    if soft == resource.RLIM_INFINITY or soft < 0:
        return most
    return max(0, min(most, soft // 8))


#: Most ``/proc/<pid>/stat`` (and ``status``) files kept open between
#: cycles, each (:class:`KeptStatFiles`): 128 under the usual limit of 1,024.
STAT_FDS_KEPT = _fds_kept()


class KeptStatFiles:
    """``/proc/<pid>/stat`` of the processes read each cycle (the runs'
    trees) through descriptors kept open from cycle to cycle, read again
    from offset 0: no path lookup, open and close per process and cycle
    (at most ``keep`` kept). A descriptor stays on the process it was
    opened on: once that process is reaped its reads fail (ESRCH), also
    when its PID has gone to another process, which is then opened by
    its path. ``name``: another file of the process (``status``)."""

    __slots__ = ("fds", "keep", "_path")

    def __init__(self, keep: int, name: str = "stat") -> None:
        self.fds: Dict[int, int] = {}
        self.keep = keep
        self._path = "%d/" + name

    def read(self, proc: int, pid: int) -> Optional[bytes]:
        """The file of ``pid`` (``proc``: an fd of /proc); None when it is
        gone or unreadable."""
        fds = self.fds
        fd = fds.get(pid)
        if fd is not None:
            try:
                raw = os.pread(fd, 4096, 0)
                if raw:
                    return raw
            except OSError:  # reaped
                pass
            del fds[pid]
            os.close(fd)
        try:
            fd = os.open(self._path % pid, _O_RDONLY, dir_fd=proc)
        except OSError:  # gone, or not readable
            return None
        try:
            raw = os.read(fd, 4096)
        except OSError:
            raw = b""
        if raw and len(fds) < self.keep:
            fds[pid] = fd
        else:
            os.close(fd)
        return raw or None

    def retain(self, pids: AbstractSet[int]) -> None:
        """Close the descriptors of the processes not in ``pids``."""
        fds = self.fds
        if not fds.keys() <= pids:
            self.close([p for p in fds if p not in pids])

    def close(self, pids: Optional[List[int]] = None) -> None:
        fds = self.fds
        for p in list(fds) if pids is None else pids:
            try:
                os.close(fds.pop(p))
            except OSError:
                pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _linux_threads(pid: int) -> Optional[List[Tuple[int, float, float, str]]]:
    """``[(tid, user_time, system_time, name)]`` from
    ``/proc/<pid>/task/*/stat`` (the name is the thread's ``comm``, between
    the parentheses of the same read: what ``/proc/<pid>/task/<tid>/comm``
    holds, set with ``prctl(PR_SET_NAME)`` / ``pthread_setname_np``); None
    when the task folder cannot be listed (psutil then decides: gone, access
    denied). Threads that end while being read are left out."""
    base = "/proc/%d/task/" % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return None
    out = []
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    for t in tids:
        try:
            fd = os.open(base + t + "/stat", flags)
            try:
                raw = os.read(fd, 4096)
            finally:
                os.close(fd)
            rp = raw.rindex(b")")
            fields = raw[rp + 2:].split(None, 13)  # up to stime (12)
            name = raw[raw.index(b"(") + 1:rp].decode("utf-8", "replace")
            out.append((int(t), int(fields[11]) / _CLK_TCK, int(fields[12]) / _CLK_TCK, name))
        except (OSError, ValueError, IndexError):
            continue
    out.sort()
    return out


def task_children(pid: int) -> Optional[List[int]]:
    """The children of process ``pid``: the union of
    ``/proc/<pid>/task/<tid>/children`` over its threads (a child belongs to
    the thread that forked it), sorted; None when ``pid`` is gone or its
    task folder cannot be read. Threads that end while being read are left
    out."""
    base = "/proc/%d/task/" % pid
    try:
        tids = os.listdir(base)
    except OSError:
        return None
    kids: List[int] = []
    for t in tids:
        try:
            fd = os.open(base + t + "/children", _O_RDONLY)
            try:
                raw = os.read(fd, 1 << 16)
                if raw:  # the rest of a long list (a seq_file may read short)
                    more = os.read(fd, 1 << 16)
                    while more:
                        raw += more
                        more = os.read(fd, 1 << 16)
            finally:
                os.close(fd)
        except OSError:
            continue
        kids.extend(int(k) for k in raw.split())
    if len(tids) > 1:
        kids = sorted(set(kids))
    else:
        kids.sort()
    return kids


def parents_of_new(proc: int, old: int, new: int, limit: int) -> Optional[List[Tuple[int, int]]]:
    """``[(id, ppid)]``: the parents of the processes and threads with an ID
    in ``(old, new]`` that still exist (``proc``: an fd of /proc; a thread's
    ``/proc/<tid>/stat`` is found though not listed), one ``stat`` read
    each. None when that cannot be told: the IDs wrapped around, more
    than ``limit`` were handed out, or one of them exists but cannot be
    read; the caller then assumes any process may have a new child."""
    if new < old or new - old > limit:
        return None
    out: List[Tuple[int, int]] = []
    for pid in range(old + 1, new + 1):
        name = "%d/stat" % pid
        if not os.access(name, os.F_OK, dir_fd=proc):
            # ended already (or never made): nobody's child now. Most new IDs
            # on a busy machine are short-lived processes gone by now: asked
            # so, without the exception a failed open raises (~4.6k
            # instructions instead of ~11.4k)
            continue
        try:
            fd = os.open(name, _O_RDONLY, dir_fd=proc)
            try:
                raw = os.read(fd, 4096)
            finally:
                os.close(fd)
        except (FileNotFoundError, ProcessLookupError):  # ended already (or never made): nobody's child now
            continue
        except OSError:  # there but unreadable: whose child it is cannot be told
            return None
        try:
            out.append((pid, int(raw[raw.rindex(b")") + 2:].split(None, 2)[1])))
        except (ValueError, IndexError):
            return None
    return out


def last_pid() -> Optional[int]:
    """The PID (or thread ID) handed out last in this PID namespace: the
    last field of ``/proc/loadavg``. The same in two reads: no process or
    thread was created in between. None when it cannot be read."""
    try:
        fd = os.open("/proc/loadavg", _O_RDONLY)
        try:
            raw = os.read(fd, 256)
        finally:
            os.close(fd)
        return int(raw.split()[4])
    except (OSError, ValueError, IndexError):
        return None


def _proc_rows_psutil() -> Dict[int, _Row]:
    rows: Dict[int, _Row] = {}
    for p in psutil.process_iter(["ppid", "create_time", "name", "status"]):
        try:
            info = p.info
            ppid = info.get("ppid")
            rows[p.pid] = (int(ppid) if ppid is not None else -1, info.get("create_time"),
                           info.get("name") or "", info.get("status") or "", None, None, None, None)
        except Exception:  # a process that vanished mid-iteration
            continue
    return rows


def hidden_process(pid: int) -> bool:
    """A process ``/proc`` does not list that exists all the same: another
    user's, where ``/proc`` is mounted with ``hidepid`` (``kill(pid, 0)``
    says EPERM for it, ESRCH when there is none)."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return False


def read_real_uid(pid: int) -> Optional[int]:
    """The real uid of process ``pid`` (``Uid:`` in ``/proc/<pid>/status``,
    elsewhere psutil), or None when it cannot be read (gone, denied)."""
    if _HAVE_PROC:
        try:
            fd = os.open("/proc/%d/status" % pid, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                raw = os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError:
            return None
        return status_uid(raw)
    try:  # pragma: no cover - not Linux
        return int(psutil.Process(pid).uids().real)
    except Exception:  # pragma: no cover
        return None


def status_uid(raw: Optional[bytes]) -> Optional[int]:
    """The real uid in a ``/proc/<pid>/status`` text (None: none there)."""
    if raw is None:
        return None
    try:
        i = raw.index(b"\nUid:")
        return int(raw[i + 5:raw.index(b"\n", i + 5)].split()[0])
    except (ValueError, IndexError):
        return None


class _WalkedRows(Mapping):
    """A walked table's rows as a mapping: a row is read when asked for."""

    def __init__(self, table: "ProcessTable") -> None:
        self._t = table

    def __getitem__(self, pid: int) -> _Row:
        row = self._t.row(pid)
        if row is None:
            raise KeyError(pid)
        return row

    def __contains__(self, pid: object) -> bool:
        return isinstance(pid, int) and self._t.row(pid) is not None

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._t.rows))  # the processes read so far

    def __len__(self) -> int:
        return len(self._t.rows)
