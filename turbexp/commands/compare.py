"""``turbexp compare``: experiment runs scored on the same holdout, drawn together.

Runs are named by experiment (its latest finished parent run) or by MLflow run id. They
must share a task and a holdout set: the same campaign hash, split seed, classes and
holdout simulations in the same strata (for repeated experiments, in every repeat); the
images each cut from them may differ. Every metric comes with its 95 % interval, and every
run after the first with its paired difference to the first: the same bootstrap resamples
of the shared holdout simulations score both runs, each on its own images of them, so the
difference's interval says whether one beats the other.
Figures are matplotlib :class:`Figure` objects drawn without pyplot, written as PNG and
PDF and logged to a comparison run in MLflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
from matplotlib.figure import Figure

from turbexp import metrics, tracking
from turbexp.errors import UserError
from turbexp.figures import draw_roc, finish_roc, index_axes, index_range
from turbexp.files import atomic_write, check_output_folder, make_output_folder
from turbexp.holdout import PREDICTIONS as HOLDOUT_PREDICTIONS
from turbexp.holdout import Holdout, paired_differences, verdict
from turbexp.uncertainty import DEFAULT_RESAMPLES, Interval, with_interval

BASELINE_FEATURES = "power_spectrum"
"""Runs with these features are the physics baseline (``power_spectrum_baseline``)."""
ARTIFACT_DIR = "comparison"
FORMATS = ("png", "pdf")
RUN_ID = re.compile(r"[0-9a-f]{32}")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_NAME = 100


@dataclass(frozen=True)
class ComparedRun:
    """An experiment's parent run with its holdout predictions and scores."""

    reference: str
    run_id: str
    experiment: str
    features: str
    estimator: str
    headline_metric: str
    holdout: Holdout
    label: str = ""
    scores: dict[str, Interval] = field(default_factory=dict)
    difference: dict[str, Interval] = field(default_factory=dict)  # this run minus the first

    @property
    def task(self) -> str:
        return self.holdout.task

    @property
    def baseline(self) -> bool:
        """Whether this run is the physics baseline (power-spectrum features)."""
        return self.features == BASELINE_FEATURES

    def describe(self) -> str:
        return f"{self.experiment!r} (run {self.run_id[:8]})"


@dataclass(frozen=True)
class Comparison:
    """What ``turbexp compare`` made: the runs, the figures on disk and the MLflow run."""

    name: str
    runs: list[ComparedRun]
    metric: str
    files: list[Path]
    run_id: str

    def verdict(self, run: ComparedRun) -> str:
        """Whether ``run`` is better or worse than the first run on the headline metric, or
        not distinguishable on this holdout (the 95 % interval of the difference holds 0)."""
        name = self.metric.removeprefix("holdout_")
        return verdict(run.difference[name], metrics.direction(run.task, name))


# --------------------------------------------------------------------------- runs


def resolve(references: list[str], resamples: int = DEFAULT_RESAMPLES,
            seed: int = 0) -> list[ComparedRun]:
    """Each experiment name or run id as a run with its holdout predictions, in order.

    A name is its latest FINISHED parent run; a 32-hex string that is a run id is that run.
    A run named twice is compared once. Fewer than two runs is an error.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found: dict[str, ComparedRun] = {}
    for reference in references:
        run = None
        if RUN_ID.fullmatch(reference):
            try:
                run = client.get_run(reference)
            except MlflowException:
                run = None
        if run is None:
            run = _latest_finished(client, reference)
        else:
            _check_experiment_run(run, reference)
        if run.info.run_id not in found:
            found[run.info.run_id] = _load(client, run, reference, resamples, seed)
    runs = list(found.values())
    if len(runs) < 2:
        raise UserError(f"a comparison needs at least two runs; {', '.join(references)} "
                        f"name{'s' if len(references) == 1 else ''} only "
                        f"{runs[0].describe() if runs else 'none'}")
    return _labelled(runs)


def _latest_finished(client: Any, name: str) -> Any:
    experiment = client.get_experiment_by_name(tracking.mlflow_experiment_name())
    if experiment is not None and NAME.fullmatch(name):  # experiment names never hold quotes
        named = (f"tags.`{tracking.ROLE}` = 'experiment' and "
                 f"tags.`{tracking.TAG}.experiment` = '{name}'")
        runs = client.search_runs([experiment.experiment_id],
                                  filter_string=f"{named} and attributes.status = 'FINISHED'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if runs:
            return runs[0]
        if client.search_runs([experiment.experiment_id], filter_string=named, max_results=1):
            raise UserError(f"experiment {name!r} has no finished run yet; "
                            "run it with `turbexp run` first")
    known = _known_experiments(client, experiment)
    hint = f"; experiments with finished runs: {', '.join(known)}" if known else \
        f"; the MLflow experiment {tracking.mlflow_experiment_name()!r} has no finished run"
    raise UserError(f"{name!r} is neither an experiment with a run nor an MLflow run id{hint}")


def _known_experiments(client: Any, experiment: Any) -> list[str]:
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{tracking.ROLE}` = 'experiment' and attributes.status = 'FINISHED'",
        max_results=1000)
    return sorted({r.data.tags.get(f"{tracking.TAG}.experiment", "?") for r in runs})


def _check_experiment_run(run: Any, reference: str) -> None:
    role = run.data.tags.get(tracking.ROLE)
    if role != "experiment":
        raise UserError(f"run {reference} is not an experiment's parent run "
                        f"({tracking.ROLE} = {role or 'not set'})")
    if run.info.status != "FINISHED":
        raise UserError(f"run {reference} is {run.info.status}; only finished runs are compared")


def _load(client: Any, run: Any, reference: str, resamples: int, seed: int) -> ComparedRun:
    import mlflow

    tags, params = run.data.tags, run.data.params
    run_id = run.info.run_id
    experiment = tags.get(f"{tracking.TAG}.experiment", run.info.run_name or run_id)
    folder = HOLDOUT_PREDICTIONS.rpartition("/")[0]
    if HOLDOUT_PREDICTIONS not in {a.path for a in client.list_artifacts(run_id, folder)}:
        raise UserError(f"run {run_id} of {experiment!r} has no {HOLDOUT_PREDICTIONS}, so "
                        "its holdout cannot be drawn; run the experiment again to compare it")
    try:
        with tracking.quiet_reading():
            data = mlflow.artifacts.load_dict(f"runs:/{run_id}/{HOLDOUT_PREDICTIONS}")
        holdout = Holdout.from_dict(data)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise UserError(f"run {run_id} of {experiment!r}: {HOLDOUT_PREDICTIONS} cannot be "
                        f"read: {type(exc).__name__}: {exc}") from None
    scores = holdout.intervals(resamples, seed)
    metric = params.get("metric") or next(iter(metrics.METRICS[holdout.task]))
    return ComparedRun(
        reference=reference, run_id=run.info.run_id, experiment=experiment,
        features=params.get("features", "?"), estimator=params.get("estimator", "?"),
        headline_metric=tags.get(f"{tracking.TAG}.headline_metric", f"holdout_{metric}"),
        holdout=holdout, scores=scores)


def _labelled(runs: list[ComparedRun]) -> list[ComparedRun]:
    """Legend labels: the experiment name, with a short run id where names repeat."""
    names = [r.experiment for r in runs]
    return [replace(r, label=r.experiment if names.count(r.experiment) == 1
                     else f"{r.experiment} {r.run_id[:8]}") for r in runs]


def check_same_holdout(runs: list[ComparedRun]) -> None:
    """Refuse runs of different tasks or holdout sets, naming each difference."""
    first = runs[0]
    problems = []
    for other in runs[1:]:
        found = holdout_differences(first.holdout, other.holdout)
        if found:
            problems.append(f"{first.describe()} vs {other.describe()}: {'; '.join(found)}")
    if problems:
        raise UserError("these runs were not scored on the same holdout, so they cannot be "
                        "compared:\n" + "\n".join(f"  {p}" for p in problems))


def holdout_differences(a: Holdout, b: Holdout) -> list[str]:
    """What tells two holdout sets apart (empty when they are the same)."""
    found = []
    if a.task != b.task:
        found.append(f"task {a.task} vs {b.task}")
    if a.task == b.task == "classify" and a.class_names != b.class_names:
        found.append(f"classes {a.class_names} vs {b.class_names}")
    if len(a.parts) != len(b.parts):
        return [*found, f"repeats {len(a.parts)} vs {len(b.parts)}"]
    for k, (x, y) in enumerate(zip(a.parts, b.parts, strict=True)):
        where = f"repeat {k}: " if len(a.parts) > 1 else ""
        found += [where + d for d in _part_differences(x, y)]
    return found


def _part_differences(a: Any, b: Any) -> list[str]:
    found = []
    if a.campaign_hash != b.campaign_hash:
        found.append(f"campaign hash {a.campaign_hash[:12]} vs {b.campaign_hash[:12]}")
    if a.split_seed != b.split_seed:
        found.append(f"split seed {a.split_seed} vs {b.split_seed}")
    if found:
        return found
    strata_a, strata_b = _strata(a), _strata(b)
    if sorted(strata_a) != sorted(strata_b):
        found.append(f"holdout simulations {sorted(strata_a)} vs {sorted(strata_b)}")
    else:
        moved = sorted(k for k in strata_a if strata_a[k] != strata_b[k])
        if moved:
            found.append(f"holdout simulations {moved} in other strata")
    return found


def _strata(part: Any) -> dict[int, str]:
    """Each holdout simulation of a part with its stratum."""
    return {int(k): str(v) for k, v in zip(part.simulation, part.stratum, strict=True)}


def sizes(runs: list[ComparedRun]) -> str:
    """``"20 holdout simulations, 960 images"`` (the images of each run where they differ:
    runs may cut other images from the same simulations)."""
    counts = [r.holdout.n_images for r in runs]
    images = f"{counts[0]} images" if len(set(counts)) == 1 else \
        f"{' / '.join(map(str, counts))} images"
    return f"{runs[0].holdout.n_simulations} holdout simulations, {images}"


def with_differences(runs: list[ComparedRun], resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0) -> list[ComparedRun]:
    """Each run with its paired difference to the first run, every metric."""
    first = runs[0]
    return [first, *(replace(r, difference=paired_differences(r.holdout, first.holdout,
                                                              resamples, seed))
                     for r in runs[1:])]


# --------------------------------------------------------------------------- figures


def _colour(position: int) -> str:
    return f"C{position % 10}"


def _title(runs: list[ComparedRun], what: str) -> str:
    first = runs[0].holdout
    repeats = f" over {len(first.parts)} repeats" if len(first.parts) > 1 else ""
    return (f"{what} on the shared holdout{repeats}\n{sizes(runs)}\n"
            "95 % bands from resamples of whole simulations")


def roc_figure(runs: list[ComparedRun], resamples: int = DEFAULT_RESAMPLES,
               seed: int = 0) -> Figure:
    """Every classifier's ROC curve on the shared holdout with its 95 % band (averaged over
    repeats at each false-positive rate), its AUC and interval in the legend."""
    fig = Figure(figsize=(6, 6.6), layout="constrained")
    ax = fig.add_subplot()
    first = runs[0].holdout
    positive = first.concatenated("y_true") == 1
    names = first.class_names
    positive_name = names[1] if len(names) > 1 else "class 1"
    if positive.all() or not positive.any():
        ax.text(0.5, 0.5, "ROC undefined:\nonly one class in the holdout", ha="center",
                va="center")
    else:
        for i, run in enumerate(runs):
            suffix = ", physics baseline" if run.baseline else ""
            draw_roc(ax, metrics.FPR_GRID, run.holdout.roc_tpr(),
                     label=f"{run.label} (AUC = {run.scores['roc_auc'].text()}){suffix}",
                     colour=_colour(i), dashed=run.baseline, chance=i == len(runs) - 1,
                     band=run.holdout.bootstrap(resamples, seed).band(run.holdout.roc_tpr))
    finish_roc(ax, _title(runs, f"ROC, positive class: {positive_name},"))
    return fig


def predicted_vs_true_figure(runs: list[ComparedRun]) -> Figure:
    """Every regressor's predicted index against the true one, with the identity line."""
    fig = Figure(figsize=(6, 6.6), layout="constrained")
    ax = fig.add_subplot()
    index_axes(ax, index_range(
        part for r in runs for part in (r.holdout.concatenated("y_true").astype(np.float64),
                                        r.holdout.concatenated("score"))))
    for i, run in enumerate(runs):
        suffix = ", physics baseline" if run.baseline else ""
        ax.scatter(run.holdout.concatenated("y_true").astype(np.float64),
                   run.holdout.concatenated("score"), s=16, alpha=0.6,
                   color=_colour(i), marker="s" if run.baseline else "o",
                   label=f"{run.label} (MSE = {run.scores['mse'].text()}, "
                         f"R² = {run.scores['r2'].text()}){suffix}")
    ax.set_title(_title(runs, "Predicted vs true index"), fontsize=9)
    ax.legend(loc="upper left", fontsize="small")
    return fig


def headline_figure(runs: list[ComparedRun], metric: str) -> Figure:
    """A bar per run of the holdout ``metric`` (``holdout_<m>``) with its 95 % interval; the
    physics baseline hatched and drawn across as a line."""
    name = metric.removeprefix("holdout_")
    direction = metrics.direction(runs[0].task, name)
    nan = Interval(float("nan"), float("nan"), float("nan"))
    intervals = [r.scores.get(name, nan) for r in runs]
    values = np.array([i.value for i in intervals], dtype=np.float64)
    errors = np.nan_to_num(np.clip(np.array([[i.value - i.low, i.high - i.value]
                                             for i in intervals], dtype=float).T, 0, None))
    fig = Figure(figsize=(max(5.0, 1.2 * len(runs) + 2.5), 4.8), layout="constrained")
    ax = fig.add_subplot()
    positions = np.arange(len(runs))
    bars = ax.bar(positions, np.nan_to_num(values), color=[_colour(i) for i in range(len(runs))],
                  edgecolor="black", yerr=errors, capsize=5)
    for bar, run in zip(bars, runs, strict=True):
        if run.baseline:
            bar.set_facecolor("lightgrey")
            bar.set_hatch("//")
    ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.3g}" for v in values],
                 padding=2, label_type="center")
    baselines = [(r, v) for r, v in zip(runs, values, strict=True) if r.baseline]
    for run, value in baselines:
        if np.isfinite(value):
            ax.axhline(value, color="black", linestyle="--", linewidth=1,
                       label=f"physics baseline: {run.label} = {value:.3g}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(positions, [r.label for r in runs], rotation=20 if len(runs) > 3 else 0,
                  ha="right" if len(runs) > 3 else "center")
    better = "higher" if direction == "maximize" else "lower"
    title = f"Holdout {name} ({better} is better), 95 % intervals\n{sizes(runs)}"
    if not baselines:
        title += f"\nno physics baseline ({BASELINE_FEATURES} features) among these runs"
    ax.set_title(title, fontsize=9)
    ax.set(ylabel=f"holdout {name}")
    if runs[0].task == "classify":
        ax.set_ylim(0, 1.12)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    return fig


def figures(runs: list[ComparedRun], metric: str, resamples: int = DEFAULT_RESAMPLES,
            seed: int = 0) -> dict[str, Figure]:
    """The comparison's figures by file stem."""
    drawn = {"roc": roc_figure(runs, resamples, seed)} if runs[0].task == "classify" else \
        {"predicted_vs_true": predicted_vs_true_figure(runs)}
    drawn["headline"] = headline_figure(runs, metric)
    return drawn


# --------------------------------------------------------------------------- outputs


def default_name(runs: list[ComparedRun]) -> str:
    """The experiments' names joined by ``_vs_``, or a hash of the run ids when too long."""
    names = list(dict.fromkeys(r.experiment for r in runs))
    name = "_vs_".join(names)
    if len(names) == len(runs) and len(name) <= MAX_NAME and NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(",".join(r.run_id for r in runs).encode()).hexdigest()[:12]
    return f"comparison-{digest}"


def _save(figure: Figure, fmt: str, handle: IO[bytes]) -> None:
    figure.savefig(handle, format=fmt, dpi=150)


def write_figures(drawn: dict[str, Figure], out: Path) -> list[Path]:
    """Each figure as PNG and PDF in ``out``, each file written atomically."""
    written = []
    for stem, figure in drawn.items():
        for fmt in FORMATS:
            target = out / f"{stem}.{fmt}"
            atomic_write(target, partial(_save, figure, fmt))
            written.append(target)
    return written


def summary(runs: list[ComparedRun], metric: str) -> dict[str, Any]:
    """The compared runs, their holdout scores with intervals and their paired differences
    to the first run, as logged in ``comparison/runs.json``."""
    first = runs[0].holdout
    name = metric.removeprefix("holdout_")
    return {
        "task": first.task, "metric": metric,
        "holdouts": [{"campaign_hash": p.campaign_hash, "split_seed": p.split_seed,
                      "simulations": sorted(set(p.simulation.tolist()))} for p in first.parts],
        "n_simulations": first.n_simulations,
        "runs": [{"run_id": r.run_id, "experiment": r.experiment, "label": r.label,
                  "n_images": r.holdout.n_images,
                  "given_as": r.reference, "features": r.features, "estimator": r.estimator,
                  "physics_baseline": r.baseline,
                  "holdout": with_interval(r.scores, "holdout_"),
                  "minus_first": with_interval(r.difference, "holdout_"),
                  "verdict": verdict(r.difference[name], metrics.direction(r.task, name))
                  if r.difference else ""} for r in runs],
    }


def log_comparison(name: str, runs: list[ComparedRun], metric: str, files: list[Path]) -> str:
    """One MLflow run (``turbexp.role = comparison``) with the figures under ``comparison/``,
    the compared runs as params, their holdout metrics with intervals and the paired
    differences to the first run (``delta_holdout_<m>.<label>``); returns its id."""
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    first = runs[0].holdout
    tags = {
        tracking.ROLE: "comparison",
        f"{tracking.TAG}.comparison": name,
        f"{tracking.TAG}.campaign_hash": first.parts[0].campaign_hash,
        f"{tracking.TAG}.headline_metric": metric,
        **tracking.process_tags(),
    }
    run_id = client.create_run(tracking.use_experiment(), tags=tags,
                               run_name=f"compare {name}").info.run_id
    try:
        baselines = [r.run_id for r in runs if r.baseline]
        params = {"runs": ",".join(r.run_id for r in runs),
                  "experiments": ",".join(r.experiment for r in runs),
                  "task": first.task, "metric": metric,
                  "split.seed": ",".join(str(p.split_seed) for p in first.parts),
                  "n_runs": len(runs),
                  "n_images.holdout": ",".join(str(r.holdout.n_images) for r in runs),
                  "n_simulations.holdout": first.n_simulations,
                  "baseline": ",".join(baselines) or "none"}
        values: dict[str, float] = {}
        for r in runs:
            for key, value in with_interval(r.scores, "holdout_").items():
                values[f"{key}.{r.label}"] = value
            for key, value in with_interval(r.difference, "delta_holdout_").items():
                values[f"{key}.{r.label}"] = value
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                         metrics=[Metric(k, float(v), 0, 0) for k, v in values.items()
                                  if np.isfinite(v)])
        for path in files:
            client.log_artifact(run_id, str(path), ARTIFACT_DIR)
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return run_id


def compare(references: list[str], *, name: str | None = None, out: Path | None = None,
            resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Comparison:
    """Resolve and check the runs, score them with intervals and paired differences, draw
    and write the figures, log the comparison run."""
    if name is not None and (len(name) > MAX_NAME or not NAME.fullmatch(name)):
        raise UserError(f"comparison name {name!r}: use letters, digits, '_', '.' and '-' "
                        f"(starting with a letter or digit, at most {MAX_NAME} characters)")
    runs = resolve(references, resamples, seed)
    check_same_holdout(runs)
    runs = with_differences(runs, resamples, seed)
    metric = runs[0].headline_metric
    name = name or default_name(runs)
    out = Path(ARTIFACT_DIR) / name if out is None else out
    check_output_folder(out, "--out")
    drawn = figures(runs, metric, resamples, seed)
    make_output_folder(out, "--out")
    files = write_figures(drawn, out)
    table = json.dumps(summary(runs, metric), indent=2).encode()
    atomic_write(out / "runs.json", lambda handle: handle.write(table))
    files.append(out / "runs.json")
    run_id = log_comparison(name, runs, metric, files)
    return Comparison(name, runs, metric, files, run_id)
