"""Where a run's captured output is, checked to lie inside the progress folder."""
from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Tuple

from .. import progress as P
from ..collect.snapshot import RunSnapshot


def log_files(folder: str, run: RunSnapshot) -> Dict[str, Tuple[Optional[str], str, Optional[str]]]:
    """Where a run's output capture is: ``{"stdout"|"stderr": (path or
    None, path as written, refusal reason or None)}``.

    Paths come from ``logs`` in the progress file (default
    ``<key>.stdout.log`` / ``<key>.stderr.log``); one that does not resolve
    inside the folder (absolute, ``..``, symlink to outside) is refused with a
    reason naming it, and never opened. The path returned is the name as
    written (normalised, inside the folder), not where symbolic links lead:
    readers open it below the folder's descriptor without following links
    (:class:`ttop.logfile.LogFile` with ``folder``), so a name swapped for a
    link after this check is refused, not followed.
    """
    logs = run.data.get("logs")
    defaults = P.log_paths(run.stem)
    out: Dict[str, Tuple[Optional[str], str, Optional[str]]] = {}
    for stream in ("stdout", "stderr"):
        if isinstance(logs, Mapping) and stream in logs:
            rel = logs.get(stream)
        else:
            rel = defaults[stream]
        if rel is None:
            out[stream] = (None, "", "the run has no %s log" % stream)
            continue
        shown = rel if isinstance(rel, str) else P._short_repr(rel)
        real = P.resolve_inside(folder, rel)
        if real is None:
            out[stream] = (None, shown, "refused: %s log %s is not inside the progress folder" % (stream, P._short_str(repr(shown), 120)))
        else:
            out[stream] = (os.path.join(os.path.abspath(folder), os.path.normpath(rel)), shown, None)
    return out
