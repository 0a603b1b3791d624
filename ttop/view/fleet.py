"""The hosts screen (``H``): one line per host of the folder, from
:func:`ttop.collect.fleet.host_summaries`. Pure: summaries + size -> lines."""
from __future__ import annotations

from typing import List, Sequence

from ..collect.fleet import HostSummary
from . import fmt
from . import roles as R
from .text import Line, clean, fit

TITLE = "Hosts  (Enter: show this host's runs, Esc: back)"
COLUMNS = (("Host", 18, "<"), ("Runs", 5, ">"), ("Run", 4, ">"), ("Stale", 5, ">"), ("CPU", 7, ">"),
           ("RAM", 7, ">"), ("GPU", 7, ">"), ("Heartbeat", 10, ">"), ("Clock", 8, ">"), ("", 8, "<"))


def _skew(seconds) -> str:
    if seconds is None:
        return "-"
    if abs(seconds) < 1.0:
        return "ok"
    return ("+" if seconds > 0 else "-") + fmt.duration(round(abs(seconds)))  # an estimate: whole seconds


def host_cells(h: HostSummary) -> List[str]:
    return [
        clean(h.host) + (" (here)" if h.local else ""),
        str(h.runs),
        str(h.running),
        str(h.stale),
        fmt.percent(h.cpu_percent) if h.cpu_percent is not None else "-",
        fmt.size(h.rss_bytes) if h.rss_bytes is not None else "-",
        fmt.size(h.gpu_memory_bytes) if h.gpu_memory_bytes is not None else "-",
        (fmt.duration(h.heartbeat_age) + " ago") if h.heartbeat_age is not None else "-",
        _skew(h.clock_skew),
        "SILENT" if h.silent else "",
    ]


def host_lines(hosts: Sequence[HostSummary], width: int, height: int, selected: int,
               ascii: bool = False) -> List[Line]:
    """Title, column header and one line per host; the selected one is marked
    ``+sel``; a silent host uses the error role. Always ``height`` lines;
    ``ascii``: clipped text ends in ``...``, not an ellipsis character."""
    ell = "..." if ascii else "\u2026"
    out: List[Line] = [((fit(TITLE, width, ellipsis=ell), R.TITLE),)]
    head = " ".join(fit(name, w, align, ell) for name, w, align in COLUMNS)
    out.append(((fit(head, width, ellipsis=ell), R.TITLE),))
    body = max(0, height - len(out))
    top = max(0, min(selected - body + 1, len(hosts) - body)) if selected >= body else 0
    for i, h in enumerate(hosts[top:top + body], start=top):
        text = " ".join(fit(c, w, align, ell) for c, (_n, w, align) in zip(host_cells(h), COLUMNS))
        role = R.ERROR if h.silent else R.NORMAL
        if i == selected:
            role = R.with_mod(role, "sel")
        out.append(((fit(text, width, ellipsis=ell), role),))
    if not hosts:
        out.append(((fit("no runs in the folder", width, ellipsis=ell), R.DIM),))
    while len(out) < height:
        out.append(((" " * width, R.NORMAL),))
    return out[:height]
