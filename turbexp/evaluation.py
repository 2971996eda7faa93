"""Scoring a fitted model beyond the holdout images: other campaigns, zoomed or smoothed maps.

Report plugins reach it as ``ReportContext.probe``. Images are always made the way
the experiment makes its own (the same projections, cuts, flips, size and
standardisation or not, :attr:`Probe.inputs`), after an optional change of the maps: a
zoom (crop and resample) or a Gaussian smoothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import gaussian_filter

from turbexp.campaign import PlannedSimulation
from turbexp.holdout import Holdout, HoldoutPart
from turbexp.images import images_from_maps, images_per_simulation, resize_to
from turbexp.observation import simulated
from turbexp.store import SimulationStore
from turbexp.uncertainty import Interval

if TYPE_CHECKING:
    from turbexp.experiment import ExperimentPlan
    from turbexp.plugin_types import ImageInputs, ReportContext


@dataclass(frozen=True)
class Simulation:
    """One simulation's column density maps (3, N, N), index, stored metadata and the
    side of one map pixel (pc)."""

    maps: np.ndarray
    index: float
    metadata: dict[str, Any]
    pixel_pc: float


def zoom_maps(log_maps: np.ndarray, factor: float) -> np.ndarray:
    """Maps seen ``factor`` times closer, on the same number of pixels.

    ``factor > 1`` crops the central ``1/factor`` of each map; ``factor < 1`` widens
    the view beyond the box by repeating it periodically (the boxes are periodic).
    Either way the view is resampled to the original pixel count.
    """
    if factor <= 0:
        raise ValueError(f"zoom factor must be positive, got {factor}")
    n = log_maps.shape[-1]
    view = max(2, round(n / factor))
    pad = max(0, -(-(view - n) // 2))
    out = []
    for image in log_maps:
        wide = np.pad(image, pad, mode="wrap") if pad else image
        start = (wide.shape[0] - view) // 2
        out.append(resize_to(wide[start:start + view, start:start + view], n))
    return np.stack(out)


def smooth_maps(column_density: np.ndarray, scale: float) -> np.ndarray:
    """Column density maps smoothed by a periodic Gaussian of standard deviation ``scale``,
    a fraction of the box side (so the same scale means the same at every resolution)."""
    if scale < 0:
        raise ValueError(f"smoothing scale must be >= 0, got {scale}")
    if scale == 0:
        return column_density
    sigma = scale * column_density.shape[-1]
    return np.stack([gaussian_filter(m, sigma, mode="wrap") for m in column_density])


def probe_of(context: ReportContext) -> Probe:
    """The probe of a report's context; ``ValueError`` when the report runs without one."""
    if context.probe is None:
        raise ValueError("this report needs the fitted model (ReportContext.probe)")
    return context.probe


class Probe:
    """The fitted model of an experiment, with access to maps to score it (or a refitted
    copy of it) on. ``splits`` maps ``train``, ``test`` and ``holdout`` to simulations;
    ``inputs`` is what the model's images hold (standardised, or log10 N in g cm⁻²: map
    tiles given to the model, a real map's say, are made the same way)."""

    def __init__(self, plan: ExperimentPlan, store: SimulationStore, model: Any,
                 splits: dict[str, list[PlannedSimulation]],
                 inputs: ImageInputs = "standardised") -> None:
        self.plan, self.store, self.model, self.splits = plan, store, model, splits
        self.inputs = inputs

    @property
    def task(self) -> str:
        return self.plan.spec.task.kind

    @property
    def metric(self) -> str:
        return self.plan.metric

    @property
    def images_per_simulation(self) -> int:
        return images_per_simulation(self.plan.spec.data.images)

    def simulations(self, *parts: str) -> list[Simulation]:
        """The experiment's own simulations of the named splits."""
        return [self._load(s) for part in parts for s in self.splits[part]
                if self.store.has(s.key)]

    def campaign_simulations(self, path: str | Path) -> list[Simulation]:
        """The simulations of another campaign (``path`` relative to the experiment file)
        that are in the cache. The runner makes, before any report renders, those of the
        campaigns a report declares it makes (:meth:`Report.campaigns`); rendering only
        reads."""
        return [self._load(s) for s in self.plan.other_campaign(path).simulations
                if self.store.has(s.key)]

    def _load(self, sim: PlannedSimulation) -> Simulation:
        stored = self.store.get(sim.key)
        return Simulation(stored.column_density, sim.request.index, dict(stored.metadata),
                          sim.request.physics.box_pc / sim.request.grid)

    def images(self, simulation: Simulation, *, zoom: float = 1.0,
               smoothing: float = 0.0) -> np.ndarray:
        """The experiment's images of one simulation seen through its observation model,
        after an optional further smoothing (on the column density, as a telescope beam
        acts) and zoom (on the log maps)."""
        observed = simulated(simulation.maps, simulation.pixel_pc,
                             self.plan.spec.data.observation)
        log_maps = np.log10(smooth_maps(observed, smoothing))
        if zoom != 1.0:
            log_maps = zoom_maps(log_maps, zoom)
        return images_from_maps(log_maps, self.plan.spec.data.images, self.inputs)

    def target(self, index: float) -> float | int | None:
        """The task's target for a simulation of index ``index`` (None: not a class)."""
        return self.plan.class_of(index) if self.task == "classify" else index

    def dataset(self, simulations: list[Simulation], **change: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Images, targets and the simulation number of each image; simulations whose
        index is none of the classes are left out."""
        images, targets, owners = [], [], []
        for number, sim in enumerate(simulations):
            target = self.target(sim.index)
            if target is None:
                continue
            block = self.images(sim, **change)
            images.append(block)
            targets.append(np.full(len(block), target))
            owners.append(np.full(len(block), number))
        if not images:
            raise ValueError("none of these simulations has an index of the task's classes")
        return np.concatenate(images), np.concatenate(targets), np.concatenate(owners)

    def predict(self, images: np.ndarray, model: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Predictions and scores (class-1 score, or the predicted index) of ``model``
        (default: the experiment's), its features made once
        (:func:`turbexp.metrics.predict_scored`)."""
        from turbexp.metrics import predict_scored

        return predict_scored(self.task, self.model if model is None else model, images)

    def score(self, simulations: list[Simulation], model: Any = None,
              **change: float) -> dict[str, Interval]:
        """The task's metrics on the images of ``simulations`` (after ``zoom``/``smoothing``),
        each with its 95 % interval from resampling those simulations (by class for a
        classification), with the experiment's bootstrap settings."""
        images, y, owners = self.dataset(simulations, **change)
        y_pred, score = self.predict(images, model)
        part = HoldoutPart("", 0, owners, y if self.task == "classify" else np.zeros(len(y)),
                           np.zeros(len(y)), y, np.asarray(y_pred), score)
        boot = self.plan.spec.evaluate.bootstrap
        return Holdout(self.task, [], (part,)).intervals(boot.resamples, boot.seed)

    def refit(self, simulations: list[Simulation], **change: float) -> Any:
        """A fresh copy of the experiment's model (same parameters) fitted on the images of
        ``simulations`` after ``change``."""
        from sklearn.base import clone

        images, y, _ = self.dataset(simulations, **change)
        return clone(self.model).fit(images, y)
