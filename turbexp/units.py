"""Physical constants (cgs) and the code units of the built-in solver.

The built-in solver works in units where the box size, the isothermal sound
speed and the initial density are all 1, so one code time unit is the sound
crossing time of the box, ``box / c_s``.
"""

from __future__ import annotations

import math

from turbexp.plugin_types import Physics

PC_CM = 3.0856775814913673e18
"""One parsec in cm."""

MYR_S = 3.15576e13
"""One megayear (Julian years) in s."""

K_B = 1.380649e-16
"""Boltzmann constant in erg/K."""

AMU = 1.66053907e-24
"""Atomic mass unit in g."""


def sound_speed_cm_s(temperature_K: float, mean_molecular_weight: float) -> float:
    """Isothermal sound speed ``sqrt(k_B T / (mu m_u))`` in cm/s."""
    return math.sqrt(K_B * temperature_K / (mean_molecular_weight * AMU))


def length_unit_cm(physics: Physics) -> float:
    """Code length unit (the box size) in cm."""
    return physics.box_pc * PC_CM


def velocity_unit_cm_s(physics: Physics) -> float:
    """Code velocity unit (the sound speed) in cm/s."""
    return sound_speed_cm_s(physics.temperature_K, physics.mean_molecular_weight)


def time_unit_s(physics: Physics) -> float:
    """Code time unit (the box sound-crossing time) in s."""
    return length_unit_cm(physics) / velocity_unit_cm_s(physics)


def time_code(physics: Physics) -> float:
    """``physics.time_myr`` in code time units."""
    return physics.time_myr * MYR_S / time_unit_s(physics)


def time_myr(t_code: float, physics: Physics) -> float:
    """A code time converted back to Myr."""
    return t_code * time_unit_s(physics) / MYR_S
