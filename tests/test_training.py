"""Epoch reporting: MLflow metric histories, Optuna pruning, and the runner's pruned trials.

None of this needs a deep-learning framework: a toy estimator reports its epochs.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from conftest import fake_distribution, write
from mlflow.tracking import MlflowClient
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from turbexp import training
from turbexp.experiment import plan_experiment
from turbexp.paths import cache_dir, optuna_storage
from turbexp.plugins import registry
from turbexp.runner import run_experiment
from turbexp.store import SimulationStore

EPOCH_MEAN = '''
import itertools

import numpy as np
from pydantic import Field
from sklearn.base import BaseEstimator, RegressorMixin

from turbexp import hookimpl
from turbexp.plugin_types import Estimator, PluginParams, Range

FITS = itertools.count()


class EpochMean(RegressorMixin, BaseEstimator):
    """Predicts the training mean; from its sixth fit on, 10 too high."""

    __metadata_request__fit = {"fit_context": True}

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, X, y, fit_context=None):
        self.offset_ = 0.0 if next(FITS) < 5 else 10.0
        self.mean_ = float(np.mean(y))
        for epoch in range(1, 4):
            fit_context.report(epoch, {"train_loss": 1.0 / epoch}, self)
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_ + self.offset_ + self.shift)


class EpochMeanPlugin(Estimator):
    name = "epoch_mean"
    tasks = frozenset({"regress"})

    class Params(PluginParams):
        shift: float = Field(0.0, ge=-1, le=1)

    search_space = {"shift": Range(-0.01, 0.01)}

    def build(self, params, task):
        return EpochMean(params.shift)


@hookimpl
def register_estimators(register):
    register(EpochMeanPlugin)
'''

SPREAD = """
name: spread
grid: 16
seed: 6
groups:
  - {index: {low: 3.0, high: 4.5}, count: 8}
"""

PRUNED = """
name: pruned
data:
  campaign: ../sims/spread.yaml
  images: {size: 16, cuts: 1, flips: 2}
  split: {train: 0.5, test: 0.25, holdout: 0.25, seed: 0}
task: {kind: regress}
features: {plugin: hog, orientations: 4, cells: 2}
estimator: {plugin: epoch_mean, shift: {low: -0.01, high: 0.01}}
tune: {trials: 7, seed: 0, defaults: false}
evaluate:
  reports: []
"""


class Recorder(RegressorMixin, BaseEstimator):
    """Keeps the fit context it was given."""

    __metadata_request__fit = {"fit_context": True}

    def fit(self, X, y, fit_context=None):
        self.context_ = fit_context
        return self


def test_the_context_is_routed_to_the_parts_that_request_it() -> None:
    x, y = np.ones((6, 2)), np.arange(6.0)
    context = training.FitContext(tuning=True, groups=np.arange(6))
    pipeline = Pipeline([("scale", StandardScaler()), ("estimator", Recorder())])
    assert training.fit(pipeline, x, y, context) is pipeline
    assert pipeline[-1].context_ is context
    assert training.fit(Recorder(), x, y, context).context_ is context
    # a model no part of which requests it is fitted as usual
    plain = training.fit(Pipeline([("scale", StandardScaler()), ("svr", SVR())]), x, y, context)
    assert plain[-1].support_.size > 0
    assert Recorder().fit(x, y).context_ is None  # outside turbexp: no context
    training.FitContext().report(1, {"loss": 1.0})  # no reporter: nothing happens


def test_reporter_logs_histories_and_a_learning_curve(workdir: Path) -> None:
    reporter = training.EpochReporter(objective=("val_score", lambda model: model["score"]))
    model = {"score": 0.0}
    mlflow.set_experiment("reporter")
    with mlflow.start_run() as run:
        for epoch in (1, 2, 3):
            model["score"] = epoch / 10
            reporter.report(epoch, {"train_loss": 1.0 / epoch, "val_loss": 2.0 / epoch}, model)
        assert reporter.log_learning_curve()
    client = MlflowClient()
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "val_score")] == \
        pytest.approx([0.1, 0.2, 0.3])
    assert reporter.epochs == 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "training")}
    assert artifacts == {"training/learning_curve.png"}
    fig = reporter.learning_curve()
    assert [len(ax.lines) for ax in fig.axes] == [2, 1]  # losses, then the score


def test_reporter_prunes_a_trial_that_falls_behind() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(
        n_startup_trials=1, n_warmup_steps=0))
    good = study.ask()
    reporter = training.EpochReporter(good, objective=("val_auc", lambda m: 0.9), log=False)
    for epoch in (1, 2):
        reporter.report(epoch, {}, object())
    study.tell(good, 0.9)

    bad = study.ask()
    reporter = training.EpochReporter(bad, objective=("val_auc", lambda m: 0.2), log=False)
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        reporter.report(1, {"train_loss": 0.7}, object())
    assert bad.storage.get_trial(bad._trial_id).intermediate_values == {1: 0.2}


def test_runner_prunes_trials_and_counts_them(workdir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    site = workdir / "site"
    fake_distribution(site, "turbexp-epoch-mean", "epoch_mean", EPOCH_MEAN)
    monkeypatch.syspath_prepend(str(site))
    registry.cache_clear()
    write(workdir / "sims" / "spread.yaml", SPREAD)
    path = write(workdir / "experiments" / "pruned.yaml", PRUNED)
    plan = plan_experiment(path)
    summary = run_experiment(plan, SimulationStore(cache_dir()), show_progress=False)

    study = optuna.load_study(study_name=plan.study_name, storage=optuna_storage(None))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 5 + [optuna.trial.TrialState.PRUNED] * 2
    assert all(t.intermediate_values.keys() == {1} for t in study.trials[5:])
    assert summary.trials == 5

    client = MlflowClient()
    parent = client.get_run(summary.run_id)
    assert parent.data.metrics["trials_completed"] == 5
    assert parent.data.metrics["trials_pruned"] == 2
    assert [m.step for m in client.get_metric_history(summary.run_id, "train_loss")] == [1, 2, 3]
    trials = client.search_runs([parent.info.experiment_id],
                                filter_string="tags.`turbexp.role` = 'trial'")
    pruned = [t for t in trials if "turbexp.pruned" in t.data.tags]
    assert len(trials) == 7 and len(pruned) == 2
    assert {t.data.tags["turbexp.pruned"] for t in pruned} == {"epoch 1"}
    assert all("test_mse" not in t.data.metrics for t in pruned)
    complete = next(t for t in trials if "turbexp.pruned" not in t.data.tags)
    assert [m.step for m in client.get_metric_history(complete.info.run_id, "val_mse")] == \
        [1, 2, 3]
    assert "training/learning_curve.png" in {
        a.path for a in client.list_artifacts(complete.info.run_id, "training")}

    # a rerun finds the budget spent: pruned trials count as finished
    again = run_experiment(plan_experiment(path), SimulationStore(cache_dir()),
                           show_progress=False)
    assert again.trials == 5
    assert len(optuna.load_study(study_name=plan.study_name,
                                 storage=optuna_storage(None)).trials) == 7
