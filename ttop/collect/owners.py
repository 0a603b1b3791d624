"""Which file may claim which live process, and the user names ownership
messages show (see docs/security.md)."""
from __future__ import annotations

import os
import stat

from ..progress import RUNNING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AbstractSet, Any, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # procs (psutil) is imported with the first process lookup
    from .procs import ProcessTable


def link_owner(name: str, dfd: int, fst: os.stat_result) -> int:
    """The run's owner: the owner of the file read, unless the name is a
    symbolic link made by another user (then the link's maker: pointing at
    someone's file does not make a run theirs). Called after a read through
    a link: a name that is no link any more was swapped since, by its owner
    now, who is then the run's owner too (the link read is gone). Raises
    FileNotFoundError when the name is gone: who made the link is unknown."""
    lst = os.lstat(name, dir_fd=dfd)
    if (stat.S_ISLNK(lst.st_mode) or not os.path.samestat(lst, fst)) and lst.st_uid not in (fst.st_uid, 0):
        return lst.st_uid
    return fst.st_uid


def claims(statics, table: ProcessTable) -> Tuple[AbstractSet[int], Dict[str, str]]:
    """Which file may claim which live process (see docs/security.md).

    A file claims its ``pid`` only when that process's real uid is the
    file's owner. Of several files that rightly claim the same process, one
    holds it: a RUNNING one before an ended one, then the one started last
    (``started_at``: the process's current run), then the lowest key. The
    choice is stable, so the holder does not change from cycle to cycle.
    Returns ``(main PIDs of the winning claims, {key: why refused})``."""
    from .procs import ALIVE

    winners: Dict[int, Any] = {}
    refused: Dict[str, str] = {}
    for _fr, st in statics:
        if st is None or st.lookup_pid is None:
            continue
        pid = st.lookup_pid
        if table.identify(pid, st.pid_create_time)[0] != ALIVE:
            continue
        if st.owner_uid is not None:
            uid = table.uid(pid)
            if uid != st.owner_uid:
                refused[st.key] = "pid %d belongs to %s, not to the file's owner %s" % (
                    pid, user_name(uid), user_name(st.owner_uid))
                continue
        best = winners.get(pid)
        if best is None:
            winners[pid] = st
        elif _rank(st) < _rank(best):
            refused[best.key] = _lost(pid, st)
            winners[pid] = st
        else:
            refused[st.key] = _lost(pid, best)
    return set(winners), refused


def _rank(st: Any) -> Tuple[bool, float, str]:
    return (st.reported != RUNNING, -st.started, st.key)


_LOST_PREFIX = "shared: "


def _lost(pid: int, winner: Any) -> str:
    return _LOST_PREFIX + "pid %d is held by run %s: its processes and resources are shown there" % (
        pid, winner.key)


def _foreign_note(foreign: List[Tuple[int, Optional[int]]], owner: Optional[int]) -> str:
    pid, uid = foreign[0]
    more = " (and %d more)" % (len(foreign) - 1) if len(foreign) > 1 else ""
    return "not counted: child pid %d%s belongs to %s, not to the file's owner %s" % (
        pid, more, user_name(uid), user_name(owner))


_USER_NAMES: Dict[Optional[int], str] = {}


def user_name(uid: Optional[int]) -> str:
    """``uid`` -> login name (cached), the number where it has none."""
    if uid is None:
        return "an unknown user"
    name = _USER_NAMES.get(uid)
    if name is None:
        try:
            import pwd

            name = pwd.getpwuid(uid).pw_name
        except (KeyError, ImportError):
            name = "uid %d" % uid
        if len(_USER_NAMES) > 4096:
            _USER_NAMES.clear()
        _USER_NAMES[uid] = name
    return name


def _groups(uid: int) -> AbstractSet[int]:
    try:
        import grp
        import pwd

        pw = pwd.getpwuid(uid)
        return frozenset([pw.pw_gid] + [g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem])
    except (KeyError, ImportError):
        return frozenset()


def _allowed(st: os.stat_result, uid: int, gids: AbstractSet[int], usr: int, grp_bit: int, oth: int) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & usr)
    return bool(st.st_mode & (grp_bit if st.st_gid in gids else oth))


def may_read(uid: int, path: str, fst: os.stat_result) -> bool:
    """Could user ``uid`` read the file ``fst`` (the ``fstat`` of what was
    read through ``path``, a symbolic link)? By the mode bits of the file and
    of every folder on its real path (ACLs are not consulted: a user they
    would let in is refused). The file at the real path must still be the one
    read, else False: a link flipped between the read and this check proves
    nothing."""
    if uid == 0:
        return True
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
        if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
            return False
        gids = _groups(uid)
        d = os.path.dirname(real)
        while True:
            if not _allowed(os.stat(d), uid, gids, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
                return False
            up = os.path.dirname(d)
            if up == d:
                break
            d = up
    except OSError:
        return False
    return _allowed(st, uid, gids, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)
