"""The ``ramses`` simulator: decaying turbulence run with the user's RAMSES executable.

Each simulation gets a run directory with a namelist rendered from the plugin's
data/namelist.nml and the initial velocity field made by the same generator as the
built-in solver (so both codes start from the same field for the same seed), read by
the plugin's RAMSES patch (data/patch/). The final output is read with yt and
projected to column density maps on the campaign's grid.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from turbexp.api import (
    MYR_S,
    PluginParams,
    Register,
    SimulationRequest,
    SimulationResult,
    Simulator,
    content_hash,
    home,
    hookimpl,
    velocity_field,
)
from turbexp_ramses import namelist, run
from turbexp_ramses.output import column_density_maps, read_info, refinement

RUN_ONLY = frozenset({"executable", "mpi_ranks", "launcher", "ngridmax", "checkpoints",
                      "run_root", "keep", "template"})
"""Parameters that change how a run is carried out, not what it computes."""


class RamsesSimulator(Simulator):
    """Isothermal decaying turbulence with adaptive mesh refinement, run by RAMSES."""

    name: ClassVar[str] = "ramses"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "the user's RAMSES executable (AMR), read with yt"

    class Params(PluginParams):
        """RAMSES's own parameters and how to run it."""

        executable: Path | None = Field(
            None, description="RAMSES executable (default: TURBEXP_RAMSES_EXECUTABLE)")
        mpi_ranks: int = Field(1, ge=1, le=100_000, description="MPI ranks per run")
        launcher: str = Field("mpirun -np {ranks}",
                              description="MPI launcher used when mpi_ranks > 1")
        levelmin: int | None = Field(
            None, ge=3, le=14, description="base grid level (default: log2 of the campaign grid)")
        levelmax: int | None = Field(None, ge=3, le=24,
                                     description="finest AMR level (default: levelmin + 1)")
        err_grad_d: float = Field(0.2, gt=0, description="refine where the relative density "
                                                         "jump between neighbours exceeds this")
        riemann: Literal["llf", "hll", "hllc", "exact"] = "llf"
        slope_type: Literal[1, 2, 3] = Field(1, description="1 minmod, 2 MC, 3 unlimited")
        courant_factor: float = Field(0.8, gt=0, le=1)
        ngridmax: int = Field(200_000, ge=1000, description="octs allocated per rank")
        checkpoints: int = Field(4, ge=0, le=1000,
                                 description="intermediate outputs a stopped run restarts from")
        run_root: Path | None = Field(None, description="run directories (default: "
                                                        "$TURBEXP_HOME/ramses)")
        keep: Literal["all", "final", "none"] = Field(
            "final", description="outputs kept after the maps are stored")
        template: Path | None = Field(None, description="namelist template (default: the "
                                                        "plugin's data/namelist.nml)")

        @model_validator(mode="after")
        def _levels_ordered(self) -> RamsesSimulator.Params:
            if self.levelmin and self.levelmax and self.levelmax < self.levelmin:
                raise ValueError(f"levelmax ({self.levelmax}) must be at least levelmin "
                                 f"({self.levelmin})")
            return self

    def identity(self, params: PluginParams) -> dict[str, Any]:
        """What determines the output: the physical parameters and the template's text."""
        p = self.validated(params)
        values = {k: v for k, v in p.model_dump(mode="json").items() if k not in RUN_ONLY}
        return {**values, "template_sha256": hashlib.sha256(
            _template(p).read_bytes()).hexdigest() if _template(p).is_file() else None}

    def check(self, params: PluginParams, grid: int) -> None:
        """Fail before any run if RAMSES, its launcher or the namelist template is missing."""
        p = self.validated(params)
        try:
            import yt  # noqa: F401
        except ImportError:
            raise ValueError("reading RAMSES output needs yt: pip install turbexp-ramses") \
                from None
        if p.levelmin is None:
            _log2(grid)
        run.find_executable(p.executable)
        if p.mpi_ranks > 1:
            launch = run.Launch(Path("ramses"), p.mpi_ranks, p.launcher)
            program = launch.command()[0]
            if not run.shutil.which(program):
                raise ValueError(f"MPI launcher {program!r} not found on PATH")
        if not _template(p).is_file():
            raise ValueError(f"namelist template {str(_template(p))!r} not found")

    def simulate(self, request: SimulationRequest, params: PluginParams) -> SimulationResult:
        """Run RAMSES (or finish an earlier run) and project its final output."""
        p = self.validated(params)
        physics = request.physics
        levelmin = p.levelmin or _log2(request.grid)
        levelmax = p.levelmax or levelmin + 1
        values = namelist.NamelistValues(
            levelmin=levelmin, levelmax=levelmax, ngridmax=p.ngridmax, riemann=p.riemann,
            slope_type=p.slope_type, courant_factor=p.courant_factor, err_grad_d=p.err_grad_d,
            checkpoints=p.checkpoints)
        root = (p.run_root or home() / "ramses").resolve()
        run_dir = root / content_hash({"identity": self.identity(p), "levels": [levelmin, levelmax],
                                       "index": request.index, "seed": request.seed,
                                       "physics": asdict(physics)})[:24]
        end = namelist.end_time_code(physics)
        final = run.finished_output(run_dir, end)
        if final is None:
            velocity = velocity_field(2**levelmin, request.index, physics.mach, request.seed)
            run.prepare(run_dir, physics, values, velocity * namelist.sound_speed_code(physics),
                        _template(p), p.mpi_ranks)
            run.launch(run_dir, run.Launch(run.find_executable(p.executable), p.mpi_ranks,
                                           p.launcher))
            final = run.final_output(run_dir, end)
        maps = column_density_maps(final, request.grid)
        info = read_info(final)
        metadata = {
            "code": "ramses",
            "version": run.code_version(run_dir),
            "levelmin": levelmin,
            "levelmax": levelmax,
            "riemann": p.riemann,
            "time_myr": info.time * info.unit_t / MYR_S,
            "run_dir": str(run_dir),
            **refinement(final),
        }
        run.tidy(run_dir, p.keep)
        return SimulationResult(column_density=maps, metadata=metadata)


def _template(p: RamsesSimulator.Params) -> Path:
    return p.template or namelist.TEMPLATE


def _log2(grid: int) -> int:
    level = grid.bit_length() - 1
    if 2**level != grid:
        raise ValueError(f"the campaign grid {grid} is not a power of 2: set simulator.levelmin "
                         f"(the RAMSES base grid is 2**levelmin cells per side)")
    return level


@hookimpl
def register_simulators(register: Register) -> None:
    """Register the RAMSES simulator."""
    register(RamsesSimulator)
