"""The ``builtin`` simulator: decaying isothermal turbulence with a finite-volume solver."""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from turbexp.api import (
    PluginParams,
    Register,
    SimulationError,
    SimulationRequest,
    SimulationResult,
    Simulator,
    column_density,
    hookimpl,
    memory_here,
    time_code,
    time_myr,
    velocity_field,
)
from turbexp_plugins.builtin import solver

BYTES_PER_CELL = 200
"""Peak memory of the solver per grid cell: 160-180 bytes measured at 128³ (the velocity
field, the state and its stages, the fluxes), rounded up."""


def memory_needed(grid: int) -> int:
    """Bytes a ``grid``³ simulation needs at its peak, about."""
    return BYTES_PER_CELL * grid**3


class BuiltinSimulator(Simulator):
    """Uniform density, solenoidal k^-n velocity field, evolved on a uniform periodic grid."""

    name: ClassVar[str] = "builtin"
    description: ClassVar[str] = (
        "isothermal decaying turbulence, second-order finite volume (numba, CPU or GPU), "
        "uniform grid"
    )

    class Params(PluginParams):
        """Numerical parameters of the built-in solver."""

        riemann: Literal["llf", "hll"] = "llf"
        limiter: Literal["minmod", "vanleer", "mc"] = Field(
            "minmod", description="slope limiter of the piecewise-linear reconstruction"
        )
        cfl: float = Field(0.4, gt=0, le=1, description="Courant number of the unsplit step")
        density_floor: float = Field(1e-6, gt=0, description="lowest density, in units of ρ0")
        device: Literal["auto", "cpu", "gpu"] = Field(
            "auto",
            description="where the solver runs: auto (an NVIDIA GPU when numba finds one, "
            "else the CPU), cpu or gpu; the maps agree to round-off, so it is not part of the "
            "cache key",
        )

    def check(self, params: PluginParams, grid: int) -> None:
        """Before a campaign that runs on the CPU here: the kernels are made ready in this
        process, once, so that parallel jobs load them from numba's cache instead of each
        compiling them; the user hears of a compilation (tens of seconds) once. (The device
        itself is resolved where each simulation runs: under SLURM, not here.)"""
        p = self.validated(params)
        try:
            if solver.resolve_device(p.device) != "cpu":
                return
        except ValueError:
            return
        from turbexp_plugins.builtin import kernels

        if not kernels.ON_DISK:
            print("note: numba has no writable cache folder, so every process compiles the "
                  "solver's kernels (about 30 s); set NUMBA_CACHE_DIR to a writable folder",
                  file=sys.stderr)
            return
        started = time.perf_counter()
        compiled_into = solver.prepare_kernels()
        if compiled_into is not None:
            print(f"compiled the solver's kernels in {time.perf_counter() - started:.0f} s, "
                  f"once: numba keeps them in {compiled_into}", file=sys.stderr)

    def identity(self, params: PluginParams) -> dict[str, Any]:
        """The numerical parameters, less ``device`` (which only says where to run)."""
        return self.validated(params).model_dump(mode="json", exclude={"device"})

    def simulate(self, request: SimulationRequest, params: PluginParams) -> SimulationResult:
        """Evolve the initial field to ``request.physics.time_myr`` and project the density."""
        p = self.validated(params)
        try:  # where the simulation runs, which under SLURM is not where it was planned
            device = solver.resolve_device(p.device)
        except ValueError as exc:
            raise SimulationError(str(exc)) from None
        need, have = memory_needed(request.grid), memory_here()
        if have is not None and need > have:
            raise SimulationError(f"a {request.grid}³ box needs about {need / 2**30:.3g} GiB "
                                  f"of memory ({BYTES_PER_CELL} bytes a cell); this machine "
                                  f"has {have / 2**30:.3g} GiB")
        physics = request.physics
        velocity = velocity_field(request.grid, request.index, physics.mach, request.seed)
        t_end = time_code(physics)
        started = time.perf_counter()
        state, steps = solver.evolve(
            solver.initial_state(velocity),
            t_end,
            cfl=p.cfl,
            riemann=p.riemann,
            limiter=p.limiter,
            density_floor=p.density_floor,
            device=device,
        )
        wall = time.perf_counter() - started
        return SimulationResult(
            column_density=column_density(state[0], physics),
            metadata={
                "code": "turbexp-builtin",
                "scheme": solver.scheme(p.limiter),
                "riemann": p.riemann,
                "limiter": p.limiter,
                "cfl": p.cfl,
                "steps": steps,
                "device": device,
                "wall_s": round(wall, 4),  # the solver alone: for cost estimates

                "time_myr": time_myr(t_end, physics),
            },
        )


@hookimpl
def register_simulators(register: Register) -> None:
    """Register the built-in simulator."""
    register(BuiltinSimulator)
