"""Transfer learning: the convolutional trunk of a logged CNN as a feature extractor.

The trunk (every layer up to the flattened output of the last pooling layer)
is taken from a turbexp model logged in MLflow (``cnn`` or ``debiased_cnn``,
given by its model URI) and frozen. With ``fine_tune_layers`` > 0 the last
convolutional layers are trained further, with a temporary head, on the
images and targets it is fitted on; the experiment's estimator then trains
the new head on the trunk's features.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from turbexp_deep import cnn
from turbexp_deep.data import as_images, make_dataset
from turbexp_deep.estimator import KerasState, predict_in_batches
from turbexp_deep.framework import keras
from turbexp_deep.training import seed_everything

SOURCE_TAG = "turbexp.transfer.source"


def load_source(uri: str) -> tuple[keras.Model, str | None]:
    """The Keras model of the turbexp image model logged at ``uri`` (or the latest of the
    experiment named by ``experiment:NAME``), and its run id."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from turbexp.api import load_pipeline, resolve_model_uri

    uri = resolve_model_uri(uri)
    try:
        pipeline = load_pipeline(uri)
        run_id = mlflow.models.get_model_info(uri).run_id
    except (MlflowException, OSError) as exc:
        raise ValueError(f"transfer: no loadable MLflow model at {uri!r} ({exc})") from None
    except ValueError as exc:
        raise ValueError(f"transfer: {exc}") from None
    estimator = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    model = getattr(estimator, "model_", None)
    if not isinstance(model, keras.Model):
        raise ValueError(f"transfer: the model at {uri!r} ({type(estimator).__name__}) is not "
                         "a Keras image model such as cnn or debiased_cnn")
    return model, run_id


class TransferFeatures(KerasState, TransformerMixin, BaseEstimator):
    """Images (n, H, W) to the features (n, d) of a logged CNN's frozen trunk."""

    keras_attributes: ClassVar[tuple[str, ...]] = ("trunk_",)

    def __init__(self, model_uri: str = "", fine_tune_layers: int = 0, epochs: int = 5,
                 learning_rate: float = 1e-4, batch_size: int = 32, seed: int = 0,
                 deterministic: bool = True) -> None:
        self.model_uri = model_uri
        self.fine_tune_layers = fine_tune_layers
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.seed = seed
        self.deterministic = deterministic

    def fit(self, X: Any, y: Any = None) -> TransferFeatures:
        if not self.model_uri:
            raise ValueError("transfer needs model_uri, the MLflow URI of a logged CNN")
        x = as_images(X)
        model, run_id = load_source(self.model_uri)
        expected = tuple(model.input_shape[1:])
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"transfer: the model at {self.model_uri!r} takes images of "
                             f"{expected[0]}×{expected[1]}, got {x.shape[1]}×{x.shape[2]}")
        trunk = cnn.submodel(model, cnn.TRUNK_OUTPUT)
        for layer in trunk.layers:
            layer.trainable = False
        if self.fine_tune_layers > 0:
            if y is None:
                raise ValueError("transfer: fine-tuning needs the targets")
            seed_everything(self.seed, self.deterministic)
            convs = [layer for layer in trunk.layers if isinstance(layer, keras.layers.Conv2D)]
            for layer in convs[-self.fine_tune_layers:]:
                layer.trainable = True
            self._fine_tune(trunk, x, np.asarray(y))
        self.trunk_ = trunk
        self.source_run_id_ = run_id
        self.n_features_out_ = int(np.prod(trunk.output_shape[1:]))
        _record_source(self.model_uri, run_id)
        return self

    def _fine_tune(self, trunk: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
        """Train the unfrozen layers with a temporary head for the targets ``y`` (integer
        labels: classification; numbers: regression)."""
        classify = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
        if classify:
            classes = np.unique(y)
            targets = np.searchsorted(classes, y).astype(np.float32)
            k = len(classes)
            out = keras.layers.Dense(1 if k <= 2 else k,
                                     activation="sigmoid" if k <= 2 else "softmax")(trunk.output)
            loss = "binary_crossentropy" if k <= 2 else "sparse_categorical_crossentropy"
        else:
            targets = y.astype(np.float32)
            raw = keras.layers.Dense(1)(trunk.output)
            out = keras.layers.Rescaling(float(np.std(y)) or 1.0, offset=float(np.mean(y)))(raw)
            loss = "mse"
        tuned = keras.Model(trunk.input, out)
        tuned.compile(optimizer=keras.optimizers.RMSprop(self.learning_rate), loss=loss)
        tuned.fit(make_dataset(x, targets, batch_size=self.batch_size, shuffle=True,
                               seed=self.seed), epochs=self.epochs, shuffle=False, verbose=0)

    def transform(self, X: Any) -> np.ndarray:
        x = as_images(X)
        return predict_in_batches(self.trunk_, x)


def _record_source(uri: str, run_id: str | None) -> None:
    """Tag the active MLflow run (if any) with the source model and its run."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags({SOURCE_TAG: uri, f"{SOURCE_TAG}_run": run_id or "unknown"})
