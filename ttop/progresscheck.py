"""Progress files, reader side: :func:`parse_progress` and
:func:`check_progress` (what :mod:`ttop.progress` also names: it imports
this module on first use of one of them), and the shapes of files found fine
before, which let a live writer's next version be checked by what depends
on its values alone."""
from __future__ import annotations

import math
from _operator import itemgetter  # (the C module under operator: its Python half is not imported at start)

from .progress import (
    _FINE,
    _NUMBER,
    _NUMBER_CLASSES,
    _OPTIONAL_TYPES,
    PROGRESS_FORMAT,
    PROGRESS_FORMAT_PREFIX,
    STATUSES,
    ProgressError,
    _loads,
    _short_str,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Tuple



def _finite(value: Any) -> bool:
    """A number that is a finite float (an int too big for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_progress(raw: bytes) -> Tuple[Dict[str, Any], List[str]]:
    """Parse and validate a progress file's bytes.

    Returns ``(data, dropped)``: ``data`` is the object with every optional
    known key of the wrong type removed, ``dropped`` names those keys (so a
    hand-written file with one odd field still shows). Raises
    :class:`ProgressError` with a one-line reason when the file cannot be used
    at all (not UTF-8, not JSON, not an object, wrong ``format``, a required key
    missing or of the wrong type, an unknown status).
    """
    return check_progress(_loads(raw, "progress"))


#: Files found fine before, by their keys in order: ``(classes of the values,
#: getter of the values that must be finite numbers, the keys)``. A live writer's next
#: version has the same keys and classes; only the values are checked again.
_SHAPES: Dict[Tuple[str, ...], Tuple[Tuple[type, ...], Any, Tuple[str, ...]]] = {}
#: Most shapes kept (the folder is shared: anyone can make new ones).
_MAX_SHAPES = 512


def check_progress(obj: Any) -> Tuple[Dict[str, Any], List[str]]:
    """:func:`parse_progress` of the already parsed JSON value ``obj``."""
    data, dropped, _shape = check_progress_shape(obj)
    return data, dropped


def check_progress_shape(obj: Any, hint: Any = None, finite: bool = False) -> Tuple[Dict[str, Any], List[str], Any]:
    """:func:`check_progress`, plus the known shape the value matched (an
    opaque object standing for its keys, in order, and their values'
    classes), or None where it was checked whole: two values that matched
    the very same shape object have values of the same classes, key by key.
    ``hint``: a shape the value likely has (its file's last version's),
    looked at before the known shapes; ``finite``: every number in ``obj``
    is known finite (orjson's parse: it refuses NaN, the infinities and
    numbers beyond the float range), not summed to see it."""
    if obj.__class__ is dict:
        # the keys and their values' classes as in a file found fine before
        # (a live run's previous version): what depends on the values alone
        # is checked, at C speed, else the whole check below says why
        keys = tuple(obj)
        known = hint if hint is not None and hint[2] == keys else _SHAPES.get(keys)
        if known is not None and known[0] == tuple(map(type, obj.values())):
            # (classes known: format, run_name and status are str, updated_at an int or float)
            if obj["status"] in STATUSES and obj["run_name"] and obj["format"].startswith(PROGRESS_FORMAT_PREFIX):
                if finite:
                    return obj, [], known
                try:
                    # NaN or an infinity anywhere makes the sum one too (a
                    # sum that overflows takes the whole check); summed as
                    # floats from 0.0: an int beyond the float range raises
                    # (added as ints, 10**400 and -10**400 would make 0),
                    # without a float() call per number
                    if math.isfinite(sum(known[1](obj), 0.0)):
                        return obj, [], known
                except OverflowError:
                    pass
    if not isinstance(obj, dict):
        raise ProgressError("not a JSON object")
    fmt = obj.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(PROGRESS_FORMAT_PREFIX):
        raise ProgressError("format is %s, expected %s" % (_short_str(fmt, 40), PROGRESS_FORMAT))
    name = obj.get("run_name")
    if not isinstance(name, str) or not name:
        raise ProgressError("run_name missing or not a string")
    status = obj.get("status")
    if status not in STATUSES:
        raise ProgressError("status is %s, expected one of %s" % (_short_str(status, 40), "/".join(STATUSES)))
    updated = obj.get("updated_at")
    if isinstance(updated, bool) or not isinstance(updated, _NUMBER) or not _finite(updated):
        raise ProgressError("updated_at missing or not a number")
    # the common case, a file whose every known key is fine: one pass over
    # its keys, by exact class (json.loads makes no subclasses)
    fine = _FINE
    for key, value in obj.items():
        classes = fine.get(key)
        if classes is None or value is None:
            continue
        if value.__class__ not in classes or (classes is _NUMBER_CLASSES and not _finite(value)):
            break
    else:
        if obj.__class__ is dict:
            _remember_shape(obj)
        return obj, [], None
    dropped = []
    for key, types in _OPTIONAL_TYPES.items():
        if key not in obj or obj[key] is None:
            continue
        value = obj[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if ok and float in types and not _finite(value):  # NaN, infinities, ints beyond float range
            ok = False
        if not ok:
            dropped.append(key)
            del obj[key]
    return obj, dropped, None


def _remember_shape(obj: Dict[str, Any]) -> None:
    """Note the keys and classes of a file found fine (see :data:`_SHAPES`)."""
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    numbers = ["updated_at"]
    numbers.extend(k for k, v in obj.items() if _FINE.get(k) is _NUMBER_CLASSES and v is not None)
    if len(numbers) == 1:
        numbers.append("updated_at")  # (itemgetter of one key gives the value, not a tuple)
    keys = tuple(obj)
    _SHAPES[keys] = (tuple(map(type, obj.values())), itemgetter(*numbers), keys)
