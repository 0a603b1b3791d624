"""The monitor writes only the rows that changed since the last frame
(ttop.ui.paint; a block of rows that moved by one is moved, not drawn
again): a screen kept up to date that way shows, cell for cell (text and
attributes), what a monitor started afresh on the same files draws whole,
after rows change in place, change width or role, and after a resize.
Real ttop processes in real pseudo-terminals (pyte)."""
from __future__ import annotations

import time

from ptyharness import TtopTerm
from ttop.progress import write_json_atomic

COLUMNS = "status,phase,epoch,batch,rate,run_elapsed,run_remaining,m:loss,m:acc,m:lr"
NAMES = ("alpha", "bravo-run", "charlie")


def _doc(name: str, batch: int, loss: float, status: str = "RUNNING", phase: str = "train") -> dict:
    # written on another host: no process lookup, every cell comes from the file
    return {"format": "ttop.progress/1", "run_name": name, "status": status, "updated_at": time.time(),
            "heartbeat_interval": 600, "host": "elsewhere", "phase": phase, "epoch": 2, "total_epochs": 9,
            "train_batch": batch, "train_total_batches": 500, "rate": 10.0 + batch / 100.0,
            "times": {"run": {"elapsed": 60.0 + batch, "remaining": 900.0 - batch, "total": 960.0}},
            "metrics": {"loss": loss, "acc": 0.5 + batch / 10000.0, "lr": 0.001},
            "history": {"loss": [loss + 0.3, loss + 0.2, loss + 0.1, loss]}}


def _write(folder, batches, losses, statuses=None, phases=None):
    for i, name in enumerate(NAMES):
        st = statuses[i] if statuses else "RUNNING"
        ph = phases[i] if phases else "train"
        write_json_atomic(str(folder / (name + ".json")), _doc(name, batches[i], losses[i], st, ph))


def _table(term: TtopTerm):
    """The title and run rows: their text and each cell's attributes."""
    top = term.row_of("Run Name")
    assert top is not None, term.dump()
    rows = list(range(top, top + 1 + len(NAMES)))
    cells = term.cells()
    return [(term.line(y), [(c.fg, c.bg, c.reverse, c.bold) for c in cells[y]]) for y in rows]


def _shows(want: str):
    """Every run, ``want`` among them, and the folder read whole (a first
    screen shows the runs read so far)."""
    return lambda t: want in t.text and all(n in t.text for n in NAMES) and "reading the folder" not in t.text


def _same_as_fresh(term: TtopTerm, folder, cols: int, rows: int, want: str) -> None:
    term.wait_for(_shows(want), msg=want)
    fresh = TtopTerm.ttop(str(folder), "--columns", COLUMNS, cols=cols, rows=rows)
    try:
        fresh.wait_for(_shows(want), msg=want)
        term.wait_quiet()
        fresh.wait_quiet()
        assert _table(term) == _table(fresh), "\n%s\n---\n%s" % (term.dump(), fresh.dump())
    finally:
        fresh.close()


def test_rows_written_in_part_show_what_a_fresh_screen_shows(tmp_path):
    folder = tmp_path / "progress"
    folder.mkdir()
    _write(folder, [120, 7, 480], [0.5, 1.25, 0.0312])
    term = TtopTerm.ttop(str(folder), "--columns", COLUMNS, cols=150, rows=16)
    try:
        term.wait_for("120/500")
        # cells move in several places of each row, widths and roles kept
        _write(folder, [121, 8, 481], [0.4, 1.5, 0.0311])
        _same_as_fresh(term, folder, 150, 16, "121/500")
        # a wider cell (the batch counter grows) and a role change (status, phase)
        _write(folder, [1000, 9, 482], [0.3, 1.75, 0.031], statuses=["RUNNING", "FAILED", "RUNNING"],
               phases=["train", "train", "validation"])
        _same_as_fresh(term, folder, 150, 16, "1000/500")
        # resized: the whole screen again, then rows in part at the new width
        term.resize(120, 14)
        _write(folder, [1001, 9, 483], [0.2, 1.75, 0.0309], statuses=["RUNNING", "FAILED", "RUNNING"])
        _same_as_fresh(term, folder, 120, 14, "1001/500")
        _write(folder, [1002, 9, 484], [0.1, 1.75, 0.0308], statuses=["RUNNING", "FAILED", "RUNNING"])
        _same_as_fresh(term, folder, 120, 14, "1002/500")
    finally:
        term.close()
