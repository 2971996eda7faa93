"""Calibrated probabilities for a map's class, by Platt scaling on maps the model did not fit.

A map's probability is the mean of its images' probabilities (as ``turbexp predict`` averages
a map's tiles). Averaging pulls it towards 0.5 while the map's class is right more often than
any one image's, so it is under-confident. A logistic regression on its logit, fitted on the
maps of the test split, maps it to a calibrated probability; the two numbers are recorded with
the model (:data:`TAG`) and applied by ``turbexp predict``. Calibrated on the training code's
maps, it says nothing of another code's: the cross-code report measures that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

TAG = "turbexp.map_calibration"
"""The run tag that records the calibration with the model (JSON)."""

EPSILON = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class MapCalibration:
    """calibrated P = 1 / (1 + exp(-(slope × logit(P) + intercept)))."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, probability: np.ndarray, y_true: np.ndarray) -> MapCalibration | None:
        """Platt scaling of these maps' probabilities; None unless both classes are there."""
        from sklearn.linear_model import LogisticRegression

        y = (np.asarray(y_true) == 1).astype(int)
        if y.min() == y.max():
            return None
        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(probability)[:, None], y)
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def __call__(self, probability: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(self.slope * _logit(probability) + self.intercept)))

    def to_tag(self) -> str:
        return json.dumps({"method": "platt", "slope": self.slope, "intercept": self.intercept})

    @classmethod
    def from_tag(cls, text: str) -> MapCalibration:
        """``ValueError`` when ``text`` is not a recorded calibration."""
        try:
            data = json.loads(text)
            return cls(float(data["slope"]), float(data["intercept"]))
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a map calibration: {text!r}") from exc
