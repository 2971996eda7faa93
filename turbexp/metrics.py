"""The metrics every experiment reports, under the same names across the catalogue."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

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
    if task == "classify":
        auc = (
            float(skm.roc_auc_score(y_true, y_score))
            if len(np.unique(y_true)) == 2
            else float("nan")
        )
        return {
            "roc_auc": auc,
            "accuracy": float(skm.accuracy_score(y_true, y_pred)),
            "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        }
    return {
        "mse": float(skm.mean_squared_error(y_true, y_pred)),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else float("nan"),
    }
