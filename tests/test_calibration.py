"""Platt scaling of a map's probability: it recovers a known distortion, round-trips through
its tag, and refuses what it cannot fit."""

from __future__ import annotations

import numpy as np
import pytest

from turbexp import metrics
from turbexp.calibration import MapCalibration


def test_platt_scaling_undoes_an_under_confident_probability() -> None:
    rng = np.random.default_rng(0)
    truth_p = rng.uniform(0.02, 0.98, 4000)
    y = (rng.random(4000) < truth_p).astype(int)
    logit = np.log(truth_p / (1 - truth_p))
    shrunk = 1 / (1 + np.exp(-logit / 2))  # pulled towards 0.5, as averaging does
    calibration = MapCalibration.fit(shrunk, y)
    assert calibration.slope == pytest.approx(2.0, rel=0.15)
    assert abs(calibration.intercept) < 0.15
    assert metrics.expected_calibration_error(y, calibration(shrunk)) < \
        metrics.expected_calibration_error(y, shrunk) / 2


def test_a_calibration_round_trips_through_its_tag() -> None:
    calibration = MapCalibration(1.7, -0.2)
    assert MapCalibration.from_tag(calibration.to_tag()) == calibration
    with pytest.raises(ValueError, match="not a map calibration"):
        MapCalibration.from_tag('{"slope": 1}')


def test_one_class_cannot_be_calibrated() -> None:
    assert MapCalibration.fit(np.array([0.2, 0.7, 0.9]), np.array([1, 1, 1])) is None
