"""The pure view layer: formatting and rendering, asserted with literal lines."""
from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

from ttop import record
from ttop.collect.snapshot import (
    Budgets,
    GpuDevice,
    HostInfo,
    ProcInfo,
    RunResources,
    RunSnapshot,
    SkippedFile,
    Snapshot,
    ThreadInfo,
)
from ttop.view import fmt
from ttop.view import roles as R
from ttop.view.footer import skipped_notice
from ttop.view.header import bar, header_lines
from ttop.view.help import KEYS, help_lines, markdown
from ttop.view.screen import main_frame, render_main
from ttop.view.state import STATUS_CYCLE, ViewState
from ttop.view.table import columns_for, render_table, selected_index, visible_rows
from ttop.view.text import line_width

ROOT = Path(__file__).resolve().parent.parent
GiB = 1024 ** 3


def run(key, status="RUNNING", phase="train", inferred=False, stale=False, data=None, **kw):
    d = {"format": "ttop.progress/1", "run_name": kw.pop("run_name", key), "status": status,
         "updated_at": 1000.0, "phase": phase}
    d.update(data or {})
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=d, run_name=d["run_name"], status=status,
                       reported_status=status, status_inferred=inferred, stale=stale, **kw)


def four_runs():
    return (
        run("alpha", data={"epoch": 2, "total_epochs": 10, "train_batch": 120, "train_total_batches": 500,
                           "rate": 12.34, "times": {"run": {"elapsed": 3725, "remaining": 725, "total": 4450}}},
            pid=4242, resources=RunResources(cpu_percent=98.6, rss_bytes=3435973837, num_procs=3, num_threads=17)),
        run("beta", phase="validation",
            data={"epoch": 3, "total_epochs": 3, "val_batch": 12, "val_total_batches": 50, "rate": 0.52}),
        run("gamma", status="KILLED", phase="train", inferred=True),
        run("delta", status="FINISHED", phase=None),
    )


def snap(runs, **kw):
    return Snapshot(seq=kw.pop("seq", 1), taken_at=1000.0, folder="/p", runs=tuple(runs), **kw)


def text(line):
    return "".join(t for t, _ in line)


def texts(lines):
    return [text(l) for l in lines]


# ---------------------------------------------------------------------------
# formatting


@pytest.mark.parametrize("value,expected", [
    (None, "-"), (0, "0s"), (45, "45s"), (45.9, "45s"), (725, "12m05s"), (3725, "1h02m"),
    (3 * 86400 + 4 * 3600 + 59, "3d04h"), (-5, "0s"), (1e12, ">999d"), (math.nan, "-"), ("NaN", "-"),
    (math.inf, "inf"), ("soon", "-"), (True, "-"), (59.999, "59s"), (-0.0, "0s"), (-math.inf, "0s"),
    (86399999.9, "999d23h"), (86400000.0, ">999d"), (10 ** 400, "inf"),
])
def test_duration(value, expected):
    assert fmt.duration(value) == expected


@pytest.mark.parametrize("value,expected", [
    (None, "-"), (0, "0B"), (999, "999B"), (812 * 1024, "812K"), (3.2 * GiB, "3.2G"), (15 * GiB, "15G"),
    (1000, "1.0K"), (2 ** 70, "1024E"), (math.nan, "NaN"), (-1, "-"),
    (1e301, ">9999E"), (10 ** 400, "inf"),
])
def test_size(value, expected):
    assert fmt.size(value) == expected


@pytest.mark.parametrize("value,expected", [
    (12.34, "12.3/s"), (0.52, "0.52/s"), (0.052, "3.1/min"), (0.0001, "0.4/h"), (250, "250/s"),
    (1234, "1.2k/s"), (0, "0/s"), (None, "-"), (math.nan, "NaN"), (1e300, ">1M/s"), (-3, "-"),
])
def test_rate(value, expected):
    assert fmt.rate(value) == expected


def test_percent_count_fraction_metric():
    assert fmt.percent(37.4) == "37%"
    assert fmt.percent(1e9) == ">9999%"
    assert fmt.percent(None) == "-"
    assert fmt.count(10 ** 12) == "1.0e+12"
    assert fmt.fraction(120, 500) == "120/500"
    assert fmt.fraction(120, None) == "120"
    assert fmt.fraction(None, None) == "-"
    assert fmt.metric(0.123456) == "0.1235"
    assert fmt.metric("NaN") == "NaN"
    assert fmt.metric(1e20) == "1e+20"


# ---------------------------------------------------------------------------
# table


def test_render_table_literal_80():
    lines = render_table(snap(four_runs()), ViewState(), 80, 6).lines
    assert texts(lines) == [
        "Run Name   Status    Phase        Epoch       Batch     Rate  Run El Run Rem    ",
        "alpha      RUNNING   train         2/10     120/500   12.3/s   1h02m  12m05s    ",
        "beta       RUNNING   validation     3/3     v 12/50   0.52/s       -       -    ",
        "gamma      KILLED*   train            -           -        -       -       -    ",
        "delta      FINISHED  -                -           -        -       -       -    ",
    ]
    # roles: title, the selected first row reversed, status colours by phase / status
    assert lines[0] == (("Run Name   Status    Phase        Epoch       Batch     Rate  Run El Run Rem    ", R.TITLE),)
    assert lines[1][0] == ("alpha     ", "normal+sel")
    assert lines[1][1] == (" RUNNING   train     ", "train+sel")
    assert lines[2][1] == (" RUNNING   validation", R.VALIDATION)
    assert lines[3][1] == (" KILLED*   train     ", R.KILLED_INFERRED)
    assert lines[4][1] == (" FINISHED  -         ", R.FINISHED)


def test_killed_reported_vs_inferred_roles_differ():
    a = R.status_role("KILLED", None, inferred=False)
    b = R.status_role("KILLED", None, inferred=True)
    assert a == R.KILLED and b == R.KILLED_INFERRED and a != b
    assert R.status_role("RUNNING", "loading") == R.LOADING
    assert R.status_role("RUNNING", "whatever") == R.RUNNING
    assert R.status_role("CANCELED", "train") == R.CANCELED
    assert R.status_role("FAILED", "train") == R.FAILED


def test_scrolling_keeps_name_column():
    s = snap(four_runs())
    lines = render_table(s, ViewState(col_offset=18), 80, 3).lines
    assert texts(lines)[:2] == [
        "Run Name <    CPU    RAM    GPU Procs Threads      PID Wandb URL                ",
        "alpha         99%   3.2G      -     3      17     4242 -                        ",
    ]


def test_wandb_url_reachable_in_full():
    url = "https://wandb.ai/some-team/some-project/runs/abcdef123456"
    s = snap([run("alpha", data={"links": {"wandb": url}})])
    ncols = len(columns_for(s))
    lines = render_table(s, ViewState(col_offset=ncols - 1), 80, 3).lines
    assert url in text(lines[1])


def test_wandb_column_between_others_is_as_wide_as_the_longest_link_shown():
    """The link column placed before others (the column chooser): as wide as
    the longest link of the rows shown, the columns after it where that
    leaves them, in the monitor's frame as in the printed table."""
    from ttop.view.columns import DEFAULT

    url = "https://wandb.ai/team/project/runs/abcdef123456"
    s = snap([run("alpha", data={"links": {"wandb": url}}), run("beta"), run("gamma")])
    order = (("status", True), ("wandb", True), ("pid", True)) + tuple(
        (k, False) for k, _ in DEFAULT if k not in ("status", "wandb", "pid"))
    for width_, cols in ((120, "Status    Wandb URL" + " " * (len(url) - 9) + "      PID"),
                         (60, "Status    Wandb URL")):
        st = ViewState(columns=order)
        main = render_main(s, st, width_, 12)
        main = main[[text(l).startswith("Run Name") for l in main].index(True):]
        for lines in (render_table(s, st, width_, 5).lines, main):
            assert text(lines[0]).startswith("Run Name   " + cols), (width_, texts(lines))
            if width_ == 120:
                assert text(lines[1]).startswith("alpha      RUNNING   " + url + "        -")
                assert text(lines[2]).startswith("beta       RUNNING   -" + " " * (len(url) - 1) + "        -")
            else:
                assert text(lines[1]).startswith("alpha      RUNNING   " + url[:38] + "\u2026")


def test_host_column_only_with_several_hosts():
    one = snap([run("a", host="h1"), run("b", host="h1")])
    two = snap([run("a", host="h1"), run("b", host="h2")])
    assert "Host" not in text(render_table(one, ViewState(), 120, 4).lines[0])
    lines = render_table(two, ViewState(), 120, 4).lines
    assert text(lines[0]).startswith("Run Name   Host         Status")
    assert text(lines[2]).startswith("b          h2           RUNNING")


def test_batch_fallback_to_batch_keys_in_train():
    s = snap([run("a", data={"batch": 7, "total_batches": 9})])
    assert "7/9" in text(render_table(s, ViewState(), 80, 3).lines[1])


def expanded_snapshot():
    procs = (
        ProcInfo(pid=100, ppid=1, name="python", create_time=5.0, depth=0, cpu_percent=150.0, rss_bytes=2 * GiB,
                 num_threads=2, gpu_memory_bytes=GiB,
                 threads=(ThreadInfo(100, 1.0, 0.5, 90.0), ThreadInfo(101, 2.0, 0.1, 60.0))),
        ProcInfo(pid=200, ppid=100, name="worker", create_time=6.0, depth=1, cpu_percent=20.0, rss_bytes=512 * 1024 ** 2,
                 num_threads=1),
    )
    return snap([run("a", pid=100, pid_create_time=5.0, processes=procs), run("b")])


def test_expanded_rows_literal():
    s = expanded_snapshot()
    st = ViewState(expanded=frozenset({"a"}), col_offset=18)
    rows = visible_rows(s, st)
    assert [r.id for r in rows] == [("run", "a"), ("proc", "a", 100), ("thread", "a", 100, 100),
                                    ("thread", "a", 100, 101), ("proc", "a", 200), ("run", "b")]
    lines = render_table(s, st, 80, 8).lines
    assert texts(lines) == [
        "Run Name         <    CPU    RAM    GPU Procs Threads      PID Wandb URL        ",
        "a                       -      -      -     -       -      100 -                ",
        "  [P] 100 python     150%   2.0G   1.0G             2      100                  ",
        "    [T] 100           90%                                  100                  ",
        "    [T] 101           60%                                  101                  ",
        "    [P] 200 worker    20%   512M      -             1      200                  ",
        "b                       -      -      -     -       -        - -                ",
    ]
    assert lines[2][0][1] == R.PROC and lines[3][0][1] == R.THREAD


def test_selection_follows_run_not_index():
    s1 = snap([run("b"), run("c"), run("d")])
    st = ViewState(selected=("run", "c"))
    assert selected_index(visible_rows(s1, st), st) == 1
    # a new run sorts before it: the same run stays selected at a new index
    s2 = snap([run("a"), run("b"), run("c"), run("d")], seq=2)
    rows = visible_rows(s2, st)
    assert rows[selected_index(rows, st)].id == ("run", "c")
    # filter that keeps it: still selected
    st2 = st.with_(name_filter="c")
    rows = visible_rows(s2, st2)
    assert [r.id for r in rows] == [("run", "c")] and selected_index(rows, st2) == 0
    # filter that hides it, then cleared: it comes back
    st3 = st.with_(name_filter="d")
    assert visible_rows(s2, st3)[selected_index(visible_rows(s2, st3), st3)].id == ("run", "d")
    st4 = st3.with_(name_filter="")
    rows = visible_rows(s2, st4)
    assert rows[selected_index(rows, st4)].id == ("run", "c")


def test_selected_thread_row_falls_back_to_its_run_when_collapsed():
    s = expanded_snapshot()
    st = ViewState(selected=("thread", "a", 100, 101))
    rows = visible_rows(s, st)
    assert rows[selected_index(rows, st)].id == ("run", "a")


def test_status_and_live_name_filter():
    s = snap(four_runs())
    st = ViewState()
    seen = []
    for _ in range(len(STATUS_CYCLE)):
        seen.append(st.status_filter)
        st = st.next_status_filter()
    assert seen == [None, "RUNNING", "FINISHED", "CANCELED", "FAILED", "KILLED"]
    assert st.status_filter is None
    assert [r.run.key for r in visible_rows(s, ViewState(status_filter="RUNNING"))] == ["alpha", "beta"]
    assert [r.run.key for r in visible_rows(s, ViewState(status_filter="KILLED"))] == ["gamma"]
    # while typing, the buffer filters live; the confirmed filter is ignored
    st = ViewState(name_filter="zzz", editing_filter=True, filter_buffer="ET")
    assert [r.run.key for r in visible_rows(s, st)] == ["beta"]


def test_only_visible_rows_are_drawn_with_1000_runs():
    runs = [run("run-%04d" % i) for i in range(1000)]
    s = snap(runs)
    st = ViewState(selected=("run", "run-0500"))
    tf = render_table(s, st, 100, 20)
    assert len(tf.lines) == 20
    assert tf.top == 500 - 18
    assert text(tf.lines[-1]).startswith("run-0500")
    assert len(tf.rows) == 1000


# ---------------------------------------------------------------------------
# whole screen


def full_snapshot():
    host = HostInfo("box", 8, 37.0, 16 * GiB, 5 * GiB, (0.5, 0.4, 0.3))
    gpus = (GpuDevice(0, "NVIDIA H200", memory_used=12 * GiB, memory_total=140 * GiB, utilization=45, temperature=55),)
    return snap(four_runs(), host=host, gpus=gpus, budgets=Budgets(8, 32 * GiB, 80 * GiB),
                skipped=(SkippedFile("bad.json", "invalid JSON"), SkippedFile("empty.json", "empty file")))


def test_render_main_literal_80x14():
    lines = render_main(full_snapshot(), ViewState(ascii=True), 80, 14)
    assert texts(lines) == [
        "box  CPU [####......] 37% of 8  RAM [###.......] 5.0G/16G  load 0.50            ",
        "GPU0 NVIDIA H200 util [####......] 45%  mem [#.........] 12G/140G  55C          ",
        "Budget  CPU 1.0/8 cores (12%)  RAM 3.2G/32G (10%)  GPU 0B/80G (0%)              ",
        "Run Name   Status    Phase        Epoch       Batch     Rate  Run El Run Rem    ",
        "alpha      RUNNING   train         2/10     120/500   12.3/s   1h02m  12m05s    ",
        "beta       RUNNING   validation     3/3     v 12/50   0.52/s       -       -    ",
        "gamma      KILLED*   train            -           -        -       -       -    ",
        "delta      FINISHED  -                -           -        -       -       -    ",
        " " * 80,
        " " * 80,
        " " * 80,
        " " * 80,
        "2 running 1 finished 0 failed 1 killed  * inferred: process gone  2 files ski...",
        "q quit  h help  s status  f filter  t expand  e edit  o output  k signal  r refr",
    ]
    # Unicode bars by default
    top = text(render_main(full_snapshot(), ViewState(), 80, 14)[0])
    assert top.startswith("box  CPU [\u2588\u2588\u2588\u2588\u2591\u2591\u2591\u2591\u2591\u2591] 37% of 8")
    # the selected row is reversed, the footer legend has the inferred role
    assert lines[4][0][1].endswith("+sel")
    assert (" * inferred: process gone", R.KILLED_INFERRED) in [(t.strip(" ") and t[1:], r) for t, r in lines[12]]


def test_footer_notice_skipped_files():
    s = full_snapshot()
    assert skipped_notice(s) == "2 files skipped: bad.json (invalid JSON), empty.json (empty file)"
    lines = render_main(s, ViewState(), 200, 14)
    assert "2 files skipped: bad.json (invalid JSON), empty.json (empty file)" in text(lines[-2])


def test_footer_paused_refreshing_message_and_filter_prompt():
    s = full_snapshot()
    st = ViewState(paused=True, refreshing=True, message="not available yet", status_filter="RUNNING")
    foot = text(render_main(s, st, 160, 14)[-2])
    assert foot.startswith("PAUSED refreshing\u2026 2 running")
    assert "[2/4 shown: status=RUNNING]" in foot
    assert "not available yet" in foot and "skipped" not in foot
    prompt = text(render_main(s, ViewState(editing_filter=True, filter_buffer="alp"), 80, 14)[-1])
    assert prompt.startswith("Filter: alp\u2581   Enter confirm  Esc cancel")


def test_header_gpu_error_and_device_overflow():
    s = snap([], host=HostInfo("box", 2), gpu_error="NVML not available: libnvidia-ml.so.1 not found")
    lines = texts(header_lines(s, ViewState(), 100, 4))
    assert lines[1].startswith("GPU: NVML not available: libnvidia-ml.so.1 not found")
    gpus = tuple(GpuDevice(i, "H200", memory_used=GiB, memory_total=80 * GiB, utilization=10) for i in range(8))
    s = snap([], host=HostInfo("box", 2), gpus=gpus)
    lines = texts(header_lines(s, ViewState(), 100, 4))
    assert len(lines) == 4
    assert lines[1].startswith("GPU0 ") and lines[2].startswith("GPU1 ")
    assert lines[3].startswith("+6 more devices")


def test_bar():
    assert bar(0.5, 4, ascii=True) == [("##", R.BAR_LOW), ("..", R.BAR_EMPTY)]
    assert bar(0.95, 4, ascii=True) == [("####", R.BAR_HIGH)]
    assert bar(math.nan, 3, ascii=True) == [("...", R.BAR_EMPTY)]
    assert bar(7.0, 2) == [("\u2588\u2588", R.BAR_HIGH)]


@pytest.mark.parametrize("w,h", [(39, 10), (40, 9), (30, 8), (20, 5), (10, 3), (1, 1)])
def test_too_small(w, h):
    lines = render_main(full_snapshot(), ViewState(), w, h)
    assert len(lines) == h
    assert all(line_width(l) == w for l in lines)
    said = " ".join(text(l).strip() for l in lines).strip()
    msg = "ttop needs at least 40x10 (now %dx%d)" % (w, h)
    if w >= 10 and h >= 3:
        # the size it needs is on screen even where the sentence is cut
        assert "40x10" in said and msg.startswith(said.replace("  ", " ")[:w])
    if w >= 20 and h >= 2:
        assert said == msg  # the whole sentence, wrapped at the spaces


@pytest.mark.parametrize("w,h", [(40, 10), (41, 11), (80, 24), (250, 60)])
def test_every_size_fills_exactly(w, h):
    lines = render_main(full_snapshot(), ViewState(), w, h)
    assert len(lines) == h
    assert [line_width(l) for l in lines] == [w] * h
    assert "Run Name" in "".join(texts(lines))


BAD_NAMES = [
    "x" * 500,
    "\u5b66\u7fd2\u5b9f\u9a13-\u65e5\u672c\u8a9e-\u30c6\u30b9\u30c8-\u5927\u304d\u306a\u30e2\u30c7\u30eb-\u5b66\u7fd2",
    "evil\x1b[2J\x1b]0;pwned\x07\r\nname\x00\x7f\u202e",
    "e\u0301\u0301\u0301combining",
]


def test_bad_names_and_values_never_break_layout():
    runs = [run("r%d" % i, run_name=n, data={"rate": v, "epoch": 10 ** 15, "total_epochs": -1,
                                             "times": {"run": {"elapsed": v, "remaining": "NaN"}},
                                             "links": {"wandb": "http://x/\x1b[31mred"}},
                resources=RunResources(cpu_percent=v, rss_bytes=10 ** 30))
            for i, (n, v) in enumerate(zip(BAD_NAMES, [math.nan, math.inf, 1e308, -1e308]))]
    s = snap(runs, host=HostInfo("h\x1bost", 2, math.nan, 0, 10))
    for off in (0, 5, 24):
        for w, h in ((40, 10), (80, 24), (133, 30)):
            lines = render_main(s, ViewState(col_offset=off, expanded=frozenset({"r0"})), w, h)
            assert [line_width(l) for l in lines] == [w] * h
            for l in lines:
                for t, _ in l:
                    assert not any(ord(c) < 32 or 0x7f <= ord(c) < 0xa0 for c in t), repr(t)
    out = text(render_table(s, ViewState(), 133, 6).lines[2])
    assert "\u5b66\u7fd2" in out  # wide names are kept, just measured


def test_ascii_mode_has_no_unicode():
    s = full_snapshot()
    for line in render_main(s, ViewState(ascii=True), 80, 14) + render_main(s, ViewState(ascii=True, col_offset=3), 45, 12):
        assert text(line).isascii(), text(line)
    assert "#" in text(render_main(s, ViewState(ascii=True), 80, 14)[0])


def test_main_frame_reports_top_and_selection():
    runs = [run("run-%03d" % i) for i in range(100)]
    fr = main_frame(snap(runs), ViewState(selected=("run", "run-099")), 80, 20)
    assert fr.table.selected == 99
    assert fr.table.rows[fr.table.top + fr.body_height - 1].id == ("run", "run-099")


# ---------------------------------------------------------------------------
# help, once


def test_help_lists_every_key():
    joined = "\n".join(k for k, _ in KEYS)
    for key in ["s", "f", "Esc", "t", "e", "o", "k", "l", "c", "r", "p", "h / ?", "q / Ctrl+C", "Up / Down",
                "PgUp / PgDn", "Home / End", "Left / Right"]:
        assert key in joined
    lines = texts(help_lines(80))
    assert any(l.startswith("  q / Ctrl+C     quit") for l in lines)
    assert all(len(l) == 80 for l in lines)
    assert "| `t` | expand / collapse" in markdown()


def test_print_once_plain_and_colour():
    from ttop.sinks.once import print_once

    s = full_snapshot()
    buf = io.StringIO()
    print_once(s, buf, width=80, color=False)
    out = buf.getvalue().splitlines()
    assert "\x1b" not in buf.getvalue()
    assert out[3] == "Run Name   Status    Phase        Epoch       Batch     Rate  Run El Run Rem"
    assert out[4] == "alpha      RUNNING   train         2/10     120/500   12.3/s   1h02m  12m05s"
    assert out[-1].startswith("2 running 1 finished 0 failed 1 killed  * inferred: process gone  2 files skipp")
    assert len(out) == 3 + 1 + 4 + 1
    buf = io.StringIO()
    print_once(s, buf, width=80, color=True)
    assert "\x1b[1;31m" not in buf.getvalue().splitlines()[4]
    assert "\x1b[32m RUNNING   train     \x1b[0m" in buf.getvalue()
    buf = io.StringIO()
    print_once(s, buf, width=80, color=False, ascii=True)
    assert buf.getvalue().isascii()


def test_selected_run_explains_inferred_and_stale_status():
    runs = [run("a", status="KILLED", inferred=True, status_reason="process 123 is gone"),
            run("b", stale=True, stale_reason="no heartbeat for 2m05s"), run("c")]
    s = snap(runs)
    foot = text(render_main(s, ViewState(), 160, 12)[-2])
    assert "1 stale" in foot
    assert "a: KILLED* (process 123 is gone)" in foot
    foot = text(render_main(s, ViewState(selected=("run", "b")), 160, 12)[-2])
    assert "b: stale, no heartbeat for 2m05s" in foot
    # stale rows are dimmed, on every segment
    lines = render_main(s, ViewState(), 160, 12)
    row_b = next(l for l in lines if text(l).startswith("b "))
    assert all(R.split(r)[1] == {"dim"} for _, r in row_b)


def test_selection_stays_near_when_its_run_vanishes():
    s1 = snap([run("r%d" % i) for i in range(10)])
    st = ViewState(selected=("run", "r5"), sel_index=5)
    s2 = snap([run("r%d" % i) for i in range(10) if i != 5], seq=2)
    rows = visible_rows(s2, st)
    assert rows[selected_index(rows, st)].id == ("run", "r6")
    assert selected_index(visible_rows(s1, st), st) == 5


def test_docs_key_list_matches_help():
    doc = (ROOT / "docs" / "ui.md").read_text(encoding="utf-8")
    assert markdown() in doc


def test_to_ascii_keeps_cell_widths():
    from ttop.view.asciify import to_ascii

    s = "\u5b66x\u00e9e\u0301\u2588"
    assert to_ascii(s) == "??x?e?"
    assert to_ascii("plain") == "plain"


def test_wandb_url_in_full_in_the_footer_when_its_column_is_in_view():
    url = "https://wandb.ai/a-rather-long-team-name/a-rather-long-project-name/runs/abcdef123456?workspace=user"
    s = snap([run("alpha", data={"links": {"wandb": url}}), run("beta")])
    ncols = len(columns_for(s))
    lines = render_main(s, ViewState(col_offset=ncols - 1), 120, 12)
    assert text(lines[-2]).rstrip().endswith("wandb: " + url)
    assert "wandb:" not in text(render_main(s, ViewState(), 120, 12)[-2])
    # another run selected: no link
    lines = render_main(s, ViewState(col_offset=ncols - 1, selected=("run", "beta")), 120, 12)
    assert "wandb:" not in text(lines[-2])
    # longer than the line shares: the link gets the whole status line
    lines = render_main(s, ViewState(col_offset=ncols - 1), 110, 12)
    assert text(lines[-2]).rstrip() == "wandb: " + url


@pytest.mark.parametrize("w", [40, 61, 80, 100])
def test_print_once_never_wider_than_asked(w):
    from ttop.sinks.once import print_once

    buf = io.StringIO()
    print_once(full_snapshot(), buf, width=w, color=False)
    for line in buf.getvalue().splitlines():
        assert line_width((( line, "normal"),)) <= w, line


def test_header_tpu_lines_and_errors():
    from ttop.collect.snapshot import TpuChip

    tpus = (TpuChip(0, device_id=7, memory_used=8 * GiB, memory_total=16 * GiB, duty_cycle=93.0),)
    s = snap([], host=HostInfo("box", 2), tpus=tpus, gpu_error="NVML not available: no driver")
    lines = texts(header_lines(s, ViewState(ascii=True), 80, 5))
    assert lines[1].rstrip() == "TPU0 duty [#########.] 93%  mem [#####.....] 8.0G/16G"
    assert lines[2].startswith("GPU: NVML not available: no driver")
    roles = [r for _, r in header_lines(s, ViewState(ascii=True), 80, 5)[1]]
    assert R.BAR_HIGH in roles and R.BAR_LOW in roles  # 93 % duty is red, 50 % memory green


def test_dead_or_stale_runs_show_no_rate_or_time_left():
    """A dead job must never look alive: the last reported rate and time left
    of an inferred-KILLED, ended or stale run are not shown."""
    data = {"rate": 12.0, "times": {"run": {"elapsed": 60, "remaining": 600, "total": 660},
                                    "epoch": {"remaining": 30}, "train": {"remaining": 20},
                                    "validation": {"remaining": 10}}}
    live = run("live", data=data)
    killed = record.replace(run("killed", status="KILLED", inferred=True, data=data), reported_status="RUNNING")
    dead = (killed, run("stale", stale=True, data=data),
            run("failed", status="FAILED", data=data))
    cols = {c.key: c for c in columns_for(snap((live,) + dead))}
    keys = ["rate", "run_remaining", "epoch_remaining", "train_remaining", "val_remaining"]
    assert [cols[k].run(live) for k in keys] == ["12.0/s", "10m00s", "30s", "20s", "10s"]
    for r in dead:
        assert [cols[k].run(r) for k in keys] == ["-"] * 5, r.key
        assert cols["run_elapsed"].run(r) == "1m00s"  # how long it ran is still true
    # a total is a projection while RUNNING is reported: gone once the run is dead or stale,
    # kept when the run itself reported its end (then it is the real duration)
    assert cols["run_total"].run(live) == "11m00s"
    assert [cols["run_total"].run(r) for r in dead] == ["-", "-", "11m00s"]


def test_large_epoch_and_batch_counters_are_shown_whole():
    # an LLM run counts steps in the hundreds of thousands: the column widens
    # rather than cut the total short ("123456/10…")
    s = snap([run("llm", data={"epoch": 999, "total_epochs": 1000, "train_batch": 123456,
                               "train_total_batches": 1000000}),
              run("small", data={"epoch": 1, "total_epochs": 3, "train_batch": 5, "train_total_batches": 50})])
    lines = texts(render_table(s, ViewState(), 120, 4).lines)
    assert lines[0].startswith("Run Name   Status    Phase         Epoch          Batch     Rate ")
    assert lines[1].startswith("llm        RUNNING   train      999/1000 123456/1000000 ")
    assert lines[2].startswith("small      RUNNING   train           1/3           5/50 ")
    # ordinary counters keep the usual widths
    lines = texts(render_table(snap([run("small", data={"epoch": 1, "total_epochs": 3})]), ViewState(), 120, 3).lines)
    assert lines[0].startswith("Run Name   Status    Phase        Epoch       Batch ")


def test_marks_and_format_characters_take_no_cells_as_the_terminal_counts_them():
    # Thai and Devanagari vowel signs (non-spacing marks without a combining
    # class), variation selectors and zero-width format characters: the C
    # library's wcwidth, which ncurses uses, gives them 0 cells
    from ttop.view.text import fit, width
    thai = "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e2a\u0e34\u0e48\u0e07\u0e17\u0e35\u0e48"
    assert width(thai) == 10
    assert width("\u0939\u093f\u0928\u094d\u0926\u0940") == 5
    assert width("a\ufeffb\u2060c") == 3
    assert width("\u2764\ufe0f") == 1
    assert width("\u1100\u1161\u11a8") == 2  # a Hangul syllable from jamo
    assert fit(thai, 12) == thai + "  "
    lines = render_table(snap([run("t", run_name=thai)]), ViewState(), 60, 2).lines
    assert [line_width(l) for l in lines] == [60, 60]
    assert text(lines[0]).startswith("Run Name   Status ")  # the name takes 10 cells, not 14
    assert text(lines[1]).startswith(thai + " RUNNING ")


def test_budget_line_counts_only_this_machines_running_runs():
    """Budgets are this machine's: a run on another host does not use them."""
    from ttop.view.header import budget_line

    here = run("here", resources=RunResources(cpu_percent=150.0, rss_bytes=2 * GiB))
    far = run("far", host="gpu-node-7", local=False,
              resources=RunResources(cpu_percent=400.0, rss_bytes=20 * GiB, source="reported"))
    done = run("done", status="FINISHED", resources=RunResources(cpu_percent=90.0, rss_bytes=GiB))
    line = text(budget_line(snap([here, far, done], budgets=Budgets(8, 32 * GiB)), 80))
    assert line.startswith("Budget  CPU 1.5/8 cores (19%)  RAM 2.0G/32G (6%)"), line


def test_frames_keep_only_the_runs_of_the_last_snapshots():
    """A live run is a new object in each snapshot: what the table keeps
    to draw it again lets it go once two newer snapshots were drawn, while
    a run that stays the same object (an ended run) is still drawn from
    what was kept."""
    import gc
    import weakref

    ended = run("old", status="FINISHED", data={"epoch": 3, "total_epochs": 3})
    first = [run("live-%d" % i, data={"epoch": 1, "batch": i}) for i in range(5)]
    refs = [weakref.ref(r) for r in first]
    st = ViewState()
    frames = [texts(main_frame(snap(first + [ended], seq=1), st, 120, 20).lines)]
    del first
    for seq in range(2, 6):
        live = [run("live-%d" % i, data={"epoch": 1, "batch": i + seq}) for i in range(5)]
        frames.append(texts(main_frame(snap(live + [ended], seq=seq), st, 120, 20).lines))
        del live
    gc.collect()
    assert all(r() is None for r in refs)
    assert all(any(l.startswith("old ") for l in f) for f in frames)
    assert any("live-4" in l for l in frames[-1])


def test_a_frame_asked_for_again_is_the_one_made_and_a_change_shows():
    """The monitor makes each snapshot's frame ahead and then draws it: the
    second ask gets the frame made (not made again); another snapshot,
    view or size gets a frame of its own, showing what changed."""
    s = snap(four_runs())
    a = main_frame(s, ViewState(), 120, 20)
    assert main_frame(s, ViewState(), 120, 20) is a
    assert main_frame(s, ViewState(message="hello"), 120, 20) is not a
    assert "hello" in text(main_frame(s, ViewState(message="hello"), 120, 20).lines[-2])
    assert main_frame(s, ViewState(), 121, 20) is not a
    moved = list(four_runs())
    moved[0] = run("alpha", data={"epoch": 3, "total_epochs": 10}, pid=4242)
    b = main_frame(snap(moved, seq=2), ViewState(), 120, 20)
    row = next(text(l) for l in b.lines if text(l).startswith("alpha"))
    assert " 3/10 " in row and " 2/10 " not in row
    assert main_frame(s, ViewState(), 120, 20) is not a  # made again after another frame: equal lines
    assert texts(main_frame(s, ViewState(), 120, 20).lines) == texts(a.lines)


def test_a_long_name_filter_being_typed_shows_its_end():
    """The filter prompt showed the start of what was typed: past the
    screen's width the end, where the cursor is, was cut off."""
    from ttop.view.footer import hint_line

    for ascii_ in (False, True):
        for typed, end in (("a" * 200 + "XYZ", "XYZ"), ("\u8a13" * 100 + "END", "END")):
            text = "".join(t for t, _ in hint_line(ViewState(editing_filter=True, filter_buffer=typed, ascii=ascii_), 60))
            assert text.startswith("Filter: ") and text.rstrip().endswith(end + ("_" if ascii_ else "\u2581")), text
            assert "..." in text if ascii_ else "\u2026" in text
        short = "".join(t for t, _ in hint_line(ViewState(editing_filter=True, filter_buffer="bert", ascii=ascii_), 60))
        assert short.startswith("Filter: bert") and "Enter confirm" in short
