"""A live run's progress file parsed without converting its ``history``.

(The path where the fast parse, :mod:`ttop.collect.fastjson`, is not taken:
orjson not installed, or a file it leaves to ``json``, such as one holding
NaN.)

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

The check notes where each list of numbers in the history is, so the table's
trend arrow (:meth:`LazyObject.tail`: the last few points of a series) parses
only those points: a live run shown in the table has its history scanned
once per file version, by that check, not parsed whole again for its arrows.

A live file's next version mostly holds the same history shifted: a few
points gone from the start of each series, a few new ones at its end (the
writer keeps the last N). Given the history of the version read before
(``prev``), the check compares the text with the one checked then and checks
only the new points (:func:`_walk_again`); anything else is checked whole.

A short history (:data:`SHORT_HISTORY`: a young run's, or one that keeps few
points) is checked whole by the C scanner instead, which costs less than
either walk; its lists are found when :meth:`LazyObject.tail` first needs them.
A history shorter still (:data:`PLAIN_HISTORY`) takes the plain parse, whose
fixed cost is lower: its history is a dict.
"""
from __future__ import annotations

# (as os.py does: collections.abc would import the collections package, and
# its classes, before the first screen)
from _collections_abc import Mapping

from ..jsonvalues import _scan, loads, make_scanner
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
#: the classes of the values the check makes of numbers (and of NaN / Infinity)
_NUMBER_CLASSES = frozenset((int, float))
_MARK_JSON = '"\\u0000ttop:history"'
#: The numbers of the history texts' points read lately, by their text (a
#: live run's next version shows the same last points but one or two).
_POINTS: Dict[str, Any] = {}
POINTS_KEPT = 4096
#: A history whose text (to the file's end) is shorter than this is checked
#: whole in C (about 50 numbers: a cost below that of :func:`_walk` or
#: :func:`_walk_again`, which pay off for longer ones).
SHORT_HISTORY = 1024
#: A file whose history's text (to the file's end, as for SHORT_HISTORY) is
#: shorter than this takes the plain parse, whose fixed cost is less than the
#: check's (a run's first versions, or one that keeps few points).
PLAIN_HISTORY = 256
#: Most points of a series gone between two versions of a file for
#: :func:`_walk_again` to look for the rest (more: the history is checked whole).
_DROPPED_MAX = 64


class LazyObject(Mapping):
    """A JSON object kept as its text (checked valid), parsed on first use.
    Read-only; equal to the dict it stands for."""

    __slots__ = ("_text", "_value", "_spans", "_at")

    def __init__(self, text: str, spans: Optional[Dict[str, Tuple[int, int, int]]] = None, at: int = 0) -> None:
        self._text = text
        self._value: Optional[Dict[str, Any]] = None
        # see _walk: found by the check that let the text in, as positions
        # in a text of which this one starts at ``at``
        self._spans = spans
        self._at = at

    def tail(self, key: str, n: int) -> Optional[List[Any]]:
        """``self[key][-n:]`` for a list of numbers (``NaN`` and
        ``Infinity`` included), parsing only those ``n`` values: a table's
        trend arrow needs the last few points of a series, not the run's
        whole history. None when ``key`` is missing or not such a list (the
        caller then uses :meth:`get`)."""
        v = self._value
        if v is not None:
            got = v.get(key)
            return got[-n:] if type(got) is list else None
        spans = self._spans
        if spans is None:
            try:
                spans = _walk(self._text, 0)[0]
            except Exception:  # no JSON object: get() says why
                spans = {}
            self._spans = spans
            self._at = 0
        span = spans.get(key)
        if span is None:
            return None
        start, end, count = span
        if n <= 0:
            return None
        if not count:
            return []
        at = self._at
        parts = self._text[start + 1 - at:end - 1 - at].rsplit(",", n)
        if len(parts) > n:
            del parts[0]
        points = _POINTS  # each part one number, as the check found: no more to check
        if len(points) > POINTS_KEPT:
            points.clear()
        out = []
        for p in parts:
            x = points.get(p)
            if x is None:
                x = points[p] = _scan(p.strip(_SPACE), 0)[0]
            out.append(x)
        return out

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


def _walk(text: str, i: int) -> Tuple[Dict[str, Tuple[int, int, int]], int]:
    """Check the JSON object starting at ``text[i]`` (without converting its
    numbers) and say where each of its lists of numbers is: ``({key:
    (start, end, count)}, end of the object)``, the list being
    ``text[start:end]`` (other values left out; a key given twice is the
    last one's, as ``json.loads`` has it). Raises ValueError (or the
    scanner's error) where the text is no JSON object."""
    out: Dict[str, Tuple[int, int, int]] = {}
    space = _SPACE
    check = _check_value
    if text[i] != "{":
        raise ValueError("not an object")
    i += 1
    if text[i] in space:
        i = _skip(text, i)
    if text[i] == "}":
        return out, i + 1
    while True:
        if text[i] != '"':
            raise ValueError("not a key")
        key, i = check(text, i)
        if text[i] in space:
            i = _skip(text, i)
        if text[i] != ":":
            raise ValueError("no colon")
        i += 1
        if text[i] in space:
            i = _skip(text, i)
        start = i
        value, i = check(text, start)
        # numbers only, and the constants NaN / Infinity (no comma inside any
        # of them), as the check made them: an int (a float's length) or a
        # float (a constant); no string, object, inner list, true, false or null
        if type(value) is list and _NUMBER_CLASSES.issuperset(map(type, value)):
            out[key] = (start, i, len(value))
        elif key in out:
            del out[key]
        if text[i] in space:
            i = _skip(text, i)
        c = text[i]
        if c == ",":
            i += 1
            if text[i] in space:
                i = _skip(text, i)
        elif c == "}":
            return out, i + 1
        else:
            raise ValueError("no comma")


def _skip(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    return i


def _walk_again(text: str, a: int, prev: LazyObject) -> Optional[Tuple[Dict[str, Tuple[int, int, int]], int]]:
    """:func:`_walk` of the history object at ``text[a]`` where it is the
    one of ``prev`` (a checked history of the file's last version) with
    each list of numbers shifted: a few points gone from its start, a few
    new ones at its end, everything between the lists as it was. Only the
    new points are checked (the rest is compared with text checked before);
    None where it is not such a history (the caller walks it all)."""
    old, at, spans = prev._text, prev._at, prev._spans
    if spans is None:
        return None
    i = a
    done = 0  # the end of what ``old`` matched so far, in ``old``
    out: Dict[str, Tuple[int, int, int]] = {}
    check = _check_value
    for key, (s, e, count) in sorted(spans.items(), key=_by_start):
        s -= at
        e -= at
        gap = old[done:s]  # e.g. ',"acc":' (with any key or value that is no list of numbers)
        if not text.startswith(gap, i):
            return None
        i += len(gap)
        start = i
        end = text.find("]", i) + 1  # a list of numbers has no "]" but its last
        if end <= 0 or text[i] != "[":
            return None
        body, was = text[i + 1:end - 1].lstrip(_SPACE), old[s + 1:e - 1]
        cut = gone = 0
        while gone < count and gone <= _DROPPED_MAX:  # the old body from after its gone-th comma
            kept = was[cut:].lstrip(_SPACE)
            if body.startswith(kept):
                added = body[len(kept):].lstrip(_SPACE)
                if not added or added[0] == ",":
                    break
            cut = was.find(",", cut) + 1  # there is one: gone < count - 1 here
            gone += 1
        else:
            return None
        n = count - gone
        if added:  # ",x,y": each new point checked
            for part in added[1:].split(","):
                part = part.strip(_SPACE)
                try:
                    value, j = check(part, 0)
                except Exception:
                    return None
                if j != len(part) or type(value) not in _NUMBER_CLASSES:
                    return None
                n += 1
        out[key] = (start, end, n)
        i = end
        done = e
    gap = old[done:]  # to the object's end
    if not text.startswith(gap, i):
        return None
    return out, i + len(gap)


def _by_start(item: Tuple[str, Tuple[int, int, int]]) -> int:
    return item[1][0]


def parse_progress_lazy(raw: bytes, prev: Any = None) -> Tuple[Dict[str, Any], List[str]]:
    """:func:`~ttop.progress.parse_progress`, with a top-level ``history``
    object left as a :class:`LazyObject` (see the module docstring).
    ``prev``: the history of the file's last version, if any: what is the
    same of it is not checked again."""
    try:
        fast = _split(raw, prev if type(prev) is LazyObject else None)
    except Exception:  # any error: the plain parse says which (or finds none)
        fast = None
    return fast if fast is not None else parse_progress(raw)


def _split(raw: bytes, prev: Optional[LazyObject] = None) -> Optional[Tuple[Dict[str, Any], List[str]]]:
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
    spans: Optional[Dict[str, Tuple[int, int, int]]]
    if n - a < PLAIN_HISTORY:
        return None  # the plain parse
    if n - a < SHORT_HISTORY:
        # a short history (a young run's, or one that keeps few points):
        # checked whole by the C scanner, which costs less than finding its
        # lists (done on use: LazyObject.tail) or comparing it with the last
        spans, b = None, _check_value(text, a)[1]
    else:
        again = None if prev is None else _walk_again(text, a, prev)
        spans, b = again or _walk(text, a)  # a valid JSON object from a to b (an error otherwise)
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
        data["history"] = LazyObject(text[a:b], spans, a)
    return data, dropped
