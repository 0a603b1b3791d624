from ttop.view.text import clean, clip, crop_line, fit, line_width, width


def test_clean_removes_control_and_ansi():
    assert clean("a\x1b[31mred\x1b[0m\tb\x00c\u202e") == "ared b?c?"


def test_width_and_clip_wide_chars():
    assert width("日本") == 4
    assert clip("日本語テキスト", 5) == "日本…"
    assert width(clip("日本語テキスト", 6)) <= 6
    assert fit("ab", 4, ">") == "  ab"
    assert fit("abcdef", 4) == "abc…"


def test_crop_line_splits_wide_char():
    line = (("abc", "x"), ("日本", "y"), ("def", "z"))
    assert crop_line(line, 2, 4) == (("c", "x"), ("日 ", "y"))
    assert crop_line(line, 0, 100) == line


def test_clean_keeps_printable_text_as_it_is():
    # clean returns printable text at once (no pattern compiled for a mark such
    # as an ellipsis): none of what it replaces is printable
    from ttop.view import text

    printable = "".join(c for c in map(chr, range(0x110000)) if c.isprintable())
    assert clean(printable) is printable
    assert text._compiled(text._CTRL).search(printable) is None
    assert text.strip_ansi(printable) == printable
    assert printable.encode("utf-8", "replace").decode("utf-8") == printable
    for ch in "\x1b\t\n\r\u2028\u200b\u202e\u2066\ud800":
        assert clean("a%sb" % ch) != "a%sb" % ch


def test_short_texts_are_measured_as_the_patterns_measure_them():
    # before any long text, short ones are measured character by character
    # (no re imported for the first screen's marks): the same widths
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ttop.view import text

    def by_pattern(s):
        text._compile_width_patterns()
        return text.width(s)

    for cp in list(range(0x80, 0xD800)) + list(range(0xE000, 0x30000, 7)):
        s = "a%sb" % chr(cp)
        assert text._width_by_chars(s) == by_pattern(s), hex(cp)

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
    def check(s):
        assert text._width_by_chars(s) == by_pattern(s)

    check()


def test_crop_line_equals_a_cell_by_cell_crop():
    """crop_line cuts an ASCII segment by slicing and stops reading a
    segment at the crop's end (a log line of 16 KiB was measured character
    by character, 3 ms a row): the result is the character loop's."""
    import random

    from ttop.view.text import char_width

    def by_cells(line, start, cells):  # the crop character by character, as it was
        out, pos, end = [], 0, start + cells
        for text, role in line:
            if pos >= end:
                break
            w = width(text)
            if pos + w <= start:
                pos += w
                continue
            if pos >= start and pos + w <= end:
                out.append((text, role))
                pos += w
                continue
            buf = []
            for ch in text:
                cw = char_width(ch)
                if pos >= start and pos + cw <= end:
                    buf.append(ch)
                elif pos < end and pos + cw > start:
                    buf.append(" " * max(0, min(pos + cw, end) - max(pos, start)))
                pos += cw
            if buf:
                out.append(("".join(buf), role))
        return tuple(out)

    rng = random.Random(7)
    pieces = ["a", "b", " ", "\u65e5", "\u00e9", "e\u0301", "\U0001f525", "\u200b", "x" * 40]
    for _ in range(20000):
        line = tuple(("".join(rng.choice(pieces) for _ in range(rng.randint(0, 10))), "r%d" % j)
                     for j in range(rng.randint(0, 4)))
        start, cells = rng.randint(0, 60), rng.randint(0, 60)
        assert crop_line(line, start, cells) == by_cells(line, start, cells), (line, start, cells)


def test_pad_line_is_the_line_cropped_then_padded():
    # the fast path (a line that fits, measured once) against crop_line + padding, for random lines
    # (empty and zero-width segments, wide and combining characters, lines that fit exactly or not)
    import random

    from ttop.view.text import pad_line

    rng = random.Random(5)
    pieces = ("", "ab", "\u2588\u2591", "\u754c", "e\u0301", "\u0301", "CPU 37%", "x" * 30)
    for _ in range(3000):
        segs = tuple((rng.choice(pieces), rng.choice(("a", "b"))) for _ in range(rng.randrange(0, 6)))
        cells = rng.randrange(0, 60)
        want = crop_line(segs, 0, cells)
        used = line_width(want)
        if used < cells:
            want = want + ((" " * (cells - used), "pad"),)
        assert pad_line(list(segs), cells, "pad") == want, (segs, cells)
