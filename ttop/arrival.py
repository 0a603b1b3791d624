"""Lines of several logs in the order ttop saw them arrive (no curses here);
read through :class:`ttop.logfile.LogFile`, shown with its display rules."""
from __future__ import annotations

from typing import List, Optional, Tuple

from .logfile import LogFile, display_text, last_state


class ArrivalLog:
    """Lines of several logs in the order ttop saw them arrive.

    Capture files carry no timestamps, so the order in which lines of two
    files were written cannot be recovered afterwards. This records what is
    knowable: from the moment it is created, each :meth:`poll` reads the bytes
    each file gained since the previous poll and appends their complete lines,
    labelled with their stream. Lines that arrived between the same two polls
    are only ordered within their own stream (the first stream's lines come
    first). Memory is bounded: the last ``max_lines`` lines are kept, each cut
    to ``max_chars`` characters, and at most ``max_bytes`` per stream per poll
    are read (the rest is skipped, and a line says how much).
    """

    def __init__(self, paths: "List[Tuple[str, Optional[str]]]", max_lines: int = 10000,
                 max_bytes: int = 1024 * 1024, max_chars: int = 2000, folder: Optional[str] = None,
                 owner: Optional[int] = None) -> None:
        import collections

        self.files = [(name, LogFile(path, folder=folder, owner=owner) if path else None) for name, path in paths]
        self.offsets: List[int] = []
        self.partial: List[bytes] = []
        self.lines: "collections.deque[Tuple[str, str]]" = collections.deque(maxlen=max_lines)
        self.max_bytes = max_bytes
        self.max_chars = max_chars  # longer lines are cut (memory stays bounded)
        self.total = 0  # lines appended so far (including those dropped from the front)
        for _name, f in self.files:
            if f is not None:
                f.refresh()
            self.offsets.append(f.size if f is not None else 0)
            self.partial.append(b"")

    def poll(self) -> int:
        """Read what arrived; returns the number of new lines."""
        added = 0
        for i, (name, f) in enumerate(self.files):
            if f is None:
                continue
            change = f.refresh()
            if change == "reset":
                self.offsets[i] = 0
                self.partial[i] = b""
                self._add(name, "(%s was truncated or replaced: reading the new file from its start)" % name, "note")
                added += 1
            size = f.size
            start = self.offsets[i]
            if size <= start:
                continue
            if size - start > self.max_bytes:
                skipped = size - self.max_bytes - start
                self._add(name, "(%d bytes of %s skipped: more than %d arrived at once)" % (skipped, name, self.max_bytes), "note")
                added += 1
                start = size - self.max_bytes
                self.partial[i] = b""
            try:
                with f._open() as fh:  # the descriptor refresh() checked, not the path again
                    fh.seek(start)
                    data = fh.read(size - start)
            except OSError:
                continue
            self.offsets[i] = start + len(data)
            data = self.partial[i] + data
            parts = data.split(b"\n")
            rest = parts.pop()
            if len(rest) > f.back_limit:  # a giant line without its end yet
                parts.append(rest)
                rest = b""
            self.partial[i] = rest
            for raw in parts:
                text = display_text(last_state(raw)[: 4 * self.max_chars])
                if len(text) > self.max_chars:
                    text = text[: self.max_chars - 1] + "\u2026"
                self._add(name, text, "line")
                added += 1
        return added

    def _add(self, stream: str, text: str, kind: str) -> None:
        self.lines.append((stream if kind == "line" else "note", text))
        self.total += 1
