"""What a folder scan yields: per progress file a :class:`FileResult`, per
cycle a :class:`ScanResult` (see :mod:`ttop.collect.scan`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Tuple


@dataclass
class FileResult:
    """What the scan knows about one progress file this cycle (read-only once
    returned: an unchanged file gives the same object again)."""

    name: str
    key: str
    path: str
    mtime: float
    data: Optional[Mapping[str, Any]] = None  # current good data (None if error)
    dropped: Tuple[str, ...] = ()
    error: Optional[str] = None  # why the current contents are unusable
    # last good contents, kept when the file turned bad:
    last_data: Optional[Mapping[str, Any]] = None
    last_dropped: Tuple[str, ...] = ()
    last_mtime: float = 0.0
    #: owner of the file the data was read from (fstat of that descriptor;
    #: for a symbolic link owned by someone else, the link's owner); None
    #: where unknown (a custom reader)
    uid: Optional[int] = None
    #: for an ended file: what to keep of ``data`` (an :class:`ArchivedData`,
    #: or ``data`` itself)
    archived: Optional[Mapping[str, Any]] = None


@dataclass
class ScanResult:
    files: List[FileResult]  # active files, sorted by name: every cycle
    folder_error: Optional[str] = None
    reads: int = 0  # files read (and parsed) this cycle
    #: ended files read this cycle (new, or changed and still ended); not
    #: listed again while unchanged
    ended: List[FileResult] = field(default_factory=list)
    #: names of ended files that were removed, or rewritten as active
    gone: List[str] = field(default_factory=list)
    #: files listed but not read yet (a budgeted first read of a big folder)
    pending: int = 0
    total: int = 0  # progress files in the folder
    notify: bool = False  # change notification is watching the folder
    indexed: int = 0  # ended files taken from the archive index this cycle
