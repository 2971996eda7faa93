"""Initial velocity fields of decaying turbulence and their spectral diagnostics.

The generator is deterministic for a given ``(grid, index, mach, seed)``: white
noise from :func:`numpy.random.default_rng`, shaped in Fourier space to the 3D
power spectrum ``P(k) = <|v̂(k)|²> ∝ k^-index`` and made solenoidal.
"""

from __future__ import annotations

import numpy as np


def _wavenumbers(n: int, *, real: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer wavenumbers of an n³ grid, broadcastable; ``real`` for the rfftn layout."""
    k = np.fft.fftfreq(n, d=1.0 / n)
    kz = np.fft.rfftfreq(n, d=1.0 / n) if real else k
    return k[:, None, None], k[None, :, None], kz[None, None, :]


def velocity_field(grid: int, index: float, mach: float, seed: int) -> np.ndarray:
    """Solenoidal Gaussian random velocity field, shape (3, grid, grid, grid), float64.

    The 3D power spectrum is ``∝ |k|^-index``; the k = 0 mode and every mode with a
    Nyquist component are zero, so the field has zero mean and is divergence-free
    to round-off. Velocities are in units of the sound speed, scaled so that the
    rms of ``|v|`` over the box equals ``mach``.
    """
    if int(grid) != grid or grid < 4:
        raise ValueError(f"grid must be an integer >= 4, got {grid!r}")
    if not np.isfinite(index):
        raise ValueError(f"index must be finite, got {index!r}")
    if not (np.isfinite(mach) and mach >= 0):
        raise ValueError(f"mach must be finite and >= 0, got {mach!r}")
    n = int(grid)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((3, n, n, n))
    vk = np.fft.rfftn(noise, axes=(1, 2, 3))

    kx, ky, kz = _wavenumbers(n, real=True)
    k2 = kx**2 + ky**2 + kz**2
    keep = k2 > 0
    if n % 2 == 0:
        nyq = n // 2
        keep &= (np.abs(kx) != nyq) & (np.abs(ky) != nyq) & (np.abs(kz) != nyq)
    safe_k2 = np.where(keep, k2, 1.0)
    amplitude = np.where(keep, safe_k2 ** (-index / 4.0), 0.0)

    k_dot_v = kx * vk[0] + ky * vk[1] + kz * vk[2]
    for i, ki in enumerate((kx, ky, kz)):
        vk[i] = (vk[i] - ki * k_dot_v / safe_k2) * amplitude

    v = np.fft.irfftn(vk, s=(n, n, n), axes=(1, 2, 3))
    rms = np.sqrt(np.mean(np.sum(v**2, axis=0)))
    if mach == 0 or rms == 0:
        return np.zeros_like(v)
    return v * (mach / rms)


def spectral_divergence(v: np.ndarray) -> float:
    """Relative spectral divergence ``max |k·v̂| / max(|k| |v̂|)`` of a (3, N, N, N) field."""
    v = np.asarray(v, dtype=np.float64)
    n = v.shape[1]
    vk = np.fft.rfftn(v, axes=(1, 2, 3))
    kx, ky, kz = _wavenumbers(n, real=True)
    k_dot_v = np.abs(kx * vk[0] + ky * vk[1] + kz * vk[2])
    k_abs = np.sqrt(kx**2 + ky**2 + kz**2)
    scale = np.max(k_abs * np.sqrt(np.sum(np.abs(vk) ** 2, axis=0)))
    return float(np.max(k_dot_v) / scale) if scale > 0 else 0.0


def _shells(n: int) -> tuple[np.ndarray, np.ndarray]:
    """|k| of every mode of an n³ fftn grid and its integer shell ``round(|k|)``, flattened."""
    kx, ky, kz = _wavenumbers(n, real=False)
    k_abs = np.sqrt(kx**2 + ky**2 + kz**2).ravel()
    return k_abs, np.rint(k_abs).astype(np.int64)


def shell_counts(grid: int) -> np.ndarray:
    """Number of Fourier modes in each shell 1 .. grid/2 - 1 of :func:`power_spectrum_3d`."""
    _, shell = _shells(grid)
    return np.bincount(shell, minlength=grid // 2)[1 : grid // 2]


def power_spectrum_3d(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shell-averaged 3D power spectrum ``<|v̂(k)|²>`` summed over components.

    Shells are ``round(|k|) = 1 .. N/2 - 1``; returns the mean ``|k|`` of the modes
    in each shell and the mean power there (``v̂ = FFT(v) / N³``).
    """
    v = np.asarray(v, dtype=np.float64)
    n = v.shape[1]
    vk = np.fft.fftn(v, axes=(1, 2, 3)) / n**3
    power = np.sum(np.abs(vk) ** 2, axis=0).ravel()
    k_abs, shell = _shells(n)
    nshell = n // 2
    counts = np.bincount(shell, minlength=nshell)[1:nshell]
    k_sum = np.bincount(shell, weights=k_abs, minlength=nshell)[1:nshell]
    p_sum = np.bincount(shell, weights=power, minlength=nshell)[1:nshell]
    return k_sum / counts, p_sum / counts


def spectral_slope(
    k: np.ndarray,
    P: np.ndarray,
    kmin: float,
    kmax: float,
    weights: np.ndarray | None = None,
) -> float:
    """Least-squares slope of ``log P`` against ``log k`` over ``kmin <= k <= kmax``.

    ``weights`` (optional, one per point) weight the squared residuals; for shell
    averages, the number of modes per shell (:func:`shell_counts`) is the inverse
    variance of ``log P``.
    """
    k = np.asarray(k, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    sel = (k >= kmin) & (k <= kmax) & (P > 0)
    if np.count_nonzero(sel) < 2:
        raise ValueError(f"fewer than two points with positive power in [{kmin}, {kmax}]")
    w = None if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64)[sel])
    slope, _ = np.polyfit(np.log(k[sel]), np.log(P[sel]), 1, w=w)
    return float(slope)
