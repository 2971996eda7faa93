"""Conformal intervals of a map's n: grouping images into maps, and MAPIE's split
conformal half-width against the textbook quantile."""

from __future__ import annotations

import numpy as np
import pytest

from turbexp.conformal import covered, interval_halfwidth, map_ids, map_means


def test_images_group_into_maps_projection_by_projection() -> None:
    simulation = np.array([7, 7, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2])  # 3 projections × 2 images
    ids = map_ids(simulation, 2)
    assert len(np.unique(ids)) == 6
    assert all(len(set(ids[k:k + 2])) == 1 for k in range(0, 12, 2))
    means, first = map_means(np.arange(12.0), simulation, 2)
    np.testing.assert_allclose(means, [0.5, 2.5, 4.5, 6.5, 8.5, 10.5])
    np.testing.assert_array_equal(first, [0, 2, 4, 6, 8, 10])


def test_the_half_width_is_the_conformal_quantile_of_the_residuals() -> None:
    rng = np.random.default_rng(3)
    truth = rng.uniform(3.0, 4.5, 49)
    predicted = truth + rng.normal(0.0, 0.1, 49)
    residuals = np.sort(np.abs(predicted - truth))
    # the ceil((n + 1) × 0.9)-th smallest residual: the 45th of 49
    assert interval_halfwidth(predicted, truth) == pytest.approx(residuals[44])
    assert interval_halfwidth(predicted[:5], truth[:5]) == float("inf")  # too few for 90 %


def test_the_intervals_cover_new_maps_nine_times_in_ten() -> None:
    rng = np.random.default_rng(4)
    hits = []
    for _ in range(200):
        truth = rng.uniform(3.0, 4.5, 60)
        predicted = truth + rng.normal(0.05, 0.1, 60)
        halfwidth = interval_halfwidth(predicted[:30], truth[:30])
        hits.append(covered(predicted[30:], truth[30:], halfwidth).mean())
    assert 0.88 <= np.mean(hits) <= 0.95  # at least 90 %, by at most 1/(n + 1) more
