"""What an astronomer checks first: example column-density maps of each class, in physical
units (log10 N in g cm⁻², axes in pc), logged by every classification run."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from turbexp.experiment import ExperimentPlan
from turbexp.store import SimulationStore

ARTIFACT = "data/example_maps.png"
PER_CLASS = 3
"""Maps shown per class: the first simulations of the class in the campaign, along x."""


def example_maps(plan: ExperimentPlan, store: SimulationStore) -> Figure | None:
    """A row of maps per class on one colour scale, or None when no class has a map in the
    cache (or the task is a regression)."""
    classes = list(plan.spec.task.classes or {})
    if plan.spec.task.kind != "classify" or not classes:
        return None
    chosen: dict[int, list[tuple[float, np.ndarray]]] = {label: [] for label in
                                                          range(len(classes))}
    for _, sim, label, _ in plan.members():
        shown = chosen[int(label)]
        if len(shown) < PER_CLASS and store.has(sim.key):
            column = store.get(sim.key).column_density[0]  # projected along x, g/cm²
            with np.errstate(divide="ignore"):
                shown.append((sim.request.index, np.log10(column)))
    if not any(chosen.values()):
        return None
    finite = np.concatenate([m[np.isfinite(m)].ravel() for maps in chosen.values()
                             for _, m in maps])
    low, high = np.percentile(finite, [0.5, 99.5])
    box = plan.campaign.spec.physics.box_pc
    fig = Figure(figsize=(3.2 * PER_CLASS + 1.2, 3.0 * len(classes)), layout="constrained")
    axes = fig.subplots(len(classes), PER_CLASS, squeeze=False)
    image = None
    for label, row in zip(chosen, axes, strict=True):
        for ax, item in zip(row, [*chosen[label], *[None] * PER_CLASS], strict=False):
            if item is None:
                ax.set_axis_off()
                continue
            index, log_column = item
            image = ax.imshow(log_column, origin="lower", extent=(0, box, 0, box),
                              vmin=low, vmax=high, cmap="magma")
            ax.set_title(f"{classes[label]} (n = {index:.4g})", fontsize=9)
            ax.set(xlabel="pc", ylabel="pc")
    fig.colorbar(image, ax=axes, label=r"$\log_{10} N$ [g cm$^{-2}$]", shrink=0.8)
    fig.suptitle(f"campaign {plan.campaign.spec.name}: column density along x, "
                 f"{plan.campaign.spec.grid}³ boxes of {box:g} pc", fontsize=10)
    return fig
