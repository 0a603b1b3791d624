"""Hugging Face Transformers: ``TtopCallback`` reports ``Trainer.train()``
to ttop.

::

    from ttop.integrations.transformers import TtopCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[TtopCallback(run_name="bert")])
    trainer.train()

The mapping (epochs, phases, metrics, lr) is in docs/integrations.md.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Optional

from ._common import Bridge, BridgeCallback, require
from ._torch import TorchLR

_tc = require(("transformers.trainer_callback",), "ttop.integrations.transformers", "transformers")

_Callback: Any = _tc.TrainerCallback

__all__ = ["TtopCallback"]


def _len(obj: Any) -> Optional[int]:
    try:
        n = len(obj)
    except Exception:
        return None
    return n if isinstance(n, int) and n >= 0 else None


class TtopCallback(BridgeCallback, _Callback):
    """Report ``Trainer.train()`` to ttop.

    Takes the :class:`ttop.TrainingMonitor` arguments (``run_name``,
    ``folder``, ``capture_output``, ``interval``, ...); ``total_epochs``
    defaults to the number of epochs the Trainer will run. The monitor is
    created in ``on_train_begin`` on the main process only
    (``state.is_world_process_zero``) unless ``rank_zero_only=False``.

    One batch in ttop is one optimizer step (``global_step``), so with
    gradient accumulation the totals are the Trainer's ``max_steps`` and
    steps per epoch, not micro-batches. Epochs are shown 1-based. Evaluation
    is the ``validation`` phase (its total is the eval dataloader's length);
    after an evaluation inside an epoch (``eval_strategy="steps"``) the
    train phase resumes its counter. Metrics: what the Trainer logs
    (``loss``, ``grad_norm``, ``learning_rate``, ``eval_loss``, ...) under
    its names, ``epoch`` left out. The optimizer's learning rate(s) are the
    variables ``lr`` (``lr/<group>`` for several param groups); edits scale
    the scheduler's ``base_lrs``.

    The Trainer has no exception hook: an exception that ends the script,
    Ctrl+C and SIGTERM give FAILED/CANCELED through the monitor's
    ``sys.excepthook`` and SIGTERM handler. When the script catches the
    exception itself (or in a notebook), use the callback as a context
    manager around ``train()``: ``with callback: trainer.train()``.
    """

    def __init__(self, output_file: Any = None, *, rank_zero_only: bool = True, track_lr: bool = True, **monitor_kwargs: Any) -> None:
        self._bridge = Bridge(
            output_file, monitor_kwargs, rank_zero_only=rank_zero_only, track_lr=track_lr, default_handle_signals=True
        )
        self._steps_per_epoch: Optional[int] = None
        self._total: Optional[int] = None  # this epoch's optimizer steps

    # -- train ---------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        epochs = getattr(state, "num_train_epochs", None)
        total = epochs if isinstance(epochs, int) and 0 < epochs < sys.maxsize else None
        rank = 0 if getattr(state, "is_world_process_zero", True) else max(int(getattr(args, "process_index", 1) or 1), 1)
        b = self._bridge
        b.open(rank, total_epochs=total, world_size=max(int(getattr(args, "world_size", 1) or 1), 1))
        if not b.active:
            return
        n = _len(kw.get("train_dataloader"))
        accum = max(int(getattr(args, "gradient_accumulation_steps", 1) or 1), 1)
        self._steps_per_epoch = max(n // accum + int(n % accum > 0), 1) if n is not None else None
        b.set_lr(TorchLR([kw.get("optimizer")], [kw.get("lr_scheduler")]))

    def _epoch_total(self, state: Any) -> Optional[int]:
        per = self._steps_per_epoch
        max_steps = getattr(state, "max_steps", None)
        if per is None:
            return max_steps if isinstance(max_steps, int) and max_steps > 0 else None
        if isinstance(max_steps, int) and max_steps > 0:
            done_in_epoch = state.global_step % per
            return max(min(per - done_in_epoch, max_steps - state.global_step), 0)
        return per

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        b = self._bridge
        if b.monitor is None:
            return
        epoch = int(math.floor((state.epoch or 0.0) + 1e-6)) + 1
        b.start_epoch(epoch)
        self._total = self._epoch_total(state)
        b.start_phase("train", self._total)

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        b = self._bridge
        if b.pending:
            b.apply_pending()
        m = b.monitor
        if m is not None:
            m.start_batch()
            if b.due():
                b.refresh_lr()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        m = self._bridge.monitor
        if m is not None and logs:
            m.update_metrics({k: v for k, v in logs.items() if k != "epoch"})

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        b = self._bridge
        if b.monitor is None:
            return
        b.refresh_lr()
        b.end_epoch()

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        b = self._bridge
        b.refresh_lr()
        b.finish()

    # -- evaluation ----------------------------------------------------

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        b = self._bridge
        m = b.monitor
        if m is None or m.status != "RUNNING":
            return
        if b.phase != "validation":
            b.start_phase("validation", _len(kw.get("eval_dataloader")))
        m.start_batch()

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
        b = self._bridge
        m = b.monitor
        if m is None or m.status != "RUNNING":
            return
        if metrics:
            m.update_metrics({k: v for k, v in metrics.items() if k != "epoch"})
        if b.phase == "validation":
            if b.in_epoch:  # an evaluation inside the epoch: back to train
                b.resume_train(self._total)
            else:
                b.end_phase()
