"""Adversarial debiasing: a CNN whose features are trained not to reveal a nuisance label.

The reference CNN's trunk feeds two heads: the task head, and a nuisance head
behind a gradient reversal layer. The nuisance head learns to predict a label
that each simulation carries in its stored metadata (the refined fraction of
an AMR run, its resolution, its simulator); the reversed gradient trains the
trunk to make that impossible. ``adversary_weight`` scales the reversed
gradient; at 0 the network is the plain CNN (with an idle nuisance head).
With ``ramp_gamma`` > 0 the scale follows the schedule of Ganin et al. (JMLR
2016): ``adversary_weight · (2 / (1 + exp(-ramp_gamma · p)) - 1)`` at training
progress p = epoch / epochs, so the adversary starts at 0 and the task is
learnt before the reversal reaches full strength; 0 keeps it constant.

To measure the effect, the estimator also trains (outside tuning trials) a
twin with ``adversary_weight`` 0 from the same seed, and for each of the two
fits a fresh logistic regression predicting the nuisance from the trunk's
features of the fitted images. :meth:`DebiasedCnnEstimator.nuisance_scores`
scores both on new images (the ``debiasing`` report does it on holdout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from turbexp.api import FitContext, metrics
from turbexp_deep import cnn
from turbexp_deep.data import Augment, as_images
from turbexp_deep.estimator import (
    CnnClassifier,
    CnnRegressor,
    KerasImageEstimator,
    predict_in_batches,
    probabilities,
)
from turbexp_deep.framework import keras
from turbexp_deep.gradient_reversal import (
    GradientReversal,
    ReversalSchedule,
    dann_weight,
)
from turbexp_deep.training import seed_everything

Binning = Literal["auto", "median", "classes"]


def metadata_values(metadata: Sequence[Mapping[str, Any]] | None, key: str) -> list[Any]:
    """The value of ``key`` in each row's simulation metadata."""
    if metadata is None:
        raise ValueError(f"the nuisance {key!r} comes from the simulations' stored metadata, "
                         "which this fit was not given")
    missing = sum(key not in row for row in metadata)
    if missing:
        known = sorted({k for row in metadata for k in row})
        raise ValueError(f"{missing} image(s) come from simulations whose metadata has no "
                         f"{key!r}; keys present: {', '.join(known) or 'none'}")
    return [row[key] for row in metadata]


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float | np.number) and not isinstance(v, bool | np.bool_)
               for v in values)


class DebiasedCnnEstimator(KerasImageEstimator):
    """The reference CNN trained against a nuisance adversary (see the module docstring)."""

    keras_attributes: ClassVar[tuple[str, ...]] = ("model_", "baseline_model_")
    monitor: ClassVar[str] = "val_task_loss"

    def __init__(
        self,
        nuisance: str = "refined_fraction",
        adversary_weight: float = 1.0,
        ramp_gamma: float = 10.0,
        nuisance_units: int = 32,
        binning: Binning = "auto",
        compare: bool = True,
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
        super().__init__(conv_layers, filters, kernel_size, dense_layers, dense_units, dropout,
                         learning_rate, batch_size, epochs, patience, validation_fraction,
                         augment, seed, deterministic)
        self.nuisance = nuisance
        self.adversary_weight = adversary_weight
        self.ramp_gamma = ramp_gamma
        self.nuisance_units = nuisance_units
        self.binning = binning
        self.compare = compare

    # --- the nuisance label ------------------------------------------------------------

    def _learn_nuisance(self, values: Sequence[Any]) -> None:
        distinct = set(values)
        numeric = _numeric(values)
        mode = self.binning
        if mode == "auto":
            mode = "median" if numeric and len(distinct) > 2 else "classes"
        if mode == "median":
            if not numeric:
                raise ValueError(f"nuisance {self.nuisance!r} is not numeric; use binning: "
                                 "classes")
            self.nuisance_threshold_ = float(np.median(np.asarray(values, dtype=np.float64)))
            self.nuisance_classes_ = np.array([f"<= {self.nuisance_threshold_:.4g}",
                                               f"> {self.nuisance_threshold_:.4g}"])
        else:
            self.nuisance_threshold_ = None
            self.nuisance_classes_ = np.array(sorted(str(v) for v in distinct))
        codes = self.nuisance_codes(values)
        if len(np.unique(codes)) < 2:
            raise ValueError(f"nuisance {self.nuisance!r} takes one value only "
                             f"({sorted(map(str, distinct))}); nothing to debias")

    def nuisance_codes(self, values: Sequence[Any]) -> np.ndarray:
        """Nuisance classes 0..k-1 of raw metadata values, as learned in ``fit``."""
        if self.nuisance_threshold_ is not None:
            return (np.asarray(values, dtype=np.float64) > self.nuisance_threshold_).astype(int)
        names = np.asarray([str(v) for v in values])
        position = np.clip(np.searchsorted(self.nuisance_classes_, names), 0,
                           len(self.nuisance_classes_) - 1)
        if np.any(self.nuisance_classes_[position] != names):
            unseen = sorted(set(names) - set(self.nuisance_classes_))
            raise ValueError(f"nuisance values {unseen} were not seen in fit")
        return position

    # --- the network ------------------------------------------------------------------

    def _networks(self, input_shape: tuple[int, ...], weight: float
                  ) -> tuple[keras.Model, keras.Model, ReversalSchedule | None]:
        """The training network (task and nuisance outputs), its task-only part, and the
        schedule of its reversal weight (None when the weight stays constant)."""
        arch = self.architecture()
        inputs = keras.Input(input_shape, name="image")
        features = cnn.trunk(inputs, arch)
        task = cnn.task_output(features, arch, self.task, self._n_classes(),
                               getattr(self, "target_mean_", 0.0),
                               getattr(self, "target_scale_", 1.0), name="task")
        k = len(self.nuisance_classes_)
        reversal = GradientReversal(weight, name="reverse_gradient")
        h = reversal(features)
        h = keras.layers.Dense(self.nuisance_units, activation="relu", name="nuisance_dense")(h)
        nuisance = keras.layers.Dense(1 if k == 2 else k,
                                      activation="sigmoid" if k == 2 else "softmax",
                                      name="nuisance")(h)
        network = keras.Model(inputs, {"task": task, "nuisance": nuisance}, name="debiased_cnn")
        schedule = None
        if weight != 0 and self.ramp_gamma != 0:
            reversal.scale.assign(dann_weight(weight, self.ramp_gamma, 0.0))
            schedule = ReversalSchedule(reversal, weight, self.ramp_gamma, self.epochs)
        task_loss, task_metrics = cnn.loss_and_metrics(self.task, self._n_classes())
        nuisance_loss = "binary_crossentropy" if k == 2 else "sparse_categorical_crossentropy"
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy") if k == 2 else \
            keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        network.compile(optimizer=keras.optimizers.RMSprop(self.learning_rate),
                        loss={"task": task_loss, "nuisance": nuisance_loss},
                        metrics={"task": task_metrics, "nuisance": [accuracy]})
        return network, keras.Model(inputs, task, name="cnn"), schedule

    def _fit_network(self, x: np.ndarray, targets: dict[str, np.ndarray], train: np.ndarray,
                     validation: tuple[np.ndarray, dict[str, np.ndarray]] | None,
                     context: FitContext, weight: float) -> keras.Model:
        seed_everything(self.seed, self.deterministic)
        network, task_model, schedule = self._networks(x.shape[1:], weight)
        self.model_ = task_model  # what predict uses, also while training (epoch scores)
        self._train(network, (x[train], {k: v[train] for k, v in targets.items()}),
                    validation, context, [schedule] if schedule is not None else ())
        # the reversal weight of each epoch run (by the schedule, or constant)
        self.reversal_weights_ = list(schedule.applied) if schedule is not None else \
            [float(weight)] * self.n_epochs_
        return task_model

    def fit(self, X: Any, y: Any, nuisance: Sequence[Any] | None = None,
            fit_context: FitContext | None = None) -> Any:
        """Train on images ``X`` and targets ``y``; ``nuisance`` holds each image's raw
        nuisance value, by default the metadata value named by the ``nuisance`` parameter
        (from ``fit_context``, routed by turbexp, like the validation data)."""
        x, y = as_images(X), np.asarray(y)
        context = fit_context or FitContext()
        raw = list(nuisance) if nuisance is not None else \
            metadata_values(context.metadata, self.nuisance)
        if not (len(x) == len(y) == len(raw)):
            raise ValueError(f"{len(x)} images, {len(y)} targets, {len(raw)} nuisance values")
        self._learn_targets(y)
        self._learn_nuisance(raw)
        train, held = self._split(x, y, context)
        targets = {"task": self._encode(y),
                   "nuisance": self.nuisance_codes(raw).astype(np.float32)}
        validation = None
        if held is not None:
            validation = (x[held], {k: v[held] for k, v in targets.items()})
        elif context.validation is not None:
            x_val, y_val = context.validation
            raw_val = metadata_values(context.validation_metadata, self.nuisance)
            validation = (as_images(x_val), {
                "task": self._encode(np.asarray(y_val)),
                "nuisance": self.nuisance_codes(raw_val).astype(np.float32)})
        codes = targets["nuisance"].astype(int)
        self.baseline_model_ = self.baseline_probe_ = None
        if self.compare and not context.tuning:
            # the twin: same data, same seed, no adversary; its epochs are not reported
            quiet = FitContext(validation=context.validation, groups=context.groups,
                               tuning=context.tuning)
            self.baseline_model_ = self._fit_network(x, targets, train, validation, quiet, 0.0)
            self.baseline_history_ = self.history_
            self.baseline_probe_ = self._probe(self.baseline_model_, x, codes)
        model = self._fit_network(x, targets, train, validation, context, self.adversary_weight)
        self.nuisance_probe_ = self._probe(model, x, codes)
        return self

    def _probe(self, model: keras.Model, x: np.ndarray, codes: np.ndarray) -> Pipeline:
        """A fresh logistic regression from the trunk's features to the nuisance class."""
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return probe.fit(self.learned_features(x, model), codes)

    # --- the measure --------------------------------------------------------------------

    def nuisance_predictions(self, X: Any, nuisance: Sequence[Any]) -> dict[str, Any]:
        """On new images, for ``debiased`` and (when trained) ``baseline``: the probe's guess of
        the nuisance class from the learned features and the task predictions, with the true
        nuisance classes under ``codes``."""
        found: dict[str, Any] = {"codes": self.nuisance_codes(nuisance)}
        fits = [("debiased", self.model_, self.nuisance_probe_)]
        if self.baseline_model_ is not None:
            fits.append(("baseline", self.baseline_model_, self.baseline_probe_))
        for label, model, probe in fits:
            guess = probe.predict(self.learned_features(X, model))
            found[label] = (guess, *self._task_predictions(model, X))
        return found

    def score_predictions(self, predictions: dict[str, Any], y: np.ndarray,
                          indices: np.ndarray | None = None) -> dict[str, float]:
        """How well each fit's probe predicts the nuisance (``nuisance_accuracy_*``,
        ``nuisance_balanced_accuracy_*``) and the task metrics (``task_<metric>_*``), on the
        images ``indices`` (default: all) of :meth:`nuisance_predictions`."""
        chosen = slice(None) if indices is None else indices
        codes, y = predictions["codes"][chosen], np.asarray(y)[chosen]
        scores: dict[str, float] = {}
        for label in ("debiased", "baseline"):
            if label not in predictions:
                continue
            guess, y_pred, y_score = (np.asarray(a)[chosen] for a in predictions[label])
            scores[f"nuisance_accuracy_{label}"] = float(np.mean(codes == guess))
            scores[f"nuisance_balanced_accuracy_{label}"] = float(
                balanced_accuracy_score(codes, guess)) if len(np.unique(codes)) > 1 else \
                float(np.mean(codes == guess))
            for name, value in metrics.score(self.task, y, y_pred, y_score).items():
                scores[f"task_{name}_{label}"] = value
        return scores

    def nuisance_scores(self, X: Any, nuisance: Sequence[Any],
                        y: np.ndarray) -> dict[str, float]:
        """:meth:`score_predictions` of every image of ``X``."""
        return self.score_predictions(self.nuisance_predictions(X, nuisance), y)

    def _task_predictions(self, model: keras.Model, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """Predictions of ``model`` and the score the task's metrics rank by."""
        output = predict_in_batches(model, as_images(X))
        if self.task == "regress":
            y_pred = output.reshape(-1).astype(np.float64)
            return y_pred, y_pred
        proba = probabilities(output)
        return self.classes_[np.argmax(proba, axis=1)], proba[:, 1]


class DebiasedCnnClassifier(DebiasedCnnEstimator, CnnClassifier):
    """The debiased CNN as a classifier."""


class DebiasedCnnRegressor(DebiasedCnnEstimator, CnnRegressor):
    """The debiased CNN as a regressor of the spectral index."""
