"""The physics baseline: slope and amplitude of each image's radially averaged power spectrum.

Wavenumbers are in units of the fundamental mode of the image's shorter side
(k = 1 is one wave across the image), so the Nyquist wavenumber is min(H, W) / 2.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy.signal.windows import hann
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import Tags

from turbexp.api import FeatureExtractor, PluginParams, Range, SearchSpace, hookimpl, map_images

Window = Literal["hann", "none"]
FEATURE_NAMES = ("slope", "log_amplitude")


def _window(shape: tuple[int, int], window: str) -> np.ndarray | None:
    if window == "none":
        return None
    if window == "hann":
        return np.outer(hann(shape[0], sym=False), hann(shape[1], sym=False))
    raise ValueError(f"unknown window {window!r}; expected 'hann' or 'none'")


def radial_power_spectrum(
    image: np.ndarray, window: Window = "none"
) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged 2D power spectrum of one (H, W) image.

    The (window-weighted) mean is removed; with ``window="hann"`` the image is
    apodised first and the power rescaled by the window's mean square, so that a
    non-periodic cut does not leak its edge discontinuities into every wavenumber.
    Returns ``(k, P)`` for the integer shells k = 1 .. min(H, W) / 2, where ``k`` is
    the mean wavenumber of the modes in each shell and ``P`` their mean power,
    normalised so that the power summed over all modes, divided by H·W, is the variance.
    """
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"expected one image of shape (H, W), got shape {data.shape}")
    k, power = radial_power_spectra(data[None], window)
    return k, power[0]


BATCH_BYTES = 64 * 2**20
"""Largest complex spectrum computed at once by :func:`radial_power_spectra` (bytes)."""


def radial_power_spectra(images: np.ndarray, window: Window = "none"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`radial_power_spectrum` of every image of a stack (n, H, W): the shells' mean
    wavenumbers ``k`` (m,) and each image's mean power ``P`` (n, m), the same numbers as
    image by image, from one pass of numpy per batch of at most :data:`BATCH_BYTES`."""
    stack = np.asarray(images)
    if stack.ndim != 3:
        raise ValueError(f"expected images of shape (n, H, W), got shape {stack.shape}")
    n, height, width = stack.shape
    if min(height, width) < 4:
        raise ValueError(f"image of {height}×{width} pixels is too small for a power spectrum")
    side = min(height, width)
    ky = np.fft.fftfreq(height) * side
    kx = np.fft.fftfreq(width) * side
    kr = np.hypot(ky[:, None], kx[None, :]).ravel()
    shells = np.rint(kr).astype(np.int64)
    nyquist = side // 2
    keep = (shells >= 1) & (shells <= nyquist)
    bins = nyquist + 1
    counts = np.bincount(shells[keep], minlength=bins)[1:]
    k_sum = np.bincount(shells[keep], weights=kr[keep], minlength=bins)[1:]
    filled = counts > 0
    weights = _window((height, width), window)
    norm = 1.0 if weights is None else float(np.mean(weights**2))
    batch = max(1, BATCH_BYTES // (16 * height * width))
    p_sum = np.empty((n, bins - 1))
    for start in range(0, n, batch):
        # each image's mean as the one-image computation takes it (the same bits)
        data = np.asarray(stack[start:start + batch], dtype=np.float64)
        if weights is None:
            data = data - np.array([image.mean() for image in data])[:, None, None]
        else:
            means = [np.sum(weights * image) / np.sum(weights) for image in data]
            data = (data - np.array(means)[:, None, None]) * weights
        power = (np.abs(np.fft.fft2(data)) ** 2 / (height * width * norm)).reshape(len(data), -1)
        # one bincount over all images, each image's shells offset: every shell sums its modes
        # in the order a single image's bincount does
        owner = (shells[keep][None, :] + bins * np.arange(len(data))[:, None]).ravel()
        p_sum[start:start + batch] = np.bincount(owner, weights=power[:, keep].ravel(),
                                                 minlength=bins * len(data)
                                                 ).reshape(len(data), bins)[:, 1:]
    return k_sum[filled] / counts[filled], p_sum[:, filled] / counts[filled]


def fit_power_law(
    k: np.ndarray,
    P: np.ndarray,
    kmin: float,
    kmax: float,
    pivot: float | None = None,
) -> tuple[float, float]:
    """Least-squares fit of log10 P = slope · log10(k / pivot) + log_amplitude on kmin ≤ k ≤ kmax.

    ``pivot`` defaults to the geometric mean of ``kmin`` and ``kmax``, where the
    amplitude's error is least correlated with the slope's. Returns
    ``(slope, log_amplitude)``; raises ValueError with fewer than two usable points.
    """
    k = np.asarray(k, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    if not 0 < kmin < kmax:
        raise ValueError(f"need 0 < kmin < kmax, got kmin={kmin}, kmax={kmax}")
    use = (k >= kmin) & (k <= kmax) & (P > 0) & np.isfinite(P)
    if np.count_nonzero(use) < 2:
        raise ValueError(
            f"fewer than two positive power values with {kmin} ≤ k ≤ {kmax}; "
            "widen the fitted range or use larger images"
        )
    centre = np.sqrt(kmin * kmax) if pivot is None else pivot
    x = np.log10(k[use] / centre)
    y = np.log10(P[use])
    # a shell of radius k holds ∝ k independent modes, so its log power has variance ∝ 1 / k
    slope, log_amplitude = np.polyfit(x, y, 1, w=np.sqrt(k[use]))
    return float(slope), float(log_amplitude)


def fit_range(shape: tuple[int, int], kmin: float, kmax_fraction: float) -> tuple[float, float]:
    """The fitted wavenumber range (kmin, kmax) for images of ``shape``."""
    kmax = kmax_fraction * (min(shape) // 2)
    if kmax < kmin + 1:
        raise ValueError(
            f"power spectrum: images of {shape[0]}×{shape[1]} pixels leave no range to fit "
            f"between kmin={kmin} and kmax={kmax:g} (kmax_fraction={kmax_fraction} of Nyquist)"
        )
    return kmin, kmax


def spectrum_features(
    images: np.ndarray, window: Window, kmin: float, kmax_fraction: float
) -> np.ndarray:
    """[slope, log10 amplitude at the pivot] of each image's power spectrum, (n, 2)."""
    low, high = fit_range(images.shape[1:], kmin, kmax_fraction)
    k, spectra = radial_power_spectra(images, window)
    return np.array([fit_power_law(k, P, low, high) for P in spectra]).reshape(len(images), 2)


class PowerSpectrumTransformer(TransformerMixin, BaseEstimator):
    """Scikit-learn transformer from images (n, H, W) to [slope, log amplitude] (n, 2)."""

    def __init__(
        self,
        window: Window = "hann",
        kmin: float = 2.0,
        kmax_fraction: float = 0.5,
        n_jobs: int | None = None,
    ) -> None:
        self.window = window
        self.kmin = kmin
        self.kmax_fraction = kmax_fraction
        self.n_jobs = n_jobs

    def _images(self, X: Any) -> np.ndarray:
        images = np.asarray(X)
        if images.ndim != 3:
            raise ValueError(
                f"expected images of shape (n, H, W), got an array of shape {images.shape}"
            )
        _window(images.shape[1:], self.window)
        fit_range(images.shape[1:], self.kmin, self.kmax_fraction)
        return images

    def fit(self, X: Any, y: Any = None) -> PowerSpectrumTransformer:
        self._images(X)
        self.n_features_out_ = len(FEATURE_NAMES)
        return self

    def transform(self, X: Any) -> np.ndarray:
        images = self._images(X)
        func = partial(
            spectrum_features,
            window=self.window,
            kmin=self.kmin,
            kmax_fraction=self.kmax_fraction,
        )
        return map_images(func, images, n_jobs=self.n_jobs, batched=True)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(FEATURE_NAMES, dtype=object)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class PowerSpectrum(FeatureExtractor):
    """Power-law fit to the radially averaged power spectrum: [slope, log10 amplitude].

    The default range skips k = 1 (the mean-removed, windowed largest scale is
    poorly sampled) and stops at half the Nyquist wavenumber, where pixelisation
    and the simulations' numerical dissipation steepen the spectrum.
    """

    name: ClassVar[str] = "power_spectrum"
    description: ClassVar[str] = "slope and amplitude of the radially averaged power spectrum"

    class Params(PluginParams):
        window: Window = Field("hann", description="apodising window applied before the FFT")
        kmin: float = Field(2.0, ge=1.0, description="lowest fitted k, in units of the fundamental")
        kmax_fraction: float = Field(
            0.5, gt=0.0, le=1.0, description="highest fitted k, as a fraction of Nyquist"
        )

    search_space: ClassVar[SearchSpace] = {
        "kmin": Range(1.0, 4.0),
        "kmax_fraction": Range(0.3, 1.0),
    }

    def build(self, params: PluginParams) -> PowerSpectrumTransformer:
        p = self.validated(params)
        return PowerSpectrumTransformer(window=p.window, kmin=p.kmin, kmax_fraction=p.kmax_fraction)


@hookimpl
def register_features(register: Any) -> None:
    register(PowerSpectrum)
