"""An experiment's fitted pipeline logged to MLflow: skops format, signature, requirements,
and the tags ``turbexp predict`` reads (classes, physical scale, beam, what the images
hold). The model is named after the experiment and registered under that name, its newest
version with the alias ``newest`` (repeats register repeat 0's model only, the one the
experiment's run names)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import mlflow
import numpy as np
from mlflow.models import infer_signature
from sklearn.pipeline import Pipeline

from turbexp import tracking
from turbexp.experiment import ExperimentPlan
from turbexp.images import image_side_pc


def _plugin_types(model: Any) -> list[str]:
    """Qualified names of the non-scikit-learn classes in a model, for skops to trust."""
    found: set[str] = set()
    objects = [model, *model.get_params(deep=True).values()] if hasattr(model, "get_params") \
        else [model]
    for obj in objects:
        cls = type(obj)
        if hasattr(obj, "get_params") and not cls.__module__.startswith("sklearn."):
            found.add(f"{cls.__module__}.{cls.__qualname__}")
    return sorted(found)


def log_model(plan: ExperimentPlan, pipeline: Pipeline, example: np.ndarray) -> str:
    """Log and register the model; returns its URI (``models:/NAME/VERSION`` when registered,
    else ``runs:/ID/NAME``)."""
    import sklearn
    from mlflow.tracking import MlflowClient

    assert plan.features is not None and plan.estimator is not None
    plugins = (plan.features.plugin, plan.estimator.plugin)
    packages = {p.package: p.version for p in plugins if p.package != "?"}
    extra = sorted({r for p in plugins for r in p.create().requirements()})
    requirements = [f"scikit-learn=={sklearn.__version__}",
                    *(f"{name}=={version}" for name, version in sorted(packages.items())),
                    *extra]
    signature = infer_signature(example, pipeline.predict(example))
    name = plan.spec.name
    with warnings.catch_warnings(), tracking.quiet_mlflow():
        warnings.simplefilter("ignore")
        info = mlflow.sklearn.log_model(
            pipeline,
            name=name,
            registered_model_name=name if plan.repeat == 0 else None,
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            serialization_format="skops",
            skops_trusted_types=_plugin_types(pipeline),
        )
    mlflow.set_tag(f"{tracking.TAG}.classes", json.dumps(list(plan.spec.task.classes or {})))
    images = plan.spec.data.images
    side = image_side_pc(plan.campaign.spec.physics.box_pc, images)
    # the physical scale the model was trained at, for maps of other resolutions
    mlflow.set_tags({f"{tracking.TAG}.image_pc": f"{side:.8g}",
                     f"{tracking.TAG}.pixel_pc": f"{side / images.size:.8g}",
                     f"{tracking.TAG}.beam_fwhm_pc":
                         f"{plan.spec.data.observation.beam_fwhm_pc:.8g}",
                     tracking.MODEL_NAME: name, tracking.INPUTS: plan.inputs})
    version = info.registered_model_version
    if version is None:
        return f"runs:/{mlflow.active_run().info.run_id}/{name}"
    MlflowClient().set_registered_model_alias(name, tracking.NEWEST, str(version))
    return f"models:/{name}/{version}"
