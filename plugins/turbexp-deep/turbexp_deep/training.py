"""Training helpers: seeding, and the Keras callbacks that talk to turbexp's fit context."""

from __future__ import annotations

from typing import Any

from turbexp.api import FitContext
from turbexp_deep.framework import keras, tf


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; with ``deterministic``, make TensorFlow's ops
    deterministic too (for the rest of the process), so a seed repeats a run exactly on CPU."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def epoch_metrics(logs: dict[str, Any] | None) -> dict[str, float]:
    """Keras logs under turbexp's names: ``train_<name>`` and ``val_<name>``."""
    return {(name if name.startswith("val_") else f"train_{name}"): float(value)
            for name, value in (logs or {}).items()}


class EpochReporting(keras.callbacks.Callback):
    """Hands every epoch's training and validation metrics to the fit context's reporter,
    which logs them to MLflow and may prune the Optuna trial (by raising TrialPruned)."""

    def __init__(self, context: FitContext, estimator: Any) -> None:
        super().__init__()
        self.context = context
        self.estimator = estimator

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.context.report(epoch + 1, epoch_metrics(logs), self.estimator)


def early_stopping(monitor: str, patience: int) -> keras.callbacks.EarlyStopping:
    """Stop when ``monitor`` (a validation loss) has not improved for ``patience`` epochs and
    restore the weights of its best epoch."""
    return keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=patience,
                                         restore_best_weights=True)
