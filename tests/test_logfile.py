"""The lazy log reader against a whole-file reference, on real files."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ttop.logfile import LogFile, LogPager, display_text


def reference_lines(data: bytes, max_line: int):
    """Split ``data`` the way the reader promises: at newlines; a line longer
    than max_line in pieces of at most max_line bytes of its last state (after
    its last \\r, a trailing \\r not counting; the first piece also holds
    all before it), never starting on a UTF-8 continuation byte when a
    character start is at most 3 bytes back."""
    out = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = nl if nl >= 0 else len(data)
        line = data[pos:end]
        body = line.rstrip(b"\r")
        seg = body.rfind(b"\r") + 1
        starts = [0]
        cur = seg
        while len(line) - cur > max_line:
            cut = cur + max_line
            for back in (cut, cut - 1, cut - 2, cut - 3):
                if back > cur and line[back] & 0xC0 != 0x80:
                    cut = back
                    break
            starts.append(cut)
            cur = cut
        for i, c in enumerate(starts):
            e = starts[i + 1] if i + 1 < len(starts) else len(line)
            stop = pos + e if i + 1 < len(starts) else end + (1 if nl >= 0 else 0)
            out.append((pos + c, stop, line[c:e]))
        pos = end + 1 if nl >= 0 else len(data)
    return out


def _file(tmp_path, data: bytes, **kw) -> LogFile:
    p = tmp_path / "x.log"
    p.write_bytes(data)
    f = LogFile(str(p), **kw)
    f.refresh()
    return f


chunks = st.lists(
    st.one_of(
        st.binary(min_size=0, max_size=12),
        st.sampled_from([b"\n", b"\n\n", b"abc\n", b"\r", b"x" * 30, b"\n" + b"y" * 17]),
    ),
    max_size=40,
).map(b"".join)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=chunks, max_line=st.sampled_from([4, 7, 16]), chunk=st.sampled_from([3, 5, 64]))
def test_forward_and_backward_agree_with_reference(tmp_path, data, max_line, chunk):
    assume(all(len(line) < 64 * max_line for line in data.split(b"\n")))  # longer: approximate by design
    f = _file(tmp_path, data, max_line=max_line, chunk=chunk)
    ref = reference_lines(data, max_line)
    assert f.lines_from(0, 10 ** 6) == ref
    starts = [s for s, _, _ in ref]
    # backward from the end: every line start, in order
    assert f.starts_before(len(data), 10 ** 6) == starts
    # backward from each line's end, a few lines
    for i, (_s, e, _raw) in enumerate(ref):
        assert f.starts_before(e, 3) == starts[max(0, i - 2): i + 1]
    # forward from each line start
    for i, (s, _e, _raw) in enumerate(ref):
        assert f.lines_from(s, 2) == ref[i: i + 2]
    # line_start of every byte
    for off in range(len(data)):
        expect = max(s for s in starts if s <= off)
        assert f.line_start(off) == expect


def test_display_text_makes_lines_terminal_safe():
    assert display_text(b"\x1b[31mred\x1b[0m plain") == "red plain"
    assert display_text(b"epoch 1:  10%\repoch 1:  50%\repoch 1: 100%") == "epoch 1: 100%"
    assert display_text(b"done\r") == "done"  # CRLF line end
    assert display_text(b"a\tb") == "a       b"
    assert display_text(b"\x00\x07bell\x9b") == "??bell\ufffd"
    assert display_text(b"\xff\xfe binary") == "\ufffd\ufffd binary"
    assert display_text(b"\x1b]0;title\x07text") == "text"
    assert "\x1b" not in display_text(b"\x1b[2K\x1b[1Acursor")


def test_pager_follow_home_end_and_growth(tmp_path):
    p = tmp_path / "run.stdout.log"
    p.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)))
    pg = LogPager(str(p))
    pg.refresh()
    lines = pg.visible(10)
    assert [display_text(r) for _, _, r in lines] == ["line %d" % i for i in range(990, 1000)]
    # follow mode picks up growth
    with open(p, "ab") as f:
        f.write(b"line 1000\nline 1001\n")
    pg.refresh()
    assert display_text(pg.visible(10)[-1][2]) == "line 1001"
    # scrolling up leaves follow mode; the view then stays put while the file grows
    pg.up(5, 10)
    assert not pg.follow
    top = [display_text(r) for _, _, r in pg.visible(10)]
    assert top[0] == "line 987"
    with open(p, "ab") as f:
        f.write(b"line 1002\n")
    pg.refresh()
    assert [display_text(r) for _, _, r in pg.visible(10)] == top
    pg.home()
    assert display_text(pg.visible(3)[0][2]) == "line 0"
    pg.down(3, 10)
    assert display_text(pg.visible(3)[0][2]) == "line 3"
    pg.down(10 ** 6, 10)  # clamps at the last page
    assert display_text(pg.visible(10)[-1][2]) == "line 1002"
    pg.end()
    assert pg.follow and pg.percent(10) == 100


def test_pager_truncation_and_rotation_reset(tmp_path):
    p = tmp_path / "a.log"
    p.write_bytes(b"".join(b"old %d\n" % i for i in range(500)))
    pg = LogPager(str(p))
    pg.refresh()
    pg.up(100, 10)
    assert pg.top > 0
    p.write_bytes(b"new 0\nnew 1\n")  # truncated in place
    pg.refresh()
    assert pg.top == 0 and pg.resets == 1
    assert [display_text(r) for _, _, r in pg.visible(10)] == ["new 0", "new 1"]
    # rotation: the path now names another file
    os.rename(p, tmp_path / "a.log.1")
    p.write_bytes(b"rotated\n")
    pg.refresh()
    assert pg.resets == 2
    assert display_text(pg.visible(10)[0][2]) == "rotated"
    os.unlink(p)
    pg.refresh()
    assert pg.visible(10) == [] and "no such file" in pg.file.error


def test_search_forward_backward_wrap_and_smartcase(tmp_path):
    p = tmp_path / "s.log"
    lines = ["row %d" % i for i in range(5000)]
    lines[10] = "Needle at ten"
    lines[4000] = "needle at four thousand"
    p.write_text("\n".join(lines) + "\n")
    pg = LogPager(str(p))
    pg.file.search_chunk = 1000  # force many chunks and matches across chunk edges
    pg.refresh()
    pg.home()
    assert pg.search("needle") == (True, False)
    assert display_text(pg.visible(1)[0][2]) == "Needle at ten"
    assert pg.search("needle") == (True, False)
    assert display_text(pg.visible(1)[0][2]) == "needle at four thousand"
    assert pg.search("needle") == (True, True)  # wrapped to the start
    assert display_text(pg.visible(1)[0][2]) == "Needle at ten"
    assert pg.search("needle", forward=False) == (True, True)
    assert display_text(pg.visible(1)[0][2]) == "needle at four thousand"
    # an upper-case letter makes the search case-sensitive
    assert pg.search("Needle") == (True, True)
    assert display_text(pg.visible(1)[0][2]) == "Needle at ten"
    top = pg.top
    assert pg.search("absent") == (False, False)
    assert pg.top == top
    # from follow mode at the end, a search wraps to the start
    pg.end()
    pg.visible(20)
    assert pg.search("at ten") == (True, True)
    assert not pg.follow


def test_missing_and_no_path():
    pg = LogPager(None)
    pg.refresh()
    assert pg.visible(5) == [] and pg.percent(5) is None
    assert pg.search("x") == (False, False)


@pytest.mark.parametrize("n", [0, 1])
def test_giant_line_without_newline_pages_in_pieces(tmp_path, n):
    # within 64 pieces of its start, pieces agree both ways
    data = b"z" * (50 * 1024) + b"\n" * n
    f = _file(tmp_path, data, max_line=1024)
    lines = f.lines_from(0, 1000)
    assert all(len(r) <= 1024 for _, _, r in lines)
    assert sum(e - s for s, e, _ in lines) == len(data)
    assert f.starts_before(len(data), 1000) == [s for s, _, _ in lines]
    # further back the pieces are approximate but still small and complete
    data = b"z" * (300 * 1024) + b"\n" * n
    f = _file(tmp_path, data, max_line=1024)
    starts = f.starts_before(len(data), 10 ** 6)
    assert starts[0] == 0
    assert all(0 < b - a <= 1024 for a, b in zip(starts, starts[1:]))
    assert len(data) - starts[-1] <= 1024 + n


def test_search_with_a_time_budget_resumes(tmp_path):
    p = tmp_path / "big.log"
    p.write_bytes(b"".join(b"filler line %d\n" % i for i in range(20000)) + b"the needle\n")
    pg = LogPager(str(p))
    pg.file.search_chunk = 4096
    pg.refresh()
    pg.home()
    steps = []
    while True:
        found, wrapped = pg.search("needle", budget=0.0)
        if found:
            break
        assert pg.searching is not None and 0 < pg.searching < 1
        steps.append(pg.searching)
        assert len(steps) < 1000
    assert len(steps) > 5 and steps == sorted(steps)
    assert display_text(pg.visible(1)[0][2]) == "the needle"
    # a search that ends without a match says so and leaves no resume state
    pg.home()
    while pg.search("absent", budget=0.0) == (False, False) and pg.searching is not None:
        pass
    assert pg.searching is None and pg.top == 0
    # backward, resumed too
    pg.end()
    pg.visible(5)
    while not pg.search("filler line 7\n", forward=False, budget=0.0)[0]:
        assert pg.searching is not None
    assert display_text(pg.visible(1)[0][2]) == "filler line 7"


def test_arrival_log_is_bounded(tmp_path):
    from ttop.arrival import ArrivalLog

    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_bytes(b"")
    arr = ArrivalLog([("stdout", str(a)), ("stderr", str(b)), ("none", None)], max_lines=5, max_bytes=1000, max_chars=10)
    assert arr.poll() == 0
    with open(a, "ab") as f:
        f.write(b"x" * 50 + b"\n" + b"".join(b"%d\n" % i for i in range(3)))
    b.write_bytes(b"from b\n")  # created after the viewer opened: read from its start
    assert arr.poll() == 5
    assert list(arr.lines) == [("stdout", "xxxxxxxxx\u2026"), ("stdout", "0"), ("stdout", "1"), ("stdout", "2"),
                               ("stderr", "from b")]
    with open(a, "ab") as f:
        f.write(b"y" * 5000 + b"\nlast\n")
    arr.poll()
    assert len(arr.lines) == 5 and arr.lines[-1] == ("stdout", "last")
    assert any(k == "note" and "bytes of stdout skipped" in t for k, t in arr.lines)


def _tqdm_epoch(updates=340, width=10):
    """One epoch of a tqdm bar as captured from a pipe: ~27 KB, one line."""
    parts = []
    for i in range(updates + 1):
        done = i * width // updates
        parts.append("\rEpoch 3: %3d%%|%s%s| %d/%d [00:%02d<00:10, 33.1it/s, loss=0.%04d]" % (
            100 * i // updates, "\u2588" * done, " " * (width - done), i, updates, i % 60, 9999 - i))
    return "".join(parts).encode("utf-8")


def test_progress_bar_line_shows_its_last_state_whole(tmp_path):
    bar = _tqdm_epoch()
    assert 20_000 < len(bar) < 40_000  # longer than MAX_LINE (16 KiB), like a real epoch
    last = bar.decode("utf-8").rsplit("\r", 1)[1]
    f = _file(tmp_path, b"before\n" + bar + b"\n" + b"after\n")
    lines = f.lines_from(0, 100)
    assert [display_text(raw) for _s, _e, raw in lines] == ["before", last, "after"]
    # backward (End, follow mode, PgUp) finds the same three lines
    assert f.starts_before(f.size, 10) == [s for s, _e, _r in lines]
    pg = LogPager(str(tmp_path / "x.log"))
    pg.refresh()
    assert [display_text(r) for _s, _e, r in pg.visible(10)] == ["before", last, "after"]
    # the bar still being drawn (no newline yet): its current state, whole
    (tmp_path / "x.log").write_bytes(b"before\n" + bar)
    pg = LogPager(str(tmp_path / "x.log"))
    pg.refresh()
    assert [display_text(r) for _s, _e, r in pg.visible(10)] == ["before", last]


def test_long_line_is_never_cut_inside_a_character(tmp_path):
    text = ("\u00e9\u2588\U0001F600" * 4000)  # 2-, 3- and 4-byte characters, ~36 KB, no newline
    f = _file(tmp_path, text.encode("utf-8") + b"\n")
    pieces = f.lines_from(0, 100)
    assert len(pieces) > 2 and all(len(r) <= 16 * 1024 for _s, _e, r in pieces)
    assert "".join(display_text(r) for _s, _e, r in pieces) == text  # no U+FFFD anywhere
    assert f.starts_before(f.size, 100) == [s for s, _e, _r in pieces]


def test_arrival_log_shows_a_bar_as_its_last_state(tmp_path):
    from ttop.arrival import ArrivalLog

    p = tmp_path / "x.log"
    p.write_bytes(b"")
    arr = ArrivalLog([("stdout", str(p))])
    bar = _tqdm_epoch()
    with open(p, "ab") as fh:
        fh.write(bar[: len(bar) // 2])
    arr.poll()
    with open(p, "ab") as fh:
        fh.write(bar[len(bar) // 2:] + b"\n")
    arr.poll()
    assert [t for _k, t in arr.lines] == [bar.decode("utf-8").rsplit("\r", 1)[1]]


def test_a_bar_line_longer_than_the_read_limit_pages_on(tmp_path):
    # a long tqdm epoch captured from a pipe: one line of \r updates longer
    # than the 64 pieces read at once, whose last state in reach is short.
    # lines_from took nothing off its buffer and looped for ever (Home, PgDn
    # in the output viewer hung ttop at 100% CPU, deaf to SIGTERM)
    bar = _tqdm_epoch(updates=4000)
    assert len(bar) > 64 * 1024 * 4
    data = b"before\n" + bar + b"\nafter\n"
    f = _file(tmp_path, data, max_line=1024)
    lines = f.lines_from(0, 10 ** 6)
    assert display_text(lines[0][2]) == "before" and display_text(lines[-1][2]) == "after"
    # every byte once, in order: pieces follow each other
    assert lines[0][0] == 0 and lines[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(lines, lines[1:]))
    # the pieces of the bar show states of the bar
    assert all(display_text(r).startswith("Epoch 3:") for _s, _e, r in lines[1:-1])
    last = bar.decode("utf-8").rsplit("\r", 1)[1]
    assert display_text(lines[-2][2]) == last
    pg = LogPager(str(tmp_path / "x.log"))
    pg.refresh()
    pg.home()
    assert display_text(pg.visible(3)[0][2]) == "before"
    pg.down(5, 3)
    assert len(pg.visible(3)) == 3
