"""An experiment's image set: its campaign's maps through the observation model, cut into
images and split by simulation; and whether the campaigns its reports need can be had here."""

from __future__ import annotations

from typing import Any

import numpy as np

from turbexp.campaign import PlannedSimulation
from turbexp.errors import UserError
from turbexp.experiment import ExperimentPlan
from turbexp.images import ImageSet, images_from_maps, split_simulations
from turbexp.observation import views
from turbexp.plugin_types import ImageInputs
from turbexp.progress import console
from turbexp.store import SimulationStore


def build_image_set(plan: ExperimentPlan, store: SimulationStore,
                    inputs: ImageInputs | None = None) -> ImageSet:
    """Images, targets and the by-simulation split for an experiment, the images holding
    ``inputs`` (default: what the experiment's feature plugin asks for).

    The split is drawn over every simulation the task uses, so a simulation
    that failed leaves a gap instead of moving the others between splits.
    """
    spec = plan.spec
    inputs = plan.inputs if inputs is None else inputs
    members = plan.members()
    try:
        parts = split_simulations([stratum for *_, stratum in members], spec.data.split)
    except ValueError as exc:
        raise plan.doc.error(str(exc), ("data", "split")) from None
    images, sims, index, target, split, strata = [], [], [], [], [], []
    stored_metadata: dict[int, dict[str, Any]] = {}
    checksums: dict[int, str] = {}
    missing = 0
    pixel_pc = plan.campaign.spec.physics.box_pc / plan.campaign.spec.grid
    for (position, sim, y, stratum), part in zip(members, parts, strict=True):
        if not store.has(sim.key):
            missing += 1
            continue
        stored = store.get(sim.key)
        stored_metadata[position] = stored.metadata
        checksums[position] = stored.checksum
        block = np.concatenate([images_from_maps(view, spec.data.images, inputs) for view in
                                views(stored.column_density, pixel_pc, spec.data.observation)])
        images.append(block)
        n = len(block)
        sims.append(np.full(n, position))
        index.append(np.full(n, sim.request.index))
        target.append(np.full(n, y))
        split.append(np.full(n, part, dtype=np.int8))
        strata.append(np.full(n, stratum))
    if missing:
        console.print(f"[yellow]warning:[/] {missing} simulation(s) of campaign "
                      f"{plan.campaign.spec.name!r} failed and are left out; "
                      "the next `turbexp run` or `turbexp sims run` retries them")
    if not images:
        raise UserError(f"no simulation of campaign {plan.campaign.spec.name!r} is available",
                        file=str(plan.path), field="data.campaign")
    data = ImageSet(np.concatenate(images), np.concatenate(sims), np.concatenate(index),
                    np.concatenate(target), np.concatenate(split), stored_metadata,
                    np.concatenate(strata), checksums, inputs)
    for name in ("train", "test", "holdout"):
        if not data.part(name).any():
            raise UserError(f"no simulation of the {name} split is available; see the failed "
                            "simulations above", file=str(plan.path), field="data.split")
    return data


def unavailable(plan: ExperimentPlan, store: SimulationStore) -> str | None:
    """Why ``plan`` cannot run here, or None: a campaign a report makes (RAMSES runs, say)
    has simulations missing from the cache that its simulator cannot make on this machine."""
    for report in plan.reports:
        for path, made in report.plugin.create().campaigns(report.params).items():
            if not made:
                continue
            campaign = plan.other_campaign(path)
            missing = sum(not store.verify(s.key) for s in campaign.simulations)
            if not missing:
                continue
            try:
                campaign.simulator.create().check(campaign.simulator_params, campaign.spec.grid)
            except ValueError as exc:
                return (f"report {report.plugin.name!r} needs {campaign.path.name} "
                        f"({missing} of {len(campaign.simulations)} simulations not in the "
                        f"cache): {exc}")
    return None


def splits(plan: ExperimentPlan, data: ImageSet) -> dict[str, list[PlannedSimulation]]:
    """The simulations of each split, as the image set assigns them."""
    sims = plan.campaign.simulations
    return {name: [sims[int(p)] for p in np.unique(data.simulation[data.part(name)])]
            for name in ("train", "test", "holdout")}
