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
