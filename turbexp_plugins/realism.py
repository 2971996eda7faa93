"""The ``realism`` report: can simulated maps be told apart from real ones?

Two measures, on the experiment's holdout images against tiles of the "real" maps:

- a classifier (standardised logistic regression on the experiment's own features,
  cross-validated with whole maps and simulations kept within one fold) learns to tell
  simulated from real; its accuracy is the realism score, 0.5 meaning indistinguishable;
- an autoencoder (a multilayer perceptron with a narrow middle layer) is trained to
  reconstruct real tiles only; simulated images that it reconstructs worse than held-out
  real tiles look anomalous to it, measured by the ROC AUC of the reconstruction error.

Real maps are FITS files (``real:``), tiled at their own pixel scale into images of the
experiment's size, as ``turbexp predict`` does. Without real data, ``mock:`` makes stand-in
observations from another campaign's maps: a Gaussian beam and multiplicative noise.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure
from pydantic import Field, model_validator
from scipy.ndimage import gaussian_filter
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from turbexp.api import (
    ObservedMap,
    PluginParams,
    Register,
    Report,
    ReportContext,
    ReportOutput,
    SimulationBootstrap,
    StrictModel,
    hookimpl,
    metrics,
    probe_of,
    read_map,
    tile_map,
    with_interval,
)


class MockObservations(StrictModel):
    """Stand-in observations made from a campaign's maps."""

    campaign: str = Field(description="campaign file, relative to the experiment file")
    beam: float = Field(0.01, ge=0, le=0.25, description="Gaussian beam σ, fraction of the box")
    noise: float = Field(0.02, ge=0, le=1, description="relative noise on column density")
    seed: int = Field(0, ge=0)


class RealismParams(PluginParams):
    real: list[str] = Field([], description="FITS files or glob patterns, relative to the "
                                            "experiment file")
    mock: MockObservations | None = None
    max_masked: float = Field(0.1, ge=0, lt=1, description="most masked pixels in a kept tile")
    folds: int = Field(5, ge=2, le=20, description="cross-validation folds of the classifier")
    code_size: int = Field(16, ge=1, le=1024, description="autoencoder's narrowest layer")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> RealismParams:
        if bool(self.real) == (self.mock is not None):
            raise ValueError("give either real (FITS files) or mock (a campaign), not both")
        return self


class Realism(Report):
    """Realism score of the simulated maps, by a classifier and by an autoencoder."""

    name: ClassVar[str] = "realism"
    description: ClassVar[str] = "simulated vs real maps: classifier accuracy, autoencoder ROC"
    Params = RealismParams

    def campaigns(self, params: PluginParams) -> dict[str, bool]:
        mock = self.validated(params).mock
        return {} if mock is None else {mock.campaign: True}

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        probe = probe_of(context)
        size = probe.plan.spec.data.images.size
        real, real_groups = _real_tiles(p, probe, size)
        sims = probe.simulations("holdout")
        simulated = [probe.images(s) for s in sims]
        sim_groups = np.concatenate([np.full(len(b), -1 - i) for i, b in enumerate(simulated)])
        simulated = np.concatenate(simulated)
        rng = np.random.default_rng(p.seed)
        real, real_groups, simulated, sim_groups = _balance(rng, real, real_groups,
                                                            simulated, sim_groups)

        # (a) a classifier on the experiment's own features
        images = np.concatenate([simulated, real])
        label = np.r_[np.zeros(len(simulated), int), np.ones(len(real), int)]
        groups = np.r_[sim_groups, real_groups]
        features = probe.model[:-1].transform(images)
        folds = min(p.folds, len(np.unique(sim_groups)), len(np.unique(real_groups)))
        if folds < 2:
            raise ValueError("the realism classifier needs at least two simulations and two "
                             "real maps (or mock maps) to cross-validate")
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        split = StratifiedGroupKFold(folds, shuffle=True, random_state=p.seed)
        proba = cross_val_predict(classifier, features, label, groups=groups, cv=split,
                                  method="predict_proba")[:, 1]
        resamples = probe.plan.spec.evaluate.bootstrap
        # resampled by map: the tiles of one simulation (or real map) go together
        classified = SimulationBootstrap(groups, label, resamples=resamples.resamples,
                                         seed=resamples.seed).intervals(
            lambda i: {"accuracy": float(np.mean(label[i] == (proba[i] > 0.5))),
                       "roc_auc": metrics.roc_auc(label[i], proba[i])})

        # (b) an autoencoder trained on real tiles only
        train = _train_maps(rng, real_groups)
        flat_real = real.reshape(len(real), -1)
        autoencoder = MLPRegressor(hidden_layer_sizes=(128, p.code_size, 128), max_iter=300,
                                   early_stopping=True, random_state=p.seed)
        autoencoder.fit(flat_real[train], flat_real[train])
        error_real = _errors(autoencoder, flat_real[~train])
        error_sim = _errors(autoencoder, simulated.reshape(len(simulated), -1))
        ae_label = np.r_[np.zeros(len(error_real), int), np.ones(len(error_sim), int)]
        errors = np.r_[error_real, error_sim]
        encoded = SimulationBootstrap(np.r_[real_groups[~train], sim_groups], ae_label,
                                      resamples=resamples.resamples, seed=resamples.seed)
        ae = encoded.intervals(lambda i: {"roc_auc": metrics.roc_auc(ae_label[i], errors[i])})

        figure = _figure(label, proba, classified, error_real, error_sim, ae_label, ae["roc_auc"])
        figure.suptitle(f"{len(np.unique(sim_groups))} simulations, "
                        f"{len(np.unique(real_groups))} real maps; 95 % intervals from "
                        f"resamples of whole maps", fontsize="medium")
        return ReportOutput(figures={"realism.png": figure}, metrics={
            **with_interval(classified, "realism_"),
            **with_interval({"autoencoder_roc_auc": ae["roc_auc"]}, "realism_"),
            "realism_real_tiles": float(len(real)),
            "realism_simulated_images": float(len(simulated)),
        })


def _real_tiles(p: RealismParams, probe, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tiles of the real (or mock) maps, and the map each comes from."""
    maps = _mock_maps(p.mock, probe) if p.mock else _fits_maps(p.real, probe.plan.path.parent)
    tiles, groups = [], []
    for number, observed in enumerate(maps):
        images = tile_map(observed, size, p.max_masked, inputs=probe.inputs).images
        tiles.append(images)
        groups.append(np.full(len(images), number))
    return np.concatenate(tiles), np.concatenate(groups)


def _fits_maps(patterns: list[str], base: Path) -> list[ObservedMap]:
    files = sorted({f for pattern in patterns for f in glob.glob(str(base / pattern))})
    if not files:
        raise ValueError(f"no FITS file matches {', '.join(patterns)} (relative to {base})")
    return [read_map(f) for f in files]


def _mock_maps(mock: MockObservations, probe) -> list[ObservedMap]:
    rng = np.random.default_rng(mock.seed)
    maps = []
    for sim in probe.campaign_simulations(mock.campaign):
        for axis, column in enumerate(sim.maps):
            sigma = mock.beam * column.shape[-1]
            observed = gaussian_filter(column, sigma, mode="wrap") if sigma else column
            observed = observed * np.exp(mock.noise * rng.standard_normal(column.shape))
            maps.append(ObservedMap(Path(f"mock-{len(maps)}"), 0, f"axis {axis}", observed,
                                    np.zeros(column.shape, bool), "g/cm2", None))
    if not maps:
        raise ValueError(f"no simulation of {mock.campaign} is available")
    return maps


def _balance(rng, real, real_groups, simulated, sim_groups):
    """The same number of real and simulated images, drawn at random from the larger set."""
    n = min(len(real), len(simulated))
    keep_real = np.sort(rng.choice(len(real), n, replace=False))
    keep_sim = np.sort(rng.choice(len(simulated), n, replace=False))
    return real[keep_real], real_groups[keep_real], simulated[keep_sim], sim_groups[keep_sim]


def _train_maps(rng, groups: np.ndarray) -> np.ndarray:
    """Tiles of about 70 % of the real maps train the autoencoder; the rest are held out.
    With one map, its tiles are split instead."""
    names = np.unique(groups)
    if len(names) >= 2:
        chosen = rng.permutation(names)[:max(1, round(0.7 * len(names)))]
        return np.isin(groups, chosen)
    train = np.zeros(len(groups), bool)
    train[rng.permutation(len(groups))[:max(1, round(0.7 * len(groups)))]] = True
    return train


def _errors(model: MLPRegressor, x: np.ndarray) -> np.ndarray:
    return np.mean((model.predict(x) - x) ** 2, axis=1)


def _figure(label, proba, classified, error_real, error_sim, ae_label, ae_auc) -> Figure:
    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    bins = np.histogram_bin_edges(np.r_[error_real, error_sim], bins=30)
    left.hist(error_real, bins=bins, alpha=0.6, density=True, label="real (held out)")
    left.hist(error_sim, bins=bins, alpha=0.6, density=True, label="simulated")
    left.set(xlabel="autoencoder reconstruction error (MSE)", ylabel="density",
             title="Autoencoder trained on real maps")
    left.legend()
    for name, y, score in (
            (f"classifier (accuracy {classified['accuracy'].text()}, "
             f"AUC {classified['roc_auc'].text()})", label, proba),
            (f"autoencoder error (AUC {ae_auc.text()})", ae_label, np.r_[error_real, error_sim])):
        fpr, tpr, _ = skm.roc_curve(y, score)
        right.plot(fpr, tpr, label=name)
    right.plot([0, 1], [0, 1], "--", color="grey", label="indistinguishable")
    right.set(xlabel="false positive rate", ylabel="true positive rate",
              title="Telling simulated from real")
    right.legend(fontsize=8)
    return fig


@hookimpl
def register_reports(register: Register) -> None:
    """Register the realism report."""
    register(Realism)
