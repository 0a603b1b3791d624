"""Health on screen: the table's Health column, the header's counts, and, in a
real terminal, the alert footer, count and bell."""
from __future__ import annotations

import os
import signal
import sys

from conftest import ROOT, wait_until
from ttop.collect.snapshot import HostInfo, RunSnapshot, Snapshot
from ttop.view import roles as R
from ttop.view.header import header_lines
from ttop.view.health import header_segments, health_text
from ttop.view.state import ViewState
from ttop.view.table import columns_for, render_table, visible_rows


def run(key, health=None, reason=None, status="RUNNING"):
    return RunSnapshot(key=key, path="/p/%s.json" % key, data={"phase": "train"}, run_name=key, status=status,
                       reported_status=status, health=health, health_reason=reason)


def snap(*runs):
    return Snapshot(seq=1, taken_at=0.0, folder="/p", runs=tuple(runs),
                    host=HostInfo(hostname="box", cpu_count=2, cpu_percent=5.0, mem_total=100, mem_used=10))


def test_health_text_and_symbols():
    assert health_text(run("a", "CRIT", "loss is NaN")) == "\u2716 loss is NaN"
    assert health_text(run("a", "WARN", "stalled: x"), ascii=True) == "! stalled: x"
    assert health_text(run("a", "OK")) == "\u2713" and health_text(run("a", "OK"), ascii=True) == "ok"
    assert health_text(run("a")) == "-"
    assert health_text(run("a", "CRIT", "bad\x1b[31m")) == "\u2716 bad"  # cleaned like every text


def test_column_only_with_verdicts_and_sorted_crit_first():
    assert "health" not in [c.key for c in columns_for(snap(run("a")), ViewState())]
    s = snap(run("a", "OK"), run("b", "CRIT", "loss is NaN"), run("c", "WARN", "stalled"), run("d", None, None, "FINISHED"))
    keys = [c.key for c in columns_for(s, ViewState())]
    assert keys[keys.index("status") + 1] == "health"
    st = ViewState(sort_key="health")
    assert [r.run.key for r in visible_rows(s, st)] == ["b", "c", "a", "d"]
    frame = render_table(s, ViewState(), 80, 10, select=False)
    title = "".join(t for t, _ in frame.lines[0])
    assert title.split()[:4] == ["Run", "Name", "Status", "Health"]
    row_b = frame.lines[1 + [r.run.key for r in frame.rows].index("b")]
    assert ("\u2716 loss is NaN     ", R.HEALTH_CRIT) in [(t[1:], r) for t, r in row_b]


def test_header_counts():
    s = snap(run("a", "OK"), run("b", "CRIT"), run("c", "CRIT"), run("d", "WARN"))
    assert [t for t, _ in header_segments(s, alerts=3)] == ["\u27162 CRIT", "  ", "!1 WARN", "  ", "3 alerts", "  "]
    assert header_segments(snap(run("a", "OK"))) == []
    line = "".join(t for t, _ in header_lines(s, ViewState(alerts=1), 120, 3)[0])
    assert line.startswith("box  \u27162 CRIT  !1 WARN  1 alert  CPU [")


WRITER = os.path.join(ROOT, "tests", "fakes", "progress_writer.py")


def test_monitor_footer_count_and_bell_on_a_killed_run(ttop_term, progress_dir, spawn, tmp_path):
    job = spawn([sys.executable, WRITER, "--folder", str(progress_dir), "--name", "victim", "--interval", "0.2"])
    wait_until(lambda: (progress_dir / "victim.json").exists(), timeout=30)
    events = tmp_path / "ev.jsonl"
    term = ttop_term(str(progress_dir), "--bell", "--events", str(events), interval="0.3")
    term.wait_for("victim")
    term.wait_for(lambda t: "\u2713" in (t.line(t.row_of("victim")) or ""))
    assert b"\x07" not in bytes(term.raw)
    os.kill(job.pid, signal.SIGKILL)
    term.wait_for("victim: RUNNING -> KILLED", timeout=30)
    term.wait_for("1 alert")
    # the bell is rung right after the frame that shows the alert (a write of its own)
    term.wait_for(lambda t: b"\x07" in bytes(t.raw), msg="no bell")
    assert len(events.read_text().splitlines()) == 1


def test_detail_header_shows_the_verdict_and_cost():
    from ttop import record
    from ttop.view.detail import DetailModel, DetailState, render_detail

    r = record.replace(run("resnet", "WARN", "GPU idle for 2 min (0%), holding memory"), cost=1.5,
                            cost_projected=4.0)
    f = render_detail(DetailModel(runs=[r]), DetailState(), 160, 24)
    first = f.lines[0]
    assert ("! GPU idle for 2 min (0%), holding memory", R.HEALTH_WARN) in first
    assert "cost 1.50/4.00" in "".join(t for t, _ in first)
