"""Draw docs/figures/solver_maps.png: log10 column density for n = 11/3 and n = 4.

Both boxes start from the same random phases (same seed) at the reference set-up
(10 pc, 6.77e-22 g/cm³, 10 K, Mach 1.41) and are evolved for 0.5 Myr and 5 Myr
with the embedded solver. Run: python docs/figures/solver_maps.py [grid]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from turbexp.plugin_types import Physics, SimulationRequest
from turbexp_plugins.builtin import BuiltinSimulator


def main(grid: int = 64, seed: int = 1) -> Path:
    simulator = BuiltinSimulator()
    params = BuiltinSimulator.Params()
    indices = {"Kolmogorov, n = 11/3": 11 / 3, "Burgers, n = 4": 4.0}
    times = (0.5, 5.0)
    fig, axes = plt.subplots(len(times), len(indices), figsize=(9, 8.4), layout="constrained")
    for row, time_myr in enumerate(times):
        physics = Physics(box_pc=10.0, density_g_cm3=6.77e-22, temperature_K=10.0, mach=1.41,
                          time_myr=time_myr, mean_molecular_weight=2.37)
        maps = {name: np.log10(simulator.simulate(
            SimulationRequest(physics, index, grid, seed), params).column_density[2])
            for name, index in indices.items()}
        low = min(m.min() for m in maps.values())
        high = max(m.max() for m in maps.values())
        for col, (name, log_map) in enumerate(maps.items()):
            ax = axes[row, col]
            image = ax.imshow(log_map.T, origin="lower", cmap="magma", vmin=low, vmax=high,
                              extent=(0, 10, 0, 10))
            ax.set_title(f"{name}, {time_myr:g} Myr\nσ(log₁₀ N) = {log_map.std():.4f} dex")
            ax.set_xlabel("x [pc]")
            ax.set_ylabel("y [pc]")
        fig.colorbar(image, ax=axes[row, :], label="log₁₀ N [g/cm²]", shrink=0.9)
    fig.suptitle(f"Embedded solver, {grid}³ cells, projection along z, seed {seed}")
    out = Path(__file__).with_suffix(".png")
    fig.savefig(out, dpi=90)
    return out


if __name__ == "__main__":
    print(main(*(int(a) for a in sys.argv[1:])))
