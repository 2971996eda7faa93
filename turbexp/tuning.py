"""The Optuna side of an experiment: a sampler that repeats itself, and which trials count.

Optuna's TPE sampler draws from one random state per process, so a study resumed
in a new process (or shared by two) would draw the first trials' parameters again.
:class:`TrialSeededSampler` gives each trial a TPE sampler of its own, seeded by
the study's seed and the trial's place in the trial budget: a study killed and
resumed, or one never interrupted, asks the same parameters in the same order.
It draws a trial's whole configuration at once and never one a counted trial of
the study already has, until the space is exhausted; :func:`ask` discards the
rare configuration two concurrent workers drew at the same moment.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, TPESampler
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from turbexp import interrupt, metrics, tracking, training
from turbexp.errors import UserError
from turbexp.paths import optuna_storage
from turbexp.plugin_types import PluginParams
from turbexp.progress import console, progress_bar

if TYPE_CHECKING:
    from turbexp.experiment import ExperimentPlan
    from turbexp.images import ImageSet

# errors that fail one trial (a parameter set that does not fit the data) but not the study
TRIAL_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError)


def counts(trial: FrozenTrial) -> bool:
    """Whether a trial counts towards ``tune.trials``: running or finished, but not one a
    killed process interrupted, nor one asked for beyond the budget or drawing another's
    configuration at the same moment by a concurrent worker."""
    attrs = trial.user_attrs
    return not (attrs.get("interrupted") or attrs.get("surplus") or attrs.get("duplicate"))


def place(study: optuna.Study, number: int) -> int:
    """Trial ``number``'s place in the budget: the trials before it that count."""
    return sum(counts(t) for t in study.get_trials(deepcopy=False) if t.number < number)


def configuration(params: dict[str, Any]) -> str:
    """A configuration as a comparable key."""
    return json.dumps(params, sort_keys=True, default=str)


def tried(study: optuna.Study, space: dict[str, BaseDistribution],
          but: int | None = None) -> set[str]:
    """The configurations of the trials that count (those still running included), but
    trial ``but``'s."""
    return {configuration(t.params) for t in study.get_trials(deepcopy=False)
            if counts(t) and t.number != but and t.params.keys() == space.keys()}


GRID_LIMIT = 100_000  # a finite space with more configurations is treated as unbounded


def grid(space: dict[str, BaseDistribution]) -> list[dict[str, Any]] | None:
    """Every configuration of a finite space, or None for a continuous or huge one."""
    axes: list[list[Any]] = []
    for dist in space.values():
        if isinstance(dist, CategoricalDistribution):
            axes.append(list(dist.choices))
        elif isinstance(dist, IntDistribution):
            axes.append(list(range(dist.low, dist.high + 1, dist.step)))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            n = round((dist.high - dist.low) / dist.step) + 1
            axes.append([min(dist.low + i * dist.step, dist.high) for i in range(n)])  # as Optuna
        else:
            return None
        if math.prod(len(axis) for axis in axes) > GRID_LIMIT:
            return None
    return [dict(zip(space, values, strict=True)) for values in itertools.product(*axes)]


class TrialSeededSampler(BaseSampler):
    """TPE, with the random state of each trial drawn from ``(seed, its place)``; a trial
    draws its configuration again (``attempts`` times, then from the untried rest of a
    finite space) while a counted trial of the study already has it."""

    def __init__(self, seed: int, space: dict[str, BaseDistribution] | None = None,
                 attempts: int = 32) -> None:
        self.seed, self.space, self.attempts = seed, dict(space or {}), attempts

    def _state(self, study: optuna.Study, trial: FrozenTrial, attempt: int) -> int:
        key = [self.seed, place(study, trial.number)] + ([attempt] if attempt else [])
        return int(np.random.SeedSequence(key).generate_state(1)[0])

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        seen = tried(study, search_space, but=trial.number)
        for attempt in range(self.attempts):
            tpe = TPESampler(seed=self._state(study, trial, attempt))
            params = {name: tpe.sample_independent(study, trial, name, dist)
                      for name, dist in search_space.items()}
            if configuration(params) not in seen:
                return params
        untried = [c for c in grid(search_space) or [] if configuration(c) not in seen]
        if untried:
            rng = np.random.default_rng(self._state(study, trial, self.attempts))
            return untried[int(rng.integers(len(untried)))]
        return params  # every configuration tried (or a continuous space's bad luck)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # a parameter outside the declared space: seeded the same way, not deduplicated
        tpe = TPESampler(seed=self._state(study, trial, 0))
        return tpe.sample_independent(study, trial, param_name, param_distribution)


def ask(study: optuna.Study, space: dict[str, BaseDistribution]) -> optuna.Trial | None:
    """A new trial with its whole configuration drawn, or None (the trial discarded, marked
    ``duplicate``) when a concurrent worker's counted trial drew the same one meanwhile and
    the space is not exhausted. Of two such trials at least one is discarded."""
    trial = study.ask(fixed_distributions=space)
    if not space or configuration(trial.params) not in tried(study, space, but=trial.number):
        return trial
    options = grid(space)
    if options is not None and {configuration(c) for c in options} <= tried(study, space):
        return trial
    trial.set_user_attr("duplicate", True)
    study.tell(trial, state=TrialState.FAIL)
    return None


def next_trial(study: optuna.Study, space: dict[str, BaseDistribution],
               wanted: int) -> optuna.Trial | None:
    """The next trial of a budget of ``wanted`` shared with any concurrent worker, its
    configuration drawn (:func:`ask`); None once the budget is met. Of two workers asking
    for the last place at the same moment the lower trial number wins; the other trial is
    marked ``surplus``, failed, and not counted."""
    while sum(counts(t) for t in study.get_trials(deepcopy=False)) < wanted:
        trial = ask(study, space)
        if trial is None:
            continue
        if place(study, trial.number) >= wanted:
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            return None
        return trial
    return None


def fail_orphaned_trials(study: optuna.Study, storage: BaseStorage) -> None:
    """Trials left RUNNING by a killed process are marked FAIL and ``interrupted``; they do
    not count towards the trials asked for, so a rerun makes up for them.

    A trial names its process in its user attributes; one killed before it had written all
    three (host, pid, start time) is an orphan when no process registered as a worker of the
    study is still alive.
    """
    workers = [_worker_process(key) for key, active in study.user_attrs.items()
               if key.startswith("worker:") and active]
    any_worker_alive = any(not tracking.process_gone(*worker) for worker in workers)
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        # the attributes are written one by one: a process killed between them left some
        named = attrs.get("host") and attrs.get("pid") and "started" in attrs
        orphan = tracking.process_gone(attrs["host"], attrs["pid"], attrs["started"]) \
            if named else not any_worker_alive
        if orphan:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
            storage.set_trial_user_attr(trial_id, "interrupted", True)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)


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


def _score(task: str, model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return metrics.score(task, y, *metrics.predict_scored(task, model, x))


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
                training.fit(model, x_train, y[train], context)
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
    space = {**features.distributions(), **estimator.distributions()}
    storage = optuna_storage(spec.tune.storage)
    study = optuna.create_study(
        study_name=study_name, storage=storage, load_if_exists=True,
        direction=plan.direction, sampler=TrialSeededSampler(spec.tune.seed, space),
    )
    fail_orphaned_trials(study, storage)
    worker = _worker_key()
    study.set_user_attr(worker, True)
    wanted = spec.tune.trials if plan.tuned else 1
    found = finished_count(study)
    failures = 0
    if 0 < found < wanted:
        console.print(f"resuming study {study_name} at trial {found + 1} of {wanted} "
                      f"({found} finished before)", soft_wrap=True, highlight=False)
    with progress_bar(f"{spec.name}: trials", total=wanted, completed=min(found, wanted),
                      enabled=show_progress) as bar:
        bar.advance(0, note=_best(study, metric))
        while True:
            interrupt.check()
            trial = next_trial(study, space, wanted)
            if trial is None:
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
            bar.advance(failed=failures, note=_best(study, metric))
    study.set_user_attr(worker, False)
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not completed:
        errors = sorted({t.user_attrs.get("error", "unknown error") for t in study.trials})
        raise UserError(f"every trial of {spec.name!r} failed: {'; '.join(errors)}",
                        file=str(plan.path))
    n_pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    return Tuned(study.best_trial, len(completed), n_pruned, found, wanted)


def _best(study: optuna.Study, metric: str) -> str:
    """The best test score so far, for the progress bar ("" before any trial completes)."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return ""
    return f"best test {metric} {study.best_value:.4g}"


def study_progress(plan: ExperimentPlan) -> tuple[int, int]:
    """(finished trials that count, trials wanted) of the experiment's study, as stored."""
    wanted = plan.spec.tune.trials if plan.tuned else 1
    storage = optuna_storage(plan.spec.tune.storage)
    try:
        study = optuna.load_study(study_name=plan.study_name, storage=storage)
    except KeyError:
        return 0, wanted
    return finished_count(study), wanted
