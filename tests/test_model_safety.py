"""A logged model cannot run code on the machine that loads it: the types it holds are checked
against what turbexp allows, never against the list the model carries."""

from __future__ import annotations

import functools
from pathlib import Path

import mlflow
import numpy as np
import pytest
from conftest import turbexp_cli
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from turbexp.tracking import load_pipeline, refused_types
from turbexp_plugins.power_spectrum import PowerSpectrumTransformer

EXPLOIT_TYPES = ["builtins.exec", "functools.partial"]


def _log(pipeline: Pipeline, trusted: list[str]) -> str:
    """Log ``pipeline`` as anyone with write access to the store could, claiming ``trusted``."""
    mlflow.set_experiment("shared")  # of this test's store, whatever an earlier test chose
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(pipeline, name="model", serialization_format="skops",
                                 skops_trusted_types=trusted)
    return f"runs:/{run.info.run_id}/model"


def test_a_model_that_would_run_code_is_refused(workdir: Path) -> None:
    marker = workdir / "pwned"
    images = np.random.default_rng(0).normal(size=(8, 16, 16))
    labels = np.r_[np.zeros(4), np.ones(4)]
    pipeline = Pipeline([("features", PowerSpectrumTransformer()),
                         ("estimator", LogisticRegression())]).fit(images, labels)
    # a first step whose payload runs on the loading machine as soon as it predicts
    evil = FunctionTransformer(functools.partial(exec, f"open({str(marker)!r}, 'w')"))
    pipeline.steps.insert(0, ("evil", evil))
    uri = _log(pipeline, [*EXPLOIT_TYPES,
                          "turbexp_plugins.power_spectrum.PowerSpectrumTransformer"])
    with pytest.raises(ValueError, match="types turbexp does not trust") as err:
        load_pipeline(uri)
    assert "builtins.exec" in str(err.value) and "functools.partial" in str(err.value)
    assert not marker.exists()
    result = turbexp_cli("predict", uri, "nothing.fits", cwd=workdir)
    assert result.returncode == 2 and not marker.exists()


def test_turbexp_and_scikit_learn_models_load(workdir: Path) -> None:
    images = np.random.default_rng(1).normal(size=(8, 16, 16))
    pipeline = Pipeline([("features", PowerSpectrumTransformer()),
                         ("estimator", LogisticRegression())]).fit(images, np.r_[[0] * 4, [1] * 4])
    loaded = load_pipeline(_log(pipeline, ["turbexp_plugins.power_spectrum."
                                           "PowerSpectrumTransformer"]))
    np.testing.assert_allclose(loaded.predict_proba(images), pipeline.predict_proba(images))


@pytest.mark.parametrize(("name", "why"), [
    ("builtins.exec", "a builtin"),
    ("os.system", "outside turbexp and its plugins"),
    ("turbexp.tracking.load_pipeline", "a function, not an estimator class"),
    ("turbexp_plugins.power_spectrum.np", "a module, not a class"),
    ("turbexp_plugins.power_spectrum.Missing", "not there"),
    ("turbexp_plugins.power_spectrum.BaseEstimator", "scikit-learn's, imported there"),
])
def test_only_estimator_classes_of_turbexp_and_its_plugins_are_allowed(name: str,
                                                                       why: str) -> None:
    assert refused_types([name]) == [name], why
    assert refused_types(["turbexp_plugins.power_spectrum.PowerSpectrumTransformer"]) == []
