"""Records (ttop.record): the snapshot and view types are plain classes with
hand-written ``__init__`` methods; they behave as the frozen dataclasses they
replaced: fields in order, defaults, value equality, hashing, ``repr``,
immutability and ``replace``."""
from __future__ import annotations

import importlib
import inspect
import pickle

import pytest

from ttop import record
from ttop.collect.fileresult import FileResult, ScanResult
from ttop.collect.snapshot import GpuDevice, ProcInfo, RankSnapshot, RunResources, RunSnapshot, Snapshot, ThreadInfo
from ttop.view.state import ViewState

#: every module defining records
MODULES = ("ttop.collect.snapshot", "ttop.collect.fileresult", "ttop.view.state", "ttop.view.screen", "ttop.view.table")


def record_classes():
    out = []
    for name in MODULES:
        mod = importlib.import_module(name)
        out.extend(v for v in vars(mod).values()
                   if isinstance(v, type) and issubclass(v, record.Record) and v.__module__ == name)
    return out


def test_every_module_defines_records():
    names = {c.__name__ for c in record_classes()}
    assert {"RunSnapshot", "Snapshot", "ProcInfo", "FileResult", "ViewState", "Row", "Column", "Frame"} <= names


@pytest.mark.parametrize("cls", record_classes(), ids=lambda c: c.__name__)
def test_init_takes_the_fields_in_order(cls):
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    assert params == list(record.fields(cls)), cls
    assert cls._fields and len(set(cls._fields)) == len(cls._fields)


def test_fields_defaults_and_keywords():
    t = ThreadInfo(7, 1.0, 2.0)
    assert (t.tid, t.user_time, t.system_time, t.cpu_percent, t.name) == (7, 1.0, 2.0, None, "")
    assert record.fields(t) == ("tid", "user_time", "system_time", "cpu_percent", "name")
    r = RunSnapshot(key="k", path="/p/k.json", data={}, run_name="k", status="RUNNING", reported_status="RUNNING")
    assert r.resources == RunResources() and r.resources.source == "none" and r.ranks == () and r.local is True
    assert r.stem == "k" and r.folder == "/p" and r.folder_tag == ""
    # mutable defaults are fresh per instance
    a, b = GpuDevice(0), GpuDevice(1)
    assert a.errors == {} and a.errors is not b.errors
    s1, s2 = ScanResult([]), ScanResult([])
    assert s1.ended == [] and s1.ended is not s2.ended and s1.gone is not s2.gone
    assert ViewState().expanded == frozenset() and ViewState().marked == frozenset()
    with pytest.raises(TypeError):
        ThreadInfo(1, 1.0)  # a required field missing
    with pytest.raises(TypeError):
        ThreadInfo(1, 1.0, 2.0, nope=1)


def test_equality_is_by_class_and_fields():
    a = ProcInfo(1, 0, "python", 5.0, 0, cpu_percent=3.0, threads=(ThreadInfo(1, 0.5, 0.25),))
    b = ProcInfo(pid=1, ppid=0, name="python", create_time=5.0, depth=0, cpu_percent=3.0,
                 threads=(ThreadInfo(1, 0.5, 0.25),))
    assert a == b and not (a != b) and hash(a) == hash(b)
    assert a != record.replace(b, cpu_percent=4.0)
    assert a != ("not", "a", "record") and ThreadInfo(1, 0.0, 0.0) != RankSnapshot(1)
    assert RunResources(cpu_percent=float("nan")) != RunResources(cpu_percent=float("nan"))  # nan != nan ...
    c = RunResources(cpu_percent=float("nan"))
    assert c == c  # ... but the same object equals itself (tuple comparison)
    assert len({a, b, record.replace(a, pid=2)}) == 2


def test_records_with_mutable_fields_are_not_hashable():
    r = RunSnapshot(key="k", path="/k.json", data={}, run_name="k", status="RUNNING", reported_status="RUNNING")
    with pytest.raises(TypeError):
        hash(r)  # data is a dict
    with pytest.raises(TypeError):
        hash(FileResult("a.json", "a", "/a.json", 1.0))  # not frozen: no hash at all


def test_repr_names_every_field():
    assert repr(ThreadInfo(3, 1.5, 0.5, name="w")) == \
        "ThreadInfo(tid=3, user_time=1.5, system_time=0.5, cpu_percent=None, name='w')"
    assert repr(record.replace(ViewState(), top=3)).startswith("ViewState(status_filter=None, name_filter='', ")


def test_frozen_records_refuse_assignment_mutable_ones_take_it():
    r = RunResources(rss_bytes=1)
    with pytest.raises(record.FrozenInstanceError):
        r.rss_bytes = 2
    with pytest.raises(AttributeError):  # FrozenInstanceError is one, as dataclasses' is
        del r.rss_bytes
    with pytest.raises(AttributeError):
        r.new_attribute = 1
    assert r.rss_bytes == 1
    f = FileResult("a.json", "a", "/a.json", 1.0)
    f.error = "bad"
    assert f.error == "bad" and f != FileResult("a.json", "a", "/a.json", 1.0)


def test_replace_copies_the_fields_only():
    s = Snapshot(seq=1, taken_at=2.0, folder="/p", notices=("n",))
    assert s.counts() == {}  # caches itself beside the fields
    t = record.replace(s, seq=2)
    assert (t.seq, t.taken_at, t.folder, t.notices) == (2, 2.0, "/p", ("n",)) and s.seq == 1
    assert "_counts" not in t.__dict__ and s == record.replace(t, seq=1)
    with pytest.raises(TypeError, match="no field 'nope'"):
        record.replace(s, nope=1)


def test_records_pickle_and_keep_their_values():
    p = ProcInfo(1, 0, "python", 5.0, 0, gpu_indices=(0, 1))
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q is not p and q.gpu_indices == (0, 1)
