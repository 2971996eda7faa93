"""Runge-Kutta steps of the solver on an NVIDIA GPU (:mod:`.cuda_kernels`).

The state stays in GPU memory for the whole run; after each stage only two
numbers come back (the count of non-finite values and the lowest density), and
one per step for the time step.
"""

from __future__ import annotations

import numpy as np


def available() -> bool:
    """Whether numba's CUDA target is installed and finds a GPU (or its simulator)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit counts as no GPU
        return False


def name() -> str:
    """Name of the GPU in use, e.g. ``"NVIDIA H100 80GB HBM3"``."""
    from numba import cuda

    label = cuda.get_current_device().name if hasattr(cuda, "get_current_device") else "simulator"
    return label.decode() if isinstance(label, bytes) else str(label)


class GpuSteps:
    """Two-stage SSP Runge-Kutta steps of a state held in GPU memory.

    ``state`` is a checked, floored C-ordered float64 host array (4, nx, ny, nz);
    ``riemann`` and ``limiter`` are kernel codes.
    """

    def __init__(self, state: np.ndarray, riemann: int, limiter: int, density_floor: float):
        from numba import cuda

        from turbexp_plugins.builtin import cuda_kernels

        self._k = cuda_kernels
        self.riemann, self.limiter, self.floor = riemann, limiter, density_floor
        self.scale = float(max(state.shape[1:]))  # 1 / dx
        self.cells = int(np.prod(state.shape[1:]))
        self.state = cuda.to_device(state)
        self.prim = cuda.device_array_like(self.state)
        self.stage = cuda.device_array_like(self.state)
        self.dudt = cuda.device_array_like(self.state)
        self._result = cuda.device_array(2, dtype=np.float64)
        self._grid = (cuda_kernels.blocks(self.cells), cuda_kernels.BLOCK)
        self._reducing = (
            min(cuda_kernels.blocks(self.cells), cuda_kernels.REDUCTION_BLOCKS),
            cuda_kernels.BLOCK,
        )

    def rate(self, state, dudt) -> None:
        """``dudt = -Σ_d (F_d[i+1/2] - F_d[i-1/2])`` of ``state`` (not divided by dx)."""
        self._k.primitives[self._grid](state, self.prim, self.floor)
        self._k.flux_differences[self._grid](
            self.prim, dudt, self.limiter, self.riemann, self.floor
        )

    def _reduce(self, kernel, *args, start: tuple[float, float]) -> np.ndarray:
        """Run a reducing ``kernel`` into a two-number result set to ``start`` first."""
        self._result.copy_to_device(np.array(start, dtype=np.float64))
        kernel[self._reducing](*args, self._result)
        return self._result.copy_to_host()

    def _stage(self, rate, out, dt: float, second: bool) -> tuple[int, float]:
        """A Heun stage into ``out``; returns the non-finite count and lowest density."""
        bad, low = self._reduce(
            self._k.heun_stage,
            self.state,
            self.stage,
            rate,
            out,
            dt,
            self.scale,
            self.floor,
            second,
            start=(0.0, np.inf),
        )
        return int(bad), float(low)

    def first_stage(self, dt: float) -> tuple[int, float]:
        """The first stage into ``stage``; returns the non-finite count and lowest density."""
        return self._stage(self.stage, self.stage, dt, False)

    def second_stage(self, dt: float) -> tuple[int, float]:
        """The second stage into ``state``; returns as :meth:`first_stage`."""
        return self._stage(self.dudt, self.state, dt, True)

    def max_speed_sum(self) -> float:
        """``max over cells of Σ_d |v_d|`` over the axes with more than one cell."""
        return float(
            self._reduce(self._k.max_speed_sum, self.state, self.floor, start=(0.0, 0.0))[0]
        )

    def host_state(self) -> np.ndarray:
        """The state, copied to host memory."""
        return self.state.copy_to_host()
