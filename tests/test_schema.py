"""docs/progress.schema.json: a valid JSON Schema that describes every known
key, accepts exactly what the readers' parser accepts for the required keys,
and validates what TrainingMonitor really writes at every status."""
from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, wait_until
from ttop import progress as P
from ttop.monitor import TrainingMonitor

jsonschema = pytest.importorskip("jsonschema")

with open(ROOT / "docs" / "progress.schema.json") as _f:
    SCHEMA = json.load(_f)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
REQUIRED = ["format", "run_name", "status", "updated_at"]
KNOWN = set(REQUIRED) | set(P._OPTIONAL_TYPES)


def errors(obj):
    return ["%s: %s" % ("/".join(map(str, e.path)), e.message) for e in VALIDATOR.iter_errors(obj)]


def test_schema_is_valid_and_describes_every_known_key():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["required"] == REQUIRED
    assert set(SCHEMA["properties"]) == KNOWN
    assert SCHEMA.get("additionalProperties", True) is True  # readers ignore unknown keys
    # each key's JSON types match the readers' parser (plus null)
    py_to_json = {int: "integer", float: "number", str: "string", dict: "object"}
    for key, types in P._OPTIONAL_TYPES.items():
        schema_types = set(SCHEMA["properties"][key]["type"]) - {"null"}
        expected = {py_to_json[t] for t in types}
        if expected == {"integer", "number"}:
            expected = {"number"}
        assert schema_types == expected, key
    times = SCHEMA["properties"]["times"]["properties"]
    assert set(times) == {"run", "epoch", "train", "validation"}
    assert set(times["validation"]["properties"]) == {"elapsed", "remaining", "total", "last"}
    assert set(SCHEMA["properties"]["resources"]["properties"]) == {
        "cpu_percent",
        "rss_bytes",
        "ram_measure",
        "gpu_memory_bytes",
        "num_procs",
        "num_threads",
        "sampled_at",
    }


# ---------------------------------------------------------------------------
# required keys: the schema and parse_progress agree

_any_json = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_MISSING = object()
_fields = {
    "format": st.one_of(
        st.sampled_from(["ttop.progress/1", "ttop.progress/2", "ttop.progress/", "ttop.progressX", "ttop.control/1", ""]),
        _any_json,
        st.just(_MISSING),
    ),
    "run_name": st.one_of(st.sampled_from(["r", "", "run-1"]), _any_json, st.just(_MISSING)),
    "status": st.one_of(st.sampled_from(list(P.STATUSES) + ["running", "DONE"]), _any_json, st.just(_MISSING)),
    "updated_at": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(), _any_json, st.just(_MISSING)),
}


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(st.fixed_dictionaries(_fields))
def test_required_keys_schema_agrees_with_parse_progress(fields):
    obj = {k: v for k, v in fields.items() if v is not _MISSING}
    raw = json.dumps(obj, allow_nan=False).encode()
    try:
        P.parse_progress(raw)
        parsed = True
    except P.ProgressError:
        parsed = False
    assert VALIDATOR.is_valid(json.loads(raw)) == parsed, obj


@pytest.mark.parametrize("doc", [[], "x", 3, None])
def test_non_objects_are_rejected_by_both(doc):
    assert not VALIDATOR.is_valid(doc)
    with pytest.raises(P.ProgressError):
        P.parse_progress(json.dumps(doc).encode())


# ---------------------------------------------------------------------------
# the writer's real output, at every status


def written(path):
    with open(path, "rb") as f:
        raw = f.read()
    data = json.loads(raw)
    assert set(data) == KNOWN  # the monitor writes every known key, nothing else
    return data


def busy_monitor(folder, name):
    m = TrainingMonitor(
        folder=str(folder),
        run_name=name,
        interval=0.05,
        resource_interval=0.05,
        handle_signals=False,
        gpu=False,
        capture_output=False,
        links={"wandb": "https://wandb.ai/x/y"},
        run_dir="runs/" + name,
        total_epochs=2,
        variables={"lr": 0.1, "steps": 3, "on": True, "tag": "a", "layers": [1, 2], "none": None},
    )
    m.start_epoch(1)
    m.start_phase("train", total_batches=20)
    for i in range(6):
        m.start_batch()
        m.update_metrics(loss=1.0 / (i + 1), nan=math.nan, inf=-math.inf, text="warm", obj=object())
        time.sleep(0.02)
    return m


def wait_resources(path):
    def check():
        try:
            d = written(path)
        except (OSError, ValueError):
            return None
        return d if d["resources"] is not None and d["pid_create_time"] is not None and d["rate"] else None

    return wait_until(check, timeout=60)


def test_running_file_validates(progress_dir):
    m = busy_monitor(progress_dir, "running")
    try:
        d = wait_resources(m.path)
        assert d["status"] == "RUNNING" and errors(d) == []
        P.parse_progress(json.dumps(d).encode())
    finally:
        m.set_canceled()


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "CANCELED"])
def test_final_files_validate(progress_dir, status):
    m = busy_monitor(progress_dir, status.lower())
    wait_resources(m.path)
    if status == "FINISHED":
        m.set_finished()
    elif status == "FAILED":
        try:
            raise RuntimeError("diverged")
        except RuntimeError as e:
            m.set_failed(e)
    else:
        m.set_canceled("stopped by user")
    d = written(m.path)
    assert d["status"] == status and errors(d) == []
    data, dropped = P.parse_progress(json.dumps(d).encode())
    assert dropped == []
    if status == "FAILED":
        assert d["error"].startswith("RuntimeError: diverged")


def test_minimal_and_hand_made_files_validate():
    minimal = {"format": "ttop.progress/1", "run_name": "x", "status": "KILLED", "updated_at": 1.5}
    assert errors(minimal) == []
    killed = dict(minimal, pid=123, host="h", epoch=2, metrics={"loss": "NaN"}, history={"loss": [1, None]}, extra=1)
    assert errors(killed) == []
    assert errors(dict(minimal, variable_types={"lr": "complex"}))  # not a control type
    assert errors(dict(minimal, history={"loss": ["x"]}))  # history holds numbers or null
