"""The table's cell getters: a run's values as cleaned text (for display)
and as raw values (for sorting). Used through :mod:`ttop.view.table`."""
from __future__ import annotations

# (as os.py does: collections.abc would import the collections package, and
# its classes, before the first screen)
import _collections_abc as abc

from . import fmt
from .text import clean

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if type(d) is not dict and not isinstance(d, abc.Mapping):  # typing's isinstance is slow
            return None
        d = d.get(p)
    return d


def _int(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def batch_text(run: Any) -> str:
    """``120/500`` in training, ``v 12/50`` in validation."""
    d = run.data
    phase = (d.get("phase") or "") if isinstance(d.get("phase"), str) else ""
    if phase.strip().lower() in ("validation", "val", "validate", "eval", "evaluation"):
        vb, vt = _int(d.get("val_batch")), _int(d.get("val_total_batches"))
        if vb is None and vt is None:
            vb, vt = _int(d.get("batch")), _int(d.get("total_batches"))
        if vb is None and vt is None:
            return fmt.NA
        return "v " + fmt.fraction(vb, vt)
    tb, tt = _int(d.get("train_batch")), _int(d.get("train_total_batches"))
    if tb is None and tt is None:
        tb, tt = _int(d.get("batch")), _int(d.get("total_batches"))
    return fmt.fraction(tb, tt)


def epoch_text(run: Any) -> str:
    return fmt.fraction(_int(run.data.get("epoch")), _int(run.data.get("total_epochs")))


def status_text(run: Any, ascii: bool = False) -> str:
    s = run.status
    if run.status_inferred:
        s += "*"
    return s


#: fmt.duration of 0 to 59 seconds.
_SECONDS = tuple("%ds" % n for n in range(60))


def _time(section: str, key: str, when: str = "") -> Callable[[Any], str]:
    """The cell of ``times.<section>.<key>``; ``when="live"``: as
    :func:`_live` would show it, ``"proj"``: as :func:`_projection` would
    (one function, not a chain of them: 12 such cells per row)."""
    live, proj = when == "live", when == "proj"
    duration = fmt.duration

    def cell(run: Any) -> str:
        if (live or proj and run.reported_status == "RUNNING") and (run.status != "RUNNING" or run.stale):
            return fmt.NA
        try:  # _get(run.data, "times", section, key): a missing key or a value that is no object gives None
            v = run.data["times"][section][key]
        except (KeyError, TypeError):
            v = None
        if type(v) is float and 0.0 <= v < 86400.0:  # duration()'s usual values, in one call less
            n = int(v)
            if n < 3600:
                return _SECONDS[n] if n < 60 else "%dm%02ds" % divmod(n, 60)
            return "%dh%02dm" % divmod(n // 60, 60)
        return fmt.NA if v is None else duration(v)

    return cell


def _live(getter: Callable[[Any], str]) -> Callable[[Any], str]:
    """Rate and time left only mean something for a run that is running now:
    an ended, inferred-KILLED or stale run shows ``-`` there, never the last
    figures it reported (a dead job must not look alive)."""
    return lambda run: getter(run) if run.status == "RUNNING" and not run.stale else fmt.NA


def _projection(getter: Callable[[Any], str]) -> Callable[[Any], str]:
    """A total is elapsed + remaining: a projection while the run reports
    RUNNING. Once the run says it ended, the total is what it took; if ttop
    inferred its death, or its heartbeat stopped, the projection never came
    true and is not shown."""
    live = _live(getter)
    return lambda run: live(run) if run.reported_status == "RUNNING" else getter(run)


#: A resource cell before the run's processes were looked up (the first screen).
PENDING = "\u2026"


def pending(run: Any) -> bool:
    """True for a run shown before its processes were looked up (the first
    screen): its resources and health verdict are on their way."""
    return getattr(getattr(run, "resources", None), "source", None) == "pending"


def _res(attr: str, f: Callable[[Any], str]) -> Callable[[Any], str]:
    return lambda run: PENDING if pending(run) else f(getattr(run.resources, attr, None))


def _phase(run: Any) -> str:
    p = run.data.get("phase")
    return clean(p) if isinstance(p, str) and p else fmt.NA


def _wandb(run: Any) -> str:
    u = _get(run.data, "links", "wandb")
    return clean(u) if isinstance(u, str) and u else fmt.NA


def wandb_url(run: Any) -> Optional[str]:
    """The run's W&B link (cleaned), or None."""
    u = _get(run.data, "links", "wandb")
    return clean(u) if isinstance(u, str) and u else None


def _host(run: Any) -> str:
    return clean(run.host) if run.host else fmt.NA


def _time_v(section: str, key: str) -> Callable[[Any], Any]:
    return lambda run: _get(run.data, "times", section, key)


def _live_v(getter: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda run: getter(run) if run.status == "RUNNING" and not run.stale else None


def _projection_v(getter: Callable[[Any], Any]) -> Callable[[Any], Any]:
    live = _live_v(getter)
    return lambda run: live(run) if run.reported_status == "RUNNING" else getter(run)


def _res_v(attr: str) -> Callable[[Any], Any]:
    return lambda run: getattr(run.resources, attr, None)


def _batch_v(run: Any) -> Any:
    d = run.data
    for k in ("train_batch", "batch"):
        v = _int(d.get(k))
        if v is not None:
            return v
    return None
