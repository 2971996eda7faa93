"""Running an experiment: data, an Optuna study of nested MLflow trials, holdout and reports.

Trials are fitted on the train split and scored on the test split; the best
configuration is refitted on train + test and scored once on the holdout
split, which tuning never sees. Every holdout metric is logged with its 95 %
interval from a bootstrap over holdout simulations (:mod:`turbexp.holdout`).

An experiment with ``repeats: K`` is one parent run with K nested repeat runs,
each a whole run on its own campaign seed, split seed and tuning seed; the
parent logs the mean over repeats with its interval and the spread across them.
An experiment with ``model: experiment:NAME`` trains nothing: it scores that
experiment's model on the same holdout and renders its own reports.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib
import mlflow
import numpy as np
from sklearn.pipeline import Pipeline

from turbexp import conformal, interrupt, metrics, tracking, training
from turbexp.calibration import TAG as CALIBRATION_TAG
from turbexp.calibration import MapCalibration
from turbexp.campaign import run_campaign
from turbexp.errors import UserError
from turbexp.evaluation import Probe
from turbexp.example_maps import ARTIFACT as EXAMPLE_MAPS
from turbexp.example_maps import example_maps
from turbexp.experiment import ExperimentPlan
from turbexp.holdout import PREDICTIONS, Holdout, HoldoutPart
from turbexp.image_set import build_image_set, splits
from turbexp.images import ImageSet, images_per_simulation
from turbexp.lineage import log_datasets
from turbexp.model_logging import log_model
from turbexp.paths import optuna_storage
from turbexp.plugin_types import ImageInputs, ReportContext
from turbexp.progress import console, step
from turbexp.reporting import log_reports
from turbexp.spec import Spread
from turbexp.store import SimulationStore
from turbexp.tuning import logged_params, study_progress, tune
from turbexp.uncertainty import Interval, SimulationBootstrap, with_interval

if TYPE_CHECKING:
    from mlflow.entities import Run

matplotlib.use("Agg")


@dataclass
class RunSummary:
    """The headline numbers of one experiment run."""

    experiment: str
    run_id: str
    metric: str
    holdout: Interval
    best_test: float | None  # None when the experiment trained no model of its own
    trials: int
    n_simulations: int
    n_images: int
    repeats: int = 1
    spread: float | None = None  # standard deviation of the metric across repeats
    model_uri: str | None = None  # the model it logged (None when it trained none)


@dataclass
class _Outcome:
    run_id: str
    holdout: Holdout
    scores: dict[str, Interval]
    best_test: float | None
    trials: int
    model_uri: str | None = None


def run_experiment(plan: ExperimentPlan, store: SimulationStore, *, jobs: int | None = None,
                   show_progress: bool = True) -> RunSummary:
    """Run one validated experiment end to end (every repeat); returns its headline numbers.

    Interrupted (Ctrl-C, SIGTERM), the runs in progress end KILLED and the terminal says
    how to resume; the rerun continues the study where it stopped and ends with the same
    trials, best configuration and holdout numbers as a run never interrupted.
    """
    if plan.spec.tune.storage and plan.spec.model is None:
        optuna_storage(plan.spec.tune.storage)  # one that cannot be reached fails no MLflow run
    experiment_id = tracking.use_experiment()
    try:
        if plan.spec.repeats == 1:
            outcome = _run_once(plan, store, experiment_id, jobs=jobs,
                                show_progress=show_progress)
            summary = _summary(plan, outcome)
        else:
            summary = _run_repeats(plan, store, experiment_id, jobs=jobs,
                                   show_progress=show_progress)
    except KeyboardInterrupt:
        _say_how_to_resume(plan)
        raise
    value = summary.holdout.text(4)
    spread = "" if summary.spread is None else \
        f", sd {summary.spread:.2g} over {summary.repeats} repeats"
    console.print(f"[green]✓[/] {plan.spec.name}: holdout {summary.metric} = {value}{spread} "
                  f"({summary.n_simulations} holdout simulations, {summary.n_images} images)",
                  soft_wrap=True)
    console.print(f"  run {summary.run_id}", soft_wrap=True, highlight=False)
    if summary.model_uri:
        console.print(f"  model {summary.model_uri} (turbexp predict {plan.spec.name} MAPS)",
                      soft_wrap=True, highlight=False)
    return summary


def _say_how_to_resume(plan: ExperimentPlan) -> None:
    repeats = [plan.repeated(r) for r in range(plan.spec.repeats)] if plan.spec.model is None \
        else []
    progress = [study_progress(p) for p in repeats]
    done = ", ".join(f"{d} of {w} trials" for d, w in progress) or "no trials"
    command = " ".join(["turbexp", *sys.argv[1:]]) if sys.argv[1:2] == ["run"] else \
        f"turbexp run {plan.path}"
    console.print(f"[yellow]interrupted:[/] {plan.spec.name} stopped with {done} done; its "
                  f"MLflow run is marked KILLED. `{command}` resumes it: finished trials are "
                  "kept and the result is the one an uninterrupted run gives.", soft_wrap=True)


def _summary(plan: ExperimentPlan, outcome: _Outcome) -> RunSummary:
    return RunSummary(plan.spec.name, outcome.run_id, plan.metric, outcome.scores[plan.metric],
                      outcome.best_test, outcome.trials, outcome.holdout.n_simulations,
                      outcome.holdout.n_images, model_uri=outcome.model_uri)


def _tags(plan: ExperimentPlan, role: str) -> dict[str, str]:
    spec = plan.spec
    plugins = [p.plugin for p in (plan.features, plan.estimator) if p is not None]
    plugins += [plan.campaign.simulator, *(r.plugin for r in plan.reports)]
    commit = tracking.git_commit(plan.path.parent)
    tags = {
        tracking.ROLE: role,
        f"{tracking.TAG}.experiment": spec.name,
        f"{tracking.TAG}.experiment_file": str(plan.path),
        f"{tracking.TAG}.study": plan.study_name,
        f"{tracking.TAG}.campaign": plan.campaign.spec.name,
        f"{tracking.TAG}.campaign_hash": plan.campaign.content_hash,
        f"{tracking.TAG}.data_hash": plan.data_hash,
        f"{tracking.TAG}.spec_hash": plan.spec_hash,
        f"{tracking.TAG}.git_commit": commit,
        f"{tracking.TAG}.plugins": tracking.plugin_versions(plugins),
        f"{tracking.TAG}.headline_metric": f"holdout_{plan.metric}",
        f"{tracking.TAG}.scale": plan.scale or "default",
        **tracking.process_tags(),
    }
    if commit != "unknown":  # MLflow's own tag: the UI shows it as the run's source version
        tags["mlflow.source.git.commit"] = commit.removesuffix("+dirty")
    if plan.overrides:
        tags[f"{tracking.TAG}.overrides"] = json.dumps(plan.overrides, sort_keys=True)
    return tags


def _described(value: float | Spread) -> float | str:
    """A campaign's physical value as a parameter: the number, or the range it is drawn from."""
    if isinstance(value, Spread):
        return f"uniform({value.low:g}, {value.high:g})"
    return value


def _listed(values: list[float] | list[int]) -> str:
    return ", ".join(f"{v:g}" for v in values) or "none"


def _log_spec(plan: ExperimentPlan, data: ImageSet | None) -> None:
    """The files as read, and the parameters that describe the data."""
    spec = plan.spec
    mlflow.log_text(plan.doc.path.read_text(), "spec/experiment.yaml")
    mlflow.log_text(plan.campaign.path.read_text(), "spec/campaign.yaml")
    mlflow.log_dict(spec.model_dump(mode="json"), "spec/experiment.resolved.json")
    params: dict[str, Any] = {
        "task": spec.task.kind,
        "metric": plan.metric,
        "campaign": plan.campaign.spec.name,
        "campaign.preset": plan.campaign.spec.preset,
        "campaign.grid": plan.campaign.spec.grid,
        "campaign.seed": plan.campaign.spec.seed,
        "campaign.time_myr": _described(plan.campaign.spec.physics.time_myr),
        "campaign.mach": _described(plan.campaign.spec.physics.mach),
        "images.size": spec.data.images.size,
        "images.per_simulation": images_per_simulation(spec.data.images)
        * spec.data.observation.views,
        "observation.beam_fwhm_pc": spec.data.observation.beam_fwhm_pc,
        "observation.noise": spec.data.observation.noise,
        "observation.augment_beams_pc": _listed(spec.data.observation.augment_beams_pc),
        "observation.augment_pixel_factors": _listed(
            spec.data.observation.augment_pixel_factors),
        "split.seed": spec.data.split.seed,
        "tune.seed": spec.tune.seed,
        "repeats": spec.repeats,
        "bootstrap.resamples": spec.evaluate.bootstrap.resamples,
        "bootstrap.seed": spec.evaluate.bootstrap.seed,
    }
    if data is not None:
        params["n_simulations"] = len(np.unique(data.simulation))
        for name in ("train", "test", "holdout"):
            mask = data.part(name)
            params[f"n_images.{name}"] = int(mask.sum())
            params[f"n_simulations.{name}"] = len(np.unique(data.simulation[mask]))
    mlflow.log_params(params)


def _run_once(plan: ExperimentPlan, store: SimulationStore, experiment_id: str, *,
              jobs: int | None, show_progress: bool, nested: bool = False) -> _Outcome:
    """One whole run of ``plan``: its own parent run, or a nested repeat run."""
    spec = plan.spec
    run_campaign(plan.campaign, store, jobs=jobs, show_progress=show_progress)
    source = None if spec.model is None else _reused_source(plan)
    data = build_image_set(plan, store, plan.inputs if source is None else
                           _reused_inputs(plan, source))
    role = "repeat" if nested else "experiment"
    tracking.close_stale_runs(experiment_id, plan.study_name)
    tags = _tags(plan, role)
    if nested:
        tags[f"{tracking.TAG}.repeat"] = str(plan.repeat)
    name = f"{spec.name} repeat {plan.repeat}" if nested else spec.name
    with tracking.tracked_run(name, tags, nested=nested) as run:
        if spec.description and not nested:
            mlflow.set_tag("mlflow.note.content", spec.description)
        _log_spec(plan, data)
        log_datasets(plan, data)
        examples = example_maps(plan, store)
        if examples is not None:
            mlflow.log_figure(examples, EXAMPLE_MAPS)
        best_test: float | None = None
        trials = 0
        if source is None:
            pipeline, best_test, trials = _train(plan, data, experiment_id, role,
                                                 show_progress)
        else:
            pipeline = _reused_model(plan, source)
        interrupt.check()
        holdout = data.part("holdout")
        x_hold = pipeline.named_steps["features"].transform(data.images[holdout])
        y_pred, y_score = metrics.predict_scored(spec.task.kind,
                                                 pipeline.named_steps["estimator"], x_hold)
        result = Holdout(spec.task.kind, list(spec.task.classes or {}), (HoldoutPart(
            plan.campaign.content_hash, spec.data.split.seed, data.simulation[holdout],
            data.stratum[holdout], data.index[holdout], data.target[holdout],
            np.asarray(y_pred), np.asarray(y_score, dtype=np.float64)),))
        boot = spec.evaluate.bootstrap
        scores = result.intervals(boot.resamples, boot.seed)
        mlflow.log_metrics(tracking.finite(with_interval(scores, "holdout_")))
        mlflow.log_dict(result.to_dict(), PREDICTIONS)
        halfwidth = _map_interval(plan, pipeline, data, result) \
            if spec.task.kind == "regress" else None
        calibrated = _map_calibration(plan, pipeline, data, result) \
            if spec.task.kind == "classify" else None
        context = ReportContext(
            task=spec.task.kind, class_names=result.class_names, y_true=data.target[holdout],
            y_pred=y_pred, score=result.parts[0].score, features=np.asarray(x_hold),
            index=data.index[holdout], seed=spec.tune.seed, images=data.images[holdout],
            model=pipeline, metadata=data.metadata_of(holdout),
            probe=Probe(plan, store, pipeline, splits(plan, data), data.inputs),
            simulation=data.simulation[holdout],
            bootstrap=result.bootstrap(boot.resamples, boot.seed), map_interval=halfwidth,
            map_calibration=calibrated)
        model_uri = None
        if spec.model is None:  # before the reports: a report that fails leaves it logged
            with step(f"{spec.name}: logging the model", enabled=show_progress):
                model_uri = log_model(plan, pipeline, data.images[data.part("holdout")][:4])
            mlflow.set_tag(tracking.MODEL_RUN, run.info.run_id)
        interrupt.check()
        log_reports(plan, context, store, jobs, show_progress)
        return _Outcome(run.info.run_id, result, scores, best_test, trials, model_uri)


def _test_and_holdout_maps(plan: ExperimentPlan, pipeline: Pipeline, data: ImageSet,
                           result: Holdout) -> tuple[tuple[np.ndarray, np.ndarray],
                                                     tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per map of the test split: mean score and target; per holdout map: mean score,
    target and simulation (a map is a simulation's projection, :mod:`turbexp.conformal`)."""
    images = plan.spec.data.images
    per_map = images_per_simulation(images) // len(images.projections)
    test = data.part("test")
    features = pipeline.named_steps["features"].transform(data.images[test])
    _, score = metrics.predict_scored(plan.spec.task.kind, pipeline.named_steps["estimator"],
                                      features)
    mean, first = conformal.map_means(score, data.simulation[test], per_map)
    part = result.parts[0]
    held, held_first = conformal.map_means(part.score, part.simulation, per_map)
    return ((mean, data.target[test][first]),
            (held, part.y_true[held_first], part.simulation[held_first]))


def _map_interval(plan: ExperimentPlan, pipeline: Pipeline, data: ImageSet,
                  result: Holdout) -> float:
    """The half-width of the conformal interval of a map's n, set on the test split's maps
    (recorded with the model for predict); its coverage of the holdout maps is logged."""
    (predicted, truth), (held, held_truth, owners) = _test_and_holdout_maps(
        plan, pipeline, data, result)
    halfwidth = conformal.interval_halfwidth(predicted, truth)
    level = f"{conformal.LEVEL * 100:g}"
    mlflow.set_tag(conformal.TAG, f"{halfwidth:.8g}")
    hits = conformal.covered(held, held_truth, halfwidth).astype(np.float64)
    boot = plan.spec.evaluate.bootstrap
    coverage = SimulationBootstrap(owners, resamples=boot.resamples,
                                   seed=boot.seed).intervals(lambda i: {"c": hits[i].mean()})
    mlflow.log_metrics(tracking.finite({f"map_interval_{level}_halfwidth": halfwidth,
                                        **with_interval({f"holdout_map_coverage_{level}":
                                                         coverage["c"]})}))
    return halfwidth


def _map_calibration(plan: ExperimentPlan, pipeline: Pipeline, data: ImageSet,
                     result: Holdout) -> MapCalibration | None:
    """Venn-ABERS calibration of a map's probability on the test split's maps (recorded with
    the model for predict); the holdout maps' calibrated Brier score, ECE and mean width of
    the bounds are logged.
    None for a classifier without probabilities, or a test split of one class."""
    (p, y), (held, held_y, owners) = _test_and_holdout_maps(plan, pipeline, data, result)
    if not (metrics.is_probability(p) and metrics.is_probability(held)):
        return None
    calibration = MapCalibration.fit(p, y)
    if calibration is None:
        return None
    mlflow.set_tag(CALIBRATION_TAG, calibration.to_tag())
    boot = plan.spec.evaluate.bootstrap
    values = SimulationBootstrap(owners, held_y, resamples=boot.resamples,
                                 seed=boot.seed).intervals(calibration.scores(held, held_y))
    mlflow.log_metrics(tracking.finite(with_interval(values, "holdout_map_calibrated_")))
    return calibration


def _train(plan: ExperimentPlan, data: ImageSet, experiment_id: str, role: str,
           show_progress: bool) -> tuple[Pipeline, float, int]:
    """Tune, then refit the best configuration on train + test; the refitted pipeline, the
    best test value and the number of completed trials."""
    assert plan.features is not None and plan.estimator is not None
    spec, metric = plan.spec, plan.metric
    tuned = tune(plan, data, show_progress)
    if 0 < tuned.found < tuned.wanted:
        killed = tracking.killed_runs(experiment_id, plan.study_name, role)
        mlflow.set_tags({f"{tracking.TAG}.resumed_from_trial": str(tuned.found),
                         f"{tracking.TAG}.resumes_run": killed[0] if killed else "unknown"})
    fparams = plan.features.sample(tuned.best)
    eparams = plan.estimator.sample(tuned.best)
    mlflow.log_params({**logged_params("features", fparams),
                       **logged_params("estimator", eparams),
                       "features": plan.features.plugin.name,
                       "estimator": plan.estimator.plugin.name})
    mlflow.log_metrics({f"best_test_{metric}": tuned.best.value,
                        "trials_completed": tuned.completed, "trials_pruned": tuned.pruned})
    interrupt.check()
    fit = data.part("train", "test")
    transformer = plan.features.plugin.create().build(fparams)
    estimator = plan.estimator.plugin.create().build(eparams, spec.task.kind)
    pipeline = Pipeline([("features", transformer), ("estimator", estimator)])
    reporter = training.EpochReporter()
    with step(f"{spec.name}: refitting the best configuration on train + test",
              enabled=show_progress):
        training.fit(pipeline, data.images[fit], data.target[fit],
                     training.FitContext(reporter, groups=data.simulation[fit],
                                         metadata=data.metadata_of(fit)))
    reporter.log_learning_curve()
    return pipeline, float(tuned.best.value), tuned.completed


def _reused_source(plan: ExperimentPlan) -> Run:
    """The run holding the model of the experiment ``model:`` names, checked to have been
    trained on this experiment's data and task (so its holdout is one the model never saw)."""
    name = plan.spec.reused_experiment
    try:
        source = tracking.model_run(name)
    except ValueError as exc:
        raise UserError(str(exc), file=str(plan.path), field="model") from None
    if source.data.tags.get(f"{tracking.TAG}.data_hash") != plan.data_hash:
        raise UserError(f"the model of {name!r} (run {source.info.run_id}) was trained on other "
                        "data: reusing it needs the same campaign, images, split and task",
                        file=str(plan.path), field="model")
    return source


def _reused_inputs(plan: ExperimentPlan, source: Run) -> ImageInputs:
    """What the images of ``source``'s model hold: this experiment makes its images so."""
    try:
        return tracking.model_inputs(source)
    except ValueError as exc:
        raise UserError(str(exc), file=str(plan.path), field="model") from None


def _reused_model(plan: ExperimentPlan, source: Run) -> Any:
    """The model of ``source`` (:func:`_reused_source`), with where it came from logged."""
    name = plan.spec.reused_experiment
    uri = tracking.run_model_uri(source)
    try:
        pipeline = tracking.load_pipeline(uri)
    except ValueError as exc:
        raise UserError(str(exc), file=str(plan.path), field="model") from None
    params = source.data.params
    mlflow.log_params({"features": params.get("features", "?"),
                       "estimator": params.get("estimator", "?")})
    mlflow.set_tags({f"{tracking.TAG}.model_source": uri,
                     f"{tracking.TAG}.model_source_experiment": name})
    return pipeline


def _run_repeats(plan: ExperimentPlan, store: SimulationStore, experiment_id: str, *,
                 jobs: int | None, show_progress: bool) -> RunSummary:
    """One parent run with a nested run per repeat; the parent holds the mean over repeats
    with its interval (resampling each repeat's holdout simulations) and the spread."""
    spec, metric = plan.spec, plan.metric
    tracking.close_stale_runs(experiment_id, plan.study_name)
    tags = _tags(plan, "experiment")
    tags[f"{tracking.TAG}.repeats"] = str(spec.repeats)
    with tracking.tracked_run(spec.name, tags) as parent:
        if spec.description:
            mlflow.set_tag("mlflow.note.content", spec.description)
        _log_spec(plan, None)
        outcomes = []
        for r in range(spec.repeats):
            interrupt.check()
            with step(f"{spec.name}: repeat {r + 1} of {spec.repeats}", enabled=show_progress):
                outcomes.append(_run_once(plan.repeated(r), store, experiment_id, jobs=jobs,
                                          show_progress=show_progress, nested=True))
        combined = Holdout(spec.task.kind, list(spec.task.classes or {}),
                           tuple(o.holdout.parts[0] for o in outcomes))
        boot = spec.evaluate.bootstrap
        scores = combined.intervals(boot.resamples, boot.seed)
        spreads = {f"holdout_{name}_sd": float(np.std([o.scores[name].value for o in outcomes],
                                                      ddof=1))
                   for name in scores}
        best = [o.best_test for o in outcomes if o.best_test is not None]
        values = {**with_interval(scores, "holdout_"), **spreads,
                  "trials_completed": float(sum(o.trials for o in outcomes))}
        if best:
            values[f"best_test_{metric}"] = float(np.mean(best))
        mlflow.log_metrics(tracking.finite(values))
        mlflow.log_dict(combined.to_dict(), PREDICTIONS)
        first = outcomes[0].run_id
        mlflow.set_tag(tracking.MODEL_RUN, first)
        mlflow.log_params({"features": plan.features.plugin.name if plan.features else "?",
                           "estimator": plan.estimator.plugin.name if plan.estimator else "?",
                           "n_simulations.holdout": combined.n_simulations,
                           "n_images.holdout": combined.n_images})
        return RunSummary(spec.name, parent.info.run_id, metric, scores[metric],
                          float(np.mean(best)) if best else None,
                          sum(o.trials for o in outcomes), combined.n_simulations,
                          combined.n_images, spec.repeats, spreads[f"holdout_{metric}_sd"],
                          outcomes[0].model_uri)
