"""The metrics every experiment reports, under the same names across the catalogue.

Written in numpy, so that a bootstrap can afford a thousand evaluations per run;
the tests hold them equal to scikit-learn's to round-off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

# name -> direction of improvement
METRICS: dict[str, dict[str, str]] = {
    "classify": {"roc_auc": "maximize", "accuracy": "maximize", "f1": "maximize"},
    "regress": {"mse": "minimize", "mae": "minimize", "r2": "maximize"},
}


def direction(task: str, metric: str) -> str:
    return METRICS[task][metric]


def score(task: str, y_true: np.ndarray, y_pred: np.ndarray,
          y_score: np.ndarray) -> dict[str, float]:
    """All metrics of ``task``: ``y_score`` is the class-1 score (classify) or the prediction."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if task == "classify":
        return {"roc_auc": roc_auc(y_true, y_score),
                "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
                "f1": f1(y_true, y_pred)}
    truth, predicted = y_true.astype(np.float64), y_pred.astype(np.float64)
    error = predicted - truth
    return {"mse": float(np.mean(error**2)) if len(error) else float("nan"),
            "mae": float(np.mean(np.abs(error))) if len(error) else float("nan"),
            "r2": r2(truth, predicted)}


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve of class 1 (the Mann-Whitney statistic, ties counted half);
    NaN unless both classes are present."""
    positive = np.asarray(y_true).ravel() == 1
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(y_score, dtype=np.float64).ravel())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 score of class 1; 0 when class 1 is neither present nor predicted."""
    true, predicted = y_true == 1, y_pred == 1
    tp = int(np.sum(true & predicted))
    wrong = int(np.sum(true != predicted))
    return 2 * tp / (2 * tp + wrong) if tp or wrong else 0.0


def r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Coefficient of determination; NaN for fewer than two samples, and for a constant
    truth 1 (perfect) or 0, as scikit-learn's ``force_finite``."""
    if len(truth) < 2:
        return float("nan")
    residual = float(np.sum((truth - predicted) ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0:
        return 1.0 if residual == 0 else 0.0
    return 1.0 - residual / total


FPR_GRID = np.linspace(0.0, 1.0, 101)
"""False-positive rates at which ROC curves are compared and averaged."""


def roc_tpr(y_true: np.ndarray, y_score: np.ndarray, fpr: np.ndarray = FPR_GRID) -> np.ndarray:
    """The ROC curve of class 1 as true-positive rates at ``fpr`` (the upper envelope at
    ties of the false-positive rate); NaN unless both classes are present."""
    positive = np.asarray(y_true).ravel() == 1
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.full(len(fpr), np.nan)
    order = np.argsort(-np.asarray(y_score, dtype=np.float64).ravel(), kind="stable")
    hits = positive[order]
    score = np.asarray(y_score, dtype=np.float64).ravel()[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # end of each tied group
    tps = np.r_[0, np.cumsum(hits)[last]] / n_pos
    fps = np.r_[0, np.cumsum(~hits)[last]] / n_neg
    return np.interp(fpr, fps, tps)


def linear_fit(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Slope and intercept of predicted against true (least squares) and the mean bias
    (predicted − true); NaN where the truth does not vary."""
    truth = np.asarray(truth, dtype=np.float64).ravel()
    predicted = np.asarray(predicted, dtype=np.float64).ravel()
    bias = float(np.mean(predicted - truth)) if len(truth) else float("nan")
    if len(truth) < 2 or np.ptp(truth) == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "bias": bias}
    slope, intercept = np.polyfit(truth, predicted, 1)
    return {"slope": float(slope), "intercept": float(intercept), "bias": bias}


def is_probability(score: np.ndarray) -> bool:
    """Whether every class-1 score lies in [0, 1] (a probability, not a decision value)."""
    score = np.asarray(score, dtype=np.float64)
    return bool(np.all((score >= 0) & (score <= 1)))


def brier(y_true: np.ndarray, probability: np.ndarray) -> float:
    """Mean squared difference between the class-1 probability and the outcome (0 or 1)."""
    truth = (np.asarray(y_true).ravel() == 1).astype(np.float64)
    p = np.asarray(probability, dtype=np.float64).ravel()
    return float(np.mean((p - truth) ** 2)) if len(p) else float("nan")


def expected_calibration_error(y_true: np.ndarray, probability: np.ndarray,
                               bins: int = 10) -> float:
    """The gap between predicted probability and observed frequency of class 1, averaged
    over ``bins`` equal-width probability bins weighted by their share of the images."""
    truth = (np.asarray(y_true).ravel() == 1).astype(np.float64)
    p = np.asarray(probability, dtype=np.float64).ravel()
    if not len(p):
        return float("nan")
    which = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, truth, bins) - np.bincount(which, p, bins))
    return float(gap.sum() / count.sum())


def class_scores(model: Any, features: np.ndarray) -> np.ndarray:
    """Score of class 1: its probability, else the decision value, else the predicted label."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(features)[:, 1]
    if hasattr(model, "decision_function"):
        return model.decision_function(features)
    return np.asarray(model.predict(features), dtype=np.float64)


def predict_scored(task: str, model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of ``model`` (a pipeline or an estimator) and the score the metrics rank
    by: the class-1 score (:func:`class_scores`) or the prediction itself.

    Each step before the last transforms ``x`` once. A binary classifier whose prediction is
    a function of its score (scikit-learn's calibrated classifier: the class of highest
    probability; an SVC without probabilities: the side of its decision value, as libsvm
    breaks a tie) is evaluated once, and the prediction taken from the score; any other
    is asked for both.
    """
    from sklearn.pipeline import Pipeline

    while isinstance(model, Pipeline):
        x = model[:-1].transform(x) if len(model) > 1 else x
        model = model[-1]
    if task != "classify":
        y_pred = model.predict(x)
        return y_pred, np.asarray(y_pred, dtype=np.float64)
    derived = _derived_prediction(model, x)
    if derived is not None:
        return derived
    return model.predict(x), class_scores(model, x)


def _derived_prediction(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    classes = getattr(model, "classes_", ())
    if len(classes) != 2:
        return None
    if type(model) is CalibratedClassifierCV:  # its predict: argmax of predict_proba
        proba = model.predict_proba(x)
        return classes[np.argmax(proba, axis=1)], proba[:, 1]
    if type(model) is SVC and not hasattr(model, "predict_proba") and not model.break_ties:
        decision = model.decision_function(x)  # libsvm: class 1 unless the value is < 0
        return classes[(decision >= 0).astype(np.intp)], decision
    return None
