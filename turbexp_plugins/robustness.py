"""Reports that score the fitted model beyond its holdout images.

- ``index_response``: the Kolmogorov-vs-Burgers classifier on a campaign whose index
  spreads continuously; P(class 1) against n.
- ``zoom_invariance``: the holdout maps zoomed in and out (crop and resample).
- ``resolution_robustness``: campaigns at other grids (or from other codes, e.g. RAMSES).
- ``smoothing``: the model refitted on maps smoothed by a Gaussian at several scales,
  scored at every resolution, to find a scale that makes resolutions agree.

They use ``ReportContext.probe`` (:class:`turbexp.evaluation.Probe`); metric names
are ``<what>_<value>_<metric>`` with the experiment's metric names.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from matplotlib.figure import Figure
from pydantic import Field, field_validator

from turbexp.api import (
    Interval,
    PluginParams,
    Probe,
    Register,
    Report,
    ReportContext,
    ReportOutput,
    Simulation,
    SimulationBootstrap,
    hookimpl,
    probe_of,
    with_interval,
)


def _label(value: float) -> str:
    """A metric-name-safe rendering of a number: 0.5 -> 0.5, 2.0 -> 2."""
    return f"{value:g}"


def _grid(simulations: list[Simulation]) -> int:
    return int(simulations[0].maps.shape[-1])


def _metric_axis(ax, probe: Probe) -> None:
    ax.set_ylabel(f"holdout {probe.metric} (95 % interval)")
    if probe.metric in ("roc_auc", "accuracy"):
        ax.axhline(0.5, color="grey", linestyle=":", label="chance")


def _errors(intervals: list[Interval]) -> np.ndarray:
    """Matplotlib's (2, n) error-bar lengths below and above each value (0 where unknown)."""
    values = np.array([[i.value - i.low, i.high - i.value] for i in intervals], dtype=float).T
    return np.nan_to_num(np.clip(values, 0, None))


def _sizes(simulations: list[Simulation], probe: Probe) -> str:
    """``"12 simulations, 144 images"``: what a figure's numbers rest on."""
    kept = [s for s in simulations if probe.target(s.index) is not None]
    return f"{len(kept)} simulations, {len(kept) * probe.images_per_simulation} images"


# --- index response -------------------------------------------------------------------


class IndexResponse(Report):
    """The classifier applied to simulations with n spread continuously between classes."""

    name: ClassVar[str] = "index_response"
    description: ClassVar[str] = "P(class 1) against the index n on a campaign of spread n"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify"})

    class Params(PluginParams):
        campaign: str = Field(description="campaign with a spread of n, relative to the "
                                          "experiment file")

    def campaigns(self, params: PluginParams) -> dict[str, bool]:
        return {self.validated(params).campaign: True}

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        probe = probe_of(context)
        simulations = probe.campaign_simulations(p.campaign)
        if not simulations:
            raise ValueError(f"no simulation of {p.campaign} is available")
        indices, fractions = [], []
        for sim in simulations:
            y_pred, _ = probe.predict(probe.images(sim))
            indices.append(sim.index)
            fractions.append(float(np.mean(np.asarray(y_pred) == 1)))
        order = np.argsort(indices)
        n, f = np.asarray(indices)[order], np.asarray(fractions)[order]
        name = context.class_names[1] if len(context.class_names) > 1 else "class 1"
        classes = probe.plan.spec.task.classes or {}
        boot = probe.plan.spec.evaluate.bootstrap
        # one entry per simulation: the resamples draw whole simulations
        resampled = SimulationBootstrap(np.arange(len(n)), resamples=boot.resamples,
                                        seed=boot.seed)
        fitted = resampled.intervals(lambda i: _response_values(n[i], f[i]))

        fig = Figure(figsize=(6, 4.2), layout="constrained")
        ax = fig.add_subplot()
        ax.scatter(n, f, s=18, color="C0", label="one simulation")
        midpoint, width = fitted["midpoint"].value, fitted["width"].value
        if np.isfinite(midpoint):
            grid = np.linspace(n.min(), n.max(), 200)
            low, high = resampled.band(lambda i: _logistic_curve(grid, n[i], f[i]))
            ax.fill_between(grid, low, high, color="C0", alpha=0.2, label="95 % band")
            ax.plot(grid, _logistic(grid, midpoint, width), color="C0",
                    label=f"logistic fit, P = 0.5 at n = {fitted['midpoint'].text()}")
        for i, (label, value) in enumerate(classes.items()):
            ax.axvline(value, color=f"C{i + 1}", linestyle="--", label=f"{label} (n = {value:.4g})")
        ax.set_xlabel("spectral index n")
        ax.set_ylabel(f"P({name}): fraction of images classified {name}")
        ax.set_title(f"{len(n)} simulations, {len(n) * probe.images_per_simulation} images; "
                     f"bands from {boot.resamples} resamples of simulations", fontsize=9)
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
        metrics = with_interval({"spearman": fitted["spearman"]}, "index_response_")
        if np.isfinite(midpoint):
            metrics |= with_interval({"midpoint": fitted["midpoint"],
                                      "width": fitted["width"]}, "index_response_")
        return ReportOutput(figures={"index_response.png": fig}, metrics=metrics)


def _logistic(x: np.ndarray, midpoint: float, width: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(x - midpoint) / width))


def _response_values(n: np.ndarray, f: np.ndarray) -> dict[str, float]:
    midpoint, width = _logistic_fit(n, f)
    return {"midpoint": midpoint, "width": width, "spearman": _spearman(n, f)}


def _logistic_curve(grid: np.ndarray, n: np.ndarray, f: np.ndarray) -> np.ndarray:
    midpoint, width = _logistic_fit(n, f)
    return _logistic(grid, midpoint, width) if np.isfinite(midpoint) else \
        np.full(len(grid), np.nan)


def _logistic_fit(n: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """Midpoint and width of a logistic curve through (n, f); NaN when it does not fit."""
    from scipy.optimize import OptimizeWarning, curve_fit

    if len(n) < 4 or np.ptp(f) == 0:
        return float("nan"), float("nan")
    try:
        with np.errstate(over="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (mid, width), _ = curve_fit(_logistic, n, f, p0=(float(np.median(n)), 0.1),
                                        maxfev=5000)
    except (RuntimeError, ValueError):
        return float("nan"), float("nan")
    if not (n.min() - 1 <= mid <= n.max() + 1) or not np.isfinite(width):
        return float("nan"), float("nan")
    return float(mid), float(abs(width))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(y) == 0 or np.ptp(x) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


# --- zoom -----------------------------------------------------------------------------


class ZoomInvariance(Report):
    """The holdout metric on maps seen closer (factor > 1) or from farther (< 1)."""

    name: ClassVar[str] = "zoom_invariance"
    description: ClassVar[str] = "holdout metric against zoom factor (crop and resample)"

    class Params(PluginParams):
        factors: list[float] = Field([0.5, 0.71, 1.0, 1.41, 2.0], min_length=1)

        @field_validator("factors")
        @classmethod
        def _in_range(cls, value: list[float]) -> list[float]:
            if any(not 0.1 <= f <= 10 for f in value):
                raise ValueError("zoom factors must lie between 0.1 and 10")
            return sorted(set(value))

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        probe = probe_of(context)
        holdout = probe.simulations("holdout")
        values = [probe.score(holdout, zoom=f)[probe.metric] for f in p.factors]
        fig = Figure(figsize=(5, 4), layout="constrained")
        ax = fig.add_subplot()
        ax.errorbar(p.factors, [v.value for v in values], yerr=_errors(values), marker="o",
                    capsize=3)
        ax.set_xscale("log")
        ax.set_xticks(p.factors, [_label(f) for f in p.factors])
        ax.set_xlabel("zoom factor (> 1: closer)")
        ax.set_title(f"holdout: {_sizes(holdout, probe)}", fontsize=9)
        _metric_axis(ax, probe)
        ax.legend(fontsize=8)
        metrics = {}
        for f, v in zip(p.factors, values, strict=True):
            metrics |= with_interval({f"zoom_{_label(f)}_{probe.metric}": v})
        return ReportOutput(figures={"zoom_invariance.png": fig}, metrics=metrics)


# --- resolution -----------------------------------------------------------------------


class ResolutionParams(PluginParams):
    campaigns: list[str] = Field(
        [], description="campaigns at other grids, relative to the experiment file; "
                        "missing simulations are made")
    cached: list[str] = Field(
        [], description="campaigns used only as far as their simulations are in the cache "
                        "(e.g. RAMSES runs made elsewhere)")


def _test_sets(probe: Probe, p: ResolutionParams) -> dict[str, list[Simulation]]:
    """The holdout and every other campaign, named by code and grid (``grid_64``,
    ``ramses_32``); empty cached campaigns are left out."""
    sets = {f"grid_{probe.plan.campaign.spec.grid}": probe.simulations("holdout")}
    for path in [*p.campaigns, *p.cached]:
        sims = [s for s in probe.campaign_simulations(path)
                if probe.target(s.index) is not None]
        if not sims:
            continue
        code = sims[0].metadata.get("code", "")
        prefix = "grid" if code in ("", "turbexp-builtin") else code.removeprefix("turbexp-")
        sets.setdefault(f"{prefix}_{_grid(sims)}", sims)
    return sets


class ResolutionRobustness(Report):
    """The model trained at one grid, scored at others (and on other codes' maps)."""

    name: ClassVar[str] = "resolution_robustness"
    description: ClassVar[str] = "holdout metric per test resolution (and code)"
    Params = ResolutionParams

    def campaigns(self, params: PluginParams) -> dict[str, bool]:
        p = self.validated(params)
        return {**{path: False for path in p.cached}, **{path: True for path in p.campaigns}}

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        probe = probe_of(context)
        sets = _test_sets(probe, p)
        scores = {name: probe.score(sims)[probe.metric] for name, sims in sets.items()}
        fig = Figure(figsize=(5, 4), layout="constrained")
        ax = fig.add_subplot()
        names = list(scores)
        ax.bar(range(len(names)), [scores[n].value for n in names], color="C0",
               yerr=_errors([scores[n] for n in names]), capsize=4)
        ax.set_xticks(range(len(names)),
                      [f"{n}\n({len(sets[n])} sims)" for n in names])
        ax.set_xlabel(f"test maps (trained on grid {probe.plan.campaign.spec.grid})")
        _metric_axis(ax, probe)
        metrics = with_interval({f"resolution_{name}_{probe.metric}": v
                                 for name, v in scores.items()})
        return ReportOutput(figures={"resolution_robustness.png": fig}, metrics=metrics)


# --- smoothing ------------------------------------------------------------------------


class Smoothing(Report):
    """Refit on maps smoothed at each scale, score at every resolution: the scale at which
    the resolutions agree best is reported."""

    name: ClassVar[str] = "smoothing"
    description: ClassVar[str] = "metric per smoothing scale and resolution"

    class Params(ResolutionParams):
        scales: list[float] = Field([0.0, 0.01, 0.02, 0.04], min_length=1,
                                    description="Gaussian sigma as a fraction of the box side")

        @field_validator("scales")
        @classmethod
        def _in_range(cls, value: list[float]) -> list[float]:
            if any(not 0 <= s <= 0.25 for s in value):
                raise ValueError("smoothing scales must lie between 0 and 0.25 (box sides)")
            return sorted(set(value))

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        p = self.validated(params)
        probe = probe_of(context)
        sets = _test_sets(probe, p)
        training = probe.simulations("train", "test")
        table: dict[str, list[Interval]] = {name: [] for name in sets}
        metrics: dict[str, float] = {}
        spreads = []
        for scale in p.scales:
            model = probe.refit(training, smoothing=scale)
            values = []
            for name, sims in sets.items():
                value = probe.score(sims, model, smoothing=scale)[probe.metric]
                table[name].append(value)
                values.append(value.value)
                metrics |= with_interval({f"smoothing_{_label(scale)}_{name}_{probe.metric}":
                                          value})
            spreads.append(float(np.ptp(values)))
            metrics[f"smoothing_{_label(scale)}_spread_{probe.metric}"] = spreads[-1]
        if len(sets) > 1:
            metrics["smoothing_best_scale"] = p.scales[int(np.argmin(spreads))]
        fig = Figure(figsize=(5, 4), layout="constrained")
        ax = fig.add_subplot()
        for name, values in table.items():
            ax.errorbar(p.scales, [v.value for v in values], yerr=_errors(values), marker="o",
                        capsize=3, label=f"{name} ({len(sets[name])} sims)")
        ax.set_xlabel("Gaussian smoothing σ (fraction of the box side)")
        _metric_axis(ax, probe)
        ax.legend(fontsize=8)
        return ReportOutput(figures={"smoothing.png": fig}, metrics=metrics)


@hookimpl
def register_reports(register: Register) -> None:
    """Register the robustness reports."""
    for report in (IndexResponse, ZoomInvariance, ResolutionRobustness, Smoothing):
        register(report)
