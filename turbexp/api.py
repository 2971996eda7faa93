"""The plugin API: everything a plugin may import from turbexp, and nothing else.

A plugin package imports only this module (an import-linter contract checks the
built-in plugins, see ``[tool.importlinter]`` in pyproject.toml):

- the hook marker and the ``register`` callable the hooks receive
  (:mod:`turbexp.hookspecs` documents each hook);
- the plugin base classes and the types they exchange with turbexp
  (:mod:`turbexp.plugin_types`);
- helpers: errors, units, the turbulence and projection routines of the embedded
  solver, per-image parallelism, atomic writes, the uncertainty machinery, the
  report probe, map reading, t-SNE maps, the ROC and index-axes figures shared with
  ``turbexp compare``, another feature plugin's transformer
  (:func:`build_features`) and the metrics turbexp logs.

Names here stay stable across minor versions; anything else in turbexp may change.
"""

from __future__ import annotations

from typing import Any

from turbexp import conformal, metrics
from turbexp.calibration import MapCalibration
from turbexp.embedding import embed
from turbexp.errors import SimulationError, UserError
from turbexp.evaluation import Probe, Simulation, probe_of
from turbexp.figures import draw_roc, finish_roc, index_axes, index_range
from turbexp.files import atomic_write
from turbexp.hookspecs import Register, hookimpl
from turbexp.images import images_per_simulation
from turbexp.machine import memory_here
from turbexp.maps import ObservedMap, read_map, tile_map
from turbexp.metrics import class_scores, predict_scored
from turbexp.parallel import map_images
from turbexp.paths import home
from turbexp.plugin_types import (
    Choice,
    Estimator,
    FeatureExtractor,
    ImageInputs,
    Physics,
    Plugin,
    PluginParams,
    Range,
    Report,
    ReportContext,
    ReportOutput,
    SearchSpace,
    SimulationRequest,
    SimulationResult,
    Simulator,
    TaskKind,
)
from turbexp.projection import column_density
from turbexp.spec import StrictModel
from turbexp.store import content_hash
from turbexp.training import FitContext
from turbexp.turbulence import velocity_field
from turbexp.uncertainty import Interval, SimulationBootstrap, with_interval
from turbexp.units import MYR_S, PC_CM, sound_speed_cm_s, time_code, time_myr


def load_pipeline(uri: str) -> Any:
    """The fitted scikit-learn pipeline logged at ``uri`` (MLflow is imported on first use:
    listing plugins does not need it); see :func:`turbexp.tracking.load_pipeline`."""
    from turbexp import tracking

    return tracking.load_pipeline(uri)


def build_features(name: str, params: dict[str, Any] | None = None) -> Any:
    """The transformer of the installed feature plugin ``name`` with ``params`` (checked
    against its ``Params``), for a plugin that compares its own features with another's."""
    from turbexp.plugins import registry

    plugin = registry().get("features", name).create()
    return plugin.build(plugin.validated(params or {}))


def resolve_model_uri(uri: str) -> str:
    """``experiment:NAME`` as the model URI of that experiment's latest finished run; see
    :func:`turbexp.tracking.resolve_model_uri`."""
    from turbexp import tracking

    return tracking.resolve_model_uri(uri)


__all__ = [
    "MYR_S",
    "PC_CM",
    "Choice",
    "Estimator",
    "FeatureExtractor",
    "FitContext",
    "ImageInputs",
    "Interval",
    "MapCalibration",
    "ObservedMap",
    "Physics",
    "Plugin",
    "PluginParams",
    "Probe",
    "Range",
    "Register",
    "Report",
    "ReportContext",
    "ReportOutput",
    "SearchSpace",
    "Simulation",
    "SimulationBootstrap",
    "SimulationError",
    "SimulationRequest",
    "SimulationResult",
    "Simulator",
    "StrictModel",
    "TaskKind",
    "UserError",
    "atomic_write",
    "build_features",
    "class_scores",
    "column_density",
    "conformal",
    "content_hash",
    "draw_roc",
    "embed",
    "finish_roc",
    "home",
    "hookimpl",
    "images_per_simulation",
    "index_axes",
    "index_range",
    "load_pipeline",
    "map_images",
    "memory_here",
    "metrics",
    "predict_scored",
    "probe_of",
    "read_map",
    "resolve_model_uri",
    "sound_speed_cm_s",
    "tile_map",
    "time_code",
    "time_myr",
    "velocity_field",
    "with_interval",
]
