"""Prediction intervals for a map's spectral index, by split conformal prediction (MAPIE).

A map is one projection of a simulation; its prediction is the mean over its images, as
``turbexp predict`` summarises a map by the mean over its tiles. The interval's half-width is
set on the maps of the test split, which the model was not fitted on, so that on new maps
from the same distribution the interval ``prediction ± half-width`` covers the true n with
probability at least :data:`LEVEL`. Whether it still does on maps of another code is what
the cross-code report measures.
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.9
"""Confidence level of the intervals."""

TAG = f"turbexp.map_interval_{LEVEL * 100:g}"
"""The run tag that records the half-width with the model."""


def map_ids(simulation: np.ndarray, per_map: int) -> np.ndarray:
    """The map of each image: images of a simulation are contiguous, ``per_map`` images of
    one projection after another (as :func:`turbexp.images.images_from_maps` makes them)."""
    simulation = np.asarray(simulation)
    n = len(simulation)
    starts = np.r_[0, np.flatnonzero(np.diff(simulation)) + 1] if n else np.zeros(0, int)
    lengths = np.diff(np.r_[starts, n])
    block = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(n) - np.repeat(starts, lengths)
    return block * n + position // per_map


def map_means(values: np.ndarray, simulation: np.ndarray, per_map: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Per map: the mean of ``values`` over its images, and the index of its first image."""
    maps = map_ids(simulation, per_map)
    _, first, inverse = np.unique(maps, return_index=True, return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(values, dtype=np.float64))
    return sums / np.bincount(inverse), first


def interval_halfwidth(predicted: np.ndarray, truth: np.ndarray, level: float = LEVEL) -> float:
    """The half-width that split conformal prediction (MAPIE, absolute residuals) gives the
    interval around ``predicted`` from these calibration maps; inf when they are too few
    for the level (at most 10 maps for 90 %)."""
    from mapie.regression import SplitConformalRegressor

    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, 1)
    if len(predicted) <= max(1 / level, 1 / (1 - level)):  # MAPIE's least number
        return float("inf")
    conformal = SplitConformalRegressor(_Given().fit(predicted), confidence_level=level,
                                        prefit=True)
    conformal.conformalize(predicted, np.asarray(truth, dtype=np.float64))
    _, bounds = conformal.predict_interval(np.zeros((1, 1)))
    return float(bounds[0, 1, 0])


def covered(predicted: np.ndarray, truth: np.ndarray, halfwidth: float) -> np.ndarray:
    """Whether each interval ``predicted ± halfwidth`` holds the truth."""
    return np.abs(np.asarray(truth) - np.asarray(predicted)) <= halfwidth


class _Given:
    """A fitted 'regressor' whose prediction is its one input column: the map's prediction,
    already made, handed to MAPIE to conformalize."""

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> _Given:
        self.n_features_in_ = 1
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)[:, 0]
