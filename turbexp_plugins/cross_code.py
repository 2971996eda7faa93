"""``cross_code``: the fitted model scored on campaigns from another code (RAMSES AMR maps).

For a classifier: accuracy at the model's own threshold, ROC AUC, Brier score and expected
calibration error (ECE), with a reliability diagram; for a regression of n: MSE, bias and
slope of predicted against true n, with a predicted-vs-true figure, and how often the
conformal interval of a map's n (:mod:`turbexp.conformal`) holds it; for a classifier with
probabilities, also each map's Brier score and ECE after the model's own calibration and
the mean width of its bounds (:mod:`turbexp.calibration`, ``_map_calibrated_``). The
experiment's own holdout is scored the same way, as the row to compare with. Each metric is
given per image and per map (``_map_``: a simulation's projection, its images' mean score, as
``turbexp predict`` summarises a map). Every value has its 95 % interval from resampling whole
simulations (within classes for a classification).

Metric names are ``cross_<label>_<metric>``, ``<label>`` being the key the campaign is given
under in the report's ``campaigns`` (``holdout`` for the experiment's own holdout).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure
from pydantic import Field, field_validator

from turbexp.api import (
    Interval,
    MapCalibration,
    PluginParams,
    Probe,
    Register,
    Report,
    ReportContext,
    ReportOutput,
    Simulation,
    SimulationBootstrap,
    conformal,
    hookimpl,
    images_per_simulation,
    metrics,
    predict_scored,
    probe_of,
    with_interval,
)

BINS = 10
"""Equal-width probability bins of the ECE and the reliability diagram."""


def cross_scores(task: str, y_true: np.ndarray, y_pred: np.ndarray,
                 score: np.ndarray) -> dict[str, float]:
    """The task's metrics and those of calibration (classify: ``brier``, ``ece``, NaN when
    the score is not a probability) or of the predicted-vs-true line (regress: ``bias``,
    ``slope``)."""
    values = metrics.score(task, y_true, y_pred, score)
    if task == "classify":
        is_probability = len(score) and metrics.is_probability(score)
        nan = float("nan")
        return values | {
            "brier": metrics.brier(y_true, score) if is_probability else nan,
            "ece": metrics.expected_calibration_error(y_true, score, BINS)
            if is_probability else nan}
    fit = metrics.linear_fit(y_true, y_pred)
    return values | {"bias": fit["bias"], "slope": fit["slope"]}


class _Scored:
    """One test set's truth, predictions and scores per image (or per map), with the
    simulation each comes from, and their bootstrap over simulations."""

    def __init__(self, probe: Probe, y_true: np.ndarray, y_pred: np.ndarray,
                 score: np.ndarray, owners: np.ndarray) -> None:
        self.probe = probe
        self.y_true, self.y_pred = np.asarray(y_true), np.asarray(y_pred)
        self.score, self.owners = np.asarray(score, dtype=np.float64), np.asarray(owners)
        boot = probe.plan.spec.evaluate.bootstrap
        strata = self.y_true if probe.task == "classify" else None
        self.bootstrap = SimulationBootstrap(self.owners, strata, resamples=boot.resamples,
                                             seed=boot.seed)

    @classmethod
    def of(cls, probe: Probe, simulations: list[Simulation]) -> _Scored:
        images, y, owners = probe.dataset(simulations)
        y_pred, score = probe.predict(images)
        return cls(probe, y, y_pred, score, owners)

    @property
    def n_simulations(self) -> int:
        return len(np.unique(self.owners))

    def intervals(self) -> dict[str, Interval]:
        return self.bootstrap.intervals(lambda i: cross_scores(
            self.probe.task, self.y_true[i], self.y_pred[i], self.score[i]))

    def maps(self) -> _Scored:
        """One entry per map (a simulation's projection): the mean score of its images,
        classified at the model's threshold (0.5 for a probability, else 0), or the mean
        predicted n; as ``turbexp predict`` summarises a map."""
        images = self.probe.plan.spec.data.images
        mean, first = conformal.map_means(self.score, self.owners,
                                          images_per_simulation(images)
                                          // len(images.projections))
        if self.probe.task == "classify":
            threshold = 0.5 if metrics.is_probability(self.score) else 0.0
            y_pred = (mean > threshold).astype(int)
        else:
            y_pred = mean
        return _Scored(self.probe, self.y_true[first], y_pred, mean, self.owners[first])

    def calibrated(self, calibration: MapCalibration) -> dict[str, Interval]:
        """Brier score and ECE of these (map) probabilities after ``calibration``, and the
        mean width of its Venn-ABERS bounds."""
        return self.bootstrap.intervals(calibration.scores(self.score, self.y_true))

    def coverage(self, halfwidth: float) -> Interval:
        """The fraction of these (map) intervals ``prediction ± halfwidth`` that hold n."""
        hits = conformal.covered(self.y_pred, self.y_true, halfwidth).astype(np.float64)
        return self.bootstrap.intervals(lambda i: {"c": hits[i].mean()})["c"]

    def per_simulation(self) -> tuple[np.ndarray, np.ndarray]:
        """Each simulation's true and mean predicted value (regress)."""
        sims = np.unique(self.owners)
        return (np.array([self.y_true[self.owners == s][0] for s in sims], dtype=np.float64),
                np.array([self.y_pred[self.owners == s].mean() for s in sims]))


class CrossCode(Report):
    """The model trained on one code's maps, scored on another code's campaigns."""

    name: ClassVar[str] = "cross_code"
    description: ClassVar[str] = ("accuracy, AUC, Brier, calibration error (or MSE, bias, "
                                  "slope) on campaigns of another code")

    class Params(PluginParams):
        campaigns: dict[str, str] = Field(
            min_length=1, description="label -> campaign file (relative to the experiment "
                                      "file); missing simulations are made")

        @field_validator("campaigns")
        @classmethod
        def _labels(cls, value: dict[str, str]) -> dict[str, str]:
            for label in value:
                if not label.replace("_", "").replace(".", "").isalnum() or label == "holdout":
                    raise ValueError(f"campaign label {label!r} must be letters, digits, '_' "
                                     f"or '.', and not 'holdout'")
            return value

        align: bool = Field(False, description=(
            "also score each campaign after moving its features to the training maps' mean "
            "and spread: a recalibration with unlabelled target maps, which assumes the "
            "campaign's class mix (or spread of n) is the training one's"))

    def campaigns(self, params: PluginParams) -> dict[str, bool]:
        return dict.fromkeys(self.validated(params).campaigns.values(), True)

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        probe = probe_of(context)
        sets = {"holdout": _Scored.of(probe, probe.simulations("holdout"))}
        reference = _features(probe, probe.simulations("train"))[0] if p.align else None
        for label, path in p.campaigns.items():
            simulations = probe.campaign_simulations(Path(path))
            sets[label] = _Scored.of(probe, simulations)
            if reference is not None:
                sets[f"{label}_aligned"] = _aligned(probe, simulations, reference)
        out: dict[str, float] = {}
        scores = {}
        for label, scored in sets.items():
            scores[label] = scored.intervals()
            out |= with_interval(scores[label], f"cross_{label}_")
            maps = scored.maps()
            out |= with_interval(maps.intervals(), f"cross_{label}_map_")
            if context.map_calibration is not None:
                out |= with_interval(maps.calibrated(context.map_calibration),
                                     f"cross_{label}_map_calibrated_")
            if context.map_interval is not None:
                level = f"{conformal.LEVEL * 100:g}"
                out |= with_interval({f"cross_{label}_map_coverage_{level}":
                                      maps.coverage(context.map_interval)})
        figure = _reliability(sets) if probe.task == "classify" else _predicted(sets, scores)
        return ReportOutput(figures={"cross_code.png": figure}, metrics=out)


def _features(probe: Probe, simulations: list[Simulation]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's features of these simulations' images, their targets and owners."""
    images, y, owners = probe.dataset(simulations)
    features = probe.model.named_steps["features"].transform(images)
    return np.asarray(features, dtype=np.float64), y, owners


def _aligned(probe: Probe, simulations: list[Simulation], reference: np.ndarray) -> _Scored:
    """The campaign scored after each of its features is moved to the mean and standard
    deviation that feature has on ``reference`` (the training maps)."""
    features, y, owners = _features(probe, simulations)
    spread = features.std(axis=0)
    scale = np.divide(reference.std(axis=0), spread, out=np.ones_like(spread),
                      where=spread > 0)
    moved = (features - features.mean(axis=0)) * scale + reference.mean(axis=0)
    y_pred, score = predict_scored(probe.task, probe.model.named_steps["estimator"], moved)
    return _Scored(probe, y, y_pred, score, owners)


def _caption(label: str, scored: _Scored) -> str:
    return f"{label} ({scored.n_simulations} sims, {len(scored.y_true)} images)"


def _reliability(sets: dict[str, _Scored]) -> Figure:
    """Observed frequency of class 1 against the predicted probability, per test set."""
    from sklearn.calibration import calibration_curve

    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for k, (label, scored) in enumerate(sets.items()):
        if not metrics.is_probability(scored.score):
            continue
        truth = (scored.y_true == 1).astype(int)
        frequency, predicted = calibration_curve(truth, scored.score, n_bins=BINS)
        ax.plot(predicted, frequency, marker="o", color=f"C{k}", label=_caption(label, scored))
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="predicted probability of class 1",
           ylabel="fraction of images of class 1")
    ax.set_title(f"reliability diagram of the images, {BINS} equal-width bins", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def _predicted(sets: dict[str, _Scored], scores: dict[str, dict[str, Interval]]) -> Figure:
    """Each simulation's mean predicted n against its true n, per test set."""
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    low = min(float(s.y_true.min()) for s in sets.values())
    high = max(float(s.y_true.max()) for s in sets.values())
    ax.plot([low, high], [low, high], linestyle="--", color="grey", label="predicted = true")
    for k, (label, scored) in enumerate(sets.items()):
        truth, predicted = scored.per_simulation()
        mse = scores[label]["mse"].text()
        ax.scatter(truth, predicted, s=16, color=f"C{k}",
                   label=f"{_caption(label, scored)}: MSE {mse}")
    ax.set(xlabel="true spectral index n", ylabel="predicted n (mean over a simulation's images)")
    ax.legend(fontsize=8)
    return fig


@hookimpl
def register_reports(register: Register) -> None:
    """Register the cross-code report."""
    register(CrossCode)
