"""JSON values of the on-disk files: :func:`json_safe` (any value to one
``json.dumps`` accepts with ``allow_nan=False``), :func:`dumps` (strict,
compact JSON), :class:`RawJSON`, and :func:`loads` / :func:`make_scanner`
(``json.loads`` and the decoder's scanner without importing :mod:`json`,
whose import compiles six text patterns: the monitor reads its first
screen's files before it needs json). Re-exported by :mod:`ttop.progress`."""
from __future__ import annotations

import math
import os

# (as os.py does: collections.abc would import the collections package, and
# its classes, before the first screen)
from _collections_abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Tuple

_c_make_scanner: Any
try:
    from _json import make_scanner as _c_make_scanner
except ImportError:  # pragma: no cover - an interpreter without the C accelerator
    _c_make_scanner = None

#: Integers longer than this (about 4200 decimal digits, under Python's
#: int-to-str limit of 4300) are written as "Infinity" / "-Infinity".
_MAX_INT_BITS = 14000


_NONE_TYPE = type(None)
_FLOAT_OR_NONE = frozenset((float, _NONE_TYPE))


def ascii_json(text: str, obj: Any, dump: Any) -> str:
    """``text``, the ASCII-only JSON ``dump(obj)`` wrote, with no lone
    surrogate escape in it: a name read from a file that is not UTF-8, or a
    ``"\\ud800"`` escape in a progress file, is a surrogate code point, which
    ``json.dumps`` writes as ``\\udXXX`` on its own, and strict readers
    (``jq``, serde) refuse the whole document for it. Such code points become
    U+FFFD; ``obj`` is written again only when ``text`` has a ``\\ud``."""
    if "\\ud" not in text:
        return text
    return dump(_valid_unicode(obj))


def _valid_unicode(value: Any) -> Any:
    if isinstance(value, str):
        if value.isascii():
            return value
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    if isinstance(value, Mapping):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_valid_unicode(v) for v in value]
    return value


def json_safe(value: Any, _depth: int = 0) -> Any:
    """Convert ``value`` to something :func:`json.dumps` accepts with
    ``allow_nan=False``.

    Non-finite floats become ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``;
    numpy / torch scalars (anything with ``.item()``) become Python numbers;
    other unknown objects become their ``str()``. Never raises.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:  # json.dumps would refuse its digits
            return "Infinity" if value > 0 else "-Infinity"
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if _depth > 8:
        return short_str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        types = set(map(type, value))
        if types <= _FLOAT_OR_NONE:  # e.g. a metric's history: checked at C speed
            fl = value if _NONE_TYPE not in types else [v for v in value if v is not None]
            total = sum(fl)
            if total - total == 0:  # every float finite (an overflow to inf takes the long way)
                return list(value)
        return [json_safe(v, _depth + 1) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return json_safe(item(), _depth + 1)
        except Exception:
            pass
    try:
        f = float(value)
    except Exception:
        return short_str(value)
    return json_safe(f, _depth + 1)


def short_str(value: Any, limit: int = 200) -> str:
    try:
        text = str(value)
    except Exception:  # RecursionError: a list or object nested about a thousand deep
        text = "<%s>" % type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def short_repr(value: Any, limit: int = 200) -> str:
    """:func:`short_str` of ``repr(value)``: a value read from a file may be
    nested too deeply for ``repr`` (orjson reads 1,024 levels, and ``json``
    up to the recursion limit less the reader's own depth)."""
    try:
        text = repr(value)
    except Exception:
        text = "<%s>" % type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


class RawJSON(str):
    """Text that is already strict, compact JSON (e.g. a value kept encoded
    between writes because only a little of it changes): :func:`dumps` puts
    it in as it is where it is a value of the top-level object."""

    __slots__ = ()


# a marker no other string can be: a random token per process
_RAW_MARK = "\x00ttop-raw-" + os.urandom(8).hex() + "-%d\x00"
#: i -> (the i-th mark, its JSON text), made once (a progress file has one raw value per write)
_MARKS: Dict[int, Tuple[str, str]] = {}


_ATOMS = frozenset((str, float, bool, _NONE_TYPE))


def _plain(value: Any, depth: int = 0) -> bool:
    """True when ``value`` holds only dicts with str keys, lists, tuples,
    str, float, bool, None and ints :func:`json_safe` keeps, no deeper than
    it keeps them: then ``json.dumps`` writes it as it would write
    ``json_safe(value)``, or raises ValueError (a non-finite float)."""
    if depth > 8:
        return False
    t = type(value)
    if t is dict:
        for k in value:
            if type(k) is not str:
                return False
        items: Any = value.values()
    elif t is list or t is tuple:
        items = value
    else:
        return False
    for v in items:
        tv = type(v)
        if tv in _ATOMS:
            continue
        if tv is int:
            if v.bit_length() > _MAX_INT_BITS:
                return False
        elif not _plain(v, depth + 1):
            return False
    return True


_encoder: Any = None


def _encode(obj: Any) -> str:
    global _encoder
    encoder = _encoder
    if encoder is None:  # what json.dumps makes at each call with these settings, made once
        import json

        encoder = _encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    if _plain(obj):  # the common case: no value to convert, checked without a copy
        try:
            return encoder.encode(obj)
        except ValueError:  # NaN or an infinity somewhere
            pass
    return encoder.encode(json_safe(obj))


def dumps(obj: Any) -> str:
    """Strict, compact JSON (no NaN literals): ``json.dumps`` of
    :func:`json_safe` of ``obj``."""
    raws = [k for k, v in obj.items() if type(v) is RawJSON] if type(obj) is dict else None
    if not raws:
        return _encode(obj)
    import json

    obj = dict(obj)
    marks = []
    for i, k in enumerate(raws):
        known = _MARKS.get(i)
        if known is None:
            known = _MARKS[i] = (_RAW_MARK % i, json.dumps(_RAW_MARK % i, ensure_ascii=False))
        marks.append((known[1], str(obj[k])))
        obj[k] = known[0]
    text = _encode(obj)
    for mark, raw in marks:
        text = text.replace(mark, raw, 1)
    return text


def utf8(text: str) -> bytes:
    """``text`` (what :func:`dumps` wrote) as UTF-8, each lone surrogate as
    U+FFFD: a metric or variable named from a file name that is not UTF-8
    (``os.fsdecode``) is one, which UTF-8 cannot hold; the write failed
    every time and the run stayed as first written (no metrics, RUNNING)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _valid_unicode(text).encode("utf-8")


# ---------------------------------------------------------------------------
# reading


class _Settings:
    """What the C scanner reads of a ``json.JSONDecoder``: the default
    decoder's settings (``parse_float`` aside)."""

    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float", "parse_int", "parse_constant")

    def __init__(self, parse_float: Any) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = parse_float
        self.parse_int = int
        # json.decoder's constants: the same values
        self.parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def make_scanner(parse_float: Any = float) -> Any:
    """``json.scanner.make_scanner(json.JSONDecoder(parse_float=...))``:
    ``scan(text, index) -> (value, end)``, raising StopIteration where no
    value starts at ``index``."""
    if _c_make_scanner is None:  # pragma: no cover
        import json.scanner

        decoder: Any = json.JSONDecoder(parse_float=parse_float)
        return json.scanner.make_scanner(decoder)
    settings: Any = _Settings(parse_float)  # duck-typed as a json.JSONDecoder
    return _c_make_scanner(settings)


_scan = make_scanner()
_SPACE = " \t\n\r"  # JSON's white space


def loads(text: str) -> Any:
    """``json.loads(text)`` of a str: the same value, and for text that is
    not one JSON value the same error (json.loads itself says which)."""
    if type(text) is str:
        try:
            value, end = _scan(text, len(text) - len(text.lstrip(_SPACE)))
        except Exception:  # not one JSON value: json.loads says why
            # (StopIteration, or JSONDecodeError; but the C scanner raises
            # that only once json.decoder is imported, and before that a
            # SystemError: "returned NULL without setting an exception")
            pass
        else:
            if end == len(text) or not text[end:].strip(_SPACE):
                return value
    import json

    return json.loads(text)
