"""Reading and parsing one progress file for the folder scan
(:mod:`ttop.collect.scan`): the I/O (opened once without following a link,
read through that descriptor, its ``fstat`` kept) and the parse, with the
reason when either fails."""
from __future__ import annotations

from ..progress import ProgressError, check_progress_shape, parse_progress
from . import fastjson
from .lazyjson import parse_progress_lazy
from .readfile import os_error_reason, read_progress_at, read_progress_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from typing import Any, Callable, Dict, Optional, Tuple

    Read = Tuple[Optional[Dict[str, Any]], Tuple[str, ...], Optional[str], Optional[os.stat_result], bool, bytes, Any]


def read_file(reader: Callable[[str, int], bytes], path: str, dfd: int, name: str, limit: int, live: bool,
              last: Any = None) -> Read:
    """``(data, dropped, error, fst, linked, raw, shape)`` of the file ``name`` in
    the folder open as ``dfd``: ``fst`` is the ``fstat`` of the descriptor
    read (None with a custom ``reader``, or when it could not be opened),
    ``linked`` whether ``name`` is a symbolic link (True: not known),
    ``shape`` the known shape its parse matched (see
    :func:`~ttop.progresscheck.check_progress_shape`; None: none).
    ``live``: the file was live when last read (its history is parsed on
    use; ``last``: the last version's :class:`~ttop.collect.fileresult.FileResult`,
    or None: its history's unchanged part is not checked again, its shape
    is looked at first). Raises FileNotFoundError
    (removed: the caller forgets it)."""
    try:
        if reader is read_progress_bytes:
            raw, fst, linked = read_progress_at(dfd, name, limit)
        else:
            raw, fst, linked = reader(path, limit), None, True  # linked not known: link_owner looks
    except ProgressError as e:
        return None, (), str(e), None, True, b"", None
    except FileNotFoundError:
        raise
    except OSError as e:
        return None, (), os_error_reason(e), None, True, b"", None
    return parse_file(raw, fst, linked, live, last)


def parse_file(raw: bytes, fst: Optional[os.stat_result], linked: bool, live: bool, last: Any = None) -> Read:
    """:func:`read_file` of bytes already read."""
    try:
        obj = _NOT_PARSED
        loads = fastjson._orjson_loads  # (fastjson.parse, inline: once per file read)
        if loads is not None:
            try:
                obj = loads(raw)
            except Exception:  # orjson.JSONDecodeError (a ValueError): json says why, or parses it
                pass
        shape = None
        if obj is not _NOT_PARSED:  # (orjson's: every number finite) of the last version's shape, likely
            data, dropped, shape = check_progress_shape(obj, last.shape if last is not None else None, True)
        elif live:  # a file live when last read is likely live still: its history is parsed on use
            ld = last.data if last is not None else None
            data, dropped = parse_progress_lazy(raw, ld.get("history") if ld is not None else None)
        else:
            data, dropped = parse_progress(raw)
    except ProgressError as e:
        return None, (), str(e), fst, linked, b"", None
    except Exception as e:  # parse_progress should not raise anything else
        return None, (), "cannot parse: %s" % type(e).__name__, fst, linked, b"", None
    return data, tuple(dropped) if dropped else (), None, fst, linked, raw, shape


_NOT_PARSED = fastjson.NOT_PARSED

__all__ = ["parse_file", "read_file"]
