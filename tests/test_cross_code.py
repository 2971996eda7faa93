"""The cross-code report through real runs of tiny experiments: a model trained on one
campaign scored on another made differently, and the skip of an experiment whose test
campaign needs a RAMSES executable that is not configured."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, turbexp_cli, write
from mlflow.tracking import MlflowClient
from sklearn.metrics import brier_score_loss

from turbexp import metrics
from turbexp.calibration import MapCalibration
from turbexp.campaign import plan_campaign
from turbexp.experiment import plan_experiment
from turbexp.image_set import build_image_set
from turbexp.images import images_from_maps
from turbexp.spec import ImagesSpec
from turbexp.store import SimulationStore
from turbexp.tracking import load_pipeline, run_model_uri

# another solver set-up (HLL instead of LLF, a finer grid, other seeds): "another code"
OTHER = (TINY_CAMPAIGN.replace("name: tiny", "name: other").replace("grid: 16", "grid: 32")
         .replace("seed: 3", "seed: 8") + "simulator: {plugin: builtin, riemann: hll}\n")

CLASSIFY = """
name: cross
data:
  campaign: ../sims/tiny.yaml
  images: {size: 16, cuts: 1, flips: 2}
  split: {train: 0.4, test: 0.3, holdout: 0.3, seed: 0}
task: {kind: classify, classes: {kolmogorov: 3.6666667, burgers: 4.0}}
features: {plugin: power_spectrum}
estimator: {plugin: logistic}
tune: {trials: 0}
evaluate:
  reports:
    - {plugin: cross_code, campaigns: {other_32: ../sims/other.yaml}, align: true}
"""

SPREAD = """
name: spread
grid: 16
seed: 5
groups:
  - {index: {low: 3.0, high: 4.5}, count: 16}
"""

REGRESS = """
name: cross-index
data:
  campaign: ../sims/spread.yaml
  images: {size: 16, cuts: 1, flips: 2}
  split: {train: 0.5, test: 0.25, holdout: 0.25, seed: 0}
task: {kind: regress}
features: {plugin: power_spectrum}
estimator: {plugin: svr}
tune: {trials: 0}
evaluate:
  reports:
    - {plugin: cross_code, campaigns: {other: ../sims/spread_hll.yaml}}
"""


def _run(workdir: Path, name: str) -> mlflow.entities.Run:
    [run] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                               filter_string=f"tags.`turbexp.role` = 'experiment' and "
                                             f"tags.`turbexp.experiment` = '{name}'")
    return run


def _other_images(workdir: Path, campaign: str, spec: ImagesSpec
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Images and true indices of every simulation of ``campaign``, made independently."""
    store = SimulationStore(workdir / ".turbexp" / "cache")
    images, indices = [], []
    for sim in plan_campaign(workdir / "sims" / campaign).simulations:
        block = images_from_maps(np.log10(store.get(sim.key).column_density), spec)
        images.append(block)
        indices.append(np.full(len(block), sim.request.index))
    return np.concatenate(images), np.concatenate(indices)


def test_a_classifier_scored_on_another_code(workdir: Path) -> None:
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    write(workdir / "sims" / "other.yaml", OTHER)
    experiment = write(workdir / "experiments" / "cross.yaml", CLASSIFY)
    result = turbexp_cli("run", str(experiment), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    run = _run(workdir, "cross")
    m = run.data.metrics
    # the holdout row is the experiment's own holdout
    for name in ("accuracy", "roc_auc"):
        assert m[f"cross_holdout_{name}"] == pytest.approx(m[f"holdout_{name}"])
    # the other campaign's row, recomputed here from the logged model and the cached maps
    model = load_pipeline(run_model_uri(run))
    images, index = _other_images(workdir, "other.yaml", ImagesSpec(size=16, cuts=1, flips=2))
    y = (index == 4.0).astype(int)
    p = model.predict_proba(images)[:, 1]
    assert m["cross_other_32_accuracy"] == pytest.approx(np.mean(model.predict(images) == y))
    assert m["cross_other_32_roc_auc"] == pytest.approx(metrics.roc_auc(y, p))
    assert m["cross_other_32_brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["cross_other_32_ece"] == pytest.approx(metrics.expected_calibration_error(y, p))
    # aligned: the other campaign's features moved to the training images' mean and spread
    plan = plan_experiment(experiment)
    data = build_image_set(plan, SimulationStore(workdir / ".turbexp" / "cache"))
    reference = model[:-1].transform(data.images[data.part("train")])
    features = model[:-1].transform(images)
    moved = (features - features.mean(0)) / features.std(0) * reference.std(0) \
        + reference.mean(0)
    assert m["cross_other_32_aligned_accuracy"] == pytest.approx(
        np.mean(model[-1].predict(moved) == y))
    # per map (a simulation's projection): its two flips' mean probability
    p_map, y_map = p.reshape(-1, 2).mean(axis=1), y[::2]
    assert m["cross_other_32_map_accuracy"] == pytest.approx(np.mean((p_map > 0.5) == y_map))
    assert m["cross_other_32_map_brier"] == pytest.approx(brier_score_loss(y_map, p_map))
    # and after the model's own calibration, fitted on its test split's maps
    calibration = MapCalibration.from_tag(run.data.tags["turbexp.map_calibration"])
    assert m["cross_other_32_map_calibrated_brier"] == pytest.approx(
        brier_score_loss(y_map, calibration(p_map)))
    _, low, high = calibration.calibrated(p_map)
    assert m["cross_other_32_map_calibrated_width"] == pytest.approx(np.mean(high - low))
    assert 0 <= m["holdout_map_calibrated_ece"] <= 1
    assert 0 <= m["holdout_map_calibrated_width"] <= 1
    for key in ("accuracy", "brier", "map_accuracy"):  # (ECE is biased under resampling)
        assert m[f"cross_other_32_{key}_ci95_low"] <= m[f"cross_other_32_{key}"] \
            <= m[f"cross_other_32_{key}_ci95_high"]
    figures = {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "reports")}
    assert "reports/cross_code.png" in figures


def test_a_regression_scored_on_another_code(workdir: Path) -> None:
    write(workdir / "sims" / "spread.yaml", SPREAD)
    write(workdir / "sims" / "spread_hll.yaml",
          SPREAD.replace("name: spread", "name: spread-hll").replace("seed: 5", "seed: 6")
          + "simulator: {plugin: builtin, riemann: hll}\n")
    experiment = write(workdir / "experiments" / "cross-index.yaml", REGRESS)
    result = turbexp_cli("run", str(experiment), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    run = _run(workdir, "cross-index")
    m = run.data.metrics
    assert m["cross_holdout_mse"] == pytest.approx(m["holdout_mse"])
    model = load_pipeline(run_model_uri(run))
    images, n = _other_images(workdir, "spread_hll.yaml", ImagesSpec(size=16, cuts=1, flips=2))
    predicted = model.predict(images)
    assert m["cross_other_mse"] == pytest.approx(np.mean((predicted - n) ** 2))
    assert m["cross_other_bias"] == pytest.approx(np.mean(predicted - n))
    assert m["cross_other_slope"] == pytest.approx(np.polyfit(n, predicted, 1)[0])
    # the conformal interval of a map's n, set on the 4 test simulations' 12 maps
    halfwidth = float(run.data.tags["turbexp.map_interval_90"])
    assert m["map_interval_90_halfwidth"] == pytest.approx(halfwidth) and halfwidth < 1
    map_n, map_pred = n[::2], predicted.reshape(-1, 2).mean(axis=1)  # 2 flips a map
    assert m["cross_other_map_coverage_90"] == pytest.approx(
        np.mean(np.abs(map_pred - map_n) <= halfwidth))
    assert 0 <= m["holdout_map_coverage_90"] <= 1


def test_brier_and_calibration_error() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    assert metrics.brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert metrics.expected_calibration_error(y, p) < 0.02  # calibrated by construction
    # always 0.9 for a class that is there half the time: off by 0.4
    assert metrics.expected_calibration_error(np.r_[np.ones(50), np.zeros(50)],
                                              np.full(100, 0.9)) == pytest.approx(0.4)


def test_an_experiment_needing_ramses_is_skipped_with_its_reason(workdir: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.delenv("TURBEXP_RAMSES_EXECUTABLE", raising=False)
    write(workdir / "sims" / "tiny.yaml", TINY_CAMPAIGN)
    write(workdir / "sims" / "amr.yaml", TINY_CAMPAIGN.replace("name: tiny", "name: amr")
          + "simulator: {plugin: ramses}\n")
    needs = write(workdir / "experiments" / "needs.yaml", CLASSIFY.replace(
        "name: cross", "name: needs").replace("other_32: ../sims/other.yaml",
                                              "ramses: ../sims/amr.yaml"))
    plain = write(workdir / "experiments" / "plain.yaml", CLASSIFY.replace(
        "name: cross", "name: plain").replace(
        "    - {plugin: cross_code, campaigns: {other_32: ../sims/other.yaml}, align: true}\n",
        "    - roc\n"))
    result = turbexp_cli("run", str(needs), str(plain), "--no-progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "skipped needs: report 'cross_code' needs amr.yaml (6 of 6 simulations not in " \
           "the cache): no RAMSES executable" in said
    assert "TURBEXP_RAMSES_EXECUTABLE" in said
    runs = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                              filter_string="tags.`turbexp.role` = 'experiment'")
    assert [r.data.tags["turbexp.experiment"] for r in runs] == ["plain"]
