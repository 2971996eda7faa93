"""Reports rendered and logged after an experiment's model, each on its own."""

from __future__ import annotations

import traceback

import mlflow
from rich.markup import escape

from turbexp import tracking
from turbexp.campaign import run_campaign
from turbexp.errors import UserError
from turbexp.experiment import ExperimentPlan, ReportPlan
from turbexp.plugin_types import ReportContext
from turbexp.plugins import strict_plugins
from turbexp.progress import console, step
from turbexp.store import SimulationStore

REPORT_FAILED = f"{tracking.TAG}.report_failed"
"""Tag prefix of a report that failed: ``turbexp.report_failed.NAME`` = the error."""


def _make_campaigns(plan: ExperimentPlan, report: ReportPlan, store: SimulationStore,
                    jobs: int | None, show_progress: bool) -> None:
    """Make the simulations of the campaigns ``report`` declares it makes
    (:meth:`Report.campaigns`), so that rendering only reads the cache."""
    for path, made in report.plugin.create().campaigns(report.params).items():
        if made:
            run_campaign(plan.other_campaign(path), store, jobs=jobs,
                         show_progress=show_progress)


def log_reports(plan: ExperimentPlan, context: ReportContext, store: SimulationStore,
                 jobs: int | None, show_progress: bool) -> None:
    """Make each report's campaigns, then render and log it, each report on its own: one
    that fails leaves the others (and the model) logged, and the run records its traceback
    (``reports/NAME.error.txt``) and a tag; with ``TURBEXP_STRICT_PLUGINS`` set the run then
    fails."""
    import matplotlib.pyplot as plt

    failed = []
    for report in plan.reports:
        name = report.plugin.name
        try:
            _make_campaigns(plan, report, store, jobs, show_progress)
            with step(f"{plan.spec.name}: report {name}", enabled=show_progress):
                output = report.plugin.create().render(context, report.params)
            for file, figure in output.figures.items():
                mlflow.log_figure(figure, f"reports/{file}")
                plt.close(figure)
            if output.metrics:
                mlflow.log_metrics(tracking.finite(output.metrics))
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            mlflow.log_text(traceback.format_exc(), f"reports/{name}.error.txt")
            mlflow.set_tag(f"{REPORT_FAILED}.{name}", message[:500])
            console.print(f"[yellow]warning:[/] {plan.spec.name}: report {name!r} failed "
                          f"({escape(message[:300])}); the model and the other reports are "
                          "logged", soft_wrap=True)
            failed.append(f"{name} ({message[:300]})")
        finally:
            plt.close("all")
    if failed and strict_plugins():
        raise UserError(f"reports failed: {'; '.join(failed)} (TURBEXP_STRICT_PLUGINS is set)",
                        file=str(plan.path), field="evaluate.reports")
