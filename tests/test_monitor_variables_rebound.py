"""``monitor.variables = {...}``: a script that gives the monitor a dict of
its own instead of calling track_variables (or after it). The monitor kept
the dict it was made with: the file showed none of the new variables, ttop's
edits went into the old dict, where the script no longer looked, and
track_variables added to the old one too."""
from __future__ import annotations

from conftest import load_json as load
from conftest import wait_until
from ttop import TrainingMonitor
from ttop.levers.control import write_edit


def test_a_dict_given_as_the_variables_is_the_one_shown_and_edited(tmp_path):
    m = TrainingMonitor(folder=str(tmp_path), run_name="rebound", interval=0.02, gpu=False)
    m.track_variables({"old": 1})
    m.start_monitoring()
    try:
        mine = {"lr": 0.5, "tag": "a"}
        m.variables = mine
        d = wait_until(lambda: (lambda d: d if d and d["variables"] == {"lr": 0.5, "tag": "a"} else None)(load(m.path)),
                       timeout=30)
        assert d["variable_types"] == {"lr": "float", "tag": "str"}
        write_edit(str(tmp_path), "rebound", d, "lr", 0.25)
        wait_until(lambda: (load(m.path) or {}).get("control_seq") == 1, timeout=30)
        assert m.variables is mine and mine["lr"] == 0.25
        m.track_variables({"wd": 0.1})
        assert m.variables is mine and mine["wd"] == 0.1
    finally:
        m.set_finished()
    d = load(m.path)
    assert d["variables"] == {"lr": 0.25, "tag": "a", "wd": 0.1}, d
    assert (d["control_seq"], d["control_error"]) == (1, None)


class Scalar:
    """A numpy-like scalar: its value through item()."""

    def __init__(self, v):
        self.v = v

    def item(self):
        return self.v

    def __str__(self):
        return str(self.v)


def test_odd_contents_of_a_dict_given_as_the_variables_keep_the_writer_going(tmp_path):
    m = TrainingMonitor(folder=str(tmp_path), run_name="odd", interval=0.02, gpu=False)
    m.start_monitoring()
    try:
        m.variables = {1: "one", "s": Scalar(3), "lst": [1, 2]}
        d = wait_until(lambda: (lambda d: d if d and d["variables"] else None)(load(m.path)), timeout=30)
        assert d["variable_types"]["s"] == "int" and "lst" not in d["variable_types"]
        m.start_phase("train")
        m.start_batch()
        wait_until(lambda: (load(m.path) or {}).get("batch") == 1, timeout=30)  # still written
    finally:
        m.set_finished()
    assert load(m.path)["status"] == "FINISHED"
