"""The scikit-learn estimator plugins."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from turbexp.plugins import load_registry
from turbexp_plugins.hog import Hog
from turbexp_plugins.sklearn_estimators import Logistic, Svm, Svr

CLASSIFIERS = [Svm, Logistic]


def _classes(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian blobs on a large, offset scale: separable once standardised."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.standard_normal((n, 4)) + 3.0 * y[:, None]
    return X * 1000.0 + 5e4, y


def _index(n: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    index = rng.uniform(3.0, 4.5, n)
    X = np.column_stack([-index + 0.02 * rng.standard_normal(n), rng.standard_normal(n)])
    return X * [1e-3, 10.0], index


@pytest.mark.parametrize("plugin", CLASSIFIERS)
def test_classifiers_separate_blobs(plugin: type) -> None:
    X, y = _classes()
    model = plugin().build(plugin.Params(), "classify")
    assert isinstance(model, Pipeline)
    assert isinstance(model.named_steps["scale"], StandardScaler)
    model.fit(X[:80], y[:80])
    assert model.score(X[80:], y[80:]) >= 0.95
    score = model.decision_function(X[80:])
    assert score.shape == (40,)
    assert np.mean((score > 0) == y[80:]) >= 0.95


def test_svm_probability_and_linear_kernel() -> None:
    X, y = _classes()
    model = Svm().build(Svm.Params(probability=True, kernel="linear", C=10), "classify")
    model.fit(X[:80], y[:80])
    proba = model.predict_proba(X[80:])
    assert proba.shape == (40, 2)
    assert np.mean((proba[:, 1] > 0.5) == y[80:]) >= 0.95
    assert not hasattr(Svm().build(Svm.Params(), "classify"), "predict_proba")


@pytest.mark.parametrize("params", [{}, {"gamma": 0.5, "epsilon": 0.01, "C": 10.0}])
def test_svr_regresses_the_index(params: dict) -> None:
    X, index = _index()
    model = Svr().build(Svr.Params(**params), "regress").fit(X[:100], index[:100])
    error = model.predict(X[100:]) - index[100:]
    assert np.sqrt(np.mean(error**2)) < 0.12


def test_tasks_are_declared_and_enforced() -> None:
    assert Svm.tasks == frozenset({"classify"})
    assert Logistic.tasks == frozenset({"classify"})
    assert Svr.tasks == frozenset({"regress"})
    with pytest.raises(ValueError, match="'svm' supports task classify"):
        Svm().build(Svm.Params(), "regress")
    with pytest.raises(ValueError, match="'svr' supports task regress"):
        Svr().build(Svr.Params(), "classify")
    with pytest.raises(ValueError, match="logistic"):
        Logistic().build(Logistic.Params(), "regress")


@pytest.mark.parametrize(
    ("plugin", "bad"),
    [
        (Svm, {"C": 0}),
        (Svm, {"C": -1}),
        (Svm, {"gamma": 0}),
        (Svm, {"gamma": "auto"}),
        (Svm, {"kernel": "poly"}),
        (Svm, {"class_weight": "heavy"}),
        (Svr, {"epsilon": -0.1}),
        (Svr, {"gamma": -1.0}),
        (Logistic, {"max_iter": 0}),
        (Logistic, {"penalty": "l1"}),
    ],
)
def test_bad_params_are_refused(plugin: type, bad: dict) -> None:
    with pytest.raises(ValidationError):
        plugin.Params(**bad)


def test_gamma_accepts_scale_or_a_positive_number() -> None:
    assert Svm.Params().gamma == "scale"
    assert Svm.Params(gamma=0.01).gamma == 0.01
    assert Svm().build({"gamma": 0.01}, "classify").named_steps["model"].gamma == 0.01


@pytest.mark.parametrize("plugin", [Svm, Svr, Logistic])
def test_search_space_bounds_are_valid(plugin: type) -> None:
    assert "C" in plugin.search_space
    assert plugin.search_space["C"].log
    for key, space in plugin.search_space.items():
        assert key in plugin.Params.model_fields
        plugin.Params(**{key: space.low})
        plugin.Params(**{key: space.high})


@pytest.mark.parametrize(("plugin", "task"), [(Svm, "classify"), (Logistic, "classify")])
def test_deterministic(plugin: type, task: str) -> None:
    X, y = _classes()
    first = plugin().build(plugin.Params(), task).fit(X, y).decision_function(X)
    second = plugin().build(plugin.Params(), task).fit(X, y).decision_function(X)
    np.testing.assert_array_equal(first, second)


def test_full_pipeline_pickles() -> None:
    rng = np.random.default_rng(0)
    images = rng.standard_normal((20, 32, 32)).astype(np.float32)
    y = np.arange(20) % 2
    images[y == 1] += np.linspace(-2, 2, 32, dtype=np.float32)  # a gradient marks class 1
    pipeline = Pipeline(
        [
            ("features", Hog().build(Hog.Params())),
            ("estimator", Svm().build(Svm.Params(), "classify")),
        ]
    ).fit(images, y)
    restored = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_array_equal(
        restored.decision_function(images), pipeline.decision_function(images)
    )
    np.testing.assert_array_equal(restored.predict(images), y)


def test_registered() -> None:
    registry = load_registry()
    assert {"logistic", "svm", "svr"} <= set(registry.names("estimator"))
    assert registry.plugins["estimator"]["svm"].cls is Svm
    assert not [f for f in registry.failures if f.entry_point == "sklearn_estimators"]


class _Counting:
    """Counts the calls of the named methods of a class (the real methods still run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type, *names: str) -> None:
        self.calls = dict.fromkeys(names, 0)
        for name in names:
            original = getattr(cls, name)

            def counted(obj, *args, _name=name, _original=original, **kwargs):
                self.calls[_name] += 1
                return _original(obj, *args, **kwargs)

            monkeypatch.setattr(cls, name, counted)


@pytest.mark.parametrize("probability", [False, True])
def test_a_scored_image_is_evaluated_once_with_the_predictions_unchanged(
        monkeypatch: pytest.MonkeyPatch, probability: bool) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    from turbexp.metrics import class_scores, predict_scored

    X, y = _classes()
    model = Svm().build(Svm.Params(probability=probability), "classify").fit(X, y)
    Xt = _classes(seed=1)[0] + np.random.default_rng(2).normal(0, 2000, (120, 4))
    expected = model.predict(Xt), class_scores(model[-1], model[:-1].transform(Xt))
    evaluations = _Counting(monkeypatch, SVC, "decision_function", "predict")
    calibrated = _Counting(monkeypatch, CalibratedClassifierCV, "predict_proba", "predict")
    scaled = _Counting(monkeypatch, StandardScaler, "transform")
    y_pred, score = predict_scored("classify", model, Xt)
    np.testing.assert_array_equal(y_pred, expected[0])
    np.testing.assert_array_equal(score, expected[1])
    assert 0 < expected[0].sum() < len(Xt)  # both classes predicted: the test can tell them
    assert sum(evaluations.calls.values()) == 1, evaluations.calls
    assert calibrated.calls == {"predict_proba": int(probability), "predict": 0}
    assert scaled.calls["transform"] == 1


def test_a_classifier_turbexp_does_not_know_is_asked_for_both() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from turbexp.metrics import predict_scored

    X, y = _classes()
    model = Pipeline([("scale", StandardScaler()), ("knn", KNeighborsClassifier(5))]).fit(X, y)
    y_pred, score = predict_scored("classify", model, X)
    np.testing.assert_array_equal(y_pred, model.predict(X))
    np.testing.assert_array_equal(score, model.predict_proba(X)[:, 1])
