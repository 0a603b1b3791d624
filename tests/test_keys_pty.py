"""Moving through a long table in a real terminal: the monitor scrolls the
table's lines with the terminal's delete / insert line and redraws only what
changed; what it shows must be exactly what a full redraw (Ctrl+L) shows.

The refreshing is paused first: the header's CPU, RAM and load figures change
every few cycles, and the screen before a redraw is compared with the screen
after it. The screen before is the output replayed up to the redraw's clear,
so it holds every byte of the frames drawn before the key, however the reads
of the pty split them."""
from __future__ import annotations

import time

import pytest

from ptyharness import TtopTerm
from ttop.progress import write_json_atomic

N = 150


@pytest.fixture(scope="module")
def long_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys") / "progress"
    d.mkdir()
    now = time.time()
    for i in range(N):
        name = "run-%03d" % i
        write_json_atomic(str(d / (name + ".json")), {
            "format": "ttop.progress/1", "run_name": name, "status": ("FINISHED", "FAILED")[i % 2],
            "updated_at": now, "phase": "train", "epoch": i % 7, "total_epochs": 7,
            "train_batch": i * 13, "train_total_batches": 5000, "metrics": {"loss": 1.0 / (i + 1)}})
    return d


#: what ncurses sends to clear the screen with TERM=linux (terminfo clear):
#: a full redraw starts with it
CLEAR = b"\x1b[H\x1b[J"


def _dump(cells) -> str:
    return "\n".join("%2d|%s|" % (y, "".join(c.data for c in row)) for y, row in enumerate(cells))


def _clear_at(t: TtopTerm, start: int):
    """Where the first clear after byte ``start`` of the output begins, or None."""
    i = t.output(start).find(CLEAR)
    return start + i if i >= 0 else None


def _selected(t: TtopTerm):
    for y in range(t.rows):
        if t.is_reverse_row(y, 0, 6):
            return t.line(y).split()[0] if t.line(y).strip() else None
    return None


def _same_after_redraw(t: TtopTerm) -> None:
    """Ctrl+L clears the terminal and draws every line again: the screen
    the frames before it left (text, colours, attributes) is the one the
    redraw draws."""
    start = len(t.output())
    t.press("CTRL_L")
    at = t.wait_for(lambda t: _clear_at(t, start), msg="Ctrl+L cleared nothing")
    scrolled = t.cells(t.replay(at))
    t.wait_for(lambda t: t.cells() == scrolled, timeout=60,
               msg="a full redraw shows another screen than the scrolled one:\n%s\nredrawn:" % _dump(scrolled))


def test_scrolling_down_and_up_draws_what_a_full_redraw_draws(ttop_term, long_folder):
    t = ttop_term(long_folder, interval="0.3", cols=100, rows=16)
    t.wait_for(lambda t: _selected(t) == "run-000", msg="no selection on the first run")
    t.wait_gone("looking up")  # the first full cycle is on the screen
    t.press("p")
    t.wait_for("PAUSED")
    # past the first page: each Down now scrolls the table by a line
    for i in range(1, 40):
        t.press("DOWN")
        t.wait_for(lambda t, i=i: _selected(t) == "run-%03d" % i)
    assert t.row_of("run-000 ") is None  # scrolled away
    _same_after_redraw(t)
    # and back up past the top of the page
    for i in range(38, 5, -1):
        t.press("UP")
        t.wait_for(lambda t, i=i: _selected(t) == "run-%03d" % i)
    _same_after_redraw(t)
    # a burst of keys without waiting: the last one wins, the screen is whole
    t.press(*(["DOWN"] * 25))
    t.wait_for(lambda t: _selected(t) == "run-031")
    _same_after_redraw(t)
    t.press("q")
    assert t.wait_exit() == 0


def test_a_paste_is_answered_with_a_frame_not_a_frame_per_key(ttop_term, long_folder):
    # text pasted into a prompt reaches ncurses as a burst of keys: each is
    # applied, and the screen is painted once no more keys wait, not after
    # every one (a 1 MB paste into the editor took minutes of painting,
    # the monitor deaf to every key meanwhile)
    t = ttop_term(long_folder, interval="0.3", cols=100, rows=16)
    t.wait_for(lambda t: _selected(t) == "run-000", msg="no selection on the first run")
    t.wait_gone("looking up")
    t.press("p")
    t.wait_for("PAUSED")
    t.press("f")
    t.wait_for("Filter:")
    t.wait_quiet()
    start = len(t.output())
    text = "run-1" + "abcdefghij" * 18 + "XYZ"  # under the filter's 200 characters
    t.send(text)
    t.wait_for(lambda t: "ghijXYZ" in t.text)
    t.wait_quiet()
    written = len(t.output(start))
    # a frame per key wrote ~170 bytes each here (33 kB for these 188 keys)
    assert written < 10 * len(text), "%d bytes written for a paste of %d keys" % (written, len(text))
    t.press("ESC")
    t.wait_for(lambda t: _selected(t) == "run-000")
    t.press("q")
    assert t.wait_exit() == 0
