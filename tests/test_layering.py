"""The layering rules, read from the source (every import, lazy ones inside
functions included, relative ones resolved) and checked on a real import:

* only ``ttop/ui`` imports curses; ``view``, ``collect``, ``monitor`` and
  ``sinks`` never import curses or ``ttop.ui``;
* ``ttop/monitor`` (inside the training process) never imports ``ttop.collect``;
* ``ttop/view`` is pure: no filesystem, no psutil/pynvml;
* ``import ttop`` loads no psutil, pynvml, curses or ML framework.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PKG = ROOT / "ttop"
CURSES = {"curses", "_curses"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path):
    """Every module ``path`` imports, as absolute dotted names (``from a
    import b`` yields ``a`` and ``a.b``: b may be a submodule)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                mod = node.module or ""
            yield mod
            for a in node.names:
                yield "%s.%s" % (mod, a.name)


def sources(subpackage: str):
    return sorted((PKG / subpackage).rglob("*.py"))


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_module_names_resolve_relative_imports():
    # the reader itself: a wrong resolution would make every rule below vacuous
    found = set(imports(PKG / "ui" / "levers.py"))
    assert "ttop.levers.signals" in found and "ttop.ui.screen" in found and "ttop.view.roles" in found
    assert "ttop.progress" in set(imports(PKG / "monitor" / "__init__.py")) | set(
        m for p in sources("monitor") for m in imports(p))


@pytest.mark.parametrize("sub", ["view", "collect", "monitor", "sinks"])
def test_no_curses_and_no_ui_outside_ui(sub):
    paths = sources(sub)
    assert paths, sub
    bad = []
    for path in paths:
        for name in imports(path):
            if name.split(".")[0] in CURSES or within(name, "ttop.ui"):
                bad.append("%s imports %s" % (path.relative_to(ROOT), name))
    assert not bad, bad


def test_only_ui_imports_curses():
    bad = [
        "%s imports %s" % (path.relative_to(ROOT), name)
        for path in sorted(PKG.rglob("*.py"))
        if not within(module_name(path), "ttop.ui")
        for name in imports(path)
        if name.split(".")[0] in CURSES
    ]
    assert not bad, bad


def test_monitor_never_imports_collect():
    bad = [
        "%s imports %s" % (path.relative_to(ROOT), name)
        for path in sources("monitor")
        for name in imports(path)
        if within(name, "ttop.collect")
    ]
    assert not bad, bad


def test_view_is_pure():
    for path in sources("view"):
        tops = {name.split(".")[0] for name in imports(path)}
        rel = path.relative_to(ROOT)
        assert not tops & ({"os", "io", "pathlib", "shutil", "glob", "psutil", "pynvml"} | CURSES), rel
        assert "open(" not in path.read_text(), rel


def test_import_ttop_loads_nothing_heavy():
    heavy = ("curses", "_curses", "psutil", "pynvml", "torch", "tensorflow", "jax", "lightning", "transformers")
    code = "import sys, ttop\nprint(' '.join(m for m in %r if m in sys.modules))" % (heavy,)
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_no_module_is_over_600_lines():
    """A module past 600 lines does too many jobs: split it before adding."""
    root = Path(ROOT) / "ttop"
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py")
            for n in [len(p.read_text(encoding="utf-8").splitlines())] if n > 600}
    assert not long, long
