"""What a folder scan yields: per progress file a :class:`FileResult`, per
cycle a :class:`ScanResult` (see :mod:`ttop.collect.scan`)."""
from __future__ import annotations

from ..record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Mapping, Optional, Set, Tuple


class FileResult(Record):
    """What the scan knows about one progress file this cycle (read-only once
    returned: an unchanged file gives the same object again). Slotted: one
    object per changed file and cycle, no ``__dict__`` beside it."""

    __slots__ = ("name", "key", "path", "mtime", "data", "dropped", "error", "last_data", "last_dropped",
                 "last_mtime", "uid", "archived", "shape")

    name: str
    key: str
    path: str
    mtime: float
    data: Optional[Mapping[str, Any]]  # current good data (None if error)
    dropped: Tuple[str, ...]
    error: Optional[str]  # why the current contents are unusable
    # last good contents, kept when the file turned bad:
    last_data: Optional[Mapping[str, Any]]
    last_dropped: Tuple[str, ...]
    last_mtime: float
    #: owner of the file the data was read from (fstat of that descriptor;
    #: for a symbolic link owned by someone else, the link's owner); None
    #: where unknown (a custom reader)
    uid: Optional[int]
    #: for an ended file: what to keep of ``data`` (an :class:`ArchivedData`,
    #: or ``data`` itself)
    archived: Optional[Mapping[str, Any]]
    #: the known shape ``data``'s parse matched (ttop.progresscheck.check_progress_shape), or None
    shape: Any

    def __init__(self, name: str, key: str, path: str, mtime: float, data: Optional[Mapping[str, Any]] = None,
                 dropped: Tuple[str, ...] = (), error: Optional[str] = None,
                 last_data: Optional[Mapping[str, Any]] = None, last_dropped: Tuple[str, ...] = (),
                 last_mtime: float = 0.0, uid: Optional[int] = None,
                 archived: Optional[Mapping[str, Any]] = None, shape: Any = None) -> None:
        self.name, self.key, self.path, self.mtime, self.data, self.dropped, self.error = (
            name, key, path, mtime, data, dropped, error)
        self.last_data, self.last_dropped, self.last_mtime, self.uid, self.archived, self.shape = (
            last_data, last_dropped, last_mtime, uid, archived, shape)


def new_result(name: str, key: str, path: str, mtime: float, data: Optional[Mapping[str, Any]],
               dropped: Tuple[str, ...], error: Optional[str], last_good: Optional[Dict[str, Any]] = None) -> FileResult:
    """``FileResult(name=..., ..., error=...)`` without the keyword call (one
    per changed file and cycle); the other fields their defaults. With
    ``last_good`` (the scanner's: a file's last good contents by name, see
    :class:`~ttop.collect.scan.FolderScanner`): a result with ``data`` is
    filed there as the file's last good contents, one without takes them as
    its ``last_*``."""
    r = object.__new__(FileResult)
    r.name = name
    r.key = key
    r.path = path
    r.mtime = mtime
    r.data = data
    r.dropped = dropped
    r.error = error
    r.last_data = None
    r.last_dropped = ()
    r.last_mtime = 0.0
    r.uid = None
    r.archived = None
    r.shape = None
    if last_good is not None:
        if data is not None:
            last_good[name] = r  # (an ended file's: replaced by a tuple of its compact data)
        else:
            last = last_good.get(name)
            if last is not None:
                r.last_data, r.last_dropped, r.last_mtime = (
                    last if last.__class__ is tuple else (last.data, last.dropped, last.mtime))
    return r


class ScanResult(Record):
    files: List[FileResult]  # active files, sorted by name: every cycle
    folder_error: Optional[str]
    reads: int  # files read (and parsed) this cycle
    #: ended files read this cycle (new, or changed and still ended); not
    #: listed again while unchanged
    ended: List[FileResult]
    #: names of ended files that were removed, or rewritten as active
    gone: List[str]
    #: files listed but not read yet (a budgeted first read of a big folder)
    pending: int
    total: int  # progress files in the folder
    notify: bool  # change notification is watching the folder
    indexed: int  # ended files taken from the archive index this cycle
    #: ``(n, names)``: this is the scanner's n-th scan, and ``names`` the
    #: hidden ``*.json`` files (ranks' status files) that local change
    #: notification saw written or removed since the scan before; None: not known
    hidden: Optional[Tuple[int, Set[str]]]

    def __init__(self, files: List[FileResult], folder_error: Optional[str] = None, reads: int = 0,
                 ended: Optional[List[FileResult]] = None, gone: Optional[List[str]] = None, pending: int = 0,
                 total: int = 0, notify: bool = False, indexed: int = 0,
                 hidden: Optional[Tuple[int, Set[str]]] = None) -> None:
        self.__dict__.update(files=files, folder_error=folder_error, reads=reads,
                             ended=[] if ended is None else ended, gone=[] if gone is None else gone,
                             pending=pending, total=total, notify=notify, indexed=indexed, hidden=hidden)
