"""The parts of a run's snapshot that depend only on its file (:class:`_Static`),
and the fast construction of a :class:`~ttop.collect.snapshot.RunSnapshot`."""
from __future__ import annotations

import math
import time
from _operator import itemgetter  # (the C module under operator: its Python half is not imported at start)

from ..progress import KILLED, RUNNING, pid_namespace
from ..record import fields, replace
from .owners import _LOST_PREFIX, _foreign_note, user_name
from .scan import FileResult
from .snapshot import RunResources, RunSnapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AbstractSet, Any, Callable, Dict, List, Mapping, Optional, Tuple

if TYPE_CHECKING:
    from .procs import ProcessTable

#: Floor of the heartbeat limit, seconds.
MIN_STALE_SECONDS = 10.0
#: The heartbeat limit is this many heartbeat (or collector) intervals.
STALE_INTERVALS = 3.0
#: A file's ``heartbeat_interval`` counts up to this many seconds (the
#: writer's own interval is under an hour): a file claiming 1e308 must not
#: keep its run from going stale for ever.
MAX_HEARTBEAT_INTERVAL = 3600.0


#: The wall clock was set when it moved this many seconds more (or less)
#: than the boot-time clock between two cycles.
CLOCK_STEP_SECONDS = 1.0


class ClockWatch:
    """Tells when the wall clock was set, by comparing it with ``elapsed``
    (default: the boot-time clock, which counts a suspend as the wall clock
    does and is never set).

    Heartbeats and health samples are timed on the wall clock (they are
    shown as dates and compared with the files' stamps); when it is set (an
    NTP step, an administrator, a virtual machine resumed) the collector
    moves them by the step, so a step back does not keep a silent run fresh
    for as long as the step, nor a step ahead make every run stale at once."""

    __slots__ = ("elapsed", "last")

    def __init__(self, elapsed: Optional[Callable[[], float]] = None) -> None:
        boot = getattr(time, "CLOCK_BOOTTIME", None)
        self.elapsed = elapsed or (time.monotonic if boot is None else (lambda: time.clock_gettime(boot)))
        self.last: Optional[Tuple[float, float]] = None

    def step(self, now: float) -> float:
        """The seconds the wall clock (``now``) was set by since the last
        call; 0.0 for none."""
        last = self.last
        el = self.elapsed()
        self.last = (now, el)
        if last is None:
            return 0.0
        step = (now - last[0]) - (el - last[1])
        return step if abs(step) > CLOCK_STEP_SECONDS else 0.0


def _fmt_age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % (seconds // 60)
    if seconds < 172800:
        return "%d h" % (seconds // 3600)
    return "%d days" % (seconds // 86400)


def heartbeat_limit(data: Mapping[str, Any], interval: float) -> float:
    hb: Any = data.get("heartbeat_interval")
    limit = STALE_INTERVALS * interval
    if limit < MIN_STALE_SECONDS:
        limit = MIN_STALE_SECONDS
    cls = hb.__class__
    if (cls is float or cls is int or isinstance(hb, (int, float)) and cls is not bool) and hb > 0:
        hb = STALE_INTERVALS * (hb if hb < MAX_HEARTBEAT_INTERVAL else MAX_HEARTBEAT_INTERVAL)
        if hb > limit:
            limit = hb
    return limit


def _num(value: Any) -> Optional[float]:
    c = value.__class__
    if c is float:  # the usual case: finite unless NaN or an infinity
        return value if value - value == 0.0 else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        if not math.isfinite(value):  # an int beyond the float range raises
            return None
    except OverflowError:
        return None
    return value


def _int(value: Any) -> Optional[int]:
    if value.__class__ is int and 0 <= value <= _INT_FAST:  # the usual case (a bool's class is bool)
        return value
    v = _num(value)
    return int(v) if v is not None and v >= 0 else None


_INT_FAST = 1 << 62  # far within the float range (a bigger int takes _num's checks)
assert RunResources._fields == ("cpu_percent", "rss_bytes", "gpu_memory_bytes", "tpu_memory_bytes", "num_procs",
                                "num_threads", "sampled_at", "source", "ram_measure", "ram_sampled_at")


def reported_resources(data: Mapping[str, Any]) -> RunResources:
    """The file's own ``resources`` sample, wrong-typed values ignored."""
    res = data.get("resources")
    if not isinstance(res, dict):
        return RunResources()
    get = res.get
    # the usual values (a finite float, an int in range, nothing) taken as
    # they are; any other through _num / _int, which say the same of these
    cpu = get("cpu_percent")
    if cpu.__class__ is not float or cpu - cpu != 0.0:
        cpu = _num(cpu)
    rss = get("rss_bytes")
    gpu, tpu, procs, threads = get("gpu_memory_bytes"), get("tpu_memory_bytes"), get("num_procs"), get("num_threads")
    at = get("sampled_at")
    # RunResources(cpu_percent=..., ...) without the keyword call (a fleet's
    # runs sample every few seconds: hundreds per cycle); its fields in order
    obj = object.__new__(RunResources)
    obj.__dict__.update({
        "cpu_percent": float(cpu) if cpu is not None and cpu >= 0 else None,
        "rss_bytes": rss if rss.__class__ is int and 0 <= rss <= _INT_FAST else _int(rss),
        "gpu_memory_bytes": gpu if gpu is None or gpu.__class__ is int and 0 <= gpu <= _INT_FAST else _int(gpu),
        "tpu_memory_bytes": tpu if tpu is None or tpu.__class__ is int and 0 <= tpu <= _INT_FAST else _int(tpu),
        "num_procs": procs if procs.__class__ is int and 0 <= procs <= _INT_FAST else _int(procs),
        "num_threads": threads if threads.__class__ is int and 0 <= threads <= _INT_FAST else _int(threads),
        "sampled_at": at if at.__class__ is float and at - at == 0.0 else _num(at),
        "source": "reported",
        "ram_measure": _measure(get("ram_measure")) if rss is not None else None,
        "ram_sampled_at": None,
    })
    return obj


def _measure(value: Any) -> str:
    return value if value in ("rss", "pss", "pss+rss") else "rss"  # older writers: the RSS sum


def _float(v: Any) -> Optional[float]:
    """``v`` as a finite float, or None (a bool, a non-number, NaN, an infinity)."""
    if v.__class__ is float:  # the usual case
        return v if v - v == 0.0 else None
    n = _num(v)
    return None if n is None else float(n)


def set_facts(facts: Any, data: Mapping[str, Any]) -> None:
    """What the health samples take from a file version (see
    :class:`~ttop.collect.recent.RecentSamples`), set on ``facts``:
    ``progress``, ``batch``, ``rate``, ``metrics``, ``updated_at``. Worked
    out once per version, by the run's :class:`_Static` (or, for a caller
    of ``RecentSamples`` that gives none, by its own ``_FileFacts``).
    Spelled out in :func:`static_of` too, for a live run's next version."""
    get = data.get
    batch = get("batch")
    facts.batch = batch if batch.__class__ is int or isinstance(batch, int) and not isinstance(batch, bool) else None
    facts.progress = (get("phase"), get("epoch"), batch, get("train_batch"), get("val_batch"))
    r = get("rate")
    facts.rate = r if r.__class__ is float and r - r == 0.0 else _float(r)  # (a finite float: the usual case)
    m = get("metrics")
    facts.metrics = m if m.__class__ is dict or isinstance(m, dict) else {}
    u = get("updated_at")
    facts.updated_at = u if u.__class__ is float and u - u == 0.0 else _float(u)


_NO_RESOURCES = RunResources()
#: ``(name, run)`` pairs' sort key, in C
_first = itemgetter(0)
_MY_PIDNS = pid_namespace()


class _Static:
    """The parts of a run's snapshot that depend only on its file."""

    __slots__ = ("data", "file_error", "me", "key", "path", "dropped", "mtime", "reported", "host", "local",
                 "pid", "pid_create_time", "lookup_pid", "updated", "hb_limit", "run_name",
                 "_reported", "template", "simple", "owner_uid", "beat", "started", "ident", "classes",
                 "resources", "progress", "batch", "rate", "metrics", "updated_at", "shape", "getter", "sident")
    key: str
    path: str
    reported: str
    host: str
    local: bool
    pid: Optional[int]
    pid_create_time: Optional[float]
    lookup_pid: Optional[int]
    run_name: str
    simple: bool
    started: float
    template: Dict[str, Any]
    ident: Any
    classes: Any
    me: str
    file_error: Optional[str]
    owner_uid: Optional[int]
    getter: Any  # an itemgetter of the identity values present (with shape), or None
    # what the health samples take (set_facts)
    progress: Any
    batch: Optional[int]
    rate: Optional[float]
    metrics: Any
    updated_at: Optional[float]

    def __init__(self, fr: FileResult, data, dropped, mtime, file_error, me: str, interval: float,
                 prev: Optional["_Static"] = None) -> None:
        self.data = data
        self.file_error = file_error
        self.me = me
        self.dropped = tuple(dropped)
        self.mtime = mtime
        self.updated = float(data["updated_at"])
        self.hb_limit = heartbeat_limit(data, interval)
        self.owner_uid = owner_uid = getattr(fr, "uid", None)
        self.beat = self.updated  # ttop's time of the last heartbeat change; set by static_of
        self.ident = values = tuple(map(data.get, _IDENT_KEYS))
        self.classes = tuple(map(type, values))  # 1 == 1.0 == True: the classes count too
        self.shape = fr.shape if data is fr.data else None  # (the known shape of data's parse)
        self._take_shape(data)
        self.resources = res = data.get("resources")
        self._reported: Optional[RunResources] = None  # see reported_resources
        if prev is not None and res == prev.resources:
            # a writer samples its resources less often than it writes (5 s
            # vs 1 s by default): the same sample is not converted again
            self._reported = prev._reported
        archived = fr.archived if fr.archived is not None and data is fr.data else data
        # (a live run's next version, where only its numbers moved, is taken by renew)
        self.key = fr.key
        self.path = fr.path
        self.reported = data["status"]
        host = data.get("host")
        # same host name but another PID namespace (a container sharing the
        # host's name, e.g. host networking): its PIDs mean nothing here
        ns = data.get("pid_namespace")
        self.local = (host is None or host == me) and (ns is None or _MY_PIDNS is None or ns == _MY_PIDNS)
        self.host = host if host is not None else me
        pid = data.get("pid")
        self.pid = pid if isinstance(pid, int) else None
        ct = data.get("pid_create_time")
        self.pid_create_time = float(ct) if isinstance(ct, (int, float)) and not isinstance(ct, bool) else None
        self.lookup_pid = self.pid if (self.local and self.pid is not None and self.pid > 0) else None
        self.run_name = str(data.get("run_name") or fr.key.rpartition("/")[2])
        self.simple = self.lookup_pid is None and self.reported != RUNNING and file_error is None
        started = _num(data.get("started_at"))
        self.started = float(started) if started is not None else -math.inf
        set_facts(self, data)
        self.template = {
            "key": self.key,
            "path": self.path,
            "data": archived,
            "run_name": self.run_name,
            "reported_status": self.reported,
            "host": self.host,
            "local": self.local,
            "pid": self.pid,
            "pid_create_time": self.pid_create_time,
            "file_error": file_error,
            "dropped_keys": self.dropped,
            "mtime": mtime,
            "owner_uid": owner_uid,
            "owner": user_name(owner_uid) if owner_uid is not None else None,
        }
        self.template.update(_DYNAMIC_DEFAULTS)  # every field: a snapshot's dict is a copy of it (_new_run)

    def _take_shape(self, data: Mapping[str, Any]) -> None:
        """The getter of the identity values present in a file of this
        version's known shape, and their values (see :meth:`renew`)."""
        getter = None
        if self.shape is not None:
            present = [k for k in _IDENT_KEYS if k in data]
            if len(present) > 1:  # (itemgetter of one key gives the value, not a tuple)
                getter = itemgetter(*present)
        self.getter = getter
        self.sident = getter(data) if getter is not None else None
        if getter is None:
            self.shape = None  # (no getter: renew compares every identity value)

    @property
    def reported_resources(self) -> RunResources:
        """The file's own ``resources`` sample, converted when first asked
        for: a live local run's are its processes' (looked up), so its own
        sample, rewritten with most versions, is mostly never needed."""
        r = self._reported
        if r is None:
            r = self._reported = reported_resources(self.data)
        return r

    def renew(self, fr: FileResult, data, dropped, mtime, interval: float) -> bool:
        """Take the file's next version in place when only its numbers moved
        (a live run rewriting its file; the caller checked ``file_error`` and
        ``me``): no new object, and the template, of which each snapshot
        made a copy, is updated. False: more than the numbers changed (the
        caller makes a new one)."""
        get = data.get
        shape = fr.shape if data is fr.data else None
        if shape is not None and shape is self.shape:
            # the same known shape as the last version (the same keys, their
            # values of the same classes): the identity values present, in one call
            if (self.getter(data) != self.sident or fr.key != self.key or fr.path != self.path
                    or fr.uid != self.owner_uid):
                return False
        else:
            values = (get("status"), get("host"), get("pid_namespace"), get("pid"), get("pid_create_time"),
                      get("run_name"), get("started_at"), get("heartbeat_interval"))  # (_IDENT_KEYS)
            if (values != self.ident or fr.key != self.key or fr.path != self.path
                    or getattr(fr, "uid", None) != self.owner_uid):
                return False
            if tuple(map(type, values)) != self.classes:  # 1 == 1.0 == True: the classes count too
                return False
            self.shape = shape
            self._take_shape(data)
        # (ident, classes and hb_limit, worked out from equal values, stay)
        res = get("resources")
        if res != self.resources:
            self._reported = None
        self.resources = res
        self.data = data
        self.dropped = dropped = tuple(dropped)
        self.mtime = mtime
        self.updated = float(data["updated_at"])
        set_facts(self, data)
        t = self.template
        t["data"] = fr.archived if fr.archived is not None and data is fr.data else data
        t["dropped_keys"] = dropped
        t["mtime"] = mtime
        return True


#: What _Static works out from the file besides its numbers (all of it, when these are as before).
_IDENT_KEYS = ("status", "host", "pid_namespace", "pid", "pid_create_time", "run_name", "started_at",
               "heartbeat_interval")  # (spelled out in _Static.renew)


_TEMPLATE_KEYS = frozenset(("key", "path", "data", "run_name", "reported_status", "host", "local", "pid",
                            "pid_create_time", "file_error", "dropped_keys", "mtime", "owner_uid", "owner"))
_DYNAMIC_KEYS = frozenset(("status", "status_inferred", "status_reason", "alive", "stale", "stale_reason",
                           "heartbeat_age", "resources", "processes", "gpu_note", "ownership_note",
                           "health", "health_reason", "gpu_utilization", "cost", "cost_projected",
                           "ranks"))  # from RecentSamples
#: The dynamic fields in the order _new_run set them before (a snapshot's
#: ``__dict__`` keeps that order); the values it sets are overwritten, the others stay.
_DYNAMIC_DEFAULTS = {"status": None, "status_inferred": False, "status_reason": None, "alive": None, "stale": False,
                     "stale_reason": None, "heartbeat_age": None, "resources": None, "processes": (),
                     "gpu_note": None, "ownership_note": None, "health": None, "health_reason": None,
                     "gpu_utilization": None, "cost": None, "cost_projected": None, "ranks": ()}
assert frozenset(_DYNAMIC_DEFAULTS) == _DYNAMIC_KEYS
# The fast path only while it sets exactly RunSnapshot's fields (a field added
# to snapshot.py later falls back to the constructor and its defaults).
_FAST_NEW = (
    "__slots__" not in RunSnapshot.__dict__
    and frozenset(fields(RunSnapshot)) == _TEMPLATE_KEYS | _DYNAMIC_KEYS
)


def static_of(statics: Dict[str, _Static], fr: FileResult, me: str, now: float, interval: float) -> Optional[_Static]:
    """What a run's file says, worked out once per file version (kept in
    ``statics`` by name: the collector's, from cycle to cycle).

    The heartbeat is timed on ttop's own clock: ``beat`` is when ttop saw
    ``updated_at`` change (at first sight: the file's modification time,
    on this machine's or the file server's clock), so a writer whose
    clock runs ahead still goes stale when it stops, and one whose clock
    runs behind is fresh while it writes."""
    if fr.data is not None:
        data, dropped, mtime, file_error = fr.data, fr.dropped, fr.mtime, None
    elif fr.last_data is not None:
        data, dropped, mtime, file_error = fr.last_data, fr.last_dropped, fr.last_mtime, fr.error
    else:
        return None
    cached = statics.get(fr.name)
    if cached is not None and cached.file_error == file_error and cached.me == me:
        if cached.data is data:
            return cached
        beat = cached.updated
        shape = fr.shape
        if (shape is not None and shape is cached.shape and file_error is None
                and cached.getter(data) == cached.sident and fr.key == cached.key and fr.path == cached.path
                and fr.uid == cached.owner_uid):
            # a live run's next version of the same known shape (its identity
            # values as before): renew and set_facts inline (1,000 a cycle)
            get = data.get
            res = get("resources")
            if res != cached.resources:
                cached._reported = None
            cached.resources = res
            cached.data = data
            cached.dropped = dropped = dropped if dropped.__class__ is tuple else tuple(dropped)
            cached.mtime = mtime
            u = data["updated_at"]  # (an int or a finite float: its shape's)
            cached.updated = u if u.__class__ is float else float(u)
            batch = get("batch")
            cached.batch = batch if batch.__class__ is int or isinstance(batch, int) and not isinstance(batch, bool) else None
            cached.progress = (get("phase"), get("epoch"), batch, get("train_batch"), get("val_batch"))
            r = get("rate")
            cached.rate = r if r.__class__ is float and r - r == 0.0 else _float(r)
            m = get("metrics")
            cached.metrics = m if m.__class__ is dict or isinstance(m, dict) else {}
            cached.updated_at = u if u.__class__ is float and u - u == 0.0 else _float(u)
            t = cached.template
            t["data"] = fr.archived if fr.archived is not None else data
            t["dropped_keys"] = dropped
            t["mtime"] = mtime
            if cached.updated != beat:
                cached.beat = now
            return cached
        if cached.renew(fr, data, dropped, mtime, interval):  # the file's next version, in place
            if cached.updated != beat:
                cached.beat = now
            return cached
    st = _Static(fr, data, dropped, mtime, file_error, me, interval, cached)
    if cached is None:
        st.beat = min(now, mtime) if mtime else now
    elif cached.updated == st.updated:
        st.beat = cached.beat
    else:
        st.beat = now
    statics[fr.name] = st
    return st


def _new_run(template, status, inferred, reason, alive, stale, stale_reason, age, resources, processes,
             note, ownership_note=None) -> RunSnapshot:
    """``RunSnapshot(**template, status=..., ...)`` without a call with 31
    keyword arguments (1,000 runs per cycle add up). Every field is always set, so the result equals the
    normal constructor's (a test checks it). ``template`` holds every field
    (the dynamic ones with :data:`_DYNAMIC_DEFAULTS`): copied into the new
    object's empty ``__dict__`` in one piece (the table cloned, not 31
    insertions), then the dynamic fields overwritten in place."""
    if _FAST_NEW:
        obj = object.__new__(RunSnapshot)
        d = obj.__dict__
        d.update(template)
        d["status"] = status
        d["status_inferred"] = inferred
        d["status_reason"] = reason
        d["alive"] = alive
        d["stale"] = stale
        d["stale_reason"] = stale_reason
        d["heartbeat_age"] = age
        d["resources"] = resources
        d["processes"] = processes
        d["gpu_note"] = note
        d["ownership_note"] = ownership_note
        return obj  # (health, health_reason, gpu_utilization, cost, cost_projected, ranks: the defaults)
    fixed = {k: v for k, v in template.items() if k in _TEMPLATE_KEYS}  # pragma: no cover
    return RunSnapshot(status=status, status_inferred=inferred, status_reason=reason, alive=alive,  # pragma: no cover
                       stale=stale, stale_reason=stale_reason, heartbeat_age=age, resources=resources,
                       processes=processes, gpu_note=note, ownership_note=ownership_note, **fixed)


#: ttop.collect.procs, imported with the first process lookup: it brings
#: psutil, which the first screen (:meth:`Collector.first_look`) does without
_procs: Any = None


def _load_procs() -> Any:
    global _procs
    if _procs is None:
        from . import procs

        _procs = procs
    return _procs


def _wants(fn: Callable[[str], bool], key: str) -> bool:
    try:
        return bool(fn(key))
    except Exception:  # a reader's bug must not break a cycle
        return True


def run_snapshot(
    st: _Static,
    now: float,
    table: Optional["ProcessTable"],
    gpu_mem: Mapping[int, Optional[int]],
    gpu_indices,
    tpu_mem: Mapping[int, int],
    gpu_note: Optional[str],
    mains: AbstractSet[int] = frozenset(),
    refusal: Optional[str] = None,
    threads: Any = False,
) -> RunSnapshot:
    """A run's snapshot this cycle: its file's view (``st``) checked against
    its processes (``table``; None: not looked up), with their resources.
    ``threads``: whether to read the run's threads (a bool, or a function of
    the run's key)."""
    reported = st.reported
    if st.simple:  # ended, nothing to look up, file fine: only the age changes
        return _new_run(st.template, reported, False, None, None, False, None, now - st.beat,
                        _NO_RESOURCES, (), None)
    if reported == RUNNING and st.lookup_pid is None and refusal is None and st.file_error is None and _FAST_NEW:
        # another host's live run (or one with no PID to look up): its own
        # resources sample, stale by its heartbeat alone. While that is
        # fresh, the other fields are the template's defaults (what the
        # general path below gives: not inferred, alive unknown, not stale,
        # no processes, no notes): three are set
        age = now - st.beat
        if age <= st.hb_limit:
            obj = object.__new__(RunSnapshot)
            d = obj.__dict__
            d.update(st.template)
            d["status"] = reported
            d["heartbeat_age"] = age
            d["resources"] = st._reported or st.reported_resources
            return obj
    status = reported
    inferred = False
    status_reason = None
    stale = False
    stale_reason = None
    pid = st.lookup_pid
    age = now - st.beat
    alive: Optional[bool] = None
    processes: Tuple = ()
    resources = _NO_RESOURCES
    note = None

    if pid is not None and table is not None:
        _procs = _load_procs()
        state, _actual = table.identify(pid, st.pid_create_time)
        if state == _procs.ALIVE and refusal is not None:
            # the process exists but is not this file's to claim (another
            # user's), or another file claims it too and wins: nothing of
            # it is shown, counted or offered for signals here. Another
            # user's process says nothing of this run: alive stays None.
            if refusal.startswith(_LOST_PREFIX):
                alive = True
        elif state == _procs.ALIVE:
            alive = True
            foreign: List[Tuple[int, Optional[int]]] = []
            want = threads
            table.threads = want if want is True or want is False else _wants(want, st.key)
            plist = table.tree(pid, gpu_mem, gpu_indices, tpu_mem, mains, st.owner_uid, foreign)
            processes = tuple(plist)
            resources = _procs.totals(plist, now, _procs.tree_pss(table, plist), table.clock())
            note = gpu_note
            if foreign:
                refusal = _foreign_note(foreign, st.owner_uid)
        elif state != _procs.UNKNOWN:
            alive = False
            if reported == RUNNING:  # says it runs, but its process is not there
                status, inferred = KILLED, True
                if state == _procs.GONE:
                    status_reason = "process %d is gone" % pid
                elif state == _procs.ZOMBIE:
                    status_reason = "process %d has exited" % pid
                else:
                    status_reason = "PID %d now belongs to another process" % pid
            elif st.file_error is None:  # ended and gone: the common case, kept cheap
                return _new_run(st.template, reported, False, None, False, False, None, age,
                                _NO_RESOURCES, (), None)
    if alive and resources.cpu_percent is None and st.reported_resources.cpu_percent is not None:
        # first look at the process (no CPU % yet without a second one):
        # the run's own recent sample of its tree stands in for the total
        sampled = st.reported_resources.sampled_at
        if sampled is not None and now - sampled <= st.hb_limit:
            resources = replace(resources, cpu_percent=st.reported_resources.cpu_percent)
    if alive is None and refusal is None:
        # remote, or local but unverifiable: the run's own sample (converted once per sample)
        resources = st._reported or st.reported_resources
    if status == RUNNING and alive is not False and age > st.hb_limit:
        stale, stale_reason = True, "no heartbeat for %s" % _fmt_age(age)
    if st.file_error is not None:
        stale = True
        stale_reason = "file unreadable (%s); showing its last good contents" % st.file_error
    if alive is None and status != RUNNING:
        # the run's own last sample describes processes that have ended:
        # showing it would make a finished job look busy. (A RUNNING run
        # whose heartbeat stopped keeps it, marked stale.)
        resources = _NO_RESOURCES
    return _new_run(st.template, status, inferred, status_reason, alive, stale, stale_reason, age,
                    resources, processes, note, refusal)
