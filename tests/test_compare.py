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

from turbexp.commands import compare
from turbexp.errors import UserError
from turbexp.holdout import Holdout, HoldoutPart, paired_differences
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
    assert len(ax.lines) == 3  # one curve per run, then chance
    assert legend(figure)[-1] == "chance"
    labels = legend(figure)[:-1]
    for label, name in zip(labels, ("c-hog-svm", "c-ps-logistic"), strict=True):
        assert label.startswith(name)
        auc = float(re.search(r"AUC = ([0-9.]+)", label).group(1))
        assert auc == pytest.approx(parent(name).data.metrics["holdout_roc_auc"], abs=5e-4)
    # each curve is that run's ROC: it ends at (1, 1) and is drawn from its own scores
    hog, spectrum = ax.lines[0], ax.lines[1]
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
    assert labels[:3] == ["Kolmogorov (11/3)", "Burgers (4)", "predicted = true"]
    for label, run in zip(labels[3:], runs, strict=True):
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
    assert compare.holdout_differences(base, _holdout(stratum=np.array([1, 1, 1, 0, 0, 0]))) \
        == ["holdout simulations [1, 4] in other strata"]
    # other images of the same simulations (more cuts, another order) are the same holdout
    more = _holdout(simulation=np.repeat([4, 1], 5), stratum=np.repeat([1, 0], 5),
                    index=np.zeros(10), y_true=np.repeat([1, 0], 5), y_pred=np.zeros(10),
                    score=np.zeros(10))
    assert compare.holdout_differences(base, more) == []
    assert compare.holdout_differences(base, _holdout(class_names=["burgers", "kolmogorov"])) \
        == ["classes ['kolmogorov', 'burgers'] vs ['burgers', 'kolmogorov']"]


def test_runs_with_other_images_of_the_same_simulations_are_paired_by_simulation() -> None:
    """A CNN's 12 images a box against HOG's 48: each resample draws the same simulations
    for both, and scores each run on its own images of them."""
    rng = np.random.default_rng(3)
    sims = np.arange(16)
    label = sims % 2

    def run(per_simulation: int, skill: float) -> Holdout:
        owner = np.repeat(sims, per_simulation)
        y = label[owner]
        score = skill * y + rng.normal(0, 1, len(owner)) + rng.normal(0, 1, 16)[owner]
        part = HoldoutPart("a" * 64, 0, owner, y, np.zeros(len(owner)), y,
                           (score > skill / 2).astype(int), score)
        return Holdout("classify", ["kolmogorov", "burgers"], (part,))

    cnn, hog = run(3, 2.0), run(12, 0.2)
    assert compare.holdout_differences(cnn, hog) == []
    difference = paired_differences(cnn, hog, resamples=300)["roc_auc"]
    assert difference.value == pytest.approx(cnn.scores()["roc_auc"] - hog.scores()["roc_auc"])
    boot_cnn, boot_hog = cnn.bootstrap(300), hog.bootstrap(300)
    assert boot_cnn.same_draws(boot_hog)
    by_hand = [cnn.scores(boot_cnn.images(p))["roc_auc"] - hog.scores(boot_hog.images(p))["roc_auc"]
               for p in boot_cnn._picks]
    assert min(by_hand) <= difference.low <= difference.high <= max(by_hand)
    assert difference.low > 0  # the skilled run is told apart
    other = Holdout("classify", cnn.class_names, (HoldoutPart(
        "a" * 64, 0, np.repeat(sims + 1, 3), np.repeat(label, 3), np.zeros(48),
        np.repeat(label, 3), np.zeros(48), np.zeros(48)),))
    with pytest.raises(ValueError, match="same simulations"):
        paired_differences(cnn, other)
