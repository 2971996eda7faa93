"""CUDA kernels of the finite-volume solver in :mod:`.solver`, for NVIDIA GPUs.

The same scheme as the CPU kernels of :mod:`.kernels`, from the same face
arithmetic (:mod:`.face`), on device arrays of float64. One thread updates one
cell: it computes the fluxes through the cell's two faces along each axis from
the four cells around each face (each face is so computed by the two cells
beside it, which costs arithmetic but no memory traffic). The stage kernels
also reduce, block by block, the count of non-finite values and the lowest
density that the solver checks after each stage.

Imported only when the solver runs on a GPU; needs numba's CUDA target (the
``numba-cuda`` package) and an NVIDIA driver. With ``NUMBA_ENABLE_CUDASIM=1``
numba runs these kernels in its CUDA simulator on the CPU (slowly), which the
tests use where no GPU is present.
"""

from __future__ import annotations

import math

from numba import cuda, float64

from turbexp_plugins.builtin import face

BLOCK = 128
"""Threads per block."""
REDUCTION_BLOCKS = 1024
"""Blocks of the reducing kernels, which loop over the cells with a grid stride."""

_device = cuda.jit(device=True, inline=True)


def _kernel(func):
    """A kernel, cached on disk where numba finds a writable cache folder."""
    try:
        return cuda.jit(cache=True)(func)
    except RuntimeError:  # no writable cache location: compile once per process instead
        return cuda.jit(func)


_face = face.compiled(_device)
_half_slope = _face.half_slope
_conserved_and_flux = _face.conserved_and_flux
_llf_speed, _llf_flux = _face.llf_speed, _face.llf_flux
_hll_speeds, _hll_flux = _face.hll_speeds, _face.hll_flux
_heun_cell = _face.heun_cell


def blocks(cells: int) -> int:
    """Blocks of :data:`BLOCK` threads for one thread per cell."""
    return max(1, (cells + BLOCK - 1) // BLOCK)


@_device
def _cell_of(index, ny, nz):
    """Grid position (i, j, k) of the C-order cell ``index``."""
    plane = ny * nz
    i = index // plane
    rest = index - i * plane
    j = rest // nz
    return i, j, rest - j * nz


@_device
def _neighbour(prim, v, i, j, k, axis, offset):
    """``prim[v]`` at ``offset`` cells from (i, j, k) along ``axis``, periodically."""
    if axis == 0:
        n = prim.shape[1]
        return prim[v, (i + offset + 2 * n) % n, j, k]
    if axis == 1:
        n = prim.shape[2]
        return prim[v, i, (j + offset + 2 * n) % n, k]
    n = prim.shape[3]
    return prim[v, i, j, (k + offset + 2 * n) % n]


@_device
def _face_flux(prim, i, j, k, axis, below, limiter, riemann, density_floor, flux):
    """Fluxes through the face between offsets ``below`` and ``below + 1`` along ``axis``.

    Reconstructs the primitive states left and right of the face from the cells
    at offsets ``below - 1`` to ``below + 2`` and writes the four fluxes to ``flux``.
    """
    left = cuda.local.array(4, float64)
    right = cuda.local.array(4, float64)
    for v in range(4):
        w0 = _neighbour(prim, v, i, j, k, axis, below - 1)
        w1 = _neighbour(prim, v, i, j, k, axis, below)
        w2 = _neighbour(prim, v, i, j, k, axis, below + 1)
        w3 = _neighbour(prim, v, i, j, k, axis, below + 2)
        left[v] = w1 + _half_slope(w1 - w0, w2 - w1, limiter)
        right[v] = w2 - _half_slope(w2 - w1, w3 - w2, limiter)
    left[0] = max(left[0], density_floor)
    right[0] = max(right[0], density_floor)
    normal = 1 + axis
    speed = _llf_speed(left[normal], right[normal])
    s_left, s_right = _hll_speeds(left[normal], right[normal])
    for v in range(4):
        ul, fl = _conserved_and_flux(left[0], left[v], left[normal], v, normal)
        ur, fr = _conserved_and_flux(right[0], right[v], right[normal], v, normal)
        if riemann == face.LLF:
            flux[v] = _llf_flux(ul, fl, ur, fr, speed)
        else:
            flux[v] = _hll_flux(ul, fl, ur, fr, s_left, s_right)


@_kernel
def primitives(state, prim, density_floor):
    """``prim`` = (ρ, u, v, w) of ``state``, with ρ at least ``density_floor``."""
    _, nx, ny, nz = state.shape
    index = cuda.grid(1)
    if index >= nx * ny * nz:
        return
    i, j, k = _cell_of(index, ny, nz)
    rho = max(state[0, i, j, k], density_floor)
    prim[0, i, j, k] = rho
    for v in range(1, 4):
        prim[v, i, j, k] = state[v, i, j, k] / rho


@_kernel
def flux_differences(prim, dudt, limiter, riemann, density_floor):
    """``dudt = -Σ_d (F_d[i+1/2] - F_d[i-1/2])`` over the axes with more than one cell.

    The differences are subtracted axis by axis in the order x, y, z, as the CPU
    kernels do; not yet divided by the cell size.
    """
    _, nx, ny, nz = prim.shape
    index = cuda.grid(1)
    if index >= nx * ny * nz:
        return
    i, j, k = _cell_of(index, ny, nz)
    total = cuda.local.array(4, float64)
    lower = cuda.local.array(4, float64)
    upper = cuda.local.array(4, float64)
    for v in range(4):
        total[v] = 0.0
    first = True
    for axis in range(3):
        if prim.shape[1 + axis] < 2:
            continue
        _face_flux(prim, i, j, k, axis, -1, limiter, riemann, density_floor, lower)
        _face_flux(prim, i, j, k, axis, 0, limiter, riemann, density_floor, upper)
        for v in range(4):
            change = upper[v] - lower[v]
            total[v] = (0.0 if first else total[v]) - change
        first = False
    for v in range(4):
        dudt[v, i, j, k] = total[v]


@_device
def _reduce_into(bad, low, result):
    """Add the block's non-finite counts to ``result[0]``, its lowest ``low`` to ``result[1]``."""
    bads = cuda.shared.array(BLOCK, float64)
    lows = cuda.shared.array(BLOCK, float64)
    t = cuda.threadIdx.x
    bads[t] = bad
    lows[t] = low
    cuda.syncthreads()
    width = BLOCK // 2
    while width > 0:
        if t < width:
            bads[t] += bads[t + width]
            lows[t] = min(lows[t], lows[t + width])
        cuda.syncthreads()
        width //= 2
    if t == 0:
        if bads[0] > 0.0:
            cuda.atomic.add(result, 0, bads[0])
        cuda.atomic.min(result, 1, lows[0])


@_kernel
def heun_stage(state, stage, rate, out, dt, scale, density_floor, second, result):
    """A stage of Heun's method into ``out``, then the density floor (as the CPU kernel).

    Adds the number of non-finite values to ``result[0]`` and lowers ``result[1]``
    to the lowest density before the floor (the caller sets ``result`` to (0, inf)).
    """
    _, nx, ny, nz = state.shape
    bad = 0.0
    low = math.inf
    for index in range(cuda.grid(1), nx * ny * nz, cuda.gridsize(1)):
        i, j, k = _cell_of(index, ny, nz)
        count, rho = _heun_cell(state, stage, rate, out, i, j, k, dt, scale, density_floor, second)
        bad += count
        low = min(low, rho)
    _reduce_into(bad, low, result)


@_kernel
def max_speed_sum(state, density_floor, result):
    """Raises ``result[0]`` to ``max over cells of Σ_d |ρ v_d| / ρ`` over the axes with
    more than one cell (the caller sets it to 0 first)."""
    _, nx, ny, nz = state.shape
    top = 0.0
    for index in range(cuda.grid(1), nx * ny * nz, cuda.gridsize(1)):
        i, j, k = _cell_of(index, ny, nz)
        total = 0.0
        for d in range(3):
            if state.shape[1 + d] > 1:
                total += abs(state[1 + d, i, j, k])
        top = max(top, total / max(state[0, i, j, k], density_floor))
    tops = cuda.shared.array(BLOCK, float64)
    t = cuda.threadIdx.x
    tops[t] = top
    cuda.syncthreads()
    width = BLOCK // 2
    while width > 0:
        if t < width:
            tops[t] = max(tops[t], tops[t + width])
        cuda.syncthreads()
        width //= 2
    if t == 0:
        cuda.atomic.max(result, 0, tops[0])
