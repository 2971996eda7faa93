"""What ``turbexp run`` would cost, before it runs: ``turbexp run --dry-run``.

For each experiment (every repeat, and the campaigns its reports score on): the
simulations and how many the cache lacks, the solver's cell updates, the images
of each split, the trials and, for estimators that train in epochs, the image
epochs. Times come from measured rates: the solver's from simulations already
in the cache (each records its wall time and cell updates) or else from the
benchmarks in docs/benchmarks.md, the CNN's from benchmarks/train.py. Nothing
is simulated, trained or written.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
from rich.table import Table

from turbexp.campaign import CampaignPlan, PlannedSimulation
from turbexp.experiment import ExperimentPlan
from turbexp.images import images_per_simulation, split_simulations
from turbexp.paths import cache_dir
from turbexp.plugin_types import Choice, Range

SOLVER_RATES = {
    "cpu": (14.0e6, "builtin solver on 2 CPU cores at 128³ (docs/benchmarks.md)"),
    "gpu": (225.0e6, "builtin solver on an NVIDIA H200 at 128³ (docs/benchmarks.md)"),
}
"""Cell updates per second when the cache holds no simulation to measure them from."""

STEPS_PER_CELL = {0.0: 0.0, 0.5: 13 / 64, 5.0: 119 / 64}
"""Solver steps per grid cell of the side, by evolution time (Myr), measured at the
presets' Mach 1.41 and CFL 0.4 on 64³ boxes (13 and 119 steps); the step count grows
with the grid as the Courant condition has it."""

CNN_PIXELS_PER_S = {"cpu": (1.3e6, "reference CNN on 2 CPU cores (docs/benchmarks.md: 274 "
                                   "images/s at 64², 100 at 128²)")}
"""Training throughput of the reference CNN, in image pixels per second; none measured on a
GPU yet."""

SCAN_LIMIT = 500
"""Cache entries read for measured rates at most."""


@dataclass
class Rates:
    """Cell updates per second and steps per grid cell, measured where possible."""

    solver: dict[str, tuple[float, str]]
    steps: dict[tuple[float, float], float] = field(default_factory=dict)  # (time, mach)

    def steps_for(self, request: Any) -> float:
        physics = request.physics
        measured = self.steps.get((round(physics.time_myr, 6), round(physics.mach, 6)))
        if measured is not None:
            return measured * request.grid
        times = sorted(STEPS_PER_CELL)
        per_cell = float(np.interp(physics.time_myr, times, [STEPS_PER_CELL[t] for t in times],
                                   right=STEPS_PER_CELL[times[-1]] * physics.time_myr
                                   / times[-1]))
        return per_cell * physics.mach / 1.41 * request.grid


def measured_rates(root: Path | None = None) -> Rates:
    """Rates from the cache's builtin simulations (their recorded wall time and steps), with
    the benchmarks' rates where the cache has none."""
    solver: dict[str, list[float]] = {"cpu": [], "gpu": []}
    steps: dict[tuple[float, float], list[float]] = {}
    for params, metadata in _headers(root or cache_dir()):
        if metadata.get("code") != "turbexp-builtin" or "steps" not in metadata:
            continue
        grid = int(params.get("grid", 0))
        physics = params.get("physics", {})
        if grid <= 0 or not physics:
            continue
        key = (round(float(physics["time_myr"]), 6), round(float(physics["mach"]), 6))
        steps.setdefault(key, []).append(int(metadata["steps"]) / grid)
        wall = metadata.get("wall_s")
        device = metadata.get("device", "cpu")
        if wall and device in solver:
            solver[device].append(int(metadata["steps"]) * grid**3 / float(wall))
    rates = {
        device: (median(values), f"builtin solver, median of {len(values)} simulations in "
                                 "the cache") if values else SOLVER_RATES[device]
        for device, values in solver.items()}
    return Rates(rates, {k: median(v) for k, v in steps.items()})


def _headers(root: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(params, metadata) of up to :data:`SCAN_LIMIT` cache entries; unreadable ones are
    skipped (the runner itself checks and remakes them)."""
    for count, path in enumerate(sorted(root.glob("*/*.npz"))):
        if count >= SCAN_LIMIT:
            return
        try:
            with np.load(path, allow_pickle=False) as npz:
                header = json.loads(str(npz["header"]))
            yield header.get("params", {}), header.get("metadata", {})
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue


@dataclass
class Cost:
    """The estimated cost of one experiment, every repeat included."""

    name: str
    repeats: int
    simulations: dict[str, PlannedSimulation]  # key -> simulation, every campaign it reads
    missing: set[str]
    cell_updates: float
    images: dict[str, int]  # split -> images, summed over repeats
    trials: int
    image_epochs: float  # training images × epochs (estimators trained in epochs)
    pixels: int  # pixels per image
    seconds: dict[str, float]  # device -> estimated simulation time of the missing ones


def estimate(plans: list[ExperimentPlan], rates: Rates | None = None) -> list[Cost]:
    """The cost of each experiment; a simulation shared by several experiments is counted
    (and timed) once, at the first experiment that needs it."""
    rates = rates or measured_rates()
    from turbexp.store import SimulationStore

    store = SimulationStore(cache_dir())
    counted: set[str] = set()
    costs = []
    for plan in plans:
        repeats = [plan] if plan.spec.model is not None else \
            [plan.repeated(r) for r in range(plan.spec.repeats)]
        simulations: dict[str, PlannedSimulation] = {}
        images = {"train": 0, "test": 0, "holdout": 0}
        trials, image_epochs = 0, 0.0
        for repeat in repeats:
            for campaign in [repeat.campaign, *_report_campaigns(repeat)]:
                simulations.update((s.key, s) for s in campaign.simulations)
            split = _split_sizes(repeat)
            for name, count in split.items():
                images[name] += count
            if repeat.spec.model is None:
                wanted = repeat.spec.tune.trials if repeat.tuned else 1
                trials += wanted
                epochs = _epochs(repeat)
                image_epochs += epochs * (wanted * split["train"] + split["train"] +
                                          split["test"])
        missing = {k for k in simulations if k not in counted and not store.has(k)}
        counted |= set(simulations)
        updates = sum(rates.steps_for(simulations[k].request) * simulations[k].request.grid**3
                      for k in missing)
        seconds = {device: updates / rate for device, (rate, _) in rates.solver.items()}
        costs.append(Cost(plan.spec.name, len(repeats), simulations, missing, updates, images,
                          trials, image_epochs, plan.spec.data.images.size**2, seconds))
    return costs


def _split_sizes(plan: ExperimentPlan) -> dict[str, int]:
    parts = split_simulations(plan.strata(), plan.spec.data.split)
    per = images_per_simulation(plan.spec.data.images) * plan.spec.data.observation.views
    return {name: int(np.sum(parts == k)) * per
            for k, name in enumerate(("train", "test", "holdout"))}


def _epochs(plan: ExperimentPlan) -> int:
    """The most epochs the estimator trains for (0 if it does not train in epochs)."""
    assert plan.estimator is not None
    space = plan.estimator.space.get("epochs")
    if isinstance(space, Range):
        return int(space.high)
    if isinstance(space, Choice):
        return int(max(space.choices))
    value = plan.estimator.sample(None).model_dump().get("epochs")
    return int(value) if isinstance(value, int) else 0


def _report_campaigns(plan: ExperimentPlan) -> list[CampaignPlan]:
    """The campaigns the reports make (:meth:`Report.campaigns`), planned at the
    experiment's scale; those only read from the cache cost nothing here."""
    return [plan.other_campaign(path) for report in plan.reports
            for path, made in report.plugin.create().campaigns(report.params).items() if made]


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def render(costs: list[Cost], console: Any, rates: Rates | None = None) -> None:
    """The plan as a table with a total row, and where the rates come from."""
    rates = rates or measured_rates()
    cnn_rate, cnn_source = CNN_PIXELS_PER_S["cpu"]
    table = Table(title="turbexp run --dry-run: nothing was run or written (times estimated "
                        "from the rates below; a simulation is counted where first needed)")
    for column in ("experiment", "repeats", "sims (to make)", "cell updates",
                   "images train/test/holdout", "trials", "image epochs",
                   "sims here", "sims on GPU", "training here"):
        table.add_column(column)
    total_here = total_gpu = total_train = 0.0
    for c in costs:
        train = c.image_epochs * c.pixels / cnn_rate
        total_here += c.seconds["cpu"]
        total_gpu += c.seconds["gpu"]
        total_train += train
        table.add_row(c.name, str(c.repeats), f"{len(c.simulations)} ({len(c.missing)})",
                      f"{c.cell_updates:.3g}",
                      "/".join(str(c.images[k]) for k in ("train", "test", "holdout")),
                      str(c.trials), f"{c.image_epochs:.3g}" if c.image_epochs else "—",
                      _duration(c.seconds["cpu"]), _duration(c.seconds["gpu"]),
                      _duration(train) if c.image_epochs else "—")
    distinct = {k for c in costs for k in c.simulations}
    missing = {k for c in costs for k in c.missing}
    table.add_row("total", "", f"{len(distinct)} ({len(missing)})",
                  f"{sum(c.cell_updates for c in costs):.3g}", "",
                  str(sum(c.trials for c in costs)),
                  f"{sum(c.image_epochs for c in costs):.3g}", _duration(total_here),
                  _duration(total_gpu), _duration(total_train), end_section=True)
    console.print(table)
    for device, (rate, source) in rates.solver.items():
        console.print(f"{device}: {rate / 1e6:.3g} M cell updates/s, {source}", soft_wrap=True)
    console.print(f"training: {cnn_rate / 1e6:.3g} M pixels/s, {cnn_source}; no GPU training "
                  "rate has been measured. Estimators that do not train in epochs (scikit-learn"
                  ") are not timed.", soft_wrap=True)
