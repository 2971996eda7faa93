"""The observation model: what a telescope does to a column density map before it is imaged.

A Gaussian beam of full width at half maximum ``beam_fwhm_pc`` (pc) convolves the column
density (not its logarithm), at each map's own pixel scale. The same model is applied to the
training maps of every code and to every map given to ``turbexp predict``, so that structure
below the beam, where codes and resolutions differ most, carries no weight. Simulation boxes
are periodic; observed maps are not, and their masked (NaN) pixels are left out of the
convolution and stay masked.

Simulated maps (not observed ones, which carry their own) also get the observation model's
noise (:func:`noisy`): white Gaussian noise in column density after the beam.

Augmentation (:func:`views`) images each training map more than once: through further beams,
and at coarser pixels resampled back, so that the model learns not to depend on either.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from scipy.ndimage import gaussian_filter

from turbexp.images import resize_to
from turbexp.spec import ObservationSpec

FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))


def beam_sigma_pixels(beam_fwhm_pc: float, pixel_pc: float) -> float:
    """The beam's standard deviation in pixels of side ``pixel_pc``."""
    if pixel_pc <= 0:
        raise ValueError(f"pixel side must be positive, got {pixel_pc} pc")
    return beam_fwhm_pc / FWHM_PER_SIGMA / pixel_pc


def observe(column_density: np.ndarray, pixel_pc: float, observation: ObservationSpec, *,
            periodic: bool = True) -> np.ndarray:
    """Column density maps (..., N, N) seen through ``observation``, pixels ``pixel_pc`` wide.

    ``periodic``: the maps are of a periodic box (simulations); otherwise (observed maps)
    the edges are reflected and NaN pixels are excluded and kept NaN."""
    if observation.beam_fwhm_pc == 0:
        return column_density
    sigma = beam_sigma_pixels(observation.beam_fwhm_pc, pixel_pc)
    axes = (-2, -1)
    if periodic:
        return gaussian_filter(column_density, sigma, mode="wrap", axes=axes)
    valid = np.isfinite(column_density)
    filled = np.where(valid, column_density, 0.0)
    weight = gaussian_filter(valid.astype(np.float64), sigma, mode="reflect", axes=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        smoothed = gaussian_filter(filled, sigma, mode="reflect", axes=axes) / weight
    return np.where(valid, smoothed, np.nan)


NOISE_FLOOR = 1e-3
"""Noisy pixels below this fraction of the map's mean column density are set to it, so that
the log exists."""


def noisy(column_density: np.ndarray, noise: float) -> np.ndarray:
    """Maps (..., N, N) plus white Gaussian noise of ``noise`` × each map's mean column
    density, floored at :data:`NOISE_FLOOR` of it. The noise is drawn from a seed made of the
    maps' own bytes: the same maps get the same noise on every machine and every run."""
    if noise == 0:
        return column_density
    seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(column_density).tobytes())
                          .digest()[:8], "little")
    mean = column_density.mean(axis=(-2, -1), keepdims=True)
    drawn = np.random.default_rng(seed).normal(size=column_density.shape)
    return np.maximum(column_density + noise * mean * drawn, NOISE_FLOOR * mean)


def simulated(column_density: np.ndarray, pixel_pc: float,
              observation: ObservationSpec) -> np.ndarray:
    """A simulation's maps as the telescope of ``observation`` would see them: beam, noise."""
    return noisy(observe(column_density, pixel_pc, observation), observation.noise)


def views(column_density: np.ndarray, pixel_pc: float,
          observation: ObservationSpec) -> list[np.ndarray]:
    """The log10 column density maps (3, N, N) of one simulation box as the experiment images
    them: through the observation model, then through each augmentation beam (with the
    model's noise), then at each augmentation's coarser pixels (of the first);
    ``observation.views`` of them, in that order."""
    seen = np.log10(simulated(column_density, pixel_pc, observation))
    out = [seen]
    for beam in observation.augment_beams_pc:
        through = observation.model_copy(update={"beam_fwhm_pc": beam})
        out.append(np.log10(simulated(column_density, pixel_pc, through)))
    for factor in observation.augment_pixel_factors:
        out.append(coarsened(seen, factor))
    return out


def coarsened(log_maps: np.ndarray, factor: int) -> np.ndarray:
    """Maps (..., N, N) as a map with pixels ``factor`` times wider looks once predict has
    resampled it to these pixels: resized down (anti-aliased) and back up, linearly."""
    side = log_maps.shape[-1]
    coarse = max(2, round(side / factor))
    flat = log_maps.reshape(-1, side, side)
    out = np.stack([resize_to(resize_to(m, coarse), side) for m in flat])
    return out.reshape(log_maps.shape)
