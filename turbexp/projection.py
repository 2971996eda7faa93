"""Column density maps of a uniform periodic cube."""

from __future__ import annotations

import numpy as np

from turbexp.plugin_types import Physics
from turbexp.units import length_unit_cm


def column_density(density_code: np.ndarray, physics: Physics) -> np.ndarray:
    """Column density in g/cm² along x, y and z, shape (3, N, N).

    ``density_code`` is an (N, N, N) cube in units of ``physics.density_g_cm3``
    covering the whole box; map ``a`` is ``Σ ρ dx`` along array axis ``a``.
    """
    rho = np.asarray(density_code, dtype=np.float64)
    if rho.ndim != 3 or len(set(rho.shape)) != 1:
        raise ValueError(f"density must be a cube of shape (N, N, N), got {rho.shape}")
    dx_cm = length_unit_cm(physics) / rho.shape[0]
    scale = physics.density_g_cm3 * dx_cm
    return np.stack([rho.sum(axis=axis) * scale for axis in range(3)])
