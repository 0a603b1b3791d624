"""Ended runs kept compactly: a parsed progress file held as its compressed
bytes and parsed again on use."""
from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

from ..progress import parse_progress

#: Parsed archived files kept in memory (the rest are parsed again on use).
PARSED_CACHE = 1024


class ArchivedData(Mapping):
    """A parsed progress file kept as its compressed bytes; parsed again on
    use (the last :data:`PARSED_CACHE` parses are kept). Read-only, like all
    snapshot data. Equal to the dict it stands for."""

    __slots__ = ("_z",)

    def __init__(self, raw: bytes, parsed: Optional[Dict[str, Any]] = None) -> None:
        self._z = zlib.compress(raw, 1)
        if parsed is not None:  # the parse at hand is the first one used
            self._keep(parsed)

    def _keep(self, data: Dict[str, Any]) -> None:
        with _PARSED_LOCK:
            _PARSED[id(self)] = (self, data)  # holding self keeps id(self) unique
            while len(_PARSED) > PARSED_CACHE:
                _PARSED.popitem(last=False)

    def _full(self) -> Dict[str, Any]:
        key = id(self)
        with _PARSED_LOCK:
            hit = _PARSED.get(key)
            if hit is not None:
                _PARSED.move_to_end(key)
                return hit[1]
        data = parse_progress(zlib.decompress(self._z))[0]
        self._keep(data)
        return data

    def __getitem__(self, key: str) -> Any:
        return self._full()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self._full().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._full()

    def __iter__(self) -> Iterator[str]:
        return iter(self._full())

    def __len__(self) -> int:
        return len(self._full())

    def __repr__(self) -> str:
        return "ArchivedData(%r)" % (self._full(),)


_PARSED: "OrderedDict[int, Tuple[ArchivedData, Dict[str, Any]]]" = OrderedDict()
_PARSED_LOCK = threading.Lock()
