"""Plain vectorised numpy implementation of the builtin solver's scheme (reference only).

The same scheme, arithmetic and checks as ``turbexp_plugins/builtin/solver.py``
(piecewise-linear reconstruction with a minmod, van Leer or MC limiter, LLF or HLL
fluxes, unsplit, SSP-RK2, density floor, failure on non-finite or non-positive
states), written with whole-array numpy operations over slabs of x-planes. It is
used by ``benchmarks/solver.py`` as the speed baseline and by the tests as an
independent implementation; it depends on numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

SOUND_SPEED = 1.0
RIEMANN_SOLVERS = ("llf", "hll")
LIMITER_NAMES = ("minmod", "vanleer", "mc")
SLAB_CELLS = 8192
"""Cells per slab in :func:`rate_of_change` (a cache-size trade-off, not a physical choice)."""

FluxFunction = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
Limiter = Callable[[np.ndarray, np.ndarray], np.ndarray]


class SimulationError(RuntimeError):
    """The run failed: a non-finite or non-positive state, or too many steps."""


def primitives(state: np.ndarray, density_floor: float) -> np.ndarray:
    """Primitive variables ``(ρ, u, v, w)``; the density used is at least ``density_floor``."""
    rho = np.maximum(state[0], density_floor)
    return np.concatenate([rho[None], state[1:] / rho])


def minmod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minmod limiter: the smaller of ``a`` and ``b`` in magnitude, 0 where signs differ."""
    sign = np.sign(a)
    out = b * sign
    np.minimum(out, np.abs(a), out=out)
    np.maximum(out, 0.0, out=out)
    out *= sign
    return out


def vanleer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Van Leer limiter: the harmonic mean ``2ab / (a + b)`` where signs agree, else 0."""
    product = a * b
    total = a + b
    np.maximum(product, 0.0, out=product)
    product *= 2.0
    np.divide(product, total, out=product, where=product > 0)
    return product


def mc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Monotonised central limiter: ``minmod((a + b) / 2, 2a, 2b)``."""
    out = minmod(a, b)
    out *= 2.0
    central = a + b
    central *= 0.5
    return minmod(central, out)


LIMITERS: dict[str, Limiter] = {"minmod": minmod, "vanleer": vanleer, "mc": mc}


def _conserved_and_flux(prim: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Conserved variables and physical flux along direction ``d`` of primitive states."""
    rho = prim[0]
    mass_flux = rho * prim[1 + d]
    cons = prim * rho
    cons[0] = rho
    flux = prim * mass_flux
    flux[0] = mass_flux
    flux[1 + d] += SOUND_SPEED**2 * rho
    return cons, flux


def flux_llf(left: np.ndarray, right: np.ndarray, d: int) -> np.ndarray:
    """Local Lax-Friedrichs (Rusanov) flux between primitive states ``left`` and ``right``."""
    ul, fl = _conserved_and_flux(left, d)
    ur, fr = _conserved_and_flux(right, d)
    speed = np.maximum(np.abs(left[1 + d]), np.abs(right[1 + d]))
    speed += SOUND_SPEED
    fl += fr
    ur -= ul
    ur *= speed
    fl -= ur
    fl *= 0.5
    return fl  # (F_L + F_R)/2 - a (U_R - U_L)/2


def flux_hll(left: np.ndarray, right: np.ndarray, d: int) -> np.ndarray:
    """HLL flux with Davis wave-speed estimates between primitive states."""
    ul, fl = _conserved_and_flux(left, d)
    ur, fr = _conserved_and_flux(right, d)
    s_left = np.minimum(left[1 + d], right[1 + d])
    s_left -= SOUND_SPEED
    np.minimum(s_left, 0.0, out=s_left)
    s_right = np.maximum(left[1 + d], right[1 + d])
    s_right += SOUND_SPEED
    np.maximum(s_right, 0.0, out=s_right)
    fl *= s_right
    fr *= s_left
    fl -= fr
    ur -= ul
    ur *= s_left * s_right
    fl += ur
    fl /= s_right - s_left
    return fl  # (S_R F_L - S_L F_R + S_L S_R (U_R - U_L)) / (S_R - S_L)


FLUXES: dict[str, FluxFunction] = {"llf": flux_llf, "hll": flux_hll}


def _along(axis: int, start: int | None, stop: int | None) -> tuple[slice, ...]:
    """Index selecting ``start:stop`` along ``axis`` of a (4, ...) array."""
    index = [slice(None)] * 4
    index[axis] = slice(start, stop)
    return tuple(index)


def _wrap(prim: np.ndarray, axis: int) -> np.ndarray:
    """``prim`` with two periodic ghost cells added on each side along ``axis``."""
    return np.concatenate(
        [prim[_along(axis, -2, None)], prim, prim[_along(axis, None, 2)]], axis=axis
    )


def _flux_difference(
    padded: np.ndarray, axis: int, flux: FluxFunction, density_floor: float, limiter: Limiter
) -> np.ndarray:
    """``F[i+1/2] - F[i-1/2]`` along ``axis`` for primitives with two ghost cells there."""
    d = axis - 1
    diff = np.diff(padded, axis=axis)  # W[i+1] - W[i] for i = -2 .. n
    half = limiter(diff[_along(axis, None, -1)], diff[_along(axis, 1, None)])
    half *= 0.5  # half the limited slope of cells -1 .. n
    cells = padded[_along(axis, 1, -1)]  # cells -1 .. n
    left = cells[_along(axis, None, -1)] + half[_along(axis, None, -1)]  # faces -1/2 .. n-1/2
    right = cells[_along(axis, 1, None)] - half[_along(axis, 1, None)]
    np.maximum(left[0], density_floor, out=left[0])
    np.maximum(right[0], density_floor, out=right[0])
    return np.diff(flux(left, right, d), axis=axis)


def rate_of_change(
    state: np.ndarray, riemann: str = "llf", limiter: str = "minmod", density_floor: float = 1e-6
) -> np.ndarray:
    """``dU/dt = -Σ_d ∂F_d/∂x_d`` from limited piecewise-linear interface states.

    Axes with a single cell are skipped. Works through slabs of x-planes of about
    ``SLAB_CELLS`` cells, so that the temporaries stay in cache.
    """
    flux, slope = FLUXES[riemann], LIMITERS[limiter]
    nx, ny, nz = state.shape[1:]
    slab = max(1, SLAB_CELLS // (ny * nz))
    prim = primitives(state, density_floor)
    prim_x = _wrap(prim, 1) if nx > 1 else prim
    transverse = [axis for axis in (2, 3) if state.shape[axis] > 1]
    dudt = np.empty_like(state)
    for i0 in range(0, nx, slab):
        i1 = min(i0 + slab, nx)
        out = dudt[:, i0:i1]
        if nx > 1:
            block = prim_x[:, i0 : i1 + 4]  # x-planes i0-2 .. i1+1
            np.negative(_flux_difference(block, 1, flux, density_floor, slope), out=out)
            inner = block[:, 2:-2]
        else:
            out.fill(0.0)
            inner = prim_x[:, i0:i1]
        for axis in transverse:
            out -= _flux_difference(_wrap(inner, axis), axis, flux, density_floor, slope)
    dudt *= max(nx, ny, nz)  # 1 / dx
    return dudt


def max_signal_speed(state: np.ndarray, density_floor: float) -> float:
    """``max over cells of Σ_d (|v_d| + c_s)`` over the axes with more than one cell."""
    active = [d for d in range(3) if state.shape[1 + d] > 1]
    if not active:
        return SOUND_SPEED
    rho = np.maximum(state[0], density_floor)
    momenta = state[1:] if len(active) == 3 else state[[1 + d for d in active]]
    return float(np.max(np.sum(np.abs(momenta), axis=0) / rho)) + len(active) * SOUND_SPEED


def _enforce(state: np.ndarray, density_floor: float, step: int, t: float) -> None:
    """Fail on a non-finite or non-positive state; lift densities below the floor."""
    where = f"at step {step} (t = {t:.6g} code units)"
    hint = "; the run is numerically unstable: lower the CFL number" if step > 0 else ""
    if not np.all(np.isfinite(state)):
        raise SimulationError(f"the state has non-finite values {where}{hint}")
    rho_min = float(state[0].min())
    if rho_min <= 0.0:
        raise SimulationError(f"the density became non-positive (min {rho_min:.3g}) {where}{hint}")
    if rho_min < density_floor:
        np.maximum(state[0], density_floor, out=state[0])


def _heun_step(
    state: np.ndarray, dt: float, riemann: str, limiter: str, density_floor: float,
    step: int, t_stage: float, t_new: float,
) -> None:
    """One SSP-RK2 step of ``state`` in place."""
    stage = state + dt * rate_of_change(state, riemann, limiter, density_floor)
    _enforce(stage, density_floor, step, t_stage)
    stage += dt * rate_of_change(stage, riemann, limiter, density_floor)
    state += stage
    state *= 0.5
    _enforce(state, density_floor, step, t_new)


def advance(
    state: np.ndarray, dt: float, steps: int, *, riemann: str = "llf", limiter: str = "minmod",
    density_floor: float = 1e-6,
) -> np.ndarray:
    """``steps`` steps of a fixed ``dt`` (no CFL control); returns the new state."""
    state = np.array(state, dtype=np.float64, copy=True)
    with np.errstate(over="ignore", invalid="ignore"):
        _enforce(state, density_floor, 0, 0.0)
        for step in range(1, steps + 1):
            _heun_step(state, dt, riemann, limiter, density_floor, step, step * dt, step * dt)
    return state


def evolve(
    state: np.ndarray, t_end: float, *, cfl: float = 0.4, riemann: str = "llf",
    limiter: str = "minmod", density_floor: float = 1e-6, max_steps: int = 100_000,
) -> tuple[np.ndarray, int]:
    """Advance ``state`` from t = 0 to ``t_end`` with the CFL time step; (new state, steps)."""
    state = np.array(state, dtype=np.float64, copy=True)
    if riemann not in FLUXES or limiter not in LIMITERS:
        raise ValueError(f"unknown Riemann solver {riemann!r} or limiter {limiter!r}")
    if not (cfl > 0 and density_floor > 0 and math.isfinite(t_end) and t_end >= 0):
        raise ValueError("cfl and density_floor must be > 0 and t_end finite and >= 0")
    dx = 1.0 / max(state.shape[1:])
    t = 0.0
    steps = 0
    with np.errstate(over="ignore", invalid="ignore"):
        _enforce(state, density_floor, steps, t)
        while t < t_end:
            if steps >= max_steps:
                raise SimulationError(f"no end after {max_steps} steps (t = {t:.6g})")
            dt = cfl * dx / max_signal_speed(state, density_floor)
            last = t + dt >= t_end
            if last:
                dt = t_end - t
            _heun_step(state, dt, riemann, limiter, density_floor, steps + 1, t + dt,
                       t_end if last else t + dt)
            steps += 1
            t = t_end if last else t + dt
    return state, steps
