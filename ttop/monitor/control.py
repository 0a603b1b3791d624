"""Polling the control file (``control_<run>.json``) off the hot path."""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

from ..progress import MAX_CONTROL_BYTES, ProgressError, parse_control, read_capped


class ControlPoller:
    """Re-reads the control file only when its inode, size or mtime changed
    (one ``stat`` per poll otherwise).

    :meth:`poll` returns None when nothing new is there, else ``(seq,
    variables, None)`` for a valid file or ``(None, None, reason)`` for one
    that cannot be used. It never raises.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._sig: Optional[Tuple[int, int, int]] = None

    def _stat(self) -> Optional[Tuple[int, int, int]]:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def skip_existing(self) -> None:
        """Treat whatever control file exists now (left by an earlier run of
        the same name) as already seen."""
        self._sig = self._stat()

    def poll(self) -> Optional[Tuple[Optional[int], Optional[Dict[str, Any]], Optional[str]]]:
        sig = self._stat()
        if sig is None or sig == self._sig:
            if sig is None:
                self._sig = None
            return None
        self._sig = sig
        try:
            raw = read_capped(self.path, MAX_CONTROL_BYTES)
            seq, variables = parse_control(raw)
        except ProgressError as e:
            return None, None, "control file ignored: %s" % e
        except FileNotFoundError:
            self._sig = None
            return None
        except Exception as e:  # permissions, I/O errors, anything odd
            return None, None, "control file ignored: %s: %s" % (type(e).__name__, e)
        return seq, variables, None
