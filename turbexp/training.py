"""What an estimator that trains in epochs can learn about the fit it is part of.

The runner fits every model with :func:`fit`, which hands a :class:`FitContext`
(an :class:`EpochReporter` that logs per-epoch metrics to the active MLflow run
and reports to the Optuna trial, pruning it when the trial's pruner says so; the
validation data of a tuning trial; the simulation and stored metadata of each
image) by scikit-learn's metadata routing to every part of the model that
requests it: a ``fit(X, y, fit_context=None)`` whose class declares
``__metadata_request__fit = {"fit_context": True}``. Parts that do not (every
scikit-learn estimator) are fitted as usual. Nothing here depends on a deep
learning framework.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Objective = tuple[str, Callable[[Any], float]]

FIT_CONTEXT = "fit_context"
"""The fit parameter, routed by scikit-learn's metadata routing, that carries the context."""


class EpochReporter:
    """Receives the metrics of each epoch: logs them and reports to an Optuna trial.

    ``objective`` is ``(name, function)``: the function scores the estimator in
    training (on the validation data, in the study's metric), the value is logged
    under ``name`` and reported to ``trial``, so the pruner compares trials in
    the study's own metric and direction.
    """

    def __init__(self, trial: Any = None, objective: Objective | None = None,
                 log: bool = True) -> None:
        self.trial = trial
        self.objective = objective
        self.log = log
        self.history: dict[str, list[tuple[int, float]]] = {}

    def report(self, epoch: int, metrics: Mapping[str, float], estimator: Any = None) -> None:
        """Record epoch ``epoch`` (counted from 1); raises :class:`optuna.TrialPruned` if the
        trial is to be pruned."""
        import mlflow
        import optuna

        from turbexp import interrupt

        interrupt.check()
        values = {name: float(value) for name, value in metrics.items()}
        value = None
        if self.objective is not None and estimator is not None:
            name, score = self.objective
            value = float(score(estimator))
            values[name] = value
        for name, v in values.items():
            self.history.setdefault(name, []).append((epoch, v))
        if self.log and mlflow.active_run() is not None:
            mlflow.log_metrics({k: v for k, v in values.items() if np.isfinite(v)}, step=epoch)
        if self.trial is not None and value is not None and np.isfinite(value):
            self.trial.report(value, epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    @property
    def epochs(self) -> int:
        """The last epoch reported (0 before any)."""
        return max((points[-1][0] for points in self.history.values()), default=0)

    def learning_curve(self) -> Any:
        """A figure of every recorded metric against the epoch, losses on their own panel."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        losses = sorted(k for k in self.history if k.endswith("loss"))
        others = sorted(k for k in self.history if not k.endswith("loss"))
        panels = [group for group in (losses, others) if group]
        fig = Figure(figsize=(5.5 * len(panels), 4), layout="constrained")
        for i, names in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            for name in names:
                epochs, values = zip(*self.history[name], strict=True)
                style = "--" if name.startswith("train_") else "-"
                ax.plot(epochs, values, style, marker=".", label=name)
            ax.set(xlabel="epoch", ylabel="loss" if names is losses else "metric",
                   title="Learning curve" if i == 0 else "Metrics")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.legend(fontsize="small")
        return fig

    def log_learning_curve(self, artifact: str = "training/learning_curve.png") -> bool:
        """Log :meth:`learning_curve` to the active MLflow run, if any epoch was reported."""
        import mlflow

        if not self.history or mlflow.active_run() is None:
            return False
        mlflow.log_figure(self.learning_curve(), artifact)
        return True


@dataclass
class FitContext:
    """What the runner tells an estimator about the fit it is in.

    ``validation`` is ``(X, y)`` to validate on (the test split while tuning),
    or None, when an estimator that needs validation data holds out part of
    what it is fitted on, by ``groups`` (the simulation of each row) when given.
    ``metadata`` and ``validation_metadata`` hold, per row, the stored metadata
    of its simulation. ``tuning`` is true inside Optuna trials.
    """

    reporter: EpochReporter | None = None
    validation: tuple[np.ndarray, np.ndarray] | None = None
    groups: np.ndarray | None = None
    metadata: Sequence[Mapping[str, Any]] | None = None
    validation_metadata: Sequence[Mapping[str, Any]] | None = None
    tuning: bool = False

    def report(self, epoch: int, metrics: Mapping[str, float], estimator: Any = None) -> None:
        """Pass one epoch's metrics to the reporter, if there is one."""
        if self.reporter is not None:
            self.reporter.report(epoch, metrics, estimator)


def fit(model: Any, X: Any, y: Any, context: FitContext) -> Any:
    """``model.fit(X, y)`` (an estimator or a pipeline), with ``context`` routed as
    ``fit_context`` to every part whose class requests it; returns the fitted model."""
    from sklearn import config_context
    from sklearn.utils.metadata_routing import get_routing_for_object

    with config_context(enable_metadata_routing=True):
        if get_routing_for_object(model).consumes("fit", [FIT_CONTEXT]):
            return model.fit(X, y, **{FIT_CONTEXT: context})
        return model.fit(X, y)
