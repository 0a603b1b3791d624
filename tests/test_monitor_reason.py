"""``set_canceled(reason)`` with a reason that is not a string (an exception
caught on the way out, a dict of details): ``error`` was written as that
object, which readers drop ("error" is a string or null), so the run showed
CANCELED with no reason, or an exception without arguments as an empty
string; and a long reason was written whole where set_failed's is capped."""
from __future__ import annotations

import json

import pytest

from ttop import progress as P
from ttop.monitor import TrainingMonitor
from ttop.monitor.hooks import MAX_ERROR_CHARS


@pytest.mark.parametrize("reason,want", [
    ({"why": "preempted", "node": 7}, "{'why': 'preempted', 'node': 7}"),
    (KeyboardInterrupt(), "KeyboardInterrupt"),
    (TimeoutError("budget spent"), "TimeoutError: budget spent"),
    ("stopped by hand", "stopped by hand"),
    (None, None),
])
def test_a_cancel_reason_is_written_as_text(progress_dir, reason, want):
    m = TrainingMonitor(folder=str(progress_dir), run_name="run", handle_signals=False, gpu=False)
    m.start_monitoring()
    m.set_canceled(reason)
    with open(m.path, "rb") as f:
        raw = f.read()
    assert json.loads(raw)["error"] == want
    data, _ = P.parse_progress(raw)  # as readers take it
    assert (data["status"], data["error"]) == ("CANCELED", want)


def test_a_long_cancel_reason_is_capped_as_a_failures_is(progress_dir):
    m = TrainingMonitor(folder=str(progress_dir), run_name="run", handle_signals=False, gpu=False)
    m.start_monitoring()
    m.set_canceled("x" * 100000)
    with open(m.path, "rb") as f:
        error = json.loads(f.read())["error"]
    assert len(error) <= MAX_ERROR_CHARS + 10 and error.startswith("xxx") and "\n...\n" in error
