"""Entries about the run objects of the snapshots drawn lately (see
:class:`Kept`), for the table's caches (:mod:`ttop.view.table`)."""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple


class Kept:
    """Entries about run objects (each holds its run, so the id in its key
    stays that run's while the entry lives), kept for the runs drawn from
    the last two snapshots (and those drawn again since): a live run is a
    new object in each snapshot, and an entry for one that is off the
    screen would only keep it (its file's data, its processes) alive."""

    __slots__ = ("new", "old", "seq", "most")

    def __init__(self, most: int = 4096) -> None:
        self.most = most  # entries of the newest snapshot kept at most
        self.new: Dict[Any, Tuple[Any, Any]] = {}
        self.old: Dict[Any, Tuple[Any, Any]] = {}
        self.seq: Optional[int] = None

    def turn(self, snapshot: Any) -> None:
        """A snapshot newer than any drawn so far: what the one before the
        last needed goes."""
        seq = getattr(snapshot, "seq", None)
        if type(seq) is int and (self.seq is None or seq > self.seq):
            self.seq = seq
            self.old, self.new = self.new, {}

    def get(self, key: Any, run: Any) -> Any:
        hit = self.new.get(key)
        if hit is None:
            hit = self.old.get(key)
            if hit is not None and hit[0] is run:
                self.new[key] = hit
        return hit[1] if hit is not None and hit[0] is run else None

    def put(self, key: Any, run: Any, value: Any) -> None:
        if len(self.new) > self.most:
            self.new.clear()
        self.new[key] = (run, value)

    def clear(self) -> None:
        self.new.clear()
        self.old.clear()
