"""What the alert command's drop notice says about where the dropped events are."""
from __future__ import annotations

from ttop.collect.snapshot import RunSnapshot, Snapshot
from ttop.sinks.alerts import Alerts


def _snap(seq, status):
    run = RunSnapshot(key="r", path="/p/r.json", data={"started_at": 1.0}, run_name="r", status=status,
                      reported_status=status, health=None, pid=42, host="box")
    return Snapshot(seq=seq, taken_at=1000.0 + seq, folder="/p", runs=(run,))


def _notices(tmp_path, events_path):
    alerts = Alerts(events_path, "true", per_minute=0)
    said = []
    alerts.on_error.append(said.append)
    try:
        alerts.feed(_snap(1, "RUNNING"))
        assert len(alerts.feed(_snap(2, "FAILED"))) == 1
    finally:
        alerts.close()
    return [s for s in said if "not sent" in s]


def test_without_an_events_file_the_notice_names_none(tmp_path):
    said = _notices(tmp_path, None)
    assert len(said) == 1 and "events file" not in said[0], said
    assert "--events" in said[0], said


def test_with_an_events_file_the_notice_names_it(tmp_path):
    path = tmp_path / "ev.jsonl"
    said = _notices(tmp_path, str(path))
    assert len(said) == 1 and str(path) in said[0], said
    assert path.read_text().count("\n") == 1
