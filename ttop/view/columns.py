"""Which columns the main table shows, and in which order: the column choice.

A choice is a tuple of ``(key, shown)`` pairs in table order (the Run Name
column is always first and is not part of it). Keys:

* a built-in column's key (``status``, ``rate``, ``cpu``, ... :data:`BUILTIN`);
* ``m:<name>``: the metric ``<name>`` (latest value and trend mark);
* ``metrics`` (:data:`AUTO`): up to 3 metrics the shown runs report,
  loss-like names first, leaving out every metric the choice names itself
  (shown or hidden), so a hidden metric stays hidden.

Host, Health and Cost appear only when they have something to say (runs
from several hosts, a health verdict, prices), wherever the choice puts them.
A built-in key missing from a choice is hidden. :data:`DEFAULT` is the table
as it is without a choice.

The text form (``--columns`` and the config file) is a comma list of names
(:func:`parse`); :func:`to_text` writes a choice back in that form.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Sequence, Tuple

    Choice = Tuple[Tuple[str, bool], ...]
else:
    Choice = tuple


AUTO = "metrics"
METRIC = "m:"
#: The frozen first column; accepted in a list and ignored.
NAME_KEYS = ("name", "run_name")
#: Longest accepted metric name and list (a config file is not trusted).
MAX_NAME = 200
MAX_ITEMS = 500

#: Built-in columns, in the default order, with their titles (the same as
#: ``ttop.view.table``'s; a test keeps them in step).
BUILTIN: Tuple[Tuple[str, str], ...] = (
    ("host", "Host"), ("status", "Status"), ("health", "Health"), ("phase", "Phase"), ("epoch", "Epoch"),
    ("batch", "Batch"), ("rate", "Rate"), (AUTO, "Metrics"), ("run_elapsed", "Run El"),
    ("run_remaining", "Run Rem"), ("run_total", "Run Tot"), ("epoch_elapsed", "Ep El"),
    ("epoch_remaining", "Ep Rem"), ("epoch_total", "Ep Tot"), ("train_elapsed", "Tr El"),
    ("train_remaining", "Tr Rem"), ("train_total", "Tr Tot"), ("val_time", "Val Time"),
    ("val_elapsed", "Val El"), ("val_remaining", "Val Rem"), ("val_total", "Val Tot"), ("cpu", "CPU"),
    ("ram", "RAM"), ("gpu", "GPU"), ("procs", "Procs"), ("threads", "Threads"), ("cost", "Cost"),
    ("pid", "PID"), ("wandb", "Wandb URL"),
)
TITLES: Dict[str, str] = dict(BUILTIN)
DEFAULT: Choice = tuple((k, True) for k, _ in BUILTIN)

#: What the chooser says about a column beside its title.
NOTES: Dict[str, str] = {
    "host": "only with runs from several hosts",
    "health": "once a run has a health verdict",
    "cost": "with --price-hour / --price-gpu-hour",
    AUTO: "up to 3 other metrics, loss first",
}


class ColumnsError(ValueError):
    """A column list that cannot be used: one line, naming the valid names."""


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


#: Accepted spellings of built-in keys: the key and the title (``run-el``,
#: ``Run El``, ``wandb_url``), case-insensitive.
ALIASES: Dict[str, str] = {}
for _k, _t in BUILTIN:
    ALIASES[_norm(_t)] = _k
    ALIASES[_k] = _k
ALIASES["metric"] = AUTO
ALIASES["mem"] = "ram"


def valid_names() -> str:
    return ", ".join(k for k, _ in BUILTIN)


def metric_key(name: str) -> str:
    return METRIC + name


def is_metric(key: str) -> bool:
    return key.startswith(METRIC)


def _key_of(name: str, bare: List[str]) -> Optional[str]:
    """The key ``name`` means: a built-in, ``m:<metric>``, or None for the
    name column. A name that is not a built-in is a metric (``bare`` gets it:
    the caller checks that some run reports it)."""
    if name.startswith(METRIC):
        metric = name[len(METRIC):].strip()
        if not metric:
            raise ColumnsError("%r names no metric (m:NAME)" % name)
        return _metric(metric)
    n = _norm(name)
    if n in NAME_KEYS:
        return None
    if n in ALIASES:
        return ALIASES[n]
    key = _metric(name.strip())
    bare.append(key[len(METRIC):])
    return key


def listable(name: str) -> bool:
    """Whether a list names metric ``name`` as itself: printable, at most
    :data:`MAX_NAME` characters, no space at an end (a run's file may hold
    any name)."""
    return 0 < len(name) <= MAX_NAME and name.isprintable() and name == name.strip()


def _metric(name: str) -> str:
    if not listable(name):
        raise ColumnsError("%r is not a usable metric name" % name[:MAX_NAME])
    return metric_key(name)


def parse(text: str, base: Choice = DEFAULT) -> Tuple[Choice, Tuple[str, ...]]:
    """A comma list of column names (``ps -o`` / ``lsblk -o`` style) as a
    choice, and the names taken as metrics because no built-in has them.

    * ``status,rate,loss,cpu``: exactly these, in this order (the Run Name
      always comes first; ``name`` may be listed and is ignored);
    * ``-cpu,+m:lr``: every item signed: ``base`` (the saved choice or the
      default) with ``cpu`` hidden and metric ``lr`` shown (after the other
      metric columns, or last);
    * in a plain list ``-NAME`` hides a metric from the automatic ones.

    Built-in names are case-insensitive and may be written as titles
    (``run-el``); anything else, or ``m:NAME``, is a metric (case kept).
    Raises :class:`ColumnsError` on an empty list, an empty item or a name
    given twice."""
    items = [p.strip() for p in text.split(",")]
    if not text.strip():
        raise ColumnsError("empty list; columns: %s (or a metric name)" % valid_names())
    for item in items:
        if not item:
            raise ColumnsError("empty name in %r" % text)
    return parse_items(items, base)


def parse_items(items: Sequence[str], base: Choice = DEFAULT) -> Tuple[Choice, Tuple[str, ...]]:
    """:func:`parse` of a list of names (the config file's form, where a
    metric name may hold a comma)."""
    if len(items) > MAX_ITEMS:
        raise ColumnsError("more than %d names" % MAX_ITEMS)
    bare: List[str] = []
    parsed: List[Tuple[str, str]] = []
    seen = set()
    exact = False
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ColumnsError("%r is not a column name" % (item,))
        item = item.strip()
        sign = item[0] if item[0] in "+-" else ""
        if sign and not item[1:].strip():
            raise ColumnsError("%r names no column (%sNAME shows or hides the column NAME)" % (item, sign))
        exact = exact or not sign
        key = _key_of(item[1:] if sign else item, bare)
        if key is None:
            continue
        if key in seen:
            raise ColumnsError("%s given twice" % (key[len(METRIC):] if is_metric(key) else key))
        seen.add(key)
        parsed.append((sign, key))
    if exact:
        return tuple((k, s != "-") for s, k in parsed), tuple(bare)
    out = list(base)
    for sign, key in parsed:
        at = next((i for i, (k, _) in enumerate(out) if k == key), None)
        if at is not None:
            out[at] = (key, sign == "+")
            continue
        if sign == "+" and is_metric(key):
            last = [i for i, (k, _) in enumerate(out) if is_metric(k) or k == AUTO]
            out.insert(last[-1] + 1 if last else len(out), (key, True))
        else:
            out.append((key, sign == "+"))
    return tuple(out), tuple(bare)


def to_items(choice: Choice) -> List[str]:
    """The choice as names that :func:`parse_items` reads back to the same
    choice: in order, hidden ones as ``-name``, metrics as ``m:NAME``
    (``name`` first when nothing is shown, so the list stays exact).

    Left out, so that the rest reads back: metrics whose names a list
    cannot hold (not :func:`listable`), and past :data:`MAX_ITEMS` names the
    last hidden metrics (the chooser lists every metric the runs report)."""
    kept = [(k, s) for k, s in choice if not is_metric(k) or listable(k[len(METRIC):])]
    shown = any(s for _, s in kept)
    over = len(kept) + (0 if shown else 1) - MAX_ITEMS
    if over > 0:
        drop = set([i for i, (k, s) in enumerate(kept) if is_metric(k) and not s][-over:])
        kept = [item for i, item in enumerate(kept) if i not in drop]
    out = [k if s else "-" + k for k, s in kept]
    return out if shown else ["name"] + out


def to_text(choice: Choice) -> str:
    """:func:`to_items` as a comma list (for ``--columns``)."""
    return ",".join(to_items(choice))


def check_metrics(bare: Sequence[str], reported: Sequence[str]) -> Optional[str]:
    """One line when a name that :func:`parse` took for a metric is not one
    the runs report (a typo, most likely), else None."""
    have = set(reported)
    unknown = [b for b in bare if b not in have]
    if not unknown:
        return None
    from .text import clean  # (the names come from the runs' files: no escape reaches the terminal)

    return ("unknown column %s: not a column, and no run reports a metric of that name; columns: %s; "
            "metrics the runs report: %s (m:NAME names a metric no run reports yet)"
            % (", ".join(repr(u) for u in unknown), valid_names(), ", ".join(clean(m) for m in reported[:20]) or "none"))


def named_metrics(choice: Choice) -> List[str]:
    """Metric names the choice names itself (shown or hidden)."""
    return [k[len(METRIC):] for k, _ in choice if is_metric(k)]


def auto_metrics(choice: Choice, ranked: Sequence[str], n: int = 3) -> List[str]:
    """The metrics :data:`AUTO` shows: the first ``n`` of ``ranked`` (the
    metrics the runs report, best first) that the choice does not name, or
    none when AUTO is hidden or absent."""
    if not any(k == AUTO and s for k, s in choice):
        return []
    named = set(named_metrics(choice))
    return [m for m in ranked if m not in named][:n]


def shown_keys(choice: Choice, auto: Sequence[str]) -> List[str]:
    """The keys of the shown columns in order, :data:`AUTO` replaced by the
    metric keys of ``auto`` (before the table drops Host, Health and Cost
    when they have nothing to say)."""
    out: List[str] = []
    for key, shown in choice:
        if not shown:
            continue
        if key == AUTO:
            out.extend(metric_key(m) for m in auto)
        else:
            out.append(key)
    return out


def chooser_items(choice: Choice, auto: Sequence[str], reported: Sequence[str]) -> List[Tuple[str, bool]]:
    """What the column chooser lists: the choice, with the metrics AUTO
    shows now spelled out (ticked) before it and the other metrics the runs
    report (not ticked) after those, so every column can be shown, hidden and
    moved. Applying the list unchanged shows the same table."""
    named = set(named_metrics(choice))
    extra = [m for m in reported if m not in named and m not in auto]
    out: List[Tuple[str, bool]] = []
    placed = False
    for key, shown in choice:
        if key == AUTO:
            out.extend((metric_key(m), True) for m in auto)
            out.extend((metric_key(m), False) for m in extra)
            placed = True
        out.append((key, shown))
    if not placed:
        last = [i for i, (k, _) in enumerate(out) if is_metric(k)]
        at = last[-1] + 1 if last else len(out)
        out[at:at] = [(metric_key(m), False) for m in extra]
    return out


def title(key: str) -> str:
    if is_metric(key):
        return key[len(METRIC):]
    return TITLES.get(key, key)


def move(items: Sequence[Tuple[str, bool]], i: int, step: int) -> Tuple[List[Tuple[str, bool]], int]:
    """``items`` with entry ``i`` moved ``step`` places (clamped); the list
    and the entry's new index."""
    out = list(items)
    if not 0 <= i < len(out):
        return out, i
    j = max(0, min(len(out) - 1, i + step))
    item = out.pop(i)
    out.insert(j, item)
    return out, j
