"""The scheme's arithmetic at one cell face and in one cell, written once for every target.

Plain Python functions of scalars (and of one cell of state arrays):
:mod:`.kernels` compiles them for the CPU (numba, inlined into its loops) and
:mod:`.cuda_kernels` for NVIDIA GPUs (numba CUDA device functions) through
:func:`compiled`, so both evaluate the same expressions in the same order. All
quantities are in code units (sound speed 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

SOUND_SPEED = 1.0
C2 = SOUND_SPEED**2

MINMOD, VANLEER, MC = 0, 1, 2
"""Codes of the slope limiters (the order of :data:`.solver.LIMITER_NAMES`)."""
LLF, HLL = 0, 1
"""Codes of the Riemann solvers (the order of :data:`.solver.RIEMANN_SOLVERS`)."""


def minmod(a, b):
    """The smaller of ``a`` and ``b`` in magnitude, 0 where their signs differ."""
    sign = 1.0 if a >= 0.0 else -1.0  # written without branches, so that it vectorises
    return sign * max(min(sign * b, abs(a)), 0.0)


def _half_slope_of(minmod):
    """:func:`half_slope` calling the given (compiled) ``minmod``."""

    def half_slope(backward, forward, limiter):
        """Half the limited slope of a cell from its backward and forward differences."""
        if limiter == MINMOD:
            slope = minmod(backward, forward)
        elif limiter == VANLEER:  # harmonic mean where the signs agree
            product = backward * forward
            mean = 2.0 * product / (backward + forward)
            slope = mean if product > 0.0 else 0.0
        else:  # mc
            slope = minmod(0.5 * (backward + forward), 2.0 * minmod(backward, forward))
        return 0.5 * slope

    return half_slope


half_slope = _half_slope_of(minmod)


def conserved_and_flux(rho, w, u_normal, v, normal):
    """Conserved variable ``v`` of a primitive state and its flux along the face normal.

    ``rho`` is the density, ``w`` the primitive ``v`` (ρ for ``v == 0``, else a
    velocity), ``u_normal`` the velocity along the normal, whose primitive index
    (1, 2 or 3) is ``normal``.
    """
    mass_flux = rho * u_normal
    if v == 0:
        return rho, mass_flux
    flux = w * mass_flux
    if v == normal:
        flux += C2 * rho
    return w * rho, flux


def llf_speed(u_left, u_right):
    """Fastest signal speed at a face for the local Lax-Friedrichs (Rusanov) flux."""
    return max(abs(u_left), abs(u_right)) + SOUND_SPEED


def llf_flux(u_left, f_left, u_right, f_right, speed):
    """Local Lax-Friedrichs flux of one conserved variable."""
    return ((f_left + f_right) - (u_right - u_left) * speed) * 0.5


def hll_speeds(u_left, u_right):
    """Davis estimates of the slowest (≤ 0) and fastest (≥ 0) signal speeds at a face."""
    s_left = min(min(u_left, u_right) - SOUND_SPEED, 0.0)
    s_right = max(max(u_left, u_right) + SOUND_SPEED, 0.0)
    return s_left, s_right


def hll_flux(u_left, f_left, u_right, f_right, s_left, s_right):
    """HLL flux of one conserved variable."""
    upwind = (f_left * s_right - f_right * s_left) + (u_right - u_left) * (s_left * s_right)
    return upwind / (s_right - s_left)


def heun_cell(state, stage, rate, out, i, j, k, dt, scale, density_floor, second):
    """One cell of a stage of Heun's method into ``out``, then the density floor.

    The first stage is ``state + dt * (rate * scale)``, the second
    ``(state + (stage + dt * (rate * scale))) / 2``. Returns the cell's number of
    non-finite values and its density before the floor.
    """
    bad = 0
    for v in range(4):
        if second:
            x = state[v, i, j, k] + (stage[v, i, j, k] + dt * (rate[v, i, j, k] * scale))
            x *= 0.5
        else:
            x = state[v, i, j, k] + dt * (rate[v, i, j, k] * scale)
        out[v, i, j, k] = x
        if not math.isfinite(x):
            bad += 1
    rho = out[0, i, j, k]
    out[0, i, j, k] = max(rho, density_floor)
    return bad, rho


def compiled(device: Callable) -> SimpleNamespace:
    """The face functions compiled by ``device``, a decorator of inlined device functions.

    Returns a namespace with ``minmod``, ``half_slope``, ``conserved_and_flux``,
    ``llf_speed``, ``llf_flux``, ``hll_speeds``, ``hll_flux`` and ``heun_cell``.
    """
    functions = {
        f.__name__: device(f)
        for f in (minmod, conserved_and_flux, llf_speed, llf_flux, hll_speeds, hll_flux, heun_cell)
    }
    functions["half_slope"] = device(_half_slope_of(functions["minmod"]))
    return SimpleNamespace(**functions)
