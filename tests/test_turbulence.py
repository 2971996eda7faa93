"""The initial velocity field: solenoidal, k^-n spectrum, rms Mach, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from turbexp.turbulence import (
    power_spectrum_3d,
    shell_counts,
    spectral_divergence,
    spectral_slope,
    velocity_field,
)

GRID = 32


def rms_mach(v: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(v**2, axis=0))))


def test_shape_and_dtype():
    v = velocity_field(16, 11 / 3, 1.41, 0)
    assert v.shape == (3, 16, 16, 16)
    assert v.dtype == np.float64


@pytest.mark.parametrize("index", [2.0, 11 / 3, 4.0, 6.0])
def test_divergence_free_to_round_off(index):
    v = velocity_field(GRID, index, 1.41, 7)
    assert spectral_divergence(v) < 1e-13


def test_divergence_detects_a_compressive_field():
    x = np.arange(GRID) / GRID
    v = np.zeros((3, GRID, GRID, GRID))
    v[0] = np.sin(2 * np.pi * 3 * x)[:, None, None]  # longitudinal wave
    assert spectral_divergence(v) == pytest.approx(1.0)


# Fit shells 3 .. N/2-1. Shells 1-2 hold few modes on the integer lattice (shell 1 mixes |k| = 1
# and sqrt(2)), so their power is noisy and biased by the spread of |k| inside the shell; shell
# N/2-1 is the last one complete inside the Nyquist cube. Shells are weighted by their number of
# modes, the inverse variance of the log of a shell average.
KMIN, KMAX = 2.5, GRID / 2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("index", [11 / 3, 4.0, 3.2])
def test_power_spectrum_slope(index, seed):
    v = velocity_field(GRID, index, 1.41, seed)
    k, P = power_spectrum_3d(v)
    slope = spectral_slope(k, P, KMIN, KMAX, weights=shell_counts(GRID))
    assert slope == pytest.approx(-index, abs=0.1)


def test_spectral_slope_of_an_exact_power_law():
    k = np.arange(1.0, 20.0)
    assert spectral_slope(k, 3.0 * k**-3.7, 2, 15) == pytest.approx(-3.7, abs=1e-12)
    assert spectral_slope(k, 3.0 * k**-3.7, 2, 15, weights=k**2) == pytest.approx(-3.7, abs=1e-12)


def test_power_spectrum_of_a_single_mode():
    x = np.arange(GRID) / GRID
    v = np.zeros((3, GRID, GRID, GRID))
    v[1] = np.cos(2 * np.pi * 5 * x)[:, None, None]
    k, P = power_spectrum_3d(v)
    assert k.shape == P.shape == (GRID // 2 - 1,)
    assert np.argmax(P) == 4  # shell |k| = 5
    assert P[4] * shell_counts(GRID)[4] == pytest.approx(0.5)  # Parseval: mean of cos² is 1/2


@pytest.mark.parametrize("mach", [0.3, 1.41, 5.0])
def test_rms_mach_equals_request(mach):
    assert rms_mach(velocity_field(GRID, 4.0, mach, 3)) == pytest.approx(mach, rel=1e-12)


def test_zero_mach_gives_rest():
    assert not np.any(velocity_field(16, 4.0, 0.0, 3))


def test_mean_velocity_is_zero():
    v = velocity_field(GRID, 11 / 3, 1.41, 5)
    assert np.all(np.abs(v.mean(axis=(1, 2, 3))) < 1e-14)


def test_same_seed_same_field_other_seed_other_field():
    a = velocity_field(GRID, 11 / 3, 1.41, 11)
    b = velocity_field(GRID, 11 / 3, 1.41, 11)
    c = velocity_field(GRID, 11 / 3, 1.41, 12)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_index_changes_the_field_not_its_phases():
    kolmogorov = velocity_field(GRID, 11 / 3, 1.41, 4)
    burgers = velocity_field(GRID, 4.0, 1.41, 4)
    assert not np.allclose(kolmogorov, burgers)
    # Same noise, so the fields stay strongly correlated.
    corr = np.sum(kolmogorov * burgers) / np.sqrt(np.sum(kolmogorov**2) * np.sum(burgers**2))
    assert corr > 0.9


@pytest.mark.parametrize("grid", [2, 8.5])
def test_rejects_bad_grid(grid):
    with pytest.raises(ValueError):
        velocity_field(grid, 4.0, 1.41, 0)
