"""Venn-ABERS calibration of a map's probability: it undoes a known distortion, its bounds hold
the calibrated value and narrow with more calibration maps, it round-trips through its tag, and
it refuses what it cannot fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from turbexp import metrics
from turbexp.calibration import MapCalibration


def _shrunk(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities pulled towards 0.5 (as averaging a map's images does), and labels drawn
    from the true ones."""
    rng = np.random.default_rng(seed)
    truth_p = rng.uniform(0.02, 0.98, n)
    y = (rng.random(n) < truth_p).astype(int)
    logit = np.log(truth_p / (1 - truth_p))
    return 1 / (1 + np.exp(-logit / 2)), y


def test_calibration_undoes_an_under_confident_probability() -> None:
    shrunk, y = _shrunk(4000)
    calibration = MapCalibration.fit(shrunk, y)
    test, y_test = _shrunk(4000, seed=1)
    point, low, high = calibration.calibrated(test)
    assert metrics.expected_calibration_error(y_test, point) < \
        metrics.expected_calibration_error(y_test, test) / 2
    assert ((low <= point + 1e-12) & (point <= high + 1e-12)).all()
    # the record keeps two decimals per probability, at most 101 values, whatever the maps
    assert len(calibration.probability) <= 101
    assert sum(calibration.class0) + sum(calibration.class1) == 4000


def test_bounds_narrow_with_more_calibration_maps() -> None:
    test, _ = _shrunk(500, seed=2)
    widths = []
    for n in (30, 3000):
        p, y = _shrunk(n, seed=3)
        _, low, high = MapCalibration.fit(p, y).calibrated(test)
        widths.append(float(np.mean(high - low)))
    assert widths[1] < widths[0] / 4


def test_a_calibration_round_trips_through_its_tag() -> None:
    calibration = MapCalibration.fit(*_shrunk(60))
    again = MapCalibration.from_tag(calibration.to_tag())
    assert again == calibration
    probe = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(again.calibrated(probe), calibration.calibrated(probe))
    with pytest.raises(ValueError, match="not a map calibration"):
        MapCalibration.from_tag('{"method": "venn_abers", "probability": [0.5]}')
    with pytest.raises(ValueError, match="rerun the experiment"):
        MapCalibration.from_tag(json.dumps({"method": "platt", "slope": 1, "intercept": 0}))


def test_one_class_cannot_be_calibrated() -> None:
    assert MapCalibration.fit(np.array([0.2, 0.7, 0.9]), np.array([1, 1, 1])) is None
    one_class = json.dumps({"method": "venn_abers", "probability": [0.5], "class0": [0],
                            "class1": [3]})
    with pytest.raises(ValueError, match="not a map calibration"):
        MapCalibration.from_tag(one_class)
