"""A live run's progress file parsed without converting its ``history``.

A live file is read again each time it changes (once a second per writer by
default), and most of its numbers are the ``history``: the last values of
each metric (100 per metric by default). A cycle needs none of them (the
table's trend column and the detail screen read them, for the runs they
show), yet converting them is most of the cost of parsing the file, and the
lists made are most of what the garbage collector then scans and frees.

:func:`parse_progress_lazy` gives what :func:`~ttop.progress.parse_progress`
gives (the same keys, values, dropped keys and errors), except that a
``history`` object is checked to be valid JSON without converting its
numbers and kept as its text in a :class:`LazyObject`, a read-only mapping
parsed on first use (an ended run's at once: its data is kept for long). Anything unusual (no ``history`` object, one that is not
at the top level, an error anywhere) takes the plain parse.
"""
from __future__ import annotations

from collections.abc import Mapping

from ..jsonvalues import loads, make_scanner
from ..progress import END_STATUSES, check_progress, parse_progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Iterator, List, Optional, Tuple

#: Scans one JSON value, checking numbers without converting them.
_check_value: Any = make_scanner(parse_float=len)
_KEY = '"history"'
_SPACE = " \t\n\r"  # JSON's white space
#: Put where the history's text was: a string with a NUL, which a file can
#: only spell with the escape ``\u0000`` (a file holding one takes the plain
#: parse, so the mark found at the top level is the one put there).
_MARK = "\x00ttop:history"
_MARK_JSON = '"\\u0000ttop:history"'


class LazyObject(Mapping):
    """A JSON object kept as its text (checked valid), parsed on first use.
    Read-only; equal to the dict it stands for."""

    __slots__ = ("_text", "_value")

    def __init__(self, text: str) -> None:
        self._text = text
        self._value: Optional[Dict[str, Any]] = None

    def parsed(self) -> Dict[str, Any]:
        v = self._value
        if v is None:
            v = self._value = loads(self._text)
        return v

    def __getitem__(self, key: str) -> Any:
        return self.parsed()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.parsed().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.parsed()

    def __iter__(self) -> Iterator[str]:
        return iter(self.parsed())

    def __len__(self) -> int:
        return len(self.parsed())

    def keys(self):  # the dict's views: read-only too
        return self.parsed().keys()

    def items(self):
        return self.parsed().items()

    def values(self):
        return self.parsed().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyObject):
            other = other.parsed()
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.parsed() == (other if isinstance(other, dict) else dict(other.items()))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.parsed())


def parse_progress_lazy(raw: bytes) -> Tuple[Dict[str, Any], List[str]]:
    """:func:`~ttop.progress.parse_progress`, with a top-level ``history``
    object left as a :class:`LazyObject` (see the module docstring)."""
    try:
        fast = _split(raw)
    except Exception:  # any error: the plain parse says which (or finds none)
        fast = None
    return fast if fast is not None else parse_progress(raw)


def _split(raw: bytes) -> Optional[Tuple[Dict[str, Any], List[str]]]:
    text = raw.decode("utf-8")
    i = text.find(_KEY)
    if i < 0 or "\\u0000" in text:
        return None
    a, n = i + len(_KEY), len(text)
    while a < n and text[a] in _SPACE:
        a += 1
    if text[a:a + 1] != ":":
        return None
    a += 1
    while a < n and text[a] in _SPACE:
        a += 1
    if text[a:a + 1] != "{":
        return None
    _value, b = _check_value(text, a)  # valid JSON from a to b (JSONDecodeError otherwise)
    obj = loads(text[:a] + _MARK_JSON + text[b:])
    # the mark at the top level: text[a:b] is the top-level history, and the
    # file is the JSON just parsed with that object in the mark's place
    if type(obj) is not dict or obj.get("history") != _MARK:
        return None
    obj["history"] = {}  # an object, like the one it stands for, while the rest is checked
    data, dropped = check_progress(obj)
    if data["status"] in END_STATUSES:  # an ended run's data is kept for long: parsed whole
        data["history"] = loads(text[a:b])
    else:
        data["history"] = LazyObject(text[a:b])
    return data, dropped
