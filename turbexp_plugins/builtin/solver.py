"""Finite-volume solver for the isothermal Euler equations in a periodic unit box.

Code units: sound speed 1 (so the pressure equals the density), cubic cells of
side ``dx = 1 / max(nx, ny, nz)``, so the longest side of the periodic box has
length 1 (a cubic N³ grid is the unit box). The conserved state has shape
(4, nx, ny, nz): ``(ρ, ρu, ρv, ρw)``. Axes with a single cell carry no fluxes, so
(4, N, 1, 1), (4, 1, N, 1) and (4, 1, 1, N) are 1D problems along x, y and z.

Scheme: piecewise-linear reconstruction of the primitive variables ``(ρ, u, v, w)``
with a slope limiter (``"minmod"``, the default, ``"vanleer"`` or ``"mc"``,
monotonised central), interface fluxes from the local Lax-Friedrichs (``"llf"``)
or HLL (``"hll"``) approximate Riemann solver, all three directions added at once
(dimensionally unsplit), and two-stage strong-stability-preserving Runge-Kutta
(Heun) time stepping. Fluxes are differenced in conservative form, so mass and
momentum are conserved to round-off.

The work is done by compiled kernels: on the CPU those of :mod:`.kernels`
(numba, float64, in parallel over the cores numba is given), on an NVIDIA GPU
those of :mod:`.cuda_kernels` (numba CUDA), both from the face arithmetic of
:mod:`.face`. The first call in a process compiles them or loads them from
numba's on-disk cache. A run holds four state-sized arrays besides its input
(in GPU memory on the GPU): the state, one Runge-Kutta stage, the primitives
and a rate of change.
"""

from __future__ import annotations

import math

import numpy as np

from turbexp.api import SimulationError
from turbexp_plugins.builtin import gpu, kernels
from turbexp_plugins.builtin.kernels import SOUND_SPEED

DEVICES = ("auto", "cpu", "gpu")
RIEMANN_SOLVERS = ("llf", "hll")
LIMITER_NAMES = ("minmod", "vanleer", "mc")
SCHEME = "finite volume, PLM minmod, unsplit, SSP-RK2"
"""The scheme with the default limiter; :func:`scheme` names it for any limiter."""

__all__ = [
    "DEVICES",
    "LIMITER_NAMES",
    "RIEMANN_SOLVERS",
    "SCHEME",
    "SOUND_SPEED",
    "advance",
    "evolve",
    "initial_state",
    "max_signal_speed",
    "rate_of_change",
    "resolve_device",
    "scheme",
]


def scheme(limiter: str = "minmod") -> str:
    """One-line description of the scheme with ``limiter``."""
    return f"finite volume, PLM {limiter}, unsplit, SSP-RK2"


def initial_state(velocity: np.ndarray, density: float | np.ndarray = 1.0) -> np.ndarray:
    """Conserved state (4, nx, ny, nz) from a velocity field (3, nx, ny, nz) and a density."""
    velocity = np.asarray(velocity, dtype=np.float64)
    rho = np.broadcast_to(np.asarray(density, dtype=np.float64), velocity.shape[1:])
    return np.concatenate([rho[None], rho[None] * velocity])


def _active_axes(state: np.ndarray) -> tuple[bool, bool, bool]:
    """Whether each grid axis has more than one cell (only those carry fluxes)."""
    return tuple(n > 1 for n in state.shape[1:])


def _codes(riemann: str, limiter: str) -> tuple[int, int]:
    """Kernel codes of a Riemann solver and a limiter, refusing unknown names."""
    if riemann not in RIEMANN_SOLVERS:
        raise ValueError(f"unknown Riemann solver {riemann!r}; expected one of {RIEMANN_SOLVERS}")
    if limiter not in LIMITER_NAMES:
        raise ValueError(f"unknown slope limiter {limiter!r}; expected one of {LIMITER_NAMES}")
    return RIEMANN_SOLVERS.index(riemann), LIMITER_NAMES.index(limiter)


def _owned_state(state: np.ndarray) -> np.ndarray:
    """A C-ordered float64 copy of a (4, nx, ny, nz) state."""
    state = np.array(state, dtype=np.float64, order="C", copy=True)
    if state.ndim != 4 or state.shape[0] != 4 or min(state.shape[1:]) < 1:
        raise ValueError(f"state must have shape (4, nx, ny, nz), got {state.shape}")
    return state


def _flux_differences(
    state: np.ndarray,
    prim: np.ndarray,
    dudt: np.ndarray,
    riemann: int,
    limiter: int,
    density_floor: float,
) -> None:
    """``dudt = -Σ_d (F_d[i+1/2] - F_d[i-1/2])`` (not yet divided by dx); ``prim`` is scratch.

    The arguments of the kernels always have the same types (float64 C-ordered
    arrays, Python ints, floats and bools), so each kernel is compiled once.
    """
    kernels.primitives(state, prim, density_floor)
    axes = [axis for axis, active in enumerate(_active_axes(state)) if active]
    if not axes:
        dudt.fill(0.0)
    for axis in axes:
        kernels.sweep(prim, dudt, axis, axis == axes[0], limiter, riemann, density_floor)


def rate_of_change(
    state: np.ndarray, riemann: str = "llf", limiter: str = "minmod", density_floor: float = 1e-6
) -> np.ndarray:
    """``dU/dt = -Σ_d ∂F_d/∂x_d`` from limited piecewise-linear interface states.

    Axes with a single cell are skipped.
    """
    riemann_code, limiter_code = _codes(riemann, limiter)
    state = np.ascontiguousarray(state, dtype=np.float64)
    dudt = np.empty_like(state)
    _flux_differences(
        state, np.empty_like(state), dudt, riemann_code, limiter_code, float(density_floor)
    )
    dudt *= max(state.shape[1:])  # 1 / dx
    return dudt


def max_signal_speed(state: np.ndarray, density_floor: float) -> float:
    """``max over cells of Σ_d (|v_d| + c_s)`` over the axes with more than one cell.

    This is the speed limiting the unsplit time step.
    """
    active = _active_axes(state)
    if not any(active):
        return SOUND_SPEED
    state = np.ascontiguousarray(state, dtype=np.float64)
    top = kernels.max_speed_sum(state, float(density_floor), active)
    return float(top) + sum(active) * SOUND_SPEED


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"gpu"`` for ``device`` (one of :data:`DEVICES`).

    ``"auto"`` is the GPU when numba's CUDA target finds one, else the CPU;
    ``"gpu"`` fails with ``ValueError`` when there is none.
    """
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if device == "cpu":
        return "cpu"
    if gpu.available():
        return "gpu"
    if device == "gpu":
        raise ValueError(
            "device 'gpu': numba finds no CUDA GPU; install turbexp[gpu] (numba-cuda) "
            "and an NVIDIA driver, or use device 'cpu' or 'auto'"
        )
    return "cpu"


def _check(non_finite: int, rho_min: float, step: int, t: float) -> None:
    """Fail on a state with non-finite values or a density at or below zero."""
    where = f"at step {step} (t = {t:.6g} code units)"
    hint = "; the run is numerically unstable: lower the CFL number" if step > 0 else ""
    if non_finite:
        raise SimulationError(f"the state has non-finite values {where}{hint}")
    if rho_min <= 0.0:
        raise SimulationError(f"the density became non-positive (min {rho_min:.3g}) {where}{hint}")


class _CpuSteps:
    """Runge-Kutta stages on the CPU (:mod:`.kernels`), with the scratch arrays they need."""

    def __init__(self, state: np.ndarray, riemann: int, limiter: int, density_floor: float):
        self.riemann, self.limiter, self.floor = riemann, limiter, density_floor
        self.scale = float(max(state.shape[1:]))  # 1 / dx
        self.active = _active_axes(state)
        self.state = state
        self.prim = np.empty_like(state)
        self.stage = np.empty_like(state)
        self.dudt = np.empty_like(state)

    def rate(self, state: np.ndarray, dudt: np.ndarray) -> None:
        _flux_differences(state, self.prim, dudt, self.riemann, self.limiter, self.floor)

    def first_stage(self, dt: float) -> tuple[int, float]:
        return kernels.heun_stage(
            self.state, self.stage, self.stage, self.stage, dt, self.scale, self.floor, False
        )

    def second_stage(self, dt: float) -> tuple[int, float]:
        return kernels.heun_stage(
            self.state, self.stage, self.dudt, self.state, dt, self.scale, self.floor, True
        )

    def max_speed_sum(self) -> float:
        return float(kernels.max_speed_sum(self.state, self.floor, self.active))

    def host_state(self) -> np.ndarray:
        return self.state


class _Heun:
    """Two-stage SSP Runge-Kutta steps of an owned state on the CPU or a GPU."""

    def __init__(
        self, state: np.ndarray, riemann: str, limiter: str, density_floor: float, device: str
    ):
        riemann_code, limiter_code = _codes(riemann, limiter)
        if not density_floor > 0:
            raise ValueError(f"density_floor must be > 0, got {density_floor}")
        floor = float(density_floor)
        non_finite = state.size - int(np.count_nonzero(np.isfinite(state)))
        _check(non_finite, float(state[0].min()), 0, 0.0)
        np.maximum(state[0], floor, out=state[0])
        self.active = _active_axes(state)
        if resolve_device(device) == "gpu":
            self.stages = gpu.GpuSteps(state, riemann_code, limiter_code, floor)
        else:
            self.stages = _CpuSteps(state, riemann_code, limiter_code, floor)

    def step(self, dt: float, step: int, t_stage: float, t_new: float) -> None:
        """Advance by ``dt``; ``step``, ``t_stage`` and ``t_new`` only label errors."""
        stages = self.stages
        dt = float(dt)
        stages.rate(stages.state, stages.stage)
        _check(*stages.first_stage(dt), step, t_stage)
        stages.rate(stages.stage, stages.dudt)
        _check(*stages.second_stage(dt), step, t_new)

    def signal_speed(self) -> float:
        """:func:`max_signal_speed` of the current state."""
        if not any(self.active):
            return SOUND_SPEED
        return self.stages.max_speed_sum() + sum(self.active) * SOUND_SPEED

    def state(self) -> np.ndarray:
        """The current state as a host array."""
        return self.stages.host_state()


def advance(
    state: np.ndarray,
    dt: float,
    steps: int,
    *,
    riemann: str = "llf",
    limiter: str = "minmod",
    density_floor: float = 1e-6,
    device: str = "cpu",
) -> np.ndarray:
    """``steps`` steps of a fixed ``dt`` (no CFL control); returns the new state.

    Used to time the solver; raises :class:`SimulationError` like :func:`evolve`.
    """
    heun = _Heun(_owned_state(state), riemann, limiter, density_floor, device)
    for step in range(1, steps + 1):
        heun.step(dt, step, step * dt, step * dt)
    return heun.state()


def evolve(
    state: np.ndarray,
    t_end: float,
    *,
    cfl: float = 0.4,
    riemann: str = "llf",
    limiter: str = "minmod",
    density_floor: float = 1e-6,
    max_steps: int = 100_000,
    device: str = "cpu",
) -> tuple[np.ndarray, int]:
    """Advance a conserved state (4, nx, ny, nz) from t = 0 to ``t_end`` (code units).

    Returns the new state (the input is not modified) and the number of steps.
    The cell size is ``dx = 1 / max(nx, ny, nz)``. The time step is
    ``cfl * dx / max Σ_d (|v_d| + c_s)``, summed over the axes with more than one
    cell, the last one shortened to land on ``t_end``. ``limiter`` is one of
    :data:`LIMITER_NAMES`. Densities below ``density_floor`` are raised to it (the
    only operation that does not conserve mass). Raises :class:`SimulationError`
    if the state becomes non-finite or non-positive, or after ``max_steps`` steps.
    ``device`` is ``"cpu"``, ``"gpu"`` or ``"auto"`` (:func:`resolve_device`); the
    GPU gives the CPU's numbers to round-off.
    """
    state = _owned_state(state)
    _codes(riemann, limiter)
    if not cfl > 0:
        raise ValueError(f"cfl must be > 0, got {cfl}")
    if not density_floor > 0:
        raise ValueError(f"density_floor must be > 0, got {density_floor}")
    if not (math.isfinite(t_end) and t_end >= 0):
        raise ValueError(f"t_end must be finite and >= 0, got {t_end}")
    heun = _Heun(state, riemann, limiter, density_floor, device)
    dx = 1.0 / max(state.shape[1:])
    t = 0.0
    steps = 0
    while t < t_end:
        if steps >= max_steps:
            raise SimulationError(
                f"no end after {max_steps} steps (t = {t:.6g} of {t_end:.6g} code units); "
                "the time step has collapsed"
            )
        dt = cfl * dx / heun.signal_speed()
        last = t + dt >= t_end
        if last:
            dt = t_end - t
        heun.step(dt, steps + 1, t + dt, t_end if last else t + dt)
        steps += 1
        t = t_end if last else t + dt
    return heun.state(), steps


_prepared = False


def prepare_kernels() -> str | None:
    """Make the CPU kernels ready in this process (compiled, or loaded from numba's on-disk
    cache) by evolving a tiny box; returns the cache folder when this first call had to
    compile them into it, else None."""
    global _prepared
    if _prepared:
        return None
    evolve(initial_state(np.zeros((3, 4, 4, 4)) + 0.1), 0.01)
    _prepared = True
    for kernel in kernels.KERNELS:
        stats = getattr(kernel, "stats", None)
        if stats is not None and sum(stats.cache_misses.values()):
            return str(stats.cache_path)
    return None
