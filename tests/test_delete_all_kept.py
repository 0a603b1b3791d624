"""The delete dialog of a run whose every file is left alone says so, not
that the run has no files left."""
from __future__ import annotations

import os

from test_levers import Ctx, make_run

from ttop.ui import levers


def test_a_run_whose_files_are_all_kept_is_not_said_to_have_none(progress_dir):
    """Another run naming this run's progress file and log as its own logs
    keeps them ("shared with run other"): the dialog said "No files of this
    run are left." above those lines, of a run whose files were all there."""
    for n in ("mine.json", "mine.stdout.log", "other.json"):
        (progress_dir / n).write_text("x")
    mine = make_run(progress_dir, "mine", status="FINISHED")
    other = make_run(progress_dir, "other", status="FINISHED", logs={"stdout": "mine.json", "stderr": "mine.stdout.log"})
    ctx = Ctx(progress_dir, [mine, other])
    ctx.push(levers.open_delete(ctx, "mine"))
    text = ctx.text(width=120)
    assert "No files of this run are left" not in text, text
    assert "Nothing of run mine can be deleted: its files are left alone" in text, text
    assert "mine.json: shared with run other, not touched" in text, text
    ctx.keys("y")
    assert sorted(os.listdir(progress_dir)) == ["mine.json", "mine.stdout.log", "other.json"]
    # a run whose files are all gone is still said to have none
    for n in ("mine.json", "mine.stdout.log"):
        (progress_dir / n).unlink()
    ctx = Ctx(progress_dir, [mine])
    ctx.push(levers.open_delete(ctx, "mine"))
    assert "No files of this run are left." in ctx.text(width=120)
