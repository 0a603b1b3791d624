"""A progress file whose numbers are integers beyond the float range (JSON
allows any number of digits; any user of a shared folder can write one):
the run's detail screen opens, and ttop keeps running."""
from __future__ import annotations

import time

BIG = "1" + "0" * 400


def test_the_detail_of_a_run_with_huge_integer_metrics_opens(ttop_term, progress_dir):
    doc = ('{"format": "ttop.progress/1", "run_name": "huge", "status": "RUNNING", "host": "elsewhere",'
           ' "updated_at": %f, "heartbeat_interval": 3600, "metrics": {"loss": %s, "acc": -%s, "lr": 0.5},'
           ' "history": {"loss": [1, %s, 2], "acc": [-%s]}}' % (time.time(), BIG, BIG, BIG, BIG))
    (progress_dir / "huge.json").write_text(doc)
    (progress_dir / "plain.json").write_text(doc.replace('"huge"', '"plain"').replace(BIG, "3"))
    t = ttop_term(progress_dir, cols=100, rows=24)
    t.wait_for(lambda t: t.row_of("huge ") is not None, msg="the run never showed")
    t.press("ENTER")
    t.wait_for("lr  last 0.5", msg="the detail screen did not open")
    assert "loss  last 2" in t.text and "acc  last -inf" in t.text, t.dump()
    t.press("ESC")
    t.wait_for(lambda t: t.row_of("huge ") is not None, msg="back to the table")
    t.press(" ", "DOWN", " ", "C")  # the comparison's charts read the same series
    t.wait_for("compare 2 runs", msg="the comparison did not open")
    t.press("ESC")
    t.wait_for(lambda t: t.row_of("huge ") is not None, msg="back to the table")
    assert t.proc.isalive()


def test_the_detail_of_a_run_whose_history_has_huge_integer_steps_opens(ttop_term, progress_dir):
    now = time.time()
    lines = ['{"file": "hist.history.jsonl", "format": "ttop.history/1"}',
             '{"m": "loss", "e": [[1, 1, %f, 1.0, 1.0, 1.0, 0], [%s, %s, %f, 2.0, 2.0, 2.0, 0]]}' % (now, BIG, BIG, now),
             '{"m": "acc", "e": [[1, 1, %s, 1.0, 1.0, 1.0, 0], [2, 2, %f, 0.5, 0.5, 0.5, 0]]}' % (BIG, now),
             '{"t": %f, "d": {"loss": [[3, 0.25], [%s, 0.5]], "lr": [[3, 0.125]]}}' % (now, BIG)]
    (progress_dir / "hist.history.jsonl").write_text("\n".join(lines) + "\n")
    doc = ('{"format": "ttop.progress/1", "run_name": "hist", "status": "RUNNING", "host": "elsewhere",'
           ' "updated_at": %f, "heartbeat_interval": 3600, "history_file": "hist.history.jsonl",'
           ' "metrics": {"loss": 0.5, "acc": 0.5, "lr": 0.125}}' % now)
    (progress_dir / "hist.json").write_text(doc)
    t = ttop_term(progress_dir, cols=100, rows=24)
    t.wait_for(lambda t: t.row_of("hist ") is not None, msg="the run never showed")
    t.press("ENTER")
    t.wait_for("lr  last 0.125", msg="the detail screen did not open")
    assert "loss  last 0.25" in t.text and "acc  last 0.5" in t.text, t.dump()
    t.press("x")  # by time: the entries' times
    t.wait_for("lr  last 0.125", msg="the detail screen is gone")
    t.press("ESC")
    t.wait_for(lambda t: t.row_of("hist ") is not None, msg="back to the table")
    assert t.proc.isalive()
