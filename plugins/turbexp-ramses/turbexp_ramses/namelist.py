"""Code units and the namelist of one RAMSES run.

RAMSES runs in code units chosen so the numbers stay readable: length 1 pc (the
box is ``boxlen`` = box size in pc), velocity 1 km/s (time unit 1 pc / 1 km/s ≈
0.978 Myr) and density the campaign's mean density (so ρ₀ = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from turbexp.api import MYR_S, PC_CM, Physics, sound_speed_cm_s

KM_CM = 1.0e5
TEMPLATE = Path(__file__).resolve().parent / "data" / "namelist.nml"
"""The namelist template shipped with the plugin (package data)."""


@dataclass(frozen=True)
class CodeUnits:
    """RAMSES's unit scales in cgs."""

    length_cm: float
    density_g_cm3: float
    time_s: float

    @property
    def velocity_cm_s(self) -> float:
        return self.length_cm / self.time_s


def code_units(physics: Physics) -> CodeUnits:
    return CodeUnits(length_cm=PC_CM, density_g_cm3=physics.density_g_cm3,
                     time_s=PC_CM / KM_CM)


def sound_speed_code(physics: Physics) -> float:
    """Isothermal sound speed in code velocity units (km/s)."""
    c_s = sound_speed_cm_s(physics.temperature_K, physics.mean_molecular_weight)
    return c_s / code_units(physics).velocity_cm_s


def end_time_code(physics: Physics) -> float:
    """``physics.time_myr`` in code time units."""
    return physics.time_myr * MYR_S / code_units(physics).time_s


@dataclass(frozen=True)
class NamelistValues:
    """What a namelist needs beyond the physics."""

    levelmin: int
    levelmax: int
    ngridmax: int
    riemann: str
    slope_type: int
    courant_factor: float
    err_grad_d: float
    checkpoints: int
    nrestart: int = 0


def output_times(physics: Physics, checkpoints: int) -> list[float]:
    """Output times in code units: ``checkpoints`` evenly spaced restart points, then the end."""
    end = end_time_code(physics)
    return [end * (i + 1) / (checkpoints + 1) for i in range(checkpoints)] + [end]


def render(physics: Physics, values: NamelistValues, template: str | Path = TEMPLATE) -> str:
    """The namelist text of one run; a ``KeyError`` names a placeholder left unfilled."""
    units = code_units(physics)
    times = output_times(physics, values.checkpoints)
    fields = {
        "nrestart": values.nrestart,
        "nsubcycle": f"{values.levelmax}*1",
        "levelmin": values.levelmin,
        "levelmax": values.levelmax,
        "ngridmax": values.ngridmax,
        "boxlen": _real(physics.box_pc),
        "half_box": _real(physics.box_pc / 2),
        "region_length": _real(10 * physics.box_pc),
        "p_region": _real(sound_speed_code(physics) ** 2),
        "noutput": len(times),
        "tout": ",".join(_real(t) for t in times),
        "courant_factor": _real(values.courant_factor),
        "slope_type": values.slope_type,
        "riemann": values.riemann,
        "err_grad_d": _real(values.err_grad_d),
        "temperature_K": _real(physics.temperature_K),
        "mean_molecular_weight": _real(physics.mean_molecular_weight),
        "units_density": _real(units.density_g_cm3),
        "units_time": _real(units.time_s),
        "units_length": _real(units.length_cm),
    }
    text = Template(Path(template).read_text()).substitute(fields)
    import f90nml  # the ramses extra; the plugin itself loads without it

    try:
        f90nml.reads(text)  # a template edited into something RAMSES could not read
    except ValueError as exc:
        raise ValueError(f"the namelist rendered from {template} is not a valid Fortran "
                         f"namelist: {exc}") from None
    return text


def _real(value: float) -> str:
    """A Fortran double-precision literal that keeps every digit."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} to a namelist")
    mantissa, _, exponent = f"{value:.17g}".partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}d{int(exponent or 0)}"


def read_namelist(path: str | Path) -> dict[str, Any]:
    """Every variable of a namelist file, parsed by f90nml (numbers as numbers, repeated
    values as lists), keys lower-case, the groups merged."""
    import f90nml

    parsed = f90nml.read(str(path))
    return {key.lower(): value for group in parsed.values() for key, value in group.items()}
