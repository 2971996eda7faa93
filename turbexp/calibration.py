"""Calibrated probabilities, with an interval, for a map's class: Venn-ABERS on maps the model
did not fit.

A map's probability is the mean of its images' probabilities (as ``turbexp predict`` averages
a map's tiles). Averaging pulls it towards 0.5 while the map's class is right more often than
any one image's, so it is under-confident. Venn-ABERS calibration (MAPIE's
``VennAbersCalibrator``) fits two isotonic regressions on the maps of the test split, one with
the new map taken as class 0 and one as class 1; their two answers, p0 ≤ p1, bound the map's
calibrated probability, and their gap is wide where few calibration maps resemble it. The
calibration maps' probabilities (to two decimals, per class) are recorded with the model
(:data:`TAG`) and the calibrator refitted from them by ``turbexp predict``. Calibrated on the
training code's maps, it says nothing of another code's: the cross-code report measures that.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from turbexp import metrics

TAG = "turbexp.map_calibration"
"""The run tag that records the calibration with the model (JSON)."""

METHOD = "venn_abers"
DECIMALS = 2
"""The calibration maps' probabilities are kept to this many decimals: at most 101 distinct
values, so the record fits a tag whatever the number of maps."""


class _GivenProbability(ClassifierMixin, BaseEstimator):
    """A fitted 'classifier' whose one input column is already P(class 1)."""

    def fit(self, X: Any = None, y: Any = None) -> _GivenProbability:
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.clip(np.asarray(X, dtype=np.float64)[:, 0], 0.0, 1.0)
        return np.column_stack([1 - p, p])


@dataclass(frozen=True)
class MapCalibration:
    """The calibration maps: each distinct probability with its count of class-0 and class-1
    maps."""

    probability: tuple[float, ...]
    class0: tuple[int, ...]
    class1: tuple[int, ...]

    @classmethod
    def fit(cls, probability: np.ndarray, y_true: np.ndarray) -> MapCalibration | None:
        """The calibration of these maps' probabilities; None unless both classes are there."""
        y = np.asarray(y_true) == 1
        if y.all() or not y.any():
            return None
        p = np.round(np.clip(np.asarray(probability, dtype=np.float64), 0, 1), DECIMALS)
        values, inverse = np.unique(p, return_inverse=True)
        counts = [np.bincount(inverse[y == c], minlength=len(values)) for c in (False, True)]
        return cls(tuple(float(v) for v in values), *(tuple(int(n) for n in c)
                                                      for c in counts))

    @cached_property
    def _calibrator(self) -> Any:
        from mapie.calibration import VennAbersCalibrator

        p = np.repeat(np.tile(self.probability, 2), self.class0 + self.class1)
        y = np.repeat([0, 1], [sum(self.class0), sum(self.class1)])
        return VennAbersCalibrator(estimator=_GivenProbability().fit(),
                                   cv="prefit").fit(p[:, None], y)

    def calibrated(self, probability: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each map's calibrated probability of class 1 and the bounds p0 ≤ p1 around it."""
        p = np.asarray(probability, dtype=np.float64).reshape(-1, 1)
        # MAPIE's isotonic fit divides by zero on tied probabilities, and says so; harmless
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            point, bounds = self._calibrator.predict_proba(p, p0_p1_output=True)
        return point[:, 1], bounds[:, 0], bounds[:, 1]

    def __call__(self, probability: np.ndarray) -> np.ndarray:
        return self.calibrated(probability)[0]

    def scores(self, probability: np.ndarray, y_true: np.ndarray
               ) -> Callable[[np.ndarray], dict[str, float]]:
        """For a bootstrap to resample: the Brier score, ECE and mean width of the bounds of
        the maps ``i`` of these, once calibrated."""
        point, low, high = self.calibrated(probability)
        y_true = np.asarray(y_true)
        return lambda i: {"brier": metrics.brier(y_true[i], point[i]),
                          "ece": metrics.expected_calibration_error(y_true[i], point[i]),
                          "width": float(np.mean(high[i] - low[i]))}

    def to_tag(self) -> str:
        return json.dumps({"method": METHOD, "probability": self.probability,
                           "class0": self.class0, "class1": self.class1})

    @classmethod
    def from_tag(cls, text: str) -> MapCalibration:
        """``ValueError`` when ``text`` is not a calibration this version records."""
        try:
            data = json.loads(text)
            if data["method"] != METHOD:
                raise ValueError(f"a {data['method']!r} calibration, not {METHOD!r}: rerun the "
                                 "experiment to record one")
            calibration = cls(tuple(float(v) for v in data["probability"]),
                              tuple(int(n) for n in data["class0"]),
                              tuple(int(n) for n in data["class1"]))
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a map calibration: {text!r}") from exc
        sizes = {len(calibration.probability), len(calibration.class0), len(calibration.class1)}
        if len(sizes) != 1 or not sum(calibration.class0) or not sum(calibration.class1):
            raise ValueError(f"not a map calibration: {text!r}")
        return calibration
