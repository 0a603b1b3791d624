"""Wrapping in the output viewer: the rows a long log line is cut into."""
from __future__ import annotations

import random

from ttop.ui import output
from ttop.view import roles as R
from ttop.view import text
from ttop.view.text import char_width, crop_line, line_width


def _reference(line, width):
    """Rows as a terminal wraps them: a wide character that does not fit at
    a row's end starts the next row (a blank left behind); one wider than a
    whole row is cut, as cropping does."""
    w = line_width(line)
    if w <= width or width <= 0:
        return [line]
    if width < 2:
        return [crop_line(line, x, width) for x in range(0, w, width)]
    rows, row, used = [], [], 0
    for t, role in line:
        for ch in t:
            cw = text.char_width(ch)
            if used + cw > width:
                if used < width:
                    row.append((" " * (width - used), R.NORMAL))
                rows.append(tuple(row))
                row, used = [], 0
            row.append((ch, role))
            used += cw
    if row:
        rows.append(tuple(row))
    return rows


def _merged(rows):
    out = []
    for row in rows:
        segs = []
        for t, role in row:
            if not t:
                continue
            if segs and segs[-1][1] == role:
                segs[-1] = (segs[-1][0] + t, role)
            else:
                segs.append((t, role))
        out.append(tuple(segs))
    return out


def _random_line(rnd, alphabet, longest, most):
    """A line of 1 to ``most`` segments of up to ``longest`` characters from
    ``alphabet``, in roles x, y and z."""
    return tuple(("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, longest))), rnd.choice("xyz"))
                 for _ in range(rnd.randint(1, most)))


def _text(rows):
    return "".join(t for row in rows for t, _ in row)


def test_wrap_rows_cuts_like_a_terminal_wraps():
    rnd = random.Random(1)
    alphabet = ["a", "b", " ", "\u540d", "\u5b57", "\u00e9"]
    for _ in range(100):
        line = _random_line(rnd, alphabet, 30, 5)
        for width in (1, 2, 3, 7):
            assert _merged(output.wrap_rows(line, width)) == _merged(_reference(line, width)), (line, width)


def test_wrap_rows_reads_a_long_line_once(monkeypatch):
    """A 16 KiB log line (the viewer's longest) wrapped at 100 columns: each
    character is measured a bounded number of times, not once per row (that
    took seconds per line and froze the viewer in wrap mode)."""
    calls = [0]
    real = text.char_width

    def counting(ch):
        calls[0] += 1
        return real(ch)

    monkeypatch.setattr(text, "char_width", counting)
    monkeypatch.setattr(output, "char_width", counting, raising=False)
    line = (("\u540d" * 8192, "n"),)
    rows = output.wrap_rows(line, 100)
    assert len(rows) == 164 and all(line_width(r) == 100 for r in rows[:-1])
    assert calls[0] <= 3 * 8192
    calls[0] = 0
    rows = output.wrap_rows((("A" * 16384, "n"),), 100)
    assert len(rows) == 164 and "".join(t for r in rows for t, _ in r) == "A" * 16384
    assert calls[0] <= 3 * 16384


# A wide character (CJK, most emoji) that would straddle a row's end starts
# the next row instead of being cut into two blanks: every character shows.


def test_a_wide_character_at_a_rows_end_moves_to_the_next_row():
    line = (("wide \u4e2d\u6587" * 20, "n"),)  # 9 cells a time: one wide char straddles column 150
    rows = output.wrap_rows(line, 150)
    assert all(line_width(r) <= 150 for r in rows)
    assert _text(rows).replace(" ", "") == ("wide\u4e2d\u6587" * 20)
    assert _text(rows[1:2]).startswith("\u4e2d\u6587wide")


def test_wrapped_rows_keep_every_character_in_order():
    rnd = random.Random(7)
    alphabet = ["a", "b", "\u540d", "\u5b57", "\u00e9", "\U0001F600"]
    for _ in range(200):
        line = _random_line(rnd, alphabet, 40, 4)
        original = "".join(t for t, _ in line)
        for width in (2, 3, 5, 8):
            rows = output.wrap_rows(line, width)
            assert all(line_width(r) <= width for r in rows), (line, width)
            # rows but the last are full: only the blank a moved character left
            assert all(line_width(r) >= width - 1 for r in rows[:-1]), (line, width)
            assert _text(rows).replace(" ", "") == original, (line, width)
            assert all(char_width(ch) <= width for ch in original)
