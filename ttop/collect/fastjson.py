"""Progress files parsed by orjson: what ``json`` gives, four to seven times faster.

The collector reads every changed progress file each cycle: with a fleet's
1,000 live runs in a shared folder, that is 1,000 files every cycle, and
the standard library's parse is most of the cycle. orjson parses the same
bytes four to seven times faster (it is also a C parser, well kept and
widely used). The collector turns it on (:func:`enable`) for its full
cycles; the first look, which paints the first screen, does not wait for
its import.

Where orjson gives a value, it is the value ``json.loads`` gives, with one
exception: an integer outside ``[-2**63, 2**64)`` becomes the nearest float
(``float(text)``), where ``json`` keeps it exact. No counter, size or time
a run writes is that large (even the time in nanoseconds since 1970 stays
below 2**61 until 2043), and every consumer of a progress file's numbers takes them as
floats or checks that an integer field holds an int (such a value, read
by orjson, is then dropped with the others of the wrong type; the ``json``
path keeps it exact). Finding such integers in the
bytes first would cost more than the parse of a history of numbers (a scan
of every byte that is a digit run's). Anything orjson refuses (NaN and the
infinities, which ``json`` takes; numbers beyond the float range; lone
surrogates; invalid UTF-8; an empty file; nesting deeper than 1,024) is left
to ``json``, whose path says why or gives the value. Nesting is the other
difference: ``json`` stops at Python's recursion limit (about 1,000 levels,
less the caller's depth), orjson at 1,024, so a value nested between the two
is read by orjson where ``json`` says "JSON nested too deeply". ``tests/test_fastjson.py``
checks the two against each other.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

#: Returned by :func:`parse` where the caller's ``json`` path must parse.
NOT_PARSED: Any = object()
_orjson_loads: Optional[Callable[[bytes], Any]] = None
#: What orjson's initialisation imports, imported first by :func:`enable`:
#: where one fails (e.g. a standard library module this user cannot read)
#: orjson crashes the process instead of raising.
_ORJSON_IMPORTS = ("dataclasses", "datetime", "enum", "json", "uuid")


def enable() -> bool:
    """Import orjson (once; about 25 ms: its import pulls in dataclasses and
    json); False where it is not installed, and :func:`parse` then parses
    nothing."""
    global _orjson_loads
    if _orjson_loads is None:
        try:
            for name in _ORJSON_IMPORTS:
                __import__(name)
            from orjson import loads
        except Exception:  # not installed, or any of those not importable
            return False
        _orjson_loads = loads
    return True


def parse(raw: bytes) -> Any:
    """``json.loads(raw.decode("utf-8"))`` by orjson (an integer beyond 64
    bits as a float: see the module docstring), or :data:`NOT_PARSED` where
    orjson is not enabled or refuses the bytes."""
    loads = _orjson_loads
    if loads is None:
        return NOT_PARSED
    try:
        return loads(raw)
    except Exception:  # orjson.JSONDecodeError (a ValueError): json says why, or parses it
        return NOT_PARSED


__all__ = ["NOT_PARSED", "enable", "parse"]
