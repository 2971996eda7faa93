"""The solver's GPU path: device choice, and the CUDA kernels against the CPU kernels.

Without a GPU, the CUDA kernels run in numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM``),
which executes them thread by thread on the CPU, in a subprocess so that the
simulator does not replace the real CUDA target in this process. On a machine with a
GPU, ``TURBEXP_SOLVER_DEVICE=gpu pytest tests/test_solver_validation.py`` runs the
validation suite on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from turbexp.errors import SimulationError
from turbexp.plugin_types import Physics, SimulationRequest
from turbexp_plugins.builtin import BuiltinSimulator, gpu, solver

pytest.importorskip("numba.cuda", reason="numba has no CUDA target here")

SIMULATED = textwrap.dedent(
    """
    import json
    import numpy as np
    from turbexp.errors import SimulationError
    from turbexp_plugins.builtin import solver

    out = {"runs": []}
    cases = [((6, 5, 4), "llf", "minmod"), ((5, 4, 6), "hll", "vanleer"),
             ((9, 1, 1), "hll", "mc"), ((1, 7, 1), "llf", "vanleer"), ((1, 1, 8), "llf", "mc")]
    for shape, riemann, limiter in cases:
        rng = np.random.default_rng(len(out["runs"]))
        state = solver.initial_state(rng.normal(size=(3,) + shape), 1 + 0.5 * rng.random(shape))
        runs = [solver.evolve(state, 0.04, riemann=riemann, limiter=limiter, device=device)
                for device in ("cpu", "gpu")]
        (cpu, cpu_steps), (gpu, gpu_steps) = runs
        out["runs"].append({
            "case": [shape, riemann, limiter], "steps": [cpu_steps, gpu_steps],
            "difference": float(np.abs(gpu - cpu).max() / np.abs(cpu).max()),
            "changed": float(np.abs(cpu - state).max())})
    tube = np.ones((3, 8, 1, 1))
    tube[:, :4] = 20.0
    errors = []
    for device in ("cpu", "gpu"):
        try:
            solver.evolve(solver.initial_state(np.zeros((3, 8, 1, 1)), tube[0]), 0.5,
                          cfl=8.0, device=device)
        except SimulationError as exc:
            errors.append(str(exc))
    out["errors"] = errors
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def simulated() -> dict:
    """CPU and CUDA-simulator runs of the same small problems, from a subprocess."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, "-c", SIMULATED], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cuda_kernels_match_the_cpu_kernels(simulated):
    """3D non-cubic and 1D grids along each axis, both Riemann solvers, every limiter."""
    for run in simulated["runs"]:
        assert run["steps"][0] == run["steps"][1] > 0, run
        assert run["changed"] > 1e-3, run  # the flow really evolved
        assert run["difference"] < 1e-13, run


def test_cuda_kernels_stop_an_unstable_run_like_the_cpu_kernels(simulated):
    """The stage kernels' reductions catch a blown-up state on the GPU too."""
    cpu, gpu_error = simulated["errors"]
    assert "lower the CFL number" in cpu
    assert gpu_error == cpu


def test_device_names():
    assert solver.resolve_device("cpu") == "cpu"
    assert solver.resolve_device("auto") == ("gpu" if gpu.available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        solver.resolve_device("tpu")


@pytest.mark.skipif(gpu.available(), reason="a GPU is present")
def test_asking_for_a_missing_gpu_says_what_to_install():
    with pytest.raises(ValueError, match=r"numba finds no CUDA GPU; install turbexp\[gpu\]"):
        solver.resolve_device("gpu")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        solver.evolve(solver.initial_state(np.zeros((3, 4, 4, 4))), 0.01, device="gpu")
    request = SimulationRequest(
        index=11 / 3, seed=0, grid=8,
        physics=Physics(box_pc=10.0, density_g_cm3=6.77e-22, temperature_K=10.0, mach=1.41,
                        time_myr=0.5, mean_molecular_weight=2.37))
    with pytest.raises(SimulationError, match="no CUDA GPU"):
        BuiltinSimulator().simulate(request, BuiltinSimulator.Params(device="gpu"))


def test_device_is_recorded_but_not_part_of_the_cache_key():
    simulator = BuiltinSimulator()
    keys = [simulator.identity(BuiltinSimulator.Params(device=d)) for d in ("auto", "cpu", "gpu")]
    assert keys[0] == keys[1] == keys[2]
    assert "device" not in keys[0] and keys[0]["riemann"] == "llf"
    assert simulator.identity(BuiltinSimulator.Params(riemann="hll")) != keys[0]
