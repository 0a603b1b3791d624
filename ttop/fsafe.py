"""Opening and removing files inside a shared folder without trusting a path
twice.

Another user who can write the progress folder can swap any name in it for a
symbolic link, a FIFO or another file between the moment ttop checks a path
and the moment it uses it. So nothing here checks a path and then uses it
again: every name is looked up **relative to an open directory descriptor**,
one component at a time, with ``O_NOFOLLOW`` (a symbolic link is refused,
never followed), and what was opened is checked on the descriptor itself
(``fstat``: a regular file, or a directory).

* :func:`open_dir` opens the folder itself (the user named it: followed);
* :func:`open_beneath` opens a file below a folder for reading
  (``O_NOFOLLOW | O_NONBLOCK``, so a FIFO cannot hang the caller; refused
  unless it is a regular file);
* :func:`open_dir_beneath` opens a directory below a folder
  (``O_NOFOLLOW | O_DIRECTORY``);
* :func:`unlink_beneath` and :func:`rmtree_beneath` remove through directory
  descriptors (``unlink(name, dir_fd=...)``, a descriptor-only tree walk):
  what is removed is always the entry in the directory that was opened,
  never what a path resolves to at that moment.

Relative names with ``..``, an absolute path, an empty or NUL-holding name
are refused (:class:`Refused`, an OSError).
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from typing import AbstractSet, Iterator, List, Optional, Tuple, Union

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
O_NOCTTY = getattr(os, "O_NOCTTY", 0)

DIR_FLAGS = os.O_RDONLY | O_DIRECTORY | O_CLOEXEC
DIR_NOFOLLOW = DIR_FLAGS | O_NOFOLLOW
FILE_FLAGS = os.O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC


class Refused(OSError):
    """A name that may not be opened here (with the reason as its text)."""

    def __init__(self, reason: str, err: int = errno.EPERM) -> None:
        super().__init__(err, reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class NotOwned(Refused):
    """An entry owned by a user the caller does not act for (``uid``)."""

    def __init__(self, uid: int) -> None:
        super().__init__("owned by %s: left alone" % _user(uid))
        self.uid = uid


def _user(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "uid %d" % uid


def _check_owner(st: os.stat_result, owners: Optional[AbstractSet[int]]) -> None:
    if owners is not None and st.st_uid not in owners:
        raise NotOwned(st.st_uid)


def parts(rel: Union[str, bytes]) -> List[str]:
    """The components of a relative name (``.`` dropped); :class:`Refused`
    for an absolute name, ``..``, an empty name or one with a NUL."""
    if isinstance(rel, bytes):
        rel = os.fsdecode(rel)
    if not isinstance(rel, str) or not rel:
        raise Refused("empty name")
    if "\x00" in rel:
        raise Refused("name holds a NUL byte")
    try:
        os.fsencode(rel)
    except UnicodeError:
        raise Refused("name cannot be encoded as a path") from None
    if rel.startswith("/"):
        raise Refused("absolute path")
    out = [p for p in rel.split("/") if p not in ("", ".")]
    if any(p == ".." for p in out):
        raise Refused("'..' in the name")
    if not out:
        raise Refused("names the folder itself")
    return out


def describe(e: OSError) -> str:
    """A short reason for a failed open beneath a folder."""
    if isinstance(e, Refused):
        return e.reason
    if e.errno == errno.ELOOP:
        return "is a symbolic link (not followed)"
    if e.errno == errno.ENOTDIR:
        return "a folder on the way is not a folder (or is a symbolic link)"
    if e.errno == errno.ENOENT:
        return "no such file"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return (e.strerror or str(e)).lower()


def open_dir(path: str) -> int:
    """A descriptor of the folder ``path`` (symlinks in ``path`` followed:
    the user named it)."""
    return os.open(path, DIR_FLAGS)


def _walk(dir_fd: int, comps: List[str]) -> int:
    """A new descriptor of the directory ``comps`` below ``dir_fd``, each
    component opened with O_NOFOLLOW | O_DIRECTORY."""
    fd = os.dup(dir_fd)
    try:
        for c in comps:
            nfd = os.open(c, DIR_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _as_dir_fd(folder: Union[str, int]) -> Tuple[int, bool]:
    if isinstance(folder, int):
        return folder, False
    return open_dir(folder), True


def open_beneath(folder: Union[str, int], rel: Union[str, bytes]) -> int:
    """Open the regular file ``rel`` below ``folder`` (a path or a directory
    descriptor) for reading, following no symbolic link on the way. Raises
    :class:`Refused` (bad name, not a regular file) or OSError (ELOOP: a
    symbolic link; ENOENT, EACCES, ...). The caller closes the result."""
    comps = parts(rel)
    base, own = _as_dir_fd(folder)
    try:
        d = _walk(base, comps[:-1])
        try:
            fd = os.open(comps[-1], FILE_FLAGS, dir_fd=d)
        finally:
            os.close(d)
    finally:
        if own:
            os.close(base)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused("not a regular file" if not stat.S_ISDIR(st.st_mode) else "is a folder")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_dir_beneath(folder: Union[str, int], rel: Union[str, bytes]) -> int:
    """A descriptor of the directory ``rel`` below ``folder``, following no
    symbolic link (ELOOP / ENOTDIR otherwise)."""
    comps = parts(rel)
    base, own = _as_dir_fd(folder)
    try:
        return _walk(base, comps)
    finally:
        if own:
            os.close(base)


def parent_beneath(folder: Union[str, int], rel: Union[str, bytes]) -> Tuple[int, str]:
    """``(descriptor of the directory holding rel, rel's last component)``,
    the directory opened without following symbolic links."""
    comps = parts(rel)
    base, own = _as_dir_fd(folder)
    try:
        return _walk(base, comps[:-1]), comps[-1]
    finally:
        if own:
            os.close(base)


def entry_stat(dir_fd: int, name: str) -> os.stat_result:
    """``lstat`` of ``name`` in ``dir_fd`` (the entry itself, never a link's
    target)."""
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)


def unlink_beneath(folder: Union[str, int], rel: Union[str, bytes],
                   owners: Optional[AbstractSet[int]] = None) -> None:
    """Remove the entry ``rel`` (a file, or a symbolic link as a link) below
    ``folder``: the directories on the way are opened without following
    links, and the last component is unlinked in the directory opened. A
    directory is refused (IsADirectoryError); with ``owners``, so is an
    entry whose owner is not one of them (:class:`NotOwned`)."""
    d, name = parent_beneath(folder, rel)
    try:
        st = entry_stat(d, name)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", name)
        _check_owner(st, owners)
        os.unlink(name, dir_fd=d)
    finally:
        os.close(d)


def rmtree_beneath(folder: Union[str, int], rel: Union[str, bytes], errors: Optional[List[str]] = None,
                   owners: Optional[AbstractSet[int]] = None) -> None:
    """Remove the directory ``rel`` below ``folder`` and everything in it,
    through descriptors only: each directory is opened with ``O_NOFOLLOW |
    O_DIRECTORY`` relative to its parent's descriptor and checked to be the
    entry that was listed (device and inode), entries are removed with
    ``unlink(name, dir_fd=...)`` / ``rmdir(name, dir_fd=...)``, and a
    symbolic link inside is removed as a link, never followed. A symbolic
    link at ``rel`` itself, or a folder on the way replaced by one, is
    refused (OSError). Failures inside the tree are appended to ``errors``
    (if given) as text, else raised. (Python 3.9 has no
    ``shutil.rmtree(dir_fd=...)``; this is the same walk.) A folder inside
    on another file system (a mounted volume or share) or another mount of
    the same one (a bind mount: :func:`mount_id`) is left alone, a failure
    in ``errors``: what is mounted there is not the run's. With ``owners``,
    an entry owned by another user is left alone (:class:`NotOwned`; the
    folder itself is refused, one inside is a failure in ``errors``) and so
    are the folders holding it."""
    d, name = parent_beneath(folder, rel)
    try:
        st = entry_stat(d, name)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder (or a symbolic link)", name)
        _check_owner(st, owners)
        _rmtree_at(d, name, st, name, errors, owners)
    finally:
        os.close(d)


def _fail(errors: Optional[List[str]], where: str, e: OSError) -> None:
    if errors is None:
        raise e
    errors.append("%s: %s" % (where, describe(e)))


def mount_id(fd: int) -> Optional[int]:
    """The mount the open ``fd`` is on (Linux ``/proc/self/fdinfo``), or
    None where that cannot be read. A bind mount of a folder of the same
    file system has the device of its parent but a mount of its own."""
    try:
        with open("/proc/self/fdinfo/%d" % fd, "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _rmtree_at(parent: int, name: str, st: os.stat_result, where: str, errors: Optional[List[str]],
               owners: Optional[AbstractSet[int]] = None, parent_mount: Optional[int] = None) -> None:
    try:
        fd = os.open(name, DIR_NOFOLLOW, dir_fd=parent)
    except OSError as e:
        _fail(errors, where, e)
        return
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):  # swapped since it was listed
            _fail(errors, where, Refused("replaced while being removed: left alone"))
            return
        mount = mount_id(fd)
        if parent_mount is not None and mount is not None and mount != parent_mount:  # a bind mount in it
            _fail(errors, where, Refused("another file system mounted here: left alone"))
            return
        with os.scandir(fd) as it:
            entries = [e.name for e in it]
        for child in entries:
            path = where + "/" + child
            try:
                cst = entry_stat(fd, child)
            except FileNotFoundError:
                continue
            except OSError as e:
                _fail(errors, path, e)
                continue
            if owners is not None and cst.st_uid not in owners:
                _fail(errors, path, NotOwned(cst.st_uid))
                continue
            if stat.S_ISDIR(cst.st_mode) and cst.st_dev != fst.st_dev:  # a volume, a share mounted in it
                _fail(errors, path, Refused("another file system mounted here: left alone"))
            elif stat.S_ISDIR(cst.st_mode):
                _rmtree_at(fd, child, cst, path, errors, owners, mount)
            else:
                try:
                    os.unlink(child, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    _fail(errors, path, e)
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError as e:
        _fail(errors, where, e)


def pread_all(fd: int, n: int, offset: int) -> bytes:
    """Up to ``n`` bytes at ``offset`` (fewer only at the end of the file)."""
    chunks = []
    while n > 0:
        got = os.pread(fd, n, offset)
        if not got:
            break
        chunks.append(got)
        n -= len(got)
        offset += len(got)
    return b"".join(chunks)


@contextlib.contextmanager
def folder_lock(folder: str, wait: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` for the ``with`` block,
    waiting at most ``wait`` seconds for it: a lock another user holds on
    and on, or a file system without locks on folders (some network file
    systems), does not stop the caller, who then goes on unlocked."""
    try:
        import fcntl

        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (ImportError, OSError):
        yield
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005)
            except OSError:
                break
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)  # a child forked meanwhile shares the descriptor
        except OSError:
            pass
        os.close(fd)
