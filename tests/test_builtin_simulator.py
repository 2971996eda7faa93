"""The builtin simulator: conservation, agreement with the numpy reference, projections,
failures, parameters, discovery."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pydantic
import pytest

from turbexp.errors import SimulationError
from turbexp.plugin_types import Physics, SimulationRequest
from turbexp.plugins import load_registry
from turbexp.projection import column_density
from turbexp.turbulence import velocity_field
from turbexp.units import MYR_S, PC_CM, sound_speed_cm_s, time_code, time_unit_s
from turbexp_plugins.builtin import BuiltinSimulator, solver

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    """A module of ``benchmarks/`` (not a package) by its file."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


numpy_reference = _load("numpy_reference")  # the scheme in plain vectorised numpy

REFERENCE = Physics(
    box_pc=10.0,
    density_g_cm3=6.77e-22,
    temperature_K=10.0,
    mach=1.41,
    time_myr=0.5,
    mean_molecular_weight=2.37,
)


def request(grid: int = 16, time_myr: float = 0.5, seed: int = 1) -> SimulationRequest:
    physics = Physics(**{**REFERENCE.__dict__, "time_myr": time_myr})
    return SimulationRequest(physics=physics, index=11 / 3, grid=grid, seed=seed)


def turbulent_state(grid: int, mach: float = 2.0, seed: int = 3) -> np.ndarray:
    """A turbulent state with density contrast and a bulk flow, so nothing sums to zero."""
    v = velocity_field(grid, 4.0, mach, seed)
    v[0] += 0.3
    x = (np.arange(grid) + 0.5) / grid
    rho = 1.0 + 0.5 * np.sin(2 * np.pi * x)[:, None, None] * np.cos(2 * np.pi * x)[None, :, None]
    return solver.initial_state(v, rho)


# --- units and projection -----------------------------------------------------


def test_units_of_the_reference_setup():
    assert sound_speed_cm_s(10.0, 2.37) / 1e5 == pytest.approx(0.1873, abs=5e-5)
    crossing_myr = time_unit_s(REFERENCE) / MYR_S / REFERENCE.mach
    assert crossing_myr == pytest.approx(37.0, abs=0.1)
    assert time_code(REFERENCE) == pytest.approx(0.5 / (crossing_myr * REFERENCE.mach))


def test_column_density_of_a_uniform_cube():
    maps = column_density(np.ones((8, 8, 8)), REFERENCE)
    assert maps.shape == (3, 8, 8)
    np.testing.assert_allclose(maps, REFERENCE.density_g_cm3 * REFERENCE.box_pc * PC_CM, rtol=1e-14)


def test_column_density_axes():
    rho = np.ones((4, 4, 4))
    rho[0, 1, 2] = 5.0
    maps = column_density(rho, REFERENCE)
    assert np.argmax(maps[0]) == np.ravel_multi_index((1, 2), (4, 4))
    assert np.argmax(maps[1]) == np.ravel_multi_index((0, 2), (4, 4))
    assert np.argmax(maps[2]) == np.ravel_multi_index((0, 1), (4, 4))


# --- solver -------------------------------------------------------------------


@pytest.mark.parametrize("riemann", ["llf", "hll"])
def test_mass_and_momentum_conserved_to_round_off(riemann):
    state0 = turbulent_state(16)
    state, steps = solver.evolve(state0, 0.05, riemann=riemann)
    assert steps > 10
    assert np.all(np.isfinite(state)) and state[0].min() > 0
    mass0, mass = state0[0].sum(), state[0].sum()
    assert abs(mass - mass0) / mass0 < 1e-12
    scale = np.abs(state0[1:]).sum()
    momentum0, momentum = state0[1:].sum(axis=(1, 2, 3)), state[1:].sum(axis=(1, 2, 3))
    assert np.all(np.abs(momentum - momentum0) / scale < 1e-12)
    assert not np.allclose(state, state0)  # it did evolve


def cons_flux(w: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Conserved variables and isothermal flux along ``d`` of primitive states (c_s = 1)."""
    cons = np.concatenate([w[:1], w[:1] * w[1:]])
    flux = cons * w[1 + d]
    flux[1 + d] += w[0]
    return cons, flux


def reference_slope(forward: np.ndarray, backward: np.ndarray, limiter: str) -> np.ndarray:
    """Limited slope from the one-sided differences, written plainly."""
    same_sign = forward * backward > 0
    small = np.minimum(np.abs(forward), np.abs(backward))
    if limiter == "minmod":
        magnitude = small
    elif limiter == "vanleer":
        total = np.where(same_sign, forward + backward, 1.0)
        magnitude = 2 * np.abs(forward * backward) / np.abs(total)
    else:  # mc
        magnitude = np.minimum(2 * small, np.abs(forward + backward) / 2)
    return np.where(same_sign, np.sign(forward) * magnitude, 0.0)


def reference_rate_of_change(
    state: np.ndarray, riemann: str, limiter: str = "minmod"
) -> np.ndarray:
    """The same scheme written plainly with np.roll over the whole grid (dx = 1 / longest side)."""
    n = max(state.shape[1:])
    prim = np.concatenate([state[:1], state[1:] / state[0]])
    dudt = np.zeros_like(state)
    for d in range(3):
        axis = d + 1
        forward = np.roll(prim, -1, axis) - prim
        backward = np.roll(forward, 1, axis)
        slope = reference_slope(forward, backward, limiter)
        left, right = prim + slope / 2, np.roll(prim - slope / 2, -1, axis)

        (ul, fl), (ur, fr) = cons_flux(left, d), cons_flux(right, d)
        if riemann == "llf":
            a = np.maximum(np.abs(left[1 + d]), np.abs(right[1 + d])) + 1
            face = (fl + fr) / 2 - a * (ur - ul) / 2
        else:
            sl = np.minimum(np.minimum(left[1 + d], right[1 + d]) - 1, 0)
            sr = np.maximum(np.maximum(left[1 + d], right[1 + d]) + 1, 0)
            face = (sr * fl - sl * fr + sl * sr * (ur - ul)) / (sr - sl)
        dudt -= n * (face - np.roll(face, 1, axis))
    return dudt


@pytest.mark.parametrize("limiter", solver.LIMITER_NAMES)
@pytest.mark.parametrize("riemann", ["llf", "hll"])
def test_rate_of_change_matches_a_plain_implementation(riemann, limiter):
    state = turbulent_state(24)
    expected = reference_rate_of_change(state, riemann, limiter)
    got = solver.rate_of_change(state, riemann, limiter)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("shape", [(24, 16, 20), (1, 24, 6), (12, 1, 1), (1, 1, 12), (9, 40, 1)])
def test_rate_of_change_on_non_cubic_grids(shape):
    state = turbulent_state(40)[:, : shape[0], : shape[1], : shape[2]].copy()
    for limiter in solver.LIMITER_NAMES:
        expected = reference_rate_of_change(state, "hll", limiter)
        got = solver.rate_of_change(state, "hll", limiter)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def assert_matches_reference(got: np.ndarray, expected: np.ndarray) -> None:
    """Agreement to 1e-13 relative (of each value, and of the largest where values are tiny)."""
    atol = 1e-13 * np.abs(expected).max()
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=atol)


@pytest.mark.parametrize("shape", [(16, 16, 16), (24, 16, 20), (2, 40, 1)])
@pytest.mark.parametrize("limiter", solver.LIMITER_NAMES)
@pytest.mark.parametrize("riemann", solver.RIEMANN_SOLVERS)
def test_evolve_matches_the_numpy_reference(riemann, limiter, shape):
    """The compiled solver against benchmarks/numpy_reference.py, whole runs with CFL steps."""
    state0 = turbulent_state(40)[:, : shape[0], : shape[1], : shape[2]].copy()
    state0[:, 3:6, 2:5] *= 0.05  # a low-density pocket: steep gradients for the limiters
    got, steps = solver.evolve(state0, 0.03, riemann=riemann, limiter=limiter)
    expected, expected_steps = numpy_reference.evolve(state0, 0.03, riemann=riemann,
                                                      limiter=limiter)
    assert steps == expected_steps > 3
    assert_matches_reference(got, expected)
    rate = solver.rate_of_change(state0, riemann, limiter)
    assert_matches_reference(rate, numpy_reference.rate_of_change(state0, riemann, limiter))


def test_density_floor_matches_the_numpy_reference():
    state0 = turbulent_state(16)
    state0[:, 4:8, 4:8, 4:8] *= 1e-9
    got, steps = solver.evolve(state0, 0.01, density_floor=1e-3, riemann="hll")
    expected, _ = numpy_reference.evolve(state0, 0.01, density_floor=1e-3, riemann="hll")
    assert steps > 1
    assert_matches_reference(got, expected)


def test_any_memory_layout_of_the_input_gives_the_same_run():
    state0 = turbulent_state(40)[:, :12, :10, :8].copy()
    view = np.asfortranarray(turbulent_state(40))[:, :12, :10, :8]  # neither C nor F ordered
    assert np.array_equal(view, state0) and not view.flags.c_contiguous
    assert np.array_equal(solver.evolve(view, 0.01)[0], solver.evolve(state0, 0.01)[0])


def test_fixed_steps_match_the_numpy_reference():
    state0 = turbulent_state(12)
    dt = 0.4 / 12 / solver.max_signal_speed(state0, 1e-6)
    assert solver.max_signal_speed(state0, 1e-6) == numpy_reference.max_signal_speed(state0, 1e-6)
    got = solver.advance(state0, dt, 5, riemann="hll", limiter="mc")
    assert_matches_reference(got, numpy_reference.advance(state0, dt, 5, riemann="hll",
                                                          limiter="mc"))


def test_benchmark_script_runs(capsys):
    _load("solver").main(["--grids", "8", "--steps", "1", "--repeats", "1", "--memory-grid", "8",
                          "--memory-steps", "1", "--no-compile"])
    out = capsys.readouterr().out
    assert "| 8³ | 1 |" in out and "0.0e+00 |" in out
    assert "peak memory of a 8³ builtin-simulator run" in out


def sound_wave_error(grid: int, riemann: str, t: float = 0.25, eps: float = 1e-3) -> float:
    """Mean density error, relative to the amplitude, of a right-moving linear sound wave."""
    x = (np.arange(grid) + 0.5) / grid
    wave = eps * np.sin(2 * np.pi * x)[:, None, None] * np.ones((grid, grid, grid))
    velocity = np.zeros((3, grid, grid, grid))
    velocity[0] = wave
    state, _ = solver.evolve(solver.initial_state(velocity, 1.0 + wave), t, riemann=riemann)
    exact = 1.0 + eps * np.sin(2 * np.pi * (x - t))[:, None, None]
    return float(np.abs(state[0] - exact).mean() / eps)


@pytest.mark.parametrize("riemann", ["llf", "hll"])
def test_sound_wave_travels_at_the_sound_speed_and_converges(riemann):
    coarse, fine = sound_wave_error(8, riemann), sound_wave_error(16, riemann)
    assert fine < 0.07
    assert coarse / fine > 2.2  # close to second order; minmod clips the extrema


def test_evolve_lands_on_t_end_and_leaves_input_alone():
    state0 = turbulent_state(16)
    copy = state0.copy()
    state, steps = solver.evolve(state0, 0.0)
    assert steps == 0 and np.array_equal(state, state0)
    solver.evolve(state0, 0.01)
    assert np.array_equal(state0, copy)


def test_rest_state_stays_at_rest():
    state0 = solver.initial_state(np.zeros((3, 8, 8, 8)))
    state, steps = solver.evolve(state0, 0.1)
    assert steps > 0
    np.testing.assert_array_equal(state, state0)


def test_huge_cfl_raises_simulation_error_not_nan():
    with pytest.raises(SimulationError, match="unstable"):
        solver.evolve(turbulent_state(16), 0.2, cfl=50.0)


def test_step_limit_raises_simulation_error():
    with pytest.raises(SimulationError, match="steps"):
        solver.evolve(turbulent_state(16), 1.0, max_steps=3)


def test_non_finite_input_raises_simulation_error():
    state = turbulent_state(8)
    state[1, 0, 0, 0] = np.nan
    with pytest.raises(SimulationError, match="non-finite"):
        solver.evolve(state, 0.01)


def test_density_floor_lifts_near_vacuum():
    state0 = turbulent_state(16)
    state0[:, 4:8, 4:8, 4:8] *= 1e-9
    state, _ = solver.evolve(state0, 0.002, density_floor=1e-3)
    assert np.all(np.isfinite(state))
    assert state[0].min() >= 1e-3


def test_unknown_riemann_solver_or_limiter_is_refused():
    with pytest.raises(ValueError, match="Riemann"):
        solver.evolve(turbulent_state(8), 0.01, riemann="roe")
    with pytest.raises(ValueError, match="limiter"):
        solver.evolve(turbulent_state(8), 0.01, limiter="superbee")


# --- plugin -------------------------------------------------------------------


@pytest.mark.parametrize("riemann", ["llf", "hll"])
def test_simulate_projections(riemann):
    grid = 16
    result = BuiltinSimulator().simulate(request(grid), BuiltinSimulator.Params(riemann=riemann))
    maps = result.column_density
    assert maps.shape == (3, grid, grid)
    assert np.all(np.isfinite(maps)) and np.all(maps > 0)
    assert maps.std() > 0
    dx_cm = REFERENCE.box_pc * PC_CM / grid
    mass_g = REFERENCE.density_g_cm3 * (REFERENCE.box_pc * PC_CM) ** 3
    for projection in maps:
        assert projection.sum() * dx_cm**2 == pytest.approx(mass_g, rel=1e-12)
    meta = result.metadata
    assert meta["code"] == "turbexp-builtin"
    assert meta["riemann"] == riemann
    assert meta["limiter"] == "minmod"
    assert meta["steps"] > 0
    assert meta["device"] == solver.resolve_device("auto")
    assert meta["time_myr"] == pytest.approx(0.5, rel=1e-12)
    assert meta["scheme"]


def test_simulate_is_deterministic_and_seeded():
    params = BuiltinSimulator.Params()
    a = BuiltinSimulator().simulate(request(seed=1), params).column_density
    b = BuiltinSimulator().simulate(request(seed=1), params).column_density
    c = BuiltinSimulator().simulate(request(seed=2), params).column_density
    assert np.array_equal(a, b)
    assert not np.allclose(a, c, rtol=1e-6, atol=0)


def test_params_defaults_and_validation():
    params = BuiltinSimulator.Params()
    assert (params.riemann, params.limiter, params.cfl, params.density_floor) == (
        "llf", "minmod", 0.4, 1e-6)
    assert BuiltinSimulator.Params(cfl=1.0).cfl == 1.0
    assert BuiltinSimulator.Params(limiter="mc").limiter == "mc"
    for bad in ({"cfl": 0}, {"cfl": -0.1}, {"cfl": 1.5}, {"density_floor": 0},
                {"riemann": "roe"}, {"limiter": "superbee"}, {"courant": 0.4}):
        with pytest.raises(pydantic.ValidationError):
            BuiltinSimulator.Params(**bad)


def test_discoverable_through_the_entry_point():
    info = load_registry().get("simulator", "builtin")
    assert info.cls is BuiltinSimulator
    assert info.package == "turbexp"
    assert isinstance(info.create(), BuiltinSimulator)


def test_a_box_too_large_for_this_machine_fails_before_allocating(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import turbexp_plugins.builtin as builtin

    monkeypatch.setattr(builtin, "memory_here", lambda: 100 * 2**20)  # a 100 MiB machine
    simulator = BuiltinSimulator()
    with pytest.raises(SimulationError,
                       match=r"a 128³ box needs about 0.391 GiB .* has 0.0977 GiB"):
        simulator.simulate(request(grid=128), simulator.Params())
    assert builtin.memory_needed(128) == 200 * 128**3


def test_a_campaign_readies_the_kernels_once_and_says_so_only_when_it_compiles(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from turbexp_plugins.builtin import kernels

    simulator = BuiltinSimulator()
    params = simulator.Params(device="cpu")
    monkeypatch.setattr(solver, "_prepared", False)
    simulator.check(params, 16)
    first = capsys.readouterr().err
    compiled = any(sum(k.stats.cache_misses.values()) for k in kernels.KERNELS)
    assert ("compiled the solver's kernels" in first) == compiled, first
    simulator.check(params, 16)  # a second campaign in the same process: nothing to say
    assert capsys.readouterr().err == ""
    assert solver._prepared
    monkeypatch.setattr(kernels, "ON_DISK", False)
    simulator.check(params, 16)
    assert "set NUMBA_CACHE_DIR to a writable folder" in capsys.readouterr().err
