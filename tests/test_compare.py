"""``turbexp compare`` on real tiny runs: one figure per quantity, refusal of other holdouts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import TINY_CAMPAIGN, turbexp_cli, write
from matplotlib.collections import PathCollection
from mlflow.tracking import MlflowClient

from turbexp import compare
from turbexp.errors import UserError
from turbexp.holdout import Holdout, HoldoutPart
from turbexp.plugins import registry

SPREAD_CAMPAIGN = """
name: spread
grid: 16
seed: 5
groups:
  - {index: {low: 3.0, high: 4.5}, count: 6}
"""

CLASSIFY = """
name: {name}
data:
  campaign: ../sims/tiny.yaml
  images: {{size: 16, cuts: 4, flips: 2}}
  split: {{train: 0.4, test: 0.3, holdout: 0.3, seed: {seed}}}
task: {{kind: classify, classes: {{kolmogorov: 3.6666667, burgers: 4.0}}}}
features: {features}
estimator: {estimator}
tune: {{trials: 0, metric: roc_auc, seed: 0}}
"""

REGRESS = """
name: {name}
data:
  campaign: ../sims/spread.yaml
  images: {{size: 16, cuts: 1, flips: 1}}
  split: {{train: 0.5, test: 0.25, holdout: 0.25, seed: 0}}
task: {{kind: regress}}
features: {features}
estimator: {estimator}
tune: {{trials: 0, seed: 0}}
"""

EXPERIMENTS = {
    "c-hog-svm": CLASSIFY.format(name="c-hog-svm", seed=0, features="{plugin: hog, cells: 2}",
                                 estimator="svm"),
    "c-ps-logistic": CLASSIFY.format(name="c-ps-logistic", seed=0,
                                     features="{plugin: power_spectrum, window: none}",
                                     estimator="logistic"),
    "c-hog-svm-seed1": CLASSIFY.format(name="c-hog-svm-seed1", seed=1,
                                       features="{plugin: hog, cells: 2}",
                                       estimator="svm"),
    "r-ps-svr": REGRESS.format(name="r-ps-svr", features="{plugin: power_spectrum, window: none}",
                               estimator="svr"),
    "r-hog-svr": REGRESS.format(name="r-hog-svr", features="{plugin: hog, cells: 2}",
                                estimator="svr"),
}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Five tiny experiments run once through the real runner, in a private store."""
    from turbexp.cli import main

    root = tmp_path_factory.mktemp("catalogue")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("TURBEXP_HOME", str(root / ".turbexp"))
        patch.delenv("TURBEXP_CACHE", raising=False)
        patch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
        patch.setenv("TURBEXP_JOBS", "1")
        mlflow.set_tracking_uri(uri)
        registry.cache_clear()
        # two holdout simulations per class: enough to resample for intervals
        write(root / "sims" / "tiny.yaml", TINY_CAMPAIGN.replace("count: 3", "count: 6"))
        write(root / "sims" / "spread.yaml", SPREAD_CAMPAIGN)
        files = [str(write(root / "experiments" / f"{name}.yaml", text))
                 for name, text in EXPERIMENTS.items()]
        main(["run", *files, "--no-progress"])
        yield root
        registry.cache_clear()
        mlflow.set_tracking_uri(None)


def parent(name: str) -> mlflow.entities.Run:
    [run] = mlflow.search_runs(
        experiment_names=["turbexp"], output_format="list",
        filter_string=f"tags.`turbexp.role` = 'experiment' and "
                      f"tags.`turbexp.experiment` = '{name}'")
    return run


def legend(figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_legend().get_texts()]


def test_compare_cli_draws_both_roc_curves_and_logs_a_comparison_run(catalogue: Path) -> None:
    result = turbexp_cli("compare", "c-hog-svm", parent("c-ps-logistic").info.run_id,
                         "--out", "figs", cwd=catalogue)
    assert result.returncode == 0, result.stderr
    assert "c-hog-svm" in result.stdout and "c-ps-logistic" in result.stdout

    out = catalogue / "figs"
    for stem in ("roc", "headline"):
        assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert f"wrote figs/{stem}.png" in result.stdout
    assert not (out / "predicted_vs_true.png").exists()
    assert not list(out.glob(".*.tmp"))

    runs = {name: parent(name) for name in ("c-hog-svm", "c-ps-logistic")}
    [logged] = mlflow.search_runs(
        experiment_names=["turbexp"], output_format="list",
        filter_string="tags.`turbexp.role` = 'comparison' and "
                      "tags.`turbexp.comparison` = 'c-hog-svm_vs_c-ps-logistic'")
    assert logged.info.run_id in result.stdout
    assert logged.info.status == "FINISHED"
    assert logged.data.params["runs"].split(",") == [r.info.run_id for r in runs.values()]
    assert logged.data.params["experiments"] == "c-hog-svm,c-ps-logistic"
    assert logged.data.params["baseline"] == runs["c-ps-logistic"].info.run_id
    assert logged.data.tags["turbexp.headline_metric"] == "holdout_roc_auc"
    for name, run in runs.items():
        assert logged.data.metrics[f"holdout_roc_auc.{name}"] == \
            pytest.approx(run.data.metrics["holdout_roc_auc"])
    artifacts = {a.path for a in MlflowClient().list_artifacts(logged.info.run_id, "comparison")}
    assert artifacts == {f"comparison/{f}" for f in
                         ("roc.png", "roc.pdf", "headline.png", "headline.pdf", "runs.json")}
    table = json.loads((out / "runs.json").read_text())
    assert [r["physics_baseline"] for r in table["runs"]] == [False, True]


def test_roc_figure_has_a_curve_per_run_with_the_runs_aucs(catalogue: Path) -> None:
    runs = compare.resolve(["c-hog-svm", "c-ps-logistic"])
    compare.check_same_holdout(runs)
    figure = compare.roc_figure(runs)
    ax = figure.axes[0]
    assert len(ax.lines) == 3  # chance and one curve per run
    labels = legend(figure)[1:]
    for label, name in zip(labels, ("c-hog-svm", "c-ps-logistic"), strict=True):
        assert label.startswith(name)
        auc = float(re.search(r"AUC = ([0-9.]+)", label).group(1))
        assert auc == pytest.approx(parent(name).data.metrics["holdout_roc_auc"], abs=5e-4)
    # each curve is that run's ROC: it ends at (1, 1) and is drawn from its own scores
    hog, spectrum = ax.lines[1], ax.lines[2]
    assert hog.get_xdata()[-1] == spectrum.get_xdata()[-1] == 1.0
    assert not (len(hog.get_xdata()) == len(spectrum.get_xdata())
                and np.allclose(hog.get_ydata(), spectrum.get_ydata()))
    assert spectrum.get_linestyle() == "--" and "physics baseline" in labels[1]


def test_headline_figure_marks_the_physics_baseline(catalogue: Path) -> None:
    runs = compare.resolve(["c-hog-svm", "c-ps-logistic"])
    figure = compare.headline_figure(runs, "holdout_roc_auc")
    ax = figure.axes[0]
    bars = ax.patches
    assert [b.get_height() for b in bars] == pytest.approx(
        [parent(n).data.metrics["holdout_roc_auc"] for n in ("c-hog-svm", "c-ps-logistic")])
    assert [b.get_hatch() for b in bars] == [None, "//"]
    baseline_value = bars[1].get_height()
    marked = [line for line in ax.lines if line.get_ydata()[0] == pytest.approx(baseline_value)]
    assert marked and "physics baseline" in legend(figure)[0]
    assert "no physics baseline" not in ax.get_title()

    without = compare.headline_figure(runs[:1] * 2, "holdout_roc_auc")
    assert "no physics baseline" in without.axes[0].get_title()


def test_regressors_are_drawn_predicted_against_true(catalogue: Path) -> None:
    result = turbexp_cli("compare", "r-hog-svr", "r-ps-svr", cwd=catalogue)
    assert result.returncode == 0, result.stderr
    out = catalogue / "comparison" / "r-hog-svr_vs_r-ps-svr"
    assert {p.name for p in out.iterdir()} == {
        "predicted_vs_true.png", "predicted_vs_true.pdf", "headline.png", "headline.pdf",
        "runs.json"}

    runs = compare.resolve(["r-hog-svr", "r-ps-svr"])
    figure = compare.predicted_vs_true_figure(runs)
    ax = figure.axes[0]
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2
    for scatter, run in zip(scatters, runs, strict=True):
        assert np.allclose(scatter.get_offsets()[:, 1], run.holdout.concatenated("score"))
    labels = legend(figure)
    assert labels[0] == "predicted = true"
    for label, run in zip(labels[1:], runs, strict=True):
        mse = float(re.search(r"MSE = ([0-9.e-]+)", label).group(1))
        assert mse == pytest.approx(parent(run.experiment).data.metrics["holdout_mse"], rel=1e-2)


def test_runs_on_another_split_are_refused(catalogue: Path) -> None:
    result = turbexp_cli("compare", "c-hog-svm", "c-hog-svm-seed1", "--out", "refused",
                         cwd=catalogue)
    assert result.returncode == 2
    assert "not scored on the same holdout" in result.stderr
    assert "'c-hog-svm'" in result.stderr and "'c-hog-svm-seed1'" in result.stderr
    assert "split seed 0 vs 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (catalogue / "refused").exists()


def test_runs_of_another_task_and_campaign_are_refused(catalogue: Path) -> None:
    runs = compare.resolve(["c-ps-logistic", "r-ps-svr"])
    with pytest.raises(UserError) as caught:
        compare.check_same_holdout(runs)
    assert "task classify vs regress" in str(caught.value)
    assert "campaign hash" in str(caught.value)


def test_unknown_names_and_single_runs_are_clear_errors(catalogue: Path) -> None:
    result = turbexp_cli("compare", "c-hog-svm", "no-such-experiment", cwd=catalogue)
    assert result.returncode == 2
    assert "'no-such-experiment' is neither an experiment with a run nor an MLflow run id" \
        in result.stderr
    assert "c-ps-logistic" in result.stderr  # the experiments that could be meant
    with pytest.raises(UserError, match="at least two runs"):
        compare.resolve(["c-hog-svm", parent("c-hog-svm").info.run_id])
    with pytest.raises(UserError, match="comparison name"):
        compare.compare(["c-hog-svm", "c-ps-logistic"], name="../escape")


def test_compare_scores_each_run_against_the_first_on_the_same_resamples(
        catalogue: Path) -> None:
    result = compare.compare(["c-ps-logistic", "c-hog-svm"], out=catalogue / "paired")
    first, second = result.runs
    assert first.difference == {}
    difference = second.difference["roc_auc"]
    assert difference.value == pytest.approx(second.scores["roc_auc"].value
                                             - first.scores["roc_auc"].value)
    assert difference.low <= difference.value <= difference.high
    # the interval is one of differences taken resample by resample, on the same images
    boot = first.holdout.bootstrap()
    paired = [second.holdout.scores(i)["roc_auc"] - first.holdout.scores(i)["roc_auc"]
              for i in boot.draws()]
    assert min(paired) <= difference.low and difference.high <= max(paired)
    expected = "better" if difference.low > 0 else "worse" if difference.high < 0 \
        else "not distinguishable"
    assert result.verdict(second) == expected
    table = json.loads((catalogue / "paired" / "runs.json").read_text())
    assert table["runs"][1]["verdict"] == expected
    assert table["runs"][1]["minus_first"]["holdout_roc_auc_ci95_low"] == difference.low
    assert table["n_simulations"] == 4
    [logged] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                                  filter_string=f"attributes.run_id = '{result.run_id}'")
    assert logged.data.metrics["delta_holdout_roc_auc.c-hog-svm"] == \
        pytest.approx(difference.value)

    printed = turbexp_cli("compare", "c-ps-logistic", "c-hog-svm", "--out", "p2",
                          cwd=catalogue)
    assert printed.returncode == 0, printed.stderr
    assert "minus c-ps-logistic" in printed.stdout and expected in printed.stdout
    assert "4 holdout simulations" in printed.stdout.replace("\n", " ")


def test_trial_runs_are_not_compared(catalogue: Path) -> None:
    [trial, *_] = mlflow.search_runs(experiment_names=["turbexp"], output_format="list",
                                     filter_string="tags.`turbexp.role` = 'trial'")
    with pytest.raises(UserError, match="not an experiment's parent run"):
        compare.resolve(["c-hog-svm", trial.info.run_id])


def test_runs_without_holdout_predictions_are_refused(catalogue: Path) -> None:
    client = MlflowClient()
    experiment = client.get_experiment_by_name("turbexp")
    bare = client.create_run(experiment.experiment_id, tags={
        "turbexp.role": "experiment", "turbexp.experiment": "bare"}).info.run_id
    client.set_terminated(bare)
    with pytest.raises(UserError, match=r"has no holdout/predictions\.json"):
        compare.resolve(["c-hog-svm", "bare"])


def _holdout(**changes) -> Holdout:
    values = dict(campaign_hash="a" * 64, split_seed=0, simulation=np.repeat([1, 4], 3),
                  stratum=np.array([0, 0, 0, 1, 1, 1]), index=np.zeros(6),
                  y_true=np.array([0, 0, 0, 1, 1, 1]), y_pred=np.zeros(6), score=np.zeros(6))
    names = changes.pop("class_names", ["kolmogorov", "burgers"])
    part = HoldoutPart(**{**values, **changes})
    return Holdout("classify", names, (part,))


def test_holdout_differences_name_what_differs() -> None:
    base = _holdout()
    assert compare.holdout_differences(base, _holdout()) == []
    assert compare.holdout_differences(base, _holdout(campaign_hash="b" * 64)) == [
        "campaign hash aaaaaaaaaaaa vs bbbbbbbbbbbb"]
    assert compare.holdout_differences(base, _holdout(simulation=np.repeat([1, 5], 3))) == [
        "holdout simulations [1, 4] vs [1, 5]"]
    assert compare.holdout_differences(base, _holdout(simulation=np.repeat([1, 4], 6))) == [
        "holdout images 6 vs 12 (different images per simulation)"]
    assert compare.holdout_differences(base, _holdout(simulation=np.tile([1, 4], 3))) == [
        "holdout images in a different order"]
    assert compare.holdout_differences(base, _holdout(class_names=["burgers", "kolmogorov"])) \
        == ["classes ['kolmogorov', 'burgers'] vs ['burgers', 'kolmogorov']"]
