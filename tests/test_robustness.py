"""Reports that score the fitted model beyond its holdout: index response, zoom,
resolution and smoothing, through a real run of a tiny experiment."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, turbexp_cli, write
from mlflow.tracking import MlflowClient

from turbexp.evaluation import smooth_maps, zoom_maps
from turbexp.images import resize_to


def test_zoom_one_is_the_identity_and_zoom_two_the_central_half() -> None:
    maps = np.random.default_rng(0).standard_normal((3, 16, 16))
    np.testing.assert_array_equal(zoom_maps(maps, 1.0), maps)
    np.testing.assert_allclose(zoom_maps(maps, 2.0)[1], resize_to(maps[1, 4:12, 4:12], 16))


def test_zooming_out_repeats_the_periodic_box_around_its_centre() -> None:
    maps = np.random.default_rng(1).standard_normal((3, 16, 16))
    wide = zoom_maps(maps, 0.5)  # a 32-pixel view around the box, resampled to 16
    expected = resize_to(np.pad(maps[0], 8, mode="wrap"), 16)
    np.testing.assert_allclose(wide[0], expected)
    with pytest.raises(ValueError):
        zoom_maps(maps, 0.0)


def test_smoothing_scale_is_a_fraction_of_the_box_at_every_resolution() -> None:
    x = np.arange(64) / 64
    coarse = np.exp(np.sin(2 * np.pi * 8 * x))[None, :, None] * np.ones((3, 64, 64))
    fine = np.exp(np.sin(2 * np.pi * 8 * np.arange(128) / 128))[None, :, None] \
        * np.ones((3, 128, 128))
    assert smooth_maps(coarse, 0.0) is coarse
    # the same scale damps the same wave by the same amount at both resolutions
    damp = [np.ptp(np.log(smooth_maps(m, 0.01)[0, :, 0])) / np.ptp(np.log(m[0, :, 0]))
            for m in (coarse, fine)]
    assert damp[0] < 0.9 and damp[0] == pytest.approx(damp[1], rel=0.05)


SPREAD = """
name: spread
grid: 16
seed: 5
groups:
  - {index: {low: 3.4, high: 4.3}, count: 5}
"""

COARSE = TINY_CAMPAIGN.replace("name: tiny", "name: tiny32").replace("grid: 16", "grid: 32")

EXPERIMENT = """
name: robust
data:
  campaign: ../sims/tiny.yaml
  images: {size: 8, cuts: 4, flips: 2}
  split: {train: 0.4, test: 0.3, holdout: 0.3, seed: 0}
task: {kind: classify, classes: {kolmogorov: 3.6666667, burgers: 4.0}}
features: {plugin: hog, orientations: 6, cells: 2}
estimator: {plugin: logistic}
tune: {trials: 0}
evaluate:
  reports:
    - {plugin: index_response, campaign: ../sims/spread.yaml}
    - {plugin: zoom_invariance, factors: [0.5, 1.0, 2.0]}
    - {plugin: resolution_robustness, campaigns: [../sims/tiny32.yaml]}
    - {plugin: smoothing, campaigns: [../sims/tiny32.yaml], scales: [0.0, 0.05]}
"""


def test_robustness_reports_on_a_real_run(workdir: Path) -> None:
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    write(workdir / "sims" / "tiny32.yaml", COARSE)
    write(workdir / "sims" / "spread.yaml", SPREAD)
    experiment = write(workdir / "experiments" / "robust.yaml", EXPERIMENT)
    result = turbexp_cli("run", str(experiment), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    [run] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                               filter_string="tags.`turbexp.role` = 'experiment'")
    metrics = run.data.metrics
    # zoom 1 is the holdout itself
    assert metrics["zoom_1_roc_auc"] == pytest.approx(metrics["holdout_roc_auc"])
    assert {"zoom_0.5_roc_auc", "zoom_2_roc_auc"} <= set(metrics)
    assert metrics["resolution_grid_16_roc_auc"] == pytest.approx(metrics["holdout_roc_auc"])
    assert 0 <= metrics["resolution_grid_32_roc_auc"] <= 1
    for scale in ("0", "0.05"):
        for grid in ("16", "32"):
            assert 0 <= metrics[f"smoothing_{scale}_grid_{grid}_roc_auc"] <= 1
        assert metrics[f"smoothing_{scale}_spread_roc_auc"] == pytest.approx(abs(
            metrics[f"smoothing_{scale}_grid_16_roc_auc"]
            - metrics[f"smoothing_{scale}_grid_32_roc_auc"]))
    # refitting on unsmoothed maps reproduces the experiment's own model
    assert metrics["smoothing_0_grid_16_roc_auc"] == pytest.approx(metrics["holdout_roc_auc"])
    assert metrics["smoothing_best_scale"] in (0.0, 0.05)
    assert -1 <= metrics["index_response_spearman"] <= 1
    figures = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "reports")}
    assert {"reports/index_response.png", "reports/zoom_invariance.png",
            "reports/resolution_robustness.png", "reports/smoothing.png"} <= figures
