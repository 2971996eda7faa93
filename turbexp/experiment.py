"""Experiments: validating an experiment YAML, with its campaign and plugins, before any work."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from turbexp import overrides as changes
from turbexp.campaign import CampaignPlan, PlannedSimulation, plan_campaign
from turbexp.errors import UserError, gather
from turbexp.images import images_per_simulation, split_simulations
from turbexp.machine import memory_here
from turbexp.metrics import METRICS, direction
from turbexp.params import ParamPlan, plan_params
from turbexp.plugin_types import ImageInputs, PluginParams
from turbexp.plugins import PluginInfo, registry
from turbexp.spec import ExperimentSpec, ObservationSpec, validate
from turbexp.store import content_hash
from turbexp.yamlfile import YamlDocument, load_yaml, resolved


@dataclass(frozen=True)
class ReportPlan:
    plugin: PluginInfo
    params: PluginParams


@dataclass(frozen=True)
class ExperimentPlan:
    """A validated experiment, ready to run.

    ``features`` and ``estimator`` are None for an experiment that scores another
    experiment's model (``model: experiment:NAME``). ``overrides`` and ``scale`` are what
    changed the file's values before validation (``--set``, ``--scale``).
    """

    path: Path
    doc: YamlDocument
    spec: ExperimentSpec
    campaign: CampaignPlan
    features: ParamPlan | None
    estimator: ParamPlan | None
    reports: list[ReportPlan]
    overrides: dict[str, Any] = field(default_factory=dict)
    scale: str | None = None
    repeat: int = 0

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def direction(self) -> str:
        return direction(self.spec.task.kind, self.metric)

    @property
    def spec_hash(self) -> str:
        """Changes when the experiment or the data it uses changes."""
        spec = self.spec.model_dump(mode="json")
        del spec["data"]["observation"]  # as before observations existed, when there is none
        if self.spec.data.observation != ObservationSpec():
            spec["data"]["observation"] = _changed(self.spec.data.observation)
        return content_hash({"spec": spec, "campaign": self.campaign.content_hash})

    @property
    def data_hash(self) -> str:
        """Changes when the images, their split or the task change: a model trained on
        one experiment scores another's holdout only when both share it."""
        spec = self.spec
        parts = {"campaign": self.campaign.content_hash,
                 "images": spec.data.images.model_dump(mode="json"),
                 "split": spec.data.split.model_dump(mode="json"),
                 "task": spec.task.model_dump(mode="json")}
        if spec.data.observation != ObservationSpec():
            parts["observation"] = _changed(spec.data.observation)
        return content_hash(parts)

    @property
    def study_name(self) -> str:
        """The Optuna study: the same for specs that differ only in the number of trials,
        repeats, scales or evaluation, so asking for more trials continues the study."""
        spec = self.spec.model_dump(mode="json", exclude={"description": True, "repeats": True,
                                                          "scales": True, "evaluate": True,
                                                          "tune": {"trials"}})
        spaces = {plan.section: {k: repr(v) for k, v in sorted(plan.space.items())}
                  for plan in (self.features, self.estimator) if plan is not None}
        identity = [spec, spaces, self.campaign.content_hash]
        return f"{self.spec.name}-{content_hash(identity)[:12]}"

    @property
    def inputs(self) -> ImageInputs:
        """What the feature plugin asks its images to hold (standardised for an experiment
        that reuses a model: the runner takes the model's own from its run)."""
        return self.features.plugin.cls.inputs if self.features else "standardised"

    @property
    def tuned(self) -> bool:
        """Whether the experiment has a search space (else one trial of the fixed values)."""
        return bool((self.features and self.features.space)
                    or (self.estimator and self.estimator.space))

    def other_campaign(self, path: str | Path) -> CampaignPlan:
        """A campaign file named relative to the experiment file (a report's), planned at
        the experiment's scale."""
        return plan_campaign(resolved(self.path.parent / path), scale=self.scale)

    def repeated(self, repeat: int) -> ExperimentPlan:
        """Repeat ``repeat`` (0 is the file as written): campaign, split and tuning seeds
        each raised by ``repeat``, so the repeats draw independent simulations and splits."""
        if repeat == 0:
            return self
        spec = self.spec
        seeds = {"data.split.seed": spec.data.split.seed + repeat,
                 "tune.seed": spec.tune.seed + repeat,
                 "campaign.seed": self.campaign.spec.seed + repeat, "repeats": 1}
        plan = plan_experiment(self.path, overrides={**self.overrides, **seeds},
                               scale=self.scale)
        return replace(plan, repeat=repeat)

    def members(self) -> list[tuple[int, PlannedSimulation, int | float, int]]:
        """(position, simulation, target, stratum) of each simulation the task uses.

        The target is the class label (classify) or the index n (regress); the
        split is stratified by class, or by campaign group for regression.
        """
        chosen = []
        for position, sim in enumerate(self.campaign.simulations):
            if self.spec.task.kind == "classify":
                label = self.class_of(sim.request.index)
                if label is not None:
                    chosen.append((position, sim, label, label))
            else:
                chosen.append((position, sim, sim.request.index, sim.group))
        return chosen

    def strata(self) -> list[int]:
        return [stratum for *_, stratum in self.members()]

    def class_of(self, index: float) -> int | None:
        """Class label (position in ``task.classes``) of a simulation's index, if any."""
        classes = self.spec.task.classes or {}
        for label, value in enumerate(classes.values()):
            if abs(index - value) <= self.spec.task.tolerance:
                return label
        return None


def plan_experiment(path: str | Path, *, overrides: dict[str, Any] | None = None,
                    scale: str | None = None, every_scale: bool = False) -> ExperimentPlan:
    """Read and validate an experiment file, its campaign and its plugin parameters.

    ``scale`` applies the file's scale of that name (and its campaign's); ``overrides``
    then sets dotted keys (``campaign.``-prefixed ones in the campaign file). With
    ``every_scale`` (and no ``scale``), the file and its campaign are checked at each of
    their scales too: for the files a user names, not for repeats and other re-readings.
    """
    overrides = dict(overrides or {})
    doc = load_yaml(path)
    own, campaign_overrides = changes.split_campaign(overrides)
    doc = changes.apply(doc, changes.scale_of(doc, scale), ExperimentSpec,
                        source=f"{doc.path}: scales.{scale}.")
    doc = changes.apply(doc, own, ExperimentSpec, source="--set ")
    spec: ExperimentSpec = validate(ExperimentSpec, doc)
    campaign_path = resolved(doc.path.parent / spec.data.campaign)
    if not campaign_path.is_file():
        what = "is a folder, not a campaign file" if campaign_path.is_dir() else "not found"
        raise doc.error(f"campaign file {campaign_path} {what} (paths are relative to the "
                        "experiment file)", ("data", "campaign"))
    campaign = plan_campaign(campaign_path, overrides=campaign_overrides, scale=scale,
                             every_scale=every_scale)
    task = spec.task.kind
    if spec.tune.metric is not None and spec.tune.metric not in METRICS[task]:
        raise doc.error(f"{spec.tune.metric!r} is not a {task} metric; expected one of: "
                        f"{', '.join(METRICS[task])}", ("tune", "metric"))
    features = estimator = None
    if spec.model is None:
        features, estimator = _plan_training(doc, spec)
    reports = []
    for i, ref in enumerate(spec.evaluate.reports):
        loc = ("evaluate", "reports", i)
        first = [r.plugin for r in spec.evaluate.reports].index(ref.plugin)
        if first != i:
            raise doc.error(f"report {ref.plugin!r} is listed twice (entries {first} and {i}); "
                            "its figures and metrics would overwrite each other", loc)
        plugin = _plugin(doc, "report", ref.plugin, (*loc, "plugin"))
        if task not in plugin.cls.tasks:
            raise doc.error(f"report {ref.plugin!r} does not apply to {task} tasks", loc)
        if estimator is not None:
            check_report_estimator(doc, loc, plugin, estimator.plugin.name)
        plan = plan_params(plugin, ref.params, doc=doc, loc=loc, tune_defaults=False)
        if plan.space:
            raise doc.error("report parameters take values, not search spaces", loc)
        report = ReportPlan(plugin, plan.sample(None))
        _check_report_campaigns(doc, loc, report, scale)
        reports.append(report)
    plan = ExperimentPlan(doc.path, doc, spec, campaign, features, estimator, reports,
                          overrides=overrides, scale=scale)
    _check_task_against_campaign(plan)
    if every_scale and scale is None:
        changes.check_scales(doc, lambda name: plan_experiment(path, overrides=overrides,
                                                               scale=name))
    return plan


def _check_report_campaigns(doc: YamlDocument, loc: tuple, report: ReportPlan,
                            scale: str | None) -> None:
    """Every campaign a report reads is a valid campaign file, checked now rather than
    after training."""
    for path in report.plugin.create().campaigns(report.params):
        target = resolved(doc.path.parent / path)
        if not target.is_file():
            raise doc.error(f"report {report.plugin.name!r} reads campaign file {target}, "
                            "which is not a file (paths are relative to the experiment file)",
                            loc)
        plan_campaign(target, scale=scale)


def _plan_training(doc: YamlDocument, spec: ExperimentSpec) -> tuple[ParamPlan, ParamPlan]:
    assert spec.features is not None and spec.estimator is not None
    tune_defaults = spec.tune.defaults and spec.tune.trials > 0
    features = _plan(doc, "features", spec.features.plugin, spec.features.params, tune_defaults)
    estimator = _plan(doc, "estimator", spec.estimator.plugin, spec.estimator.params,
                      tune_defaults)
    task = spec.task.kind
    if task not in estimator.plugin.cls.tasks:
        raise doc.error(f"estimator {estimator.plugin.name!r} does not do {task} tasks",
                        ("estimator", "plugin"))
    if spec.tune.trials == 0 and (features.space or estimator.space):
        raise doc.error("search spaces need tune.trials > 0", ("tune", "trials"))
    return features, estimator


def check_report_estimator(doc: YamlDocument, loc: tuple, plugin: PluginInfo,
                           estimator: str) -> None:
    """Refuse a report that needs other estimators than ``estimator``."""
    wanted = getattr(plugin.cls, "estimators", None)
    if wanted is not None and estimator not in wanted:
        raise doc.error(f"report {plugin.name!r} needs one of the estimators "
                        f"{', '.join(sorted(wanted))}, not {estimator!r}", loc)


def _plugin(doc: YamlDocument, kind: str, name: str, loc: tuple) -> PluginInfo:
    try:
        return registry().get(kind, name)
    except UserError as exc:
        raise doc.error(exc.message, loc) from None


def _plan(doc: YamlDocument, section: str, name: str, params: dict,
          tune_defaults: bool) -> ParamPlan:
    kind = "features" if section == "features" else "estimator"
    plugin = _plugin(doc, kind, name, (section, "plugin"))
    return plan_params(plugin, params, doc=doc, loc=(section,), tune_defaults=tune_defaults)


IMAGE_BYTES_PER_PIXEL = 8
"""Peak memory of an image set per pixel: float32 images, held twice while the set is
assembled."""


def check_image_memory(plan: ExperimentPlan) -> None:
    """Refuse an image set larger than this machine's memory, before anything is made: for
    ``turbexp run`` here, not for validation or a dry run (a paper-scale study is planned
    for a bigger machine)."""
    images, have = plan.spec.data.images, memory_here()
    count = len(plan.campaign.simulations) * images_per_simulation(images) \
        * plan.spec.data.observation.views
    need = count * images.size**2 * IMAGE_BYTES_PER_PIXEL
    if have is not None and need > have:
        raise plan.doc.error(
            f"{count} images of {images.size}² pixels need about {need / 2**30:.3g} GiB of "
            f"memory ({IMAGE_BYTES_PER_PIXEL} bytes a pixel while the set is made); this "
            f"machine has {have / 2**30:.3g} GiB: use fewer or smaller images",
            ("data", "images", "size"))


def _check_task_against_campaign(plan: ExperimentPlan) -> None:
    if plan.spec.task.kind == "classify":
        indices = {s.request.index for s in plan.campaign.simulations}
        for name, value in (plan.spec.task.classes or {}).items():
            if not any(abs(i - value) <= plan.spec.task.tolerance for i in indices):
                raise plan.doc.error(
                    f"no simulation of campaign {plan.campaign.spec.name!r} has index "
                    f"{value:g} (±{plan.spec.task.tolerance:g})",
                    ("task", "classes", name),
                )
    try:
        split_simulations(plan.strata(), plan.spec.data.split)
    except ValueError as exc:
        raise plan.doc.error(str(exc), ("data", "split")) from None


def plan_experiments(paths: list[str | Path], *, overrides: dict[str, Any] | None = None,
                     scale: str | None = None) -> list[ExperimentPlan]:
    """Validate every file, collecting all errors before reporting them; an experiment that
    scores another's model comes after it, and is checked against it when both are here."""
    plans = gather(lambda p: plan_experiment(p, overrides=overrides, scale=scale,
                                             every_scale=True), paths)
    names = [p.spec.name for p in plans]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"experiment names must be unique; repeated: {', '.join(duplicates)}")
    by_name = {p.spec.name: p for p in plans}
    gather(lambda p: check_reuse(p, by_name.get(p.spec.reused_experiment or "")), plans)
    first = [p for p in plans if p.spec.model is None]
    return first + [p for p in plans if p.spec.model is not None]


def check_reuse(plan: ExperimentPlan, source: ExperimentPlan | None) -> None:
    """An experiment scoring ``source``'s model must use its data and task, so that its
    holdout is the holdout the model never saw; its reports must suit the estimator."""
    if plan.spec.model is None or source is None:
        return
    if source.spec.model is not None:
        raise plan.doc.error(f"{source.spec.name!r} itself reuses a model; name the "
                             "experiment that trained it", ("model",))
    for what, mine, theirs in reuse_differences(plan, source.campaign.content_hash,
                                                source.spec):
        raise plan.doc.error(f"the model of {source.spec.name!r} was trained with {what} "
                             f"{theirs}, this experiment has {mine}; reusing it needs the "
                             "same campaign, images, split, observation and task", ("model",))
    assert source.estimator is not None
    for i, report in enumerate(plan.reports):
        check_report_estimator(plan.doc, ("evaluate", "reports", i), report.plugin,
                               source.estimator.plugin.name)


def reuse_differences(plan: ExperimentPlan, campaign_hash: str,
                      source: ExperimentSpec) -> list[tuple[str, Any, Any]]:
    """What differs between ``plan``'s data and task and those a model was trained with."""
    spec = plan.spec
    found = []
    if plan.campaign.content_hash != campaign_hash:
        found.append(("campaign hash", plan.campaign.content_hash[:12], campaign_hash[:12]))
    for what, mine, theirs in (("images", spec.data.images, source.data.images),
                               ("split", spec.data.split, source.data.split),
                               ("observation", spec.data.observation,
                                source.data.observation),
                               ("task", spec.task, source.task)):
        if mine != theirs:
            found.append((what, mine.model_dump(), theirs.model_dump()))
    return found


def _changed(observation: ObservationSpec) -> dict[str, Any]:
    """The observation model's keys that differ from none: a key added later leaves the hashes
    of experiments that do not use it as they were."""
    return observation.model_dump(mode="json", exclude_defaults=True)
