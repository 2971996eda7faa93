"""The example package's own tests, written with turbexp's pytest plugin (turbexp.testing)."""

from __future__ import annotations

import mlflow


def test_pixel_stats_and_nearest_centroid_run_an_experiment(turbexp_project, run_turbexp):
    experiment = turbexp_project.experiment(
        "stats", features={"plugin": "pixel_stats", "moments": 3},
        estimator={"plugin": "nearest_centroid"})
    result = run_turbexp("run", str(experiment), "--no-progress")
    assert result.returncode == 0, result.stderr
    [run] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                               filter_string="tags.`turbexp.role` = 'experiment'")
    assert run.info.status == "FINISHED"
    assert 0.0 <= run.data.metrics["holdout_roc_auc"] <= 1.0


def test_a_bad_parameter_is_refused(turbexp_project, run_turbexp):
    experiment = turbexp_project.experiment(features={"plugin": "pixel_stats", "moments": 0})
    result = run_turbexp("validate", str(experiment))
    assert result.returncode == 2
    assert "features.moments" in result.stderr
