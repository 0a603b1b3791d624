"""``ttop FOLDER --serve [ADDR:]PORT``: the latest snapshot as Prometheus
metrics on ``http://ADDR:PORT/metrics``.

The exposition format and the HTTP server are ``prometheus_client``'s: a
custom collector (:class:`SnapshotMetrics`) is registered on a private
``CollectorRegistry`` and turns the collector's latest published
:class:`~ttop.collect.snapshot.Snapshot` into gauge families at scrape time.
Nothing is updated per cycle and no label set outlives the snapshot that
produced it, so every scrape shows one consistent cycle. A scrape only reads
the immutable snapshot: it never waits on, or blocks, the collector thread.

Label cardinality stays bounded: a run is exported while it is RUNNING and for
:data:`ENDED_RETENTION` seconds after ttop first saw it ended (or after its
``ended_at``, for runs that had already ended when ttop started), then it
leaves the endpoint. Series names and labels are documented in
``docs/prometheus.md``.
"""
from __future__ import annotations

import math
import re
import threading
import time
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
)

from ..progress import END_STATUSES, STATUSES, number_or_none
from ..view.text import _CTRL

#: Seconds an ended run stays on the endpoint.
ENDED_RETENTION = 600.0
#: Default address to bind: loopback only (a metrics page names runs, hosts
#: and users; exposing it is the user's explicit choice).
DEFAULT_ADDR = "127.0.0.1"
#: Seconds a connection to the endpoint may last, from its first byte to
#: its last (Prometheus' default scrape timeout): each connection holds a
#: thread, so neither idle ones nor ones that send a byte now and then (any
#: local user can open thousands) may hold it for ever.
CLIENT_TIMEOUT = 10.0
#: Connections served at once, each with its thread: beyond this many, a
#: connection is answered 503 and closed by the accepting thread (a
#: Prometheus server needs one).
MAX_CLIENTS = 16
#: What a connection beyond MAX_CLIENTS is answered.
BUSY_ANSWER = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
               b"ttop: too many connections at once\n")

#: Labels of every run series: ``key`` (the run's key, as in ``--json``: its
#: progress file's name, ``TAG/NAME`` with several folders) keeps two runs
#: that share name, host and owner apart.
RUN_LABELS = ("run", "host", "owner", "key")
HEALTH_LEVELS = {"OK": 0, "WARN": 1, "CRIT": 2}


class ServeError(ValueError):
    """A ``--serve`` value that cannot be used; ``str()`` is the reason."""


def parse_serve(text: str) -> Tuple[str, int]:
    """``"9100"``, ``":9100"``, ``"0.0.0.0:9100"``, ``"[::1]:9100"`` ->
    ``(addr, port)``; the address defaults to 127.0.0.1."""
    text = text.strip()
    addr, sep, port_text = text.rpartition(":")
    if not sep:
        addr, port_text = "", text
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    elif ":" in addr:
        raise ServeError("an IPv6 address must be written in brackets, e.g. [::1]:9100")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ServeError("port must be a number from 1 to 65535, got %r" % port_text)
    return addr or DEFAULT_ADDR, int(port_text)


def _num(value: Any) -> Optional[float]:
    """A finite or non-finite float for a sample, or None (no sample)."""
    if value is None or isinstance(value, str) and value not in ("NaN", "Infinity", "-Infinity"):
        return None
    return number_or_none(value)


def _int(value: Any) -> Optional[int]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def progress_fraction(data: Mapping[str, Any]) -> Optional[float]:
    """How far the run is, 0..1: whole epochs done plus the training phase's
    share of the current epoch when the epoch count is known; else the current
    phase's batch / total. None when neither is known (or a count is beyond
    the float range)."""
    try:
        return _progress_fraction(data)
    except OverflowError:
        return None


def _progress_fraction(data: Mapping[str, Any]) -> Optional[float]:
    epoch, total_epochs = _int(data.get("epoch")), _int(data.get("total_epochs"))
    tb, tt = _int(data.get("train_batch")), _int(data.get("train_total_batches"))
    if data.get("status") == "FINISHED":
        return 1.0
    if epoch is not None and total_epochs:
        within = min(tb / tt, 1.0) if tb is not None and tt else 0.0
        return max(0.0, min((max(epoch - 1, 0) + within) / total_epochs, 1.0))
    b, t = _int(data.get("batch")), _int(data.get("total_batches"))
    if b is not None and t:
        return max(0.0, min(b / t, 1.0))
    return None


def _times(data: Mapping[str, Any], section: str, key: str) -> Optional[float]:
    times = data.get("times")
    sec = times.get(section) if isinstance(times, Mapping) else None
    return _num(sec.get(key)) if isinstance(sec, Mapping) else None


def run_owner(run: Any) -> str:
    """The run's owner (user name, else uid) as a label value; empty when unknown."""
    if run.owner:
        return str(run.owner)
    return "" if run.owner_uid is None else str(run.owner_uid)


class _Family:
    """One gauge family being filled; turned into a GaugeMetricFamily at the end."""

    __slots__ = ("name", "doc", "labels", "samples", "unit")

    def __init__(self, name: str, doc: str, labels: Tuple[str, ...], unit: str = "") -> None:
        self.name, self.doc, self.labels, self.unit = name, doc, labels, unit
        self.samples: List[Tuple[List[str], float]] = []

    def add(self, labels: List[str], value: Optional[float]) -> None:
        number = None if value is None else number_or_none(value)  # an int beyond float range: +-Inf
        if number is not None:
            self.samples.append((labels, number))


#: characters a label value never carries raw (``\n`` is escaped by the
#: text format, a tab is harmless): those the table and the CSV files show
#: as ``?`` (:data:`ttop.view.text._CTRL`: control, zero-width, bidi and
#: line separators): the page is read with curl in terminals, where a
#: right-to-left override turns the rest of the line around, and a carriage
#: return splits a line for some parsers
_LABEL_CTRL = re.compile(_CTRL)


#: Longest label value on the page, in characters: a longer one is cut and
#: ends in "…" (a run's name is on each of its series: a 4 MiB file naming
#: its run with 4 million characters would put a gigabyte on the page).
MAX_LABEL = 256


def _label(value: str) -> str:
    """``value`` as UTF-8-encodable text without control characters (each
    becomes ``?``), of at most :data:`MAX_LABEL` characters: a lone surrogate
    (a non-UTF-8 name read from a file) would otherwise make the whole page
    unrenderable, and an escape sequence in a name anyone who can write the
    folder chose would reach terminals raw."""
    if len(value) > MAX_LABEL:
        value = value[:MAX_LABEL - 1] + "\u2026"
    if not value.isprintable():
        value = _LABEL_CTRL.sub("?", value)
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


def key_label(key: str) -> str:
    """The ``key`` label of a run: its key, or for a key that :func:`_label`
    must change (a file name with control characters or bytes that are not
    UTF-8), the changed text, ``//`` and a digest of the key. Keys are file
    names, chosen by anyone who can write the folder: ``a\x01.json`` and
    ``a\x02.json`` must not both be ``a?`` (two runs with one label set;
    a clean key has at most one ``/``, never ``//``)."""
    shown = _label(key)
    if shown == key:
        return key
    import hashlib

    return "%s//%s" % (shown[:MAX_LABEL - 14], hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:12])


#: The per-run families, in page order: (name, help, extra label or None).
RUN_FAMILIES: Tuple[Tuple[str, str, Optional[str]], ...] = (
    ("ttop_run_status", "1 for the run's effective status, 0 for the others", "status"),
    ("ttop_run_status_inferred", "1 when the status is ttop's inference (process gone)", None),
    ("ttop_run_stale", "1 when the run's heartbeat stopped or its file turned bad", None),
    ("ttop_run_progress_ratio", "How far the run is, 0-1", None),
    ("ttop_run_epoch", "Current epoch", None),
    ("ttop_run_epochs_total", "Number of epochs", None),
    ("ttop_run_batch", "Batch of the current phase", None),
    ("ttop_run_batches_total", "Batches in the current phase", None),
    ("ttop_run_rate_batches_per_second", "Smoothed batches per second (running runs only)", None),
    ("ttop_run_eta_seconds", "Estimated time left for the run (running runs only)", None),
    ("ttop_run_elapsed_seconds", "Time since the run started", None),
    ("ttop_run_heartbeat_age_seconds", "Seconds since the run's last heartbeat", None),
    ("ttop_metric", "Latest value of a metric the run reports", "name"),
    ("ttop_run_cpu_percent", "CPU use of the run's processes, % of one core", None),
    ("ttop_run_memory_bytes", "RAM of the run's processes", None),
    ("ttop_run_gpu_memory_bytes", "GPU memory of the run's processes", None),
    ("ttop_run_processes", "Processes in the run's tree", None),
    ("ttop_run_threads", "Threads in the run's processes", None),
    ("ttop_run_health", "Health verdict: 0 OK, 1 WARN, 2 CRIT", None),
)
_HEARTBEAT = 11  # index of ttop_run_heartbeat_age_seconds: the one value that changes every cycle


#: ``ttop_metric`` series per run at most (as many as a run's CSV columns):
#: a file inventing names, or a model's 10,000 per-class metrics, must not
#: put a series each on the page (a scrape over Prometheus's sample_limit
#: fails whole; every series is kept in its database).
MAX_RUN_METRICS = 256


def run_values(run: Any) -> List[Tuple[int, Optional[str], Any]]:
    """One run's samples: ``(index in RUN_FAMILIES, extra label value or
    None, value)``; a None value is no sample."""
    data = run.data
    out: List[Tuple[int, Optional[str], Any]] = [(0, s, 1 if run.status == s else 0) for s in STATUSES]
    out.append((1, None, 1 if run.status_inferred else 0))
    out.append((2, None, 1 if run.stale else 0))
    out.append((3, None, progress_fraction(data)))
    out.append((4, None, _int(data.get("epoch"))))
    out.append((5, None, _int(data.get("total_epochs"))))
    out.append((6, None, _int(data.get("batch"))))
    out.append((7, None, _int(data.get("total_batches"))))
    if run.status == "RUNNING" and not run.stale:
        out.append((8, None, _num(data.get("rate"))))
        out.append((9, None, _times(data, "run", "remaining")))
    out.append((10, None, _times(data, "run", "elapsed")))
    out.append((_HEARTBEAT, None, run.heartbeat_age))
    metrics = data.get("metrics")
    if isinstance(metrics, Mapping):
        n = 0
        shown: Set[str] = set()
        for name, value in metrics.items():
            v = _num(value)
            if v is None:
                continue
            if n == MAX_RUN_METRICS:  # the first ones, in the file's order
                break
            label = _label(str(name))
            if label in shown:  # "a\x01" and "a\x02" are both "a?": one series, the first
                continue
            shown.add(label)
            n += 1
            out.append((12, label, v))
    if not (run.stale and run.alive is not True):
        # a stale run's resources, unless its processes are seen alive here,
        # are its last sample: not a figure of now for a dashboard to sum
        res = run.resources
        out.append((13, None, res.cpu_percent))
        out.append((14, None, res.rss_bytes))
        out.append((15, None, res.gpu_memory_bytes))
        out.append((16, None, res.num_procs))
        out.append((17, None, res.num_threads))
    out.append((18, None, HEALTH_LEVELS.get(run.health or "")))
    return out


class SnapshotMetrics:
    """A ``prometheus_client`` custom collector over ``get_snapshot()``.

    ``clock`` is the wall clock used for the retention of ended runs.
    """

    def __init__(self, get_snapshot: Callable[[], Any], retention: float = ENDED_RETENTION,
                 clock: Callable[[], float] = time.time) -> None:
        self.get_snapshot = get_snapshot
        self.retention = float(retention)
        self.clock = clock
        self._ended_since: Dict[str, float] = {}
        self._lock = threading.Lock()

    # prometheus_client asks for describe() at registration; returning nothing
    # keeps it from calling collect() then (the snapshot may not exist yet)
    def describe(self) -> Iterable[Any]:
        return []

    def exported_runs(self, snapshot: Any) -> List[Any]:
        """The runs of ``snapshot`` on the endpoint (see the retention rule)."""
        now = self.clock()
        keep: List[Any] = []
        seen: Dict[str, float] = {}
        with self._lock:
            for run in getattr(snapshot, "runs", ()) or ():
                if run.status not in END_STATUSES:
                    keep.append(run)
                    continue
                since = self._ended_since.get(run.key)
                if since is None:
                    ended = _num(run.data.get("ended_at")) or _num(run.data.get("updated_at"))
                    # a clock ahead of ours must not keep a run longer
                    since = min(now, ended) if ended is not None and math.isfinite(ended) else now
                seen[run.key] = since
                if now - since < self.retention:
                    keep.append(run)
            self._ended_since = seen
        return keep

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        snapshot = self.get_snapshot()
        if snapshot is None:
            return
        for fam in self.families(snapshot):
            g = GaugeMetricFamily(fam.name, fam.doc, labels=list(fam.labels), unit=fam.unit)
            for labels, value in fam.samples:
                g.add_metric([_label(v) for v in labels], value)
            yield g

    def families(self, snapshot: Any, with_runs: bool = True) -> List[_Family]:
        """Every family with its samples for ``snapshot`` (no prometheus_client
        needed); ``with_runs=False``: only those before the per-run ones."""
        out: List[_Family] = []

        def fam(name: str, doc: str, labels: Tuple[str, ...] = RUN_LABELS, unit: str = "") -> _Family:
            f = _Family(name, doc, labels, unit)
            out.append(f)
            return f

        info = fam("ttop_snapshot_seq", "Sequence number of the collector cycle these values come from", ())
        info.add([], snapshot.seq)
        fam("ttop_snapshot_timestamp_seconds", "Wall-clock time of that cycle", ()).add([], snapshot.taken_at)
        fam("ttop_collector_cycle_seconds", "How long that collector cycle took", ()).add([], snapshot.cycle_seconds)
        counts = fam("ttop_runs", "Runs in the folder by effective status", ("status",))
        c = snapshot.counts()
        for name in STATUSES:
            counts.add([name], c.get(name, 0))
        fam("ttop_skipped_files", "Files in the folder skipped as unusable", ()).add([], len(snapshot.skipped))

        host = snapshot.host
        hostname = host.hostname if host is not None else ""
        if host is not None:
            fam("ttop_host_cpu_percent", "CPU use of the machine running ttop, 0-100", ("host",)).add(
                [hostname], host.cpu_percent)
            fam("ttop_host_memory_used_bytes", "Used RAM of the machine running ttop", ("host",)).add(
                [hostname], host.mem_used)
            fam("ttop_host_memory_total_bytes", "Total RAM of the machine running ttop", ("host",)).add(
                [hostname], host.mem_total)

        gl = ("host", "gpu", "name", "uuid")
        g_used = fam("ttop_gpu_memory_used_bytes", "GPU memory in use", gl)
        g_total = fam("ttop_gpu_memory_total_bytes", "GPU memory size", gl)
        g_util = fam("ttop_gpu_utilization_percent", "GPU utilisation, 0-100", gl)
        g_temp = fam("ttop_gpu_temperature_celsius", "GPU temperature", gl)
        g_power = fam("ttop_gpu_power_watts", "GPU power draw", gl)
        for g in snapshot.gpus:
            labels = [hostname, str(g.index), g.name or "", g.uuid or ""]
            g_used.add(labels, g.memory_used)
            g_total.add(labels, g.memory_total)
            g_util.add(labels, g.utilization)
            g_temp.add(labels, g.temperature)
            g_power.add(labels, None if g.power_mw is None else g.power_mw / 1000.0)
        tl = ("host", "tpu", "device_id")
        t_used = fam("ttop_tpu_memory_used_bytes", "TPU HBM in use", tl)
        t_total = fam("ttop_tpu_memory_total_bytes", "TPU HBM size", tl)
        t_duty = fam("ttop_tpu_duty_cycle_percent", "TPU duty cycle, 0-100", tl)
        for t in snapshot.tpus:
            labels = [hostname, str(t.index), "" if t.device_id is None else str(t.device_id)]
            t_used.add(labels, t.memory_used)
            t_total.add(labels, t.memory_total)
            t_duty.add(labels, t.duty_cycle)

        if not with_runs:
            return out
        run_fams = [fam(name, doc, RUN_LABELS + ((extra,) if extra else ())) for name, doc, extra in RUN_FAMILIES]
        for run in self.exported_runs(snapshot):
            labels = [run.run_name, run.host or "", run_owner(run), key_label(run.key)]
            for i, extra, value in run_values(run):
                run_fams[i].add(labels + [extra] if extra is not None else labels, value)
        return out


class MetricsPage:
    """The ``/metrics`` page: the text exposition of :class:`SnapshotMetrics`
    exactly as ``prometheus_client``'s ``generate_latest(self.registry)``
    writes it, but written by :class:`~ttop.sinks.promtext.PageWriter` (one
    pass, unchanged runs' lines reused), rendered once per snapshot and
    served from a cache until the next one.

    :meth:`on_publish` (a collector listener) only sets an event; the page is
    re-rendered by this object's own thread while someone is scraping (a
    scrape in the last :attr:`idle_after` seconds), so a scrape normally just
    sends bytes, and neither side waits on the collector's thread.
    """

    def __init__(self, get_snapshot: Callable[[], Any], retention: float = ENDED_RETENTION,
                 clock: Callable[[], float] = time.time, idle_after: float = 300.0) -> None:
        from prometheus_client import CollectorRegistry

        self.get_snapshot = get_snapshot
        self.metrics = SnapshotMetrics(self._pinned_snapshot, retention=retention, clock=clock)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.metrics)
        self.idle_after = idle_after
        self._pinned: Any = None
        from .promtext import PageWriter

        self._writer = PageWriter()
        self._render_lock = threading.Lock()
        self._cache: Tuple[Optional[int], bytes] = (None, b"")
        self._last_scrape = -math.inf
        self._published = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        #: how long the last render took (seconds)
        self.render_seconds = 0.0

    def _pinned_snapshot(self) -> Any:
        return self._pinned

    def page(self) -> bytes:
        """The page for the latest snapshot (rendered now if not cached yet)."""
        self._last_scrape = time.monotonic()
        snapshot = self.get_snapshot()
        if snapshot is None:
            return b""
        seq, body = self._cache
        if seq == snapshot.seq:
            return body
        return self._render(snapshot)

    def _render(self, snapshot: Any) -> bytes:
        with self._render_lock:
            seq, body = self._cache
            if seq == snapshot.seq:
                return body
            t0 = time.perf_counter()
            # the bytes generate_latest(self.registry) would give, written
            # in one pass with each unchanged run's lines reused (promtext)
            body = self._writer.render(self.metrics, snapshot)
            self.render_seconds = time.perf_counter() - t0
            self._cache = (snapshot.seq, body)
            return body

    def on_publish(self) -> None:
        """Collector listener: never blocks (sets an event)."""
        self._published.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ttop-prometheus-render", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._published.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._published.wait()
            self._published.clear()
            if self._stop.is_set():
                break
            if time.monotonic() - self._last_scrape > self.idle_after:
                continue  # nobody is scraping: render on the next scrape
            snapshot = self.get_snapshot()
            if snapshot is not None:
                try:
                    self._render(snapshot)
                except Exception:  # a scrape renders again and reports it
                    pass

    def wsgi_app(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> List[bytes]:
        from prometheus_client import CONTENT_TYPE_LATEST

        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if path not in ("/metrics", "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"ttop serves /metrics\n"]
        try:
            body = self.page()
        except Exception as e:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [("ttop: cannot render metrics: %s\n" % e).encode("utf-8", "replace")]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [b"" if method == "HEAD" else body]


def _cut(request: Any) -> None:
    import socket

    try:
        request.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed already: the request had ended
        pass


def serve(collector: Any, addr: str, port: int, retention: float = ENDED_RETENTION) -> Tuple[Any, MetricsPage]:
    """Serve ``collector.latest`` on ``http://addr:port/metrics`` from a
    daemon thread (``prometheus_client``'s threading WSGI server) and return
    ``(server, page)``; ``server.shutdown()`` stops it. Raises OSError when the
    address cannot be bound."""
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    page = MetricsPage(lambda: collector.latest, retention=retention)

    class _Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
        _slots = threading.BoundedSemaphore(MAX_CLIENTS)

        def process_request(self, request: Any, client_address: Any) -> None:
            if not self._slots.acquire(blocking=False):  # too many at once: answered without a thread
                try:
                    request.setblocking(False)
                    request.send(BUSY_ANSWER)
                except OSError:
                    pass
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:  # no thread started: its slot is free again
                self._slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            # past its time the connection is cut: the handler's read or
            # write returns, and its thread and slot are free again
            cut = threading.Timer(CLIENT_TIMEOUT, _cut, (request,))
            cut.daemon = True
            cut.start()
            try:
                super().process_request_thread(request, client_address)
            finally:
                cut.cancel()
                self._slots.release()

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that hung up: nothing may print over the curses screen

    class _Quiet(WSGIRequestHandler):
        timeout = CLIENT_TIMEOUT

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # nothing may print over the curses screen

    server = make_server(addr, port, page.wsgi_app, _Server, handler_class=_Quiet)
    page.start()
    collector.add_listener(page.on_publish)
    thread = threading.Thread(target=server.serve_forever, name="ttop-prometheus", daemon=True)
    thread.start()
    return server, page
