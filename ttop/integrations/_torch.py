"""Learning rates of torch optimizers as ttop variables (Lightning and the
HF Trainer). Duck-typed: torch itself is not imported here.

An edit sets the param group's ``lr`` and scales by the same factor what the
LR scheduler computes the next values from, so that the edit survives the
next scheduler step and the schedule goes on, scaled:

- ``base_lrs`` of every scheduler bound to the optimizer (LambdaLR and the
  HF schedules, StepLR, CosineAnnealingLR, CosineAnnealingWarmRestarts,
  PolynomialLR, ... and the children of SequentialLR/ChainedScheduler);
- ``max_lrs`` (CyclicLR);
- the param group's ``initial_lr``, ``max_lr`` and ``min_lr`` (OneCycleLR);
- the scheduler's last lr (what ``get_last_lr()`` returns, and the HF
  Trainer logs as ``learning_rate``).

When the current lr is 0 (the first step of a warm-up from 0) there is no
factor: the edit becomes the schedule's base value instead. An edit to 0 (a
pause) scales those values to 0, and keeps them as they were: the next edit
(a resume) scales the kept values, so the schedule goes on from them.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ._common import LRControl


def unwrap_optimizer(opt: Any) -> Any:
    """The torch optimizer under Lightning's/accelerate's wrappers."""
    for _ in range(4):
        inner = getattr(opt, "optimizer", None) or getattr(opt, "_optimizer", None)
        if inner is None or inner is opt or not hasattr(inner, "param_groups"):
            break
        opt = inner
    return opt


def _schedulers(items: Iterable[Any]) -> List[Any]:
    out: List[Any] = []
    seen = set()
    stack = list(items)
    while stack:
        s = stack.pop()
        if s is None or id(s) in seen:
            continue
        seen.add(id(s))
        inner = getattr(s, "scheduler", None)  # Lightning's config, accelerate's wrapper
        if inner is not None and inner is not s:
            stack.append(inner)
            continue
        out.append(s)
        stack.extend(getattr(s, "_schedulers", None) or [])  # SequentialLR, ChainedScheduler
    return out


def _get(group: Dict[str, Any], key: str) -> float:
    return float(group[key])


def _lr_and_base(group: Dict[str, Any]) -> Tuple[float, Optional[float]]:
    """A group's lr and its schedule's base (``initial_lr``, set by every
    torch scheduler): groups of different bases are told apart during a
    warm-up from 0, when every lr is 0."""
    return _get(group, "lr"), (_get(group, "initial_lr") if "initial_lr" in group else None)


def _set(container: Any, key: Any, value: float) -> None:
    cur = container[key]
    if hasattr(cur, "fill_"):  # a tensor lr
        cur.fill_(value)
    else:
        container[key] = value


class TorchLR(LRControl):
    """The param groups of torch optimizers and their schedulers."""

    def __init__(self, optimizers: Iterable[Any], schedulers: Iterable[Any] = ()) -> None:
        opts = [unwrap_optimizer(o) for o in optimizers if o is not None]
        self.optimizers = [o for o in opts if hasattr(o, "param_groups")]
        self.schedulers = _schedulers(schedulers)
        #: variable name -> (optimizer, indices of the param groups it sets)
        self.slots: Dict[str, Tuple[Any, List[int]]] = {}
        #: (optimizer id, group) -> its lr and schedule values before an edit set them to 0
        self._paused: Dict[Tuple[int, int], Tuple[float, Dict[str, float], List[Tuple[Any, str, float]]]] = {}
        many = len(self.optimizers) > 1
        for i, o in enumerate(self.optimizers):
            groups = o.param_groups
            if not groups:
                continue
            prefix = "lr/%d" % i if many else "lr"
            if len({_lr_and_base(g) for g in groups}) == 1:  # one lr for the optimizer
                self.slots[prefix] = (o, list(range(len(groups))))
            else:
                for j in range(len(groups)):
                    self.slots["%s%s%d" % (prefix, "." if many else "/", j)] = (o, [j])

    def read(self) -> Dict[str, float]:
        return {name: _get(o.param_groups[js[0]], "lr") for name, (o, js) in self.slots.items()}

    def apply(self, name: str, value: float) -> Optional[str]:
        slot = self.slots.get(name)
        if slot is None:
            return "no such param group"
        if not (math.isfinite(value) and value >= 0):
            return "a learning rate must be a finite number >= 0, not %r" % value
        opt, indices = slot
        schedulers = [s for s in self.schedulers if unwrap_optimizer(getattr(s, "optimizer", None)) is opt]
        for j in indices:
            self._apply_group(opt, j, value, schedulers)
        return None

    def _apply_group(self, opt: Any, j: int, value: float, schedulers: List[Any]) -> None:
        group = opt.param_groups[j]
        old = _get(group, "lr")
        paused = self._paused.pop((id(opt), j), None) if old <= 0 else None
        if paused is not None and value > 0:  # a resume: the values kept at the pause, scaled
            back = value / paused[0]
            _set(group, "lr", value)
            for key, v in paused[1].items():
                _set(group, key, v * back)
            for s, attr, v in paused[2]:
                getattr(s, attr)[j] = v * back
            for s in schedulers:
                last = getattr(s, "_last_lr", None)
                if isinstance(last, list) and j < len(last):
                    last[j] = value
            return
        if old > 0 and value == 0:  # a pause: what the schedule computes from, kept for the resume
            self._paused[(id(opt), j)] = (old, {k: _get(group, k) for k in ("initial_lr", "max_lr", "min_lr") if k in group},
                                          [(s, attr, float(getattr(s, attr)[j])) for s in schedulers for attr in ("base_lrs", "max_lrs")
                                           if isinstance(getattr(s, attr, None), list) and j < len(getattr(s, attr))])
        ratio = value / old if old > 0 else None
        _set(group, "lr", value)
        for key in ("initial_lr", "max_lr", "min_lr"):
            if key in group:
                if ratio is not None:
                    _set(group, key, _get(group, key) * ratio)
                elif key == "initial_lr":
                    _set(group, key, value)
        for s in schedulers:
            for attr in ("base_lrs", "max_lrs"):
                values = getattr(s, attr, None)
                if isinstance(values, list) and j < len(values):
                    if ratio is not None:
                        values[j] = values[j] * ratio
                    elif attr == "base_lrs":
                        values[j] = value
            last = getattr(s, "_last_lr", None)
            if isinstance(last, list) and j < len(last):
                last[j] = value
