"""Scikit-learn estimators around Keras image models: fit, predict, and save as bytes.

The estimators take images (n, H, W) or the rows of the ``pixels`` feature
plugin (n, H·W), so they sit in turbexp's usual features + estimator pipeline
and are logged with it. A fitted estimator pickles (and saves with skops) its
Keras model as the bytes of a ``.keras`` file, so the pipeline loads back
with ``mlflow.sklearn.load_model`` or ``mlflow.pyfunc.load_model``.

Validation data for early stopping comes from the fit context (the test split
while tuning) or is held out from the fitted images: whole simulations when
the context gives them, stratified by class.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from turbexp.api import FitContext
from turbexp_deep import cnn
from turbexp_deep.data import Augment, as_images, make_dataset
from turbexp_deep.framework import keras
from turbexp_deep.gradient_reversal import GradientReversal
from turbexp_deep.training import EpochReporting, early_stopping, seed_everything

CUSTOM_OBJECTS = {"GradientReversal": GradientReversal}
PREDICT_BATCH = 256


def model_to_bytes(model: keras.Model) -> bytes:
    """A Keras model as the bytes of its ``.keras`` file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def model_from_bytes(data: bytes) -> keras.Model:
    """The Keras model saved by :func:`model_to_bytes` (uncompiled: for inference)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        path.write_bytes(data)
        return keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=False)


def predict_in_batches(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """``model`` applied to ``x`` in inference mode, batch by batch, as a NumPy array."""
    if len(x) == 0:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    out = [np.asarray(model(x[i:i + PREDICT_BATCH], training=False).numpy())
           for i in range(0, len(x), PREDICT_BATCH)]
    return np.concatenate(out)


def probabilities(output: np.ndarray) -> np.ndarray:
    """Class probabilities (n, k) from a network's output: one sigmoid unit or k softmax."""
    output = np.asarray(output, dtype=np.float64)
    return np.hstack([1.0 - output, output]) if output.shape[1] == 1 else output


def validation_rows(y: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int,
                    stratify: bool) -> np.ndarray:
    """Boolean mask of the rows held out for validation: whole groups (simulations), about
    ``fraction`` of them, per class when ``stratify``; none when a class has one group."""
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    strata = np.unique(y) if stratify else [None]
    chosen: list[Any] = []
    for stratum in strata:
        members = np.unique(groups if stratum is None else groups[y == stratum])
        take = round(fraction * len(members))
        if len(members) < 2 or take == 0:
            continue
        chosen += list(rng.choice(members, min(take, len(members) - 1), replace=False))
    return np.isin(groups, chosen)


class KerasState:
    """Pickles (and saves with skops) the Keras models named in ``keras_attributes`` as the
    bytes of ``.keras`` files; mix in before :class:`~sklearn.base.BaseEstimator`."""

    keras_attributes: ClassVar[tuple[str, ...]] = ()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # type: ignore[misc]  # a copy, not __dict__
        for name in self.keras_attributes:
            if isinstance(state.get(name), keras.Model):
                state[name] = model_to_bytes(state[name])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        for name in self.keras_attributes:
            if isinstance(state.get(name), bytes | bytearray):
                state[name] = model_from_bytes(bytes(state[name]))
        super().__setstate__(state)  # type: ignore[misc]


class KerasImageEstimator(KerasState, BaseEstimator):
    """Base of the Keras image estimators: the reference CNN, trained with RMSprop."""

    task: ClassVar[str] = ""
    keras_attributes: ClassVar[tuple[str, ...]] = ("model_",)
    monitor: ClassVar[str] = "val_loss"
    # turbexp routes its FitContext (epoch reporting, validation data) to ``fit``
    __metadata_request__fit: ClassVar[dict[str, bool]] = {"fit_context": True}

    def __init__(
        self,
        conv_layers: int = 4,
        filters: int = 32,
        kernel_size: int = 3,
        dense_layers: int = 3,
        dense_units: int = 128,
        dropout: float = 0.25,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        epochs: int = 30,
        patience: int = 5,
        validation_fraction: float = 0.2,
        augment: Augment = "once",
        seed: int = 0,
        deterministic: bool = True,
    ) -> None:
        self.conv_layers = conv_layers
        self.filters = filters
        self.kernel_size = kernel_size
        self.dense_layers = dense_layers
        self.dense_units = dense_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.augment = augment
        self.seed = seed
        self.deterministic = deterministic

    # --- what subclasses define -------------------------------------------------------

    def _learn_targets(self, y: np.ndarray) -> None:
        """Remember what the targets look like (classes, scale)."""

    def _encode(self, y: np.ndarray) -> np.ndarray:
        """Targets as the network is trained on them."""
        return np.asarray(y, dtype=np.float32)

    def _n_classes(self) -> int:
        return 0

    # --- fitting ----------------------------------------------------------------------

    def architecture(self) -> cnn.Architecture:
        return cnn.Architecture(self.conv_layers, self.filters, self.kernel_size,
                                self.dense_layers, self.dense_units, self.dropout)

    def _build(self, input_shape: tuple[int, ...]) -> keras.Model:
        mean, scale = getattr(self, "target_mean_", 0.0), getattr(self, "target_scale_", 1.0)
        return cnn.build(input_shape, self.architecture(), self.task, self._n_classes(),
                         mean, scale)

    def _compile(self, model: keras.Model) -> None:
        loss, metrics = cnn.loss_and_metrics(self.task, self._n_classes())
        model.compile(optimizer=keras.optimizers.RMSprop(self.learning_rate), loss=loss,
                      metrics=metrics)

    def _split(self, x: np.ndarray, y: np.ndarray, context: FitContext
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows to train on, and rows to validate on (None: the context's validation data,
        or no validation)."""
        everything = np.ones(len(x), dtype=bool)
        if context.validation is not None or self.validation_fraction == 0:
            return everything, None
        groups = context.groups if context.groups is not None and \
            len(context.groups) == len(x) else None
        held = validation_rows(y, groups, self.validation_fraction, self.seed,
                               stratify=self.task == "classify")
        if not held.any():
            return everything, None
        return ~held, held

    def fit(self, X: Any, y: Any, fit_context: FitContext | None = None
            ) -> KerasImageEstimator:
        """Train on images ``X`` and targets ``y`` (class labels or the index n), reporting
        epochs and validating as ``fit_context`` (routed by turbexp) says."""
        x, y = as_images(X), np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} targets")
        context = fit_context or FitContext()
        seed_everything(self.seed, self.deterministic)
        self._learn_targets(y)
        train, held = self._split(x, y, context)
        targets = self._encode(y)
        if held is not None:
            validation = (x[held], targets[held])
        elif context.validation is not None:
            x_val, y_val = context.validation
            validation = (as_images(x_val), self._encode(np.asarray(y_val)))
        else:
            validation = None
        model = self._build(x.shape[1:])
        self._compile(model)
        self.model_ = model
        self._train(model, (x[train], targets[train]), validation, context)
        return self

    def _train(self, model: keras.Model, data: tuple[np.ndarray, Any],
               validation: tuple[np.ndarray, Any] | None,
               context: FitContext,
               schedules: Sequence[keras.callbacks.Callback] = ()) -> None:
        """Fit ``model`` on tf.data pipelines, with early stopping and epoch reporting;
        ``schedules`` are callbacks that run first in each epoch."""
        callbacks: list[keras.callbacks.Callback] = [EpochReporting(context, self)]
        val_ds = None
        if validation is not None:
            callbacks.insert(0, early_stopping(self.monitor, self.patience))
            val_ds = make_dataset(*validation, batch_size=PREDICT_BATCH)
        callbacks[:0] = schedules
        train_ds = make_dataset(*data, batch_size=self.batch_size, shuffle=True,
                                augment=self.augment, seed=self.seed)
        history = model.fit(train_ds, validation_data=val_ds, epochs=self.epochs,
                            callbacks=callbacks, shuffle=False, verbose=0)
        self.history_ = {name: [float(v) for v in values]
                         for name, values in history.history.items()}
        self.n_epochs_ = len(history.epoch)
        watched = self.history_.get(self.monitor)
        # counted from 1, like the epochs reported to MLflow and Optuna
        self.best_epoch_ = int(np.argmin(watched)) + 1 if watched else self.n_epochs_

    # --- predicting -------------------------------------------------------------------

    def _raw_predict(self, X: Any) -> np.ndarray:
        return predict_in_batches(self.model_, as_images(X))

    def learned_features(self, X: Any, model: keras.Model | None = None) -> np.ndarray:
        """The flattened output of the convolutional trunk, (n, d)."""
        trunk = cnn.submodel(self.model_ if model is None else model, cnn.TRUNK_OUTPUT)
        return predict_in_batches(trunk, as_images(X))

    def image_inputs(self, X: Any) -> np.ndarray:
        """The network's input (n, H, W, 1) for ``X``, for tools that call it directly."""
        return as_images(X)


class CnnClassifier(ClassifierMixin, KerasImageEstimator):
    """The reference CNN as a classifier: labels are the classes seen in ``fit``."""

    task: ClassVar[str] = "classify"

    def _learn_targets(self, y: np.ndarray) -> None:
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"a classifier needs two classes or more, got {self.classes_}")

    def _n_classes(self) -> int:
        return len(self.classes_)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        position = np.searchsorted(self.classes_, y)
        position = np.clip(position, 0, len(self.classes_) - 1)
        if np.any(self.classes_[position] != y):
            raise ValueError(f"labels {sorted(set(np.asarray(y).tolist()) - set(self.classes_))}"
                             " were not seen in fit")
        return position.astype(np.float32)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each class, (n, n_classes)."""
        return probabilities(self._raw_predict(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class CnnRegressor(RegressorMixin, KerasImageEstimator):
    """The reference CNN as a regressor of one number (the spectral index n)."""

    task: ClassVar[str] = "regress"

    def _learn_targets(self, y: np.ndarray) -> None:
        y = np.asarray(y, dtype=np.float64)
        self.target_mean_ = float(np.mean(y))
        self.target_scale_ = float(np.std(y)) or 1.0

    def predict(self, X: Any) -> np.ndarray:
        return self._raw_predict(X).reshape(-1).astype(np.float64)
