"""Exact solution of the Riemann problem of the 1D isothermal Euler equations.

The equations are ``∂ρ/∂t + ∂(ρu)/∂x = 0`` and ``∂(ρu)/∂t + ∂(ρu² + c²ρ)/∂x = 0``
with a constant sound speed ``c``. Initial data ``(ρ_L, u_L)`` for ``x < 0`` and
``(ρ_R, u_R)`` for ``x > 0`` separate into two waves, each a shock or a
rarefaction, around a middle state ``(ρ_*, u_*)`` (there is no contact wave in
the density; passive transverse velocities jump at ``x/t = u_*``).

Left wave (shock if ``ρ_* > ρ_L``, rarefaction otherwise)::

    shock:        u_* − u_L = −c (ρ_* − ρ_L) / sqrt(ρ_* ρ_L),   speed u_L − c sqrt(ρ_*/ρ_L)
    rarefaction:  u_* − u_L = −c ln(ρ_*/ρ_L),                   fan from u_L − c to u_* − c

Right wave (the mirror image)::

    shock:        u_* − u_R = +c (ρ_* − ρ_R) / sqrt(ρ_* ρ_R),   speed u_R + c sqrt(ρ_*/ρ_R)
    rarefaction:  u_* − u_R = +c ln(ρ_*/ρ_R),                   fan from u_* + c to u_R + c

Inside the left fan ``u = x/t + c`` and ``ρ = ρ_L exp((u_L − u)/c)``; inside the
right fan ``u = x/t − c`` and ``ρ = ρ_R exp((u − u_R)/c)``. Eliminating ``u_*``
gives ``g(ρ_*) = f_L(ρ_*) + f_R(ρ_*) + u_R − u_L = 0`` with ``f_K`` the wave curve
above. In ``y = ln ρ_*`` each ``f_K`` is ``c (y − ln ρ_K)`` (rarefaction) or
``2c sinh((y − ln ρ_K)/2)`` (shock): increasing and convex, so Newton's method in
``y`` converges from any start, and a solution ``ρ_* > 0`` always exists (no vacuum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _wave_curve(rho: float, rho_k: float, c: float) -> tuple[float, float]:
    """``f_K(ρ)`` and ``ρ f_K'(ρ)`` (its derivative in ``ln ρ``) for one wave."""
    if rho > rho_k:
        root = math.sqrt(rho / rho_k)
        return c * (root - 1.0 / root), 0.5 * c * (root + 1.0 / root)
    return c * math.log(rho / rho_k), c


@dataclass(frozen=True)
class IsothermalRiemannSolution:
    """The self-similar solution of one isothermal Riemann problem."""

    rho_left: float
    u_left: float
    rho_right: float
    u_right: float
    sound_speed: float
    rho_star: float
    u_star: float

    @property
    def left_is_shock(self) -> bool:
        """Whether the left wave is a shock (else a rarefaction or nothing)."""
        return self.rho_star > self.rho_left

    @property
    def right_is_shock(self) -> bool:
        """Whether the right wave is a shock (else a rarefaction or nothing)."""
        return self.rho_star > self.rho_right

    def left_shock_speed(self) -> float:
        """Speed of the left shock, ``u_L − c sqrt(ρ_*/ρ_L)``."""
        return self.u_left - self.sound_speed * math.sqrt(self.rho_star / self.rho_left)

    def right_shock_speed(self) -> float:
        """Speed of the right shock, ``u_R + c sqrt(ρ_*/ρ_R)``."""
        return self.u_right + self.sound_speed * math.sqrt(self.rho_star / self.rho_right)

    def sample(self, xi: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Density and velocity at ``xi = x/t`` (arrays shaped like ``xi``)."""
        xi = np.asarray(xi, dtype=np.float64)
        c = self.sound_speed
        rho = np.empty_like(xi)
        u = np.empty_like(xi)
        left = xi < self.u_star
        # Left of the middle: left state, left wave, middle state.
        if self.left_is_shock:
            outer = left & (xi < self.left_shock_speed())
            fan = np.zeros_like(left)
        else:
            outer = left & (xi < self.u_left - c)
            fan = left & ~outer & (xi < self.u_star - c)
        rho[outer], u[outer] = self.rho_left, self.u_left
        u[fan] = xi[fan] + c
        rho[fan] = self.rho_left * np.exp((self.u_left - u[fan]) / c)
        # Right of the middle: middle state, right wave, right state.
        right = ~left
        if self.right_is_shock:
            outer_r = right & (xi > self.right_shock_speed())
            fan_r = np.zeros_like(right)
        else:
            outer_r = right & (xi > self.u_right + c)
            fan_r = right & ~outer_r & (xi > self.u_star + c)
        rho[outer_r], u[outer_r] = self.rho_right, self.u_right
        u[fan_r] = xi[fan_r] - c
        rho[fan_r] = self.rho_right * np.exp((u[fan_r] - self.u_right) / c)
        middle = ~(outer | fan | outer_r | fan_r)
        rho[middle], u[middle] = self.rho_star, self.u_star
        return rho, u


def solve(
    rho_left: float,
    u_left: float,
    rho_right: float,
    u_right: float,
    sound_speed: float = 1.0,
    *,
    tol: float = 1e-14,
    max_iter: int = 100,
) -> IsothermalRiemannSolution:
    """Exact solution of the isothermal Riemann problem ``(ρ_L, u_L) | (ρ_R, u_R)``.

    Newton iteration on ``ln ρ_*`` from the two-rarefaction estimate, stopped when
    the step is below ``tol``. Raises :class:`ValueError` for non-positive densities
    or sound speed, and :class:`RuntimeError` if Newton's method does not converge.
    """
    if not (rho_left > 0 and rho_right > 0 and sound_speed > 0):
        raise ValueError(
            f"densities and the sound speed must be > 0, got ρ_L={rho_left}, "
            f"ρ_R={rho_right}, c={sound_speed}"
        )
    c = sound_speed
    du = u_right - u_left
    y = 0.5 * (math.log(rho_left) + math.log(rho_right)) - 0.5 * du / c  # exact if 2 rarefactions
    for _ in range(max_iter):
        rho = math.exp(y)
        f_l, d_l = _wave_curve(rho, rho_left, c)
        f_r, d_r = _wave_curve(rho, rho_right, c)
        step = (f_l + f_r + du) / (d_l + d_r)
        y -= step
        if abs(step) < tol:
            break
    else:
        raise RuntimeError(f"Newton iteration on ρ_* did not converge in {max_iter} steps")
    rho_star = math.exp(y)
    f_l, _ = _wave_curve(rho_star, rho_left, c)
    f_r, _ = _wave_curve(rho_star, rho_right, c)
    u_star = 0.5 * (u_left + u_right) + 0.5 * (f_r - f_l)
    return IsothermalRiemannSolution(
        float(rho_left), float(u_left), float(rho_right), float(u_right), float(c), rho_star, u_star
    )
