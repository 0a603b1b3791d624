"""The ``ttop`` command's arguments: the argparse parser, and the quick
reading of a plain launch (``ttop [FOLDER ...] [-i SECONDS]``) that needs no
parser at all. :mod:`ttop.cli` wires what they ask for."""
from __future__ import annotations

import math
import sys

from ._version import __version__
from .termsize import terminal_columns

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from argparse import Namespace
    from typing import Any, Dict, List, Optional, Sequence
else:  # what a plain launch's arguments come in (see _quick_args): the
    # type of sys.implementation is types.SimpleNamespace (without
    # importing types)
    Namespace = type(sys.implementation)

DEFAULT_FOLDER = "./progress"
DEFAULT_INTERVAL = 2.0
DEFAULT_CSV_DIR = "./train/statistics/data"
#: Shortest accepted --interval / --csv-interval: below this the collector
#: would spin.
MIN_INTERVAL = 0.05
#: Budgets in GB are GiB (2**30 bytes), the unit the view prints as "G".
GIB = 1 << 30
#: Largest accepted number option: longer waits overflow the thread timers,
#: bigger GiB budgets the byte counts.
MAX_NUMBER = 1e9


def _positive_problem(what: str, text: str, minimum: float = 0.0, maximum: float = MAX_NUMBER) -> Any:
    """``(value, None)`` for a number in range, else ``(None, message)``."""
    try:
        value = float(text)
    except ValueError:
        return None, "%s must be a number, got %r" % (what, text)
    if not math.isfinite(value) or value <= 0:
        return None, "%s must be a number > 0, got %r" % (what, text)
    if value < minimum:
        return None, "%s must be at least %g, got %r" % (what, minimum, text)
    if value > maximum:
        return None, "%s must be at most %g, got %r" % (what, maximum, text)
    return value, None


def _positive(what: str, minimum: float = 0.0, maximum: float = MAX_NUMBER):
    def parse(text: str) -> float:
        import argparse

        value, problem = _positive_problem(what, text, minimum, maximum)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def _nonneg(what: str):
    def parse(text: str) -> float:
        import argparse

        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%s must be a number, got %r" % (what, text)) from None
        if not math.isfinite(value) or value < 0 or value > MAX_NUMBER:
            raise argparse.ArgumentTypeError("%s must be a number from 0 to %g, got %r" % (what, MAX_NUMBER, text))
        return value

    parse.__name__ = what
    return parse


def prices_from(args: argparse.Namespace, saved: Optional[Dict[str, Any]] = None) -> Any:
    """Prices from --price-hour/--price-gpu-hour/--price-host over the
    config file's ``saved`` ones (:func:`ttop.config.saved_prices`), or None;
    ValueError with one line for a bad --price-host."""
    saved = saved or {}
    hosts = dict(saved.get("hosts") or {})
    for pair in getattr(args, "price_host", None) or ():
        host, sep, text = pair.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not sep or not host or not math.isfinite(value) or value < 0 or value > MAX_NUMBER:
            raise ValueError("--price-host takes HOST=PRICE with a price >= 0, got %r" % pair)
        hosts[host] = value
    machine = args.price_hour if args.price_hour is not None else saved.get("hour", 0.0)
    gpu = args.price_gpu_hour if args.price_gpu_hour is not None else saved.get("gpu_hour", 0.0)
    if not (machine or gpu or hosts):
        return None
    from .collect.cost import Prices

    return Prices(machine=machine, gpu=gpu, hosts=hosts)


def build_parser() -> argparse.ArgumentParser:
    import argparse

    class _HelpFormatter(argparse.HelpFormatter):
        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: Optional[int] = None) -> None:
            super().__init__(prog, indent_increment, max_help_position,
                             width if width is not None else terminal_columns() - 2)

    p = argparse.ArgumentParser(
        prog="ttop",
        formatter_class=_HelpFormatter,
        description="Monitor long-running jobs (ML training) from their progress files.",
        epilog="Exit status: 0 ok, 2 bad arguments or unreadable folder. See docs/cli.md.",
    )
    p.add_argument(
        "folder",
        nargs="*",
        metavar="FOLDER",
        help="folder(s) of per-run progress files; globs are expanded (default: %s)" % DEFAULT_FOLDER,
    )
    p.add_argument(
        "-i",
        "--interval",
        type=_positive("interval", MIN_INTERVAL),
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help="refresh interval (default: %(default)s)",
    )
    p.add_argument("--max-cpus", type=_positive("max-cpus"), metavar="CORES", help="CPU budget in cores: usage shown as %% of it (default: all cores)")
    p.add_argument("--max-ram", type=_positive("max-ram"), metavar="GB", help="RAM budget in GiB (default: the machine's RAM)")
    p.add_argument("--max-gpu", type=_positive("max-gpu"), metavar="GB", help="GPU memory budget in GiB (default: the GPUs' memory)")
    p.add_argument(
        "--csv-interval",
        type=_positive("csv-interval", MIN_INTERVAL),
        metavar="SECONDS",
        help="write CSV statistics every SECONDS (default with --headless: the --interval)",
    )
    p.add_argument("--csv-dir", metavar="PATH", help="CSV folder (default: %s)" % DEFAULT_CSV_DIR)
    p.add_argument("--headless", action="store_true", help="no UI: write CSV until SIGINT/SIGTERM")
    p.add_argument("--once", action="store_true", help="print one snapshot as a table and exit")
    p.add_argument("--json", action="store_true", help="with --once: print the snapshot as JSON")
    p.add_argument(
        "--health",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a health threshold, e.g. stall_seconds=300 (repeatable; see docs/health.md)",
    )
    p.add_argument("--events", metavar="FILE", help="append one JSON line per alert event to FILE (monitor and --headless)")
    p.add_argument("--alert-cmd", metavar="CMD",
                   help="run the shell command CMD per alert event, details in TTOP_* environment variables")
    p.add_argument("--alert-timeout", type=_positive("alert-timeout"), default=10.0, metavar="SECONDS",
                   help="kill an alert command running longer than this (default: %(default)s)")
    p.add_argument("--bell", action="store_true", help="ring the terminal bell on each alert (monitor; at most 10 times a minute for the runs of each user)")
    p.add_argument("--price-hour", type=_nonneg("price-hour"), metavar="PRICE",
                   help="price of a machine per hour: each run's cost is its run time at this price (see docs/health.md)")
    p.add_argument("--price-gpu-hour", type=_nonneg("price-gpu-hour"), metavar="PRICE",
                   help="price per GPU-hour, for each GPU a run holds")
    p.add_argument("--price-host", action="append", default=[], metavar="HOST=PRICE",
                   help="machine price per hour for runs on HOST (repeatable; overrides --price-hour)")
    p.add_argument("--columns", metavar="LIST",
                   help="table columns in order, e.g. status,rate,loss,cpu; or changes to the saved choice, "
                   "e.g. -cpu,+m:lr (overrides the config file for this launch; see docs/cli.md)")
    p.add_argument("--ascii", action="store_true", help="draw with ASCII characters only (monitor and --once)")
    p.add_argument(
        "--serve",
        metavar="[ADDR:]PORT",
        help="serve Prometheus metrics on http://ADDR:PORT/metrics (ADDR default 127.0.0.1); "
        "with --headless and no CSV option, serve only",
    )
    p.add_argument("--version", action="version", version="ttop %s" % __version__)
    return p


def _columns_value(argv: Sequence[str]) -> List[str]:
    """``--columns -cpu`` as ``--columns=-cpu``: argparse would take a list
    that starts with ``-`` for an option; each time it is given, and
    abbreviated as argparse allows (``--co``: ``--c`` is also ``--csv-*``)."""
    out: List[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--":
            out.append(arg)
            out.extend(it)
            break
        if len(arg) >= 4 and "--columns".startswith(arg):
            nxt = next(it, None)
            if nxt is not None and nxt.startswith("-") and not nxt.startswith("--"):
                out.append("--columns=" + nxt)
                continue
            out.append(arg)
            if nxt is not None:
                out.append(nxt)
            continue
        out.append(arg)
    return out


#: What the parser gives for each option a plain launch leaves out (a test
#: checks them against it).
QUICK_DEFAULTS: Dict[str, Any] = {
    "max_cpus": None, "max_ram": None, "max_gpu": None, "csv_interval": None, "csv_dir": None,
    "headless": False, "once": False, "json": False, "health": [], "events": None, "alert_cmd": None,
    "alert_timeout": 10.0, "bell": False, "price_hour": None, "price_gpu_hour": None, "price_host": [],
    "columns": None, "ascii": False, "serve": None,
}


def _quick_args(argv: Sequence[str]) -> Optional[argparse.Namespace]:
    """The everyday launch, ``ttop [FOLDER ...] [-i SECONDS]``, read without
    importing argparse and building the parser (a tenth of the monitor's own
    start-up work); None for anything else (options, abbreviations, a bad
    or odd value, ``--``, an empty folder), which the parser reads and
    judges. The result equals the parser's (a test checks it)."""
    folders: List[str] = []
    interval = DEFAULT_INTERVAL
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            if not arg:
                return None
            folders.append(arg)
            i += 1
            continue
        if arg in ("-i", "--interval") and i + 1 < len(argv):
            text = argv[i + 1]
            i += 2
        elif arg.startswith("--interval="):
            text = arg[len("--interval="):]
            i += 1
        elif arg.startswith("-i") and not arg.startswith("-i="):
            text = arg[2:]
            i += 1
        else:
            return None
        if not text or text.startswith("-"):
            return None
        value, problem = _positive_problem("interval", text, MIN_INTERVAL)
        if problem is not None:
            return None
        interval = value
    args = Namespace(folder=folders, interval=interval, **QUICK_DEFAULTS)
    args.health = []
    args.price_host = []
    args.folders = folders or [DEFAULT_FOLDER]
    args.folder = args.folders[0]
    args.health_config = None
    args.prices = None
    return args


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = _quick_args(argv)
    if quick is not None:
        return quick
    parser = build_parser()
    # what follows "--" is folders, whatever they look like: the intermixed
    # parse loses or misreads them (a folder "--once" became the option)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_intermixed_args(_columns_value(argv[:cut]))
    args.folder = list(args.folder) + argv[cut + 1:]
    if args.json and not args.once:
        parser.error("--json only works with --once")
    if args.once and args.headless:
        parser.error("--once and --headless cannot be combined")
    if args.once and (args.csv_dir is not None or args.csv_interval is not None):
        parser.error("--csv-dir/--csv-interval do not apply to --once")
    if args.once and args.serve is not None:
        parser.error("--serve does not apply to --once")
    if args.serve is not None:
        from .sinks.prometheus import ServeError, parse_serve

        try:
            args.serve_addr = parse_serve(args.serve)
        except ServeError as e:
            parser.error("--serve: %s" % e)
    if any(not f for f in args.folder):
        parser.error("FOLDER must not be empty")
    args.folders = list(args.folder) or [DEFAULT_FOLDER]
    args.folder = args.folders[0]
    if args.once and (args.events or args.alert_cmd):
        parser.error("--events/--alert-cmd need the monitor or --headless, not --once")
    if args.columns is not None:
        from .view.columns import ColumnsError, parse

        if args.headless:
            parser.error("--columns needs the monitor or --once, not --headless")
        try:
            parse(args.columns)
        except ColumnsError as e:
            parser.error("--columns: %s" % e)
    try:
        args.health_config = health_config(args.health)
        args.prices = prices_from(args)
    except ValueError as e:
        parser.error(str(e))
    return args


def health_config(pairs: Sequence[str]) -> Any:
    """HealthConfig from ``--health NAME=VALUE`` options (None: defaults);
    ValueError with one line for a bad one."""
    if not pairs:
        return None
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError("--health takes NAME=VALUE, got %r" % pair)
        overrides[name.strip()] = value.strip()
    from .collect.health import HealthConfig

    return HealthConfig().with_overrides(overrides)
