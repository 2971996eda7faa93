"""Images: 48 per simulation, standardised in float32, split by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from turbexp.images import images_from_maps, split_simulations, standardise
from turbexp.spec import ImagesSpec, SplitSpec


def test_reference_augmentation_gives_48_images() -> None:
    maps = np.random.default_rng(0).normal(size=(3, 32, 32))
    images = images_from_maps(maps, ImagesSpec(size=16))
    assert images.shape == (48, 16, 16)
    assert images.dtype == np.float32
    np.testing.assert_allclose(images.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(images.std(axis=(1, 2)), 1, atol=1e-4)


def test_cuts_and_flips_are_the_quadrants_mirrored() -> None:
    maps = np.random.default_rng(1).normal(size=(3, 16, 16))
    images = images_from_maps(maps, ImagesSpec(size=8, projections=["y"], cuts=4, flips=4))
    quadrant = standardise(maps[1][:8, 8:])  # second quadrant of the y projection
    np.testing.assert_allclose(images[4], quadrant, atol=1e-6)
    np.testing.assert_allclose(images[5], quadrant[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(images[6], quadrant[::-1, :], atol=1e-6)
    np.testing.assert_allclose(images[7], quadrant[::-1, ::-1], atol=1e-6)


def test_standardisation_keeps_a_tiny_contrast() -> None:
    # reference-set-up maps vary by ~0.003 dex around log10 N ≈ 1.3 (g/cm² × 1e-3)
    rng = np.random.default_rng(2)
    log_map = -1.7 + 0.003 * rng.normal(size=(16, 16))
    image = standardise(log_map)
    assert image.std() == pytest.approx(1, abs=1e-5)
    assert np.corrcoef(image.ravel(), log_map.ravel())[0, 1] > 0.9999


def test_uniform_map_gives_zeros_not_nan() -> None:
    assert np.all(standardise(np.full((4, 4), 3.0)) == 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_is_by_simulation_stratified_and_deterministic(seed: int) -> None:
    strata = [0] * 10 + [1] * 10
    split = SplitSpec(seed=seed)
    parts = split_simulations(strata, split)
    assert parts.tolist() == split_simulations(strata, split).tolist()
    for label in (0, 1):
        counts = np.bincount(parts[np.array(strata) == label], minlength=3)
        assert counts.tolist() == [8, 1, 1]
    assert set(parts.tolist()) == {0, 1, 2}


def test_different_seeds_give_different_splits() -> None:
    strata = [0] * 20
    a = split_simulations(strata, SplitSpec(seed=0))
    b = split_simulations(strata, SplitSpec(seed=1))
    assert a.tolist() != b.tolist()


def test_too_few_simulations_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        split_simulations([0, 0, 1, 1, 1], SplitSpec())
