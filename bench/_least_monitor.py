"""The least a monitor of a progress folder written in Python does before
its first screen: the peer ``bench_first_screen.py`` calls ``python-least``.

It starts the interpreter, imports ``curses``, reads and parses every
progress file of the folder with json's C scanner (``import json`` alone
costs about three times the rest: it brings ``re``), with no ownership, link
or process checks, and paints a header, one line per run and a key line
with ``curses``; then it waits for a key. What it leaves out is what ttop adds: the checks on
files written by strangers, process and GPU lookups, columns, sorting,
colours, health. Any Python program that shows the same screen pays at least
this.

    python bench/_least_monitor.py FOLDER
"""
import _json
import curses
import os
import sys


class _Decoder:
    """What json's C scanner reads of a json.JSONDecoder."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo = {}


_scan = _json.make_scanner(_Decoder())


def rows(folder):
    out = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, name), "rb") as f:
                doc = _scan(f.read().decode("utf-8"), 0)[0]
        except (OSError, ValueError, StopIteration):
            continue
        if not isinstance(doc, dict):
            continue
        out.append("%-20s %-10s epoch %-6s batch %s" % (
            doc.get("run_name", name), doc.get("status", "?"), doc.get("epoch", "-"), doc.get("batch", "-")))
    return out


def main(stdscr):
    lines = rows(sys.argv[1])
    stdscr.addstr(0, 0, "ttop-like  runs %d  CPU" % len(lines))
    height, width = stdscr.getmaxyx()
    for y, line in enumerate(lines[: height - 2], start=1):
        stdscr.addstr(y, 0, line[: width - 1])
    stdscr.addstr(height - 1, 0, "q quit")
    stdscr.refresh()
    stdscr.getch()


curses.wrapper(main)
