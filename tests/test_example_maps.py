"""Every classification run logs example maps of each class in physical units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.image import AxesImage
from mlflow.tracking import MlflowClient

from turbexp.example_maps import ARTIFACT, PER_CLASS, example_maps
from turbexp.experiment import plan_experiment
from turbexp.paths import cache_dir
from turbexp.runner import run_experiment
from turbexp.store import SimulationStore


def test_example_maps_show_each_class_in_log10_n_and_pc(tiny: Path) -> None:
    plan = plan_experiment(tiny)
    store = SimulationStore(cache_dir())
    assert example_maps(plan, store) is None  # nothing in the cache yet
    summary = run_experiment(plan, store, show_progress=False)
    assert ARTIFACT in {a.path for a in MlflowClient().list_artifacts(summary.run_id, "data")}

    fig = example_maps(plan, store)
    images = [ax for ax in fig.axes if ax.images and isinstance(ax.images[0], AxesImage)]
    assert len(images) == 2 * PER_CLASS  # the tiny campaign has 3 simulations of each class
    titles = [ax.get_title() for ax in images]
    assert sum(t.startswith("kolmogorov (n = 3.667)") for t in titles) == PER_CLASS
    assert sum(t.startswith("burgers (n = 4)") for t in titles) == PER_CLASS
    box = plan.campaign.spec.physics.box_pc
    first = images[0]
    assert first.images[0].get_extent() == [0, box, 0, box]
    assert first.get_xlabel() == first.get_ylabel() == "pc"
    [colorbar] = [ax for ax in fig.axes if ax.get_ylabel().startswith("$\\log_{10} N$")]
    assert colorbar.get_ylabel() == r"$\log_{10} N$ [g cm$^{-2}$]"
    # the values are log10 of the cached column density in g/cm²
    sim = plan.members()[0][1]
    expected = np.log10(store.get(sim.key).column_density[0])
    np.testing.assert_allclose(first.images[0].get_array(), expected)
