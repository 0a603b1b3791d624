"""Command line: ``ttop [FOLDER ...] [options]``. Wiring only: the arguments
are read by :mod:`ttop.cliargs`.

Modes: the curses monitor (default), ``--once`` (print one snapshot as a table
and exit), ``--once --json`` (the same as JSON), ``--headless`` (CSV only, until
SIGINT/SIGTERM).

Exit status: 0 success (the monitor: whatever ``run_ui`` returns, 128+N when
ended by signal N); 1 unexpected internal error (one line on stderr;
``TTOP_DEBUG=1`` shows the traceback); 2 bad arguments or a missing/unreadable
folder (one line on stderr); 130 interrupted by Ctrl+C in ``--once``.
"""
from __future__ import annotations

import errno
import os
import sys

from ._version import __version__  # noqa: F401 (re-exported)
from .cliargs import (  # noqa: F401 (re-exported)
    DEFAULT_CSV_DIR,
    DEFAULT_FOLDER,
    DEFAULT_INTERVAL,
    GIB,
    MAX_NUMBER,
    MIN_INTERVAL,
    build_parser,
    health_config,
    parse_args,
    prices_from,
)
from .termsize import drop_huge_size_env, once_width

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import IO, Any, Callable, List, Optional, Sequence

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A problem with what the user asked for: one line, exit 2."""


# ---------------------------------------------------------------------------
# wiring


def check_folder(folder: str) -> None:
    """Raise UsageError with one line if ``folder`` is not a readable folder."""
    if not os.path.exists(folder):
        raise UsageError("folder %s does not exist (pass the folder your runs write their progress files to)" % folder)
    if not os.path.isdir(folder):
        raise UsageError("%s is not a folder" % folder)
    try:
        with os.scandir(folder) as it:
            next(it, None)
    except OSError as e:
        raise UsageError("cannot read folder %s: %s" % (folder, e.strerror or e)) from None


def check_folders(args: argparse.Namespace, stderr: IO[str]) -> None:
    """Expand globs in the folder arguments (``args.folders``). One folder:
    as :func:`check_folder`. Several: each that is missing or unreadable is
    one line on ``stderr`` and the others are watched; UsageError when none
    is usable."""
    folders = list(getattr(args, "folders", None) or [args.folder])
    if len(folders) == 1 and not any(c in folders[0] for c in "*?["):
        check_folder(folders[0])
        return
    from .collect.folders import expand_folders

    notes: List[str] = []
    found, problems = expand_folders(folders, notes)
    # folder names a glob matched were chosen by whoever could write their parent: never raw
    from .view.text import clean

    stderr.write("".join("ttop: %s\n" % clean(line) for line in notes))
    good = []
    for f in found:
        try:
            check_folder(f)
            good.append(f)
        except UsageError as e:
            problems.append(str(e))
    if not good:
        raise UsageError("; ".join(problems) or "no folder to watch")
    for line in problems:
        stderr.write("ttop: %s; watching the others\n" % clean(line))
    # a folder missing at the start is left out (it would change the tags);
    # one that goes away later is reported each cycle while the others go on
    args.folders = good
    args.folder = good[0]


def make_budgets(args: argparse.Namespace) -> Any:
    """Budgets from --max-cpus/--max-ram/--max-gpu (GiB), or None."""
    from .collect.host import budgets_from_args

    return budgets_from_args(args.max_cpus, args.max_ram, args.max_gpu)


def make_collector(args: argparse.Namespace) -> Any:
    from .collect.collector import Collector

    # --once: one cycle, nothing watched or archived for later (nor read:
    # the files whose rows are kept, args.skip_files)
    folders = getattr(args, "folders", None) or [args.folder]
    return Collector(folders if len(folders) > 1 else folders[0], interval=args.interval, budgets=make_budgets(args),
                     health=getattr(args, "health_config", None), single=bool(getattr(args, "once", False)),
                     prices=getattr(args, "prices", None), skip=getattr(args, "skip_files", None))


def make_alerts(args: argparse.Namespace, collector: Any, stderr: Optional[IO[str]]) -> Any:
    """Alerts (``--events``, ``--alert-cmd``) listening to ``collector``, or
    None; problems are reported on ``stderr`` (None: only to the monitor)."""
    events, cmd = getattr(args, "events", None), getattr(args, "alert_cmd", None)
    if not events and not cmd:
        return None
    from .sinks.alerts import Alerts, stream_reporter

    try:
        alerts = Alerts(events, cmd, timeout=args.alert_timeout)
    except OSError as e:
        raise UsageError("cannot append to events file %s: %s" % (events, e.strerror or e)) from None
    if stderr is not None:
        alerts.on_error.append(stream_reporter(stderr))
    collector.add_listener(alerts.listener(collector))
    return alerts


def make_sink(args: argparse.Namespace, stderr: Optional[IO[str]]) -> Any:
    """The CSV sink; its write errors go to ``stderr`` (None: only kept in
    ``sink.last_error``, as under the curses UI)."""
    from .sinks.csv import CsvSink
    from .sinks.headless import ErrorReporter

    csv_dir = args.csv_dir if args.csv_dir is not None else DEFAULT_CSV_DIR
    interval = args.csv_interval if args.csv_interval is not None else args.interval
    try:
        return CsvSink(csv_dir, interval, on_error=None if stderr is None else ErrorReporter(stderr))
    except OSError as e:
        raise UsageError("cannot use CSV folder %s: %s" % (csv_dir, e.strerror or e)) from None


def use_color(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set or TERM=dumb."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def read_config(args: argparse.Namespace, stderr: Optional[IO[str]]) -> Any:
    """Read the config file once: ``(columns, bare, notice)``, the column
    choice (``--columns`` over the saved one), the ``--columns`` names taken
    as metrics, and, on ``args.prices``, the saved prices under the
    ``--price-*`` flags. Problems with the file go to ``stderr`` (None: they
    are returned as ``notice``, for the monitor's footer)."""
    from .config import column_choice as choose
    from .config import load, saved_prices
    from .view.columns import ColumnsError

    loaded = load()
    try:
        choice, problem, bare = choose(getattr(args, "columns", None), loaded)
    except ColumnsError as e:
        raise UsageError("--columns: %s" % e) from None
    saved, price_problem = saved_prices(loaded)
    if saved is not None:
        args.prices = prices_from(args, saved)
    notice = "; ".join(p for p in (problem, price_problem) if p) or None
    if notice and stderr is not None:
        stderr.write("ttop: %s\n" % notice)
        notice = None
    return choice, bare, notice


def run_once(args: argparse.Namespace, stdout: IO[str], stderr: Optional[IO[str]] = None,
             done: Optional[Callable[[int], None]] = None) -> int:
    """Print one snapshot; ``done(status)``, when given, is called once all
    is written, while the snapshot is still held (the command exits there)."""
    # 10,000 runs' data and rows are many containers and no cycles: the
    # cyclic garbage collector would scan them again and again for nothing
    import gc

    paused = gc.isenabled()
    gc.disable()
    try:
        return _run_once(args, stdout, stderr, done or (lambda status: None))
    finally:
        if paused:
            gc.enable()


def exit_at_once(status: int) -> None:
    """The ``ttop --once`` command's end: everything is printed and saved,
    so exit without taking 10,000 runs' objects apart one by one (a tenth
    of the command's time there); if the output cannot be flushed, return
    so that the caller reports it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        return
    os._exit(status)


def _run_once(args: argparse.Namespace, stdout: IO[str], stderr: Optional[IO[str]],
              done: Callable[[int], None]) -> int:
    columns, bare, _ = read_config(args, stderr or sys.stderr)
    if args.json:
        from .sinks.jsonout import write_json

        snapshot = _once_snapshot(args, bare)
        write_json(snapshot, stdout, columns=columns)
        done(EXIT_OK)
        return EXIT_OK
    from .sinks.once import print_once, wants_ascii
    from .sinks.oncecache import CacheUnusable, OnceCache

    ascii = True if args.ascii else wants_ascii(stdout)
    folders = getattr(args, "folders", None) or [args.folder]
    # the rows of ended runs an earlier --once kept: those files are not read
    cache = OnceCache(folders[0], ascii, (getattr(args, "health_config", None), getattr(args, "prices", None))) \
        if OnceCache.wanted(folders) else None
    try:
        snapshot = _once_snapshot(args, bare, cache)
        print_once(snapshot, stdout, width=once_width(stdout), color=use_color(stdout), ascii=ascii, columns=columns,
                   cells_of=cache.cells_of if cache is not None else None)
    except CacheUnusable:  # raised before anything was printed: again without them, kept anew
        assert cache is not None
        cache.forget()
        print_once(_once_snapshot(args, bare, cache), stdout, width=once_width(stdout), color=use_color(stdout),
                   ascii=ascii, columns=columns, cells_of=cache.cells_of)
    stdout.flush()
    if cache is not None:
        cache.save()
    done(EXIT_OK)
    return EXIT_OK


def _once_snapshot(args: argparse.Namespace, bare: Any, cache: Any = None) -> Any:
    args.skip_files = cache.skip if cache is not None else None
    collector = make_collector(args)
    try:
        # one cycle: a run's CPU % is its writer's own recent sample (a
        # process seen once has no CPU % of its own yet), the host's is
        # measured since the collector was made
        snapshot = collector.collect()
    finally:
        stop = getattr(collector, "close", None) or getattr(collector, "stop", None)
        if stop is not None:
            try:
                stop()
            except Exception:
                pass
    if snapshot.folder_error:
        raise UsageError(snapshot.folder_error)
    if cache is not None:
        snapshot = cache.merge(snapshot, collector)
    if bare:
        from .view.columns import check_metrics
        from .view.oncetable import once_metrics

        problem = check_metrics(bare, once_metrics(snapshot.runs, 500))
        if problem:
            raise UsageError("--columns: " + problem)
    return snapshot


def start_serving(args: argparse.Namespace, collector: Any) -> Any:
    """Start the Prometheus endpoint when ``--serve`` was given; returns the
    server (or None). A port that cannot be bound is a UsageError."""
    if getattr(args, "serve", None) is None:
        return None
    try:
        from .sinks.prometheus import serve
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise UsageError("--serve needs the prometheus_client package (%s)" % e) from None
    addr, port = args.serve_addr
    try:
        server, _page = serve(collector, addr, port)
    except OSError as e:
        raise UsageError("cannot serve metrics on %s:%d: %s" % (addr, port, e.strerror or e)) from None
    return server


def stop_serving(server: Any) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


def run_headless_mode(args: argparse.Namespace, stderr: IO[str]) -> int:
    from .collect.readfile import set_process_gc
    from .sinks.headless import run_headless

    set_process_gc()  # (--headless's own process)
    read_config(args, stderr)  # the saved prices
    serve_only = args.serve is not None and args.csv_dir is None and args.csv_interval is None
    sink = None if serve_only else make_sink(args, stderr)
    collector = make_collector(args)
    collector.add_listener(_GcAfterFirstCycle(pause=False))
    alerts = make_alerts(args, collector, stderr)
    server = start_serving(args, collector)
    try:
        return run_headless(collector, sink, stderr=stderr,
                            serving=serve_url(*args.serve_addr) if server is not None else None)
    finally:
        stop_serving(server)
        if alerts is not None:
            alerts.close()


class _GcAfterFirstCycle:
    """Cyclic garbage collection off until the collector thread publishes
    its first full cycle (after the first paint): the first screen's
    imports, snapshot and render make many objects and no cyclic garbage,
    which the collector would traverse again and again before the screen is
    up (~4 % of the work to it). A collector listener; :meth:`restore` when
    the monitor ends first.

    At that first publish, what exists then (the modules, classes and
    functions of start-up, ~100k objects, which live as long as the
    monitor) is moved out of every later collection (``gc.freeze``): the
    collections that follow traverse only what was made since. Before, the
    first collections of the two older generations went over all of it
    (6.5M instructions in one collection, more than a whole cycle of the
    monitor), and each later full collection did again. ``pause=False``
    (``--headless``): collection stays on; only the freeze."""

    __slots__ = ("_on",)

    def __init__(self, pause: bool = True) -> None:
        import gc

        self._on = gc.isenabled()
        if pause:
            gc.disable()

    def restore(self) -> None:
        if self._on:
            import gc

            self._on = False
            gc.enable()

    def __call__(self) -> None:
        if self._on:
            import gc

            from .collect.readfile import set_process_gc

            gc.freeze()
            set_process_gc()  # (the monitor's own process)
            self.restore()


def run_ui_mode(args: argparse.Namespace, stderr: IO[str]) -> int:
    gc_paused = _GcAfterFirstCycle()
    try:
        return _run_ui_mode(args, stderr, gc_paused)
    finally:
        gc_paused.restore()


def _run_ui_mode(args: argparse.Namespace, stderr: IO[str], gc_paused: Callable[[], None]) -> int:
    try:
        from .ui.app import run_ui  # the only place curses is imported
    except ImportError as e:
        if e.name not in ("curses", "_curses"):
            raise
        raise UsageError("the monitor needs Python's curses module, missing here (%s); --once and --headless work without it" % e) from None
    columns, bare, notice = read_config(args, None)
    drop_huge_size_env()  # curses would size its screens by them
    sink = None
    if args.csv_interval is not None or args.csv_dir is not None:
        sink = make_sink(args, None)  # nothing may print over the curses screen
    collector = make_collector(args)
    collector.add_listener(gc_paused)
    if sink is not None:
        collector.add_listener(sink.listener(collector))
    alerts = make_alerts(args, collector, None)  # nothing may print over the curses screen
    server = start_serving(args, collector)
    try:
        return int(run_ui(collector, ascii=args.ascii, alerts=alerts, bell=args.bell,
                          columns=columns, check_metrics=bare, notice=notice) or 0)
    finally:
        try:
            collector.stop(timeout=5)
            stop_serving(server)
            if alerts is not None:
                alerts.close()
        finally:
            if sink is not None:
                sink.close()
                if sink.last_error:
                    stderr.write("ttop: CSV: %s\n" % sink.last_error)


def _guard_stdout() -> None:
    """Make printing survive odd locales (unencodable characters replaced),
    and a closed stderr (None for Python: messages then go nowhere)."""
    if sys.stderr is None:
        try:
            sys.stderr = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


def serve_url(addr: str, port: int) -> str:
    """The metrics page's URL (an IPv6 address in brackets)."""
    return "http://%s:%d/metrics" % ("[%s]" % addr if ":" in addr else addr, port)


#: Errors writing --once's output that are the output's fault, not ttop's.
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EBADF, errno.EROFS)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``ttop`` command and ``python -m ttop``; returns
    the exit status."""
    args = parse_args(argv)  # argparse exits 2 itself on bad arguments
    _guard_stdout()
    try:
        check_folders(args, sys.stderr)
        if args.once:
            try:
                # as the command (argv None): exits once all is written; None: stdout was closed (ttop --once >&-)
                return run_once(args, sys.stdout, done=exit_at_once if argv is None else None)
            except (OSError, AttributeError) as e:
                if isinstance(e, BrokenPipeError) or not (sys.stdout is None or getattr(e, "errno", None) in _WRITE_ERRORS):
                    raise
                sys.stderr.write("ttop: cannot print the snapshot: %s\n" % (
                    "standard output is closed" if sys.stdout is None else getattr(e, "strerror", e)))
                return EXIT_ERROR
        if args.headless:
            return run_headless_mode(args, sys.stderr)
        return run_ui_mode(args, sys.stderr)
    except UsageError as e:
        sys.stderr.write("ttop: %s\n" % e)
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (``ttop --once | head``): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_OK
    except Exception as e:
        if os.environ.get("TTOP_DEBUG"):
            raise
        sys.stderr.write("ttop: internal error: %s: %s (set TTOP_DEBUG=1 for the traceback)\n" % (type(e).__name__, e))
        return EXIT_ERROR


__all__: List[str] = ["main", "build_parser", "parse_args", "DEFAULT_FOLDER", "DEFAULT_CSV_DIR", "GIB"]
