"""Compiled (numba) kernels of the finite-volume solver in :mod:`.solver`.

All arithmetic is float64 in the same order as the plain numpy formulation of the
scheme (``benchmarks/numpy_reference.py``), without fast-math, so both give the
same numbers to round-off (bit for bit on the cases tested).

States are C-ordered (4, nx, ny, nz) arrays. A sweep along one axis visits the
cells of every grid line along it in order, keeping the flux through the face
below the current cell, so each face flux is computed once. The work on one line
is done a row at a time: a row is the cells at one position along the swept axis
on a set of neighbouring lines, contiguous in memory, so that the compiler
vectorises the loops over it. The kernels run in parallel on the threads numba is
given (``NUMBA_NUM_THREADS``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from turbexp_plugins.builtin import face
from turbexp_plugins.builtin.face import HLL, LLF, MC, MINMOD, SOUND_SPEED, VANLEER

__all__ = ["HLL", "LLF", "MC", "MINMOD", "SOUND_SPEED", "VANLEER"]


ON_DISK = True
"""Whether numba found a writable folder for the kernels' cache (else each process compiles
them)."""


def _kernel(func):
    """A parallel kernel, cached on disk when numba finds a writable cache folder.

    numba caches next to this file, else in the user's cache folder (or in
    ``NUMBA_CACHE_DIR`` when set). The numpy error model makes a division by zero
    give inf or nan, as numpy does, which the stage kernels count as non-finite.
    """
    global ON_DISK
    options = {"parallel": True, "error_model": "numpy"}
    try:
        return njit(cache=True, **options)(func)
    except RuntimeError:  # no writable cache location: compile once per process instead
        ON_DISK = False
        return njit(**options)(func)


_inline = njit(inline="always", error_model="numpy")
_serial = njit(error_model="numpy")

_face = face.compiled(_inline)
_half_slope = _face.half_slope
_face_conserved_and_flux = _face.conserved_and_flux
_llf_speed, _llf_flux = _face.llf_speed, _face.llf_flux
_hll_speeds, _hll_flux = _face.hll_speeds, _face.hll_flux
_heun_cell = _face.heun_cell


@_inline
def _conserved_and_flux(prim, v, b, normal):
    """Conserved variable ``v`` of primitive states ``prim[:, b]`` and its flux along ``normal``."""
    return _face_conserved_and_flux(prim[0, b], prim[v, b], prim[normal, b], v, normal)


# --- one row of faces -----------------------------------------------------------------
# A line set is a (4, outer, cells, lines, inner) view: the swept axis is axis 2 and a
# row is [:, o, s, l, :]. Index offsets are kept out of the inner loops (numba's
# negative-index handling of a run-time offset stops the vectoriser).


@_serial
def _half_slopes(prim, o, s, line, limiter, out):
    """Half the limited slopes of the primitives of row ``s``."""
    n = prim.shape[2]
    below = s - 1 if s > 0 else n - 1
    above = s + 1 if s < n - 1 else 0
    for v in range(4):
        for b in range(out.shape[1]):
            w = prim[v, o, s, line, b]
            backward = w - prim[v, o, below, line, b]
            forward = prim[v, o, above, line, b] - w
            out[v, b] = _half_slope(backward, forward, limiter)


@_serial
def _face_states(prim, o, s, line, slope, slope_above, density_floor, left, right):
    """Primitive states left and right of the faces between row ``s`` and the next one."""
    above = s + 1 if s < prim.shape[2] - 1 else 0
    for v in range(4):
        for b in range(left.shape[1]):
            left[v, b] = prim[v, o, s, line, b] + slope[v, b]
            right[v, b] = prim[v, o, above, line, b] - slope_above[v, b]
    for b in range(left.shape[1]):
        left[0, b] = max(left[0, b], density_floor)
        right[0, b] = max(right[0, b], density_floor)


@_serial
def _face_fluxes(left, right, normal, riemann, flux):
    """LLF or HLL (Davis wave speeds) fluxes between primitive states, face by face."""
    if riemann == LLF:
        for b in range(flux.shape[1]):
            speed = _llf_speed(left[normal, b], right[normal, b])
            for v in range(4):
                ul, fl = _conserved_and_flux(left, v, b, normal)
                ur, fr = _conserved_and_flux(right, v, b, normal)
                flux[v, b] = _llf_flux(ul, fl, ur, fr, speed)
    else:
        for b in range(flux.shape[1]):
            s_left, s_right = _hll_speeds(left[normal, b], right[normal, b])
            for v in range(4):
                ul, fl = _conserved_and_flux(left, v, b, normal)
                ur, fr = _conserved_and_flux(right, v, b, normal)
                flux[v, b] = _hll_flux(ul, fl, ur, fr, s_left, s_right)


@_serial
def _subtract_difference(dudt, o, s, line, above, below, first):
    """``dudt[row s] -= above - below`` (set to ``-(above - below)`` when ``first``)."""
    for v in range(4):
        for b in range(above.shape[1]):
            change = above[v, b] - below[v, b]
            dudt[v, o, s, line, b] = (0.0 if first else dudt[v, o, s, line, b]) - change


@_serial
def _sweep_lines(prim, dudt, o, line, normal, first, limiter, riemann, density_floor):
    """Subtract the flux differences along axis 2 of the lines ``[:, o, :, line, :]``."""
    n, width = prim.shape[2], prim.shape[4]
    slope, slope_above = np.empty((4, width)), np.empty((4, width))
    left, right = np.empty((4, width)), np.empty((4, width))
    flux, flux_below = np.empty((4, width)), np.empty((4, width))
    _half_slopes(prim, o, n - 1, line, limiter, slope)
    for s in range(-1, n):  # the face s + 1/2; the face -1/2 is the face n - 1/2
        row = s if s >= 0 else n - 1
        _half_slopes(prim, o, row + 1 if row < n - 1 else 0, line, limiter, slope_above)
        _face_states(prim, o, row, line, slope, slope_above, density_floor, left, right)
        _face_fluxes(left, right, normal, riemann, flux)
        if s >= 0:
            _subtract_difference(dudt, o, s, line, flux, flux_below, first)
        flux, flux_below = flux_below, flux
        slope, slope_above = slope_above, slope


# --- whole-grid kernels ---------------------------------------------------------------


@_kernel
def primitives(state, prim, density_floor):
    """``prim`` = (ρ, u, v, w) of ``state``, with ρ at least ``density_floor``."""
    _, nx, ny, nz = state.shape
    for i in prange(nx):
        for j in range(ny):
            for k in range(nz):
                rho = max(state[0, i, j, k], density_floor)
                prim[0, i, j, k] = rho
                for v in range(1, 4):
                    prim[v, i, j, k] = state[v, i, j, k] / rho


@_kernel
def sweep_middle(prim, dudt, normal, first, limiter, riemann, density_floor):
    """Flux differences along axis 2 of (4, outer, cells, lines, inner) views.

    ``prim`` and ``dudt`` are such views of the primitives and the rate of change
    (the rate is overwritten when ``first``, otherwise the differences are
    subtracted from it); ``normal`` (1, 2, 3) is the velocity along the swept axis.
    """
    _, outer, _, lines, _ = prim.shape
    for task in prange(outer * lines):
        o, line = task // lines, task % lines
        _sweep_lines(prim, dudt, o, line, normal, first, limiter, riemann, density_floor)


@_kernel
def sweep_last(prim, dudt, first, limiter, riemann, density_floor):
    """Flux differences along z, the contiguous axis, of (4, nx, ny, nz) arrays.

    Each x-plane is transposed into a scratch (4, 1, nz, 1, ny) line set, swept, and
    the differences are transposed back.
    """
    _, nx, ny, nz = prim.shape
    for i in prange(nx):
        plane = np.empty((4, 1, nz, 1, ny))
        change = np.empty((4, 1, nz, 1, ny))
        for v in range(4):
            for j in range(ny):
                for k in range(nz):
                    plane[v, 0, k, 0, j] = prim[v, i, j, k]
        _sweep_lines(plane, change, 0, 0, 3, True, limiter, riemann, density_floor)
        for v in range(4):
            for j in range(ny):
                for k in range(nz):  # first: -Δ; otherwise dudt - Δ = dudt + (-Δ)
                    previous = 0.0 if first else dudt[v, i, j, k]
                    dudt[v, i, j, k] = previous + change[v, 0, k, 0, j]


# The reducing kernels reduce each x-plane in a serial function and combine the planes'
# results after the parallel loop: numba's parfor reduction analysis fails on such loops
# written inline on Python 3.12.


@_serial
def _stage_plane(state, stage, rate, out, i, dt, scale, density_floor, second):
    """:func:`heun_stage` on the plane ``i``; returns its non-finite count and lowest ρ."""
    _, _, ny, nz = state.shape
    count = 0
    lowest = np.inf
    for j in range(ny):
        for k in range(nz):
            bad, rho = _heun_cell(
                state, stage, rate, out, i, j, k, dt, scale, density_floor, second
            )
            count += bad
            lowest = min(lowest, rho)
    return count, lowest


@_serial
def _max_speed_sum_plane(state, i, density_floor, active):
    """:func:`max_speed_sum` over the plane ``i``."""
    _, _, ny, nz = state.shape
    top = 0.0
    for j in range(ny):
        for k in range(nz):
            total = 0.0
            for d in range(3):
                if active[d]:
                    total += abs(state[1 + d, i, j, k])
            top = max(top, total / max(state[0, i, j, k], density_floor))
    return top


@_kernel
def heun_stage(state, stage, rate, out, dt, scale, density_floor, second):
    """A stage of Heun's method into ``out``, then the density floor.

    The first stage is ``state + dt * (rate * scale)``, the second
    ``(state + (stage + dt * (rate * scale))) / 2``; ``out`` may be ``stage`` or
    ``state``. Returns the number of non-finite values and the lowest density
    before the floor.
    """
    nx = state.shape[1]
    bad = np.zeros(nx, dtype=np.int64)
    low = np.empty(nx)
    for i in prange(nx):
        bad[i], low[i] = _stage_plane(state, stage, rate, out, i, dt, scale, density_floor, second)
    return bad.sum(), low.min()


@_kernel
def max_speed_sum(state, density_floor, active):
    """``max over cells of Σ_d |ρ v_d| / ρ`` over the axes ``d`` with ``active[d]``."""
    nx = state.shape[1]
    tops = np.zeros(nx)
    for i in prange(nx):
        tops[i] = _max_speed_sum_plane(state, i, density_floor, active)
    return tops.max()


KERNELS = (primitives, sweep_middle, sweep_last, heun_stage, max_speed_sum)
"""The compiled entry points, whose numba statistics say whether a call compiled them."""


def sweep(prim, dudt, axis, first, limiter, riemann, density_floor):
    """Flux differences along grid ``axis`` (0, 1, 2) of C-ordered (4, nx, ny, nz) arrays.

    Subtracts them from ``dudt``, or sets ``dudt`` to minus them when ``first``.
    """
    if not (prim.flags.c_contiguous and dudt.flags.c_contiguous):
        raise ValueError("the sweeps need C-ordered arrays")
    _, nx, ny, nz = prim.shape
    if axis == 2:
        sweep_last(prim, dudt, first, limiter, riemann, density_floor)
        return
    shape = (4, 1, nx, ny, nz) if axis == 0 else (4, nx, ny, 1, nz)
    sweep_middle(
        prim.reshape(shape), dudt.reshape(shape), 1 + axis, first, limiter, riemann, density_floor
    )
