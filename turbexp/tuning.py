"""The Optuna side of an experiment: a sampler that repeats itself, and which trials count.

Optuna's TPE sampler draws from one random state per process, so a study resumed
in a new process (or shared by two) would draw the first trials' parameters again.
:class:`TrialSeededSampler` gives each trial a TPE sampler of its own, seeded by
the study's seed and the trial's place in the trial budget: a study killed and
resumed, or one never interrupted, asks the same parameters in the same order.
"""

from __future__ import annotations

import json
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from turbexp import interrupt, metrics, tracking, training
from turbexp.errors import UserError
from turbexp.paths import optuna_storage
from turbexp.plugin_types import PluginParams
from turbexp.progress import progress_bar

if TYPE_CHECKING:
    from turbexp.experiment import ExperimentPlan
    from turbexp.images import ImageSet

# errors that fail one trial (a parameter set that does not fit the data) but not the study
TRIAL_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards ``tune.trials``: running or finished, but not one a
    killed process interrupted nor one asked for beyond the budget by a concurrent worker."""
    return not (trial.user_attrs.get("interrupted") or trial.user_attrs.get("surplus"))


def place(study: optuna.Study, number: int) -> int:
    """Trial ``number``'s place in the budget: the trials before it that count."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False) if t.number < number)


class TrialSeededSampler(BaseSampler):
    """TPE, with the random state of each trial drawn from ``(seed, its place)``."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._samplers: dict[int, TPESampler] = {}

    def _of(self, trial: FrozenTrial) -> TPESampler:
        return self._samplers[trial.number]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        state = np.random.SeedSequence([self.seed, place(study, trial.number)]).generate_state(1)[0]
        sampler = self._samplers[trial.number] = TPESampler(seed=int(state))
        sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._of(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._of(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._of(trial).sample_independent(study, trial, param_name,
                                                   param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        sampler = self._samplers.pop(trial.number, None)
        if sampler is not None:
            sampler.after_trial(study, trial, state, values)


def fail_orphaned_trials(study: optuna.Study) -> None:
    """Trials left RUNNING by a killed process are marked FAIL and ``interrupted``; they do
    not count towards the trials asked for, so a rerun makes up for them.

    A trial names its process in its user attributes; one killed before it could is an
    orphan when no process registered as a worker of the study is still alive.
    """
    workers = [_worker_process(key) for key, active in study.user_attrs.items()
               if key.startswith("worker:") and active]
    any_worker_alive = any(not tracking.process_gone(*worker) for worker in workers)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        orphan = tracking.process_gone(attrs["host"], attrs.get("pid"), attrs.get("started")) \
            if attrs.get("host") else not any_worker_alive
        if orphan:
            study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def _worker_key() -> str:
    """This process as a worker of a study: ``worker:HOST:PID:STARTED``."""
    pid = os.getpid()
    return f"worker:{socket.gethostname()}:{pid}:{tracking.process_start(pid) or ''}"


def _worker_process(key: str) -> tuple[str, str, str]:
    """(host, pid, started) of a worker key (keys without a start time: an empty one)."""
    host, pid, *started = key.removeprefix("worker:").split(":")
    return host, pid, started[0] if started else ""


def finished_count(study: optuna.Study) -> int:
    """Finished trials that count towards the budget."""
    return sum(t.state.is_finished() and counts(t) for t in study.get_trials(deepcopy=False))


@dataclass(frozen=True)
class Tuned:
    """The outcome of an experiment's study."""

    best: FrozenTrial
    completed: int
    pruned: int
    found: int  # trials that counted and had finished before this process started
    wanted: int


def class_scores(model: Any, features: np.ndarray) -> np.ndarray:
    """Score of class 1: its probability, else the decision value, else the predicted label."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(features)[:, 1]
    if hasattr(model, "decision_function"):
        return model.decision_function(features)
    return np.asarray(model.predict(features), dtype=np.float64)


def predict(task: str, model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions, and the score the metrics rank by (class-1 score, or the prediction)."""
    y_pred = model.predict(x)
    return y_pred, class_scores(model, x) if task == "classify" else y_pred


def _score(task: str, model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return metrics.score(task, y, *predict(task, model, x))


def logged_params(section: str, params: PluginParams) -> dict[str, Any]:
    return {f"{section}.{k}": v for k, v in params.model_dump(mode="json").items()}


class FeatureCache:
    """Features per feature-parameter set, fitted on one split and applied to another."""

    def __init__(self, plan: ExperimentPlan, data: ImageSet, size: int = 4) -> None:
        self.plan, self.data, self.size = plan, data, size
        self._entries: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, params: PluginParams, fit_on: tuple[str, ...],
            apply_to: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        key = json.dumps([params.model_dump(mode="json"), fit_on, apply_to], sort_keys=True)
        if key not in self._entries:
            assert self.plan.features is not None
            transformer = self.plan.features.plugin.create().build(params)
            fit_images = self.data.images[self.data.part(*fit_on)]
            fitted = transformer.fit(fit_images, self.data.target[self.data.part(*fit_on)])
            self._entries[key] = (fitted.transform(fit_images),
                                  fitted.transform(self.data.images[self.data.part(*apply_to)]))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return self._entries[key]


def tune(plan: ExperimentPlan, data: ImageSet, show_progress: bool) -> Tuned:
    """Run the trials still missing from the experiment's study, each a nested MLflow run
    fitted on train and scored on test.

    An estimator that trains in epochs reports them through :mod:`turbexp.training`: each
    epoch is logged on the trial's run and scored on test for the study's pruner, and a
    pruned trial ends as PRUNED; it counts towards ``tune.trials`` like a completed one.
    """
    spec, task, metric, study_name = plan.spec, plan.spec.task.kind, plan.metric, plan.study_name
    assert plan.features is not None and plan.estimator is not None
    features, estimator = plan.features, plan.estimator
    cache = FeatureCache(plan, data)
    y, train, test = data.target, data.part("train"), data.part("test")

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("started", tracking.process_start(os.getpid()) or "")
        try:
            fparams = features.sample(trial)
            eparams = estimator.sample(trial)
        except TRIAL_ERRORS as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        with tracking.tracked_run(f"{spec.name} trial {trial.number}", nested=True, tags={
                tracking.ROLE: "trial", f"{tracking.TAG}.study": study_name,
                f"{tracking.TAG}.experiment": spec.name,
                f"{tracking.TAG}.trial": str(trial.number), **tracking.process_tags()}):
            mlflow.log_params({**logged_params("features", fparams),
                               **logged_params("estimator", eparams)})
            # each epoch is scored in the study's metric on test, which is the validation data
            reporter = training.EpochReporter(trial, objective=(
                f"val_{metric}", lambda m: _score(task, m, x_test, y[test])[metric]))
            try:
                x_train, x_test = cache.get(fparams, ("train",), ("test",))
                model = estimator.plugin.create().build(eparams, task)
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

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name, storage=optuna_storage(spec.tune.storage), load_if_exists=True,
        direction=plan.direction, sampler=TrialSeededSampler(spec.tune.seed),
    )
    fail_orphaned_trials(study)
    worker = _worker_key()
    study.set_user_attr(worker, True)
    wanted = spec.tune.trials if plan.tuned else 1
    found = finished_count(study)
    failures = 0
    with progress_bar(f"{spec.name}: trials", total=wanted, completed=min(found, wanted),
                      enabled=show_progress) as bar:
        while sum(counts(t) for t in study.get_trials(deepcopy=False)) < wanted:
            interrupt.check()
            trial = study.ask()
            # another worker may have asked at the same moment: the lower numbers win
            if place(study, trial.number) >= wanted:
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=TrialState.FAIL)
                break
            try:
                value = objective(trial)
            except TRIAL_ERRORS:
                study.tell(trial, state=TrialState.FAIL)
                failures += 1
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
            except BaseException:
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
                raise
            else:
                study.tell(trial, value)
            bar.advance(failed=failures)
    study.set_user_attr(worker, False)
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not completed:
        errors = sorted({t.user_attrs.get("error", "unknown error") for t in study.trials})
        raise UserError(f"every trial of {spec.name!r} failed: {'; '.join(errors)}",
                        file=str(plan.path))
    n_pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    return Tuned(study.best_trial, len(completed), n_pruned, found, wanted)


def study_progress(plan: ExperimentPlan) -> tuple[int, int]:
    """(finished trials that count, trials wanted) of the experiment's study, as stored."""
    wanted = plan.spec.tune.trials if plan.tuned else 1
    storage = optuna_storage(plan.spec.tune.storage)
    try:
        study = optuna.load_study(study_name=plan.study_name, storage=storage)
    except KeyError:
        return 0, wanted
    return finished_count(study), wanted
