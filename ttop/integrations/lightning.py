"""Lightning: ``TtopCallback`` reports ``trainer.fit()`` to ttop.

::

    from ttop.integrations.lightning import TtopCallback

    trainer = L.Trainer(max_epochs=10, callbacks=[TtopCallback(run_name="resnet")])
    trainer.fit(model, train_loader, val_loader)

Uses ``lightning`` (``lightning.pytorch``), or ``pytorch_lightning`` when only
that is installed. The mapping (epochs 1-based, phases, metrics, lr) is in
docs/integrations.md.
"""
from __future__ import annotations

import math
from typing import Any, Optional

from ._common import Bridge, require
from ._torch import TorchLR

_pl = require(("lightning.pytorch", "pytorch_lightning"), "ttop.integrations.lightning", "lightning")

_Callback: Any = _pl.Callback
_SIGTERM_EXC: Any = getattr(getattr(_pl.utilities, "exceptions", None), "SIGTERMException", None)

__all__ = ["TtopCallback"]


def _count(n: Any) -> Optional[int]:
    """A Lightning batch count (int, or inf when unknown) as an int or None."""
    try:
        x = float(n)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x) or x < 0:
        return None
    return int(x)


def _sum(counts: Any) -> Optional[int]:
    total = 0
    for n in counts or ():
        c = _count(n)
        if c is None:
            return None
        total += c
    return total


class TtopCallback(_Callback):
    """Report ``trainer.fit()`` to ttop.

    Takes the :class:`ttop.TrainingMonitor` arguments (``run_name``,
    ``folder``, ``capture_output``, ``interval``, ...); ``total_epochs``
    defaults to the trainer's ``max_epochs``. The monitor is created when
    fitting starts, on global rank 0 only unless ``rank_zero_only=False``.
    ``track_lr=False`` leaves the optimizers' learning rates out of the
    variables.

    Epochs are shown 1-based (``current_epoch + 1``). Phases: ``train``
    (total ``num_training_batches``), ``validation`` (total: the sum of
    ``num_val_batches``) and ``sanity check``; after a mid-epoch validation
    (``val_check_interval < 1``) the train phase resumes its counter.
    Metrics: ``trainer.callback_metrics`` under the names given to
    ``self.log``. Exceptions, Ctrl+C and SIGTERM (raised by Lightning as
    ``SIGTERMException``) end the run as FAILED/CANCELED through
    ``on_exception``; Lightning's own SIGTERM handling is left in place
    (``handle_signals`` defaults to False here).
    """

    def __init__(self, output_file: Any = None, *, rank_zero_only: bool = True, track_lr: bool = True, **monitor_kwargs: Any) -> None:
        super().__init__()
        self._bridge = Bridge(
            output_file, monitor_kwargs, rank_zero_only=rank_zero_only, track_lr=track_lr, default_handle_signals=False
        )

    @property
    def monitor(self) -> Any:
        """The :class:`ttop.TrainingMonitor` of the current fit (None
        before, and on ranks that do not report)."""
        return self._bridge.monitor

    # -- fit -----------------------------------------------------------

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        max_epochs = getattr(trainer, "max_epochs", None)
        total = max_epochs if isinstance(max_epochs, int) and max_epochs > 0 else None
        world = int(getattr(trainer, "world_size", 1) or 1)
        self._bridge.open(int(getattr(trainer, "global_rank", 0) or 0), total_epochs=total, world_size=world)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        b = self._bridge
        if b.active:
            b.set_lr(TorchLR(trainer.optimizers, trainer.lr_scheduler_configs))

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        b = self._bridge
        if b.monitor is not None:
            b.monitor.update_metrics(dict(trainer.callback_metrics))
            b.refresh_lr()
        b.finish()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if _SIGTERM_EXC is not None and isinstance(exception, _SIGTERM_EXC):
            self._bridge.fail(exception, canceled_reason="received SIGTERM")
        else:
            self._bridge.fail(exception)

    # -- training ------------------------------------------------------

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        b = self._bridge
        if b.monitor is None:
            return
        b.start_epoch(int(trainer.current_epoch) + 1)
        b.start_phase("train", _count(trainer.num_training_batches))

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        b = self._bridge
        if b.pending:
            b.apply_pending()
        m = b.monitor
        if m is not None:
            if not b.in_epoch:  # resumed mid-epoch: Lightning called no on_train_epoch_start
                self.on_train_epoch_start(trainer, pl_module)
            m.start_batch()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        b = self._bridge
        if b.monitor is not None and b.due():
            b.monitor.update_metrics(dict(trainer.callback_metrics))
            b.refresh_lr()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        b = self._bridge
        if b.monitor is None:
            return
        b.monitor.update_metrics(dict(trainer.callback_metrics))
        b.refresh_lr()
        b.end_epoch()

    # -- validation ----------------------------------------------------

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        b = self._bridge
        if b.monitor is None:
            return
        if trainer.sanity_checking:
            b.start_phase("sanity check", _sum(trainer.num_sanity_val_batches))
        else:
            b.start_phase("validation", _sum(trainer.num_val_batches))

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        m = self._bridge.monitor
        if m is not None:
            m.start_batch()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        b = self._bridge
        if b.monitor is None:
            return
        if trainer.sanity_checking:
            b.end_phase()
            return
        b.monitor.update_metrics(dict(trainer.callback_metrics))
        if b.in_epoch:  # validation inside a training epoch: back to train
            b.resume_train(_count(trainer.num_training_batches))
        else:
            b.end_phase()
