"""The four kinds of plugin and the small types they share.

A plugin is a class with a ``name``, a pydantic ``Params`` model (validated
before any work starts) and a ``search_space`` of default ranges for tuning.
Plugins reach turbexp through the hooks in :mod:`turbexp.hookspecs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

TaskKind = Literal["classify", "regress"]
ImageInputs = Literal["standardised", "log_column_density"]
"""What a feature plugin is given: each image standardised, ``(log10 N - mean) / std``, or
the log10 column density itself, N in g cm⁻² (:attr:`FeatureExtractor.inputs`)."""


class PluginParams(BaseModel):
    """Base of every plugin's parameter model: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Range:
    """A numeric search range; ``log`` samples on a log scale, ``step`` quantises."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class Choice:
    """A categorical search space."""

    choices: tuple[Any, ...]


SearchSpace = dict[str, Range | Choice]


class Plugin:
    """Common declaration of every plugin."""

    kind: ClassVar[str]
    name: ClassVar[str]
    Params: ClassVar[type[PluginParams]] = PluginParams
    search_space: ClassVar[SearchSpace] = {}
    description: ClassVar[str] = ""

    @classmethod
    def validated(cls, params: Any) -> Any:
        """``params`` as this plugin's :attr:`Params`: a mapping or another parameter model
        is validated (``pydantic.ValidationError`` if it does not fit); an instance of
        :attr:`Params` is returned as it is."""
        if isinstance(params, cls.Params):
            return params
        if isinstance(params, PluginParams):
            params = params.model_dump()
        return cls.Params.model_validate(params)

    def requirements(self) -> list[str]:
        """Pip requirements a logged model made with this plugin needs besides turbexp's own
        (e.g. ``["tensorflow==2.20.0"]``)."""
        return []


# --- simulators -------------------------------------------------------------


@dataclass(frozen=True)
class Physics:
    """Physical set-up of one simulation, in the units astronomers use."""

    box_pc: float
    density_g_cm3: float
    temperature_K: float
    mach: float
    time_myr: float
    mean_molecular_weight: float


@dataclass(frozen=True)
class SimulationRequest:
    """Everything that defines one simulation's output."""

    physics: Physics
    index: float  # spectral index n of the initial velocity field, P(k) ∝ k^-n
    grid: int  # cells per side of the base grid and of the projected maps
    seed: int


@dataclass
class SimulationResult:
    """Column density maps (g/cm²) along x, y, z, shape (3, grid, grid)."""

    column_density: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


class Simulator(Plugin):
    """Makes column density maps from a simulation request.

    ``version`` enters the cache key: bump it when the output for the same
    request changes, so stale cache entries are not reused.
    """

    kind: ClassVar[str] = "simulator"
    version: ClassVar[str] = "1"

    def simulate(self, request: SimulationRequest, params: PluginParams) -> SimulationResult:
        raise NotImplementedError

    def identity(self, params: PluginParams) -> dict[str, Any]:
        """What of ``params`` determines the output; it enters the cache key.

        Override to leave out parameters that only say how to run (paths, ranks).
        """
        return params.model_dump(mode="json")

    def check(self, params: PluginParams, grid: int) -> None:
        """Raise ``ValueError`` if the simulator cannot run here with ``params`` on a
        ``grid``-cell campaign; called once before a campaign starts simulating."""


# --- features ---------------------------------------------------------------


class FeatureExtractor(Plugin):
    """Builds a scikit-learn transformer mapping images (n, H, W) to features (n, d).

    The transformer must be picklable (it is logged with the model). ``inputs`` says what
    its images hold: ``"standardised"`` (the default) each image's log10 column density less
    its mean, over its standard deviation, so only the map's structure is seen;
    ``"log_column_density"`` log10 N with N in g cm⁻², for features that measure the
    column density itself (its mean, its width). ``turbexp predict`` then needs maps whose
    unit converts to g cm⁻².
    """

    kind: ClassVar[str] = "features"
    inputs: ClassVar[ImageInputs] = "standardised"

    def build(self, params: PluginParams) -> Any:
        raise NotImplementedError


# --- estimators -------------------------------------------------------------


class Estimator(Plugin):
    """Builds a scikit-learn estimator for a task (``classify`` or ``regress``).

    Classifiers get labels 0..k-1 and should offer ``predict_proba`` or
    ``decision_function``; regressors get the spectral index n.
    """

    kind: ClassVar[str] = "estimator"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify", "regress"})

    def build(self, params: PluginParams, task: TaskKind) -> Any:
        raise NotImplementedError


# --- reports ----------------------------------------------------------------


@dataclass
class ReportContext:
    """What a report sees of a finished experiment, on the holdout split.

    ``y_true`` holds class labels (classify) or the index n (regress);
    ``score`` holds the probability of class 1 (binary classify) or the
    predicted index (regress); ``features`` are the holdout features;
    ``index`` the spectral index of each image's simulation. ``images`` are the
    holdout images (n, H, W), ``model`` the fitted pipeline (features, then
    estimator) and ``metadata`` the stored metadata of each image's simulation.
    ``probe`` scores the model on other maps: other campaigns, zoomed or smoothed maps.
    ``simulation`` is each image's simulation and ``bootstrap`` the resamples of whole
    holdout simulations behind every holdout interval
    (:class:`turbexp.uncertainty.SimulationBootstrap`): a report draws its bands with it.
    """

    task: TaskKind
    class_names: list[str]
    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray
    features: np.ndarray
    index: np.ndarray
    seed: int = 0
    images: np.ndarray | None = None
    model: Any = None
    metadata: list[dict[str, Any]] | None = None
    probe: Any = None  # turbexp.evaluation.Probe: the model on other maps and campaigns
    simulation: np.ndarray | None = None
    bootstrap: Any = None  # turbexp.uncertainty.SimulationBootstrap over the holdout
    map_interval: float | None = None  # regress: conformal half-width of a map's n
    map_calibration: Any = None  # classify: turbexp.calibration.MapCalibration of a map's P


@dataclass
class ReportOutput:
    """Figures (file name -> matplotlib Figure) and scalar metrics of a report."""

    figures: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class Report(Plugin):
    """Turns a :class:`ReportContext` into figures and metrics.

    ``estimators`` names the estimator plugins the report works with (None: any);
    an experiment pairing it with another is refused at validation.
    """

    kind: ClassVar[str] = "report"
    tasks: ClassVar[frozenset[str]] = frozenset({"classify", "regress"})
    estimators: ClassVar[frozenset[str] | None] = None

    def render(self, context: ReportContext, params: PluginParams) -> ReportOutput:
        raise NotImplementedError

    def campaigns(self, params: PluginParams) -> dict[str, bool]:
        """Every other campaign file the report reads (relative to the experiment file),
        each with whether the report makes its missing simulations (True) or only reads
        those already in the cache (False). Each is validated with the experiment,
        ``--dry-run`` counts the simulations of those it makes, and the runner makes them
        before the report renders; an experiment with one whose missing simulations its
        simulator cannot make here is skipped (:func:`turbexp.image_set.unavailable`)."""
        return {}


KINDS: dict[str, type[Plugin]] = {
    "simulator": Simulator,
    "features": FeatureExtractor,
    "estimator": Estimator,
    "report": Report,
}
