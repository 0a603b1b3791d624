"""Literal expected lines of the pure chart renderer (ttop.view.chart)."""
import math

import pytest

from ttop.view import roles as R
from ttop.view.chart import ZOOMS, Series, legend, render_chart, window
from ttop.view.text import line_width

NAN = float("nan")
INF = float("inf")
RAMP = [float(i) for i in range(1000)]


def text(lines):
    return ["".join(t for t, _ in line) for line in lines]



def test_nan():
    """A NaN between two points: nothing is drawn across it and the axis marks its column."""
    assert text(render_chart([Series("loss", [4.0, 3.0, NAN, 2.0, 1.0])], 24, 5)) == [
        'loss  last 1  NaN/inf  …',
        '     4│⠉⠒⠤⣀             ',
        '      │    ⠁       ⢀    ',
        '     1│             ⠉⠒⠤⣀',
        '      └0───────!───────4',
    ]

def test_inf():
    """An infinity is marked like a NaN."""
    assert text(render_chart([Series("loss", [1.0, INF, 2.0])], 24, 5)) == [
        'loss  last 2  NaN/inf  …',
        '     2│                ⠈',
        '      │                 ',
        '     1│⡀                ',
        '      └0───────!───────2',
    ]

def test_constant():
    """A constant series is a flat line in the middle."""
    assert text(render_chart([Series("acc", [0.5] * 6)], 24, 5)) == [
        'acc  last 0.5  min 0.5 …',
        '      │                 ',
        '   0.5│⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤⠤',
        '      │                 ',
        '      └0───────────────5',
    ]

def test_single_point():
    """One point: at the left edge, no last x label."""
    assert text(render_chart([Series("lr", [0.001])], 24, 5)) == [
        'lr  last 0.001  min 0.0…',
        '      │                 ',
        ' 0.001│⠄                ',
        '      │                 ',
        '      └0────────────────',
    ]

def test_log_with_values_le_0():
    """Values <= 0 are clipped to the bottom and marked v."""
    assert text(render_chart([Series("gn", [0.0, -2.0, 1.0, 10.0, 100.0])], 24, 5, log=True)) == [
        'gn  last 100  min -2  m…',
        '   100│              ⣀⠔⠊',
        '      │           ⢀⠤⠊   ',
        '     1│⡀   ⡀   ⢀⠤⠊⠁     ',
        '      └v───v───────────4',
    ]

def test_log_nothing_positive():
    """No value > 0: the chart stays linear (the title says so, cut here)."""
    assert text(render_chart([Series("gn", [0.0, -2.0])], 24, 5, log=True)) == [
        'gn  last -2  min -2  ma…',
        '     0│⠁               ⢰',
        '      │                ⢸',
        '    -2│                ⢸',
        '      └0───────────────1',
    ]

def test_zoom_last_50():
    """The last 50 points."""
    assert text(render_chart([Series("x", RAMP)], 24, 5, zoom=50)) == [
        'x  last 999  min 950  m…',
        '   999│           ⢀⣀⠤⠴⠒⠉',
        '      │     ⢀⣀⠤⠔⠒⠉⠁     ',
        '   950│⣀⠤⠖⠒⠉⠁           ',
        '      └950───────────999',
    ]

def test_zoom_100_panned():
    """100 points, 400 back from the end."""
    assert text(render_chart([Series("x", RAMP)], 24, 5, zoom=100, pan=400)) == [
        'x  last 999  min 500  m…',
        '   599│           ⢀⣀⡤⠴⠒⠋',
        '      │     ⣀⣀⠤⠔⠒⠉⠉     ',
        '   500│⣠⠤⠖⠚⠉⠁           ',
        '      └500───────────599',
    ]

def test_overlay_no_colour():
    """Two series without colour: one marker each."""
    assert text(render_chart([Series("a", [1.0, 2.0, 3.0]), Series("b", [3.0, 2.0, 1.0])], 24, 5, color=False, title="loss")) == [
        'loss  min 1  max 3      ',
        '     3│+++++       *****',
        '      │     +++++++     ',
        '     1│*****       +++++',
        '      └0───────────────2',
    ]

def test_ascii():
    """--ascii: cell resolution, ASCII only."""
    assert text(render_chart([Series("a", [1.0, 2.0, 3.0])], 24, 5, ascii=True)) == [
        'a  last 3  min 1  max 3 ',
        '     3|            *****',
        '      |     *******     ',
        '     1|*****            ',
        '      +0---------------2',
    ]

def test_x_by_time():
    """X by wall time: points placed by time, labels relative."""
    assert text(render_chart([Series("a", [1.0, 2.0, 3.0], t=[100.0, 160.0, 400.0])], 24, 5, x_by="time")) == [
        'a  last 3  min 1  max 3 ',
        '     3│        ⣀⣀⡠⠤⠤⠒⠒⠊⠉',
        '      │  ⡠⠔⠒⠊⠉⠉         ',
        '     1│⡠⠊               ',
        '      └+0s────────+5m00s',
    ]


def test_every_line_has_the_exact_width_and_height():
    for w, h in ((80, 24), (40, 10), (12, 3), (11, 2), (200, 50), (5, 1)):
        for log in (False, True):
            lines = render_chart([Series("loss", [3.0, NAN, 1.0, -1.0, INF] * 50)], w, h, log=log)
            assert len(lines) == h
            assert all(line_width(l) == w for l in lines), (w, h)


def test_nan_marker_and_title_use_the_error_role():
    lines = render_chart([Series("loss", [4.0, 3.0, NAN, 2.0, 1.0])], 24, 5)
    assert ("!", R.ERROR) in lines[-1]
    assert any(t.strip() == "NaN/inf" and r == R.ERROR for t, r in lines[0])


def test_last_value_nan_is_shown_as_nan_in_the_error_role():
    lines = render_chart([Series("loss", [1.0, 2.0, NAN])], 30, 5)
    assert ("NaN  NaN/inf", R.ERROR) in lines[0]


def test_a_single_spike_is_never_hidden_by_downsampling():
    ys = [1.0] * 100000
    ys[50123] = 1000.0
    lines = render_chart([Series("loss", ys)], 40, 6)
    assert text(lines)[0].startswith("loss  last 1  min 1  max 1000")
    # the top plot row has the spike drawn
    assert text(lines)[1].strip("0123456789 .│") != ""


def test_a_single_nan_among_100000_points_is_marked():
    ys = [1.0] * 100000
    ys[50123] = NAN
    assert "!" in text(render_chart([Series("loss", ys)], 40, 6))[-1]


def test_bucket_min_max_and_flags_of_downsampled_history_are_drawn():
    # three buckets whose mean is flat but whose min/max and a NaN flag are not
    s = Series("loss", [1.0, 1.0, 1.0], x=[0, 10, 20], lo=[1.0, 0.0, 1.0], hi=[1.0, 5.0, 1.0], flagged=[2])
    t = text(render_chart([s], 40, 5))
    assert t[0].startswith("loss  last 1  NaN/inf  min 0  max 5")
    assert t[-1].endswith("!") or "!" in t[-1]


def test_overlay_roles_are_distinct_per_series():
    lines = render_chart([Series("a", [1.0, 2.0, 3.0]), Series("b", [3.0, 2.0, 1.0])], 24, 5, title="loss")
    roles = {r for line in lines[1:-1] for _, r in line}
    assert R.SERIES[0] in roles and R.SERIES[1] in roles


def test_legend_markers_without_colour():
    assert text([legend(["run-a", "run-b"], 20, color=False)]) == ["* run-a  + run-b    "]
    line = legend(["run-a", "run-b"], 20)
    assert [r for t, r in line][:2] == [R.SERIES[0], R.SERIES[1]]


@pytest.mark.parametrize("zoom", ZOOMS)
def test_zoom_levels_show_the_last_n_points(zoom):
    lines = text(render_chart([Series("x", RAMP)], 30, 5, zoom=zoom))
    first = 0 if zoom is None else 1000 - zoom
    assert lines[-1].split("\u2514")[1].startswith(str(first))
    assert lines[-1].endswith("999")


def test_window_and_pan_are_clamped():
    assert window(1000, None, 10) == (0, 1000)
    assert window(1000, 50, 0) == (950, 1000)
    assert window(1000, 50, 10 ** 6) == (0, 50)
    assert window(30, 50, 5) == (0, 30)


def test_empty_series_says_no_data():
    t = text(render_chart([Series("loss", [])], 24, 5))
    assert any("no data" in l for l in t)


def test_all_nan_says_no_finite_value():
    t = text(render_chart([Series("loss", [NAN, NAN])], 24, 5))
    assert any("no finite value" in l for l in t)
    assert "!" in t[-1]


def test_none_counts_as_nan():
    t = text(render_chart([Series("loss", [1.0, None, 2.0])], 24, 5))
    assert "!" in t[-1]


def test_tiny_chart_shows_name_and_latest():
    assert text(render_chart([Series("loss", [1.0, 0.25])], 20, 2)) == ["loss 0.25           ", " " * 20]


def test_ascii_output_is_ascii():
    for line in text(render_chart([Series("a", [1.0, NAN, 3.0]), Series("b", [2.0, 1.0])], 40, 8, ascii=True)):
        assert line.isascii()
    assert math.isnan(NAN)


def _long(n, nan_at=()):
    ys = [math.exp(-i / 20000.0) + 0.05 * math.sin(i * 0.37) for i in range(n)]
    for i in nan_at:
        ys[i] = NAN
    return ys


def test_a_long_series_draws_the_same_with_the_kept_index_as_with_its_own():
    from ttop.view.chartbins import blocks_of

    ys = _long(60000, nan_at=(12345, 40000))
    xs = list(range(60000))
    own = render_chart([Series("loss", ys, x=xs, blocks=blocks_of(ys))], 80, 10)
    kept = render_chart([Series("loss", ys, x=xs)], 80, 10)
    assert kept == own
    assert text(kept)[-1].count("!") == 2


def test_the_kept_index_follows_a_growing_series():
    ys = _long(50000)
    xs = list(range(50000))
    render_chart([Series("loss", ys, x=xs)], 80, 10)  # the index is made here
    for k in range(3000):  # the same lists grow: a spike and a NaN arrive
        ys.append(1000.0 if k == 1234 else (NAN if k == 2345 else 0.5))
        xs.append(len(xs))
    grown = render_chart([Series("loss", ys, x=xs)], 80, 10)
    fresh = render_chart([Series("loss", list(ys), x=list(xs))], 80, 10)  # new lists: a new index
    assert grown == fresh
    assert text(grown)[0].startswith("loss  last 0.5  NaN/inf  min ") and "max 1000" in text(grown)[0]
    assert "!" in text(grown)[-1]


@pytest.mark.parametrize("ys, xs, log", [
    ([1e308, -1e308, 0.0], None, False),  # y1 - y0 overflows
    ([1e308, -1e308], None, False),  # and so does the line between the two points
    ([1.7976931348623157e308] * 3, None, False),  # a flat series padded past the float range
    ([5e-324] * 3, None, False),  # a flat series whose padding (a tenth of it) is 0
    ([5e-324, 1e308], None, True),  # 1e308 / 5e-324 overflows on a log scale
    ([1.0, 2.0, 3.0], [0, 10 ** 300, 10 ** 308], False),  # x span * column overflows
    ([1.0, 2.0, 3.0], [-1e308, 0.0, 1e308], False),  # x1 - x0 overflows
])
def test_values_near_the_ends_of_the_float_range_are_drawn_not_a_crash(ys, xs, log):
    # a progress file's history (or another user's history file) holding
    # 1e308 and -1e308 crashed the monitor on Enter (int() of NaN / inf)
    for x_by in ("step", "time"):
        lines = render_chart([Series("m", ys, x=xs, t=xs)], 40, 8, log=log, x_by=x_by)
        assert len(lines) == 8 and all(line_width(line) == 40 for line in lines)
        plot = "".join(t for line in lines[1:-1] for t, _ in line[1:])
        assert any(ch not in " │" for ch in plot)  # something is drawn
        lines = render_chart([Series("m", ys, x=xs, t=xs), Series("n", [1.0, 2.0])], 40, 8, log=log, x_by=x_by, ascii=True)
        assert len(lines) == 8
