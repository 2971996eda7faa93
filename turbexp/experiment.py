"""Experiments: validating an experiment YAML, with its campaign and plugins, before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from turbexp.campaign import CampaignPlan, PlannedSimulation, plan_campaign
from turbexp.errors import UserError, gather
from turbexp.images import split_simulations
from turbexp.metrics import METRICS, direction
from turbexp.params import ParamPlan, plan_params
from turbexp.plugin_types import PluginParams
from turbexp.plugins import PluginInfo, registry
from turbexp.spec import ExperimentSpec, validate
from turbexp.store import content_hash
from turbexp.yamlfile import YamlDocument, load_yaml


@dataclass(frozen=True)
class ReportPlan:
    plugin: PluginInfo
    params: PluginParams


@dataclass(frozen=True)
class ExperimentPlan:
    """A validated experiment, ready to run."""

    path: Path
    doc: YamlDocument
    spec: ExperimentSpec
    campaign: CampaignPlan
    features: ParamPlan
    estimator: ParamPlan
    reports: list[ReportPlan]

    @property
    def metric(self) -> str:
        return self.spec.metric

    @property
    def direction(self) -> str:
        return direction(self.spec.task.kind, self.metric)

    @property
    def spec_hash(self) -> str:
        """Changes when the experiment or the data it uses changes."""
        return content_hash({"spec": self.spec.model_dump(mode="json"),
                             "campaign": self.campaign.content_hash})

    @property
    def study_name(self) -> str:
        """The Optuna study: the same for specs that differ only in the number of trials,
        so asking for more trials continues the study."""
        spec = self.spec.model_dump(mode="json", exclude={"description": True,
                                                          "tune": {"trials"}})
        spaces = {plan.section: {k: repr(v) for k, v in sorted(plan.space.items())}
                  for plan in (self.features, self.estimator)}
        identity = [spec, spaces, self.campaign.content_hash]
        return f"{self.spec.name}-{content_hash(identity)[:12]}"

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


def plan_experiment(path: str | Path) -> ExperimentPlan:
    """Read and validate an experiment file, its campaign and its plugin parameters."""
    doc = load_yaml(path)
    spec: ExperimentSpec = validate(ExperimentSpec, doc)
    campaign_path = (doc.path.parent / spec.data.campaign).resolve()
    if not campaign_path.is_file():
        raise doc.error(f"campaign file {campaign_path} not found (paths are relative to the "
                        "experiment file)", ("data", "campaign"))
    campaign = plan_campaign(campaign_path)
    tune_defaults = spec.tune.defaults and spec.tune.trials > 0
    features = _plan(doc, "features", spec.features.plugin, spec.features.params, tune_defaults)
    estimator = _plan(doc, "estimator", spec.estimator.plugin, spec.estimator.params,
                      tune_defaults)
    task = spec.task.kind
    if spec.tune.metric is not None and spec.tune.metric not in METRICS[task]:
        raise doc.error(f"{spec.tune.metric!r} is not a {task} metric; expected one of: "
                        f"{', '.join(METRICS[task])}", ("tune", "metric"))
    if task not in estimator.plugin.cls.tasks:
        raise doc.error(f"estimator {estimator.plugin.name!r} does not do {task} tasks",
                        ("estimator", "plugin"))
    if spec.tune.trials == 0 and (features.space or estimator.space):
        raise doc.error("search spaces need tune.trials > 0", ("tune", "trials"))
    reports = []
    for i, ref in enumerate(spec.evaluate.reports):
        loc = ("evaluate", "reports", i)
        plugin = _plugin(doc, "report", ref.plugin, (*loc, "plugin"))
        if task not in plugin.cls.tasks:
            raise doc.error(f"report {ref.plugin!r} does not apply to {task} tasks", loc)
        wanted = getattr(plugin.cls, "estimators", None)
        if wanted is not None and estimator.plugin.name not in wanted:
            raise doc.error(f"report {ref.plugin!r} needs one of the estimators "
                            f"{', '.join(sorted(wanted))}, not {estimator.plugin.name!r}", loc)
        plan = plan_params(plugin, ref.params, doc=doc, loc=loc, tune_defaults=False)
        if plan.space:
            raise doc.error("report parameters take values, not search spaces", loc)
        reports.append(ReportPlan(plugin, plan.sample(None)))
    plan = ExperimentPlan(doc.path, doc, spec, campaign, features, estimator, reports)
    _check_task_against_campaign(plan)
    return plan


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


def plan_experiments(paths: list[str | Path]) -> list[ExperimentPlan]:
    """Validate every file, collecting all errors before reporting them."""
    plans = gather(plan_experiment, paths)
    names = [p.spec.name for p in plans]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"experiment names must be unique; repeated: {', '.join(duplicates)}")
    return plans
