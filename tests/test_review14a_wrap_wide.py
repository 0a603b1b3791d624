"""The output viewer's wrap mode shows every character of a line: a wide
character (CJK, most emoji) that would straddle a row's end starts the next
row instead of being cut into two blanks."""
from __future__ import annotations

import random

from ttop.ui import output
from ttop.view.text import char_width, line_width


def _text(rows):
    return "".join(t for row in rows for t, _ in row)


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
        line = tuple(("".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40))), rnd.choice("xyz"))
                     for _ in range(rnd.randint(1, 4)))
        original = "".join(t for t, _ in line)
        for width in (2, 3, 5, 8):
            rows = output.wrap_rows(line, width)
            assert all(line_width(r) <= width for r in rows), (line, width)
            # rows but the last are full: only the blank a moved character left
            assert all(line_width(r) >= width - 1 for r in rows[:-1]), (line, width)
            assert _text(rows).replace(" ", "") == original, (line, width)
            assert all(char_width(ch) <= width for ch in original)
