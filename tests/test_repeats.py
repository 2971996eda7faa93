"""Repeats over independent seeds nest under one parent; analyses reuse a trained model."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, TINY_EXPERIMENT, turbexp_cli, write
from mlflow.tracking import MlflowClient

REPEATED = TINY_EXPERIMENT.replace("tune: {", "repeats: 3\ntune: {")

REUSING = """
name: tiny-reuse
data:
  campaign: ../sims/tiny.yaml
  images: {size: 8, cuts: 4, flips: 2}
  split: {train: 0.4, test: 0.3, holdout: 0.3, seed: 0}
task: {kind: classify, classes: {kolmogorov: 3.6666667, burgers: 4.0}}
model: experiment:tiny-hog-svm
evaluate:
  reports: [roc, {plugin: zoom_invariance, factors: [0.5, 1.0]}]
"""


def _runs(**tags: str) -> list:
    where = " and ".join(f"tags.`turbexp.{k}` = '{v}'" for k, v in tags.items())
    return sorted(mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                                     filter_string=where), key=lambda r: r.info.start_time)


@pytest.mark.slow
def test_repeats_nest_under_one_parent_and_aggregate(tiny: Path) -> None:
    root = tiny.parent.parent
    write(tiny, REPEATED)
    # two holdout simulations per class, so that each repeat's holdout can be resampled
    write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN.replace("count: 3", "count: 6"))
    result = turbexp_cli("run", str(tiny), "--no-progress", cwd=root)
    assert result.returncode == 0, result.stderr
    [parent] = _runs(role="experiment")
    repeats = _runs(role="repeat")
    assert [r.data.tags["turbexp.repeat"] for r in repeats] == ["0", "1", "2"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in repeats)
    # each repeat draws its own simulations and split, and tunes its own study
    assert len({r.data.tags["turbexp.campaign_hash"] for r in repeats}) == 3
    assert [r.data.params["split.seed"] for r in repeats] == ["0", "1", "2"]
    assert [r.data.params["campaign.seed"] for r in repeats] == ["3", "4", "5"]
    assert len({r.data.tags["turbexp.study"] for r in repeats}) == 3
    for repeat in repeats:
        trials = _runs(role="trial", study=repeat.data.tags["turbexp.study"])
        assert len(trials) == 3
        assert all(t.data.tags["mlflow.parentRunId"] == repeat.info.run_id for t in trials)
    # the parent holds the mean over repeats, its interval and the spread across them
    values = [r.data.metrics["holdout_roc_auc"] for r in repeats]
    metrics = parent.data.metrics
    assert metrics["holdout_roc_auc"] == pytest.approx(np.mean(values))
    assert metrics["holdout_roc_auc_sd"] == pytest.approx(np.std(values, ddof=1))
    assert metrics["holdout_roc_auc_ci95_low"] <= metrics["holdout_roc_auc"] \
        <= metrics["holdout_roc_auc_ci95_high"]
    assert parent.data.params["repeats"] == "3"
    # the mean rests on every repeat's holdout together
    assert int(parent.data.params["n_simulations.holdout"]) == sum(
        int(r.data.params["n_simulations.holdout"]) for r in repeats)
    assert int(parent.data.params["n_images.holdout"]) == sum(
        int(r.data.params["n_images.holdout"]) for r in repeats)
    assert parent.data.tags["turbexp.model_run"] == repeats[0].info.run_id
    predictions = mlflow.artifacts.load_dict(
        f"runs:/{parent.info.run_id}/holdout/predictions.json")
    assert len(predictions["repeats"]) == 3
    assert "sd" in result.stdout and "3 repeats" in result.stdout
    listed = turbexp_cli("list", str(tiny), cwd=root)  # piped: tab-separated values
    header, row = listed.stdout.splitlines()
    fields = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert fields["repeats"] == "3"
    assert float(fields["sd"]) == pytest.approx(metrics["holdout_roc_auc_sd"])
    assert fields["model_uri"] == "models:/tiny-hog-svm/1"  # repeat 0's model


@pytest.mark.slow
def test_an_analysis_scores_the_named_experiments_model_without_training(tiny: Path) -> None:
    root = tiny.parent.parent
    write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN.replace("count: 3", "count: 6"))
    reuse = write(root / "experiments" / "reuse.yaml", REUSING)
    # the reusing file comes first on the command line: it is run after its source
    result = turbexp_cli("run", str(reuse), str(tiny), "--no-progress", cwd=root)
    assert result.returncode == 0, result.stderr
    [source] = _runs(experiment="tiny-hog-svm", role="experiment")
    [analysis] = _runs(experiment="tiny-reuse", role="experiment")
    assert analysis.info.start_time > source.info.start_time
    assert not _runs(role="trial", experiment="tiny-reuse")
    assert analysis.data.tags["turbexp.model_source"] == f"runs:/{source.info.run_id}/tiny-hog-svm"
    # the same model on the same holdout: the same numbers
    for name in ("holdout_roc_auc", "holdout_accuracy", "holdout_roc_auc_ci95_low"):
        assert analysis.data.metrics[name] == source.data.metrics[name]
    assert "zoom_1_roc_auc" in analysis.data.metrics
    assert analysis.data.metrics["zoom_1_roc_auc"] == pytest.approx(
        source.data.metrics["holdout_roc_auc"])
    client = MlflowClient()
    assert not [a for a in client.list_artifacts(analysis.info.run_id) if a.path == "model"]

    # another split is another holdout: the model saw some of it, so it is refused
    write(reuse, REUSING.replace("seed: 0}", "seed: 1}"))
    refused = turbexp_cli("run", str(reuse), str(tiny), "--no-progress", cwd=root)
    assert refused.returncode == 2
    assert "the model of 'tiny-hog-svm' was trained with split" in refused.stderr
    alone = turbexp_cli("run", str(reuse), "--no-progress", cwd=root)
    assert alone.returncode == 2 and "trained on other data" in alone.stderr


def test_reusing_an_experiment_that_never_ran_is_a_clear_error(tiny: Path) -> None:
    root = tiny.parent.parent
    reuse = write(root / "experiments" / "reuse.yaml", REUSING)
    result = turbexp_cli("run", str(reuse), "--no-progress", cwd=root)
    assert result.returncode == 2
    assert "experiment 'tiny-hog-svm' has no finished run" in result.stderr
    both = write(root / "experiments" / "both.yaml",
                 REUSING.replace("model: experiment:tiny-hog-svm",
                                 "model: experiment:tiny-hog-svm\nfeatures: hog"))
    result = turbexp_cli("validate", str(both), cwd=root)
    assert result.returncode == 2 and "leave out features, estimator and tune" in result.stderr
