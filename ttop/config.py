"""The user's config file: ``$XDG_CONFIG_HOME/ttop/config.json`` (by default
``~/.config/ttop/config.json``).

A JSON object; ttop reads the keys it knows and keeps the others when it
writes the file back. Today: ``"columns"``, the main table's column choice
as a list of names (the ``--columns`` syntax, one name per element, see
:mod:`ttop.view.columns`).

Reading never follows a link and never blocks (``O_NOFOLLOW | O_NONBLOCK``:
a FIFO planted there does not hang ttop); the file must be a regular file of
the current user, at most :data:`MAX_BYTES`, holding a JSON object. Anything
else gives one message (:class:`Loaded.problem`) and the defaults; nothing
raises. Writing goes through a temp file and ``os.replace``
(:func:`ttop.progress.write_text_atomic`), so a crash never leaves half a
file.
"""
from __future__ import annotations

import errno
import os
import stat

from .jsonvalues import loads
from .record import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

FILE_NAME = "config.json"
MAX_BYTES = 256 * 1024


def config_dir(env: Optional[Dict[str, str]] = None) -> str:
    """``$XDG_CONFIG_HOME/ttop``; ``~/.config/ttop`` when XDG_CONFIG_HOME is
    unset, empty or not absolute (as the XDG spec says)."""
    e = os.environ if env is None else env
    base = e.get("XDG_CONFIG_HOME") or ""
    if not os.path.isabs(base):
        home = e.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".config")
    return os.path.join(base, "ttop")


def config_path(env: Optional[Dict[str, str]] = None) -> str:
    return os.path.join(config_dir(env), FILE_NAME)


class Loaded(FrozenRecord):
    data: Dict[str, Any]  # the object read ({} when there is none or it was refused)
    path: str
    problem: Optional[str]  # one line when the file exists but cannot be used

    def __init__(self, data: Dict[str, Any], path: str, problem: Optional[str]) -> None:
        self.__dict__.update(data=data, path=path, problem=problem)


def _read(path: str) -> bytes:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_uid != os.geteuid():
            raise ValueError("owned by uid %d, not by you (uid %d)" % (st.st_uid, os.geteuid()))
        if st.st_size > MAX_BYTES:
            raise ValueError("larger than %d KiB" % (MAX_BYTES // 1024))
        chunks = []
        left = MAX_BYTES + 1
        while left > 0:
            b = os.read(fd, min(left, 65536))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        data = b"".join(chunks)
        if len(data) > MAX_BYTES:
            raise ValueError("larger than %d KiB" % (MAX_BYTES // 1024))
        return data
    finally:
        os.close(fd)


def _visible(path: str) -> bool:
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def load(path: Optional[str] = None) -> Loaded:
    """The config object, or ``{}`` and why it could not be used. A missing
    file is no problem."""
    path = path or config_path()
    try:
        raw = _read(path)
    except FileNotFoundError:
        return Loaded({}, path, None)
    except OSError as e:
        if e.errno == errno.ELOOP:
            why = "a symbolic link"
        elif e.errno == errno.ENOTDIR or (e.errno == errno.EACCES and not _visible(path)):
            return Loaded({}, path, None)  # no config folder, or one we may not look into (another HOME)
        else:
            why = e.strerror or str(e)
        return Loaded({}, path, _problem(path, why))
    except ValueError as e:
        return Loaded({}, path, _problem(path, str(e)))
    try:
        obj = loads(raw.decode("utf-8"))  # json.loads
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        return Loaded({}, path, _problem(path, "not valid JSON (%s)" % str(e).splitlines()[0][:80]))
    if not isinstance(obj, dict):
        return Loaded({}, path, _problem(path, "not a JSON object"))
    return Loaded(obj, path, None)


def _problem(path: str, why: str) -> str:
    return "config %s ignored: %s; using the defaults" % (path, why)


def save(updates: Dict[str, Any], path: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """Write ``updates`` into the config file (other keys of a readable file
    are kept), atomically; creates the folder (mode 0700). An unusable file
    (a typo in hand-written prices, a link) is not written over: it is
    renamed ``config.json.unusable-<time>`` first. Returns the path and that
    name (None when there was none); raises OSError."""
    from .progress import write_text_atomic

    path = path or config_path()
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    current = load(path)
    kept = None
    if current.problem is not None:
        import time

        kept = base = "%s.unusable-%d" % (path, int(time.time()))
        n = 1
        while os.path.lexists(kept):  # one kept already this second: never renamed over (the folder is the user's own)
            kept, n = "%s-%d" % (base, n), n + 1
        os.rename(path, kept)
    data = dict(current.data)
    data.update(updates)
    import json

    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return path, kept


def column_choice(spec: Optional[str], loaded: Optional[Loaded] = None) -> Tuple[Any, Optional[str], Tuple[str, ...]]:
    """The column choice for this launch: ``spec`` (``--columns``) read
    against the saved choice, else the saved choice, else None (the
    default). Returns ``(choice, problem, bare)``: ``problem`` is one line
    about an unusable config file (its choice is then ignored), ``bare`` the
    names of ``spec`` taken as metrics (see :func:`ttop.view.columns.check_metrics`).
    Raises :class:`~ttop.view.columns.ColumnsError` for a bad ``spec``."""
    from .view import columns as C

    if loaded is None:
        loaded = load()
    problem = loaded.problem
    saved = None
    raw = loaded.data.get("columns")
    if raw is not None:
        try:
            if isinstance(raw, str):
                saved = C.parse(raw)[0]
            elif isinstance(raw, list):
                saved = C.parse_items(raw)[0]
            else:
                raise C.ColumnsError("not a list of names")
        except C.ColumnsError as e:
            problem = _problem(loaded.path, '"columns": %s' % e)
    if spec is None:
        return saved, problem, ()
    choice, bare = C.parse(spec, saved or C.DEFAULT)
    return choice, problem, bare


#: Keys of ``"prices"``: ``--price-hour``, ``--price-gpu-hour``, ``--price-host``.
PRICE_KEYS = ("hour", "gpu_hour", "hosts")
MAX_PRICE = 1e9


def _price(v: Any) -> Optional[float]:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        x = float(v)
    except OverflowError:
        return None
    return x if 0 <= x <= MAX_PRICE else None  # NaN fails both comparisons


def saved_prices(loaded: Loaded) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """``"prices"`` of the config, checked: ``({"hour": float, "gpu_hour":
    float, "hosts": {host: float}}, None)``, ``(None, None)`` when there is
    none, or ``(None, one line)`` when it cannot be used (then it is
    ignored whole: a typo must not price some runs and not others)."""
    raw = loaded.data.get("prices")
    if raw is None:
        return None, None

    def bad(why: str) -> Tuple[None, str]:
        return None, _problem(loaded.path, '"prices": %s' % why).replace("using the defaults", "no prices from it")

    if not isinstance(raw, dict):
        return bad("not an object")
    unknown = [k for k in raw if k not in PRICE_KEYS]
    if unknown:
        return bad("unknown key %r (known: %s)" % (unknown[0], ", ".join(PRICE_KEYS)))
    out: Dict[str, Any] = {"hour": 0.0, "gpu_hour": 0.0, "hosts": {}}
    for key in ("hour", "gpu_hour"):
        if key in raw:
            v = _price(raw[key])
            if v is None:
                return bad("%s must be a number from 0 to %g" % (key, MAX_PRICE))
            out[key] = v
    hosts = raw.get("hosts", {})
    if not isinstance(hosts, dict):
        return bad("hosts must be an object {host: price}")
    for host, value in hosts.items():
        v = _price(value)
        if not host or v is None:
            return bad("hosts: %r must map to a number from 0 to %g" % (host, MAX_PRICE))
        out["hosts"][host] = v
    return out, None
