"""Scikit-learn estimators: support vector machines and logistic regression.

Each estimator is built as a pipeline that standardises the features first, so
features of any scale (HOG histograms, spectral slopes) can be used directly.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from turbexp.api import Estimator, PluginParams, Range, SearchSpace, TaskKind, hookimpl

RANDOM_STATE = 0

Gamma = Literal["scale"] | Annotated[float, Field(gt=0)]
Kernel = Literal["rbf", "linear"]

C_RANGE = Range(1e-2, 1e2, log=True)
GAMMA_RANGE = Range(1e-4, 1.0, log=True)
EPSILON_RANGE = Range(1e-3, 1.0, log=True)


def _check_task(plugin: Estimator, task: str) -> None:
    if task not in plugin.tasks:
        supported = ", ".join(sorted(plugin.tasks))
        raise ValueError(f"estimator {plugin.name!r} supports task {supported}, not {task!r}")


def scaled(model: Any) -> Pipeline:
    """``model`` preceded by a :class:`~sklearn.preprocessing.StandardScaler`."""
    return Pipeline([("scale", StandardScaler()), ("model", model)])


class Svm(Estimator):
    """Support vector classifier (the reference study's HOG + SVM)."""

    name: ClassVar[str] = "svm"
    description: ClassVar[str] = "support vector classifier (scikit-learn SVC)"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify"})

    class Params(PluginParams):
        C: float = Field(1.0, gt=0, description="inverse regularisation strength")
        kernel: Kernel = Field("rbf", description="kernel")
        gamma: Gamma = Field("scale", description="RBF kernel width: 'scale' or a positive number")
        class_weight: Literal["none", "balanced"] = Field(
            "none", description="'balanced' reweights classes by inverse frequency"
        )
        probability: bool = Field(
            False, description="calibrate (Platt, 5-fold) to offer predict_proba; slower"
        )

    search_space: ClassVar[SearchSpace] = {"C": C_RANGE, "gamma": GAMMA_RANGE}

    def build(self, params: PluginParams, task: TaskKind) -> Pipeline:
        _check_task(self, task)
        p = self.validated(params)
        model: Any = SVC(
            C=p.C,
            kernel=p.kernel,
            gamma=p.gamma,
            class_weight=None if p.class_weight == "none" else p.class_weight,
            random_state=RANDOM_STATE,
        )
        if p.probability:
            model = CalibratedClassifierCV(model, method="sigmoid", cv=5, ensemble=False)
        return scaled(model)


class Svr(Estimator):
    """Support vector regression of the spectral index."""

    name: ClassVar[str] = "svr"
    description: ClassVar[str] = "support vector regression (scikit-learn SVR)"
    tasks: ClassVar[frozenset[str]] = frozenset({"regress"})

    class Params(PluginParams):
        C: float = Field(1.0, gt=0, description="inverse regularisation strength")
        epsilon: float = Field(0.1, ge=0, description="half-width of the loss-free tube")
        kernel: Kernel = Field("rbf", description="kernel")
        gamma: Gamma = Field("scale", description="RBF kernel width: 'scale' or a positive number")

    search_space: ClassVar[SearchSpace] = {
        "C": C_RANGE,
        "epsilon": EPSILON_RANGE,
        "gamma": GAMMA_RANGE,
    }

    def build(self, params: PluginParams, task: TaskKind) -> Pipeline:
        _check_task(self, task)
        p = self.validated(params)
        return scaled(SVR(C=p.C, epsilon=p.epsilon, kernel=p.kernel, gamma=p.gamma))


class Logistic(Estimator):
    """L2-regularised logistic regression."""

    name: ClassVar[str] = "logistic"
    description: ClassVar[str] = "logistic regression (scikit-learn LogisticRegression)"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify"})

    class Params(PluginParams):
        C: float = Field(1.0, gt=0, description="inverse regularisation strength")
        max_iter: int = Field(1000, ge=1, description="maximum solver iterations")

    search_space: ClassVar[SearchSpace] = {"C": C_RANGE}

    def build(self, params: PluginParams, task: TaskKind) -> Pipeline:
        _check_task(self, task)
        p = self.validated(params)
        return scaled(LogisticRegression(C=p.C, max_iter=p.max_iter, random_state=RANDOM_STATE))


@hookimpl
def register_estimators(register: Any) -> None:
    register(Svm)
    register(Svr)
    register(Logistic)
