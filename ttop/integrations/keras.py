"""Keras 3: ``TtopCallback`` reports ``model.fit()`` to ttop.

::

    from ttop.integrations.keras import TtopCallback

    model.fit(x, y, epochs=10, validation_split=0.2, callbacks=[TtopCallback(run_name="mnist")])

Works with every Keras 3 backend (torch, jax, tensorflow). The mapping
(epochs, phases, metrics, lr) is in docs/integrations.md.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, Optional

from ._common import Bridge, BridgeCallback, LRControl, rank_from_env, require


def _import_keras() -> Any:
    try:
        return require(("keras",), "ttop.integrations.keras", "keras")
    except ImportError as e:
        if "tensorflow" in str(e) and not os.environ.get("KERAS_BACKEND"):
            raise ImportError(
                "ttop.integrations.keras: keras needs a backend: pip install tensorflow, or set KERAS_BACKEND=torch (or jax)"
            ) from None
        raise


keras = _import_keras()
_Schedule: Any = keras.optimizers.schedules.LearningRateSchedule
_Callback: Any = keras.callbacks.Callback

__all__ = ["TtopCallback"]


class _ScaledSchedule(_Schedule):
    """A LearningRateSchedule scaled by the edits made in ttop."""

    def __init__(self, schedule: Any, factor: float = 1.0) -> None:
        self.schedule = schedule
        self.factor = factor

    def __call__(self, step: Any) -> Any:
        return self.schedule(step) * self.factor

    def get_config(self) -> Dict[str, Any]:
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "factor": self.factor}


class KerasLR(LRControl):
    """``model.optimizer.learning_rate`` as the variable ``lr``. A plain
    learning rate is assigned; a ``LearningRateSchedule`` is wrapped once in
    a schedule scaled by the edits (current lr x new / old), so it goes on,
    scaled."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer

    def _schedule(self) -> Optional[Any]:
        lr = getattr(self.optimizer, "_learning_rate", None)
        return lr if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule) else None

    def read(self) -> Dict[str, float]:
        return {"lr": float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))}

    def apply(self, name: str, value: float) -> Optional[str]:
        if name != "lr":
            return "no such variable"
        if not (math.isfinite(value) and value >= 0):
            return "a learning rate must be a finite number >= 0, not %r" % value
        schedule = self._schedule()
        if schedule is None:
            self.optimizer.learning_rate = value
            return None
        old = self.read()["lr"]
        if old <= 0:
            return "the schedule's learning rate is 0 now: no factor to scale it by"
        if not isinstance(schedule, _ScaledSchedule):
            schedule = _ScaledSchedule(schedule)
            self.optimizer.learning_rate = schedule
        schedule.factor *= value / old
        return None


class TtopCallback(BridgeCallback, _Callback):
    """Report ``model.fit()`` to ttop.

    Takes the :class:`ttop.TrainingMonitor` arguments (``run_name``,
    ``folder``, ``capture_output``, ``interval``, ...); ``total_epochs``
    defaults to fit's ``epochs``. The monitor is created in
    ``on_train_begin`` on rank 0 only (``RANK``/``SLURM_PROCID``), unless
    ``rank_zero_only=False``.

    Epochs are shown 1-based (Keras' ``epoch + 1``). Phases: ``train``
    (total: fit's steps per epoch) and ``validation`` (the evaluation fit
    runs at the end of an epoch). Metrics: the batch logs (``loss``,
    ``accuracy``, ...) and at each epoch end the epoch logs (``val_loss``,
    ...), under Keras' names. The optimizer's learning rate is the variable
    ``lr``.

    Keras has no exception hook: an exception that ends the script, Ctrl+C
    and SIGTERM give FAILED/CANCELED through the monitor's
    ``sys.excepthook`` and SIGTERM handler. When the script catches the
    exception itself (or in a notebook), use the callback as a context
    manager around ``fit``: ``with callback: model.fit(...)``.
    """

    #: the batch hooks only count and store: safe for async dispatch
    async_safe = True

    def __init__(self, output_file: Any = None, *, rank_zero_only: bool = True, track_lr: bool = True, **monitor_kwargs: Any) -> None:
        super().__init__()
        self._bridge = Bridge(
            output_file, monitor_kwargs, rank_zero_only=rank_zero_only, track_lr=track_lr, default_handle_signals=True
        )
        self._training = False

    # -- fit -----------------------------------------------------------

    def on_train_begin(self, logs: Any = None) -> None:
        params = self.params or {}
        epochs = params.get("epochs")
        b = self._bridge
        rank, _local, world = rank_from_env()
        b.open(rank, total_epochs=epochs if isinstance(epochs, int) and epochs > 0 else None, world_size=world)
        if not b.active:
            return
        self._training = True
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            b.set_lr(KerasLR(optimizer))

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        b = self._bridge
        if b.monitor is None:
            return
        b.start_epoch(int(epoch) + 1)
        steps = (self.params or {}).get("steps")
        b.start_phase("train", steps if isinstance(steps, int) and steps >= 0 else None)

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        b = self._bridge
        if b.pending:
            b.apply_pending()
        m = b.monitor
        if m is not None:
            m.start_batch()

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        b = self._bridge
        m = b.monitor
        if m is not None and logs and b.due():  # the latest batch logs, every half write interval
            m.update_metrics(logs)
            b.refresh_lr()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        b = self._bridge
        m = b.monitor
        if m is None:
            return
        if logs:
            m.update_metrics(logs)
        b.refresh_lr()
        b.end_epoch()

    def on_train_end(self, logs: Any = None) -> None:
        self._training = False
        b = self._bridge
        b.refresh_lr()
        b.finish()

    # -- validation inside fit -------------------------------------------

    def on_test_begin(self, logs: Any = None) -> None:
        b = self._bridge
        if b.monitor is None or not self._training:
            return
        it = getattr(self.model, "_eval_epoch_iterator", None)
        total = getattr(it, "num_batches", None)
        b.start_phase("validation", total if isinstance(total, int) and total >= 0 else None)

    def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
        m = self._bridge.monitor
        if m is not None and self._training:
            m.start_batch()

    def on_test_end(self, logs: Any = None) -> None:
        b = self._bridge
        if b.monitor is not None and self._training:
            b.end_phase()
