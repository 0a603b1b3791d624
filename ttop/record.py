"""Records: classes of named fields with value equality, without the
``dataclasses`` module.

Creating a dataclass generates and ``exec()``\\s code for its methods, and
``dataclasses`` itself imports ``inspect``: for the snapshot and view types
that every launch of the monitor needs, that was a third of the time to the
first screen. A record class instead declares its fields as annotations, in
order, and writes its ``__init__`` by hand (a test checks that the
parameters are the fields, in the same order)::

    class Point(FrozenRecord):
        x: int
        y: int = 0  # the default lives in __init__; this is documentation only

        def __init__(self, x: int, y: int = 0) -> None:
            self.__dict__.update(x=x, y=y)

:class:`Record` gives ``__eq__`` (same class and equal fields, as a
dataclass compares) and ``__repr__`` (``Point(x=1, y=0)``), and is not
hashable; :class:`FrozenRecord` adds ``__hash__`` and refuses assignment
(:class:`FrozenInstanceError`, an ``AttributeError``), as
``@dataclass(frozen=True)`` does. :func:`replace` and :func:`fields` stand in
for ``dataclasses.replace`` and ``dataclasses.fields``.

The fields live in the instance ``__dict__`` (``__init__`` fills it in one
call); a frozen record's ``__dict__`` may hold caches beside them, which are
neither compared, shown nor copied by :func:`replace`.
"""
from __future__ import annotations

from _operator import attrgetter  # (the C module under operator: its Python half is not imported at start)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Tuple, TypeVar

    R = TypeVar("R", bound="Record")


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) a field of a :class:`FrozenRecord`."""


class Record:
    """Fields (the class's own annotations, in order), value equality and a
    field-by-field ``repr``. Not hashable: see :class:`FrozenRecord`."""

    __slots__ = ()
    #: the field names, in order (set for each subclass from its annotations)
    _fields: Tuple[str, ...] = ()
    #: the fields' values as a tuple, for equality and hashing
    _values: Callable[[Any], Tuple[Any, ...]] = staticmethod(lambda obj: ())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = tuple(cls.__dict__.get("__annotations__", {}))
        cls._fields = names
        if len(names) == 1:
            one = attrgetter(names[0])
            cls._values = staticmethod(lambda obj: (one(obj),))
        elif names:
            cls._values = staticmethod(attrgetter(*names))

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values(self) == self._values(other)
        return NotImplemented

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__qualname__,
                           ", ".join("%s=%r" % (name, getattr(self, name)) for name in self._fields))


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot be assigned after ``__init__``;
    hashable (by its fields, as a frozen dataclass)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError("cannot assign to field %r" % name)

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError("cannot delete field %r" % name)

    def __hash__(self) -> int:
        return hash(self._values(self))


def fields(record: Any) -> Tuple[str, ...]:
    """The field names of a record class or instance, in order."""
    return record._fields


def replace(obj: R, **changes: Any) -> R:
    """A copy of ``obj`` with ``changes`` (as ``dataclasses.replace``: the
    class's ``__init__`` makes it; an unknown name is a TypeError)."""
    cls = type(obj)
    values = {name: getattr(obj, name) for name in cls._fields}
    for name in changes:
        if name not in values:
            raise TypeError("%s has no field %r" % (cls.__qualname__, name))
    values.update(changes)
    return cls(**values)
