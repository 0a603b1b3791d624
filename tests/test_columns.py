"""The column choice: ``--columns`` parsing, ordering, the table it gives,
the chooser's list and keys, the config file (round trip and hostile files),
and ``--once`` / ``--json`` following the choice."""
from __future__ import annotations

import json
import os
import threading

import pytest

from ttop import cli, config
from ttop.collect.snapshot import RunSnapshot, Snapshot
from ttop.sinks.jsonout import snapshot_to_dict
from ttop.sinks.once import render_once
from ttop.ui.columns import ColumnChooser, open_chooser
from ttop.view import columns as C
from ttop.view.state import ViewState
from ttop.view.table import COLUMNS, columns_for


def run(key, metrics=None, host="h1"):
    d = {"format": "ttop.progress/1", "run_name": key, "status": "RUNNING", "updated_at": 1000.0,
         "phase": "train", "metrics": metrics or {}}
    return RunSnapshot(key=key, path="/p/%s.json" % key, data=d, run_name=key, status="RUNNING",
                       reported_status="RUNNING", status_inferred=False, stale=False, host=host)


def snap(runs):
    return Snapshot(seq=1, taken_at=1000.0, folder="/p", runs=tuple(runs))


SNAP = snap([run("a", {"loss": 0.5, "acc": 0.9, "lr": 0.1, "grad_norm": 2.0}), run("b", {"loss": 0.7, "acc": 0.8})])


def keys(choice, s=SNAP):
    return [c.key for c in columns_for(s, ViewState(columns=choice))]


# -- parsing and ordering ------------------------------------------------------


def test_builtin_names_match_the_table_columns():
    table = {c.key: c.title for c in COLUMNS}
    table.update({"health": "Health", "cost": "Cost", C.AUTO: "Metrics"})
    assert C.TITLES == table


def test_a_plain_list_is_exactly_those_columns_in_that_order():
    choice, bare = C.parse("rate, Status ,loss,CPU,name,m:Acc")
    assert [k for k, s in choice if s] == ["rate", "status", "m:loss", "cpu", "m:Acc"]
    assert bare == ("loss",)  # "loss" is no built-in: a metric, to be checked against the runs
    assert keys(choice) == ["rate", "status", "m:loss", "cpu", "m:Acc"]


def test_titles_and_spellings_name_builtins():
    choice, bare = C.parse("Run-El,ep_rem,Wandb URL,mem,val time")
    assert [k for k, _ in choice] == ["run_elapsed", "epoch_remaining", "wandb", "ram", "val_time"] and bare == ()


def test_signed_items_change_the_base():
    base = C.parse("status,metrics,cpu,ram")[0]
    choice, _ = C.parse("-cpu,+m:lr,-loss,+pid", base)
    assert choice == (("status", True), ("metrics", True), ("m:lr", True), ("cpu", False), ("ram", True),
                      ("m:loss", False), ("pid", True))
    # the hidden loss is left out of the automatic metrics; lr is shown once
    assert keys(choice) == ["status", "m:acc", "m:grad_norm", "m:lr", "ram", "pid"]


def test_the_default_choice_is_todays_table():
    assert keys(C.DEFAULT) == keys(None)
    assert keys(None)[:8] == ["status", "phase", "epoch", "batch", "rate", "m:loss", "m:acc", "m:grad_norm"]
    assert "host" not in keys(None)  # one host: no Host column, wherever the choice puts it
    two = snap([run("a", host="h1"), run("b", host="h2")])
    assert keys(C.parse("pid,host")[0], two) == ["pid", "host"]


@pytest.mark.parametrize("text, msg", [
    ("", "empty list"), (" , ", "empty name"), ("cpu,,ram", "empty name"), ("cpu,CPU", "cpu given twice"),
    ("m:", "names no metric"), ("loss,m:loss", "loss given twice"), ("x\x1b[2J", "not a usable metric name"),
    ("-", "names no column"), ("cpu,+ ", "names no column"),
])
def test_bad_lists(text, msg):
    with pytest.raises(C.ColumnsError, match=msg.replace("[", r"\[")):
        C.parse(text)


def test_text_round_trip_keeps_order_and_hidden_columns():
    for choice in (C.DEFAULT, C.parse("-cpu,-metrics,+m:a,b")[0], C.parse("ram,-m:x,status")[0],
                   tuple((k, False) for k, _ in C.DEFAULT)):
        assert C.parse_items(C.to_items(choice))[0] == choice
        assert C.parse(C.to_text(choice))[0] == choice
    odd = (("m:a,b", True), ("cpu", False))  # a metric name with a comma: the list form keeps it
    assert C.parse_items(C.to_items(odd))[0] == odd


def test_unknown_names_are_checked_against_the_metrics_the_runs_report():
    assert C.check_metrics(("loss",), ["loss", "acc"]) is None
    msg = C.check_metrics(("cpuu",), ["loss", "acc"])
    assert "unknown column 'cpuu'" in msg and "cpu, ram" in msg and "report: loss, acc" in msg


# -- the chooser -----------------------------------------------------------------


class Ctx:
    ascii = False
    alert_count = 0

    def __init__(self):
        self.popped = 0
        self.messages = []

    def pop(self):
        self.popped += 1

    def notify(self, m, error=False):
        self.messages.append((m, error))


def chooser(state=None):
    got = []
    st = state or ViewState()
    ch = open_chooser(SNAP, st, SNAP.runs, lambda choice, ctx: got.append(choice))
    return ch, got


def test_the_chooser_lists_every_column_and_applying_it_unchanged_keeps_the_table():
    ch, got = chooser()
    listed = [k for k, _ in ch.items]
    assert set(C.TITLES) <= set(listed)
    assert listed[listed.index("rate") + 1:listed.index(C.AUTO) + 1] == [
        "m:loss", "m:acc", "m:grad_norm", "m:lr", C.AUTO]
    assert dict(ch.items)["m:lr"] is False  # reported, not among the 3 automatic ones
    ctx = Ctx()
    ch.on_key("ENTER", ctx)
    assert ctx.popped == 1 and keys(got[0]) == keys(None)


def test_chooser_keys_hide_move_reset_and_cancel():
    ch, got = chooser()
    ctx = Ctx()
    i = [k for k, _ in ch.items].index("cpu")
    for _ in range(i):
        ch.on_key("DOWN", ctx)
    ch.on_key(" ", ctx)  # hide CPU
    ch.on_key("-", ctx)  # CPU moves up one place
    assert ch.items[i - 1] == ("cpu", False) and ch.cursor == i - 1
    ch.on_key("HOME", ctx)
    ch.on_key("+", ctx)
    ch.on_key("]", ctx)  # Host moves down two places
    assert ch.items[2][0] == "host"
    ch.on_key("ENTER", ctx)
    assert [k for k, _ in got[0]][:3] == ["status", "health", "host"]
    shown = keys(got[0])
    assert "cpu" not in shown and "ram" in shown and shown[:2] == ["status", "phase"]
    ch2, got2 = chooser(ViewState(columns=got[0]))
    assert ("cpu", False) in ch2.items
    ch2.on_key("d", ctx)
    ch2.on_key("ENTER", ctx)
    assert keys(got2[0]) == keys(None)
    ch3, got3 = chooser()
    ch3.on_key(" ", ctx)
    ch3.on_key("ESC", ctx)
    assert got3 == [] and ch3.on_key("CTRL_C", ctx) is False


@pytest.mark.parametrize("size", [(80, 24), (40, 10), (20, 5), (10, 3), (5, 2), (1, 1), (0, 0)])
@pytest.mark.parametrize("ascii", [False, True])
def test_the_chooser_fits_any_size(size, ascii):
    w, h = size
    ch, _ = chooser(ViewState(ascii=ascii))
    ctx = Ctx()
    for key in ("END", "DOWN", "PGUP", " ", "+", "-"):
        ch.on_key(key, ctx)
        lines = ch.render(ctx, w, h)
        assert len(lines) <= max(h, 0)
        for line in lines:
            text = "".join(t for t, _ in line)
            assert len(text) <= max(w, 1)
            if ascii:
                assert text.isascii()
    if h >= 5:
        sel = [line for line in ch.render(ctx, w, h) if any("sel" in r for _, r in line)]
        assert len(sel) == 1


def test_chooser_at_80x24_shows_the_cursor_row_and_the_keys():
    ch, _ = chooser()
    ctx = Ctx()
    lines = ["".join(t for t, _ in line) for line in ch.render(ctx, 80, 24)]
    assert len(lines) == 24 and lines[0].startswith("Columns: ")
    assert lines[1].startswith(" [x] Host             host               only with runs from several hosts")
    assert lines[-1].startswith("Space show/hide  -/+ move  d defaults  Enter apply  Esc cancel")
    ch.on_key("END", ctx)
    lines = ["".join(t for t, _ in line) for line in ch.render(ctx, 80, 24)]
    assert lines[22].startswith(" [x] Wandb URL")


def test_chooser_of_no_runs_has_the_builtins():
    ch = ColumnChooser([], [], [], lambda c, ctx: None)
    ctx = Ctx()
    for key in ("DOWN", " ", "+", "ENTER"):
        ch.on_key(key, ctx)
    assert ch.render(ctx, 20, 5)


# -- --once and --json -------------------------------------------------------------


def test_once_and_json_show_the_chosen_columns():
    choice = C.parse("rate,loss,-acc,cpu")[0]
    lines = ["".join(t for t, _ in line) for line in render_once(SNAP, 120, columns=choice)]
    title = next(line for line in lines if line.startswith("Run Name"))
    assert title.split() == ["Run", "Name", "Rate", "loss", "CPU"]
    d = snapshot_to_dict(SNAP, columns=choice)
    assert d["columns"] == ["name", "rate", "m:loss", "cpu"] and d["metric_columns"] == ["loss"]
    default = snapshot_to_dict(SNAP)
    assert default["columns"][:3] == ["name", "status", "phase"] and default["metric_columns"] == ["loss", "acc", "grad_norm"]
    assert list(d) == list(default)  # the same keys, nothing removed


# -- the config file ----------------------------------------------------------------


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "ttop" / "config.json"


def test_config_path_follows_xdg(monkeypatch, tmp_path):
    assert config.config_path({"XDG_CONFIG_HOME": "/x/y", "HOME": "/h"}) == "/x/y/ttop/config.json"
    assert config.config_path({"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == "/h/.config/ttop/config.json"
    assert config.config_path({"HOME": "/h"}) == "/h/.config/ttop/config.json"


def test_save_and_load_round_trip_keeping_other_keys(cfg):
    assert config.column_choice(None) == (None, None, ())
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"theme": "dark"}')
    choice = C.parse("-cpu,+m:lr")[0]
    assert config.save({"columns": C.to_items(choice)}) == (str(cfg), None)
    data = json.loads(cfg.read_text())
    assert data["theme"] == "dark" and "-cpu" in data["columns"]
    assert config.column_choice(None) == (choice, None, ())
    assert [p for p in os.listdir(cfg.parent) if p != "config.json"] == []  # no temp file left
    # --columns overrides the saved choice; signed items start from it
    assert config.column_choice("status,loss")[0] == (("status", True), ("m:loss", True))
    assert ("cpu", False) in config.column_choice("-ram")[0] and ("ram", False) in config.column_choice("-ram")[0]


def test_a_hand_written_string_is_read_like_the_option(cfg):
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"columns": "-cpu"}')
    choice, problem, _ = config.column_choice(None)
    assert problem is None and ("cpu", False) in choice


def _problem(cfg):
    choice, problem, _ = config.column_choice(None)
    assert choice is None
    assert problem.startswith("config %s ignored: " % cfg) and problem.endswith("; using the defaults")
    return problem


@pytest.mark.parametrize("content, why", [
    (b"{not json", "not valid JSON"), (b"[1, 2]", "not a JSON object"), (b"\xff\xfe\x00", "not valid JSON"),
    (b'{"columns": 42}', '"columns": not a list of names'), (b'{"columns": ["cpu", "cpu"]}', "cpu given twice"),
    (b'{"columns": [null]}', "is not a column name"), (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    (b" " * (config.MAX_BYTES + 1), "larger than"),
])
def test_corrupt_config_gives_one_message_and_the_defaults(cfg, content, why):
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(content)
    assert why in _problem(cfg)


def test_a_symlinked_config_is_not_followed_and_saving_replaces_the_link(cfg, tmp_path):
    cfg.parent.mkdir(parents=True)
    target = tmp_path / "elsewhere.json"
    target.write_text('{"columns": ["cpu"]}')
    cfg.symlink_to(target)
    assert "a symbolic link" in _problem(cfg)
    _, kept = config.save({"columns": ["ram"]})
    assert not cfg.is_symlink() and target.read_text() == '{"columns": ["cpu"]}'
    assert os.readlink(kept) == str(target)  # the link is kept, not lost


def test_saving_columns_keeps_a_hand_written_config_with_a_typo(cfg):
    # the prices typed by hand, with a trailing comma: saving the column
    # choice wrote over them (the file was "unusable", so it was replaced)
    cfg.parent.mkdir(parents=True)
    typed = b'{"prices": {"hour": 2.4, "gpu_hour": 1.1,}, "hosts": {"big-box": 12}}\n'
    cfg.write_bytes(typed)
    assert "not valid JSON" in _problem(cfg)
    path, kept = config.save({"columns": ["ram"]})
    assert path == str(cfg) and json.loads(cfg.read_text()) == {"columns": ["ram"]}
    assert os.path.dirname(kept) == str(cfg.parent) and os.path.basename(kept).startswith("config.json.unusable-")
    with open(kept, "rb") as f:
        assert f.read() == typed
    assert config.save({"columns": ["cpu"]})[1] is None  # a usable file is updated in place
    # another typo, another save, maybe within the same second: both kept
    for i in range(3):
        cfg.write_bytes(typed.replace(b"2.4", b"%d.5" % i))
        _, again = config.save({"columns": ["ram"]})
        with open(again, "rb") as f:
            assert f.read() == typed.replace(b"2.4", b"%d.5" % i)
    with open(kept, "rb") as f:
        assert f.read() == typed


def test_a_fifo_or_a_folder_as_config_never_blocks(cfg):
    cfg.parent.mkdir(parents=True)
    os.mkfifo(cfg)
    done = []
    t = threading.Thread(target=lambda: done.append(config.column_choice(None)), daemon=True)
    t.start()
    t.join(10)
    assert done and "not a regular file" in done[0][1]
    os.unlink(cfg)
    cfg.mkdir()
    assert "not a regular file" in _problem(cfg)


def test_another_users_config_is_refused(cfg, three_users):
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"columns": ["cpu"]}')
    other = three_users[0]
    os.chown(cfg, other.uid, other.gid)
    assert "owned by uid %d" % other.uid in _problem(cfg)


def test_cli_reports_a_bad_config_once_and_prints_the_default_table(cfg, progress_dir, capsys, monkeypatch):
    cfg.parent.mkdir(parents=True)
    cfg.write_text("{oops")
    (progress_dir / "r.json").write_text(json.dumps({"format": "ttop.progress/1", "run_name": "r", "status": "FINISHED",
                                                     "updated_at": 1000.0, "metrics": {"loss": 1.5}}))
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main([str(progress_dir), "--once"]) == 0
    out, err = capsys.readouterr()
    assert err.count("ttop: config ") == 1 and "not valid JSON" in err
    assert "Status" in out and "loss" in out
    assert cli.main([str(progress_dir), "--once", "--columns", "-status,-phase"]) == 0
    title = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Run Name"))
    assert "Status" not in title and "Epoch" in title and "loss" in title


def test_cli_columns_errors(progress_dir, capsys):
    (progress_dir / "r.json").write_text(json.dumps({"format": "ttop.progress/1", "run_name": "r", "status": "FINISHED",
                                                     "updated_at": 1000.0, "metrics": {"loss": 1.5}}))
    with pytest.raises(SystemExit) as e:
        cli.main([str(progress_dir), "--once", "--columns", "cpu,,ram"])
    assert e.value.code == 2 and "--columns: empty name" in capsys.readouterr().err
    assert cli.main([str(progress_dir), "--once", "--columns", "status,lsos"]) == 2
    err = capsys.readouterr().err
    assert "unknown column 'lsos'" in err and "status, health" in err and "report: loss" in err
    assert cli.main([str(progress_dir), "--once", "--json", "--columns", "status,loss"]) == 0
    assert json.loads(capsys.readouterr().out)["columns"] == ["name", "status", "m:loss"]
    assert cli.parse_args([str(progress_dir), "--columns", "-cpu"]).columns == "-cpu"
    with pytest.raises(SystemExit):
        cli.parse_args([str(progress_dir), "--headless", "--columns", "cpu"])
    assert "--columns needs the monitor or --once" in capsys.readouterr().err


def test_cli_columns_error_names_metrics_without_escapes(progress_dir, capsys):
    # another user of the folder names a metric with terminal escapes: the
    # message listing the runs' metrics goes to ttop's user's terminal
    (progress_dir / "r.json").write_text(json.dumps({
        "format": "ttop.progress/1", "run_name": "r", "status": "FINISHED", "updated_at": 1000.0,
        "metrics": {"\x1b]0;owned\x07\x1b[2Jloss": 1.5, "a\u202eb": 2.0}}))
    assert cli.main([str(progress_dir), "--once", "--columns", "status,lsos"]) == 2
    err = capsys.readouterr().err
    assert "report: " in err and "loss" in err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err


# -- prices from the config file ------------------------------------------------------


def _loaded(prices):
    return config.Loaded({"prices": prices}, "/c/config.json", None)


def test_saved_prices_are_checked_whole():
    good = config.saved_prices(_loaded({"hour": 2, "gpu_hour": 1.5, "hosts": {"big": 12}}))
    assert good == ({"hour": 2.0, "gpu_hour": 1.5, "hosts": {"big": 12.0}}, None)
    assert config.saved_prices(config.Loaded({}, "/c", None)) == (None, None)
    for bad, why in (([1], "not an object"), ({"hours": 2}, "unknown key 'hours'"), ({"hour": -1}, "hour must be"),
                     ({"hour": float("nan")}, "hour must be"), ({"gpu_hour": True}, "gpu_hour must be"),
                     ({"hour": "2"}, "hour must be"), ({"hosts": [1]}, "hosts must be an object"),
                     ({"hosts": {"a": 1, "b": 1e12}}, "'b' must map")):
        prices, problem = config.saved_prices(_loaded(bad))
        assert prices is None and why in problem and problem.endswith("no prices from it"), (bad, problem)


def test_cli_prices_from_the_config_under_the_flags(cfg, progress_dir, capsys):
    cfg.parent.mkdir(parents=True)
    cfg.write_text('{"prices": {"hour": 3600, "hosts": {"elsewhere": 7200}}}')
    (progress_dir / "r.json").write_text(json.dumps({
        "format": "ttop.progress/1", "run_name": "r", "status": "FINISHED", "updated_at": 1000.0,
        "times": {"run": {"elapsed": 10.0}}}))

    errors = []

    def cost(*flags):
        assert cli.main([str(progress_dir), "--once", "--json"] + list(flags)) == 0
        out, err = capsys.readouterr()
        errors.append(err)
        return json.loads(out)["runs"][0]["cost"]

    assert cost() == pytest.approx(10.0)  # 10 s at 3600 an hour
    assert cost("--price-hour", "360") == pytest.approx(1.0)  # the flag wins
    cfg.write_text('{"prices": {"hour": 3600}}')
    assert cost("--price-hour", "0") is None  # a zero flag too: no prices at all
    cfg.write_text('{"prices": {"hour": "lots"}}')
    assert errors == ["", "", ""]
    assert cost() is None
    assert errors[-1] == 'ttop: config %s ignored: "prices": hour must be a number from 0 to 1e+09; no prices from it\n' % cfg


def test_columns_for_remembers_per_snapshot_and_view_only():
    st = ViewState()
    first = columns_for(SNAP, st)
    again = columns_for(SNAP, st)
    assert again == first and again is not first  # a list of its own each time
    again.clear()
    assert columns_for(SNAP, st) == first
    # a filter that leaves run b: its metrics decide; another snapshot: its own columns
    only_b = [c.key for c in columns_for(SNAP, st.with_(name_filter="b"))]
    assert "m:grad_norm" not in only_b and "m:loss" in only_b
    other = snap([run("c", {"ppl": 3.0})])
    assert [c.key for c in columns_for(other, st) if c.key.startswith("m:")] == ["m:ppl"]
    assert [c.key for c in columns_for(SNAP, st.with_(columns=C.parse("cpu")[0]))] == ["cpu"]


def test_a_config_another_user_cannot_read(three_users, shared_dir):
    """ttop run as a user who may not look into the config folder (another
    HOME) gets the defaults silently; a config file there it may not read is
    one message."""
    from test_monitor_trust import user_python

    b = three_users[0]
    private = os.path.join(shared_dir, "private")
    os.makedirs(os.path.join(private, "ttop"), mode=0o700)
    os.chmod(private, 0o700)
    path = os.path.join(private, "ttop", "config.json")
    with open(path, "w") as f:
        f.write('{"columns": ["cpu"]}')
    os.chmod(path, 0o600)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from ttop import config; "
              "print(repr(config.load(sys.argv[2]).problem))")

    def problem():
        r = b.sh('"$1" -c "$2" "$3" "$4"', user_python(b), script, str(cli.__file__).rsplit("/ttop/", 1)[0], path)
        return r.stdout.decode().strip()

    assert problem() == "None"  # the folder: not even visible
    os.chmod(private, 0o755)
    os.chmod(os.path.join(private, "ttop"), 0o755)
    assert problem() == repr("config %s ignored: Permission denied; using the defaults" % path)


def test_applying_keeps_the_sort_only_while_its_column_is_shown(cfg):
    from ttop.ui.main_screen import MainScreen

    ms = MainScreen()
    ctx = Ctx()
    ctx.snapshot = SNAP
    ms.state = ms.state.with_(sort_key="ram", col_offset=5)
    ms._apply_columns(C.parse("status,ram")[0], ctx)
    assert ms.state.sort_key == "ram" and ms.state.col_offset == 0
    assert ctx.messages == [("columns saved to %s" % cfg, False)]
    ms._apply_columns(C.parse("-ram")[0], ctx)
    assert ms.state.sort_key is None
    assert "-ram" in json.loads(cfg.read_text())["columns"]


def test_cli_columns_minus_value_abbreviated_and_repeated(progress_dir, capsys):
    """``--co -cpu`` (argparse's abbreviation) and a second ``--columns
    -rate`` take their lists like ``--columns -cpu``: argparse saw an option
    and said 'expected one argument'."""
    assert cli.parse_args([str(progress_dir), "--co", "-cpu"]).columns == "-cpu"
    assert cli.parse_args([str(progress_dir), "--columns", "-cpu", "--columns", "-rate"]).columns == "-rate"
    assert cli.parse_args(["--colu", "-cpu,-ram", str(progress_dir)]).columns == "-cpu,-ram"
    assert cli.parse_args(["--", "--columns"]).folders == ["--columns"]


@pytest.mark.parametrize("names", [
    # names only a run's file has: unprintable, longer than a list may hold, spaces at an end
    ["loss", "lo\nss", "\u202eevil", "x" * 1000, " acc ", "grad_norm"],
    # a run reporting more metrics than a saved list may name (per-layer norms, say)
    ["loss"] + ["layer%03d/grad" % i for i in range(600)],
])
def test_what_the_chooser_saves_the_next_start_reads(cfg, names):
    # Enter in the chooser saved every listed metric, hidden ones too; the
    # next start refused the whole list ("'lo\nss' is not a usable metric
    # name", "more than 500 names") and showed the default columns
    s = snap([run("a", {n: 1.0 for n in names})])
    got = []
    ch = open_chooser(s, ViewState(), s.runs, lambda choice, ctx: got.append(choice))
    ch.cursor = [k for k, _ in ch.items].index("cpu")
    ch.on_key(" ", Ctx())  # hide CPU: a choice of the user's own
    ch.on_key("ENTER", Ctx())
    assert config.save({"columns": C.to_items(got[0])}) == (str(cfg), None)
    choice, problem, _ = config.column_choice(None)
    assert problem is None
    assert ("cpu", False) in choice
    # every column ticked is shown again, in its order, but for the metrics
    # a list cannot name (left out of the file; the automatic metrics may
    # show them, or hidden metrics left out past the limit)
    table = keys(choice, s)
    ticked = [k for k, shown in got[0] if shown and k != C.AUTO and k in keys(got[0], s)]
    wanted = [k for k in ticked if not C.is_metric(k) or C.listable(k[len(C.METRIC):])]
    assert len(wanted) > 10 and [k for k in table if k in wanted] == wanted
    assert "cpu" not in keys(choice, s)
