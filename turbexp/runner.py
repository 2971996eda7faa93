"""Running an experiment: data, an Optuna study of nested MLflow trials, holdout and reports.

Trials are fitted on the train split and scored on the test split; the best
configuration is refitted on train + test and scored once on the holdout
split, which tuning never sees.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import matplotlib
import mlflow
import numpy as np
import optuna
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from turbexp import metrics, tracking, training
from turbexp.campaign import PlannedSimulation, run_campaign
from turbexp.errors import UserError
from turbexp.evaluation import Probe
from turbexp.experiment import ExperimentPlan
from turbexp.images import ImageSet, images_from_maps, images_per_simulation, split_simulations
from turbexp.paths import optuna_storage
from turbexp.plugin_types import PluginParams, ReportContext
from turbexp.progress import console, progress_bar, step
from turbexp.store import SimulationStore

matplotlib.use("Agg")

HOLDOUT_PREDICTIONS = "holdout/predictions.json"
"""Artifact of every experiment run: per holdout image its simulation (position in the
campaign), index, target, prediction and score, with the campaign hash and split seed
that identify the holdout set."""

# errors that fail one trial (a parameter set that does not fit the data) but not the study
TRIAL_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)


@dataclass
class RunSummary:
    experiment: str
    run_id: str
    metric: str
    holdout: float
    best_test: float
    trials: int


def build_image_set(plan: ExperimentPlan, store: SimulationStore) -> ImageSet:
    """Images, targets and the by-simulation split for an experiment.

    The split is drawn over every simulation the task uses, so a simulation
    that failed leaves a gap instead of moving the others between splits.
    """
    spec = plan.spec
    members = plan.members()
    try:
        parts = split_simulations([stratum for *_, stratum in members], spec.data.split)
    except ValueError as exc:
        raise plan.doc.error(str(exc), ("data", "split")) from None
    images, sims, index, target, split = [], [], [], [], []
    stored_metadata: dict[int, dict[str, Any]] = {}
    missing = 0
    for (position, sim, y, _), part in zip(members, parts, strict=True):
        if not store.has(sim.key):
            missing += 1
            continue
        stored = store.get(sim.key)
        stored_metadata[position] = stored.metadata
        block = images_from_maps(np.log10(stored.column_density), spec.data.images)
        images.append(block)
        n = len(block)
        sims.append(np.full(n, position))
        index.append(np.full(n, sim.request.index))
        target.append(np.full(n, y))
        split.append(np.full(n, part, dtype=np.int8))
    if missing:
        console.print(f"[yellow]warning:[/] {missing} simulation(s) of campaign "
                      f"{plan.campaign.spec.name!r} failed and are left out; "
                      "the next `turbexp run` or `turbexp sims run` retries them")
    if not images:
        raise UserError(f"no simulation of campaign {plan.campaign.spec.name!r} is available",
                        file=str(plan.path), field="data.campaign")
    data = ImageSet(np.concatenate(images), np.concatenate(sims), np.concatenate(index),
                    np.concatenate(target), np.concatenate(split), stored_metadata)
    for name in ("train", "test", "holdout"):
        if not data.part(name).any():
            raise UserError(f"no simulation of the {name} split is available; see the failed "
                            "simulations above", file=str(plan.path), field="data.split")
    return data


def class_scores(model: Any, features: np.ndarray) -> np.ndarray:
    """Score of class 1: its probability, else the decision value, else the predicted label."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(features)[:, 1]
    if hasattr(model, "decision_function"):
        return model.decision_function(features)
    return np.asarray(model.predict(features), dtype=np.float64)


class FeatureCache:
    """Features per feature-parameter set, fitted on one split and applied to another."""

    def __init__(self, plan: ExperimentPlan, data: ImageSet, size: int = 4) -> None:
        self.plan, self.data, self.size = plan, data, size
        self._entries: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, params: PluginParams, fit_on: tuple[str, ...],
            apply_to: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        key = json.dumps([params.model_dump(mode="json"), fit_on, apply_to], sort_keys=True)
        if key not in self._entries:
            transformer = self.plan.features.plugin.create().build(params)
            fit_images = self.data.images[self.data.part(*fit_on)]
            fitted = transformer.fit(fit_images, self.data.target[self.data.part(*fit_on)])
            self._entries[key] = (fitted.transform(fit_images),
                                  fitted.transform(self.data.images[self.data.part(*apply_to)]))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return self._entries[key]


def _logged_params(section: str, params: PluginParams) -> dict[str, Any]:
    return {f"{section}.{k}": v for k, v in params.model_dump(mode="json").items()}


def run_experiment(plan: ExperimentPlan, store: SimulationStore, *, jobs: int | None = None,
                   show_progress: bool = True) -> RunSummary:
    """Run one validated experiment end to end; returns its headline numbers."""
    spec = plan.spec
    run_campaign(plan.campaign, store, jobs=jobs, show_progress=show_progress)
    data = build_image_set(plan, store)
    task, metric, study_name = spec.task.kind, plan.metric, plan.study_name
    y = data.target

    experiment_id = tracking.use_experiment()
    tracking.close_stale_runs(experiment_id, study_name)
    plugins = [plan.features.plugin, plan.estimator.plugin, plan.campaign.simulator,
               *(r.plugin for r in plan.reports)]
    tags = {
        tracking.ROLE: "experiment",
        f"{tracking.TAG}.experiment": spec.name,
        f"{tracking.TAG}.experiment_file": str(plan.path),
        f"{tracking.TAG}.study": study_name,
        f"{tracking.TAG}.campaign": plan.campaign.spec.name,
        f"{tracking.TAG}.campaign_hash": plan.campaign.content_hash,
        f"{tracking.TAG}.spec_hash": plan.spec_hash,
        f"{tracking.TAG}.git_commit": tracking.git_commit(plan.path.parent),
        f"{tracking.TAG}.plugins": tracking.plugin_versions(plugins),
        f"{tracking.TAG}.headline_metric": f"holdout_{metric}",
        **tracking.process_tags(),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with mlflow.start_run(run_name=spec.name, tags=tags) as parent:
        mlflow.log_text(plan.doc.path.read_text(), "spec/experiment.yaml")
        mlflow.log_text(plan.campaign.path.read_text(), "spec/campaign.yaml")
        mlflow.log_params({
            "task": task,
            "metric": metric,
            "campaign": plan.campaign.spec.name,
            "campaign.preset": plan.campaign.spec.preset,
            "campaign.grid": plan.campaign.spec.grid,
            "campaign.time_myr": plan.campaign.spec.physics.time_myr,
            "images.size": spec.data.images.size,
            "images.per_simulation": images_per_simulation(spec.data.images),
            "split.seed": spec.data.split.seed,
            "n_simulations": len(np.unique(data.simulation)),
            **{f"n_images.{name}": int(data.part(name).sum())
               for name in ("train", "test", "holdout")},
            "features": plan.features.plugin.name,
            "estimator": plan.estimator.plugin.name,
        })

        best, completed, pruned = _tune(plan, data, show_progress)
        fparams = plan.features.sample(best)
        eparams = plan.estimator.sample(best)
        mlflow.log_params({**_logged_params("features", fparams),
                           **_logged_params("estimator", eparams)})
        mlflow.log_metrics({f"best_test_{metric}": best.value,
                            "trials_completed": completed, "trials_pruned": pruned})

        holdout = data.part("holdout")
        fit = data.part("train", "test")
        transformer = plan.features.plugin.create().build(fparams)
        estimator = plan.estimator.plugin.create().build(eparams, task)
        pipeline = Pipeline([("features", transformer), ("estimator", estimator)])
        reporter = training.EpochReporter()
        with step(f"{spec.name}: refitting the best configuration on train + test",
                  enabled=show_progress), \
                training.fitting(training.FitContext(reporter, groups=data.simulation[fit],
                                                     metadata=data.metadata_of(fit))):
            pipeline.fit(data.images[fit], y[fit])
        reporter.log_learning_curve()
        x_hold = pipeline.named_steps["features"].transform(data.images[holdout])
        fitted = pipeline.named_steps["estimator"]
        y_pred, y_score = _predict(task, fitted, x_hold)
        holdout_scores = metrics.score(task, y[holdout], y_pred, y_score)
        mlflow.log_metrics({f"holdout_{k}": v for k, v in holdout_scores.items()})
        mlflow.log_dict({
            "task": task,
            "class_names": list(spec.task.classes or {}),
            "campaign_hash": plan.campaign.content_hash,
            "split_seed": spec.data.split.seed,
            "simulation": data.simulation[holdout].tolist(),
            "index": data.index[holdout].tolist(),
            "y_true": y[holdout].tolist(),
            "y_pred": np.asarray(y_pred).tolist(),
            "score": np.asarray(y_score, dtype=np.float64).tolist(),
        }, HOLDOUT_PREDICTIONS)

        context = ReportContext(
            task=task,
            class_names=list(spec.task.classes or {}),
            y_true=y[holdout],
            y_pred=y_pred,
            score=y_score,
            features=np.asarray(x_hold),
            index=data.index[holdout],
            seed=spec.tune.seed,
            images=data.images[holdout],
            model=pipeline,
            metadata=data.metadata_of(holdout),
            probe=Probe(plan, store, pipeline, _splits(plan, data), jobs=jobs,
                        show_progress=show_progress),
        )
        _log_reports(plan, context, show_progress)
        with step(f"{spec.name}: logging the model", enabled=show_progress):
            _log_model(plan, pipeline, data.images[holdout][:4])
        console.print(f"[green]✓[/] {spec.name}: holdout {metric} = "
                      f"{holdout_scores[metric]:.4g} (best test {best.value:.4g}, "
                      f"{completed} trials) run {parent.info.run_id}")
        return RunSummary(spec.name, parent.info.run_id, metric, holdout_scores[metric],
                          float(best.value), completed)


def _splits(plan: ExperimentPlan, data: ImageSet) -> dict[str, list[PlannedSimulation]]:
    """The simulations of each split, as the image set assigns them."""
    sims = plan.campaign.simulations
    return {name: [sims[int(p)] for p in np.unique(data.simulation[data.part(name)])]
            for name in ("train", "test", "holdout")}


def _tune(plan: ExperimentPlan, data: ImageSet,
          show_progress: bool) -> tuple[optuna.trial.FrozenTrial, int, int]:
    """Run the trials still missing from the experiment's study, each a nested MLflow run
    fitted on train and scored on test; returns the best trial and the numbers of completed
    and pruned trials.

    An estimator that trains in epochs reports them through :mod:`turbexp.training`: each
    epoch is logged on the trial's run and scored on test for the study's pruner, and a
    pruned trial ends as PRUNED; it counts towards ``tune.trials`` like a completed one.
    """
    spec, task, metric, study_name = plan.spec, plan.spec.task.kind, plan.metric, plan.study_name
    cache = FeatureCache(plan, data)
    y, train, test = data.target, data.part("train"), data.part("test")

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        try:
            fparams = plan.features.sample(trial)
            eparams = plan.estimator.sample(trial)
        except TRIAL_ERRORS as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        with mlflow.start_run(run_name=f"{spec.name} trial {trial.number}", nested=True,
                              tags={tracking.ROLE: "trial",
                                    f"{tracking.TAG}.study": study_name,
                                    f"{tracking.TAG}.experiment": spec.name,
                                    f"{tracking.TAG}.trial": str(trial.number),
                                    **tracking.process_tags()}):
            mlflow.log_params({**_logged_params("features", fparams),
                               **_logged_params("estimator", eparams)})
            # each epoch is scored in the study's metric on test, which is the validation data
            reporter = training.EpochReporter(trial, objective=(
                f"val_{metric}", lambda m: _score(task, m, x_test, y[test])[metric]))
            try:
                x_train, x_test = cache.get(fparams, ("train",), ("test",))
                model = plan.estimator.plugin.create().build(eparams, task)
                context = training.FitContext(
                    reporter, validation=(x_test, y[test]), groups=data.simulation[train],
                    metadata=data.metadata_of(train), validation_metadata=data.metadata_of(test),
                    tuning=True)
                with training.fitting(context):
                    model.fit(x_train, y[train])
                scores = _score(task, model, x_test, y[test])
            except TRIAL_ERRORS as exc:
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                raise
            except optuna.TrialPruned:
                mlflow.set_tag(f"{tracking.TAG}.pruned", f"epoch {reporter.epochs}")
                raise
            finally:
                reporter.log_learning_curve()
            mlflow.log_metrics({f"test_{k}": v for k, v in scores.items()})
            return scores[metric]

    storage = optuna_storage(spec.tune.storage)
    study = optuna.create_study(
        study_name=study_name, storage=storage, load_if_exists=True,
        direction=plan.direction, sampler=optuna.samplers.TPESampler(seed=spec.tune.seed),
    )
    _fail_orphaned_trials(study)
    worker = f"worker:{socket.gethostname()}:{os.getpid()}"
    study.set_user_attr(worker, True)
    wanted = spec.tune.trials if (plan.features.space or plan.estimator.space) else 1
    done = sum(t.state.is_finished() and _counts(t) for t in study.get_trials(deepcopy=False))
    failures = 0
    with progress_bar(f"{spec.name}: trials", total=wanted, completed=min(done, wanted),
                      enabled=show_progress) as bar:
        while sum(_counts(t) for t in study.get_trials(deepcopy=False)) < wanted:
            trial = study.ask()
            # another worker may have asked at the same moment: the lower numbers win
            earlier = sum(_counts(t) for t in study.get_trials(deepcopy=False)
                          if t.number < trial.number)
            if earlier >= wanted:
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                break
            try:
                value = objective(trial)
            except TRIAL_ERRORS:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                failures += 1
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            except BaseException:
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            else:
                study.tell(trial, value)
            bar.advance(failed=failures)
    study.set_user_attr(worker, False)
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        errors = sorted({t.user_attrs.get("error", "unknown error") for t in study.trials})
        raise UserError(f"every trial of {spec.name!r} failed: {'; '.join(errors)}",
                        file=str(plan.path))
    n_pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return study.best_trial, len(completed), n_pruned


def _counts(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial counts towards ``tune.trials``: running or finished, but not one a
    killed process interrupted nor one asked for beyond the budget by a concurrent worker."""
    return not (trial.user_attrs.get("interrupted") or trial.user_attrs.get("surplus"))


def _fail_orphaned_trials(study: optuna.Study) -> None:
    """Trials left RUNNING by a killed process are marked FAIL and ``interrupted``; they do
    not count towards the trials asked for, so a rerun makes up for them.

    A trial names its process in its user attributes; one killed before it could is an
    orphan when no process registered as a worker of the study is still alive.
    """
    workers = [key.removeprefix("worker:").rpartition(":")[::2]
               for key, active in study.user_attrs.items()
               if key.startswith("worker:") and active]
    any_worker_alive = any(not tracking.process_gone(host, pid) for host, pid in workers)
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        host, pid = trial.user_attrs.get("host"), trial.user_attrs.get("pid")
        orphan = tracking.process_gone(host, pid) if host else not any_worker_alive
        if orphan:
            study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def _predict(task: str, model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions, and the score the metrics rank by (class-1 score, or the prediction)."""
    y_pred = model.predict(x)
    return y_pred, class_scores(model, x) if task == "classify" else y_pred


def _score(task: str, model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return metrics.score(task, y, *_predict(task, model, x))


def _log_reports(plan: ExperimentPlan, context: ReportContext, show_progress: bool) -> None:
    import matplotlib.pyplot as plt

    for report in plan.reports:
        with step(f"{plan.spec.name}: report {report.plugin.name}", enabled=show_progress):
            output = report.plugin.create().render(context, report.params)
        for name, figure in output.figures.items():
            mlflow.log_figure(figure, f"reports/{name}")
            plt.close(figure)
        if output.metrics:
            mlflow.log_metrics(output.metrics)


def _plugin_types(model: Any) -> list[str]:
    """Qualified names of the non-scikit-learn classes in a model, for skops to trust."""
    found: set[str] = set()
    objects = [model, *model.get_params(deep=True).values()] if hasattr(model, "get_params") \
        else [model]
    for obj in objects:
        cls = type(obj)
        if hasattr(obj, "get_params") and not cls.__module__.startswith("sklearn."):
            found.add(f"{cls.__module__}.{cls.__qualname__}")
    return sorted(found)


def _log_model(plan: ExperimentPlan, pipeline: Pipeline, example: np.ndarray) -> None:
    import sklearn

    plugins = (plan.features.plugin, plan.estimator.plugin)
    packages = {p.package: p.version for p in plugins if p.package != "?"}
    extra = sorted({r for p in plugins for r in p.create().requirements()})
    requirements = [f"scikit-learn=={sklearn.__version__}",
                    *(f"{name}=={version}" for name, version in sorted(packages.items())),
                    *extra]
    signature = infer_signature(example, pipeline.predict(example))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            serialization_format="skops",
            skops_trusted_types=_plugin_types(pipeline),
        )
    mlflow.set_tag(f"{tracking.TAG}.classes", json.dumps(list(plan.spec.task.classes or {})))
