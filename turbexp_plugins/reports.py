"""Report plugins: ROC curve, confusion matrix, t-SNE map and predicted-vs-true index.

Figures are :class:`matplotlib.figure.Figure` objects drawn without pyplot, so
no display or global figure state is involved; the caller saves them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from matplotlib.figure import Figure
from pydantic import Field
from sklearn import metrics as skm

from turbexp.api import (
    PluginParams,
    Report,
    ReportContext,
    ReportOutput,
    draw_roc,
    embed,
    finish_roc,
    hookimpl,
    index_axes,
    index_range,
    metrics,
    with_interval,
)


def _class_name(context: ReportContext, label: int) -> str:
    names = context.class_names
    return names[label] if 0 <= label < len(names) else f"class {label}"


def _sizes(context: ReportContext) -> str:
    """What a figure rests on: ``"holdout: 12 simulations, 576 images"``."""
    n_images = len(np.asarray(context.y_true).ravel())
    if context.simulation is None:
        return f"holdout: {n_images} images"
    return f"holdout: {len(np.unique(context.simulation))} simulations, {n_images} images"


def _band_note(context: ReportContext) -> str:
    boot = context.bootstrap
    return "" if boot is None else \
        f"; 95 % band from {boot.resamples} resamples of whole simulations"


class Roc(Report):
    """ROC curve of the class-1 score, with its area under the curve."""

    name: ClassVar[str] = "roc"
    description: ClassVar[str] = "ROC curve and AUC (binary classification)"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify"})

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        self.validated(params)
        positive = np.asarray(context.y_true).ravel() == 1
        score = np.asarray(context.score, dtype=np.float64).ravel()
        fig = Figure(figsize=(5, 5.3), layout="constrained")
        ax = fig.add_subplot()
        positive_name = _class_name(context, 1)
        if positive.all() or not positive.any():
            ax.text(0.5, 0.5, "ROC undefined:\nonly one class present", ha="center", va="center")
        else:
            auc, band = f"{metrics.roc_auc(positive, score):.3f}", None
            if context.bootstrap is not None:
                band = context.bootstrap.band(lambda i: metrics.roc_tpr(positive[i], score[i]))
                auc = context.bootstrap.intervals(
                    lambda i: {"auc": metrics.roc_auc(positive[i], score[i])})["auc"].text()
            fpr, tpr, _ = skm.roc_curve(positive, score)
            draw_roc(ax, fpr, tpr, label=f"{positive_name} (AUC = {auc})", colour="C0",
                     band=band, chance=True)
        finish_roc(ax, f"ROC curve, positive class: {positive_name}\n{_sizes(context)}"
                       f"{_band_note(context)}")
        return ReportOutput(figures={"roc.png": fig})


class ConfusionMatrix(Report):
    """Confusion matrix with class names and annotated counts."""

    name: ClassVar[str] = "confusion_matrix"
    description: ClassVar[str] = "confusion matrix of the predicted classes"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify"})

    class Params(PluginParams):
        normalize: Literal["none", "true"] = Field(
            "none", description="'true' shows each row as fractions of the true class"
        )

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        y_true = np.asarray(context.y_true).ravel().astype(int)
        y_pred = np.asarray(context.y_pred).ravel().astype(int)
        n_classes = max(len(context.class_names), int(max(y_true.max(), y_pred.max())) + 1)
        labels = list(range(n_classes))
        names = [_class_name(context, label) for label in labels]
        counts = skm.confusion_matrix(y_true, y_pred, labels=labels)
        shown = counts
        if p.normalize == "true":  # a class absent from the holdout shows zeros, not NaN
            totals = counts.sum(axis=1, keepdims=True)
            shown = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        size = 2.0 + 1.2 * n_classes
        fig = Figure(figsize=(size + 1.0, size), layout="constrained")
        ax = fig.add_subplot()
        display = skm.ConfusionMatrixDisplay(shown, display_labels=names).plot(
            ax=ax, cmap="Blues", values_format=".2f" if p.normalize == "true" else "d",
            im_kw={"vmin": 0})
        display.im_.colorbar.set_label("fraction" if p.normalize == "true" else "images")
        ax.set(xlabel="Predicted class", ylabel="True class")
        ax.set_title(f"Confusion matrix\n{_sizes(context)}", fontsize=9)
        return ReportOutput(figures={"confusion_matrix.png": fig})


class Tsne(Report):
    """Two-dimensional openTSNE map of the standardised features."""

    name: ClassVar[str] = "tsne"
    description: ClassVar[str] = "t-SNE embedding of the features (openTSNE)"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify", "regress"})

    class Params(PluginParams):
        perplexity: float = Field(
            30.0, gt=0, description="effective neighbours; clipped below (n - 1) / 3"
        )
        n_jobs: int = Field(1, ge=1, le=64, description="threads used by openTSNE")

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        points, kl, perplexity = embed(context.features, p.perplexity, context.seed, p.n_jobs)
        fig = Figure(figsize=(6, 5), layout="constrained")
        ax = fig.add_subplot()
        if context.task == "classify":
            labels = np.asarray(context.y_true).ravel().astype(int)
            for label in np.unique(labels):
                chosen = labels == label
                ax.scatter(
                    points[chosen, 0],
                    points[chosen, 1],
                    s=14,
                    alpha=0.8,
                    color=f"C{label % 10}",
                    label=_class_name(context, int(label)),
                )
            ax.legend(title="true class")
        else:
            index = np.asarray(context.index, dtype=np.float64).ravel()
            dots = ax.scatter(points[:, 0], points[:, 1], s=14, c=index, cmap="viridis")
            fig.colorbar(dots, ax=ax, label="spectral index n")
        ax.set(xlabel="t-SNE 1", ylabel="t-SNE 2")
        ax.set_title(f"t-SNE of standardised features (perplexity {perplexity:.3g})\n"
                     f"{_sizes(context)}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        return ReportOutput(figures={"tsne.png": fig}, metrics={"tsne_kl_divergence": kl})


class PredictedVsTrue(Report):
    """The predicted against the true spectral index: each simulation's mean prediction with
    the spread of its images, and a straight-line fit with its 95 % band."""

    name: ClassVar[str] = "predicted_vs_true"
    description: ClassVar[str] = "predicted versus true spectral index (regression)"
    tasks: ClassVar[frozenset[str]] = frozenset({"regress"})

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        self.validated(params)
        truth = np.asarray(context.y_true, dtype=np.float64).ravel()
        predicted = np.asarray(context.score, dtype=np.float64).ravel()
        fig = Figure(figsize=(5.5, 5.3), layout="constrained")
        ax = fig.add_subplot()
        low, high = index_range([truth, predicted])
        index_axes(ax, (low, high))
        out: dict[str, float] = {}
        if context.simulation is None:
            ax.scatter(truth, predicted, s=16, alpha=0.7, color="C0", label="images")
        else:
            owners = np.asarray(context.simulation).ravel()
            sims = np.unique(owners)
            means = np.array([predicted[owners == k].mean() for k in sims])
            spread = np.array([predicted[owners == k].std() for k in sims])
            ax.errorbar([truth[owners == k][0] for k in sims], means, yerr=spread, fmt="o",
                        color="C0", markersize=4, capsize=2, alpha=0.8,
                        label="one simulation: mean ± sd of its images")
        if context.bootstrap is not None and np.ptp(truth) > 0:
            grid = np.linspace(low, high, 50)
            line = context.bootstrap.intervals(lambda i: metrics.linear_fit(truth[i],
                                                                             predicted[i]))
            band_low, band_high = context.bootstrap.band(
                lambda i: np.polyval(np.polyfit(truth[i], predicted[i], 1), grid)
                if np.ptp(truth[i]) > 0 else np.full(len(grid), np.nan))
            ax.fill_between(grid, band_low, band_high, color="C0", alpha=0.2, label="95 % band")
            ax.plot(grid, line["slope"].value * grid + line["intercept"].value, color="C0",
                    label=f"fit: slope {line['slope'].text()}, bias {line['bias'].text()}")
            out = with_interval({"slope": line["slope"], "bias": line["bias"]},
                                "holdout_fit_")
        ax.set_title(f"Predicted vs true spectral index\n{_sizes(context)}{_band_note(context)}",
                     fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
        return ReportOutput(figures={"predicted_vs_true.png": fig}, metrics=out)


@hookimpl
def register_reports(register: Any) -> None:
    register(Roc)
    register(ConfusionMatrix)
    register(Tsne)
    register(PredictedVsTrue)
