"""The lazy log reader against a whole-file reference, on real files."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttop.logfile import LogFile, LogPager, display_text


def reference_lines(data: bytes, max_line: int):
    """Split ``data`` the way the reader promises: at newlines, and lines
    longer than max_line in max_line pieces from their start."""
    out = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + max_line)
        if nl >= 0:
            out.append((pos, nl + 1, data[pos:nl]))
            pos = nl + 1
        elif len(data) - pos >= max_line:
            out.append((pos, pos + max_line, data[pos:pos + max_line]))
            pos += max_line
        else:
            out.append((pos, len(data), data[pos:]))
            pos = len(data)
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
    from ttop.logfile import ArrivalLog

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
