"""The deep-learning plugins as turbexp sees them: names, parameters, search spaces.

This module stays light: TensorFlow is imported by ``build`` and ``render``,
so listing or validating plugins never loads it.
"""

from __future__ import annotations

import importlib.metadata as md
import warnings
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from turbexp.api import (
    Choice,
    Estimator,
    FeatureExtractor,
    Interval,
    PluginParams,
    Range,
    Report,
    ReportContext,
    ReportOutput,
    SearchSpace,
    TaskKind,
    embed,
    with_interval,
)

IMAGE_MODELS = frozenset({"cnn", "debiased_cnn"})


def _framework_requirements() -> list[str]:
    return [f"{name}=={md.version(name)}" for name in ("tensorflow", "keras")]


class CnnParams(PluginParams):
    """The reference CNN's shape and training; every field is an estimator argument."""

    conv_layers: int = Field(4, ge=1, le=8, description="convolution + max pooling blocks")
    filters: int = Field(32, ge=1, le=512, description="filters of the first convolution; "
                         "doubling per layer up to 4×")
    kernel_size: int = Field(3, ge=1, le=11, description="convolution kernel side")
    dense_layers: int = Field(3, ge=1, le=6, description="dense layers, the output included")
    dense_units: int = Field(128, ge=1, le=4096, description="units of the first hidden dense "
                             "layer; halving per layer")
    dropout: float = Field(0.25, ge=0, lt=1, description="dropout after each hidden dense layer")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="RMSprop learning rate")
    batch_size: int = Field(32, ge=1, le=4096, description="images per batch")
    epochs: int = Field(30, ge=1, le=10_000, description="most epochs")
    patience: int = Field(5, ge=1, description="epochs without a better validation loss "
                          "before stopping")
    validation_fraction: float = Field(0.2, ge=0, lt=1, description="simulations held out for "
                                       "early stopping in the final fit (trials use test)")
    augment: Literal["none", "once", "per_epoch"] = Field(
        "once", description="random square symmetries: one extra copy of each image made once, "
        "or every image redrawn each epoch")
    seed: int = Field(0, ge=0, description="seed of weights, shuffling, dropout, augmentation")
    deterministic: bool = Field(True, description="deterministic TensorFlow ops")


CNN_SPACE: SearchSpace = {
    "conv_layers": Range(2, 5),
    "filters": Choice((16, 32, 64)),
    "dense_units": Choice((32, 64, 128, 256)),
    "dropout": Range(0.0, 0.5),
    "learning_rate": Range(1e-4, 1e-2, log=True),
    "batch_size": Choice((16, 32, 64)),
}


class Cnn(Estimator):
    """The reference study's CNN (Keras on TensorFlow), classifier or index regressor."""

    name: ClassVar[str] = "cnn"
    description: ClassVar[str] = "reference CNN: 4 conv + max pool, 3 dense, RMSprop (Keras)"
    Params = CnnParams
    search_space: ClassVar[SearchSpace] = CNN_SPACE

    def build(self, params: PluginParams, task: TaskKind) -> Any:
        from turbexp_deep.estimator import CnnClassifier, CnnRegressor

        p = self.validated(params)
        return (CnnClassifier if task == "classify" else CnnRegressor)(**p.model_dump())

    def requirements(self) -> list[str]:
        return _framework_requirements()


class DebiasedCnn(Estimator):
    """The CNN trained against an adversary predicting a nuisance label of each simulation."""

    name: ClassVar[str] = "debiased_cnn"
    description: ClassVar[str] = "CNN with a gradient-reversal adversary on a metadata nuisance"

    class Params(CnnParams):
        nuisance: str = Field("refined_fraction", min_length=1,
                              description="key of the simulations' stored metadata")
        adversary_weight: float = Field(1.0, ge=0, description="scale of the reversed gradient")
        ramp_gamma: float = Field(10.0, ge=0, description="γ of the DANN schedule ramping the "
                                  "reversed gradient up from 0 (Ganin et al. 2016); 0: constant")
        nuisance_units: int = Field(32, ge=1, le=4096, description="hidden units of the "
                                    "nuisance head")
        binning: Literal["auto", "median", "classes"] = Field(
            "auto", description="numbers split at the median, or each value a class; auto: "
            "median for numbers with more than two values")
        compare: bool = Field(True, description="also train the twin without adversary in the "
                              "final fit, for the debiasing report")

    search_space: ClassVar[SearchSpace] = {**CNN_SPACE,
                                           "adversary_weight": Range(0.1, 3.0, log=True)}

    def build(self, params: PluginParams, task: TaskKind) -> Any:
        from turbexp_deep.debias import DebiasedCnnClassifier, DebiasedCnnRegressor

        p = self.validated(params)
        cls = DebiasedCnnClassifier if task == "classify" else DebiasedCnnRegressor
        return cls(**p.model_dump())

    def requirements(self) -> list[str]:
        return _framework_requirements()


class Transfer(FeatureExtractor):
    """The frozen convolutional trunk of a CNN logged in MLflow, as features."""

    name: ClassVar[str] = "transfer"
    description: ClassVar[str] = "frozen trunk of a logged CNN (by MLflow model URI)"

    class Params(PluginParams):
        model_uri: str = Field(min_length=1, description="MLflow URI of a logged cnn or "
                               "debiased_cnn model, e.g. models:/m-...")
        fine_tune_layers: int = Field(0, ge=0, le=8, description="last convolutional layers "
                                      "trained further on this task")
        epochs: int = Field(5, ge=1, le=10_000, description="fine-tuning epochs")
        learning_rate: float = Field(1e-4, gt=0, le=1, description="fine-tuning learning rate")
        batch_size: int = Field(32, ge=1, le=4096, description="fine-tuning batch size")
        seed: int = Field(0, ge=0, description="fine-tuning seed")

    def build(self, params: PluginParams) -> Any:
        from turbexp_deep.transfer import TransferFeatures

        return TransferFeatures(**self.validated(params).model_dump())

    def requirements(self) -> list[str]:
        return _framework_requirements()


def _image_model(context: ReportContext) -> tuple[Any, np.ndarray]:
    """The fitted Keras image estimator of the context's model, and its holdout inputs."""
    model = context.model
    if context.images is None or not hasattr(model, "steps"):
        raise ValueError("this report needs the holdout images and the fitted pipeline")
    estimator = model.steps[-1][1]
    if not hasattr(estimator, "image_inputs"):
        raise ValueError(f"this report needs a Keras image model, not {type(estimator).__name__}")
    features = model[:-1].transform(context.images) if len(model.steps) > 1 else context.images
    return estimator, estimator.image_inputs(features)


def _class_positions(estimator: Any, y_true: np.ndarray) -> np.ndarray:
    return np.searchsorted(estimator.classes_, y_true)


class SaliencyReport(Report):
    """Vanilla saliency and SmoothGrad of holdout images of each class (tf-keras-vis)."""

    name: ClassVar[str] = "saliency"
    description: ClassVar[str] = "saliency and SmoothGrad maps of holdout images (tf-keras-vis)"
    estimators: ClassVar[frozenset[str] | None] = IMAGE_MODELS

    class Params(PluginParams):
        examples: int = Field(2, ge=1, le=10, description="images shown per class")
        smooth_samples: int = Field(20, ge=1, le=500, description="noisy copies for SmoothGrad")
        smooth_noise: float = Field(0.2, gt=0, le=2, description="SmoothGrad noise, × the "
                                    "input range")
        max_images: int = Field(2000, ge=1, description="most holdout images in the mean map")

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        from turbexp_deep import saliency

        p = self.validated(params)
        estimator, inputs = _image_model(context)
        groups, labels = _example_groups(context, estimator)
        rng = np.random.default_rng(context.seed)
        shown, titles = [], []
        for name, members in groups.items():
            take = rng.choice(members, min(p.examples, len(members)), replace=False)
            shown += sorted(take.tolist())
            titles += [name] * len(take)
        shown = np.asarray(shown, dtype=int)
        chosen_labels = None if labels is None else labels[shown]
        vanilla = saliency.saliency_maps(estimator, inputs[shown], chosen_labels)
        smooth = saliency.saliency_maps(estimator, inputs[shown], chosen_labels,
                                        p.smooth_samples, p.smooth_noise)
        subset = np.sort(rng.permutation(len(inputs))[:p.max_images])
        every = saliency.saliency_maps(estimator, inputs[subset],
                                       None if labels is None else labels[subset])
        means = {"all": every.mean(axis=0)}
        for name, members in groups.items():
            inside = np.isin(subset, members)
            if inside.any():
                means[name] = every[inside].mean(axis=0)
        fig = saliency.figure(context.images[shown], vanilla, smooth, titles, means)
        fig.suptitle(f"{_caption(context)}; mean maps over {len(subset)} images",
                     fontsize="medium")
        ratio = Interval(saliency.edge_ratio(means["all"]), float("nan"), float("nan"))
        if context.simulation is not None and len(subset) == len(inputs) \
                and context.bootstrap is not None:
            # every holdout image is in the mean map: resample its simulations
            ratio = context.bootstrap.intervals(
                lambda i: {"ratio": saliency.edge_ratio(every[i].mean(axis=0))})["ratio"]
        return ReportOutput(figures={"saliency.png": fig},
                            metrics=with_interval({"saliency_edge_ratio": ratio}))


def _example_groups(context: ReportContext, estimator: Any
                    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Holdout rows per class (or below / above the median index), and class positions."""
    y = np.asarray(context.y_true)
    if context.task == "classify":
        labels = _class_positions(estimator, y)
        names = context.class_names
        groups = {(names[int(c)] if int(c) < len(names) else f"class {c}"): np.flatnonzero(y == c)
                  for c in np.unique(y)}
        return groups, labels
    median = float(np.median(y))
    groups = {f"n <= {median:.3g}": np.flatnonzero(y <= median),
              f"n > {median:.3g}": np.flatnonzero(y > median)}
    return {k: v for k, v in groups.items() if len(v)}, None


class EmbeddingsReport(Report):
    """t-SNE of the CNN's last convolutional activations beside t-SNE of HOG features."""

    name: ClassVar[str] = "embeddings"
    description: ClassVar[str] = "t-SNE of last-conv activations beside t-SNE of HOG (openTSNE)"
    estimators: ClassVar[frozenset[str] | None] = IMAGE_MODELS

    class Params(PluginParams):
        perplexity: float = Field(30.0, gt=0, description="clipped below (n - 1) / 3")
        n_jobs: int = Field(1, ge=1, le=64, description="threads used by openTSNE")
        orientations: int = Field(8, ge=2, le=36, description="HOG orientation bins")
        cells: int = Field(4, ge=2, description="HOG cells per image side")

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        from turbexp_deep import embeddings

        p = self.validated(params)
        estimator, inputs = _image_model(context)
        sources = {
            "CNN last convolution": embeddings.conv_activations(estimator, inputs),
            "HOG": embeddings.hog_features(context.images, p.orientations, p.cells),
        }
        classify = context.task == "classify"
        values = np.asarray(context.y_true if classify else context.index, dtype=np.float64)
        score = "accuracy" if classify else "mae"
        maps, out, shown = {}, {}, {}
        for (name, features), key in zip(sources.items(), ("cnn", "hog"), strict=True):
            maps[name], out[f"embedding_{key}_kl_divergence"], _ = embed(
                features, p.perplexity, context.seed, p.n_jobs)
            per_point = embeddings.neighbour_scores(maps[name], values, classify)
            interval = _mean_interval(context, per_point)
            out |= with_interval({f"embedding_{key}_5nn_{score}": interval})
            shown[name] = interval.text()
        fig = embeddings.figure(maps, context.task, values, context.class_names, shown,
                                _caption(context))
        return ReportOutput(figures={"embeddings.png": fig}, metrics=out)


def _mean_interval(context: ReportContext, per_image: np.ndarray) -> Interval:
    """The mean of a per-image holdout value, with its interval from the run's resamples of
    whole holdout simulations (none without them)."""
    if context.bootstrap is None:
        return Interval(float(np.mean(per_image)), float("nan"), float("nan"))
    return context.bootstrap.intervals(lambda i: {"mean": float(np.mean(per_image[i]))})["mean"]


def _caption(context: ReportContext) -> str:
    """What a figure rests on: the holdout simulations and images."""
    sims = "" if context.simulation is None else \
        f"{len(np.unique(context.simulation))} simulations, "
    return f"holdout: {sims}{len(context.y_true)} images; 95 % intervals from resamples of " \
        "whole simulations"


class DebiasingReport(Report):
    """How well the nuisance can be read off the learned features, with and without debiasing."""

    name: ClassVar[str] = "debiasing"
    description: ClassVar[str] = "holdout task metric and nuisance probe, debiased vs not"
    estimators: ClassVar[frozenset[str] | None] = frozenset({"debiased_cnn"})

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        from matplotlib.figure import Figure

        from turbexp_deep.debias import metadata_values

        self.validated(params)
        estimator, inputs = _image_model(context)
        if not hasattr(estimator, "nuisance_scores"):
            raise ValueError("the debiasing report needs the debiased_cnn estimator")
        nuisance = metadata_values(context.metadata, estimator.nuisance)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predictions = estimator.nuisance_predictions(inputs, nuisance)

            def score(i: Any) -> dict[str, float]:
                return estimator.score_predictions(predictions, context.y_true, i)

            intervals = context.bootstrap.intervals(score) if context.bootstrap is not None \
                else {k: Interval(v, float("nan"), float("nan")) for k, v in score(None).items()}
        scores = {k: v.value for k, v in intervals.items()}
        metrics = with_interval(intervals, "holdout_")
        task_metric = "roc_auc" if context.task == "classify" else "mse"
        fig = Figure(figsize=(7, 4), layout="constrained")
        axes = fig.subplots(1, 2)
        labels = [label for label in ("baseline", "debiased")
                  if f"nuisance_balanced_accuracy_{label}" in scores]
        for ax, (key, title) in zip(axes, (
                (f"task_{task_metric}", f"task: holdout {task_metric}"),
                ("nuisance_balanced_accuracy",
                 f"nuisance {estimator.nuisance!r}: probe balanced accuracy")), strict=True):
            values = [scores[f"{key}_{label}"] for label in labels]
            bounds = [intervals[f"{key}_{label}"] for label in labels]
            errors = np.nan_to_num(np.clip([[v.value - v.low for v in bounds],
                                            [v.high - v.value for v in bounds]], 0, None))
            ax.bar(labels, values, color=[f"C{i}" for i in range(len(labels))], yerr=errors,
                   capsize=4)
            for i, v in enumerate(values):
                ax.text(i, v, f"{v:.3f}", ha="center", va="bottom")
            ax.set_title(title, fontsize="medium")
        axes[1].axhline(0.5, color="grey", linestyle="--", label="chance (2 classes)")
        axes[1].legend(fontsize="small")
        fig.suptitle(f"adversary weight {estimator.adversary_weight:g}; holdout: "
                     f"{len(np.unique(context.simulation))} simulations, "
                     f"{len(context.y_true)} images, 95 % intervals", fontsize="medium")
        return ReportOutput(figures={"debiasing.png": fig}, metrics=metrics)
